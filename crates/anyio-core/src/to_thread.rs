//! Running blocking code on a worker thread while the task waits (AnyIO's `anyio.to_thread`).
//!
//! Jobs run on anyio's own pool of worker threads, the same on every backend: idle workers are
//! reused (the most recently idle first) and exit after 10 seconds without work, and a run
//! ends without waiting for jobs it abandoned. How many jobs run at once is bounded by a
//! [`CapacityLimiter`]: by default the run's own, of 40 tokens
//! ([`current_default_thread_limiter`]).
//!
//! Code on a worker can call back into the run with [`from_thread`](crate::from_thread), and
//! can use the backend's own APIs (on tokio, the runtime's handle is entered).

use std::error::Error as StdError;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use crate::cancel::current::{current_arc, register_current};
use crate::cancel::node::WaitRegistration;
use crate::error::{AsCancelled, Cancelled};
use crate::lowlevel::{checkpoint, RunVar};
use crate::rt::run_state::current_run;
use crate::sync::{CapacityLimiter, CapacityLimiterError};
use crate::thread::{pool, with_worker_ctx, Completer, Outcome, Shared, WorkerCtx};

/// The number of tokens of each run's default thread limiter (AnyIO's default).
pub const DEFAULT_THREAD_LIMIT: usize = 40;

static DEFAULT_LIMITER: RunVar<Arc<CapacityLimiter>> = RunVar::new("anyio default thread limiter");

/// The limiter [`run_sync`] uses when given none: one per run, of
/// [`DEFAULT_THREAD_LIMIT`] tokens; change its total to allow more or fewer threads.
///
/// # Panics
///
/// Outside any runtime, with the message that names the fix.
///
/// # Examples
///
/// ```
/// anyio::run(async {
///     let limiter = anyio::to_thread::current_default_thread_limiter();
///     assert_eq!(limiter.total_tokens(), 40);
///     limiter.set_total_tokens(8);
///     assert_eq!(anyio::to_thread::current_default_thread_limiter().total_tokens(), 8);
/// });
/// ```
pub fn current_default_thread_limiter() -> Arc<CapacityLimiter> {
    DEFAULT_LIMITER.get_or_init(|| Arc::new(CapacityLimiter::new(DEFAULT_THREAD_LIMIT)))
}

/// How [`run_sync_with`] runs its job.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// let options = anyio::to_thread::RunSyncOptions::new()
///     .abandon_on_cancel(true)
///     .limiter(Arc::new(anyio::sync::CapacityLimiter::new(2)));
/// # drop(options);
/// ```
#[derive(Clone, Debug, Default)]
pub struct RunSyncOptions {
    abandon_on_cancel: bool,
    limiter: Option<Arc<CapacityLimiter>>,
}

impl RunSyncOptions {
    /// Wait for the job whatever happens, with the run's default limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a cancelled wait returns [`Cancelled`] at once, leaving the job to finish on
    /// its thread and its value to be dropped there (`true`), or keeps waiting and returns
    /// the value (`false`, the default; the task's next checkpoint then raises the
    /// cancellation).
    pub fn abandon_on_cancel(mut self, yes: bool) -> Self {
        self.abandon_on_cancel = yes;
        self
    }

    /// The limiter whose token the job holds while its thread runs it.
    pub fn limiter(mut self, limiter: Arc<CapacityLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }
}

/// Why [`run_sync`] returned no value.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunSyncError {
    /// The task was cancelled before the job started (at the first checkpoint or while
    /// waiting for a limiter token), or, with `abandon_on_cancel`, while it ran.
    Cancelled(Cancelled),
    /// The system would not start a worker thread; the job did not run.
    NoThread(io::Error),
}

impl fmt::Display for RunSyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunSyncError::Cancelled(c) => c.fmt(f),
            RunSyncError::NoThread(e) => write!(f, "could not start a worker thread: {e}"),
        }
    }
}

impl StdError for RunSyncError {
    // The cancellation is the source, so that a scope finds it wherever this is wrapped.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RunSyncError::Cancelled(c) => Some(c),
            RunSyncError::NoThread(e) => Some(e),
        }
    }
}

impl AsCancelled for RunSyncError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            RunSyncError::Cancelled(c) => Some(c),
            RunSyncError::NoThread(_) => None,
        }
    }
}

impl From<Cancelled> for RunSyncError {
    fn from(c: Cancelled) -> Self {
        RunSyncError::Cancelled(c)
    }
}

impl From<RunSyncError> for crate::error::AnyError {
    fn from(e: RunSyncError) -> Self {
        match e {
            RunSyncError::Cancelled(c) => c.into(),
            other => crate::error::AnyError::other(other),
        }
    }
}

