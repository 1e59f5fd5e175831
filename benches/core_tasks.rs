//! Task-group, checkpoint and cancel-scope costs, each beside its raw-runtime twin in the same
//! run, on tokio current-thread, tokio multi-thread and smol.
//!
//! Run with `cargo bench --bench core_tasks --features smol` (add `-- quick` for a short run).
//! Every case is measured in interleaved rounds (ours, raw, ours, raw, ...) and reports the
//! median time per operation of each and their ratio ours/raw.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyio::backends::smol::SmolRuntime;
use anyio::backends::tokio::TokioRuntime;
use anyio::{checkpoint, move_on_after, task_group, CancelScope, Cancelled};

/// One benchmark environment: runs a future to completion with anyio's runtime current.
trait Env {
    fn name(&self) -> &'static str;
    /// Runs `fut` as a spawned task (never as the `block_on` future itself, whose polling
    /// differs from a task's) and waits for it.
    fn block_on<F: Future + Send + 'static>(&self, fut: F) -> F::Output
    where
        F::Output: Send;
    fn raw(&self) -> Raw;
}

#[derive(Clone)]
enum Raw {
    Tokio,
    Smol(Arc<async_executor::Executor<'static>>),
}

struct TokioEnv {
    name: &'static str,
    rt: tokio::runtime::Runtime,
}

impl Env for TokioEnv {
    fn name(&self) -> &'static str {
        self.name
    }
    fn block_on<F: Future + Send + 'static>(&self, fut: F) -> F::Output
    where
        F::Output: Send,
    {
        let _g = anyio::rt::enter(Arc::new(TokioRuntime::new(self.rt.handle().clone())));
        self.rt.block_on(async { tokio::spawn(fut).await.unwrap() })
    }
    fn raw(&self) -> Raw {
        Raw::Tokio
    }
}

struct SmolEnv {
    ex: Arc<async_executor::Executor<'static>>,
}

impl Env for SmolEnv {
    fn name(&self) -> &'static str {
        "smol"
    }
    fn block_on<F: Future + Send + 'static>(&self, fut: F) -> F::Output
    where
        F::Output: Send,
    {
        let _g = anyio::rt::enter(Arc::new(SmolRuntime::new(self.ex.clone())));
        let task = self.ex.spawn(fut);
        async_io::block_on(self.ex.run(task))
    }
    fn raw(&self) -> Raw {
        Raw::Smol(self.ex.clone())
    }
}

/// Runs one side of a case once in an environment and returns the time it took.
type Workload = Box<dyn Fn(&dyn DynEnv) -> Duration>;

/// A workload from a function that builds the future to time (given the raw runtime to use
/// for the raw twin); the timing wraps that future inside the environment's task.
fn workload<F, Fut>(make: F) -> Workload
where
    F: Fn(Raw) -> Fut + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Box::new(move |env| {
        let fut = make(env.raw());
        env.run(Box::pin(async move {
            let t0 = Instant::now();
            fut.await;
            t0.elapsed()
        }))
    })
}

struct Case {
    name: &'static str,
    ops: u64,
    ours: Workload,
    raw: Workload,
    /// `true` to report the added nanoseconds (ours - raw) instead of only the ratio.
    additive: bool,
}

/// Object-safe view of an [`Env`] for boxed cases.
trait DynEnv {
    fn name(&self) -> &'static str;
    fn run(&self, fut: std::pin::Pin<Box<dyn Future<Output = Duration> + Send>>) -> Duration;
    fn raw(&self) -> Raw;
}

impl<T: Env> DynEnv for T {
    fn name(&self) -> &'static str {
        Env::name(self)
    }
    fn run(&self, fut: std::pin::Pin<Box<dyn Future<Output = Duration> + Send>>) -> Duration {
        self.block_on(fut)
    }
    fn raw(&self) -> Raw {
        Env::raw(self)
    }
}

fn spawn_join_cases(n: u64) -> Case {
    Case {
        name: "task group spawn+join (100k trivial tasks)",
        ops: n,
        ours: workload(move |_raw| async move {
            task_group(|tg| async move {
                for _ in 0..n {
                    tg.spawn(async { Ok::<_, Cancelled>(()) });
                }
                Ok::<_, Cancelled>(())
            })
            .await
            .unwrap();
        }),
        raw: workload(move |raw| async move {
            match raw {
                Raw::Tokio => {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..n {
                        set.spawn(async {});
                    }
                    while set.join_next().await.is_some() {}
                }
                Raw::Smol(ex) => {
                    let tasks: Vec<_> = (0..n).map(|_| ex.spawn(async {})).collect();
                    for t in tasks {
                        t.await;
                    }
                }
            }
        }),
        additive: false,
    }
}

fn checkpoint_cases(n: u64) -> Case {
    Case {
        name: "checkpoint in a scope with a deadline vs yield_now (1M)",
        ops: n,
        ours: workload(move |_raw| async move {
            move_on_after(Duration::from_secs(3600), async {
                for _ in 0..n {
                    checkpoint().await?;
                }
                Ok::<_, Cancelled>(())
            })
            .await
            .unwrap();
        }),
        raw: workload(move |raw| async move {
            match raw {
                Raw::Tokio => {
                    for _ in 0..n {
                        tokio::task::yield_now().await;
                    }
                }
                Raw::Smol(_) => {
                    for _ in 0..n {
                        smol::future::yield_now().await;
                    }
                }
            }
        }),
        additive: false,
    }
}

