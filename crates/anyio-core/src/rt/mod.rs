//! The backend seam: the few things a runtime must supply (spawning, a blocking pool, a clock,
//! timers, a reactor), and how the running code finds the runtime it is on.
//!
//! Everything with semantics (cancel scopes, task groups, checkpoints) lives in this crate and
//! only ever calls these traits, so it behaves the same on every backend by construction. A
//! backend crate implements [`Runtime`] and [`Timer`] for its runtime and registers a
//! [`Detector`] in [`DETECTORS`] so that code running inside a runtime anyio did not start (a
//! `#[tokio::main]` application, say) still finds it.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::context;

mod blocking;
pub(crate) mod run_state;
pub use crate::cancel::cell::RawTask;
pub(crate) use blocking::{run_blocking, BlockingError};

/// A boxed, sendable task as handed to [`Runtime::spawn`].
pub type BoxTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a backend keeps of a spawned task until anyio frees the task's node (see
/// [`Runtime::spawn_task_held`]): dropped with the node, by whoever lets go of the node last.
/// For a task that finished on another thread than its spawner's, and whose `TaskHandle` is
/// gone, that is the spawning side, when the group next spawns or is joined; best effort: a
/// task with a large future, one finished beyond 64 kept at a time, or one whose thread still
/// held it when the group reaped, is freed by the thread that finished it. A `TaskHandle`
/// kept longer keeps the hold, and what it holds (tokio's task, and through it the
/// runtime's shared state), until it drops.
///
/// # Examples
///
/// ```
/// // A backend whose spawn returns a handle that frees the task's memory when dropped keeps it:
/// struct JoinHandleLike(u32);
/// let hold = anyio::rt::TaskHold::new(JoinHandleLike(7));
/// drop(hold); // the handle goes here, with the task's node
/// ```
pub struct TaskHold {
    _value: Box<dyn Send>,
}

impl TaskHold {
    /// Keeps `value` until the hold drops.
    pub fn new<H: Send + 'static>(value: H) -> Self {
        Self { _value: Box::new(value) }
    }
}

impl fmt::Debug for TaskHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHold").finish_non_exhaustive()
    }
}

/// A blocking call as handed to [`Runtime::spawn_blocking`]: it reports its own outcome (anyio
/// wraps the caller's closure so that it never panics into the pool and always reports back).
///
/// # Examples
///
/// ```
/// let job: anyio::rt::BlockingJob = Box::new(|| println!("blocking work"));
/// job();
/// ```
pub type BlockingJob = Box<dyn FnOnce() + Send + 'static>;

/// A shared handle to a runtime.
pub type RuntimeHandle = Arc<dyn Runtime>;

/// A wrapper a runner puts around the runtime it built before anything runs on it (the
/// facade's blocked-task tracking and mock clocks use one).
///
/// # Examples
///
/// ```
/// let identity: anyio::rt::Layer = Box::new(|rt| rt);
/// # drop(identity);
/// ```
pub type Layer = Box<dyn FnOnce(RuntimeHandle) -> RuntimeHandle + Send>;

