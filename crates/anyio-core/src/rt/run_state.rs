//! What anyio knows about each run: which runtime it is (for [`RunVar`] values and
//! [`EventLoopToken`]s), whether it has ended, and which thread runs its runner.
//!
//! A run is one runtime as seen by [`Runtime::id`]: `anyio::run` makes one, and a runtime anyio
//! did not start (a `#[tokio::main]` application) is one too, for as long as the process lives.
//!
//! [`RunVar`]: crate::lowlevel::RunVar
//! [`Runtime::id`]: super::Runtime::id

use std::cell::Cell;
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::RuntimeHandle;

/// Identifies a run: the backend's name and its runtime's [`id`](super::Runtime::id).
pub(crate) type RunKey = (&'static str, u64);

pub(crate) fn key_of(rt: &RuntimeHandle) -> RunKey {
    (rt.name(), rt.id())
}

/// One run's shared state.
#[derive(Debug)]
pub(crate) struct RunState {
    pub(crate) key: RunKey,
    pub(crate) rt: RuntimeHandle,
    finished: AtomicBool,
}

impl RunState {
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

/// Every run anyio started that is alive, newest last: one entry per run at once.
static RUNS: Mutex<Vec<Arc<RunState>>> = Mutex::new(Vec::new());

thread_local! {
    /// Whether this thread is inside a runner's `block_on` (see `rt::is_polling`).
    static IN_RUNNER: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn in_runner() -> bool {
    IN_RUNNER.with(Cell::get)
}

/// The state of the run the calling code belongs to (creating it for a runtime anyio did not
/// start).
///
/// # Panics
///
/// With [`NO_RUNTIME`](super::NO_RUNTIME) outside any runtime.
pub(crate) fn current_run() -> Arc<RunState> {
    let rt = super::current();
    let key = key_of(&rt);
    let runs = RUNS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(r) = runs.iter().rev().find(|r| r.key == key && !r.is_finished()) {
        return r.clone();
    }
    drop(runs);
    // A runtime anyio did not start: a state of its own for this caller, not kept here (it
    // holds the runtime's handle, and nothing would ever tell when that runtime ends).
    Arc::new(RunState { key, rt, finished: AtomicBool::new(false) })
}

/// Held by a runner around its `block_on` (through `run_in_root`): registers the run, and ends
/// it when dropped.
pub(crate) struct RunGuard {
    state: Option<Arc<RunState>>,
    was_in_runner: bool,
}

impl RunGuard {
    pub(crate) fn begin() -> RunGuard {
        // The guard first: the runtime's `name` and `id` below are a backend's code, and if
        // they panic the guard puts the flag back.
        let mut guard = RunGuard { state: None, was_in_runner: IN_RUNNER.with(|c| c.replace(true)) };
        // Runners enter their runtime before this; a runner without one (a test's bare
        // `block_on`) has no run to track.
        guard.state = super::try_current().map(|rt| {
            let state = Arc::new(RunState { key: key_of(&rt), rt, finished: AtomicBool::new(false) });
            RUNS.lock().unwrap_or_else(PoisonError::into_inner).push(state.clone());
            state
        });
        guard
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        IN_RUNNER.with(|c| c.set(self.was_in_runner));
        let Some(state) = self.state.take() else { return };
        state.finished.store(true, Ordering::Release);
        RUNS.lock().unwrap_or_else(PoisonError::into_inner).retain(|r| !Arc::ptr_eq(r, &state));
        // The run's variables die with it (their values drop here, outside any lock).
        crate::lowlevel::forget_run(state.key);
    }
}

/// A handle to a running runtime that a thread anyio did not start can use to run code in it
/// (AnyIO's `EventLoopToken`): pass it to the [`from_thread`](crate::from_thread) functions'
/// `_with_token` forms. Get one with [`current_token`](crate::lowlevel::current_token) inside
/// the run.
///
/// # Examples
///
/// ```
/// let token = anyio::run(async { anyio::lowlevel::current_token() });
/// // The run has ended: the token says so instead of running anything.
/// let r = anyio::from_thread::run_sync_with_token(&token, || 1);
/// assert!(matches!(r, Err(anyio::from_thread::FromThreadError::RunFinished(_))));
/// ```
#[derive(Clone, Debug)]
pub struct EventLoopToken {
    pub(crate) run: Arc<RunState>,
}

impl EventLoopToken {
    /// Whether the run this token belongs to has ended.
    ///
    /// ```
    /// anyio::run(async { assert!(!anyio::lowlevel::current_token().is_finished()) });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.run.is_finished()
    }

    /// The name of the backend the run is on.
    ///
    /// ```
    /// anyio::run(async {
    ///     assert_eq!(anyio::lowlevel::current_token().backend(), anyio::current_backend().unwrap());
    /// });
    /// ```
    pub fn backend(&self) -> &'static str {
        self.run.key.0
    }
}

/// A token for the run the calling code belongs to (AnyIO's `current_token`).
///
/// # Panics
///
/// Outside any runtime, with the message that names the fix.
///
/// # Examples
///
/// ```
/// anyio::run(async {
///     let token = anyio::lowlevel::current_token();
///     let n = std::thread::spawn(move || anyio::from_thread::run_sync_with_token(&token, || 40 + 2))
///         .join()
///         .unwrap()
///         .unwrap();
///     assert_eq!(n, 42);
/// });
/// ```
pub fn current_token() -> EventLoopToken {
    EventLoopToken { run: current_run() }
}

/// The run a token or worker thread belongs to has ended (AnyIO's `RunFinishedError`).
///
/// ```
/// let e = anyio::lowlevel::RunFinishedError;
/// assert!(e.to_string().contains("finished"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunFinishedError;

impl fmt::Display for RunFinishedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the event loop has finished: this run is over, so nothing can be run in it any more")
    }
}

impl StdError for RunFinishedError {}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use crate::doc_rt::DocRuntime;
    use crate::rt::{self, BlockingJob, BoxTask, Runtime, Timer};

    /// The test runtime, but for its `id`, which panics.
    #[derive(Debug)]
    struct IdPanics;

    impl Runtime for IdPanics {
        fn name(&self) -> &'static str {
            "id-panics"
        }
        fn id(&self) -> u64 {
            panic!("this runtime has no id")
        }
        fn spawn(&self, task: BoxTask) {
            DocRuntime.spawn(task)
        }
        fn spawn_blocking(&self, job: BlockingJob) -> std::io::Result<()> {
            DocRuntime.spawn_blocking(job)
        }
        fn now(&self) -> Instant {
            DocRuntime.now()
        }
        fn timer(&self, deadline: Instant) -> std::pin::Pin<Box<dyn Timer>> {
            DocRuntime.timer(deadline)
        }
    }

    #[test]
    fn a_runtime_whose_id_panics_as_a_run_begins_leaves_the_thread_outside_a_runner() {
        std::thread::spawn(|| {
            let _entered = rt::enter(Arc::new(IdPanics));
            let r = std::panic::catch_unwind(|| crate::cancel::current::run_in_root(|| ()));
            assert!(r.is_err(), "the runtime's panic propagates");
            assert!(!rt::is_polling(), "the thread still counts as running a runner");
        })
        .join()
        .unwrap();
    }
}
