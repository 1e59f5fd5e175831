//! `Condition`: wait for a notification while holding a `Lock`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::lock::{Lock, LockGuard};
use super::waitq::WaitQueue;
use super::waker::replace_waker;
use crate::cancel::current::{check_current, current_arc};
use crate::cancel::node::WaitRegistration;
use crate::cancel::CancelScope;
use crate::error::Cancelled;
use crate::loom::{lock, Mutex};

/// A condition variable (AnyIO's `Condition`): tasks holding its [`Lock`] wait for a
/// notification, releasing the lock while they wait and holding it again when they return —
/// also when they return because their scope was cancelled (the lock is re-acquired in a
/// shield, as AnyIO does). `Send + Sync`.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use anyio::{task_group, AnyError, sync::Condition};
///
/// let cond = Arc::new(Condition::new());
/// let ready = Arc::new(AtomicBool::new(false));
/// let (c, r) = (cond.clone(), ready.clone());
/// task_group(|tg| async move {
///     tg.spawn(async move {
///         let guard = c.acquire().await?;
///         let (_guard, res) = c.wait_for(guard, || r.load(Ordering::SeqCst)).await;
///         res?;
///         Ok::<_, AnyError>(())
///     });
///     let guard = cond.acquire().await?;
///     ready.store(true, Ordering::SeqCst);
///     cond.notify_all(&guard);
///     Ok::<_, AnyError>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct Condition {
    lock: Lock,
    /// Each waiter's waker. A notification pops the oldest waiter, so a waiter whose entry is
    /// no longer queued has been notified.
    waiters: Mutex<WaitQueue<Option<Waker>>>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").field("lock", &self.lock).field("waiting", &self.tasks_waiting()).finish()
    }
}

impl Default for Condition {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Condition::statistics`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConditionStatistics {
    /// How many tasks wait for a notification.
    pub tasks_waiting: usize,
    /// The statistics of the condition's lock.
    pub lock_statistics: super::LockStatistics,
}

impl Condition {
    /// A condition with its own lock.
    ///
    /// ```
    /// assert!(!anyio::sync::Condition::new().lock().is_locked());
    /// ```
    pub fn new() -> Self {
        Self { lock: Lock::new(), waiters: Mutex::new(WaitQueue::new()) }
    }

    /// The condition's lock.
    ///
    /// ```
    /// let c = anyio::sync::Condition::new();
    /// assert!(c.lock().try_acquire().is_ok());
    /// ```
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// Acquires the condition's lock ([`Lock::acquire`]).
    ///
    /// # Cancel safety
    ///
    /// As [`Lock::acquire`].
    ///
    /// ```
    /// # anyio::run(async {
    /// let c = anyio::sync::Condition::new();
    /// let _g = c.acquire().await.unwrap();
    /// # });
    /// ```
    pub fn acquire(&self) -> super::LockAcquire<'_> {
        self.lock.acquire()
    }

    /// Wakes up to `n` waiters, oldest first. Takes the lock's guard: notifying requires
    /// holding the lock, as in AnyIO.
    ///
    /// # Panics
    ///
    /// Panics if `guard` belongs to another lock.
    ///
    /// ```
    /// let c = anyio::sync::Condition::new();
    /// let g = c.lock().try_acquire().unwrap();
    /// c.notify(&g, 1); // nobody waits: a no-op
    /// ```
    pub fn notify(&self, guard: &LockGuard<'_>, n: usize) {
        self.check_guard(guard);
        let wakers: Vec<Waker> = {
            let mut w = lock(&self.waiters);
            let mut out = Vec::new();
            for _ in 0..n {
                let Some(key) = w.pop_front() else { break };
                out.extend(w[key].take());
            }
            out
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Wakes every waiter.
    ///
    /// # Panics
    ///
    /// Panics if `guard` belongs to another lock.
    ///
    /// ```
    /// let c = anyio::sync::Condition::new();
    /// let g = c.lock().try_acquire().unwrap();
    /// c.notify_all(&g);
    /// ```
    pub fn notify_all(&self, guard: &LockGuard<'_>) {
        self.notify(guard, usize::MAX);
    }

    /// Releases the lock, waits for a notification, and holds the lock again before
    /// returning — also when the wait ends because the scope was cancelled, which the
    /// second element reports. A notification that arrived wins over a cancellation at the
    /// same moment (it is not lost).
    ///
    /// # Panics
    ///
    /// Panics if `guard` belongs to another lock: waiting requires holding this condition's
    /// lock (AnyIO raises `RuntimeError` there).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled wait leaves the queue and re-acquires the lock (shielded). If
    /// the future is dropped after a notification reached it, the notification goes to the
    /// next waiter.
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::time::Duration;
    /// use anyio::{move_on_after, Cancelled, sync::Condition};
    /// let c = Condition::new();
    /// let g = c.acquire().await.unwrap();
    /// let r = move_on_after(Duration::from_millis(5), async {
    ///     let (g, res) = c.wait(g).await;
    ///     assert!(c.lock().is_locked(), "the lock is held again");
    ///     drop(g);
    ///     res
    /// })
    /// .await;
    /// assert_eq!(r, Ok(None)); // nobody notified: the deadline ended the wait
    /// # });
    /// ```
    pub fn wait<'a>(&'a self, guard: LockGuard<'a>) -> ConditionWait<'a> {
        self.check_guard(&guard);
        ConditionWait {
            cond: self,
            state: WaitState::Start(Some(guard)),
            key: None,
            reg: WaitRegistration::new(),
        }
    }

    /// Waits until `predicate` is true, checking it with the lock held before each wait.
    /// Returns the guard and, if the scope was cancelled first, the cancellation.
    ///
    /// # Cancel safety
    ///
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// # anyio::run(async {
    /// let c = anyio::sync::Condition::new();
    /// let g = c.acquire().await.unwrap();
    /// let (_g, r) = c.wait_for(g, || true).await; // already true: no wait
    /// r.unwrap();
    /// # });
    /// ```
    pub async fn wait_for<'a>(
        &'a self,
        mut guard: LockGuard<'a>,
        mut predicate: impl FnMut() -> bool,
    ) -> (LockGuard<'a>, Result<(), Cancelled>) {
        while !predicate() {
            let (g, r) = self.wait(guard).await;
            guard = g;
            if r.is_err() {
                return (guard, r);
            }
        }
        (guard, Ok(()))
    }

    fn tasks_waiting(&self) -> usize {
        lock(&self.waiters).len()
    }

    /// Waiters and lock state.
    ///
    /// ```
    /// assert_eq!(anyio::sync::Condition::new().statistics().tasks_waiting, 0);
    /// ```
    pub fn statistics(&self) -> ConditionStatistics {
        ConditionStatistics { tasks_waiting: self.tasks_waiting(), lock_statistics: self.lock.statistics() }
    }

    fn check_guard(&self, guard: &LockGuard<'_>) {
        assert!(
            guard.belongs_to(&self.lock),
            "the guard passed to this Condition belongs to another lock: acquire the condition's own \
             lock (Condition::acquire) before waiting or notifying"
        );
    }
}

