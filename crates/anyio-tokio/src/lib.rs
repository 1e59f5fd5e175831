//! The tokio backend of anyio: adapts a tokio runtime to [`anyio::rt::Runtime`](anyio_core::rt::Runtime).
//!
//! Users do not call this crate directly: enable the `tokio` feature of `anyio` (on by default)
//! and use `anyio::run`, or call anyio's API from inside any tokio runtime.
#![deny(unsafe_code)]

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use anyio_core::rt::{
    self, BlockingJob, BoxTask, Detector, Interest, IoPhase, IoSource, RawTask, Runtime, RuntimeHandle,
    TaskHold, Timer, DETECTORS,
};
use pin_project_lite::pin_project;
use tokio::io::unix::AsyncFd;

/// A tokio runtime, seen through anyio's backend seam.
///
/// # Examples
///
/// ```
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let handle = anyio_tokio::TokioRuntime::new(rt.handle().clone());
/// assert_eq!(anyio::rt::Runtime::name(&handle), "tokio");
/// ```
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: tokio::runtime::Handle,
    /// Tasks may finish on another thread than their spawner's (see `spawn_task_held`).
    multi_thread: bool,
}

impl TokioRuntime {
    /// Wraps a handle to a tokio runtime.
    pub fn new(handle: tokio::runtime::Handle) -> Self {
        let multi_thread = handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread;
        Self { handle, multi_thread }
    }
}

impl Runtime for TokioRuntime {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn spawn(&self, task: BoxTask) {
        // Dropping the JoinHandle detaches the task; outcomes travel through anyio's own
        // completion records, never through tokio's JoinHandle.
        drop(self.handle.spawn(task));
    }

    fn spawn_task(&self, task: RawTask) {
        // Spawned as its concrete type: tokio allocates its task around it and nothing else.
        drop(self.handle.spawn(task));
    }

    fn spawn_task_held(&self, task: RawTask) -> Option<TaskHold> {
        // A detached tokio task frees itself on the worker that finished it, taking the lock
        // of the spawning thread's malloc arena; anyio drops the handle where it spawned. On
        // one thread there is no other arena, and a detached task's memory is reused by the
        // next spawn at once, which the handle would delay until the group reaps it (that
        // cost spawn+join 37% there).
        if !self.multi_thread {
            self.spawn_task(task);
            return None;
        }
        Some(TaskHold::new(self.handle.spawn(task)))
    }

    fn spawn_blocking(&self, job: BlockingJob) -> io::Result<()> {
        // tokio's blocking pool. It panics when the OS refuses a thread and no pool thread
        // exists to take the job, after queueing it and releasing its locks; the seam promises
        // an error instead (the queued job may still run once a thread starts; nobody waits
        // for its result then). A runtime that is shutting down drops the job, which anyio
        // notices.
        catch_unwind(AssertUnwindSafe(|| drop(self.handle.spawn_blocking(job)))).map_err(|payload| {
            let why = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("tokio could not start a blocking thread");
            io::Error::other(why.to_string())
        })
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        let _enter = self.handle.enter();
        Box::pin(TokioTimer { sleep: tokio::time::sleep_until(deadline.into()) })
    }

    fn id(&self) -> u64 {
        // tokio's runtime id: the same for every handle to the runtime, never reused.
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.handle.id().hash(&mut h);
        h.finish()
    }

    fn enter_thread(&self, f: &mut dyn FnMut()) {
        let _enter = self.handle.enter();
        f()
    }

    fn register_io(&self, fd: OwnedFd) -> io::Result<Box<dyn IoSource>> {
        let _enter = self.handle.enter();
        // SAFETY: an `OwnedFd` is an open descriptor that only closes when it drops, and the
        // `AsyncFd` owns it, so it stays open and the same for the registration's whole life.
        #[allow(unsafe_code)]
        let registered = unsafe { AsyncFd::register_with_interest(fd, INTEREST) };
        Ok(Box::new(TokioSource(registered.map_err(io::Error::from)?)))
    }
}

