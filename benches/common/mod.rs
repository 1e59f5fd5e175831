//! The timing harness shared by the benchmarks: the three environments (tokio current-thread,
//! tokio multi-thread with 2 workers, a smol executor), workloads timed inside a spawned task,
//! interleaved rounds and the command-line arguments.
//!
//! Every bench binary includes this module with `mod common;` and uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyio::backends::smol::SmolRuntime;
use anyio::backends::tokio::AnyioRuntime;

/// One benchmark environment: runs a future to completion with anyio's runtime current.
pub(crate) trait Env {
    fn name(&self) -> &'static str;
    /// Runs `fut` as a spawned task (never as the `block_on` future itself, whose polling
    /// differs from a task's) and waits for it.
    fn block_on<F: Future + Send + 'static>(&self, fut: F) -> F::Output
    where
        F::Output: Send;
    fn raw(&self) -> Raw;
}

/// The raw runtime under an environment, for the raw twins to spawn on.
#[derive(Clone)]
pub(crate) enum Raw {
    Tokio,
    Smol(Arc<async_executor::Executor<'static>>),
}

/// A task spawned straight onto the raw runtime.
pub(crate) enum RawTask<T> {
    Tokio(tokio::task::JoinHandle<T>),
    Smol(async_executor::Task<T>),
}

impl Raw {
    /// Spawns `fut` onto the raw runtime (`tokio::spawn` or `Executor::spawn`).
    pub(crate) fn spawn<F>(&self, fut: F) -> RawTask<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Raw::Tokio => RawTask::Tokio(tokio::spawn(fut)),
            Raw::Smol(ex) => RawTask::Smol(ex.spawn(fut)),
        }
    }
}

impl<T> RawTask<T> {
    /// Waits for the task's output.
    pub(crate) async fn join(self) -> T {
        match self {
            RawTask::Tokio(h) => h.await.unwrap(),
            RawTask::Smol(t) => t.await,
        }
    }
}

/// The CPU model and count (Linux's `/proc/cpuinfo`; elsewhere only the count).
pub(crate) fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
        info.lines().find_map(|l| {
            l.strip_prefix("model name").and_then(|v| v.split_once(':')).map(|(_, m)| m.trim().to_owned())
        })
    });
    format!("{}, {cpus} CPUs", model.as_deref().unwrap_or("unknown CPU"))
}

pub(crate) struct TokioEnv {
    pub(crate) name: &'static str,
    /// A tokio runtime whose threads keep anyio's handle to it current for their whole life,
    /// as the runtimes `anyio::run` builds do (so anyio's tasks there find it without
    /// entering it per poll, and its clock without asking tokio for its handle).
    pub(crate) rt: AnyioRuntime,
}

impl TokioEnv {
    fn new(name: &'static str, mut builder: tokio::runtime::Builder) -> TokioEnv {
        TokioEnv { name, rt: AnyioRuntime::build(&mut builder).unwrap() }
    }
}

impl Env for TokioEnv {
    fn name(&self) -> &'static str {
        self.name
    }
    fn block_on<F: Future + Send + 'static>(&self, fut: F) -> F::Output
    where
        F::Output: Send,
    {
        let _g = anyio::rt::enter(self.rt.handle().clone());
        self.rt.tokio().block_on(async { tokio::spawn(fut).await.unwrap() })
    }
    fn raw(&self) -> Raw {
        Raw::Tokio
    }
}

