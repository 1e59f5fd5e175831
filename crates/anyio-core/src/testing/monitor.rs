//! Knowing when every task of a run is blocked: what `wait_all_tasks_blocked` and a
//! [`MockClock`]'s autojump need, and trio's run loop knows for free.
//!
//! A run with a monitor has its runtime wrapped in [`Layered`], which counts what could
//! still make progress: tasks that are scheduled or being polled (each task's polls and
//! wakers pass through [`Tracked`]), and blocking jobs in flight. When the count drops to
//! zero the run is idle; a driver thread then waits the cushion of the first
//! `wait_all_tasks_blocked` caller, or the clock's autojump threshold, and acts if the run is
//! still idle, unless a watched socket is ready or a timer overdue (the runtime is about to
//! wake someone: trio's run loop would have seen those events first).
//!
//! The wrapper also owns every anyio timer of the run, so that a mock clock can fire them and
//! the driver can tell the next deadline.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::clock::MockClock;
use crate::rt::{BlockingJob, BoxTask, RawTask, Runtime, RuntimeHandle, Timer};

/// How long a ready socket or an overdue timer may hold off idleness with no task waking:
/// longer only for a readiness nobody waits for any more (an operation cancelled after it
/// started waiting), which must not stop autojump for good.
const GRACE: Duration = Duration::from_millis(250);