/// What a backend supplies to the runtime-independent core.
///
/// # Examples
///
/// A backend over a toy executor that runs every task on its own thread:
///
/// ```
/// use std::pin::Pin;
/// use std::time::Instant;
/// use anyio::rt::{BlockingJob, BoxTask, Runtime, Timer};
///
/// #[derive(Debug)]
/// struct ThreadPerTask;
///
/// impl Runtime for ThreadPerTask {
///     fn name(&self) -> &'static str { "thread-per-task" }
///     fn spawn(&self, task: BoxTask) {
///         std::thread::spawn(move || anyio::run(task));
///     }
///     fn spawn_blocking(&self, job: BlockingJob) -> std::io::Result<()> {
///         anyio::rt::spawn_blocking_thread(job)
///     }
///     fn now(&self) -> Instant { Instant::now() }
///     fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
///         anyio::rt::thread_timer(deadline)
///     }
/// }
/// ```
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// The backend's name as accepted by `ANYIO_BACKEND` (`"tokio"`, `"smol"`, `"async-std"`).
    fn name(&self) -> &'static str;

    /// Runs `task` to completion as an independent runtime task (in parallel with the caller on
    /// a multi-thread runtime). The task must keep running when nothing holds a handle to it.
    fn spawn(&self, task: BoxTask);

    /// Runs a task of a task group to completion, as [`spawn`](Self::spawn) does. A
    /// [`RawTask`] is a concrete future (its body lives in the task's cancel-scope node), so a
    /// backend whose executor spawns generically can take it without the box that
    /// [`BoxTask`] costs: one allocation less per spawned task. The default boxes it and calls
    /// `spawn`, which is right for any runtime, only slower.
    fn spawn_task(&self, task: RawTask) {
        self.spawn(Box::pin(task))
    }

    /// [`spawn_task`](Self::spawn_task), returning what the backend wants kept of the task
    /// (tokio's `JoinHandle`) until the task's cancel node is freed, which is always after the
    /// runtime has dropped the task. anyio frees the node of a task that finished on another
    /// thread on the spawning thread where it can (when the group next spawns or is joined,
    /// unless a `TaskHandle` outlives that; see [`TaskHold`]), and the hold goes with it. So a
    /// runtime whose detached tasks free their own memory on whichever worker finished them
    /// can have it freed on the spawning thread instead, away from the allocator's lock of
    /// another thread's arena. The default spawns and keeps nothing.
    ///
    /// The hold must not own the task or be needed to run it: it is dropped only after the
    /// task is gone, so a task kept alive by its own hold would never be freed.
    fn spawn_task_held(&self, task: RawTask) -> Option<TaskHold> {
        self.spawn_task(task);
        None
    }

    /// Runs `job` (a call that blocks its thread: a name lookup, file I/O) on the runtime's pool
    /// of blocking threads, never on a thread that polls tasks. Returns at once; `job` reports
    /// its own outcome. A runtime that is shutting down may drop `job` without running it
    /// (anyio notices: the waiting task gets an error, not a hang).
    ///
    /// # Errors
    ///
    /// The I/O error when the job cannot be started (no thread could be started, say). Never
    /// a panic: the core turns the error into the failure of the operation that needed the
    /// pool.
    fn spawn_blocking(&self, job: BlockingJob) -> io::Result<()>;

    /// The runtime's monotonic clock (tokio's paused test clock included).
    ///
    /// Called with the thread's current-runtime slot borrowed (every deadline and sleep reads
    /// the clock, and cloning the shared handle for it cost two atomic operations on a cache
    /// line that all workers share), so it must not enter a runtime ([`enter`]): that panics.
    fn now(&self) -> Instant;

    /// A timer that fires at `deadline` (at once if it is already past).
    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>>;

    /// A number that identifies this runtime for as long as it runs (AnyIO's event loop, the
    /// key of [`RunVar`](crate::lowlevel::RunVar)): the same for every handle to it, from
    /// any thread, and never reused by another runtime of this backend in the process. The
    /// default is the handle's address, right for a runtime behind one `Arc` for its life.
    fn id(&self) -> u64 {
        (self as *const Self).cast::<()>() as usize as u64
    }

    /// Runs `f` on a thread that is not the runtime's (an anyio worker thread) with the
    /// runtime's own context entered, so that code there can use the backend's APIs directly
    /// (tokio: its handle is entered). The default just runs `f`.
    fn enter_thread(&self, f: &mut dyn FnMut()) {
        f()
    }

    /// The blocked-task monitor of a run that has one (a wrapper the facade puts around the
    /// backend's runtime for `RunOptions::track_blocked` and mock clocks). Backends leave the
    /// default.
    #[doc(hidden)]
    fn monitor(&self) -> Option<Arc<crate::testing::Monitor>> {
        None
    }

    /// Registers `fd` (already in non-blocking mode) with the runtime's reactor for both
    /// readiness directions. The source owns the descriptor from then on: dropping it
    /// deregisters and closes it. The default refuses with [`io::ErrorKind::Unsupported`], for
    /// runtimes without a reactor.
    #[cfg(unix)]
    fn register_io(&self, fd: std::os::fd::OwnedFd) -> io::Result<Box<dyn IoSource>> {
        drop(fd);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("the {} runtime has no I/O reactor", self.name()),
        ))
    }
}

