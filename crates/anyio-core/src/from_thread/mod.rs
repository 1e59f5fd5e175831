//! Calling back into a run from a thread (AnyIO's `anyio.from_thread`).
//!
//! From a worker thread of [`to_thread::run_sync`](crate::to_thread::run_sync), [`run`] and
//! [`run_sync`] find the run by themselves, and what they run belongs to the waiting task's
//! cancel scope (cancelling that task cancels it), unless the task abandoned the job. From
//! any other thread, pass an [`EventLoopToken`] taken inside the run with
//! [`current_token`](crate::lowlevel::current_token) to the `_with_token` forms; what they run
//! belongs to no task's scope.
//!
//! These functions block the calling thread until the work is done, so they refuse to run on
//! a thread that polls async tasks (that would stall it, or deadlock): await the code there.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::panic::resume_unwind;
use std::sync::Arc;

mod portal;

pub use portal::{blocking_portal, BlockingPortal, PortalError, PortalFuture, PortalResource};

use crate::cancel::cell::NodeArc;
use crate::error::{AsCancelled, Cancelled};
use crate::lowlevel::{EventLoopToken, RunFinishedError};
use crate::rt::run_state::RunState;
use crate::thread::{catch_panic, worker_ctx, Completer, Hosted, Outcome, Shared};

/// Why a `from_thread` call did not run its work.
#[derive(Debug)]
#[non_exhaustive]
pub enum FromThreadError {
    /// Called from a thread that is not running a `to_thread` job, without a token.
    NotInWorker,
    /// Called from a thread that polls async tasks, where blocking would stall the runtime.
    WouldBlockRuntime,
    /// The run has ended (AnyIO's `RunFinishedError`).
    RunFinished(RunFinishedError),
    /// [`check_cancelled`]: the waiting task's scope is cancelled.
    Cancelled(Cancelled),
}

impl fmt::Display for FromThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FromThreadError::NotInWorker => f.write_str(
                "this function can only be called from an AnyIO worker thread; from any other thread, \
                 pass an EventLoopToken (anyio::lowlevel::current_token()) to the _with_token form",
            ),
            FromThreadError::WouldBlockRuntime => f.write_str(
                "this thread is polling async tasks, and blocking it would stall (or deadlock) the \
                 runtime: await the code here instead of calling from_thread",
            ),
            FromThreadError::RunFinished(e) => e.fmt(f),
            FromThreadError::Cancelled(c) => c.fmt(f),
        }
    }
}

impl StdError for FromThreadError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            FromThreadError::RunFinished(e) => Some(e),
            FromThreadError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl AsCancelled for FromThreadError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            FromThreadError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl From<FromThreadError> for crate::error::AnyError {
    fn from(e: FromThreadError) -> Self {
        match e {
            FromThreadError::Cancelled(c) => c.into(),
            other => crate::error::AnyError::other(other),
        }
    }
}

/// Runs the future `f()` makes in the run this worker thread serves, and blocks until it is
/// done (AnyIO's `from_thread.run`). It runs as a task of that runtime inside the cancel scope
/// of the task waiting for this thread (unless that task abandoned the job). A panic in it is
/// resumed here.
///
/// # Errors
///
/// [`FromThreadError::NotInWorker`] on a thread that runs no `to_thread` job (use
/// [`run_with_token`]); [`FromThreadError::WouldBlockRuntime`] on a thread that polls tasks;
/// [`FromThreadError::RunFinished`] once the run has ended.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let n = anyio::to_thread::run_sync(|| {
///     anyio::from_thread::run(|| async {
///         anyio::sleep(std::time::Duration::from_millis(1)).await.unwrap();
///         42
///     })
/// })
/// .await
/// .unwrap()
/// .unwrap();
/// assert_eq!(n, 42);
/// # });
/// ```
pub fn run<T, F, Fut>(f: F) -> Result<T, FromThreadError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let ctx = worker_ctx().ok_or(FromThreadError::NotInWorker)?;
    run_in(&ctx.run, ctx.scope(), f)
}

