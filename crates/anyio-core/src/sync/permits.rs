//! A FIFO pool of permits with direct hand-off: the machinery under `Lock`, `Semaphore` and
//! `CapacityLimiter`.
//!
//! A release hands its permit straight to the oldest waiter (no barging, so FIFO fairness
//! holds), and a waiter that was handed a permit but is cancelled or dropped before it noticed
//! passes the permit on instead of losing it. Waiting is a checkpoint of the waiter's scope.
//!
//! Two modes, switched under the mutex. *Fast*: nobody waits and no debt is owed, and the
//! free count lives in one atomic word, so an uncontended acquire or release is one
//! compare-and-swap and takes no lock. *Slow*: the word holds only the `SLOW` bit and the
//! count lives in the mutex's state with the wait queue. Whoever finds the pool unable to
//! serve it fast (no permit free, a waiter to hand to, a debt to pay, a count too large for
//! the word) switches it to slow with one swap, which makes every fast operation in flight
//! fail its compare-and-swap and come to the mutex; the last operation that leaves it with no
//! waiter and no debt switches it back.
//!
//! The mutex is the channels' spin lock (`sync::spin`): its sections are queue operations and
//! a waker clone, never user code, and std's mutex parked the loser on two workers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::waitq::WaitQueue;
use super::waker::replace_waker;
use crate::cancel::current::{check_current, register_current_after_check};
use crate::cancel::node::WaitRegistration;
use crate::error::Cancelled;
use crate::loom::{AtomicUsize, Ordering};
use crate::sync::spin::{SpinGuard, SpinMutex};

/// The word's flag: the pool is in slow mode.
const SLOW: usize = 1;
/// One permit in the word (the count is shifted past the flag).
const ONE: usize = 2;
/// The largest count the word holds; a pool with more free permits stays slow.
const MAX_FAST: usize = usize::MAX >> 1;

pub(crate) struct Permits {
    /// Fast mode: the free count times `ONE`. Slow mode: exactly `SLOW`.
    word: AtomicUsize,
    state: SpinMutex<State>,
}

#[derive(Debug)]
struct State {
    /// The free count while slow (stale while fast: the word has it then).
    available: usize,
    /// Permits removed while they were out (a lowered total): the next releases pay it off.
    debt: usize,
    /// Each waiter's waker. `release` pops the oldest waiter to grant it a permit, so a
    /// waiter whose entry is no longer queued holds a permit.
    waiters: WaitQueue<Option<Waker>>,
}

impl std::fmt::Debug for Permits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The state is not shown: formatting must not take the lock (a `Debug` call may come
        // from code that holds it, or from a panic message).
        f.debug_struct("Permits").field("word", &self.word).finish_non_exhaustive()
    }
}

impl Permits {
    pub(crate) fn new(available: usize) -> Self {
        let (word, slow_count) = if available <= MAX_FAST { (available * ONE, 0) } else { (SLOW, available) };
        Self {
            word: AtomicUsize::new(word),
            state: SpinMutex::new(State { available: slow_count, debt: 0, waiters: WaitQueue::new() }),
        }
    }