/// Which readiness an I/O operation waits for.
///
/// Non-exhaustive, so the seam can grow (priority data, say) without breaking backends: a
/// backend answers a kind it does not know with [`io::ErrorKind::Unsupported`].
///
/// # Examples
///
/// ```
/// use anyio::rt::Interest;
/// fn describe(interest: Interest) -> &'static str {
///     match interest {
///         Interest::Readable => "readable",
///         Interest::Writable => "writable",
///         _ => "something newer",
///     }
/// }
/// assert_eq!(describe(Interest::Readable), "readable");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Interest {
    /// The descriptor has data to read, a connection to accept, or reached end of stream.
    Readable,
    /// The descriptor can take data, or a connection attempt finished.
    Writable,
}

/// Where an operation stands when [`IoSource::poll_io`] is called.
///
/// Non-exhaustive, so the core can report more about an operation later: a backend treats a
/// phase it does not know like [`IoPhase::Fresh`] (nothing assumed).
///
/// # Examples
///
/// A backend that waits for a reported event before trying again, unless nothing was tried:
///
/// ```
/// use anyio::rt::IoPhase;
/// fn wait_first(phase: IoPhase) -> bool {
///     phase != IoPhase::Fresh
/// }
/// assert!(wait_first(IoPhase::Tried));
/// assert!(!wait_first(IoPhase::Fresh));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoPhase {
    /// Its first poll, nothing tried yet.
    Fresh,
    /// The previous poll of the same operation returned `Pending`: it waited.
    Resumed,
    /// Its first poll, and the core has just run `op` itself, which would block (see
    /// [`IoSource::eager`]).
    Tried,
}

/// A file descriptor registered with a runtime's reactor (see [`Runtime::register_io`]).
///
/// Everything that knows what a socket operation means lives in anyio-core; a source only
/// knows when to retry one.
#[cfg(unix)]
pub trait IoSource: Send + Sync {
    /// Runs `op` (a non-blocking system call) until it returns something other than
    /// [`io::ErrorKind::WouldBlock`], waiting for `interest` between attempts. `op` may be called
    /// at once, before any readiness was reported. `Pending` means `cx` is woken when the
    /// descriptor becomes ready.
    ///
    /// `phase` says what happened before. [`IoPhase::Resumed`]: a backend whose reactor
    /// reports an event per registered wait (async-io) consumes that event if it came, so
    /// that an operation that waited leaves no stale event behind for the next one (which
    /// would cost it a system call that fails); if it has not come, the task may have been
    /// woken by something else after the descriptor became ready, so `op` is still tried
    /// once rather than waiting for a reactor turn. [`IoPhase::Tried`]: `op` has just
    /// failed with `WouldBlock`, so a backend that can wait without trying again should. A
    /// backend that clears readiness only when `op` would block after readiness was reported
    /// (tokio) must not clear on the strength of a try made before it asked, and may treat
    /// every phase alike.
    ///
    /// `op` returns `Ok(true)` when it drained the descriptor: a stream read that returned
    /// less than its buffer held, so the kernel had nothing more at that moment. A backend
    /// that caches readiness (tokio) clears it then, as tokio's own sockets do after a short
    /// read, so that the next read waits for a fresh event instead of first failing a system
    /// call. Any data that arrives later raises a new event, so nothing is missed.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        phase: IoPhase,
        op: &mut dyn FnMut() -> io::Result<bool>,
    ) -> Poll<io::Result<()>>;

    /// Whether the core may run an operation's system call once before its first
    /// [`poll_io`](Self::poll_io), without asking for readiness (then with
    /// [`IoPhase::Tried`] if it would block). Worth it where asking costs more than the rare
    /// failed call: async-io tries first anyway, and tokio's write readiness is nearly always
    /// set. Asked once, when the descriptor is registered. The default is `false`.
    fn eager(&self, interest: Interest) -> bool {
        let _ = interest;
        false
    }

    /// Waits until the reactor reports `interest` readiness (the first poll after registering
    /// waits for the descriptor's current state).
    fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>>;
}

/// A resettable one-shot timer.
pub trait Timer: Send + Sync {
    /// `Ready` once the deadline has passed; otherwise registers `cx`'s waker and is `Pending`.
    fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;

    /// Moves the deadline (earlier or later); the next poll uses the new one.
    fn reset(self: Pin<&mut Self>, deadline: Instant);
}