enum WaitState<'a> {
    Start(Option<LockGuard<'a>>),
    Waiting,
    Reacquiring(Pin<Box<dyn Future<Output = LockGuard<'a>> + Send + 'a>>, Result<(), Cancelled>),
    Done,
}

/// The future returned by [`Condition::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct ConditionWait<'a> {
    cond: &'a Condition,
    state: WaitState<'a>,
    key: Option<usize>,
    reg: WaitRegistration,
}

impl fmt::Debug for ConditionWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionWait").finish_non_exhaustive()
    }
}

impl<'a> ConditionWait<'a> {
    /// Leaves the notification queue; returns whether a notification had reached us.
    fn leave(&mut self) -> bool {
        let Some(key) = self.key.take() else { return false };
        let (notified, waker) = {
            let mut w = lock(&self.cond.waiters);
            let notified = !w.is_linked(key);
            (notified, w.remove(key))
        };
        drop(waker); // outside the lock: dropping a waker may run executor code
        notified
    }

    fn reacquire(&mut self, result: Result<(), Cancelled>) {
        let lock = &self.cond.lock;
        // Re-acquired in a shield: the caller must hold the lock again whatever happens.
        let fut = async move {
            loop {
                let r = CancelScope::shielded().run(async { lock.acquire().await.map(Some) }).await;
                if let Ok(Some(Some(g))) = r {
                    return g;
                }
            }
        };
        self.state = WaitState::Reacquiring(Box::pin(fut), result);
    }
}

impl<'a> Future for ConditionWait<'a> {
    type Output = (LockGuard<'a>, Result<(), Cancelled>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                WaitState::Start(guard) => {
                    if let Err(c) = check_current() {
                        // A cancelled scope does not even start waiting; the lock stays held.
                        let g = guard.take().expect("guard present at start");
                        this.state = WaitState::Done;
                        return Poll::Ready((g, Err(c)));
                    }
                    {
                        let mut w = lock(&this.cond.waiters);
                        this.key = Some(w.push_back(Some(cx.waker().clone())));
                    }
                    drop(guard.take()); // release the lock only once we are queued
                    this.state = WaitState::Waiting;
                }
                WaitState::Waiting => {
                    let key = this.key.expect("queued while waiting");
                    let (notified, old) = {
                        let mut w = lock(&this.cond.waiters);
                        let notified = !w.is_linked(key);
                        let old = if notified { None } else { replace_waker(&mut w[key], cx.waker()) };
                        (notified, old)
                    };
                    drop(old); // outside the lock, as in `leave`
                    if notified {
                        this.leave();
                        this.reg.clear();
                        this.reacquire(Ok(()));
                        continue;
                    }
                    let cancelled = match current_arc() {
                        Some(node) => this.reg.register(&node, cx.waker()).err(),
                        None => None,
                    };
                    match cancelled {
                        None => return Poll::Pending,
                        Some(c) => {
                            // A notification that arrived meanwhile wins: it is not lost.
                            let notified = this.leave();
                            this.reg.clear();
                            this.reacquire(if notified { Ok(()) } else { Err(c) });
                        }
                    }
                }
                WaitState::Reacquiring(fut, result) => {
                    let g = match fut.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(g) => g,
                    };
                    let result = result.clone();
                    this.state = WaitState::Done;
                    return Poll::Ready((g, result));
                }
                WaitState::Done => panic!("a condition wait was polled after it completed"),
            }
        }
    }
}

impl Drop for ConditionWait<'_> {
    fn drop(&mut self) {
        // Dropped while queued: a notification that reached us goes to the next waiter.
        if self.leave() {
            let waker = {
                let mut w = lock(&self.cond.waiters);
                w.pop_front().and_then(|key| w[key].take())
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}
