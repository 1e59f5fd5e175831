//! `Lock`, `Semaphore` and `Event` beside tokio's and async-lock's / event-listener's
//! counterparts, in the same run, on tokio current-thread, tokio multi-thread (2 workers) and
//! smol.
//!
//! Run with `cargo bench --bench sync_primitives --features smol` (add `-- quick` for a short
//! run: a tenth of the work). The cases:
//!
//! - uncontended: 1,000,000 acquire+release in one task;
//! - contended: 100 tasks each acquiring 1,000 times and yielding once while holding (the same
//!   hand-written yield on both sides), through a lock or a semaphore of 10 permits;
//! - event: 100 waiters released by one `set` (tokio: `notify_waiters`; event-listener:
//!   `notify(usize::MAX)`), 1,000 times with a fresh event each time. Each waiter registers
//!   before it counts itself as waiting; a setter task yields until all 100 wait, then sets.
//!
//! Every participant is a spawned task: anyio's side spawns them into a task group (so the
//! lock sees a task id, as in real use), the twins spawn them straight onto the runtime. The
//! primitives are built outside the timed region. Every case is measured in interleaved rounds
//! (ours, twin 1, twin 2, ...) and reports the median nanoseconds per operation (acquisition or
//! wake-up) and the time ratio ours/twin (below 1: anyio is faster). Arguments: `quick`, a name
//! filter matched against "<case> | <twin>", `env=<name>`, `side=ours|raw`.
//!
//! `diag` adds a diagnostic twin: anyio's own primitive driven from tasks spawned straight onto
//! the runtime, outside any anyio task (no cancel scope to register a blocked wait with, no task
//! id, no coop budget). Its ratio is what running inside anyio's tasks adds.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;

use anyio::{Cancelled, TaskGroup};

mod common;

use common::{run_twin_cases, workload, yield_now, Args, Raw, TwinCase, Unit, Workload};

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Who spawns the participants.
#[derive(Clone, Copy)]
enum Spawner {
    /// An anyio task group.
    Anyio,
    /// The runtime itself (`tokio::spawn`, `Executor::spawn`).
    Raw,
}

/// A workload that builds its tasks outside the timed region, then spawns them all and waits
/// for all of them.
fn tasks_workload<F>(spawner: Spawner, make: F) -> Workload
where
    F: Fn() -> Vec<Task> + 'static,
{
    workload(move |raw: Raw| {
        let tasks = make();
        async move {
            match spawner {
                Spawner::Anyio => {
                    TaskGroup::scope(|tg: TaskGroup<Cancelled>| async move {
                        for t in tasks {
                            tg.spawn(async move {
                                t.await;
                                Ok(())
                            });
                        }
                        Ok::<_, Cancelled>(())
                    })
                    .await
                    .expect("task group")
                    .expect("not cancelled");
                }
                Spawner::Raw => {
                    let handles: Vec<_> = tasks.into_iter().map(|t| raw.spawn(t)).collect();
                    for h in handles {
                        h.join().await;
                    }
                }
            }
        }
    })
}

/// A lock or semaphore: one acquire, optionally a yield while holding, one release.
trait Acquire: Send + Sync + 'static {
    fn cycle(&self, yield_while_holding: bool) -> impl Future<Output = ()> + Send + '_;
}

impl Acquire for anyio::sync::Lock {
    async fn cycle(&self, y: bool) {
        let g = self.acquire().await.expect("not cancelled");
        if y {
            yield_now().await;
        }
        drop(g);
    }
}

impl Acquire for tokio::sync::Mutex<()> {
    async fn cycle(&self, y: bool) {
        let g = self.lock().await;
        if y {
            yield_now().await;
        }
        drop(g);
    }
}

impl Acquire for async_lock::Mutex<()> {
    async fn cycle(&self, y: bool) {
        let g = self.lock().await;
        if y {
            yield_now().await;
        }
        drop(g);
    }
}

