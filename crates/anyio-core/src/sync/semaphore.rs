//! `Semaphore`: a FIFO-fair counting semaphore with an optional maximum.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::permits::{AcquirePermit, Permits};
use crate::error::{Cancelled, WouldBlock};

/// A counting semaphore (AnyIO's `Semaphore`): `acquire` takes one of the free permits or waits
/// for one, in FIFO order; the [`SemaphorePermit`] gives it back when dropped. An optional
/// maximum bounds explicit [`release`](Self::release)s. `Send + Sync`.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let sem = anyio::sync::Semaphore::new(2);
/// let a = sem.acquire().await.unwrap();
/// let b = sem.acquire().await.unwrap();
/// assert_eq!(sem.value(), 0);
/// drop((a, b));
/// assert_eq!(sem.value(), 2);
/// # });
/// ```
pub struct Semaphore {
    permits: Permits,
    max: Option<usize>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("value", &self.value()).field("max", &self.max).finish()
    }
}

/// What [`Semaphore::statistics`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemaphoreStatistics {
    /// How many tasks wait for a permit.
    pub tasks_waiting: usize,
}

/// A semaphore was given an impossible value or released past its maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SemaphoreError {
    /// `initial` was larger than `max`.
    InitialAboveMax {
        /// The initial value asked for.
        initial: usize,
        /// The maximum asked for.
        max: usize,
    },
    /// A release would have made more permits free than the maximum.
    ReleasedTooManyTimes {
        /// The semaphore's maximum.
        max: usize,
    },
}

impl fmt::Display for SemaphoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SemaphoreError::InitialAboveMax { initial, max } => {
                write!(f, "semaphore initial value {initial} is above its maximum {max}")
            }
            SemaphoreError::ReleasedTooManyTimes { max } => write!(
                f,
                "semaphore released too many times: it would hold more than its maximum of {max} permits"
            ),
        }
    }
}

impl StdError for SemaphoreError {}

impl Semaphore {
    /// A semaphore with `initial` free permits and no maximum.
    ///
    /// ```
    /// assert_eq!(anyio::sync::Semaphore::new(3).value(), 3);
    /// ```
    pub fn new(initial: usize) -> Self {
        Self { permits: Permits::new(initial), max: None }
    }

    /// A semaphore with `initial` free permits that never holds more than `max`.
    ///
    /// # Errors
    ///
    /// [`SemaphoreError::InitialAboveMax`] if `initial > max`.
    ///
    /// ```
    /// assert!(anyio::sync::Semaphore::with_max(1, 2).is_ok());
    /// assert!(anyio::sync::Semaphore::with_max(3, 2).is_err());
    /// ```
    pub fn with_max(initial: usize, max: usize) -> Result<Self, SemaphoreError> {
        if initial > max {
            return Err(SemaphoreError::InitialAboveMax { initial, max });
        }
        Ok(Self { permits: Permits::new(initial), max: Some(max) })
    }

    /// Waits for a free permit.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, and fair: a cancelled waiter leaves the queue having taken nothing; a permit
    /// handed to it at that moment is returned anyway; a future dropped after a permit was
    /// handed to it passes the permit on to the next waiter.
    ///
    /// ```
    /// # anyio::run(async {
    /// let sem = anyio::sync::Semaphore::new(1);
    /// let p = sem.acquire().await.unwrap();
    /// drop(p);
    /// # });
    /// ```
    pub fn acquire(&self) -> SemaphoreAcquire<'_> {
        SemaphoreAcquire { sem: self, inner: self.permits.acquire() }
    }

    /// Takes a free permit if there is one and nobody is waiting.
    ///
    /// # Errors
    ///
    /// [`WouldBlock`] if no permit is free or tasks are queued (FIFO fairness).
    ///
    /// ```
    /// let sem = anyio::sync::Semaphore::new(1);
    /// let p = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_err());
    /// # drop(p);
    /// ```
    #[doc(alias = "acquire_nowait")]
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, WouldBlock> {
        if self.permits.try_acquire() {
            Ok(SemaphorePermit { sem: self })
        } else {
            Err(WouldBlock)
        }
    }

    /// Adds a permit (to the oldest waiter if any): AnyIO's explicit `release`, for semaphores
    /// used as counters. A permit from [`SemaphorePermit::forget`] is given back this way.
    ///
    /// # Errors
    ///
    /// [`SemaphoreError::ReleasedTooManyTimes`] if the semaphore would then hold more free
    /// permits than its maximum; nothing changes.
    ///
    /// ```
    /// let sem = anyio::sync::Semaphore::with_max(0, 1).unwrap();
    /// sem.release().unwrap();
    /// assert!(sem.release().is_err());
    /// ```
    pub fn release(&self) -> Result<(), SemaphoreError> {
        let max = self.max.unwrap_or(usize::MAX);
        if self.permits.release_bounded(max) {
            Ok(())
        } else {
            Err(SemaphoreError::ReleasedTooManyTimes { max })
        }
    }

    /// The number of free permits.
    ///
    /// ```
    /// assert_eq!(anyio::sync::Semaphore::new(2).value(), 2);
    /// ```
    pub fn value(&self) -> usize {
        self.permits.available()
    }

    /// The maximum, if one was set.
    ///
    /// ```
    /// assert_eq!(anyio::sync::Semaphore::with_max(0, 4).unwrap().max_value(), Some(4));
    /// ```
    pub fn max_value(&self) -> Option<usize> {
        self.max
    }

    /// How many tasks wait for a permit.
    ///
    /// ```
    /// assert_eq!(anyio::sync::Semaphore::new(1).statistics().tasks_waiting, 0);
    /// ```
    pub fn statistics(&self) -> SemaphoreStatistics {
        SemaphoreStatistics { tasks_waiting: self.permits.waiting() }
    }
}

/// The future returned by [`Semaphore::acquire`].
#[must_use = "futures do nothing unless polled"]
pub struct SemaphoreAcquire<'a> {
    sem: &'a Semaphore,
    inner: AcquirePermit<'a>,
}

impl fmt::Debug for SemaphoreAcquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreAcquire").finish_non_exhaustive()
    }
}

impl<'a> Future for SemaphoreAcquire<'a> {
    type Output = Result<SemaphorePermit<'a>, Cancelled>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let sem = self.sem;
        Pin::new(&mut self.inner).poll(cx).map_ok(|()| SemaphorePermit { sem })
    }
}

/// One permit of a [`Semaphore`]; dropping it gives the permit back (unless explicit
/// [`Semaphore::release`]s already brought the semaphore to its maximum: then it is absorbed,
/// so the count never exceeds the maximum).
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphorePermit")
    }
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken: it is not given back on drop (give it back later with
    /// [`Semaphore::release`]).
    ///
    /// ```
    /// let sem = anyio::sync::Semaphore::new(1);
    /// sem.try_acquire().unwrap().forget();
    /// assert_eq!(sem.value(), 0);
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    #[inline]
    fn drop(&mut self) {
        // Bounded like `release`: if explicit releases already brought the semaphore to its
        // maximum, this permit is absorbed rather than pushing the count past the maximum
        // (AnyIO raises there; a destructor cannot).
        let max = self.sem.max.unwrap_or(usize::MAX);
        let _ = self.sem.permits.release_bounded(max);
    }
}
