//! Making foreign futures (not from this library) cancellable by the enclosing scope.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::current::{check_current, current_arc};
use super::node::WaitRegistration;
use crate::error::Cancelled;

/// Makes `fut` a checkpoint of the enclosing cancel scope: it fails with [`Cancelled`] as soon
/// as the scope is cancelled (waking promptly, from any thread), dropping `fut` at that moment.
///
/// A future that is already complete when the cancellation arrives wins: its value is returned.
/// A future is never started inside an already-cancelled scope.
///
/// # Cancel safety
///
/// Cancelling drops `fut` at its current await point, so `fut`'s own cancel safety applies
/// (e.g. tokio's `read_exact` may have consumed bytes). Library primitives give the stronger
/// "did not happen" guarantee.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// use anyio::{move_on_after, cancel::cancellable};
///
/// // A future that never completes on its own, from some other crate:
/// let foreign = std::future::pending::<()>();
/// let r = move_on_after(Duration::from_millis(10), cancellable(foreign)).await;
/// assert_eq!(r, Ok(None));
/// # });
/// ```
pub fn cancellable<F: Future>(fut: F) -> Cancellable<F> {
    Cancellable { inner: Some(fut), reg: WaitRegistration::new(), started: false }
}

/// Adds [`cancellable`] as a method on every future.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::cancel::CancellableExt;
/// assert_eq!(async { 5 }.cancellable().await, Ok(5));
/// # });
/// ```
pub trait CancellableExt: Future + Sized {
    /// See [`cancellable`].
    fn cancellable(self) -> Cancellable<Self> {
        cancellable(self)
    }
}

impl<F: Future> CancellableExt for F {}

pin_project! {
    /// The future returned by [`cancellable`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Cancellable<F> {
        #[pin]
        inner: Option<F>,
        reg: WaitRegistration,
        started: bool,
    }
}

impl<F> fmt::Debug for Cancellable<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancellable").field("done", &self.inner.is_none()).finish()
    }
}

impl<F: Future> Future for Cancellable<F> {
    type Output = Result<F::Output, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("`Cancellable` polled after completion");
        };
        // Never start foreign work in a cancelled scope...
        if !*this.started {
            *this.started = true;
            if let Err(c) = check_current() {
                this.inner.set(None);
                return Poll::Ready(Err(c));
            }
        }
        // ...but a completed future wins over a cancellation that arrives meanwhile.
        if let Poll::Ready(v) = inner.poll(cx) {
            this.inner.set(None);
            this.reg.clear();
            return Poll::Ready(Ok(v));
        }
        if let Some(node) = current_arc() {
            if let Err(c) = this.reg.register(&node, cx.waker()) {
                this.inner.set(None);
                this.reg.clear();
                return Poll::Ready(Err(c));
            }
        }
        Poll::Pending
    }
}
