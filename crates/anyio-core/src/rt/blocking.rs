//! Running a blocking call on the current runtime's blocking pool while the task waits,
//! cancellably: the body of name resolution. (`to_thread::run_sync` runs on anyio's own
//! pool instead, whose behaviour is the same on every backend.)
//!
//! The result travels back through the one-shot cell `to_thread` uses too (`thread::Shared`),
//! so nothing here knows which runtime runs the pool. A cancelled wait abandons the call,
//! which runs to its end on the pool; its result is then dropped there. That is AnyIO's `to_thread.run_sync` with
//! `abandon_on_cancel=True` (what AnyIO uses for `getaddrinfo`): a thread cannot be
//! interrupted, and waiting for it would make cancellation only as prompt as the call.

use std::any::Any;
use std::future::poll_fn;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Poll;

use super::BlockingJob;
use crate::cancel::current::{check_current, register_current};
use crate::cancel::node::WaitRegistration;
use crate::error::Cancelled;
use crate::thread::{Completer, Outcome, Shared};

/// Why [`run_blocking`] returned without the closure's value.
#[derive(Debug)]
pub(crate) enum BlockingError {
    /// The waiting task was cancelled. The closure keeps running if it started; its result
    /// is dropped.
    Cancelled(Cancelled),
    /// The closure never ran: the runtime could not start it (no thread, say), or dropped it
    /// unrun (it was shutting down).
    NotRun(io::Error),
    /// The closure panicked; the payload, for the caller to resume or report.
    Panicked(Box<dyn Any + Send>),
}

