//! # anyio
//!
//! Structured concurrency for async Rust, written once and run on tokio, smol or async-std:
//! task groups, cancel scopes with deadlines and shields, and trio's level-triggered
//! cancellation — Python's [AnyIO](https://anyio.readthedocs.io) and
//! [trio](https://trio.readthedocs.io), for Rust.
//!
//! ```
//! use std::time::Duration;
//! use anyio::{move_on_after, sleep, task_group, AnyError};
//!
//! #[anyio::main]
//! async fn main() -> Result<(), AnyError> {
//!     // Run two tasks concurrently; the group waits for both.
//!     task_group(|tg| async move {
//!         tg.spawn(async { sleep(Duration::from_millis(10)).await?; Ok(()) });
//!         tg.spawn(async { sleep(Duration::from_millis(20)).await?; Ok(()) });
//!         Ok::<_, AnyError>(())
//!     })
//!     .await?;
//!
//!     // Give up on slow work: the body's checkpoints fail once the deadline passes.
//!     let r = move_on_after(Duration::from_millis(10), async {
//!         sleep(Duration::from_secs(3600)).await?;
//!         Ok::<_, AnyError>("done")
//!     })
//!     .await?;
//!     assert_eq!(r, None);
//!     Ok(())
//! }
//! ```
//!
//! ## Backends
//!
//! Cargo features choose which backends are compiled in: `tokio` (default), `smol`,
//! `async-std`; any combination builds. [`run`] runs a future on the default backend (tokio if
//! compiled in, else smol, else async-std), which the `ANYIO_BACKEND` environment variable
//! overrides (`tokio`, `tokio-current-thread`, `smol`, `async-std`); [`run_on`] picks one
//! explicitly. Code called from inside a runtime anyio did not start — a `#[tokio::main]`
//! application, an async-std task, `smol::block_on` — finds that runtime by itself.
//!
//! ## Cancellation
//!
//! Every await point of this library is a *checkpoint* that returns [`Cancelled`] while its
//! enclosing [`CancelScope`] is cancelled, every time, until the scope's body returns. Propagate
//! it with `?`; the scope that was cancelled catches it. See `docs/design.md` in the repository
//! for the model and its reasons.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;

#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use anyio_core::net;
pub use anyio_core::{cancel, error, lowlevel, prelude, rt, streams, sync, task, testing, time, to_thread};
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use anyio_core::{fs, process, signal};

mod portal_thread;

/// Calling into a run from other threads (AnyIO's `anyio.from_thread`): from `to_thread`
/// workers, with an [`EventLoopToken`](crate::lowlevel::EventLoopToken), or through a
/// [`BlockingPortal`](from_thread::BlockingPortal), which [`start_blocking_portal`] gives a
/// runtime thread of its own.
///
/// [`start_blocking_portal`]: from_thread::start_blocking_portal
pub mod from_thread {
    pub use anyio_core::from_thread::*;

    pub use crate::portal_thread::{
        start_blocking_portal, BlockingPortalProvider, PortalLease, PortalThread,
    };
}
/// TLS over any byte stream, on rustls (the `tls` feature): see the [`anyio_tls`] crate.
#[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
pub use anyio_tls as tls;

// What a first program uses, at the top level; everything else lives in its module.
#[doc(no_inline)]
pub use anyio_core::{
    cancel::{fail_after, move_on_after, CancelScope},
    error::{AnyError, Cancelled},
    task::{task_group, TaskGroup},
    time::sleep,
};

/// The `async_trait` attribute, for implementing anyio's stream traits.
pub use async_trait::async_trait;

#[cfg(feature = "macros")]
pub use anyio_macros::{main, test};

/// The backend crates, for adapting a runtime you configured yourself (your own smol
/// `Executor`, a tokio `Handle`) with [`rt::enter`].
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let handle = std::sync::Arc::new(anyio::backends::tokio::TokioRuntime::new(runtime.handle().clone()));
/// let _guard = anyio::rt::enter(handle);
/// # }
/// ```
pub mod backends {
    #[cfg(feature = "async-std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
    pub use anyio_async_std as async_std;
    #[cfg(feature = "smol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
    pub use anyio_smol as smol;
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub use anyio_tokio as tokio;
}