/// A [`Detector::lend`]: runs the callback with the detected runtime, or returns `false`.
///
/// # Examples
///
/// ```
/// use anyio::rt::{LendFn, Runtime};
/// fn lend_none(_f: &mut dyn FnMut(&dyn Runtime)) -> bool {
///     false
/// }
/// let lend: LendFn = lend_none;
/// assert!(!lend(&mut |_| {}));
/// ```
pub type LendFn = fn(&mut dyn FnMut(&dyn Runtime)) -> bool;

/// A way to find a runtime that anyio did not start, registered by each backend crate.
#[derive(Debug)]
pub struct Detector {
    /// The backend's name, as in [`Runtime::name`].
    pub name: &'static str,
    /// `true` when `detect` only succeeds inside a runtime of this backend (tokio's current
    /// handle, async-std's current task); `false` for a global executor that works anywhere and
    /// is only used when no runtime is running.
    pub exact: bool,
    /// Returns the runtime the calling code runs on, if this backend can tell.
    pub detect: fn() -> Option<RuntimeHandle>,
    /// Among global executors, lower ranks are preferred when `ANYIO_BACKEND` names none of
    /// them (smol 0, async-std 1: smol is async-std's successor).
    pub rank: u8,
    /// Whether this thread is polling one of this backend's tasks right now (tokio: inside a
    /// task; not on its blocking threads, where its handle is current too). Blocking such a
    /// thread would stall the runtime, so `anyio::run` and the blocking `from_thread` calls
    /// refuse there, and only there.
    pub polling: fn() -> bool,
    /// Runs the callback exactly once with the runtime `detect` would return, without building
    /// a shared handle, and returns `true`; returns `false` without calling it when `detect`
    /// would find none. The lent runtime answers [`Runtime::name`] and [`Runtime::id`] as
    /// `detect`'s does (so it overrides `id`: its address changes from call to call). For a
    /// backend whose `detect` allocates (tokio wraps its current handle): [`with_current`]
    /// uses it, so code running in a runtime anyio did not start (a `#[tokio::main]` worker)
    /// allocates nothing to read the clock. `None`: `detect` is used.
    pub lend: Option<LendFn>,
}

/// A [`Detector::polling`] for a backend whose threads never poll tasks of their own.
///
/// ```
/// assert!(!anyio::rt::never_polling());
/// ```
pub fn never_polling() -> bool {
    false
}

/// The detectors of every backend compiled in.
#[linkme::distributed_slice]
pub static DETECTORS: [Detector];

thread_local! {
    static CURRENT: RefCell<Option<RuntimeHandle>> = const { RefCell::new(None) };
}

/// The message of the panic raised when no runtime can be found.
pub const NO_RUNTIME: &str = "anyio: no async runtime found. Run this code inside `anyio::run(...)` \
or `#[anyio::main]`, inside a tokio runtime (`#[tokio::main]`), or enable anyio's `smol` or \
`async-std` feature, whose global executors work from any thread.";

/// The runtime the calling code runs on, or `None` if there is none.
///
/// Looks first at the runtime anyio entered on this thread (set by `anyio::run` and by every task
/// a task group spawns), then asks each backend's [`Detector`]: first the exact ones, then the
/// global executors (the one `ANYIO_BACKEND` names first).
///
/// # Examples
///
/// ```
/// // Inside a run, the runtime that runs the code; outside, only a backend with a global
/// // executor (smol, async-std) is found, when it is compiled in.
/// anyio::run(async { assert!(anyio::rt::try_current().is_some()) });
/// if let Some(rt) = anyio::rt::try_current() {
///     assert!(["smol", "async-std"].contains(&rt.name()));
/// }
/// ```
pub fn try_current() -> Option<RuntimeHandle> {
    if let Some(rt) = CURRENT.with(|c| c.borrow().clone()) {
        return Some(rt);
    }
    detection_order().find_map(|d| (d.detect)())
}

/// Every detector in the order they are asked: the exact ones, then the global executors.
fn detection_order() -> impl Iterator<Item = &'static Detector> {
    DETECTORS.iter().filter(|d| d.exact).chain(fallback_order().iter().copied())
}

/// The global-executor detectors, the one `ANYIO_BACKEND` names first; computed once.
fn fallback_order() -> &'static [&'static Detector] {
    static ORDER: std::sync::OnceLock<Vec<&'static Detector>> = std::sync::OnceLock::new();
    ORDER.get_or_init(|| {
        let preferred = std::env::var("ANYIO_BACKEND").ok();
        let mut fallbacks: Vec<&'static Detector> = DETECTORS.iter().filter(|d| !d.exact).collect();
        fallbacks.sort_by_key(|d| (Some(d.name) != preferred.as_deref(), d.rank));
        fallbacks
    })
}