/// Runs the blocking function `f` on a worker thread and waits for its value (AnyIO's
/// `to_thread.run_sync`), with the run's default limiter, never abandoning it.
///
/// A checkpoint comes first. A panic in `f` is resumed in the caller.
///
/// # Errors
///
/// [`RunSyncError::Cancelled`] when the task is cancelled before `f` starts;
/// [`RunSyncError::NoThread`] when no thread could be started.
///
/// # Cancel safety
///
/// Once `f` has started, cancellation does not interrupt the wait (a thread cannot be
/// interrupted): `f`'s value is returned, never thrown away, and the task's next checkpoint
/// raises the cancellation. Dropping the future abandons `f`, whose value is then dropped on
/// its thread. See [`run_sync_with`] to return at once instead.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let sum = anyio::to_thread::run_sync(|| (1..=100u32).sum::<u32>()).await.unwrap();
/// assert_eq!(sum, 5050);
/// # });
/// ```
pub async fn run_sync<T, F>(f: F) -> Result<T, RunSyncError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    run_sync_with(RunSyncOptions::new(), f).await
}

/// [`run_sync`] with options: `abandon_on_cancel` and the limiter.
///
/// The job holds a token of the limiter until its thread has really finished it, even when
/// abandoned, so abandoned jobs still count against the limit (trio's rule; AnyIO releases the
/// token of an abandoned job at once, which lets more threads run than the limit says).
///
/// # Errors
///
/// As [`run_sync`]; with `abandon_on_cancel`, also [`RunSyncError::Cancelled`] when the task
/// is cancelled while `f` runs.
///
/// # Cancel safety
///
/// With `abandon_on_cancel`, cancel safe in the sense that the call returns at once; the job
/// runs on to its end and its value is dropped on its thread. Without, as [`run_sync`].
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// use anyio::to_thread::{run_sync_with, RunSyncOptions};
/// let r = anyio::move_on_after(Duration::from_millis(10), async {
///     run_sync_with(RunSyncOptions::new().abandon_on_cancel(true), || {
///         std::thread::sleep(Duration::from_millis(200));
///     })
///     .await
/// })
/// .await;
/// assert!(r.unwrap().is_none(), "the timeout cancelled the wait at once");
/// # });
/// ```
pub async fn run_sync_with<T, F>(options: RunSyncOptions, f: F) -> Result<T, RunSyncError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    checkpoint().await?;
    let limiter = options.limiter.unwrap_or_else(current_default_thread_limiter);
    let token = match limiter.acquire_owned().await {
        Ok(t) => t,
        Err(CapacityLimiterError::Cancelled(c)) => return Err(c.into()),
        Err(other) => unreachable!("an anonymous borrower cannot already hold a token: {other}"),
    };
    let run = current_run();
    let abandoned = Arc::new(AtomicBool::new(false));
    let ctx = WorkerCtx { run: run.clone(), node: current_arc(), abandoned: abandoned.clone() };
    let shared: Arc<Shared<Outcome<T>>> = Shared::new();
    let completer = Completer(Some(shared.clone()));
    let job = Box::new(move || {
        let mut f = Some(f);
        let mut out = None;
        with_worker_ctx(ctx, || {
            run.rt.enter_thread(&mut || {
                let f = f.take().expect("called once");
                out = Some(catch_unwind(AssertUnwindSafe(f)));
            })
        });
        // The token goes back once the thread is done with the job, before its value is
        // delivered (so a caller that runs again finds it free).
        drop(token);
        match out {
            Some(outcome) => completer.complete(outcome),
            None => drop(completer),
        }
    });
    pool::submit(job).map_err(RunSyncError::NoThread)?;
    // Dropped unfinished (by a `select!`, say): the job is abandoned.
    let _abandon_on_drop = AbandonOnDrop(&abandoned);
    let mut reg = WaitRegistration::new();
    let outcome = poll_fn(|cx| {
        if let Poll::Ready(out) = shared.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if options.abandon_on_cancel {
            if let Err(c) = register_current(&mut reg, cx.waker()) {
                return Poll::Ready(Err(c));
            }
        }
        Poll::Pending
    })
    .await?;
    std::mem::forget(_abandon_on_drop);
    match outcome {
        Some(Ok(v)) => Ok(v),
        Some(Err(panic)) => resume_unwind(panic),
        None => {
            Err(RunSyncError::NoThread(io::Error::other("the worker dropped the job without running it")))
        }
    }
}

/// Marks a job abandoned when its waiting future ends without its value.
struct AbandonOnDrop<'a>(&'a AtomicBool);

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}