/// A backend and flavour to run on, among those compiled in.
///
/// # Examples
///
/// ```
/// use anyio::Backend;
/// let b: Backend = "tokio-current-thread".parse().unwrap();
/// assert_eq!(b, Backend::TokioCurrentThread);
/// assert_eq!(b.to_string(), "tokio-current-thread");
/// assert!("gevent".parse::<Backend>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// tokio's multi-thread scheduler; `None` workers means one per core.
    TokioMultiThread {
        /// The number of worker threads.
        workers: Option<NonZeroUsize>,
    },
    /// tokio's current-thread scheduler.
    TokioCurrentThread,
    /// A smol executor on the calling thread.
    Smol,
    /// async-std's global runtime.
    AsyncStd,
}

impl Backend {
    /// tokio's multi-thread scheduler with one worker per core.
    pub const TOKIO: Backend = Backend::TokioMultiThread { workers: None };

    /// Whether this backend's feature was compiled in.
    ///
    /// ```
    /// assert!(anyio::Backend::default_backend().is_compiled());
    /// ```
    pub fn is_compiled(&self) -> bool {
        match self {
            Backend::TokioMultiThread { .. } | Backend::TokioCurrentThread => cfg!(feature = "tokio"),
            Backend::Smol => cfg!(feature = "smol"),
            Backend::AsyncStd => cfg!(feature = "async-std"),
        }
    }

    /// The backend [`run`] uses when `ANYIO_BACKEND` is not set: tokio (multi-thread) if
    /// compiled in, else smol, else async-std.
    ///
    /// ```
    /// let _ = anyio::Backend::default_backend();
    /// ```
    pub fn default_backend() -> Backend {
        if cfg!(feature = "tokio") {
            Backend::TOKIO
        } else if cfg!(feature = "smol") {
            Backend::Smol
        } else {
            Backend::AsyncStd
        }
    }

    /// The backend named by `ANYIO_BACKEND`, or the default one if it is unset.
    ///
    /// # Errors
    ///
    /// [`RunError::UnknownBackend`] or [`RunError::NotCompiled`] if the variable names a
    /// backend that does not exist or was not compiled in.
    ///
    /// ```
    /// let _ = anyio::Backend::from_env();
    /// ```
    pub fn from_env() -> Result<Backend, RunError> {
        match std::env::var("ANYIO_BACKEND") {
            Ok(name) if !name.is_empty() => {
                let b: Backend = name.parse()?;
                if b.is_compiled() {
                    Ok(b)
                } else {
                    Err(RunError::NotCompiled(b))
                }
            }
            _ => Ok(Backend::default_backend()),
        }
    }

    /// Every backend and flavour compiled in, in a fixed order (the test matrix of
    /// `#[anyio::test]`): tokio current-thread, tokio multi-thread (2 workers), smol, async-std.
    ///
    /// ```
    /// assert!(!anyio::Backend::compiled().is_empty());
    /// ```
    pub fn compiled() -> Vec<Backend> {
        [
            Backend::TokioCurrentThread,
            Backend::TokioMultiThread { workers: NonZeroUsize::new(2) },
            Backend::Smol,
            Backend::AsyncStd,
        ]
        .into_iter()
        .filter(Backend::is_compiled)
        .collect()
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::TokioMultiThread { workers: None } => f.write_str("tokio"),
            Backend::TokioMultiThread { workers: Some(n) } => write!(f, "tokio-multi-thread({n})"),
            Backend::TokioCurrentThread => f.write_str("tokio-current-thread"),
            Backend::Smol => f.write_str("smol"),
            Backend::AsyncStd => f.write_str("async-std"),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = RunError;

    fn from_str(s: &str) -> Result<Self, RunError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tokio" | "tokio-multi-thread" | "tokio_multi_thread" => Ok(Backend::TOKIO),
            "tokio-current-thread" | "tokio_current_thread" | "tokio-ct" => Ok(Backend::TokioCurrentThread),
            "smol" => Ok(Backend::Smol),
            "async-std" | "async_std" | "asyncstd" => Ok(Backend::AsyncStd),
            _ => Err(RunError::UnknownBackend(s.to_owned())),
        }
    }
}