pub(crate) struct SmolEnv {
    pub(crate) ex: Arc<async_executor::Executor<'static>>,
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

/// The three environments, in the order every benchmark reports them: tokio current-thread,
/// tokio multi-thread with 2 workers, and a smol executor run by the calling thread.
pub(crate) fn envs() -> Vec<Box<dyn DynEnv>> {
    vec![
        Box::new(TokioEnv::new("tokio-current-thread", tokio::runtime::Builder::new_current_thread())),
        Box::new(TokioEnv::new("tokio-multi-thread(2)", {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        })),
        Box::new(SmolEnv { ex: Arc::new(async_executor::Executor::new()) }),
    ]
}

/// Runs one side of a case once in an environment and returns the time it took.
pub(crate) type Workload = Box<dyn Fn(&dyn DynEnv) -> Duration>;

/// A workload from a function that builds the future to time (given the raw runtime to use
/// for the raw twin); the timing wraps that future inside the environment's task. Whatever
/// `make` does before returning the future (building channels, locks, events) is not timed.
pub(crate) fn workload<F, Fut>(make: F) -> Workload
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

/// Object-safe view of an [`Env`] for boxed cases.
pub(crate) trait DynEnv {
    fn name(&self) -> &'static str;
    fn run(&self, fut: Pin<Box<dyn Future<Output = Duration> + Send>>) -> Duration;
    fn raw(&self) -> Raw;
}

impl<T: Env> DynEnv for T {
    fn name(&self) -> &'static str {
        Env::name(self)
    }
    fn run(&self, fut: Pin<Box<dyn Future<Output = Duration> + Send>>) -> Duration {
        self.block_on(fut)
    }
    fn raw(&self) -> Raw {
        Env::raw(self)
    }
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Warms every side up once, then runs `rounds` interleaved rounds (side 0, side 1, ...,
/// side 0, side 1, ...) so drift hits all sides alike; returns each side's median.
pub(crate) fn measure(env: &dyn DynEnv, sides: &[&Workload], rounds: usize) -> Vec<Duration> {
    for side in sides {
        side(env);
    }
    let mut times: Vec<Vec<Duration>> = sides.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (side, t) in sides.iter().zip(&mut times) {
            t.push(side(env));
        }
    }
    times.into_iter().map(median).collect()
}

/// Runs one side alone for `rounds` rounds (no warm-up; for profiling) and returns the total.
pub(crate) fn measure_alone(env: &dyn DynEnv, side: &Workload, rounds: usize) -> Duration {
    (0..rounds).map(|_| side(env)).sum()
}

/// The command-line arguments every benchmark takes.
pub(crate) struct Args {
    /// `quick`: a tenth of the work and 3 rounds instead of 7.
    pub(crate) quick: bool,
    /// `env=<name>` selects environments whose name contains `<name>`.
    pub(crate) env_filter: Option<String>,
    /// `side=ours` or `side=raw` runs one side only (for profiling; no ratio is printed).
    pub(crate) side: Option<String>,
    /// `diag`: benchmarks that have diagnostic twins (anyio's own primitive driven from tasks
    /// spawned straight onto the runtime, outside any anyio task and cancel scope) add them.
    pub(crate) diag: bool,
    /// Any other argument selects the cases whose name contains it.
    pub(crate) filters: Vec<String>,
}

impl Args {
    pub(crate) fn parse() -> Args {
        // cargo bench passes `--bench`; flags are not ours.
        let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
        let quick = args.iter().any(|a| a == "quick");
        let diag = args.iter().any(|a| a == "diag");
        let env_filter = args.iter().find_map(|a| a.strip_prefix("env=")).map(str::to_owned);
        let side = args.iter().find_map(|a| a.strip_prefix("side=")).map(str::to_owned);
        let filters = args
            .iter()
            .filter(|a| *a != "quick" && *a != "diag" && !a.starts_with("env=") && !a.starts_with("side="))
            .cloned()
            .collect();
        // Ratios differ between machines as much as between commits: every run says where.
        println!("# machine: {}", machine());
        Args { quick, env_filter, side, diag, filters }
    }

    pub(crate) fn rounds(&self) -> usize {
        if self.quick {
            3
        } else {
            7
        }
    }

    /// The divisor of every case's amount of work.
    pub(crate) fn scale(&self) -> u64 {
        if self.quick {
            10
        } else {
            1
        }
    }