/// Runs `f` on the current runtime's blocking pool ([`Runtime::spawn_blocking`]) and waits for
/// its value, cancellably.
///
/// Checks cancellation first (a cancelled task starts nothing), then waits registered on the
/// current cancel scope: a cancellation ends the wait with [`BlockingError::Cancelled`] at
/// once, abandoning `f` (see the module documentation). A panic in `f` is caught on the pool
/// thread and returned as [`BlockingError::Panicked`]; a job the runtime could not start or
/// dropped unrun is [`BlockingError::NotRun`].
///
/// # Panics
///
/// With [`NO_RUNTIME`](super::NO_RUNTIME) when no runtime can be found.
///
/// [`Runtime::spawn_blocking`]: super::Runtime::spawn_blocking
pub(crate) async fn run_blocking<T, F>(f: F) -> Result<T, BlockingError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    check_current().map_err(BlockingError::Cancelled)?;
    let rx: Arc<Shared<Outcome<T>>> = Shared::new();
    // Completes the cell empty if the runtime drops the job unrun, so the wait never hangs.
    let tx = Completer(Some(rx.clone()));
    // The closure is unwind-safe to the caller: its state is dropped on the pool thread, and
    // only the payload comes back.
    let job: BlockingJob = Box::new(move || tx.complete(catch_unwind(AssertUnwindSafe(f))));
    super::with_current(|rt| rt.spawn_blocking(job)).map_err(BlockingError::NotRun)?;
    let mut reg = WaitRegistration::new();
    poll_fn(|cx| {
        // The outcome first: a call that finished is not thrown away for a late cancellation.
        if let Poll::Ready(out) = rx.poll(cx) {
            return Poll::Ready(match out {
                Some(Ok(v)) => Ok(v),
                Some(Err(payload)) => Err(BlockingError::Panicked(payload)),
                None => Err(BlockingError::NotRun(io::Error::other(
                    "the runtime dropped a blocking call without running it (was it shutting down?)",
                ))),
            });
        }
        register_current(&mut reg, cx.waker()).map_err(BlockingError::Cancelled)?;
        Poll::Pending
    })
    .await
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::__doc_block_on as block_on;
    use crate::cancel::CancelScope;
    use crate::rt::{self, BoxTask, Runtime, Timer};

    /// The cancellation, for its scope to catch; anything else is reported as a value.
    fn expect_cancelled<T>(res: Result<T, BlockingError>) -> Result<String, Cancelled> {
        match res {
            Err(BlockingError::Cancelled(c)) => Err(c),
            Ok(_) => Ok("a value".into()),
            Err(e) => Ok(format!("{e:?}")),
        }
    }

    /// A hang check, not a timing one: 5 s, or what `ANYIO_TEST_GUARD_SECS` says (CI's valgrind
    /// run, where printing a panic's backtrace alone can take seconds).
    fn hang_bound() -> Duration {
        std::env::var("ANYIO_TEST_GUARD_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(5), Duration::from_secs)
    }

    #[test]
    fn the_value_comes_back_from_a_pool_thread() {
        let (value, thread) = block_on(run_blocking(|| (42, std::thread::current().id()))).unwrap();
        assert_eq!(value, 42);
        assert_ne!(thread, std::thread::current().id(), "the closure ran off the task's thread");
    }

    #[test]
    fn a_panic_in_the_closure_is_an_error_not_a_hang() {
        let started = Instant::now();
        let err = block_on(run_blocking(|| -> u8 { panic!("boom in the pool") })).unwrap_err();
        match err {
            BlockingError::Panicked(p) => assert_eq!(p.downcast_ref::<&str>(), Some(&"boom in the pool")),
            other => panic!("expected Panicked, got {other:?}"),
        }
        assert!(started.elapsed() < hang_bound());
    }

    #[test]
    fn a_cancelled_wait_returns_at_once_and_the_abandoned_result_is_dropped() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let d = dropped.clone();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let started = Instant::now();
        let out = block_on(async move {
            let scope = CancelScope::new();
            let handle = scope.clone();
            let call = run_blocking(move || {
                // Blocks until the test releases it, long after the wait was cancelled (or, if
                // cancellation does not end the wait, until the timeout fails the test). Twice
                // the hang bound, so that under valgrind it is still blocked when released.
                let _ = release_rx.recv_timeout(2 * hang_bound());
                Flag(d)
            });
            // Cancel from a thread while the call is blocked, so the wait must be woken.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                handle.cancel();
            });
            scope.run(async { expect_cancelled(call.await) }).await
        });
        assert!(started.elapsed() < hang_bound(), "the cancelled wait returned promptly");
        assert!(matches!(out, Ok(None)), "the scope caught its cancellation: {out:?}");
        assert!(!dropped.load(Ordering::SeqCst), "the abandoned call is still running");
        // The call may have stopped waiting already (a machine slower than the bound): then
        // nobody receives, and that is fine.
        let _ = release_tx.send(());
        // Only "never" is a failure here, not "slow": under valgrind the call's thread competes
        // with every other test's threads for the one that runs at a time.
        let deadline = Instant::now() + 2 * hang_bound();
        while !dropped.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the abandoned result was never dropped");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_already_cancelled_task_starts_nothing() {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let out = block_on(async move {
            let scope = CancelScope::new();
            scope.cancel();
            scope.run(async move { expect_cancelled(run_blocking(move || r.store(true, Ordering::SeqCst)).await) }).await
        });
        assert!(matches!(out, Ok(None)), "{out:?}");
        std::thread::sleep(Duration::from_millis(20));
        assert!(!ran.load(Ordering::SeqCst));
    }

    /// A runtime whose blocking pool refuses or drops every job.
    #[derive(Debug)]
    struct BrokenPool {
        refuse: bool,
    }

    impl Runtime for BrokenPool {
        fn name(&self) -> &'static str {
            "broken-pool"
        }
        fn spawn(&self, task: BoxTask) {
            drop(task);
        }
        fn spawn_blocking(&self, job: BlockingJob) -> io::Result<()> {
            if self.refuse {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "no thread for you"));
            }
            drop(job); // as a runtime that is shutting down does
            Ok(())
        }
        fn now(&self) -> Instant {
            Instant::now()
        }
        fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
            rt::thread_timer(deadline)
        }
    }

    #[test]
    fn a_job_the_runtime_cannot_start_or_drops_unrun_is_an_error_not_a_panic_or_hang() {
        for refuse in [true, false] {
            let err = block_on(async move {
                let _rt = rt::enter(Arc::new(BrokenPool { refuse }));
                run_blocking(|| 1).await
            })
            .unwrap_err();
            match err {
                BlockingError::NotRun(e) if refuse => assert_eq!(e.to_string(), "no thread for you"),
                BlockingError::NotRun(e) => assert!(e.to_string().contains("dropped"), "{e}"),
                other => panic!("expected NotRun, got {other:?}"),
            }
        }
    }
}