/// Runs `f` with the current runtime (see [`current`]).
///
/// The `&dyn Runtime` may be a temporary lent for the call (see [`Detector::lend`]): its
/// address is no identity, [`Runtime::id`] is.
///
/// # Panics
///
/// Panics with [`NO_RUNTIME`] when no runtime can be found.
///
/// # Examples
///
/// ```
/// anyio::run(async {
///     let now = anyio::rt::with_current(|rt| rt.now());
///     assert!(now <= std::time::Instant::now());
/// });
/// ```
pub fn with_current<R>(f: impl FnOnce(&dyn Runtime) -> R) -> R {
    // The handle is cloned out so that `f` may itself enter another runtime.
    if let Some(rt) = CURRENT.with(|c| c.borrow().clone()) {
        return f(&*rt);
    }
    with_detected(f)
}

/// The current runtime's clock, as `with_current(|rt| rt.now())` without cloning the handle
/// (see [`Runtime::now`]).
#[inline]
pub(crate) fn now() -> Instant {
    let entered = CURRENT.with(|c| c.borrow().as_ref().map(|rt| rt.now()));
    entered.unwrap_or_else(|| with_detected(|rt| rt.now()))
}

/// [`with_current`] where anyio entered no runtime: the detectors in [`try_current`]'s order,
/// each lending its runtime where it can.
/// Not inline (callers stay small), but not cold either: it is the path of every clock read in
/// code running under a runtime anyio did not start.
#[inline(never)]
fn with_detected<R>(f: impl FnOnce(&dyn Runtime) -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    for d in detection_order() {
        match d.lend {
            // Whatever `lend` returns, `f` runs at most once and its result is kept.
            Some(lend) => {
                lend(&mut |rt| {
                    if let Some(f) = f.take() {
                        out = Some(f(rt));
                    }
                });
            }
            None => {
                if let Some(rt) = (d.detect)() {
                    out = f.take().map(|f| f(&*rt));
                }
            }
        }
        if let Some(out) = out {
            return out;
        }
    }
    panic!("{NO_RUNTIME}")
}

/// The runtime the calling code runs on.
///
/// # Panics
///
/// Panics with [`NO_RUNTIME`], which names the fix, when no runtime can be found.
///
/// # Examples
///
/// ```
/// anyio::run(async {
///     // The default backend, unless ANYIO_BACKEND names another.
///     println!("running on {}", anyio::rt::current().name());
/// });
/// ```
pub fn current() -> RuntimeHandle {
    try_current().unwrap_or_else(|| panic!("{NO_RUNTIME}"))
}

/// Makes `rt` the current runtime of this thread until the guard is dropped. Backends call this
/// around `block_on`; task groups call it around every poll of a child.
///
/// # Examples
///
/// ```
/// # use std::sync::Arc;
/// # anyio::run(async {
/// let rt = anyio::rt::current();
/// # });
/// ```
pub fn enter(rt: RuntimeHandle) -> EnterRuntime {
    let addr = handle_addr(&rt);
    let prev = CURRENT.with(|c| swap_current(c, Some(rt)));
    context::with(|c| c.rt.set(addr));
    EnterRuntime { prev, _not_send: std::marker::PhantomData }
}

/// [`enter`] with the handle moved in from `home` rather than given: the guard moves it back
/// when it drops. A task group's task enters its runtime on every poll where the thread has
/// another one (or none) current, as on the workers of a tokio runtime anyio did not build;
/// cloning the handle there cost two atomic writes per poll, on a count that every worker
/// shares. With this the task clones it once.
///
/// `home` must hold a handle (checked in debug builds); while the guard lives it holds the
/// handle that was current before.
#[inline]
pub(crate) fn enter_moved(home: &mut Option<RuntimeHandle>) -> EnterMoved<'_> {
    debug_assert!(home.is_some(), "a runtime handle to enter");
    let addr = slot_addr(home);
    CURRENT.with(|c| std::mem::swap(&mut *borrow_current(c), home));
    let prev_addr = context::with(|c| c.rt.replace(addr));
    EnterMoved { addr, prev_addr, home, _not_send: std::marker::PhantomData }
}