/// What every descriptor is registered for. On Linux also `PRIORITY`: a datagram socket with a
/// pending error (a connected peer's ICMP "port unreachable") reports it as `EPOLLERR`, which
/// tokio hands to writers only, so a receive would wait for ever; the core sets
/// `SO_SELECT_ERR_QUEUE` on datagram sockets so that the kernel adds `EPOLLPRI`, which mio
/// counts as readable. Then the receive runs and its system call returns the error, as on
/// the async-io backends (which count `EPOLLERR` as readable).
#[cfg(any(target_os = "linux", target_os = "android"))]
const INTEREST: tokio::io::Interest =
    tokio::io::Interest::READABLE.add(tokio::io::Interest::WRITABLE).add(tokio::io::Interest::PRIORITY);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const INTEREST: tokio::io::Interest = tokio::io::Interest::READABLE.add(tokio::io::Interest::WRITABLE);

/// A descriptor registered with tokio's reactor; tokio's own sockets use the same
/// registration, so readiness costs what it costs them.
#[derive(Debug)]
struct TokioSource(AsyncFd<OwnedFd>);

impl TokioSource {
    fn poll_guard(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
    ) -> Poll<io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>>> {
        match interest {
            Interest::Readable => self.0.poll_read_ready(cx),
            Interest::Writable => self.0.poll_write_ready(cx),
            // `Interest` is non-exhaustive: a kind newer than this backend is refused.
            other => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the tokio backend cannot wait for {other:?} readiness"),
            ))),
        }
    }
}

impl IoSource for TokioSource {
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        // tokio clears readiness only when `op` would block after readiness was reported, so
        // it never has a stale event to skip; and a try the core made before asking proves
        // nothing about readiness reported since, so `Tried` is handled like the others.
        _phase: IoPhase,
        op: &mut dyn FnMut() -> io::Result<bool>,
    ) -> Poll<io::Result<()>> {
        // Two tries per poll: `try_io` clears the cached readiness when `op` would block, so the
        // second normally waits for a fresh event. Readiness tokio never clears (a hang-up) must
        // not turn into a loop that holds the thread, so after that the task yields instead.
        for _ in 0..2 {
            let mut guard = ready!(self.poll_guard(cx, interest))?;
            if let Ok(done) = guard.try_io(|_| op()) {
                if let Ok(true) = done {
                    // A short read: clear the readiness this read was made under (tokio's
                    // ticks keep any event that came after it), as tokio's sockets do.
                    guard.clear_ready();
                }
                return Poll::Ready(done.map(drop));
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn eager(&self, interest: Interest) -> bool {
        // Write readiness is nearly always set, and asking for it costs about as much as the
        // rest of a small send; a send that would block pays one extra failed call. Reads are
        // not eager: an operation usually finds the previous read's readiness still set and
        // no data, and would then fail twice.
        interest == Interest::Writable
    }

    fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
        let guard = ready!(self.poll_guard(cx, interest))?;
        drop(guard);
        Poll::Ready(Ok(()))
    }
}

pin_project! {
    struct TokioTimer {
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl Timer for TokioTimer {
    fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().sleep.poll(cx)
    }

    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        self.project().sleep.reset(deadline.into());
    }
}

fn detect() -> Option<RuntimeHandle> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    Some(Arc::new(TokioRuntime::new(handle)))
}

#[linkme::distributed_slice(DETECTORS)]
static TOKIO_DETECTOR: Detector =
    Detector { name: "tokio", exact: true, detect, rank: 0, polling: in_task, lend: Some(lend) };

