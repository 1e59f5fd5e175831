//! `wait_all_tasks_blocked` (trio's, and AnyIO's `anyio.wait_all_tasks_blocked`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::monitor::{self, Monitor};
use crate::cancel::current::register_current;
use crate::cancel::node::WaitRegistration;
use crate::error::{AnyError, AsCancelled, Cancelled};

/// Waits until every other task of the run is blocked, then `Ok` (AnyIO's
/// `wait_all_tasks_blocked()`; trio's with no cushion). See [`wait_all_tasks_blocked_for`].
///
/// # Cancel safety
///
/// Cancel safe: a cancelled wait leaves nothing behind.
///
/// # Examples
///
/// ```
/// use anyio::testing::wait_all_tasks_blocked;
/// # let options = anyio::RunOptions::new().track_blocked(true);
/// # anyio::run_with(anyio::Backend::default_backend(), options, async {
/// let event = std::sync::Arc::new(anyio::sync::Event::new());
/// anyio::task::task_group(|tg| async move {
///     let e = event.clone();
///     tg.spawn(async move {
///         e.wait().await?;
///         Ok::<(), anyio::AnyError>(())
///     });
///     // The child has run up to its wait: it is blocked.
///     wait_all_tasks_blocked().await?;
///     event.set();
///     Ok::<(), anyio::AnyError>(())
/// })
/// .await
/// .unwrap();
/// # }).unwrap();
/// ```
pub fn wait_all_tasks_blocked() -> WaitAllTasksBlocked {
    wait_all_tasks_blocked_for(Duration::ZERO)
}

/// Waits until every task of the run but the caller has been blocked for `cushion` of real
/// time: none runnable, no worker-thread job, DNS lookup or `from_thread` call in flight, no
/// socket an operation waits on ready, no timer due (trio's `wait_all_tasks_blocked(cushion)`).
///
/// When several tasks wait, those with the smallest cushion wake together, the others wait
/// for the next time everything is blocked. While anyone waits here, a [`MockClock`]'s
/// autojump holds off (as in trio).
///
/// Needs a run that tracks blocked tasks: every `#[anyio::test]`, or `anyio::run_with` with
/// `RunOptions::track_blocked(true)` or a clock.
///
/// [`MockClock`]: super::MockClock
///
/// # Errors
///
/// [`WaitBlockedError::NotTracking`] in a run that does not track blocked tasks;
/// [`WaitBlockedError::Cancelled`] when the caller's scope is cancelled.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # anyio::run_with(anyio::Backend::default_backend(), anyio::RunOptions::new().track_blocked(true), async {
/// anyio::testing::wait_all_tasks_blocked_for(Duration::from_millis(1)).await.unwrap();
/// # }).unwrap();
/// ```
pub fn wait_all_tasks_blocked_for(cushion: Duration) -> WaitAllTasksBlocked {
    WaitAllTasksBlocked { cushion, monitor: None, key: None, reg: WaitRegistration::new() }
}

/// The future of [`wait_all_tasks_blocked`] and [`wait_all_tasks_blocked_for`].
#[must_use = "futures do nothing unless polled"]
pub struct WaitAllTasksBlocked {
    cushion: Duration,
    monitor: Option<Arc<Monitor>>,
    key: Option<(Duration, u64)>,
    reg: WaitRegistration,
}

impl fmt::Debug for WaitAllTasksBlocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitAllTasksBlocked").field("cushion", &self.cushion).finish_non_exhaustive()
    }
}

impl WaitAllTasksBlocked {
    fn leave(&mut self) {
        if let (Some(m), Some(key)) = (&self.monitor, self.key.take()) {
            m.remove_waiter(key);
        }
        self.reg.clear();
    }
}

impl Future for WaitAllTasksBlocked {
    type Output = Result<(), WaitBlockedError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let monitor = match &this.monitor {
            Some(m) => m.clone(),
            None => match monitor::current() {
                Some(m) => this.monitor.insert(m).clone(),
                None => return Poll::Ready(Err(WaitBlockedError::NotTracking)),
            },
        };
        if let Err(c) = register_current(&mut this.reg, cx.waker()) {
            this.leave();
            return Poll::Ready(Err(WaitBlockedError::Cancelled(c)));
        }
        match this.key {
            None => this.key = Some(monitor.add_waiter(this.cushion, cx.waker())),
            Some(key) => {
                if !monitor.poll_waiter(key, cx.waker()) {
                    this.key = None;
                    this.reg.clear();
                    return Poll::Ready(Ok(()));
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for WaitAllTasksBlocked {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Why [`wait_all_tasks_blocked`] failed.
///
/// # Examples
///
/// ```
/// use anyio::testing::{wait_all_tasks_blocked, WaitBlockedError};
/// // A plain run does not track blocked tasks.
/// let r = anyio::run(wait_all_tasks_blocked());
/// assert!(matches!(r, Err(WaitBlockedError::NotTracking)));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum WaitBlockedError {
    /// The run does not track blocked tasks.
    NotTracking,
    /// The caller's scope was cancelled while it waited.
    Cancelled(Cancelled),
}

impl fmt::Display for WaitBlockedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotTracking => f.write_str(
                "wait_all_tasks_blocked needs a run that tracks blocked tasks: use #[anyio::test], or \
                 anyio::run_with with RunOptions::new().track_blocked(true) or a MockClock",
            ),
            Self::Cancelled(c) => fmt::Display::fmt(c, f),
        }
    }
}

impl std::error::Error for WaitBlockedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Cancelled(c) => Some(c),
            Self::NotTracking => None,
        }
    }
}

impl From<Cancelled> for WaitBlockedError {
    fn from(c: Cancelled) -> Self {
        Self::Cancelled(c)
    }
}

impl AsCancelled for WaitBlockedError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            Self::Cancelled(c) => Some(c),
            Self::NotTracking => None,
        }
    }
}

impl From<WaitBlockedError> for AnyError {
    fn from(e: WaitBlockedError) -> Self {
        match e {
            WaitBlockedError::Cancelled(c) => AnyError::from(c),
            other => AnyError::other(other),
        }
    }
}
