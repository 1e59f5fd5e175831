//! One Ctrl+C always works, and cleanup runs: the first SIGINT cancels the main task's scope;
//! a second one, during that cleanup, ends the process as SIGINT always did.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::{registry, SignalReceiver};
use crate::cancel::scope::InScope;
use crate::cancel::CancelScope;
use crate::error::AnyError;

/// The outcome of an [`interruptible`] body that a SIGINT (Ctrl+C) cancelled.
///
/// `#[anyio::main]` reports it and exits with status 130, as a shell does for a process that
/// SIGINT ended.
///
/// # Examples
///
/// ```
/// let i = anyio::signal::Interrupted::new();
/// assert_eq!(i.to_string(), "interrupted by SIGINT (Ctrl+C)");
/// assert_eq!(anyio::signal::Interrupted::EXIT_STATUS, 130);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Interrupted;

impl Interrupted {
    /// The exit status a shell reports for a process that SIGINT ended (128 + 2).
    pub const EXIT_STATUS: i32 = 130;

    /// The interruption value (for tests and for code that reports one itself).
    pub fn new() -> Self {
        Interrupted
    }
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted by SIGINT (Ctrl+C)")
    }
}

impl StdError for Interrupted {}

impl From<Interrupted> for AnyError {
    fn from(e: Interrupted) -> Self {
        AnyError::other(e)
    }
}

/// Runs `body` so that the first SIGINT (Ctrl+C) cancels it, as trio does for a program's main
/// function: every task under it unwinds through its shielded cleanup, and the result is
/// [`Interrupted`] (the body's own output, which is then just its cancellation, is dropped).
/// From that first SIGINT on, SIGINT has its earlier disposition again, so a second Ctrl+C
/// during a cleanup that hangs ends the process at once.
///
/// `#[anyio::main]` wraps the main function in this; a library's own [`anyio::run`] calls do
/// not, unless asked (`anyio::run_interruptible`). Only a SIGINT with its default disposition
/// when the body starts is caught: if it is ignored (a process started in the background by
/// `nohup`, say) or already has a handler (another library's, or a receiver of yours), nothing
/// is caught here and that handler stays in charge.
///
/// [`anyio::run`]: https://docs.rs/anyio/latest/anyio/fn.run.html
///
/// # Cancel safety
///
/// Dropping the future drops the body inside its scope, and stops catching SIGINT.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::signal::interruptible;
/// // Without a SIGINT, the body's output comes back as it is.
/// assert_eq!(interruptible(async { 7 }).await, Ok(7));
/// # });
/// ```
pub fn interruptible<F: Future>(body: F) -> Interruptible<F> {
    let scope = CancelScope::new();
    let body = scope.run_uncaught(body);
    Interruptible { scope, body, receiver: None, started: false, interrupted: false }
}

pin_project! {
    /// The future returned by [`interruptible`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Interruptible<F> {
        scope: CancelScope,
        #[pin]
        body: InScope<F>,
        receiver: Option<SignalReceiver>,
        started: bool,
        interrupted: bool,
    }
}

impl<F> fmt::Debug for Interruptible<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interruptible")
            .field("catching", &self.receiver.is_some())
            .field("interrupted", &self.interrupted)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Interruptible<F> {
    type Output = Result<F::Output, Interrupted>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if !*this.started {
            *this.started = true;
            let default =
                registry::disposition(libc::SIGINT).map(|d| d.sa_sigaction == libc::SIG_DFL).unwrap_or(false);
            if default {
                // Without a reactor (or descriptors) there is nothing to catch SIGINT with,
                // and the body runs as it would have without us.
                *this.receiver = SignalReceiver::subscribe(&[libc::SIGINT], true).ok();
            }
        }
        if let Some(rx) = this.receiver.as_mut() {
            match rx.poll_receive(cx) {
                Poll::Ready(Ok(_)) => {
                    *this.interrupted = true;
                    this.scope.cancel_with_reason("interrupted by SIGINT (Ctrl+C)");
                    // The earlier disposition comes back: a second SIGINT acts at once.
                    *this.receiver = None;
                }
                // Cancelled from outside (the body sees that too), or the pipe failed: stop
                // catching rather than spin.
                Poll::Ready(Err(_)) => *this.receiver = None,
                Poll::Pending => {}
            }
        }
        match this.body.poll(cx) {
            Poll::Ready(out) => {
                *this.receiver = None;
                Poll::Ready(if *this.interrupted { Err(Interrupted) } else { Ok(out) })
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