/// `detect` without the `Arc`: the wrapper lives on the stack for the call.
fn lend(f: &mut dyn FnMut(&dyn Runtime)) -> bool {
    // A task id is set: polling a tokio task (or a `spawn_blocking` job), where tokio's handle
    // is current. Lend the runtime without fetching the handle. (tokio also sets an id while
    // it drops a finished task's output, possibly outside any runtime; `InTask` then reads
    // std's clock, and the calls that need the handle panic with `NO_RUNTIME`.)
    if tokio::task::try_id().is_some() {
        f(&InTask);
        return true;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    f(&TokioRuntime::new(handle));
    true
}

/// Whether this thread drives tokio: a worker polling a task, or a `block_on`. tokio's handle
/// is current on its `spawn_blocking` threads too (where a task id is set as well), and those
/// may block; tokio tells them apart only by whether it lets the thread block on a future (it
/// refuses, by panicking, inside a runtime context). So that is the test, made only where a
/// handle is current, with the refusal's panic message kept off stderr.
fn in_task() -> bool {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    // Where the probe cannot run (a build that aborts on panic, a thread already unwinding),
    // a task id is the best tokio offers: it also refuses `spawn_blocking` closures.
    if cfg!(panic = "abort") || std::thread::panicking() {
        return tokio::task::try_id().is_some();
    }
    quiet_panics(|| catch_unwind(AssertUnwindSafe(|| handle.block_on(std::future::ready(()))))).is_err()
}

thread_local! {
    /// Set while `in_task` probes: the panic hook stays silent on this thread.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with panics on this thread kept off stderr (the hook installed once wraps the one
/// in place then, and passes every other panic to it).
fn quiet_panics<R>(f: impl FnOnce() -> R) -> R {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info)
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let out = f();
    QUIET.with(|q| q.set(was));
    out
}

/// Which tokio scheduler [`run`] builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Everything on the calling thread (`new_current_thread`).
    CurrentThread,
    /// A work-stealing pool; `None` workers means one per core (tokio's default).
    MultiThread(Option<NonZeroUsize>),
}

/// Builds a tokio runtime of the given flavour with all drivers enabled and runs `fut` on it to
/// completion, with anyio's root scope and this runtime current.
///
/// # Errors
///
/// Returns the I/O error if the runtime could not be built (out of threads, say).
///
/// # Examples
///
/// ```
/// let v = anyio_tokio::run(anyio_tokio::Flavor::CurrentThread, async { 1 + 1 }).unwrap();
/// assert_eq!(v, 2);
/// ```
pub fn run<F: Future>(flavor: Flavor, fut: F) -> std::io::Result<F::Output> {
    run_layered(flavor, None, fut)
}

/// As [`run`], with the runtime wrapped in `layer` (the facade's blocked-task tracking and
/// mock clocks): the wrapped handle is the one current on every thread of the run.
///
/// # Errors
///
/// As [`run`].
///
/// # Examples
///
/// ```
/// let layer: anyio::rt::Layer = Box::new(|rt| rt);
/// let v = anyio_tokio::run_layered(anyio_tokio::Flavor::CurrentThread, Some(layer), async { 3 }).unwrap();
/// assert_eq!(v, 3);
/// ```
pub fn run_layered<F: Future>(
    flavor: Flavor,
    layer: Option<rt::Layer>,
    fut: F,
) -> std::io::Result<F::Output> {
    let mut builder = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Flavor::MultiThread(workers) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = workers {
                b.worker_threads(n.get());
            }
            b
        }
    };
    let runtime = AnyioRuntime::build_inner(&mut builder, layer, None)?;
    let out = runtime.block_on(fut);
    // Tasks still running (detached children of a dropped group) are dropped here; their
    // wrappers report them cancelled. Dropping the runtime also stops and joins its threads,
    // each of which lets go of its handle first (`leave_worker`), so nothing of it remains.
    drop(runtime);
    Ok(out)
}

/// A tokio runtime built from your own [`Builder`](tokio::runtime::Builder), on whose every
/// thread anyio's handle to it stays current, as on the runtimes [`run`] builds.
///
/// anyio finds a tokio runtime it did not start by itself. That costs a little on every poll
/// of anyio's tasks there: a worker thread has no anyio runtime current, so each task enters
/// its own for each poll, and anyio asks tokio for the runtime where it needs one. A runtime
/// built here makes its handle current on each worker and blocking thread as the thread
/// starts, so none of that happens; [`block_on`](Self::block_on) runs a future as [`run`]
/// does, inside anyio's root cancel scope. Everything else is tokio's: configure the builder
/// as you like, and reach the runtime with [`tokio`](Self::tokio).
///
/// [`build`](Self::build) enables all of tokio's drivers (anyio needs the clock and the
/// reactor) and uses the builder's `on_thread_start` and `on_thread_stop` callbacks, replacing
/// any set before (and leaving empty ones behind, so that a runtime built from the builder
/// again gets nothing of this one): to run your own code there, pass it to
/// [`build_with_thread_hooks`](Self::build_with_thread_hooks).
///
/// # Examples
///
/// ```
/// use anyio_tokio::AnyioRuntime;
/// use anyio::task::TaskGroup;
///
/// let mut builder = tokio::runtime::Builder::new_multi_thread();
/// builder.worker_threads(2).thread_name("app-worker");
/// let runtime = AnyioRuntime::build(&mut builder).unwrap();
/// let sum = runtime.block_on(async {
///     TaskGroup::scope(|tg: TaskGroup<anyio::error::Cancelled>| async move {
///         let a = tg.spawn(async { Ok(20) });
///         let b = tg.spawn(async { Ok(22) });
///         Ok(a.await.unwrap() + b.await.unwrap())
///     })
///     .await
/// });
/// assert_eq!(sum.unwrap().unwrap(), 42);
/// ```
pub struct AnyioRuntime {
    // Dropped first: that stops and joins the runtime's threads, each of which lets go of its
    // handle as it stops.
    runtime: tokio::runtime::Runtime,
    handle: RuntimeHandle,
}