/// Why [`run_on`] could not run a future.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// The name is not a backend anyio knows.
    UnknownBackend(String),
    /// The backend exists but its cargo feature is not enabled.
    NotCompiled(Backend),
    /// This thread already runs async code (an anyio run, a tokio runtime, an async-std task);
    /// a nested run would block it. Await the future (or spawn it into a task group) instead.
    AlreadyRunning,
    /// The runtime could not be built.
    Io(std::io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::UnknownBackend(name) => write!(
                f,
                "unknown anyio backend {name:?}: expected one of tokio, tokio-current-thread, smol, async-std"
            ),
            RunError::NotCompiled(b) => write!(
                f,
                "the anyio backend {b} is not compiled in: enable the `{}` feature of the anyio crate",
                match b {
                    Backend::Smol => "smol",
                    Backend::AsyncStd => "async-std",
                    _ => "tokio",
                }
            ),
            RunError::AlreadyRunning => f.write_str(
                "anyio::run called from inside a running async runtime on this thread: await the future instead",
            ),
            RunError::Io(e) => write!(f, "could not build the runtime: {e}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Here, not in `anyio-core` with the other conversions, because `RunError` is this crate's
/// (the orphan rule allows the impl only where one of the two types is local).
///
/// ```
/// fn start() -> Result<(), anyio::AnyError> {
///     anyio::run_on("no-such-backend".parse()?, async {})?;
///     Ok(())
/// }
/// assert!(start().unwrap_err().to_string().contains("unknown anyio backend"));
/// ```
impl From<RunError> for AnyError {
    fn from(e: RunError) -> Self {
        AnyError::other(e)
    }
}

/// Runs `fut` to completion on the default backend, or the one `ANYIO_BACKEND` names, and
/// returns its output (AnyIO's `anyio.run`).
///
/// # Panics
///
/// Panics with [`RunError`]'s message if `ANYIO_BACKEND` names an unknown or not compiled
/// backend, if called inside another `run` on this thread, or if the runtime cannot be built.
/// Use [`run_on`] to get these as errors.
///
/// # Examples
///
/// ```
/// let answer = anyio::run(async {
///     anyio::sleep(std::time::Duration::from_millis(1)).await.unwrap();
///     42
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn run<F: Future>(fut: F) -> F::Output {
    let backend = Backend::from_env().unwrap_or_else(|e| panic!("anyio::run: {e}"));
    run_on(backend, fut).unwrap_or_else(|e| panic!("anyio::run: {e}"))
}

/// As [`run`], with the first SIGINT (Ctrl+C) turned into cancellation of `fut`'s scope (see
/// [`signal::interruptible`]): every task unwinds through its cleanup, and the result is
/// [`signal::Interrupted`]. A second SIGINT during that cleanup ends the process at once.
/// `#[anyio::main]` runs the main function this way and exits with status 130 when
/// interrupted.
///
/// # Panics
///
/// As [`run`].
///
/// # Examples
///
/// ```
/// assert_eq!(anyio::run_interruptible(async { 7 }), Ok(7));
/// ```
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub fn run_interruptible<F: Future>(fut: F) -> Result<F::Output, signal::Interrupted> {
    run(signal::interruptible(fut))
}

/// Runs `fut` to completion on `backend`.
///
/// # Errors
///
/// [`RunError::NotCompiled`] if the backend's feature is off, [`RunError::AlreadyRunning`] if
/// called inside another run on this thread, [`RunError::Io`] if the runtime cannot be built.
///
/// # Examples
///
/// ```
/// use anyio::{run_on, Backend};
/// for backend in Backend::compiled() {
///     assert_eq!(run_on(backend, async { 7 }).unwrap(), 7);
/// }
/// ```
pub fn run_on<F: Future>(backend: Backend, fut: F) -> Result<F::Output, RunError> {
    run_with(backend, RunOptions::new(), fut)
}

/// How [`run_with`] runs: with a [`MockClock`](testing::MockClock), with blocked-task
/// tracking (what [`wait_all_tasks_blocked`](testing::wait_all_tasks_blocked) needs), or as
/// [`run_on`] does (the default). trio's `clock=` argument and AnyIO's `backend_options`.
///
/// # Examples
///
/// ```
/// use anyio::{testing::MockClock, RunOptions};
/// let options = RunOptions::new().clock(MockClock::autojump());
/// # drop(options);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RunOptions {
    clock: Option<testing::MockClock>,
    track_blocked: bool,
}

impl RunOptions {
    /// Real time, no tracking: what [`run_on`] does.
    ///
    /// ```
    /// let options = anyio::RunOptions::new();
    /// # drop(options);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs anyio's clock, sleeps and deadlines on `clock` (it tracks blocked tasks too).
    ///
    /// ```
    /// let options = anyio::RunOptions::new().clock(anyio::testing::MockClock::new());
    /// # drop(options);
    /// ```
    pub fn clock(mut self, clock: testing::MockClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Tracks which tasks are blocked, so that
    /// [`wait_all_tasks_blocked`](testing::wait_all_tasks_blocked) works. Costs a little on
    /// every spawn and wake: meant for tests.
    ///
    /// ```
    /// let options = anyio::RunOptions::new().track_blocked(true);
    /// # drop(options);
    /// ```
    pub fn track_blocked(mut self, yes: bool) -> Self {
        self.track_blocked = yes;
        self
    }
}

/// Runs `fut` to completion on `backend`, as `options` say (AnyIO's `anyio.run` with
/// `backend_options`; trio's `clock=`).
///
/// # Errors
///
/// As [`run_on`]; [`RunError::Io`] also when the tracking thread cannot be started.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use anyio::{run_with, testing::MockClock, Backend, RunOptions};
///
/// // A day of retries, in milliseconds of real time.
/// let tries = run_with(Backend::default_backend(), RunOptions::new().clock(MockClock::autojump()), async {
///     let mut tries = 0;
///     while tries < 24 {
///         tries += 1;
///         anyio::sleep(Duration::from_secs(3600)).await.unwrap();
///     }
///     tries
/// })
/// .unwrap();
/// assert_eq!(tries, 24);
/// ```
pub fn run_with<F: Future>(backend: Backend, options: RunOptions, fut: F) -> Result<F::Output, RunError> {
    if !backend.is_compiled() {
        return Err(RunError::NotCompiled(backend));
    }
    // Refuse to block a thread that already runs async code, anyio's or a foreign runtime's
    // (tokio would panic, the others would silently stall the outer runtime).
    if anyio_core::rt::is_polling() {
        return Err(RunError::AlreadyRunning);
    }
    if options.clock.is_none() && !options.track_blocked {
        return dispatch_layered(backend, None, fut);
    }
    let monitor = testing::Instrumentation::new(options.clock).map_err(RunError::Io)?;
    let out = dispatch_layered(backend, Some(monitor.layer()), monitor.track(fut));
    drop(monitor);
    out
}

#[allow(unreachable_code, unused_variables)]
fn dispatch_layered<F: Future>(
    backend: Backend,
    layer: Option<rt::Layer>,
    fut: F,
) -> Result<F::Output, RunError> {
    match backend {
        #[cfg(feature = "tokio")]
        Backend::TokioCurrentThread => {
            anyio_tokio::run_layered(anyio_tokio::Flavor::CurrentThread, layer, fut).map_err(RunError::Io)
        }
        #[cfg(feature = "tokio")]
        Backend::TokioMultiThread { workers } => {
            anyio_tokio::run_layered(anyio_tokio::Flavor::MultiThread(workers), layer, fut)
                .map_err(RunError::Io)
        }
        #[cfg(feature = "smol")]
        Backend::Smol => Ok(anyio_smol::run_layered(0, layer, fut)),
        #[cfg(feature = "async-std")]
        Backend::AsyncStd => Ok(anyio_async_std::run_layered(layer, fut)),
        #[allow(unreachable_patterns)]
        other => Err(RunError::NotCompiled(other)),
    }
}

/// Which backend the calling code runs on (`"tokio"`, `"smol"`, `"async-std"`), or `None`
/// outside any runtime.
///
/// # Examples
///
/// ```
/// for backend in anyio::Backend::compiled() {
///     let name = anyio::run_on(backend, async { anyio::current_backend() }).unwrap();
///     assert!(backend.to_string().starts_with(name.unwrap()));
/// }
/// ```
pub fn current_backend() -> Option<&'static str> {
    anyio_core::rt::try_current().map(|rt| rt.name())
}

/// Support for the `#[anyio::test]` and `#[anyio::main]` macros; not a public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use anyio_core::__private::main_task;

    /// What `#[anyio::main]` runs: [`run_interruptible`](crate::run_interruptible), and on an
    /// interruption the message and exit status 130 a shell shows for a process SIGINT ended.
    pub fn run_main<F: Future>(fut: F) -> F::Output {
        #[cfg(unix)]
        match crate::run_interruptible(fut) {
            Ok(out) => out,
            Err(interrupted) => {
                eprintln!("{interrupted}");
                std::process::exit(crate::signal::Interrupted::EXIT_STATUS)
            }
        }
        #[cfg(not(unix))]
        crate::run(fut)
    }

    /// Runs one test body on one backend, naming the backend if it panics. Every test
    /// tracks blocked tasks, so that `wait_all_tasks_blocked` works in it.
    pub fn run_test<F: Future>(backend: Backend, test_name: &str, fut: F) -> F::Output {
        run_test_with(backend, test_name, TestClock::Real, fut)
    }

    /// The clock `#[anyio::test(...)]` asked for.
    #[derive(Clone, Copy, Debug)]
    pub enum TestClock {
        /// Real time.
        Real,
        /// `mock_clock`: a clock that moves only when the test jumps it.
        Mock,
        /// `autojump` (threshold 0) or `autojump = secs`.
        Autojump(f64),
    }

    /// As [`run_test`], with the clock the test's attribute asked for.
    pub fn run_test_with<F: Future>(
        backend: Backend,
        test_name: &str,
        clock: TestClock,
        fut: F,
    ) -> F::Output {
        let options = RunOptions::new().track_blocked(true);
        let options = match clock {
            TestClock::Real => options,
            TestClock::Mock => options.clock(crate::testing::MockClock::new()),
            TestClock::Autojump(secs) => {
                let c = crate::testing::MockClock::new();
                if let Err(e) = c.set_autojump_threshold(secs) {
                    panic!("test {test_name}: #[anyio::test(autojump = {secs})]: {e}");
                }
                options.clock(c)
            }
        };
        match run_with(backend, options, fut) {
            Ok(out) => out,
            Err(e) => panic!("test {test_name} could not run on backend {backend}: {e}"),
        }
    }

    pub use crate::Backend;
}

