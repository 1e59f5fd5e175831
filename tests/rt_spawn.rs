//! The seam's two spawn paths for a task group's tasks: `Runtime::spawn_task` (a `RawTask`,
//! unboxed) and its default, which boxes the task and calls `Runtime::spawn`; and what a
//! task that its runtime drops unrun reports.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyio::rt::{BlockingJob, BoxTask, RawTask, Runtime, RuntimeHandle, Timer};
use anyio::task::JoinError;
use anyio::{task_group, AnyError, TaskGroup};

mod support;
use support::on_runtime;

/// What the test runtime does with the tasks it is given.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Implements only `spawn`: group tasks arrive boxed, through the default `spawn_task`.
    SpawnOnly,
    /// Overrides `spawn_task` and hands the `RawTask` on unboxed.
    Raw,
    /// Drops every task without polling it, as a runtime that is shutting down does.
    DropAll,
}

#[derive(Debug)]
struct Counting {
    inner: RuntimeHandle,
    mode: Mode,
    spawned: AtomicUsize,
    raw: AtomicUsize,
}

impl Runtime for Counting {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn spawn(&self, task: BoxTask) {
        self.spawned.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            Mode::DropAll => drop(task),
            _ => self.inner.spawn(task),
        }
    }
    fn spawn_task(&self, task: RawTask) {
        match self.mode {
            Mode::SpawnOnly => self.spawn(Box::pin(task)),
            Mode::Raw => {
                self.raw.fetch_add(1, Ordering::SeqCst);
                self.inner.spawn_task(task)
            }
            Mode::DropAll => drop(task),
        }
    }
    fn spawn_blocking(&self, job: BlockingJob) -> std::io::Result<()> {
        self.inner.spawn_blocking(job)
    }
    fn now(&self) -> Instant {
        self.inner.now()
    }
    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        self.inner.timer(deadline)
    }
}

fn counting(mode: Mode) -> Arc<Counting> {
    Arc::new(Counting {
        inner: anyio::rt::current(),
        mode,
        spawned: AtomicUsize::new(0),
        raw: AtomicUsize::new(0),
    })
}

/// Spawns ten tasks on `rt` in one group, each returning its index, and sums their values.
async fn sum_of_ten(rt: Arc<Counting>) -> u32 {
    let handle: RuntimeHandle = rt;
    let body = task_group(|tg: TaskGroup<AnyError>| async move {
        let handles: Vec<_> = (0..10u32).map(|i| tg.spawn(async move { Ok(i) })).collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        Ok(sum)
    });
    on_runtime(handle, body).await.unwrap().unwrap()
}

#[anyio::test]
async fn a_runtime_that_only_implements_spawn_runs_group_tasks_through_it() {
    let rt = counting(Mode::SpawnOnly);
    assert_eq!(sum_of_ten(rt.clone()).await, 45);
    assert_eq!(rt.spawned.load(Ordering::SeqCst), 10);
}

#[anyio::test]
async fn a_runtime_that_overrides_spawn_task_gets_every_group_task_as_a_raw_task() {
    let rt = counting(Mode::Raw);
    assert_eq!(sum_of_ten(rt.clone()).await, 45);
    assert_eq!(rt.raw.load(Ordering::SeqCst), 10);
    assert_eq!(rt.spawned.load(Ordering::SeqCst), 0, "nothing went through the boxed path");
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[anyio::test]
async fn a_task_its_runtime_drops_unrun_is_cancelled_and_its_future_dropped() {
    let rt = counting(Mode::DropAll);
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let handle: RuntimeHandle = rt;
    let body = task_group(|tg: TaskGroup<AnyError>| async move {
        let h = tg.spawn(async move {
            let _flag = flag;
            Ok(1u32)
        });
        Ok(h.await)
    });
    // The group neither hangs nor fails: the dropped task counts as cancelled.
    let joined = on_runtime(handle, body).await.unwrap().unwrap();
    assert!(matches!(joined, Err(JoinError::TaskCancelled)), "{joined:?}");
    assert!(dropped.load(Ordering::SeqCst), "the task's future was dropped");
}