impl std::fmt::Debug for AnyioRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyioRuntime").field("runtime", &self.runtime).finish_non_exhaustive()
    }
}

/// A callback for a runtime's threads (see [`AnyioRuntime::build_with_thread_hooks`]).
pub type ThreadHook = Box<dyn Fn() + Send + Sync + 'static>;

impl AnyioRuntime {
    /// Builds the runtime `builder` describes, with all drivers enabled, and anyio's handle to
    /// it current on each of its threads for the thread's whole life.
    ///
    /// # Errors
    ///
    /// The I/O error tokio's [`build`](tokio::runtime::Builder::build) returns, when the
    /// runtime could not be built (out of threads or descriptors, say).
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime =
    ///     anyio_tokio::AnyioRuntime::build(&mut tokio::runtime::Builder::new_current_thread())
    ///         .unwrap();
    /// assert_eq!(runtime.block_on(async { anyio::current_backend() }), Some("tokio"));
    /// ```
    pub fn build(builder: &mut tokio::runtime::Builder) -> io::Result<Self> {
        Self::build_inner(builder, None, None)
    }

    /// As [`build`](Self::build), and each of the runtime's threads also runs `on_start` as it
    /// starts and `on_stop` as it stops: tokio keeps one callback of each kind, which `build`
    /// needs for its own. Worker threads start while the runtime is being built, so `on_start`
    /// must not use the runtime (spawn, sleep, read the clock through anyio); setting up the
    /// thread (affinity, a thread-local, a log line) is what it is for.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let count = started.clone();
    /// let mut builder = tokio::runtime::Builder::new_multi_thread();
    /// builder.worker_threads(2);
    /// let runtime = anyio_tokio::AnyioRuntime::build_with_thread_hooks(
    ///     &mut builder,
    ///     Box::new(move || {
    ///         count.fetch_add(1, Ordering::Relaxed);
    ///     }),
    ///     Box::new(|| {}),
    /// )
    /// .unwrap();
    /// drop(runtime);
    /// assert!(started.load(Ordering::Relaxed) >= 2, "both workers started");
    /// ```
    pub fn build_with_thread_hooks(
        builder: &mut tokio::runtime::Builder,
        on_start: ThreadHook,
        on_stop: ThreadHook,
    ) -> io::Result<Self> {
        Self::build_inner(builder, None, Some((on_start, on_stop)))
    }