/// The guard of [`enter_moved`].
pub(crate) struct EnterMoved<'a> {
    addr: *const (),
    prev_addr: *const (),
    home: &'a mut Option<RuntimeHandle>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnterMoved<'_> {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| std::mem::swap(&mut *borrow_current(c), self.home));
        context::with(|c| c.rt.set(self.prev_addr));
        // Guards nest, so the slot held the handle moved in. Were it another one (code in
        // between leaked a guard), that one is dropped here, after the slot is released, and
        // `home` is left empty: the next entry clones the handle again.
        if slot_addr(self.home) != self.addr {
            drop(self.home.take());
        }
    }
}

/// Replaces the thread's current runtime. It is borrowed only while `Runtime::now` runs (see
/// there), so a borrow here means a `now` that enters a runtime: said so, not a bare
/// `BorrowMutError`.
fn swap_current(c: &RefCell<Option<RuntimeHandle>>, rt: Option<RuntimeHandle>) -> Option<RuntimeHandle> {
    std::mem::replace(&mut *borrow_current(c), rt)
}

/// The thread's runtime slot, writable (see [`swap_current`]).
#[inline]
fn borrow_current(c: &RefCell<Option<RuntimeHandle>>) -> std::cell::RefMut<'_, Option<RuntimeHandle>> {
    c.try_borrow_mut().unwrap_or_else(|_| entered_in_now())
}

#[cold]
fn entered_in_now() -> ! {
    panic!("a runtime was entered from inside `Runtime::now`, which must not enter one")
}

/// The address that identifies a runtime handle in the thread's context.
pub(crate) fn handle_addr(rt: &RuntimeHandle) -> *const () {
    Arc::as_ptr(rt).cast::<()>()
}

/// [`handle_addr`] of a slot's handle; null for an empty slot.
fn slot_addr(slot: &Option<RuntimeHandle>) -> *const () {
    slot.as_ref().map_or(std::ptr::null(), handle_addr)
}

/// Whether this thread is polling a task of a runtime a [`Detector`] recognises (a tokio task,
/// an async-std task), whoever started it: a thread that must not block. A runtime's blocking
/// threads (tokio's `spawn_blocking`, anyio's workers) may.
///
/// ```
/// assert!(!anyio::rt::inside_foreign_runtime());
/// ```
pub fn inside_foreign_runtime() -> bool {
    DETECTORS.iter().any(|d| (d.polling)())
}

/// Whether this thread must not block: it runs an anyio runner (`anyio::run`'s `block_on`),
/// is polling an anyio task, or is polling a task of a runtime a [`Detector`] recognises. A
/// runtime's blocking threads and anyio's worker threads may block, even where a runtime's
/// handle is current.
///
/// ```
/// assert!(!anyio::rt::is_polling());
/// anyio::run(async { assert!(anyio::rt::is_polling()) });
/// ```
pub fn is_polling() -> bool {
    if run_state::in_runner() || context::with(|c| c.task.get() != 0) {
        return true;
    }
    // anyio's own workers poll no task of any runtime (and so need no backend's test; tokio's
    // handle is entered on them).
    !crate::thread::pool::is_worker_thread() && inside_foreign_runtime()
}

/// Whether anyio entered a runtime on this thread (used to refuse nested `run` calls).
///
/// ```
/// assert!(!anyio::rt::is_entered());
/// ```
pub fn is_entered() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// Restores the previously current runtime when dropped.
#[must_use = "the runtime is only current while the guard lives"]
pub struct EnterRuntime {
    prev: Option<RuntimeHandle>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl fmt::Debug for EnterRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterRuntime").finish_non_exhaustive()
    }
}

impl Drop for EnterRuntime {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let addr = slot_addr(&prev);
        let left = CURRENT.with(|c| swap_current(c, prev));
        context::with(|c| c.rt.set(addr));
        // Dropped after the slot is released: if it was the last handle, the runtime's
        // destructors may read the current runtime.
        drop(left);
    }
}

/// A timer backed by a sleeping thread. Only for runtimes without timers of their own (the
/// documentation's toy runtime); the real backends use their runtime's timer wheel.
///
/// # Examples
///
/// ```
/// let t = anyio::rt::thread_timer(std::time::Instant::now());
/// # drop(t);
/// ```
pub fn thread_timer(deadline: Instant) -> Pin<Box<dyn Timer>> {
    Box::pin(ThreadTimer { deadline, armed: None })
}

