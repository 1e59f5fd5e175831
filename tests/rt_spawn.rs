//! The seam's spawn paths for a task group's tasks: `Runtime::spawn_task` (a `RawTask`,
//! unboxed) and its default, which boxes the task and calls `Runtime::spawn`;
//! `Runtime::spawn_task_held`, whose hold anyio drops with the task's node, away from the
//! thread that finished the task; and what a task that its runtime drops unrun reports.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use std::collections::HashSet;
use std::sync::Mutex;
use std::thread::ThreadId;

use anyio::rt::{BlockingJob, BoxTask, RawTask, Runtime, RuntimeHandle, TaskHold, Timer};
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
    /// Overrides `spawn_task_held`: runs each task to completion on a thread of its own and
    /// returns a hold that records where, and whether after the task finished, it is dropped.
    Held,
}

#[derive(Debug)]
struct Counting {
    inner: RuntimeHandle,
    mode: Mode,
    spawned: AtomicUsize,
    raw: AtomicUsize,
    /// `Held`: for each hold dropped, its task's thread, the dropping thread, and whether the
    /// task's future had finished.
    holds: Arc<Mutex<Vec<(ThreadId, ThreadId, bool)>>>,
    /// `Held`: the threads whose task's future has finished (each records its own).
    finished: Arc<Mutex<HashSet<ThreadId>>>,
    /// `Held`: task threads wait for this before running their task.
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    /// `Held`: task threads that have run their task and dropped it.
    exited: Arc<AtomicUsize>,
}

/// The hold `Mode::Held` returns.
struct Hold {
    ran_on: ThreadId,
    finished: Arc<Mutex<HashSet<ThreadId>>>,
    log: Arc<Mutex<Vec<(ThreadId, ThreadId, bool)>>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let finished = self.finished.lock().unwrap().contains(&self.ran_on);
        self.log.lock().unwrap().push((self.ran_on, std::thread::current().id(), finished));
    }
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
            Mode::Held => self.spawn_task_held(task).map_or((), drop),
        }
    }
    fn spawn_task_held(&self, task: RawTask) -> Option<TaskHold> {
        if self.mode != Mode::Held {
            self.spawn_task(task);
            return None;
        }
        let (gate, exited) = (self.gate.clone(), self.exited.clone());
        let thread = std::thread::spawn(move || {
            let (open, opened) = &*gate;
            drop(opened.wait_while(open.lock().unwrap(), |open| !*open).unwrap());
            // `block_on` drops the task before it returns.
            futures::executor::block_on(task);
            exited.fetch_add(1, Ordering::SeqCst);
        });
        let ran_on = thread.thread().id();
        Some(TaskHold::new(Hold { ran_on, finished: self.finished.clone(), log: self.holds.clone() }))
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
        holds: Arc::default(),
        finished: Arc::default(),
        gate: Arc::default(),
        exited: Arc::default(),
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

#[anyio::test]
async fn a_hold_is_dropped_with_its_task_s_node_off_the_thread_that_finished_the_task() {
    let rt = counting(Mode::Held);
    let (finished, gate, exited) = (rt.finished.clone(), rt.gate.clone(), rt.exited.clone());
    let handle: RuntimeHandle = rt.clone();
    let body = task_group(|tg: TaskGroup<AnyError>| async move {
        for _ in 0..10 {
            let finished = finished.clone();
            // Recorded by the future itself, before it returns: before its node can go.
            tg.spawn(async move {
                finished.lock().unwrap().insert(std::thread::current().id());
                Ok(())
            });
        }
        // Every task finishes, and its thread lets go of it, before the group frees anything:
        // the nodes' last references are then the group's, dropped on this side.
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        // Bounded: a task thread that panicked must fail the test, not hang it.
        anyio::fail_after(std::time::Duration::from_secs(30), async {
            while exited.load(Ordering::SeqCst) < 10 {
                anyio::sleep(std::time::Duration::from_millis(1)).await?;
            }
            Ok::<_, AnyError>(())
        })
        .await?;
        Ok(())
    });
    on_runtime(handle, body).await.unwrap().unwrap();
    let holds = rt.holds.lock().unwrap().clone();
    assert_eq!(holds.len(), 10, "every hold dropped once: {holds:?}");
    for (ran_on, dropped_on, finished) in holds {
        assert!(finished, "a hold was dropped before its task finished");
        assert_ne!(ran_on, dropped_on, "a hold was dropped on the thread that finished its task");
    }
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