impl Acquire for anyio::sync::Semaphore {
    async fn cycle(&self, y: bool) {
        let p = self.acquire().await.expect("not cancelled");
        if y {
            yield_now().await;
        }
        drop(p);
    }
}

impl Acquire for tokio::sync::Semaphore {
    async fn cycle(&self, y: bool) {
        let p = self.acquire().await.expect("not closed");
        if y {
            yield_now().await;
        }
        drop(p);
    }
}

impl Acquire for async_lock::Semaphore {
    async fn cycle(&self, y: bool) {
        let p = self.acquire().await;
        if y {
            yield_now().await;
        }
        drop(p);
    }
}

/// `tasks` tasks each doing `per` cycles (yielding while holding when `contended`) on one
/// fresh primitive from `new`.
fn acquire_workload<A: Acquire>(
    spawner: Spawner,
    new: impl Fn() -> A + 'static,
    tasks: usize,
    per: u64,
    contended: bool,
) -> Workload {
    tasks_workload(spawner, move || {
        let prim = Arc::new(new());
        (0..tasks)
            .map(|_| {
                let prim = prim.clone();
                Box::pin(async move {
                    for _ in 0..per {
                        prim.cycle(contended).await;
                    }
                }) as Task
            })
            .collect()
    })
}

/// A one-shot event.
trait EventLike: Send + Sync + 'static {
    fn fresh() -> Self;
    /// Registers as a waiter, then counts itself in `waiting`, then waits.
    fn wait_counted<'a>(&'a self, waiting: &'a AtomicUsize) -> impl Future<Output = ()> + Send + 'a;
    fn fire(&self);
}

impl EventLike for anyio::sync::Event {
    fn fresh() -> Self {
        anyio::sync::Event::new()
    }
    async fn wait_counted(&self, waiting: &AtomicUsize) {
        let mut w = pin!(self.wait());
        // The first poll registers the waiter (or finds the event set).
        let first = poll_fn(|cx| Poll::Ready(w.as_mut().poll(cx))).await;
        waiting.fetch_add(1, Ordering::Release);
        match first {
            Poll::Ready(r) => r.expect("not cancelled"),
            Poll::Pending => w.await.expect("not cancelled"),
        }
    }
    fn fire(&self) {
        self.set();
    }
}

impl EventLike for tokio::sync::Notify {
    fn fresh() -> Self {
        tokio::sync::Notify::new()
    }
    async fn wait_counted(&self, waiting: &AtomicUsize) {
        let mut n = pin!(self.notified());
        n.as_mut().enable();
        waiting.fetch_add(1, Ordering::Release);
        n.await;
    }
    fn fire(&self) {
        self.notify_waiters();
    }
}

impl EventLike for event_listener::Event {
    fn fresh() -> Self {
        event_listener::Event::new()
    }
    async fn wait_counted(&self, waiting: &AtomicUsize) {
        let l = self.listen();
        waiting.fetch_add(1, Ordering::Release);
        l.await;
    }
    fn fire(&self) {
        self.notify(usize::MAX);
    }
}

/// `waiters` tasks wait for each of `rounds` fresh events in turn; a setter task sets each one
/// once every waiter waits for it.
fn event_workload<E: EventLike>(spawner: Spawner, waiters: usize, rounds: usize) -> Workload {
    tasks_workload(spawner, move || {
        let events: Arc<Vec<E>> = Arc::new((0..rounds).map(|_| E::fresh()).collect());
        let waiting = Arc::new(AtomicUsize::new(0));
        let mut tasks: Vec<Task> = (0..waiters)
            .map(|_| {
                let (events, waiting) = (events.clone(), waiting.clone());
                Box::pin(async move {
                    for e in events.iter() {
                        e.wait_counted(&waiting).await;
                    }
                }) as Task
            })
            .collect();
        tasks.push(Box::pin(async move {
            for (i, e) in events.iter().enumerate() {
                while waiting.load(Ordering::Acquire) < waiters * (i + 1) {
                    yield_now().await;
                }
                e.fire();
            }
        }));
        tasks
    })
}

