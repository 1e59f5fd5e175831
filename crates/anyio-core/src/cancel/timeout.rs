//! `move_on_after`, `move_on_at`, `fail_after`, `fail_at`: cancel scopes with a deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use super::scope::Scoped;
use crate::error::{AsCancelled, TimeoutError};

/// Runs `body` with a deadline `delay` after its first poll; when the deadline passes, the
/// body's checkpoints fail and the scope catches the cancellation: the output is `Ok(None)`.
///
/// A body that finishes with `Ok(v)` gives `Ok(Some(v))`, even if the deadline passed while it
/// was finishing (a value the body produced is never discarded). A `delay` too large to add to
/// the clock means no deadline.
///
/// # Cancel safety
///
/// Same as [`CancelScope::run`](crate::cancel::CancelScope::run): cooperative; the body is
/// dropped inside the scope if the returned future is dropped early.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// use anyio::{move_on_after, sleep, Cancelled};
///
/// let r = move_on_after(Duration::from_millis(10), async {
///     sleep(Duration::from_secs(3600)).await?;
///     Ok::<_, Cancelled>("slept an hour")
/// })
/// .await;
/// assert_eq!(r, Ok(None));
/// # });
/// ```
pub fn move_on_after<F, T, E>(delay: Duration, body: F) -> Scoped<F>
where
    F: Future<Output = Result<T, E>>,
    E: AsCancelled,
{
    Scoped::private(|t| t.set_timeout(delay), body)
}

/// Like [`move_on_after`] with an absolute deadline on the runtime's clock
/// ([`current_time`](crate::time::current_time)). A deadline already past makes the body's first
/// checkpoint fail.
///
/// # Cancel safety
///
/// Same as [`CancelScope::run`](crate::cancel::CancelScope::run).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{Cancelled, cancel::move_on_at, lowlevel::checkpoint, time::current_time};
///
/// let r = move_on_at(current_time(), async { checkpoint().await?; Ok::<_, Cancelled>(1) }).await;
/// assert_eq!(r, Ok(None));
/// # });
/// ```
pub fn move_on_at<F, T, E>(deadline: Instant, body: F) -> Scoped<F>
where
    F: Future<Output = Result<T, E>>,
    E: AsCancelled,
{
    Scoped::private(|t| t.set_deadline(Some(deadline)), body)
}

/// Runs `body` with a deadline `delay` after its first poll and fails with
/// [`TimeoutError`] (converted into the body's error type) if the deadline cancels it.
///
/// A body that finishes with `Ok(v)` gives `Ok(v)` even if the deadline passed meanwhile. The
/// cancellation of an enclosing scope propagates unchanged (it is not a timeout).
///
/// # Cancel safety
///
/// Same as [`CancelScope::run`](crate::cancel::CancelScope::run).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// use anyio::{fail_after, sleep, AnyError};
///
/// let r: Result<(), AnyError> = fail_after(Duration::from_millis(10), async {
///     sleep(Duration::from_secs(3600)).await?;
///     Ok(())
/// })
/// .await;
/// assert!(r.unwrap_err().is_timeout());
/// # });
/// ```
pub fn fail_after<F, T, E>(delay: Duration, body: F) -> FailAfter<F>
where
    F: Future<Output = Result<T, E>>,
    E: AsCancelled + From<TimeoutError>,
{
    FailAfter { inner: Scoped::private(|t| t.set_timeout(delay), body), after: Some(delay) }
}

/// Like [`fail_after`] with an absolute deadline on the runtime's clock.
///
/// # Cancel safety
///
/// Same as [`CancelScope::run`](crate::cancel::CancelScope::run).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{AnyError, cancel::fail_at, lowlevel::checkpoint, time::current_time};
///
/// let r: Result<(), AnyError> = fail_at(current_time(), async { checkpoint().await?; Ok(()) }).await;
/// assert!(r.unwrap_err().is_timeout());
/// # });
/// ```
pub fn fail_at<F, T, E>(deadline: Instant, body: F) -> FailAfter<F>
where
    F: Future<Output = Result<T, E>>,
    E: AsCancelled + From<TimeoutError>,
{
    FailAfter { inner: Scoped::private(|t| t.set_deadline(Some(deadline)), body), after: None }
}

pin_project! {
    /// The future returned by [`fail_after`] and [`fail_at`].
    #[must_use = "futures do nothing unless polled"]
    pub struct FailAfter<F> {
        #[pin]
        inner: Scoped<F>,
        after: Option<Duration>,
    }
}

impl<F> fmt::Debug for FailAfter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailAfter").field("after", &self.after).finish_non_exhaustive()
    }
}

impl<F, T, E> Future for FailAfter<F>
where
    F: Future<Output = Result<T, E>>,
    E: AsCancelled + From<TimeoutError>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let after = *this.after;
        this.inner.poll(cx).map(|r| match r {
            Ok(Some(v)) => Ok(v),
            // The scope caught its own cancellation, and only its deadline can cancel it.
            Ok(None) => Err(E::from(TimeoutError { after })),
            Err(e) => Err(e),
        })
    }
}