/// Runs `f` in the run this worker thread serves (on one of its threads, as a task inside the
/// waiting task's cancel scope) and blocks until it returns (AnyIO's `from_thread.run_sync`).
///
/// # Errors
///
/// As [`run`].
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let backend = anyio::to_thread::run_sync(|| anyio::from_thread::run_sync(anyio::current_backend))
///     .await
///     .unwrap()
///     .unwrap();
/// assert_eq!(backend, anyio::current_backend());
/// # });
/// ```
pub fn run_sync<T, F>(f: F) -> Result<T, FromThreadError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    run(move || async move { f() })
}

/// [`run`] from any thread, in the run `token` names, in no task's cancel scope.
///
/// # Errors
///
/// [`FromThreadError::WouldBlockRuntime`] on a thread that polls tasks;
/// [`FromThreadError::RunFinished`] once the run has ended.
///
/// # Examples
///
/// ```
/// anyio::run(async {
///     let token = anyio::lowlevel::current_token();
///     let t = std::thread::spawn(move || anyio::from_thread::run_with_token(&token, || async { 7 }));
///     // The run must keep going while the thread waits for it: wait without blocking.
///     let n = anyio::to_thread::run_sync(move || t.join().unwrap()).await.unwrap().unwrap();
///     assert_eq!(n, 7);
/// });
/// ```
pub fn run_with_token<T, F, Fut>(token: &EventLoopToken, f: F) -> Result<T, FromThreadError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    run_in(&token.run, None, f)
}

/// [`run_sync`] from any thread, in the run `token` names.
///
/// # Errors
///
/// As [`run_with_token`].
///
/// # Examples
///
/// See [`current_token`](crate::lowlevel::current_token).
pub fn run_sync_with_token<T, F>(token: &EventLoopToken, f: F) -> Result<T, FromThreadError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    run_with_token(token, move || async move { f() })
}

/// Whether the task waiting for this worker thread has been cancelled (AnyIO's
/// `from_thread.check_cancelled`): a long blocking job can poll it to stop early.
///
/// # Errors
///
/// [`FromThreadError::Cancelled`] when it has; [`FromThreadError::NotInWorker`] on a thread
/// that runs no `to_thread` job. A job whose task abandoned it is never told.
///
/// # Examples
///
/// ```
/// assert!(matches!(anyio::from_thread::check_cancelled(), Err(anyio::from_thread::FromThreadError::NotInWorker)));
/// ```
pub fn check_cancelled() -> Result<(), FromThreadError> {
    let ctx = worker_ctx().ok_or(FromThreadError::NotInWorker)?;
    match ctx.scope() {
        Some(node) => node.check().map_err(FromThreadError::Cancelled),
        None => Ok(()),
    }
}

/// Spawns `f()` as a task of `run` (inside `scope`) and blocks for its outcome.
fn run_in<T, F, Fut>(run: &Arc<RunState>, scope: Option<NodeArc>, f: F) -> Result<T, FromThreadError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    if crate::rt::is_polling() {
        return Err(FromThreadError::WouldBlockRuntime);
    }
    let shared = spawn_in(run, scope, f)?;
    match shared.wait() {
        Some(Ok(v)) => Ok(v),
        Some(Err(panic)) => resume_unwind(panic),
        // The runtime dropped the task unfinished: it is shutting down.
        None => Err(FromThreadError::RunFinished(RunFinishedError)),
    }
}

/// Spawns `f()` as a task of `run` (inside `scope`); its outcome (or its panic) arrives in the
/// returned cell, which completes empty if the runtime drops the task.
pub(crate) fn spawn_in<T, F, Fut>(
    run: &Arc<RunState>,
    scope: Option<NodeArc>,
    f: F,
) -> Result<Arc<Shared<Outcome<T>>>, FromThreadError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    if run.is_finished() {
        return Err(FromThreadError::RunFinished(RunFinishedError));
    }
    let shared = Shared::new();
    let completer = Completer(Some(shared.clone()));
    let task = async move {
        // A panic goes back to the waiting thread, not into the runtime.
        // `f` itself runs inside the catch too: a panic before its first await is caught.
        completer.complete(catch_panic(async move { f().await }).await);
    };
    run.rt.spawn(Box::pin(Hosted::new(run.rt.clone(), scope, task)));
    Ok(shared)
}