/// A run's monitor: shared by the wrapped runtime, every tracked task and the driver thread.
#[doc(hidden)]
pub struct Monitor {
    clock: Option<MockClock>,
    /// Tasks scheduled or being polled, plus blocking jobs in flight.
    active: AtomicUsize,
    driver: Mutex<DriverState>,
    wake_driver: Condvar,
    timers: Mutex<Timers>,
    io: Mutex<slab::Slab<Arc<IoWatch>>>,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("clock", &self.clock)
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct DriverState {
    /// Since when nothing could make progress (`None` while something can).
    idle_since: Option<Instant>,
    /// Counts idle periods: an action is taken only in the period it was planned in.
    epoch: u64,
    /// `wait_all_tasks_blocked` callers by (cushion, arrival).
    waiters: BTreeMap<(Duration, u64), Waker>,
    next_waiter: u64,
    stop: bool,
}

#[derive(Default)]
struct Timers {
    /// Pending timers by (deadline, id); `None` once woken (or before the first poll).
    map: BTreeMap<(Instant, u64), Option<Waker>>,
    next: u64,
}

/// The readiness a source's operations are waiting for right now.
struct IoWatch {
    fd: std::os::fd::RawFd,
    waiting: [AtomicBool; 2],
}

impl Monitor {
    fn new(clock: Option<MockClock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            active: AtomicUsize::new(0),
            driver: Mutex::new(DriverState::default()),
            wake_driver: Condvar::new(),
            timers: Mutex::new(Timers::default()),
            io: Mutex::new(slab::Slab::new()),
        })
    }

    pub(crate) fn clock(&self) -> Option<&MockClock> {
        self.clock.as_ref()
    }

    fn driver(&self) -> MutexGuard<'_, DriverState> {
        self.driver.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn timers(&self) -> MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn inc(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    fn dec(&self) {
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            let mut d = self.driver();
            d.idle_since = Some(Instant::now());
            d.epoch += 1;
            drop(d);
            self.wake_driver.notify_one();
        }
    }

    /// Counts a blocking job (a worker-thread call, a DNS lookup) until the guard drops.
    fn busy(self: &Arc<Self>) -> Busy {
        self.inc();
        Busy(self.clone())
    }

    /// `job`, counted as activity from now until it has run (and woken whoever waits for it).
    pub(crate) fn count_job(self: &Arc<Self>, job: BlockingJob) -> BlockingJob {
        let busy = self.busy();
        Box::new(move || {
            job();
            drop(busy);
        })
    }

    fn now(&self, inner: &dyn Runtime) -> Instant {
        match &self.clock {
            Some(c) => c.shared.now(),
            None => inner.now(),
        }
    }

    /// The clock moved or changed: wake the timers now due (all of them when `all`, so that
    /// they recompute when they are due in real time), and let the driver re-plan.
    pub(crate) fn clock_changed(&self, all: bool) {
        let now = self.clock.as_ref().map(|c| c.shared.now());
        let wakers: Vec<Waker> = {
            let mut t = self.timers();
            t.map
                .iter_mut()
                .filter(|((at, _), _)| all || now.is_some_and(|n| *at <= n))
                .filter_map(|(_, w)| w.take())
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
        self.wake_driver.notify_one();
    }

    /// Registers a `wait_all_tasks_blocked` caller; returns its key.
    pub(crate) fn add_waiter(&self, cushion: Duration, waker: &Waker) -> (Duration, u64) {
        let mut d = self.driver();
        let key = (cushion, d.next_waiter);
        d.next_waiter += 1;
        d.waiters.insert(key, waker.clone());
        drop(d);
        self.wake_driver.notify_one();
        key
    }

    /// Updates a waiter's waker; `false` once the driver released it.
    pub(crate) fn poll_waiter(&self, key: (Duration, u64), waker: &Waker) -> bool {
        let mut d = self.driver();
        match d.waiters.get_mut(&key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove_waiter(&self, key: (Duration, u64)) {
        self.driver().waiters.remove(&key);
    }

    /// A registered timer whose deadline has passed but which nobody has woken yet: the
    /// runtime's real timer is about to fire.
    fn timer_overdue(&self) -> bool {
        let now = self.clock.as_ref().map_or_else(Instant::now, |c| c.shared.now());
        self.timers().map.range(..(now, u64::MAX)).any(|(_, w)| w.is_some())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers().map.iter().find(|(_, w)| w.is_some()).map(|((at, _), _)| *at)
    }

    /// Whether a socket some operation waits on is ready now (the reactor is about to wake
    /// that operation).
    fn io_ready(&self) -> bool {
        let io = self.io.lock().unwrap_or_else(PoisonError::into_inner);
        let mut fds: Vec<libc::pollfd> = io
            .iter()
            .filter_map(|(_, w)| {
                let r = w.waiting[0].load(Ordering::Acquire);
                let wr = w.waiting[1].load(Ordering::Acquire);
                let events = if r { libc::POLLIN } else { 0 } | if wr { libc::POLLOUT } else { 0 };
                (events != 0).then_some(libc::pollfd { fd: w.fd, events, revents: 0 })
            })
            .collect();
        if fds.is_empty() {
            return false;
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs that poll(2) may write
        // to, and a zero timeout never blocks. Its descriptors are open: a source leaves the
        // list (under the lock held here) before its descriptor is closed.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        drop(io);
        n > 0
    }

    fn run_driver(self: Arc<Self>) {
        let mut d = self.driver();
        // The idle period in which a ready socket or an overdue timer was first seen.
        let mut holding_off: Option<(u64, Instant)> = None;
        loop {
            if d.stop {
                return;
            }
            let idle_since = d.idle_since.filter(|_| self.active.load(Ordering::SeqCst) == 0);
            let Some(idle_since) = idle_since else {
                d = self.wake_driver.wait(d).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let waiter_due = d.waiters.keys().next().map(|(c, _)| idle_since + *c);
            // As trio: while anyone waits for idleness, the clock does not jump.
            let jump_due = self
                .clock
                .as_ref()
                .filter(|_| waiter_due.is_none())
                .and_then(|c| c.shared.autojump_after())
                .filter(|_| self.next_deadline().is_some())
                .map(|t| idle_since + t);
            let Some(due) = waiter_due.or(jump_due) else {
                d = self.wake_driver.wait(d).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let now = Instant::now();
            if due > now {
                d = self.wake_driver.wait_timeout(d, due - now).unwrap_or_else(PoisonError::into_inner).0;
                continue;
            }
            let epoch = d.epoch;
            drop(d);
            let pending_wake = self.io_ready() || self.timer_overdue();
            d = self.driver();
            if d.epoch != epoch || self.active.load(Ordering::SeqCst) != 0 {
                continue;
            }
            if pending_wake {
                let since = match holding_off {
                    Some((e, t)) if e == epoch => t,
                    _ => {
                        holding_off = Some((epoch, now));
                        now
                    }
                };
                if now.duration_since(since) < GRACE {
                    d = self
                        .wake_driver
                        .wait_timeout(d, Duration::from_millis(1))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    continue;
                }
            }
            holding_off = None;
            let wake_waiters = waiter_due.is_some();
            // Whatever this wakes starts a new idle period when it blocks again; one that
            // wakes nothing tracked (a task outside the run) starts it now.
            d.idle_since = Some(Instant::now());
            d.epoch += 1;
            if wake_waiters {
                let cushion = d.waiters.keys().next().map(|(c, _)| *c);
                let mut woken = Vec::new();
                while let Some(entry) = d.waiters.first_entry() {
                    if Some(entry.key().0) != cushion {
                        break;
                    }
                    woken.push(entry.remove());
                }
                drop(d);
                woken.into_iter().for_each(Waker::wake);
            } else {
                drop(d);
                if let (Some(clock), Some(at)) = (&self.clock, self.next_deadline()) {
                    clock.shared.jump_to(at);
                    self.clock_changed(false);
                }
            }
            d = self.driver();
        }
    }
}

/// Counts one blocking job as activity while it lives.
pub(crate) struct Busy(Arc<Monitor>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The monitor of the run the calling code belongs to, if it has one.
pub(crate) fn current() -> Option<Arc<Monitor>> {
    crate::rt::try_current()?.monitor()
}

/// `job`, counted as activity of the current run if it has a monitor.
pub(crate) fn count_job(job: BlockingJob) -> BlockingJob {
    // Only the runtime anyio entered: detecting a foreign one costs far more than a job.
    match crate::rt::is_entered().then(current).flatten() {
        Some(m) => m.count_job(job),
        None => job,
    }
}

/// Owns a run's monitor: builds the runtime wrapper and the root's tracking, and stops the
/// driver thread when dropped (after the run).
#[doc(hidden)]
pub struct Instrumentation {
    monitor: Arc<Monitor>,
    driver: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for Instrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumentation").field("monitor", &self.monitor).finish_non_exhaustive()
    }
}

impl Instrumentation {
    /// A monitor for one run, with `clock` as its clock if given.
    ///
    /// # Errors
    ///
    /// The error of a driver thread the system would not start.
    pub fn new(clock: Option<MockClock>) -> io::Result<Self> {
        let monitor = Monitor::new(clock);
        if let Some(c) = &monitor.clock {
            c.shared.attach(&monitor);
        }
        let m = monitor.clone();
        let driver =
            std::thread::Builder::new().name("anyio-idle-monitor".into()).spawn(move || m.run_driver())?;
        Ok(Self { monitor, driver: Some(driver) })
    }

    /// Wraps the runtime a backend built for the run.
    pub fn layer(&self) -> crate::rt::Layer {
        let monitor = self.monitor.clone();
        Box::new(move |inner: RuntimeHandle| -> RuntimeHandle { Arc::new(Layered { inner, monitor }) })
    }

    /// Tracks the run's main future.
    pub fn track<F: Future>(&self, fut: F) -> Tracked<F> {
        Tracked::new(&self.monitor, fut)
    }
}

impl Drop for Instrumentation {
    fn drop(&mut self) {
        self.monitor.driver().stop = true;
        self.monitor.wake_driver.notify_all();
        if let Some(d) = self.driver.take() {
            let _ = d.join();
        }
    }
}

/// A runtime whose tasks, blocking jobs, timers and sockets the monitor sees.
struct Layered {
    inner: RuntimeHandle,
    monitor: Arc<Monitor>,
}

impl fmt::Debug for Layered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layered").field("inner", &self.inner).field("monitor", &self.monitor).finish()
    }
}

impl Runtime for Layered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn spawn(&self, task: BoxTask) {
        self.inner.spawn(Box::pin(Tracked::new(&self.monitor, task)));
    }

    fn spawn_task(&self, task: RawTask) {
        // Tracked around the task itself: one box, not one for the task and one around it.
        self.inner.spawn(Box::pin(Tracked::new(&self.monitor, task)));
    }

    fn spawn_blocking(&self, job: BlockingJob) -> io::Result<()> {
        self.inner.spawn_blocking(self.monitor.count_job(job))
    }

    fn now(&self) -> Instant {
        self.monitor.now(&*self.inner)
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        Box::pin(LayerTimer {
            inner: self.inner.clone(),
            monitor: self.monitor.clone(),
            deadline,
            key: None,
            real: None,
        })
    }

    fn id(&self) -> u64 {
        self.inner.id()
    }

    fn enter_thread(&self, f: &mut dyn FnMut()) {
        self.inner.enter_thread(f)
    }

    #[cfg(unix)]
    fn register_io(&self, fd: std::os::fd::OwnedFd) -> io::Result<Box<dyn crate::rt::IoSource>> {
        use std::os::fd::AsRawFd;
        let raw = fd.as_raw_fd();
        let inner = self.inner.register_io(fd)?;
        let watch = Arc::new(IoWatch { fd: raw, waiting: [AtomicBool::new(false), AtomicBool::new(false)] });
        let key = self.monitor.io.lock().unwrap_or_else(PoisonError::into_inner).insert(watch.clone());
        Ok(Box::new(LayerSource { inner: Some(inner), watch, key, monitor: self.monitor.clone() }))
    }

    fn monitor(&self) -> Option<Arc<Monitor>> {
        Some(self.monitor.clone())
    }
}

/// A registered socket whose waits the monitor sees.
struct LayerSource {
    inner: Option<Box<dyn crate::rt::IoSource>>,
    watch: Arc<IoWatch>,
    key: usize,
    monitor: Arc<Monitor>,
}

impl LayerSource {
    fn inner(&self) -> &dyn crate::rt::IoSource {
        self.inner.as_deref().expect("present until drop")
    }

    fn note(&self, interest: crate::rt::Interest, pending: bool) {
        let i = usize::from(interest == crate::rt::Interest::Writable);
        self.watch.waiting[i].store(pending, Ordering::Release);
    }
}

impl crate::rt::IoSource for LayerSource {
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: crate::rt::Interest,
        phase: crate::rt::IoPhase,
        op: &mut dyn FnMut() -> io::Result<bool>,
    ) -> Poll<io::Result<()>> {
        let r = self.inner().poll_io(cx, interest, phase, op);
        self.note(interest, r.is_pending());
        r
    }

    fn eager(&self, interest: crate::rt::Interest) -> bool {
        self.inner().eager(interest)
    }

    fn poll_ready(&self, cx: &mut Context<'_>, interest: crate::rt::Interest) -> Poll<io::Result<()>> {
        let r = self.inner().poll_ready(cx, interest);
        self.note(interest, r.is_pending());
        r
    }
}

impl Drop for LayerSource {
    fn drop(&mut self) {
        // Off the watch list before the inner source closes the descriptor.
        let mut io = self.monitor.io.lock().unwrap_or_else(PoisonError::into_inner);
        io.try_remove(self.key);
        let inner = self.inner.take();
        drop(io);
        drop(inner);
    }
}

/// An anyio timer of a monitored run: on the mock clock when there is one, else on the
/// runtime's timer; registered with the monitor while it waits.
struct LayerTimer {
    inner: RuntimeHandle,
    monitor: Arc<Monitor>,
    deadline: Instant,
    key: Option<(Instant, u64)>,
    /// The runtime's timer, set for when the deadline comes in real time.
    real: Option<(Instant, Pin<Box<dyn Timer>>)>,
}

impl LayerTimer {
    fn unregister(&mut self) {
        if let Some(key) = self.key.take() {
            self.monitor.timers().map.remove(&key);
        }
    }

    fn poll_real(&mut self, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.real {
            Some((set, t)) => {
                if *set != at {
                    t.as_mut().reset(at);
                    *set = at;
                }
            }
            None => self.real = Some((at, self.inner.timer(at))),
        }
        self.real.as_mut().expect("set above").1.as_mut().poll_expired(cx)
    }
}

impl Timer for LayerTimer {
    fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.monitor.now(&*this.inner) >= this.deadline {
            this.unregister();
            return Poll::Ready(());
        }
        {
            let mut t = this.monitor.timers();
            let key = match this.key {
                Some(k) => k,
                None => {
                    let k = (this.deadline, t.next);
                    t.next += 1;
                    this.key = Some(k);
                    k
                }
            };
            let slot = t.map.entry(key).or_insert(None);
            match slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        let real_at = match this.monitor.clock() {
            Some(c) => c.shared.real_instant_for(this.deadline),
            None => Some(this.deadline),
        };
        match real_at {
            Some(at) => {
                if this.poll_real(at, cx).is_ready() {
                    this.unregister();
                    return Poll::Ready(());
                }
            }
            None => this.real = None,
        }
        Poll::Pending
    }

    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        this.unregister();
        this.deadline = deadline;
    }
}