/// Runs `job` on a new thread of its own, named `anyio-blocking`: [`Runtime::spawn_blocking`]
/// for runtimes without a blocking pool (the documentation's toy runtime). The real backends
/// use their runtime's pool, which reuses threads and bounds their number.
///
/// # Errors
///
/// The I/O error of a thread that could not be started; `job` is dropped unrun then.
///
/// # Examples
///
/// ```
/// let (tx, rx) = std::sync::mpsc::channel();
/// anyio::rt::spawn_blocking_thread(Box::new(move || tx.send(6 * 7).unwrap())).unwrap();
/// assert_eq!(rx.recv().unwrap(), 42);
/// ```
pub fn spawn_blocking_thread(job: BlockingJob) -> io::Result<()> {
    std::thread::Builder::new().name("anyio-blocking".into()).spawn(job).map(drop)
}

/// Whether the sleeping thread has fired, and the waker to wake when it does.
type Fired = Arc<std::sync::Mutex<(bool, Option<std::task::Waker>)>>;

struct ThreadTimer {
    deadline: Instant,
    armed: Option<(Instant, Fired)>,
}

impl Timer for ThreadTimer {
    fn poll_expired(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let needs_thread = !matches!(&self.armed, Some((at, _)) if *at == deadline);
        if needs_thread {
            let state = Arc::new(std::sync::Mutex::new((false, None::<std::task::Waker>)));
            let s = state.clone();
            std::thread::spawn(move || {
                let now = Instant::now();
                if deadline > now {
                    std::thread::sleep(deadline - now);
                }
                let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
                g.0 = true;
                if let Some(w) = g.1.take() {
                    w.wake();
                }
            });
            self.armed = Some((deadline, state));
        }
        let (_, state) = self.armed.as_ref().expect("armed above");
        let mut g = state.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 {
            return Poll::Ready(());
        }
        g.1 = Some(cx.waker().clone());
        Poll::Pending
    }

    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.deadline = deadline;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_addr() -> *const () {
        CURRENT.with(|c| slot_addr(&c.borrow()))
    }

    #[test]
    fn a_moved_in_handle_is_current_inside_and_comes_back_after() {
        let outer: RuntimeHandle = Arc::new(crate::doc_rt::DocRuntime);
        let _outer = enter(outer.clone());
        let mine: RuntimeHandle = Arc::new(crate::doc_rt::DocRuntime);
        let mut home = Some(mine.clone());
        for _ in 0..2 {
            let g = enter_moved(&mut home);
            assert_eq!(current_addr(), handle_addr(&mine));
            assert_eq!(context::with(|c| c.rt.get()), handle_addr(&mine));
            drop(g);
            assert_eq!(current_addr(), handle_addr(&outer), "the previous runtime is current again");
            assert_eq!(context::with(|c| c.rt.get()), handle_addr(&outer));
            assert!(home.as_ref().is_some_and(|h| Arc::ptr_eq(h, &mine)), "the handle is back home");
        }
        assert_eq!(Arc::strong_count(&mine), 2, "moved, never cloned");
    }

    #[test]
    fn a_guard_leaked_inside_leaves_home_empty_and_restores_the_previous_runtime() {
        let outer: RuntimeHandle = Arc::new(crate::doc_rt::DocRuntime);
        let _outer = enter(outer.clone());
        let mine: RuntimeHandle = Arc::new(crate::doc_rt::DocRuntime);
        let other: RuntimeHandle = Arc::new(crate::doc_rt::DocRuntime);
        let mut home = Some(mine.clone());
        // Not dropped in its turn, as if leaked (dropped at the end, so nothing really leaks).
        let leaked;
        {
            let _g = enter_moved(&mut home);
            leaked = std::mem::ManuallyDrop::new(enter(other.clone()));
        }
        assert!(home.is_none(), "another runtime's handle is not kept as this one's");
        assert_eq!(current_addr(), handle_addr(&outer));
        assert_eq!(context::with(|c| c.rt.get()), handle_addr(&outer));
        assert_eq!(Arc::strong_count(&other), 1, "the handle left in the slot was dropped");
        drop(std::mem::ManuallyDrop::into_inner(leaked));
    }
}
