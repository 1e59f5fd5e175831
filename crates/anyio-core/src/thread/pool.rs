//! anyio's own pool of worker threads, the same on every backend: a job goes to the most
//! recently idled worker that last ran on the submitting thread's CPU, else to the most
//! recently idled one (LIFO, so a few warm threads do the work), or to a new thread when none
//! is idle. Waking a thread on another CPU cost tens of microseconds per job on a virtual
//! machine (three times tokio's `spawn_blocking` for a 64 KiB read; see docs/benchmarks.md);
//! a worker on the same CPU runs as soon as the submitting thread waits. a worker idle for [`IDLE_TIMEOUT`] exits. The number of threads is bounded by
//! the callers' limiters, not here. Threads are detached: a run ends without waiting for jobs
//! it abandoned.

use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A job for a worker.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long a worker waits for its next job before it exits.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The name of every worker thread.
pub(crate) const THREAD_NAME: &str = "anyio-worker";

/// An idle worker's mailbox.
#[derive(Default)]
struct Idle {
    job: Mutex<Option<Job>>,
    ready: Condvar,
    /// The CPU the worker last ran on (-1 where unknown).
    cpu: i32,
}

/// The CPU this thread runs on now (-1 where the system cannot say).
fn current_cpu() -> i32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: sched_getcpu takes no arguments and only reads where this thread runs.
        unsafe { libc::sched_getcpu() }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        -1
    }
}

/// The idle workers, most recently idled last.
static IDLE: Mutex<Vec<Arc<Idle>>> = Mutex::new(Vec::new());

/// Runs `job` on an idle worker, or on a new one.
///
/// # Errors
///
/// The error of a thread the system would not start (`job` is dropped unrun).
pub(crate) fn submit(job: Job) -> io::Result<()> {
    // A job in flight keeps a monitored run from counting as idle.
    let job = crate::testing::count_job(job);
    let idle = {
        let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
        // The most recently idled worker that last ran on this CPU, else the most recent.
        let here = current_cpu();
        let pos = idle.iter().rposition(|w| w.cpu == here && here >= 0).or(idle.len().checked_sub(1));
        pos.map(|p| idle.remove(p))
    };
    match idle {
        Some(w) => {
            *w.job.lock().unwrap_or_else(PoisonError::into_inner) = Some(job);
            w.ready.notify_one();
            Ok(())
        }
        None => std::thread::Builder::new().name(THREAD_NAME.into()).spawn(move || worker(job)).map(drop),
    }
}

thread_local! {
    static IS_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is one of the pool's workers (which never poll tasks).
pub(crate) fn is_worker_thread() -> bool {
    IS_WORKER.with(std::cell::Cell::get)
}

fn worker(first: Job) {
    IS_WORKER.with(|w| w.set(true));
    let mut job = first;
    loop {
        job();
        match wait_for_job() {
            Some(next) => job = next,
            None => return,
        }
    }
}

/// Parks this worker as idle until a job comes, or returns `None` once it has been idle for
/// [`IDLE_TIMEOUT`] (and is off the idle list).
fn wait_for_job() -> Option<Job> {
    let me = Arc::new(Idle { cpu: current_cpu(), ..Idle::default() });
    IDLE.lock().unwrap_or_else(PoisonError::into_inner).push(me.clone());
    let deadline = Instant::now() + IDLE_TIMEOUT;
    let mut slot = me.job.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(job) = slot.take() {
            return Some(job);
        }
        let now = Instant::now();
        if now < deadline {
            slot = me.ready.wait_timeout(slot, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
            continue;
        }
        // Time to go, unless a submitter has just taken this worker off the list: then its
        // job is on the way (the submitter pops first and fills the slot after).
        drop(slot);
        let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pos) = idle.iter().position(|w| Arc::ptr_eq(w, &me)) {
            idle.remove(pos);
            return None;
        }
        drop(idle);
        slot = me.job.lock().unwrap_or_else(PoisonError::into_inner);
        while slot.is_none() {
            slot = me.ready.wait(slot).unwrap_or_else(PoisonError::into_inner);
        }
    }
}