impl Drop for LayerTimer {
    fn drop(&mut self) {
        self.unregister();
    }
}

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// One task's state as the monitor counts it: scheduled, running and notified count as
/// activity; idle (waiting for a wake) and done do not.
struct TaskSlot {
    state: AtomicU8,
    monitor: Arc<Monitor>,
}

impl TaskSlot {
    fn notify(&self) {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            let next = match s {
                IDLE => SCHEDULED,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match self.state.compare_exchange(s, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    if s == IDLE {
                        self.monitor.inc();
                    }
                    return;
                }
                Err(now) => s = now,
            }
        }
    }
}

/// The waker a tracked task's future sees: marks the task runnable, then wakes the
/// runtime's waker.
struct TaskWaker {
    slot: Arc<TaskSlot>,
    inner: Waker,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.slot.notify();
        self.inner.wake_by_ref();
    }
}

pin_project_lite::pin_project! {
    /// A future whose polls and wakes the monitor counts.
    #[doc(hidden)]
    pub struct Tracked<F> {
        #[pin]
        fut: F,
        slot: SlotGuard,
        // The runtime's waker and ours around it, reused while the runtime's stays the same.
        waker: Option<(Waker, Waker)>,
    }
}

/// Stops counting a task dropped unfinished (the runtime shutting down).
struct SlotGuard(Arc<TaskSlot>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if matches!(self.0.state.swap(DONE, Ordering::SeqCst), SCHEDULED | RUNNING | NOTIFIED) {
            self.0.monitor.dec();
        }
    }
}