    /// Locks the state and switches the pool to slow mode (if it is not already), moving the
    /// free count from the word into the state.
    fn lock_slow(&self) -> SpinGuard<'_, State> {
        let mut st = self.state.lock();
        let old = self.word.swap(SLOW, Ordering::AcqRel);
        if old & SLOW == 0 {
            st.available = old / ONE;
        }
        st
    }

    /// With the state locked (and the pool slow): back to fast mode if nobody waits, no debt
    /// is owed and the count fits the word.
    fn settle(&self, st: &State) {
        if st.waiters.is_empty() && st.debt == 0 && st.available <= MAX_FAST {
            self.word.store(st.available * ONE, Ordering::Release);
        }
    }

    /// One compare-and-swap step of the fast path: `Some(result)` when it decided, `None`
    /// when the pool is slow or `step` declines (the slow path then decides).
    #[inline]
    fn fast(&self, mut step: impl FnMut(usize) -> Option<Result<usize, bool>>) -> Option<bool> {
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            if cur & SLOW != 0 {
                return None;
            }
            match step(cur)? {
                Err(decided) => return Some(decided),
                Ok(new) => {
                    match self.word.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Some(true),
                        Err(actual) => cur = actual,
                    }
                }
            }
        }
    }

    /// Takes a permit from the word if the pool is fast and one is free.
    #[inline]
    fn try_take_fast(&self) -> Option<bool> {
        // A fast pool has no waiters: none free means no, without the lock.
        self.fast(|cur| Some(if cur == 0 { Err(false) } else { Ok(cur - ONE) }))
    }

    /// Takes a permit if one is free and nobody waits for one.
    pub(crate) fn try_acquire(&self) -> bool {
        if let Some(taken) = self.try_take_fast() {
            return taken;
        }
        let mut st = self.lock_slow();
        let taken = st.available > 0 && st.waiters.is_empty();
        if taken {
            st.available -= 1;
        }
        self.settle(&st);
        taken
    }

    /// Returns a permit: to the oldest waiter if there is one, else to the pool.
    #[inline]
    pub(crate) fn release(&self) {
        self.release_bounded(usize::MAX);
    }

    /// Like `release`, unless that would leave more than `max` permits free; returns whether
    /// the permit was returned. Check and release happen at once (one compare-and-swap, or
    /// under the lock).
    #[inline]
    pub(crate) fn release_bounded(&self, max: usize) -> bool {
        // The uncontended case inline: one compare-and-swap on a fast pool.
        let cur = self.word.load(Ordering::Acquire);
        if cur & SLOW == 0
            && matches!(Self::release_step(cur, max), Some(Ok(_)))
            && self.word.compare_exchange(cur, cur + ONE, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            return true;
        }
        self.release_slow(max)
    }

    /// A fast release's step on the word `cur`: the new word, `Err(false)` if the permit is
    /// absorbed (`max` free already), `None` if the lock must decide (a count the word cannot
    /// hold).
    #[inline]
    fn release_step(cur: usize, max: usize) -> Option<Result<usize, bool>> {
        let free = cur / ONE;
        if free >= max {
            Some(Err(false))
        } else if free >= MAX_FAST {
            None
        } else {
            Some(Ok(cur + ONE))
        }
    }

    #[inline(never)]
    fn release_slow(&self, max: usize) -> bool {
        if max == 0 {
            return false;
        }
        if let Some(done) = self.fast(|cur| Self::release_step(cur, max)) {
            return done;
        }
        let waker = {
            let mut st = self.lock_slow();
            let waker = if st.debt > 0 {
                st.debt -= 1;
                None
            } else {
                match st.waiters.pop_front() {
                    Some(key) => st.waiters[key].take(),
                    None if st.available >= max => {
                        self.settle(&st);
                        return false;
                    }
                    None => {
                        st.available += 1;
                        None
                    }
                }
            };
            self.settle(&st);
            waker
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Adds `n` permits: they pay off any debt first, then go to waiters (oldest first), then
    /// to the pool.
    pub(crate) fn add(&self, n: usize) {
        let mut wakers = Vec::new();
        {
            let mut st = self.lock_slow();
            let paid = st.debt.min(n);
            st.debt -= paid;
            let mut left = n - paid;
            while left > 0 {
                let Some(key) = st.waiters.pop_front() else { break };
                wakers.extend(st.waiters[key].take());
                left -= 1;
            }
            st.available = st.available.saturating_add(left);
            self.settle(&st);
        }
        // Woken outside the lock: waking may run executor code that re-enters this pool.
        for w in wakers {
            w.wake();
        }
    }

    /// Removes `n` permits: free ones at once, the rest as they are released.
    pub(crate) fn remove(&self, n: usize) {
        let mut st = self.lock_slow();
        let now = st.available.min(n);
        st.available -= now;
        st.debt += n - now;
        self.settle(&st);
    }

    pub(crate) fn available(&self) -> usize {
        let word = self.word.load(Ordering::Acquire);
        if word & SLOW == 0 {
            return word / ONE;
        }
        let st = self.state.lock();
        // The mode may have changed before the lock: read whichever is current.
        let word = self.word.load(Ordering::Acquire);
        if word & SLOW == 0 {
            word / ONE
        } else {
            st.available
        }
    }

    pub(crate) fn waiting(&self) -> usize {
        self.state.lock().waiters.len()
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
            let mut st = self.permits.state.lock();
            let granted = !st.waiters.is_linked(key);
            let waker = st.waiters.remove(key);
            // The last waiter leaving (cancelled) may let the pool go fast again. The pool is
            // slow while anyone is queued; once a release granted our permit it may be fast
            // already, and `settle` must not overwrite a live word.
            if !granted && self.permits.word.load(Ordering::Acquire) & SLOW != 0 {
                self.permits.settle(&st);
            }
            (granted, waker)
        };
        // The waker is dropped after the lock is released: dropping a waker may run executor
        // code that re-enters this pool.
        drop(waker);
        granted
    }
}

impl Future for AcquirePermit<'_> {
    type Output = Result<(), Cancelled>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The uncontended first poll inline: not queued, not cancelled, a permit free in the
        // word. Anything else (and every error) is decided by `poll_inner`.
        if self.key.is_none()
            && !self.done
            && check_current().is_ok()
            && self.permits.try_take_fast() == Some(true)
        {
            self.done = true;
            return Poll::Ready(Ok(()));
        }
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
            let mut st = this.permits.state.lock();
            if !st.waiters.is_linked(key) {
                st.waiters.remove(key);
                drop(st);
                this.key = None;
                this.reg.clear();
                return Poll::Ready(Ok(()));
            }
        }
        if let Err(c) = check_current() {
            if this.leave() {
                this.reg.clear();
                return Poll::Ready(Ok(()));
            }
            this.reg.clear();
            return Poll::Ready(Err(c));
        }
        match this.key {
            None => {
                if this.permits.try_take_fast() == Some(true) {
                    return Poll::Ready(Ok(()));
                }
                let mut st = this.permits.lock_slow();
                if st.available > 0 && st.waiters.is_empty() {
                    st.available -= 1;
                    this.permits.settle(&st);
                    return Poll::Ready(Ok(()));
                }
                // Queued: the pool stays slow until the queue empties.
                this.key = Some(st.waiters.push_back(Some(cx.waker().clone())));
            }
            Some(key) => {
                let mut st = this.permits.state.lock();
                if !st.waiters.is_linked(key) {
                    st.waiters.remove(key);
                    drop(st);
                    this.key = None;
                    this.reg.clear();
                    return Poll::Ready(Ok(()));
                }
                let old = replace_waker(&mut st.waiters[key], cx.waker());
                drop(st);
                drop(old); // outside the lock, as in `leave`
            }
        }
        if let Err(c) = register_current_after_check(&mut this.reg, cx.waker()) {
            let granted = this.leave();
            this.reg.clear();
            return Poll::Ready(if granted { Ok(()) } else { Err(c) });
        }
        Poll::Pending
    }
}

impl Drop for AcquirePermit<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.key.is_some() {
            self.drop_queued();
        }
    }
}

impl AcquirePermit<'_> {
    /// Dropped while queued: a permit handed to us meanwhile goes to the next waiter.
    #[cold]
    fn drop_queued(&mut self) {
        if self.leave() {
            self.permits.release();
        }
    }
}
