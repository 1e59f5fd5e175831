//! The smol backend of anyio: adapts an `async-executor` executor, the `async-io` reactor and
//! timers (through `anyio-async-io`) and the `blocking` thread pool to
//! [`anyio::rt::Runtime`](anyio_core::rt::Runtime).
//!
//! Users do not call this crate directly: enable the `smol` feature of `anyio`.
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Instant;

use anyio_async_io::{register_async_io, IoTimer};
use anyio_core::rt::{
    self, BlockingJob, BoxTask, Detector, IoSource, RawTask, Runtime, RuntimeHandle, Timer, DETECTORS,
};
use async_executor::Executor;

/// A smol executor, seen through anyio's backend seam.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// let ex = Arc::new(async_executor::Executor::new());
/// let rt = anyio_smol::SmolRuntime::new(ex);
/// assert_eq!(anyio::rt::Runtime::name(&rt), "smol");
/// ```
#[derive(Debug, Clone)]
pub struct SmolRuntime {
    // Weak: tasks hold the runtime handle, and a strong reference would keep the executor
    // (and so the tasks themselves) alive forever after `run` returns.
    executor: Option<Weak<Executor<'static>>>,
    /// Fresh per executor (`Runtime::id`); 0 for the global executor.
    id: u64,
}

impl SmolRuntime {
    /// Spawns onto `executor`, which the caller must keep running (and alive: once it is
    /// dropped, new tasks are dropped at once, as on a runtime that has shut down).
    pub fn new(executor: Arc<Executor<'static>>) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self { executor: Some(Arc::downgrade(&executor)), id }
    }

    /// Spawns onto smol's global executor (`smol::spawn`), which runs its own threads and so
    /// works from any thread, inside `smol::block_on` included.
    pub fn global() -> Self {
        Self { executor: None, id: 0 }
    }
}

impl SmolRuntime {
    fn spawn_future<F: Future<Output = ()> + Send + 'static>(&self, task: F) {
        // smol cancels a task when its handle drops: detach it, outcomes travel through
        // anyio's own completion records.
        match &self.executor {
            Some(ex) => match ex.upgrade() {
                Some(ex) => ex.spawn(task).detach(),
                // The executor is gone: the task is dropped, and reports itself cancelled.
                None => drop(task),
            },
            None => smol::spawn(task).detach(),
        }
    }
}

impl Runtime for SmolRuntime {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn spawn(&self, task: BoxTask) {
        self.spawn_future(task)
    }

    fn spawn_task(&self, task: RawTask) {
        // As its concrete type: the executor's task allocation is the only one.
        self.spawn_future(task)
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
        Box::pin(IoTimer::at(deadline))
    }

    fn register_io(&self, fd: OwnedFd) -> io::Result<Box<dyn IoSource>> {
        register_async_io(fd)
    }
}

fn detect_global() -> Option<RuntimeHandle> {
    static GLOBAL: std::sync::OnceLock<RuntimeHandle> = std::sync::OnceLock::new();
    Some(GLOBAL.get_or_init(|| Arc::new(SmolRuntime::global())).clone())
}

#[linkme::distributed_slice(DETECTORS)]
static SMOL_DETECTOR: Detector = Detector {
    name: "smol",
    exact: false,
    detect: detect_global,
    rank: 0,
    polling: rt::never_polling,
    lend: None,
};

/// Runs `fut` to completion on a fresh smol executor driven by the calling thread (plus
/// `extra_threads` more threads running the same executor), with anyio's root scope and this
/// runtime current.
///
/// # Examples
///
/// ```
/// assert_eq!(anyio_smol::run(0, async { 40 + 2 }), 42);
/// ```
pub fn run<F: Future>(extra_threads: usize, fut: F) -> F::Output {
    run_layered(extra_threads, None, fut)
}

/// As [`run`], with the runtime wrapped in `layer` (the facade's blocked-task tracking and
/// mock clocks): the wrapped handle is the one current on every thread of the run.
///
/// # Examples
///
/// ```
/// let layer: anyio::rt::Layer = Box::new(|rt| rt);
/// assert_eq!(anyio_smol::run_layered(0, Some(layer), async { 3 }), 3);
/// ```
pub fn run_layered<F: Future>(extra_threads: usize, layer: Option<rt::Layer>, fut: F) -> F::Output {
    let ex = Arc::new(Executor::new());
    let base: RuntimeHandle = Arc::new(SmolRuntime::new(ex.clone()));
    let handle = match layer {
        Some(layer) => layer(base),
        None => base,
    };
    let (stop_tx, stop_rx) = async_channel_stop();
    let workers: Vec<_> = (0..extra_threads)
        .map(|i| {
            let ex = ex.clone();
            let handle = handle.clone();
            let stop = stop_rx.clone();
            std::thread::Builder::new()
                .name(format!("anyio-smol-{i}"))
                .spawn(move || {
                    let _rt = rt::enter(handle);
                    async_io::block_on(ex.run(stop.wait()));
                })
                .expect("failed to spawn a smol worker thread")
        })
        .collect();
    let out = {
        let _rt = rt::enter(handle);
        anyio_core::__private::run_in_root(|| {
            async_io::block_on(ex.run(anyio_core::__private::main_task(fut)))
        })
    };
    stop_tx.stop();
    for w in workers {
        let _ = w.join();
    }
    // Dropping the last strong reference drops the executor and with it every task still in
    // it (children of a dropped task group), which report themselves cancelled.
    drop(ex);
    out
}

/// A one-shot "stop" broadcast for the worker threads, on `event-listener` semantics via smol.
fn async_channel_stop() -> (StopTx, StopRx) {
    let (tx, rx) = smol::channel::bounded::<()>(1);
    (StopTx(tx), StopRx(rx))
}

struct StopTx(smol::channel::Sender<()>);
impl StopTx {
    fn stop(self) {
        self.0.close();
    }
}

#[derive(Clone)]
struct StopRx(smol::channel::Receiver<()>);
impl StopRx {
    async fn wait(self) {
        let _ = self.0.recv().await;
    }
}
