//! `Event`: a one-shot flag that tasks can wait for.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use slab::Slab;

use crate::cancel::current::{check_current, register_current_after_check};
use crate::cancel::node::WaitRegistration;
use crate::error::Cancelled;
use crate::loom::{AtomicU8, Ordering};
use crate::sync::spin::SpinMutex;

/// A one-shot event (AnyIO's and trio's `Event`): tasks wait until it is set; once set it stays
/// set (there is no `clear`; make a new event instead). `Send + Sync`: waiters and the setter may
/// be on any threads.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::sync::Arc;
/// use anyio::{task_group, AnyError, sync::Event};
///
/// let ready = Arc::new(Event::new());
/// let r = ready.clone();
/// task_group(|tg| async move {
///     tg.spawn(async move { r.wait().await?; Ok::<_, AnyError>(()) });
///     ready.set();
///     Ok::<_, AnyError>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct Event {
    set: AtomicU8,
    /// A spin lock, as the channels': its sections are a slab insert or removal and a waker
    /// clone. std's mutex cost two atomic read-modify-writes and two poison checks per wait,
    /// and on two workers parked the loser.
    waiters: SpinMutex<Slab<std::task::Waker>>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("is_set", &self.is_set()).finish()
    }
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Event::statistics`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventStatistics {
    /// How many tasks are waiting for the event.
    pub tasks_waiting: usize,
}

impl Event {
    /// A new, unset event.
    ///
    /// ```
    /// assert!(!anyio::sync::Event::new().is_set());
    /// ```
    pub fn new() -> Self {
        Self { set: AtomicU8::new(0), waiters: SpinMutex::new(Slab::new()) }
    }

    /// Sets the event and wakes every waiter. Idempotent.
    ///
    /// ```
    /// let e = anyio::sync::Event::new();
    /// e.set();
    /// e.set();
    /// assert!(e.is_set());
    /// ```
    pub fn set(&self) {
        if self.set.swap(1, Ordering::AcqRel) == 0 {
            // The event is never unset, so its waiters are taken out whole, in one lock, and
            // woken outside it (a waker may run arbitrary executor code) by value: no clone, no
            // allocation, and no waiter takes the lock again to remove itself (see
            // `EventWait::forget`).
            let waiters = std::mem::take(&mut *self.waiters.lock());
            for (_, w) in waiters {
                w.wake();
            }
        }
    }

    /// Whether the event is set.
    ///
    /// ```
    /// assert!(!anyio::sync::Event::new().is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire) != 0
    }

    /// How many tasks wait for the event.
    ///
    /// ```
    /// assert_eq!(anyio::sync::Event::new().statistics().tasks_waiting, 0);
    /// ```
    pub fn statistics(&self) -> EventStatistics {
        let tasks_waiting = if self.is_set() { 0 } else { self.waiters.lock().len() };
        EventStatistics { tasks_waiting }
    }

    /// Waits until the event is set. A checkpoint: on a set event it still yields once and
    /// fails if the enclosing scope is cancelled (cancellation wins over an event set at the
    /// same time; the event stays set, so nothing is lost).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: waiting consumes nothing.
    ///
    /// ```
    /// # anyio::run(async {
    /// let e = anyio::sync::Event::new();
    /// e.set();
    /// e.wait().await.unwrap();
    /// # });
    /// ```
    pub fn wait(&self) -> EventWait<'_> {
        EventWait { event: self, key: None, yielded: false, reg: WaitRegistration::new() }
    }
}

/// The future returned by [`Event::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct EventWait<'a> {
    event: &'a Event,
    key: Option<usize>,
    yielded: bool,
    reg: WaitRegistration,
}

impl fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait").field("event", &self.event).finish_non_exhaustive()
    }
}

impl EventWait<'_> {
    /// Once the event is set, its entry is gone with the waiters `set` took (or goes with
    /// them, if `set` is still on its way to the lock): nothing to remove, no lock to take.
    fn forget(&mut self) {
        self.key = None;
        self.reg.clear();
    }

    /// Leaves the wait: forgets the entry once the event is set, removes it otherwise.
    fn leave(&mut self) {
        if self.event.is_set() {
            self.forget();
        } else {
            self.unregister();
        }
    }

    fn unregister(&mut self) {
        if let Some(key) = self.key.take() {
            // The removed waker is dropped after the lock is released (dropping a waker may run
            // executor code that re-enters this event).
            let removed = self.event.waiters.lock().try_remove(key);
            drop(removed);
        }
        self.reg.clear();
    }
}

impl Future for EventWait<'_> {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.event.is_set() && !this.yielded && this.key.is_none() {
            // Already set on the first poll: still a full checkpoint (yield, then check).
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Err(c) = check_current() {
            this.leave();
            return Poll::Ready(Err(c));
        }
        if this.event.is_set() {
            this.forget();
            return Poll::Ready(Ok(()));
        }
        let replaced = {
            let mut waiters = this.event.waiters.lock();
            match this.key.and_then(|k| waiters.get_mut(k)) {
                Some(w) if w.will_wake(cx.waker()) => None,
                Some(w) => Some(std::mem::replace(w, cx.waker().clone())),
                None => {
                    this.key = Some(waiters.insert(cx.waker().clone()));
                    None
                }
            }
        };
        // Dropped outside the lock.
        drop(replaced);
        // Re-check after registering: `set` takes the waiters after setting the flag. If it
        // took them before this registration, the entry is in a fresh list: removed here.
        if this.event.is_set() {
            this.unregister();
            return Poll::Ready(Ok(()));
        }
        if let Err(c) = register_current_after_check(&mut this.reg, cx.waker()) {
            this.leave();
            return Poll::Ready(Err(c));
        }
        Poll::Pending
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}
