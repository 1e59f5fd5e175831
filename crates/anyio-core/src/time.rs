//! Sleeping and the runtime's clock. Deadlines are [`Instant`]s of the standard library's
//! monotonic clock, as the backends' timers use.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

#[doc(no_inline)]
pub use std::time::Instant;

use crate::cancel::current::{check_current, register_current_after_check};
use crate::cancel::node::WaitRegistration;
use crate::error::Cancelled;
use crate::rt::{self, Timer};

/// The runtime's monotonic clock (tokio's paused test clock included): the clock deadlines are
/// measured on.
///
/// # Panics
///
/// Panics with a message naming the fix if no runtime can be found.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let t0 = anyio::time::current_time();
/// assert!(anyio::time::current_time() >= t0);
/// # });
/// ```
pub fn current_time() -> Instant {
    rt::now()
}

/// Sleeps for `duration`. A checkpoint: fails with [`Cancelled`] at once if the enclosing scope
/// is cancelled, and as soon as it becomes cancelled while sleeping. `sleep(Duration::ZERO)`
/// is exactly a [`checkpoint`](crate::lowlevel::checkpoint). A duration too large for the clock sleeps
/// forever (until cancelled).
///
/// # Cancel safety
///
/// Cancel safe: cancelling it only ends the sleep early.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// anyio::sleep(std::time::Duration::from_millis(1)).await.unwrap();
/// # });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep::new(Target::After(duration))
}

/// Sleeps until the runtime's clock reaches `deadline`; a deadline in the past is a
/// checkpoint. See [`sleep`].
///
/// # Cancel safety
///
/// Cancel safe: cancelling it only ends the sleep early.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// let at = anyio::time::current_time() + Duration::from_millis(1);
/// anyio::time::sleep_until(at).await.unwrap();
/// assert!(anyio::time::current_time() >= at);
/// # });
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(Target::At(deadline))
}

/// Sleeps until the enclosing scope is cancelled; never returns `Ok`.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// use anyio::{move_on_after, Cancelled, time::sleep_forever};
/// let r = move_on_after(Duration::from_millis(1), async {
///     sleep_forever().await?;
///     Ok::<(), Cancelled>(())
/// })
/// .await;
/// assert_eq!(r, Ok(None));
/// # });
/// ```
pub fn sleep_forever() -> SleepForever {
    SleepForever { inner: Sleep::new(Target::Forever) }
}

#[derive(Clone, Copy, Debug)]
enum Target {
    After(Duration),
    At(Instant),
    Forever,
}

/// The future returned by [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    target: Target,
    /// `None` until resolved on first poll; `Some(None)` for "forever".
    deadline: Option<Option<Instant>>,
    timer: Option<Pin<Box<dyn Timer>>>,
    yielded: bool,
    reg: WaitRegistration,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("target", &self.target).finish_non_exhaustive()
    }
}

impl Sleep {
    fn new(target: Target) -> Self {
        Self { target, deadline: None, timer: None, yielded: false, reg: WaitRegistration::new() }
    }
}

impl Future for Sleep {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let deadline = match this.deadline {
            Some(d) => d,
            None => {
                let d = match this.target {
                    Target::Forever => None,
                    Target::At(at) => Some(at),
                    Target::After(d) => {
                        let now = rt::now();
                        // A zero sleep is due now. A duration too large for the clock is forever.
                        if d.is_zero() {
                            Some(now)
                        } else {
                            now.checked_add(d)
                        }
                    }
                };
                this.deadline = Some(d);
                d
            }
        };
        if let Some(at) = deadline {
            if this.timer.is_none() && (this.yielded || at <= rt::now()) {
                // Already due: exactly a checkpoint (yield once, then check cancellation).
                if !this.yielded {
                    this.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                return Poll::Ready(check_current());
            }
        }
        if let Err(c) = check_current() {
            this.reg.clear();
            return Poll::Ready(Err(c));
        }
        if let Some(at) = deadline {
            let timer = match this.timer.as_mut() {
                Some(t) => t,
                None => this.timer.insert(rt::with_current(|rt| rt.timer(at))),
            };
            if timer.as_mut().poll_expired(cx).is_ready() {
                this.reg.clear();
                return Poll::Ready(Ok(()));
            }
        }
        if let Err(c) = register_current_after_check(&mut this.reg, cx.waker()) {
            this.reg.clear();
            return Poll::Ready(Err(c));
        }
        Poll::Pending
    }
}

/// The future returned by [`sleep_forever`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct SleepForever {
    inner: Sleep,
}

impl Future for SleepForever {
    type Output = Result<Infallible, Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(Err(c)) => Poll::Ready(Err(c)),
            Poll::Ready(Ok(())) => unreachable!("sleeping forever never completes"),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Converts a number of seconds, as AnyIO takes timeouts, into a [`Duration`] for this crate's
/// timeout functions. Infinity means "no deadline" and becomes [`Duration::MAX`], which every
/// timeout function treats as no deadline at all.
///
/// # Errors
///
/// [`InvalidDuration`] for a negative number or NaN: there is no such timeout, and silently
/// treating it as zero or forever would hide a bug.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use anyio::time::seconds;
///
/// assert_eq!(seconds(1.5).unwrap(), Duration::from_millis(1500));
/// assert_eq!(seconds(f64::INFINITY).unwrap(), Duration::MAX);
/// assert!(seconds(-1.0).is_err());
/// assert!(seconds(f64::NAN).is_err());
/// ```
pub fn seconds(secs: f64) -> Result<Duration, InvalidDuration> {
    if secs.is_nan() || secs < 0.0 {
        return Err(InvalidDuration { secs });
    }
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// The error of [`seconds`]: the number was negative or NaN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InvalidDuration {
    secs: f64,
}

impl fmt::Display for InvalidDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid timeout {} s: a timeout must be zero or more seconds (use f64::INFINITY for no deadline)",
            self.secs
        )
    }
}

impl std::error::Error for InvalidDuration {}