    /// Whether a case (or case-and-twin label) is selected by the name filters.
    pub(crate) fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    pub(crate) fn selects_env(&self, env: &dyn DynEnv) -> bool {
        self.env_filter.as_deref().is_none_or(|f| env.name().contains(f))
    }
}

/// Yields once: wakes itself and returns `Pending` on its first poll. The same hand-written
/// yield is used by both sides of a case, so neither pays for a runtime's own `yield_now`
/// policy (tokio's defers the wake-up to the end of the scheduler tick).
#[derive(Default)]
pub(crate) struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

pub(crate) fn yield_now() -> YieldNow {
    YieldNow::default()
}

/// A case with one anyio side and several raw twins, all measured in the same interleaved
/// rounds (ours, twin 1, twin 2, ..., ours, twin 1, ...).
pub(crate) struct TwinCase {
    pub(crate) name: String,
    /// Operations (messages, acquisitions, wake-ups) per run, for the per-operation figures.
    pub(crate) ops: u64,
    pub(crate) ours: Workload,
    pub(crate) twins: Vec<(String, Workload)>,
}

/// How a [`TwinCase`] table reports its figures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Nanoseconds per operation.
    NsPerOp,
    /// Nanoseconds per message and millions of messages per second.
    Messages,
}

/// Runs every selected twin case in every selected environment and prints one row per twin:
/// both sides' figures and the time ratio ours/twin (below 1 means anyio is faster).
///
/// The name filters match "<case> | <twin>": a case runs with only the twins whose label
/// matches (all of them when the case's own name does).
pub(crate) fn run_twin_cases(args: &Args, cases: &[TwinCase], unit: Unit) {
    let envs = envs();
    let rounds = args.rounds();
    match unit {
        Unit::NsPerOp => println!(
            "{:<22} {:<58} {:<32} {:>10} {:>10} {:>7}",
            "backend", "case", "twin", "ours ns/op", "twin ns/op", "ratio"
        ),
        Unit::Messages => println!(
            "{:<22} {:<26} {:<30} {:>11} {:>11} {:>9} {:>9} {:>7}",
            "backend", "case", "twin", "ours ns/msg", "twin ns/msg", "ours M/s", "twin M/s", "ratio"
        ),
    }
    for case in cases {
        let twins: Vec<&(String, Workload)> =
            case.twins.iter().filter(|(t, _)| args.selects(&format!("{} | {t}", case.name))).collect();
        if twins.is_empty() {
            continue;
        }
        for env in envs.iter().filter(|e| args.selects_env(e.as_ref())) {
            let per_op = |d: Duration| d.as_nanos() as f64 / case.ops as f64;
            if let Some(side) = args.side.as_deref() {
                let mut runs: Vec<(&str, &Workload)> = Vec::new();
                if side == "raw" {
                    runs.extend(twins.iter().map(|(t, w)| (t.as_str(), w)));
                } else {
                    runs.push(("anyio", &case.ours));
                }
                for (label, w) in runs {
                    let t = measure_alone(env.as_ref(), w, rounds);
                    println!(
                        "{:<22} {} | {label}: {side} {:.1} ns/op",
                        env.name(),
                        case.name,
                        per_op(t) / rounds as f64
                    );
                }
                continue;
            }
            let mut sides: Vec<&Workload> = vec![&case.ours];
            sides.extend(twins.iter().map(|(_, w)| w));
            let medians = measure(env.as_ref(), &sides, rounds);
            let o = per_op(medians[0]);
            for ((label, _), m) in twins.iter().zip(&medians[1..]) {
                let r = per_op(*m);
                match unit {
                    Unit::NsPerOp => println!(
                        "{:<22} {:<58} {:<32} {:>10.1} {:>10.1} {:>7.2}",
                        env.name(),
                        case.name,
                        label,
                        o,
                        r,
                        o / r
                    ),
                    Unit::Messages => println!(
                        "{:<22} {:<26} {:<30} {:>11.1} {:>11.1} {:>9.2} {:>9.2} {:>7.2}",
                        env.name(),
                        case.name,
                        label,
                        o,
                        r,
                        1e3 / o,
                        1e3 / r,
                        o / r
                    ),
                }
            }
        }
    }
}
