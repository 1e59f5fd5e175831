//! The async-std backend of anyio: adapts async-std's global runtime, its `async-io` reactor
//! and timers (through `anyio-async-io`) and the `blocking` thread pool to
//! [`anyio::rt::Runtime`](anyio_core::rt::Runtime).
//!
//! async-std has been discontinued by its authors in favour of smol; it stays supported for
//! the applications that still run on it. Users do not call this crate directly: enable the
//! `async-std` feature of `anyio`.
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use anyio_async_io::{register_async_io, IoTimer};
use anyio_core::rt::{
    self, BlockingJob, BoxTask, Detector, IoSource, RawTask, Runtime, RuntimeHandle, Timer, DETECTORS,
};

/// async-std's global runtime, seen through anyio's backend seam.
///
/// # Examples
///
/// ```
/// let rt = anyio_async_std::AsyncStdRuntime::new();
/// assert_eq!(anyio::rt::Runtime::name(&rt), "async-std");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AsyncStdRuntime {
    /// async-std has one global runtime, but each `anyio::run` on it is a run of its own
    /// (`Runtime::id`): fresh per value made by `new`, 0 for the one code outside a run finds.
    id: u64,
}

impl AsyncStdRuntime {
    /// A handle to async-std's runtime that is a run of its own for anyio.
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self { id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) }
    }
}

impl Default for AsyncStdRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime for AsyncStdRuntime {
    fn name(&self) -> &'static str {
        "async-std"
    }

    fn spawn(&self, task: BoxTask) {
        // Dropping an async-std JoinHandle detaches the task.
        drop(async_std::task::spawn(task));
    }

    fn spawn_task(&self, task: RawTask) {
        // As its concrete type: no box inside async-std's task.
        drop(async_std::task::spawn(task));
    }

    fn spawn_blocking(&self, job: BlockingJob) -> io::Result<()> {
        anyio_async_io::spawn_blocking(job)
    }

    fn id(&self) -> u64 {
        self.id
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        // async-std's own timers are async-io timers; use them directly for `reset`.
        Box::pin(IoTimer::at(deadline))
    }

    fn register_io(&self, fd: OwnedFd) -> io::Result<Box<dyn IoSource>> {
        register_async_io(fd)
    }
}

fn shared() -> RuntimeHandle {
    static SHARED: std::sync::OnceLock<RuntimeHandle> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| Arc::new(AsyncStdRuntime { id: 0 })).clone()
}

fn detect_task() -> Option<RuntimeHandle> {
    async_std::task::try_current().map(|_| shared())
}

fn detect_global() -> Option<RuntimeHandle> {
    Some(shared())
}

#[linkme::distributed_slice(DETECTORS)]
static ASYNC_STD_TASK: Detector =
    Detector { name: "async-std", exact: true, detect: detect_task, rank: 1, polling: in_task, lend: None };

#[linkme::distributed_slice(DETECTORS)]
static ASYNC_STD_GLOBAL: Detector = Detector {
    name: "async-std",
    exact: false,
    detect: detect_global,
    rank: 1,
    polling: rt::never_polling,
    lend: None,
};

/// Inside an async-std task (its `spawn_blocking` threads run none).
fn in_task() -> bool {
    async_std::task::try_current().is_some()
}

/// Runs `fut` to completion with async-std's `block_on`, with anyio's root scope and this
/// runtime current.
///
/// # Examples
///
/// ```
/// assert_eq!(anyio_async_std::run(async { 6 * 7 }), 42);
/// ```
pub fn run<F: Future>(fut: F) -> F::Output {
    run_layered(None, fut)
}

/// As [`run`], with the runtime wrapped in `layer` (the facade's blocked-task tracking and
/// mock clocks).
///
/// # Examples
///
/// ```
/// let layer: anyio::rt::Layer = Box::new(|rt| rt);
/// assert_eq!(anyio_async_std::run_layered(Some(layer), async { 3 }), 3);
/// ```
pub fn run_layered<F: Future>(layer: Option<rt::Layer>, fut: F) -> F::Output {
    let base: RuntimeHandle = Arc::new(AsyncStdRuntime::new());
    let _rt = rt::enter(match layer {
        Some(layer) => layer(base),
        None => base,
    });
    anyio_core::__private::run_in_root(|| async_std::task::block_on(anyio_core::__private::main_task(fut)))
}