/// Expands its input only when the `tokio` feature is enabled (used by `#[anyio::test]`).
#[cfg(feature = "tokio")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_tokio { ($($t:tt)*) => { $($t)* }; }
/// Expands its input only when the `tokio` feature is enabled (used by `#[anyio::test]`).
#[cfg(not(feature = "tokio"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_tokio {
    ($($t:tt)*) => {};
}

/// Expands its input only when the `smol` feature is enabled (used by `#[anyio::test]`).
#[cfg(feature = "smol")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_smol { ($($t:tt)*) => { $($t)* }; }
/// Expands its input only when the `smol` feature is enabled (used by `#[anyio::test]`).
#[cfg(not(feature = "smol"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_smol {
    ($($t:tt)*) => {};
}

/// Expands its input only when the `async-std` feature is enabled (used by `#[anyio::test]`).
#[cfg(feature = "async-std")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_async_std { ($($t:tt)*) => { $($t)* }; }
/// Expands its input only when the `async-std` feature is enabled (used by `#[anyio::test]`).
#[cfg(not(feature = "async-std"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_async_std {
    ($($t:tt)*) => {};
}

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The user guide (`docs/guide/`): every chapter's examples are doctests, so
/// `cargo test --workspace --all-features` compiles and runs them.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../../../docs/guide/README.md")]
    struct Contents;
    #[doc = include_str!("../../../docs/guide/01-tasks.md")]
    struct Guide01Tasks;
    #[doc = include_str!("../../../docs/guide/02-cancellation.md")]
    struct Guide02Cancellation;
    #[doc = include_str!("../../../docs/guide/03-synchronization.md")]
    struct Guide03Synchronization;
    #[doc = include_str!("../../../docs/guide/04-memory-streams.md")]
    struct Guide04MemoryStreams;
    #[doc = include_str!("../../../docs/guide/05-streams.md")]
    struct Guide05Streams;
    #[cfg(unix)]
    #[doc = include_str!("../../../docs/guide/06-networking.md")]
    struct Guide06Networking;
    #[doc = include_str!("../../../docs/guide/07-testing.md")]
    struct Guide07Testing;
    #[doc = include_str!("../../../docs/guide/08-backends.md")]
    struct Guide08Backends;
    #[doc = include_str!("../../../docs/guide/09-library-vs-application.md")]
    struct Guide09LibraryVsApplication;
    #[doc = include_str!("../../../docs/guide/10-select-and-drop.md")]
    struct Guide10SelectAndDrop;
    #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
    #[doc = include_str!("../../../docs/guide/11-tls.md")]
    struct Guide11Tls;
    #[doc = include_str!("../../../docs/guide/12-threads.md")]
    struct Guide12Threads;
    #[cfg(unix)]
    #[doc = include_str!("../../../docs/guide/13-subprocesses.md")]
    struct Guide13Subprocesses;
    #[cfg(unix)]
    #[doc = include_str!("../../../docs/guide/14-signals.md")]
    struct Guide14Signals;
    #[cfg(unix)]
    #[doc = include_str!("../../../docs/guide/15-files.md")]
    struct Guide15Files;
}