    /// [`build`](Self::build), with anyio's handle wrapped in `layer` (the facade's
    /// blocked-task tracking and mock clocks, for [`run_layered`]) and the caller's `hooks`.
    fn build_inner(
        builder: &mut tokio::runtime::Builder,
        layer: Option<rt::Layer>,
        hooks: Option<(ThreadHook, ThreadHook)>,
    ) -> io::Result<Self> {
        // The handle is created before the runtime so that every thread can make it current
        // for its whole life (tasks polled there then find it without entering it per poll).
        let shared = Arc::new(LateHandle(OnceLock::new()));
        let handle: RuntimeHandle = match layer {
            Some(layer) => layer(shared.clone()),
            None => shared.clone(),
        };
        // Weak: tokio keeps these callbacks for the runtime's whole life in state that the
        // handle itself keeps alive (through the tokio handle inside it), so a strong
        // reference would be a cycle, and the runtime's state and descriptors would never be
        // freed.
        let weak = Arc::downgrade(&handle);
        let (on_start, on_stop) = hooks.unzip();
        let runtime = builder
            .on_thread_start(move || {
                if let Some(handle) = weak.upgrade() {
                    enter_worker(handle);
                }
                if let Some(f) = &on_start {
                    f();
                }
            })
            .on_thread_stop(move || {
                if let Some(f) = &on_stop {
                    f();
                }
                leave_worker();
            })
            .enable_all()
            .build();
        // The builder keeps its callbacks: a runtime built from it again, anyio's or not,
        // must not make this runtime's handle current on its threads.
        builder.on_thread_start(|| {}).on_thread_stop(|| {});
        let runtime = runtime?;
        // Filled before any task can run: nothing runs before `block_on` or a spawn, which
        // need the runtime this returns.
        let _ = shared.0.set(TokioRuntime::new(runtime.handle().clone()));
        Ok(Self { runtime, handle })
    }

    /// Runs `fut` to completion on this runtime, with anyio's root cancel scope and this
    /// runtime current, as [`run`] does; the calling thread drives the future (and, on a
    /// current-thread runtime, every task).
    ///
    /// # Panics
    ///
    /// As tokio's [`Runtime::block_on`](tokio::runtime::Runtime::block_on): when called from
    /// inside a runtime (the thread would block its tasks), and when `fut` panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let runtime =
    ///     anyio_tokio::AnyioRuntime::build(&mut tokio::runtime::Builder::new_current_thread())
    ///         .unwrap();
    /// let r = runtime.block_on(anyio::move_on_after(Duration::from_millis(1), anyio::time::sleep_forever()));
    /// assert!(matches!(r, Ok(None)), "the deadline passed");
    /// ```
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let _rt = rt::enter(self.handle.clone());
        anyio_core::__private::run_in_root(|| self.runtime.block_on(anyio_core::__private::main_task(fut)))
    }

    /// anyio's handle to the runtime: the one current on its threads, to make current
    /// elsewhere with [`anyio::rt::enter`](anyio_core::rt::enter).
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime =
    ///     anyio_tokio::AnyioRuntime::build(&mut tokio::runtime::Builder::new_current_thread())
    ///         .unwrap();
    /// let _guard = anyio::rt::enter(runtime.handle().clone());
    /// assert_eq!(anyio::rt::current().name(), "tokio");
    /// ```
    pub fn handle(&self) -> &RuntimeHandle {
        &self.handle
    }

    /// The tokio runtime itself, for what anyio does not wrap (its metrics, spawning a
    /// plain tokio task, `block_on` without anyio's root scope).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut builder = tokio::runtime::Builder::new_multi_thread();
    /// builder.worker_threads(3);
    /// let runtime = anyio_tokio::AnyioRuntime::build(&mut builder).unwrap();
    /// assert_eq!(runtime.tokio().metrics().num_workers(), 3);
    /// ```
    pub fn tokio(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

thread_local! {
    /// On a thread of a runtime built by [`AnyioRuntime`], the guard that keeps that runtime
    /// current for the thread's whole life; `None` elsewhere.
    static WORKER: RefCell<Option<rt::EnterRuntime>> = const { RefCell::new(None) };
}

/// Makes `handle` current on this (new) worker thread until [`leave_worker`].
fn enter_worker(handle: RuntimeHandle) {
    let guard = rt::enter(handle);
    WORKER.with(|w| *w.borrow_mut() = Some(guard));
}

/// Drops the worker's guard while the thread still runs: its handle (and so the runtime's
/// state) is released before the runtime's drop returns, which joins this thread.
fn leave_worker() {
    // Taken out first: the guard's drop touches other thread-locals, not this borrow.
    let guard = WORKER.with(|w| w.borrow_mut().take());
    drop(guard);
}

/// The tokio runtime of the task this thread is polling, as [`lend`] lends it there. Fetching
/// tokio's current handle clones it (two atomic writes on a count every worker shares), and
/// most calls through a lent runtime are clock reads, for every deadline and sleep, which need
/// no handle; the other calls fetch it.
#[derive(Debug)]
struct InTask;

impl InTask {
    fn get() -> TokioRuntime {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => TokioRuntime::new(handle),
            Err(_) => panic!("{}", rt::NO_RUNTIME),
        }
    }
}

