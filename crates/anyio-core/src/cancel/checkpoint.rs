//! Checkpoints: the points where cancellation is observed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use super::current::{check_current, with_current};
use crate::error::Cancelled;
use crate::loom::lock;

/// Yields to the scheduler once, then fails if the enclosing cancel scope is cancelled
/// (AnyIO's `lowlevel.checkpoint`, trio's `checkpoint`).
///
/// Yielding first lets other tasks run even in a loop that ignores the error.
///
/// # Cancel safety
///
/// Cancel safe: it has no effect besides yielding.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// anyio::lowlevel::checkpoint().await.unwrap();
/// # });
/// ```
pub fn checkpoint() -> Checkpoint {
    Checkpoint { yielded: false }
}

/// The future returned by [`checkpoint`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Checkpoint {
    yielded: bool,
}

impl Future for Checkpoint {
    type Output = Result<(), Cancelled>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(check_current())
    }
}

/// Fails if the enclosing cancel scope is cancelled, without yielding (AnyIO's
/// `lowlevel.checkpoint_if_cancelled`).
///
/// # Examples
///
/// ```
/// assert!(anyio::lowlevel::checkpoint_if_cancelled().is_ok());
/// ```
#[inline]
pub fn checkpoint_if_cancelled() -> Result<(), Cancelled> {
    check_current()
}

/// Yields to the scheduler once without looking at cancellation (AnyIO's
/// `lowlevel.cancel_shielded_checkpoint`).
///
/// # Cancel safety
///
/// Cancel safe: it has no effect besides yielding.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// anyio::lowlevel::cancel_shielded_checkpoint().await;
/// # });
/// ```
pub fn cancel_shielded_checkpoint() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`cancel_shielded_checkpoint`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The earliest deadline among the enclosing cancel scopes up to the nearest shield, or `None`
/// if none has one. While the enclosing scope is already cancelled this is a time that has
/// passed (trio returns `-inf`), so "time left" computations come out as zero.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// use anyio::{move_on_after, Cancelled, cancel::current_effective_deadline};
///
/// assert_eq!(current_effective_deadline(), None);
/// move_on_after(Duration::from_secs(5), async {
///     assert!(current_effective_deadline().is_some());
///     Ok::<_, Cancelled>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub fn current_effective_deadline() -> Option<Instant> {
    with_current(|node| {
        let node = node?;
        if node.is_effectively_cancelled() {
            let now = crate::rt::try_current().map_or_else(Instant::now, |rt| rt.now());
            return Some(now);
        }
        let mut earliest: Option<Instant> = None;
        let mut n = node;
        loop {
            if let Some(d) = lock(&n.timing).deadline() {
                earliest = Some(earliest.map_or(d, |e| e.min(d)));
            }
            if n.shield() {
                break;
            }
            match n.parent() {
                Some(p) => n = p,
                None => break,
            }
        }
        earliest
    })
}
