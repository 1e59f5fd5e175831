//! A FIFO pool of permits with direct hand-off: the machinery under `Lock` and `Semaphore`.
//!
//! A release hands its permit straight to the oldest waiter (no barging, so FIFO fairness
//! holds), and a waiter that was handed a permit but is cancelled or dropped before it noticed
//! passes the permit on instead of losing it. Waiting is a checkpoint of the waiter's scope.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::waitq::WaitQueue;
use crate::cancel::current::{register_current, with_current};
use crate::cancel::node::WaitRegistration;
use crate::error::Cancelled;
use crate::loom::{lock, Mutex};

#[derive(Debug)]
pub(crate) struct Permits {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    available: usize,
    /// Permits removed while they were out (a lowered total): the next releases pay it off.
    debt: usize,
    /// Each waiter's waker. `release` pops the oldest waiter to grant it a permit, so a
    /// waiter whose entry is no longer queued holds a permit.
    waiters: WaitQueue<Option<Waker>>,
}

impl Permits {
    pub(crate) fn new(available: usize) -> Self {
        Self { state: Mutex::new(State { available, debt: 0, waiters: WaitQueue::new() }) }
    }

    /// Takes a permit if one is free and nobody waits for one.
    pub(crate) fn try_acquire(&self) -> bool {
        let mut st = lock(&self.state);
        if st.available > 0 && st.waiters.is_empty() {
            st.available -= 1;
            true
        } else {
            false
        }
    }

    /// Returns a permit: to the oldest waiter if there is one, else to the pool.
    pub(crate) fn release(&self) {
        self.release_bounded(usize::MAX);
    }

    /// Like `release`, unless that would leave more than `max` permits free; returns whether
    /// the permit was returned. Check and release happen under one lock.
    pub(crate) fn release_bounded(&self, max: usize) -> bool {
        if max == 0 {
            return false;
        }
        let waker = {
            let mut st = lock(&self.state);
            if st.debt > 0 {
                st.debt -= 1;
                return true;
            }
            match st.waiters.pop_front() {
                Some(key) => st.waiters[key].take(),
                None if st.available >= max => return false,
                None => {
                    st.available += 1;
                    None
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Adds `n` permits (handed to waiters first, FIFO), after paying off any debt.
    pub(crate) fn add(&self, n: usize) {
        for _ in 0..n {
            self.release();
        }
    }

    /// Removes `n` permits: free ones at once, the rest as they are released.
    pub(crate) fn remove(&self, n: usize) {
        let mut st = lock(&self.state);
        let now = st.available.min(n);
        st.available -= now;
        st.debt += n - now;
    }

    pub(crate) fn available(&self) -> usize {
        lock(&self.state).available
    }

    pub(crate) fn waiting(&self) -> usize {
        lock(&self.state).waiters.len()
    }

    pub(crate) fn acquire(&self) -> AcquirePermit<'_> {
        AcquirePermit { permits: self, key: None, reg: WaitRegistration::new(), done: false }
    }
}

/// Waits for a permit. `Ok(())` means the caller now holds one.
#[derive(Debug)]
pub(crate) struct AcquirePermit<'a> {
    permits: &'a Permits,
    key: Option<usize>,
    reg: WaitRegistration,
    done: bool,
}

impl AcquirePermit<'_> {
    /// Leaves the queue. Returns `true` if a permit had been handed to us meanwhile: it is
    /// ours, and the caller decides whether to keep it or pass it on.
    fn leave(&mut self) -> bool {
        let Some(key) = self.key.take() else { return false };
        let (granted, waker) = {
            let mut st = lock(&self.permits.state);
            let granted = !st.waiters.is_linked(key);
            (granted, st.waiters.remove(key))
        };
        // The waker is dropped after the lock is released: dropping a waker may run executor
        // code that re-enters this pool.
        drop(waker);
        granted
    }
}

impl Future for AcquirePermit<'_> {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let poll = self.poll_inner(cx);
        if poll.is_ready() {
            self.done = true;
        }
        poll
    }
}

impl AcquirePermit<'_> {
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Cancelled>> {
        // Polling again after completion would take a second permit in safe code.
        assert!(!self.done, "an acquire future was polled after it completed");
        let this = self;
        // A permit already handed to us wins over a cancellation: it must not be lost.
        if let Some(key) = this.key {
            let mut st = lock(&this.permits.state);
            if !st.waiters.is_linked(key) {
                st.waiters.remove(key);
                drop(st);
                this.key = None;
                this.reg.clear();
                return Poll::Ready(Ok(()));
            }
        }
        if let Err(c) = with_current(|n| n.map_or(Ok(()), |n| n.check())) {
            if this.leave() {
                this.reg.clear();
                return Poll::Ready(Ok(()));
            }
            this.reg.clear();
            return Poll::Ready(Err(c));
        }
        match this.key {
            None => {
                let mut st = lock(&this.permits.state);
                if st.available > 0 && st.waiters.is_empty() {
                    st.available -= 1;
                    return Poll::Ready(Ok(()));
                }
                this.key = Some(st.waiters.push_back(Some(cx.waker().clone())));
            }
            Some(key) => {
                let mut st = lock(&this.permits.state);
                if !st.waiters.is_linked(key) {
                    st.waiters.remove(key);
                    drop(st);
                    this.key = None;
                    this.reg.clear();
                    return Poll::Ready(Ok(()));
                }
                let w = &mut st.waiters[key];
                if !w.as_ref().is_some_and(|old| old.will_wake(cx.waker())) {
                    let old = w.replace(cx.waker().clone());
                    drop(st);
                    drop(old); // outside the lock, as in `leave`
                }
            }
        }
        if let Err(c) = register_current(&mut this.reg, cx.waker()) {
            let granted = this.leave();
            this.reg.clear();
            return Poll::Ready(if granted { Ok(()) } else { Err(c) });
        }
        Poll::Pending
    }
}

impl Drop for AcquirePermit<'_> {
    fn drop(&mut self) {
        // Dropped while queued: a permit handed to us meanwhile goes to the next waiter.
        if self.leave() {
            self.permits.release();
        }
    }
}