impl Runtime for InTask {
    fn name(&self) -> &'static str {
        "tokio"
    }
    fn spawn(&self, task: BoxTask) {
        Self::get().spawn(task)
    }
    fn spawn_task(&self, task: RawTask) {
        Self::get().spawn_task(task)
    }
    fn spawn_task_held(&self, task: RawTask) -> Option<TaskHold> {
        Self::get().spawn_task_held(task)
    }
    fn spawn_blocking(&self, job: BlockingJob) -> io::Result<()> {
        Self::get().spawn_blocking(job)
    }
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        Self::get().timer(deadline)
    }
    fn register_io(&self, fd: OwnedFd) -> io::Result<Box<dyn IoSource>> {
        Self::get().register_io(fd)
    }
    fn id(&self) -> u64 {
        Self::get().id()
    }
    fn enter_thread(&self, f: &mut dyn FnMut()) {
        Self::get().enter_thread(f)
    }
}

/// A [`TokioRuntime`] whose handle is filled in right after the runtime is built.
#[derive(Debug)]
struct LateHandle(OnceLock<TokioRuntime>);

impl LateHandle {
    fn get(&self) -> &TokioRuntime {
        // Filled before `block_on` starts, i.e. before any task can run or spawn.
        self.0.get().expect("the tokio runtime handle is set before any task runs")
    }
}

impl Runtime for LateHandle {
    fn name(&self) -> &'static str {
        "tokio"
    }
    fn spawn(&self, task: BoxTask) {
        self.get().spawn(task)
    }
    fn spawn_task(&self, task: RawTask) {
        self.get().spawn_task(task)
    }
    fn spawn_task_held(&self, task: RawTask) -> Option<TaskHold> {
        self.get().spawn_task_held(task)
    }
    fn spawn_blocking(&self, job: BlockingJob) -> io::Result<()> {
        self.get().spawn_blocking(job)
    }
    fn now(&self) -> Instant {
        self.get().now()
    }
    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        self.get().timer(deadline)
    }
    fn register_io(&self, fd: OwnedFd) -> io::Result<Box<dyn IoSource>> {
        self.get().register_io(fd)
    }
    fn id(&self) -> u64 {
        self.get().id()
    }
    fn enter_thread(&self, f: &mut dyn FnMut()) {
        self.get().enter_thread(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lend_calls_back_once_inside_a_runtime_and_never_outside() {
        let mut calls = 0;
        assert!(!lend(&mut |_| calls += 1), "no tokio runtime here");
        assert_eq!(calls, 0);

        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (lent, seen, detected) = rt.block_on(async {
            let mut seen = Vec::new();
            let lent = lend(&mut |r| seen.push((r.name(), r.id())));
            let detected = detect().expect("inside a tokio runtime");
            (lent, seen, (detected.name(), detected.id()))
        });
        assert!(lent);
        assert_eq!(seen, vec![detected], "called once, with the runtime `detect` finds");
    }

    #[test]
    fn lend_inside_a_task_lends_the_same_runtime_without_its_handle() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (lent, seen, detected) = rt.block_on(async {
            tokio::spawn(async {
                let mut seen = Vec::new();
                let lent = lend(&mut |r| {
                    let t0 = tokio::time::Instant::now().into_std();
                    let now = r.now();
                    assert!(t0 <= now && now <= tokio::time::Instant::now().into_std(), "tokio's clock");
                    seen.push((r.name(), r.id(), format!("{r:?}")));
                });
                let detected = detect().expect("inside a tokio runtime");
                (lent, seen, (detected.name(), detected.id()))
            })
            .await
            .unwrap()
        });
        assert!(lent);
        assert_eq!(seen.len(), 1, "called once");
        assert_eq!((seen[0].0, seen[0].1), detected, "the runtime `detect` finds");
        assert_eq!(seen[0].2, "InTask", "lent without fetching tokio's handle");
    }
}