fn scope_no_deadline_cases(n: u64) -> Case {
    Case {
        name: "scope without deadline around a ready future vs bare await (1M)",
        ops: n,
        ours: workload(move |_raw| async move {
            let mut acc = 0u64;
            for i in 0..n {
                let r = CancelScope::new().run(async move { Ok::<_, Cancelled>(black_box(i)) }).await;
                acc = acc.wrapping_add(r.unwrap().unwrap());
            }
            black_box(acc);
        }),
        raw: workload(move |_raw| async move {
            let mut acc = 0u64;
            for i in 0..n {
                let r = async move { Ok::<_, Cancelled>(black_box(i)) }.await;
                acc = acc.wrapping_add(r.unwrap());
            }
            black_box(acc);
        }),
        additive: true,
    }
}

fn scope_deadline_cases(n: u64) -> Case {
    Case {
        name: "move_on_after around a ready future vs tokio::time::timeout / async-io Timer (1M)",
        ops: n,
        ours: workload(move |_raw| async move {
            let mut acc = 0u64;
            for i in 0..n {
                let r =
                    move_on_after(Duration::from_secs(60), async move { Ok::<_, Cancelled>(black_box(i)) })
                        .await;
                acc = acc.wrapping_add(r.unwrap().unwrap());
            }
            black_box(acc);
        }),
        raw: workload(move |raw| async move {
            let mut acc = 0u64;
            for i in 0..n {
                let v = match raw {
                    Raw::Tokio => tokio::time::timeout(Duration::from_secs(60), async move { black_box(i) })
                        .await
                        .unwrap(),
                    Raw::Smol(_) => {
                        let timer = async {
                            async_io::Timer::after(Duration::from_secs(60)).await;
                            u64::MAX
                        };
                        futures::future::select(
                            std::pin::pin!(async move { black_box(i) }),
                            std::pin::pin!(timer),
                        )
                        .await
                        .factor_first()
                        .0
                    }
                };
                acc = acc.wrapping_add(v);
            }
            black_box(acc);
        }),
        additive: false,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let quick = args.iter().any(|a| a == "quick");
    // Any other argument selects the cases whose name contains it.
    // `env=<name>` selects environments whose name contains <name>.
    let env_filter: Option<&str> = args.iter().find_map(|a| a.strip_prefix("env="));
    // `side=ours` or `side=raw` runs one side only (for profiling; no ratio is printed).
    let side: Option<&str> = args.iter().find_map(|a| a.strip_prefix("side="));
    let filters: Vec<&String> =
        args.iter().filter(|a| *a != "quick" && !a.starts_with("env=") && !a.starts_with("side=")).collect();
    let rounds = if quick { 3 } else { 7 };
    let scale = if quick { 10 } else { 1 };
    let envs: Vec<Box<dyn DynEnv>> = vec![
        Box::new(TokioEnv {
            name: "tokio-current-thread",
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        }),
        Box::new(TokioEnv {
            name: "tokio-multi-thread(2)",
            rt: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
        }),
        Box::new(SmolEnv { ex: Arc::new(async_executor::Executor::new()) }),
    ];
    let cases = [
        spawn_join_cases(100_000 / scale),
        checkpoint_cases(1_000_000 / scale),
        scope_no_deadline_cases(1_000_000 / scale),
        scope_deadline_cases(1_000_000 / scale),
    ];
    println!(
        "{:<24} {:<80} {:>12} {:>12} {:>8} {:>10}",
        "backend", "case", "ours ns/op", "raw ns/op", "ratio", "added ns"
    );
    for case in
        cases.iter().filter(|c| filters.is_empty() || filters.iter().any(|f| c.name.contains(f.as_str())))
    {
        for env in envs.iter().filter(|e| env_filter.is_none_or(|f| e.name().contains(f))) {
            if let Some(side) = side {
                let f = if side == "raw" { &case.raw } else { &case.ours };
                let t: Duration = (0..rounds).map(|_| f(env.as_ref())).sum();
                println!(
                    "{:<24} {:<80} {side} {:>12.1} ns/op",
                    env.name(),
                    case.name,
                    t.as_nanos() as f64 / (rounds as u64 * case.ops) as f64
                );
                continue;
            }
            // Warm up both, then interleave rounds so drift hits both sides alike.
            (case.ours)(env.as_ref());
            (case.raw)(env.as_ref());
            let mut ours = Vec::new();
            let mut raw = Vec::new();
            for _ in 0..rounds {
                ours.push((case.ours)(env.as_ref()));
                raw.push((case.raw)(env.as_ref()));
            }
            let o = median(ours).as_nanos() as f64 / case.ops as f64;
            let r = median(raw).as_nanos() as f64 / case.ops as f64;
            let added = if case.additive { format!("{:>10.1}", o - r) } else { format!("{:>10}", "-") };
            println!("{:<24} {:<80} {:>12.1} {:>12.1} {:>8.2} {}", env.name(), case.name, o, r, o / r, added);
        }
    }
}