impl<F> Tracked<F> {
    fn new(monitor: &Arc<Monitor>, fut: F) -> Self {
        monitor.inc();
        let slot = Arc::new(TaskSlot { state: AtomicU8::new(SCHEDULED), monitor: monitor.clone() });
        Self { fut, slot: SlotGuard(slot), waker: None }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let slot = &this.slot.0;
        if slot.state.swap(RUNNING, Ordering::SeqCst) == IDLE {
            // Polled without a wake (the first poll of a root, a spurious poll).
            slot.monitor.inc();
        }
        let ours = match &*this.waker {
            Some((theirs, ours)) if theirs.will_wake(cx.waker()) => ours.clone(),
            _ => {
                let ours = Waker::from(Arc::new(TaskWaker { slot: slot.clone(), inner: cx.waker().clone() }));
                *this.waker = Some((cx.waker().clone(), ours.clone()));
                ours
            }
        };
        let r = this.fut.poll(&mut Context::from_waker(&ours));
        match r {
            Poll::Ready(out) => {
                slot.state.store(DONE, Ordering::SeqCst);
                slot.monitor.dec();
                Poll::Ready(out)
            }
            Poll::Pending => {
                if slot.state.compare_exchange(RUNNING, IDLE, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    slot.monitor.dec();
                } else {
                    slot.state.store(SCHEDULED, Ordering::SeqCst);
                }
                Poll::Pending
            }
        }
    }
}
