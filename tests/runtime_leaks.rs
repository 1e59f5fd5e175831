//! `anyio::run_on` gives back everything a run takes: after many runs on each compiled backend,
//! the process has as many open file descriptors and as many live heap bytes as before them,
//! within a fixed slack that does not grow with the run count (issue 12: tokio multi-thread
//! runs used to leak their runtime, 3 descriptors and 11-25 KB each, so a suite of a few
//! hundred `#[anyio::test]` cases ran out of descriptors).
//!
//! The counters are process-wide, so this binary holds a single test, which measures the
//! backends one after another. `ANYIO_LEAK_RUNS` sets the run count (default 1,000; CI runs
//! this binary under valgrind with fewer).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyio::{sleep, task_group, AnyError, Backend};

/// The system allocator, counting the bytes currently allocated through it.
struct Counting;

/// Live heap bytes: allocated minus freed, over every thread.
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's own arguments, so `System`'s
// guarantees (a block of `layout` or null, freed only by a matching call) carry over
// unchanged; the counter is bookkeeping on the side and never affects what is returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout, which meets `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator (i.e. `System`) returned, with the
        // layout it was allocated with.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's block, layout and new size, as `realloc`'s contract requires.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // On failure the old block stays allocated, so nothing changes.
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs made before the baseline is taken: global reactors, thread pools and lazily built
/// tables come into being once per process, and are not leaks.
const WARM_UP: usize = 20;
/// Descriptors the process may hold beyond the baseline (a global reactor thread that opened
/// something late, say); a leak of one per run exceeds it within a few runs.
const FD_SLACK: usize = 4;
/// Heap bytes beyond the baseline: far below what even one descriptor-free leaked runtime per
/// 20 runs would hold (a tokio runtime's state is 11-25 KB).
const HEAP_SLACK: isize = 256 * 1024;
/// How often, in runs, the counters are checked: a leak fails early with a clear message
/// instead of running into the descriptor limit.
const CHECK_EVERY: usize = 100;

fn runs() -> usize {
    std::env::var("ANYIO_LEAK_RUNS")
        .ok()
        .map(|v| v.parse().expect("ANYIO_LEAK_RUNS must be a number"))
        .unwrap_or(1_000)
}

/// The number of open descriptors, or `None` where `/proc/self/fd` does not exist.
fn open_fds() -> Option<usize> {
    // The directory's own descriptor is counted too, the same way each time.
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// What one run does: a task group with a few tasks, one of which sleeps on a timer.
async fn workload(run: usize) -> Result<usize, AnyError> {
    task_group(|tg| async move {
        for i in 0..3u64 {
            tg.spawn(async move {
                sleep(Duration::from_millis(i / 2)).await?;
                Ok::<_, AnyError>(())
            });
        }
        Ok::<_, AnyError>(())
    })
    .await?;
    Ok(run)
}

fn run_once(backend: Backend, run: usize) {
    let out = anyio::run_on(backend, workload(run))
        .unwrap_or_else(|e| panic!("{backend}: run {run} could not start: {e}"));
    assert_eq!(out.expect("the workload failed"), run);
}

/// Fails if the counters have grown beyond the slack since the baseline.
fn check(backend: Backend, done: usize, fds0: Option<usize>, heap0: isize) {
    if let (Some(before), Some(now)) = (fds0, open_fds()) {
        assert!(
            now <= before + FD_SLACK,
            "{backend}: {before} open descriptors before, {now} after {done} runs: \
             runs leak descriptors"
        );
    }
    let now = LIVE.load(Relaxed);
    assert!(
        now - heap0 <= HEAP_SLACK,
        "{backend}: {heap0} live heap bytes before, {now} after {done} runs \
         (+{} bytes, {} per run): runs leak memory",
        now - heap0,
        (now - heap0) / done as isize
    );
}

#[test]
fn every_backend_returns_descriptors_and_heap_to_baseline() {
    let runs = runs();
    let compiled = Backend::compiled();
    assert!(!compiled.is_empty());
    for backend in compiled {
        for run in 0..WARM_UP {
            run_once(backend, run);
        }
        let fds0 = open_fds();
        let heap0 = LIVE.load(Relaxed);
        let start = Instant::now();
        for run in 1..=runs {
            run_once(backend, run);
            if run % CHECK_EVERY == 0 || run == runs {
                check(backend, run, fds0, heap0);
            }
        }
        eprintln!(
            "{backend}: {runs} runs in {:?}; descriptors {:?} -> {:?}, live heap {heap0} -> {} bytes",
            start.elapsed(),
            fds0,
            open_fds(),
            LIVE.load(Relaxed)
        );
    }
}
