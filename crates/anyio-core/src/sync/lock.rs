//! `Lock`: a FIFO-fair async mutual-exclusion lock with a guard.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::permits::{AcquirePermit, Permits};
use crate::error::{Cancelled, WouldBlock};

/// An async lock (AnyIO's `Lock`): at most one holder at a time, waiters served in FIFO order,
/// released when the [`LockGuard`] drops — so releasing a lock one does not hold cannot even be
/// written. `Send + Sync`: holders and waiters may be on any threads.
///
/// An uncontended `acquire` takes the lock without yielding (AnyIO's `fast_acquire=True`); it
/// still fails at once in a cancelled scope.
///
/// # Examples
///
/// ```
/// # anyio_core::__doc_block_on(async {
/// let lock = anyio_core::Lock::new();
/// {
///     let _guard = lock.acquire().await.unwrap();
///     assert!(lock.locked());
/// }
/// assert!(!lock.locked());
/// # });
/// ```
pub struct Lock {
    permits: Permits,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("locked", &self.locked()).finish()
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
    /// How many tasks wait for it.
    pub tasks_waiting: usize,
}

impl Lock {
    /// A new, unlocked lock.
    ///
    /// ```
    /// assert!(!anyio_core::Lock::new().locked());
    /// ```
    pub fn new() -> Self {
        Self { permits: Permits::new(1) }
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
    /// # anyio_core::__doc_block_on(async {
    /// let lock = anyio_core::Lock::new();
    /// let guard = lock.acquire().await.unwrap();
    /// drop(guard);
    /// # });
    /// ```
    pub fn acquire(&self) -> LockAcquire<'_> {
        LockAcquire { lock: self, inner: self.permits.acquire() }
    }

    /// Takes the lock if it is free and nobody is waiting for it.
    ///
    /// # Errors
    ///
    /// [`WouldBlock`] if the lock is held or tasks are queued for it (FIFO fairness).
    ///
    /// ```
    /// let lock = anyio_core::Lock::new();
    /// let g = lock.try_acquire().unwrap();
    /// assert!(lock.try_acquire().is_err());
    /// drop(g);
    /// ```
    pub fn try_acquire(&self) -> Result<LockGuard<'_>, WouldBlock> {
        if self.permits.try_acquire() {
            Ok(LockGuard { lock: self })
        } else {
            Err(WouldBlock)
        }
    }

    /// Whether someone holds the lock.
    ///
    /// ```
    /// assert!(!anyio_core::Lock::new().locked());
    /// ```
    pub fn locked(&self) -> bool {
        self.permits.available() == 0
    }

    /// Whether the lock is held and how many tasks wait for it.
    ///
    /// ```
    /// let s = anyio_core::Lock::new().statistics();
    /// assert!(!s.locked && s.tasks_waiting == 0);
    /// ```
    pub fn statistics(&self) -> LockStatistics {
        LockStatistics { locked: self.locked(), tasks_waiting: self.permits.waiting() }
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

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let lock = self.lock;
        Pin::new(&mut self.inner).poll(cx).map_ok(|()| LockGuard { lock })
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
    fn drop(&mut self) {
        self.lock.permits.release();
    }
}
