//! Task-group, checkpoint and cancel-scope costs, each beside its raw-runtime twin in the same
//! run, on tokio current-thread, tokio multi-thread and smol; and the concurrency helpers
//! beside the hand-written task group they replace. `ANYIO_BENCH_TRACK_TASKS=1` runs it with
//! task tracking on (`anyio::task::track_tasks`).
//!
//! Run with `cargo bench --bench core_tasks --features smol` (add `-- quick` for a short run).
//! Every case is measured in interleaved rounds (ours, raw, ours, raw, ...) and reports the
//! median time per operation of each and their ratio ours/raw.

use std::hint::black_box;
use std::time::Duration;

use anyio::{lowlevel::checkpoint, move_on_after, CancelScope, Cancelled, TaskGroup};

mod common;

use common::{measure, measure_alone, workload, Args, Raw, Workload};

struct Case {
    name: &'static str,
    ops: u64,
    ours: Workload,
    raw: Workload,
    /// `true` to report the added nanoseconds (ours - raw) instead of only the ratio.
    additive: bool,
}

fn spawn_join_cases(n: u64) -> Case {
    spawn_join(n, "task group spawn+join (100k trivial tasks)", false)
}

/// The same group against a twin that also makes one more allocation per task (not zeroed),
/// of about the size of ours (a 272-byte node, its 16-byte header and this task's body):
/// what a second allocation per task costs the twin. The node cannot live in the runtime's own task
/// allocation (docs/benchmarks.md, seventh session), so this is the twin with our
/// allocation count.
fn spawn_join_two_allocations_cases(n: u64) -> Case {
    spawn_join(n, "task group spawn+join (100k) vs twin + one 352-byte Box per task", true)
}

/// The size of the twin's extra allocation in [`spawn_join_two_allocations_cases`].
const CELL_SIZE: usize = 352;

fn spawn_join(n: u64, name: &'static str, twin_allocates: bool) -> Case {
    Case {
        name,
        ops: n,
        ours: workload(move |_raw| async move {
            TaskGroup::scope(|tg: TaskGroup<Cancelled>| async move {
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
                Raw::Tokio if twin_allocates => {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..n {
                        // Freed when the task runs, as our cell is when its task ends; not
                        // zeroed, as ours is not (`Box::new([0; N])` becomes a `calloc`).
                        let cell = black_box(Box::<[u8; CELL_SIZE]>::new_uninit());
                        set.spawn(async move { drop(black_box(cell)) });
                    }
                    while set.join_next().await.is_some() {}
                }
                Raw::Tokio => {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..n {
                        set.spawn(async {});
                    }
                    while set.join_next().await.is_some() {}
                }
                Raw::Smol(ex) if twin_allocates => {
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            let cell = black_box(Box::<[u8; CELL_SIZE]>::new_uninit());
                            ex.spawn(async move { drop(black_box(cell)) })
                        })
                        .collect();
                    for t in tasks {
                        t.await;
                    }
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

/// AnyIO 4.15's helpers against the group a user would write by hand: spawn, keep the handles,
/// await them in order (`amap` is `gather_all` over a map, so one case measures both).
fn gather_cases(n: u64) -> Case {
    Case {
        name: "gather_all / amap of 10k trivial tasks vs hand-written group with handles",
        ops: n,
        ours: workload(move |_raw| async move {
            let v = anyio::task::gather_all((0..n).map(|i| async move { Ok::<_, anyio::AnyError>(i) }))
                .await
                .unwrap();
            black_box(v);
        }),
        raw: workload(move |_raw| async move {
            let v = anyio::task_group(|tg| async move {
                let handles: Vec<_> = (0..n).map(|i| tg.spawn(async move { Ok(i) })).collect();
                let mut out = Vec::with_capacity(handles.len());
                for h in handles {
                    out.push(h.await?);
                }
                Ok(out)
            })
            .await
            .unwrap();
            black_box(v);
        }),
        additive: false,
    }
}

fn main() {
    // Task tracking on, to measure what `running_tasks`'s registry costs a spawn.
    if std::env::var_os("ANYIO_BENCH_TRACK_TASKS").is_some() {
        anyio::task::track_tasks(true);
    }
    let args = Args::parse();
    let rounds = args.rounds();
    let scale = args.scale();
    let envs = common::envs();
    let cases = [
        spawn_join_cases(100_000 / scale),
        spawn_join_two_allocations_cases(100_000 / scale),
        checkpoint_cases(1_000_000 / scale),
        scope_no_deadline_cases(1_000_000 / scale),
        scope_deadline_cases(1_000_000 / scale),
        gather_cases(10_000 / scale),
    ];
    println!(
        "{:<24} {:<80} {:>12} {:>12} {:>8} {:>10}",
        "backend", "case", "ours ns/op", "raw ns/op", "ratio", "added ns"
    );
    for case in cases.iter().filter(|c| args.selects(c.name)) {
        for env in envs.iter().filter(|e| args.selects_env(e.as_ref())) {
            if let Some(side) = args.side.as_deref() {
                let f = if side == "raw" { &case.raw } else { &case.ours };
                let t = measure_alone(env.as_ref(), f, rounds);
                println!(
                    "{:<24} {:<80} {side} {:>12.1} ns/op",
                    env.name(),
                    case.name,
                    t.as_nanos() as f64 / (rounds as u64 * case.ops) as f64
                );
                continue;
            }
            // Warm up both, then interleave rounds so drift hits both sides alike.
            let medians = measure(env.as_ref(), &[&case.ours, &case.raw], rounds);
            let o = medians[0].as_nanos() as f64 / case.ops as f64;
            let r = medians[1].as_nanos() as f64 / case.ops as f64;
            let added = if case.additive { format!("{:>10.1}", o - r) } else { format!("{:>10}", "-") };
            println!("{:<24} {:<80} {:>12.1} {:>12.1} {:>8.2} {}", env.name(), case.name, o, r, o / r, added);
        }
    }
}