fn main() {
    let args = Args::parse();
    let scale = args.scale();
    let uncontended = 1_000_000 / scale;
    let (tasks, per) = (100, 1_000 / scale);
    let (waiters, rounds) = (100, 1_000 / scale as usize);
    use Spawner::{Anyio, Raw};
    let lock = anyio::sync::Lock::new;
    let tokio_mutex = || tokio::sync::Mutex::new(());
    let async_mutex = || async_lock::Mutex::new(());
    let sem = |n| move || anyio::sync::Semaphore::new(n);
    let mut cases = vec![
        TwinCase {
            name: format!("Lock uncontended: {uncontended} acquire+release in 1 task"),
            ops: uncontended,
            ours: acquire_workload(Anyio, lock, 1, uncontended, false),
            twins: vec![
                ("tokio::sync::Mutex".into(), acquire_workload(Raw, tokio_mutex, 1, uncontended, false)),
                ("async_lock::Mutex".into(), acquire_workload(Raw, async_mutex, 1, uncontended, false)),
            ],
        },
        TwinCase {
            name: format!("Lock contended: {tasks} tasks x {per}, yield while holding"),
            ops: tasks as u64 * per,
            ours: acquire_workload(Anyio, lock, tasks, per, true),
            twins: vec![
                ("tokio::sync::Mutex".into(), acquire_workload(Raw, tokio_mutex, tasks, per, true)),
                ("async_lock::Mutex".into(), acquire_workload(Raw, async_mutex, tasks, per, true)),
            ],
        },
        TwinCase {
            name: format!("Semaphore(1) uncontended: {uncontended} acquire+release in 1 task"),
            ops: uncontended,
            ours: acquire_workload(Anyio, sem(1), 1, uncontended, false),
            twins: vec![
                (
                    "tokio::sync::Semaphore".into(),
                    acquire_workload(Raw, || tokio::sync::Semaphore::new(1), 1, uncontended, false),
                ),
                (
                    "async_lock::Semaphore".into(),
                    acquire_workload(Raw, || async_lock::Semaphore::new(1), 1, uncontended, false),
                ),
            ],
        },
        TwinCase {
            name: format!("Semaphore(10) contended: {tasks} tasks x {per}, yield while holding"),
            ops: tasks as u64 * per,
            ours: acquire_workload(Anyio, sem(10), tasks, per, true),
            twins: vec![
                (
                    "tokio::sync::Semaphore".into(),
                    acquire_workload(Raw, || tokio::sync::Semaphore::new(10), tasks, per, true),
                ),
                (
                    "async_lock::Semaphore".into(),
                    acquire_workload(Raw, || async_lock::Semaphore::new(10), tasks, per, true),
                ),
            ],
        },
        TwinCase {
            name: format!("Event: {waiters} waiters released by one set, x {rounds} events"),
            ops: (waiters * rounds) as u64,
            ours: event_workload::<anyio::sync::Event>(Anyio, waiters, rounds),
            twins: vec![
                (
                    "tokio Notify::notify_waiters".into(),
                    event_workload::<tokio::sync::Notify>(Raw, waiters, rounds),
                ),
                (
                    "event_listener::Event".into(),
                    event_workload::<event_listener::Event>(Raw, waiters, rounds),
                ),
            ],
        },
    ];
    if args.diag {
        // anyio's primitive in tasks spawned straight onto the runtime: no task id, no cancel
        // scope to register with, no coop budget. The ratio shows what those cost.
        let diag = [
            acquire_workload(Raw, lock, 1, uncontended, false),
            acquire_workload(Raw, lock, tasks, per, true),
            acquire_workload(Raw, sem(1), 1, uncontended, false),
            acquire_workload(Raw, sem(10), tasks, per, true),
            event_workload::<anyio::sync::Event>(Raw, waiters, rounds),
        ];
        for (case, w) in cases.iter_mut().zip(diag) {
            case.twins.push(("anyio in raw tasks (diag)".into(), w));
        }
    }
    run_twin_cases(&args, &cases, Unit::NsPerOp);
}
