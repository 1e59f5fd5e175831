//! `Lock`: a FIFO-fair async mutual-exclusion lock with a guard.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::atomic::{AtomicU64, Ordering};

use super::permits::{AcquirePermit, Permits};
use crate::error::{Cancelled, WouldBlock};
use crate::task::id::{current_task_id, TaskId};

/// An async lock (AnyIO's `Lock`): at most one holder at a time, waiters served in FIFO order,
/// released when the [`LockGuard`] drops — so releasing a lock one does not hold cannot even be
/// written. `Send + Sync`: holders and waiters may be on any threads.
///
/// An uncontended `acquire` takes the lock without yielding (AnyIO's `fast_acquire=True`); it
/// still fails at once in a cancelled scope.
///
/// The lock records the anyio task that acquired it ([`LockStatistics::owner`]); the owner is
/// the acquiring task even if the guard is moved to another task, as in AnyIO. Futures not run
/// by anyio (spawned straight onto a runtime) have no task id and are not tracked.
///
/// It is not reentrant, but unlike AnyIO (which raises when the holding task acquires again) a
/// second acquire from the same task waits like any other: one task may poll several futures
/// that contend for the lock (`futures::join!`, `select!`, `FuturesUnordered`), and the first
/// releases it while the second waits. The one true self-deadlock, a future awaiting `acquire`
/// while it holds the guard itself, then hangs (as with `tokio::sync::Mutex`) instead of
/// panicking.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let lock = anyio::sync::Lock::new();
/// {
///     let _guard = lock.acquire().await.unwrap();
///     assert!(lock.is_locked());
/// }
/// assert!(!lock.is_locked());
///
/// // Two futures of one task take the lock in turn.
/// let (a, b) = futures::join!(
///     async { let _g = lock.acquire().await?; anyio::lowlevel::checkpoint().await },
///     async { let _g = lock.acquire().await?; anyio::lowlevel::checkpoint().await },
/// );
/// assert!(a.is_ok() && b.is_ok());
/// # });
/// ```
pub struct Lock {
    permits: Permits,
    /// The holder's task id; 0 when free or held outside an anyio task.
    owner: AtomicU64,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("locked", &self.is_locked()).finish()
    }
}

impl Default for Lock {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Lock::statistics`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockStatistics {
    /// Whether someone holds the lock.
    pub locked: bool,
    /// The task that acquired it, if it is held by an anyio task.
    pub owner: Option<TaskId>,
    /// How many tasks wait for it.
    pub tasks_waiting: usize,
}

impl Lock {
    /// A new, unlocked lock.
    ///
    /// ```
    /// assert!(!anyio::sync::Lock::new().is_locked());
    /// ```
    pub fn new() -> Self {
        Self { permits: Permits::new(1), owner: AtomicU64::new(0) }
    }

    /// Waits for the lock and returns its guard.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, and fair: if the scope is cancelled while waiting, the waiter leaves the
    /// queue having taken nothing; if the lock was handed to it at that moment, it is returned
    /// anyway (the next checkpoint fails instead); a future dropped after the lock was handed
    /// to it passes the lock on to the next waiter.
    ///
    /// ```
    /// # anyio::run(async {
    /// let lock = anyio::sync::Lock::new();
    /// let guard = lock.acquire().await.unwrap();
    /// drop(guard);
    /// # });
    /// ```
    ///
    /// A second acquire from the task that holds the lock waits like any other (see
    /// [`Lock`]); awaiting it in the very future that holds the guard never completes.
    pub fn acquire(&self) -> LockAcquire<'_> {
        LockAcquire { lock: self, inner: self.permits.acquire() }
    }

    fn guard(&self, owner: Option<TaskId>) -> LockGuard<'_> {
        self.owner.store(owner.map_or(0, TaskId::as_u64), Ordering::Release);
        LockGuard { lock: self }
    }

    /// Takes the lock if it is free and nobody is waiting for it.
    ///
    /// # Errors
    ///
    /// [`WouldBlock`] if the lock is held (by this task too) or tasks are queued for it (FIFO
    /// fairness).
    ///
    /// ```
    /// let lock = anyio::sync::Lock::new();
    /// let g = lock.try_acquire().unwrap();
    /// assert!(lock.try_acquire().is_err());
    /// drop(g);
    /// ```
    #[doc(alias = "acquire_nowait")]
    pub fn try_acquire(&self) -> Result<LockGuard<'_>, WouldBlock> {
        if self.permits.try_acquire() {
            Ok(self.guard(current_task_id()))
        } else {
            Err(WouldBlock)
        }
    }

    /// Whether someone holds the lock.
    ///
    /// ```
    /// assert!(!anyio::sync::Lock::new().is_locked());
    /// ```
    #[doc(alias = "locked")]
    pub fn is_locked(&self) -> bool {
        self.permits.available() == 0
    }

    /// Whether the lock is held and how many tasks wait for it.
    ///
    /// ```
    /// let s = anyio::sync::Lock::new().statistics();
    /// assert!(!s.locked && s.owner.is_none() && s.tasks_waiting == 0);
    /// ```
    pub fn statistics(&self) -> LockStatistics {
        let owner = TaskId::from_raw(self.owner.load(Ordering::Acquire));
        LockStatistics { locked: self.is_locked(), owner, tasks_waiting: self.permits.waiting() }
    }
}

/// The future returned by [`Lock::acquire`].
#[must_use = "futures do nothing unless polled"]
pub struct LockAcquire<'a> {
    lock: &'a Lock,
    inner: AcquirePermit<'a>,
}

impl fmt::Debug for LockAcquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockAcquire").finish_non_exhaustive()
    }
}

impl<'a> Future for LockAcquire<'a> {
    type Output = Result<LockGuard<'a>, Cancelled>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let lock = self.lock;
        // The owner is whichever task polls the acquire to completion.
        Pin::new(&mut self.inner).poll(cx).map_ok(|()| lock.guard(current_task_id()))
    }
}

/// Holds a [`Lock`]; dropping it releases the lock to the oldest waiter.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard")
    }
}

impl LockGuard<'_> {
    pub(crate) fn belongs_to(&self, lock: &Lock) -> bool {
        std::ptr::eq(self.lock, lock)
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.owner.store(0, Ordering::Release);
        self.lock.permits.release();
    }
}
