//! Threads beside their twins (`cargo bench --bench threads --features smol [-- quick]`):
//!
//! - `run_sync(|| 1)` round trip, against tokio's `spawn_blocking(..).await` on tokio and
//!   `blocking::unblock(..).await` on smol (each runtime's own pool);
//! - 10,000 jobs at once through the default limiter (40 threads), against the twin pool
//!   gated by a 40-permit semaphore (tokio's, async-lock's);
//! - from a plain thread into a portal's run: `portal.block_on` (the future runs on the
//!   calling thread) against tokio's `Handle::block_on(fut)`, and `portal.call` (a task of the
//!   run, a round trip to its threads) against `Handle::block_on(handle.spawn(fut))`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyio::to_thread::run_sync;
use common::{median, run_twin_cases, workload, Args, Raw, TwinCase, Unit};

fn round_trip(n: u64) -> TwinCase {
    TwinCase {
        name: "run_sync(|| 1) round trip".into(),
        ops: n,
        ours: workload(move |_| async move {
            for _ in 0..n {
                assert_eq!(run_sync(|| 1).await.unwrap(), 1);
            }
        }),
        twins: vec![(
            "spawn_blocking / blocking::unblock".into(),
            workload(move |raw| async move {
                for _ in 0..n {
                    let v = match raw {
                        Raw::Tokio => tokio::task::spawn_blocking(|| 1).await.unwrap(),
                        Raw::Smol(_) => blocking::unblock(|| 1).await,
                    };
                    assert_eq!(v, 1);
                }
            }),
        )],
    }
}

fn many_jobs(n: u64) -> TwinCase {
    TwinCase {
        name: format!("{n} jobs through a limiter of 40"),
        ops: n,
        ours: workload(move |_| async move {
            anyio::task_group(|tg| async move {
                for i in 0..n {
                    tg.start_soon(async move {
                        run_sync(move || std::hint::black_box(i)).await?;
                        Ok(())
                    });
                }
                Ok(())
            })
            .await
            .unwrap();
        }),
        twins: vec![(
            "40-permit semaphore + pool".into(),
            workload(move |raw| async move {
                match &raw {
                    Raw::Tokio => {
                        let sem = Arc::new(tokio::sync::Semaphore::new(40));
                        let tasks: Vec<_> = (0..n)
                            .map(|i| {
                                let sem = sem.clone();
                                raw.spawn(async move {
                                    let _p = sem.acquire_owned().await.unwrap();
                                    tokio::task::spawn_blocking(move || std::hint::black_box(i))
                                        .await
                                        .unwrap();
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.join().await;
                        }
                    }
                    Raw::Smol(_) => {
                        let sem = Arc::new(async_lock::Semaphore::new(40));
                        let tasks: Vec<_> = (0..n)
                            .map(|i| {
                                let sem = sem.clone();
                                raw.spawn(async move {
                                    let _p = sem.acquire_arc().await;
                                    blocking::unblock(move || std::hint::black_box(i)).await;
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.join().await;
                        }
                    }
                }
            }),
        )],
    }
}

/// `portal.call` from this (plain) thread against tokio's `Handle::block_on`.
fn portal_round_trip(args: &Args) {
    if !args.selects("portal") || args.env_filter.is_some() {
        return;
    }
    let n = 20_000 / args.scale();
    let rounds = args.rounds();
    let portal = anyio::from_thread::start_blocking_portal(anyio::Backend::TOKIO).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let handle = rt.handle().clone();
    let ours = || {
        let t = Instant::now();
        for _ in 0..n {
            assert_eq!(portal.call(|| async { 1 }).unwrap(), 1);
        }
        t.elapsed()
    };
    let block_on = || {
        let t = Instant::now();
        for _ in 0..n {
            assert_eq!(handle.block_on(async { 1 }), 1);
        }
        t.elapsed()
    };
    let block_on_spawn = || {
        let t = Instant::now();
        for _ in 0..n {
            assert_eq!(handle.block_on(handle.spawn(async { 1 })).unwrap(), 1);
        }
        t.elapsed()
    };
    let ours_here = || {
        let t = Instant::now();
        for _ in 0..n {
            assert_eq!(portal.block_on(async { 1 }).unwrap(), 1);
        }
        t.elapsed()
    };
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    ours();
    ours_here();
    block_on();
    block_on_spawn();
    for _ in 0..rounds {
        a.push(ours());
        d.push(ours_here());
        b.push(block_on());
        c.push(block_on_spawn());
    }
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    let (a, b, c, d) = (per(median(a)), per(median(b)), per(median(c)), per(median(d)));
    let row = |case: &str, twin: &str, o: f64, t: f64| {
        println!("{:<22} {:<58} {:<32} {:>10.1} {:>10.1} {:>7.2}", "plain thread", case, twin, o, t, o / t)
    };
    row("portal.block_on (on the calling thread)", "Handle::block_on(fut)", d, b);
    row("portal.call round trip (a task of the run)", "Handle::block_on(spawn(fut))", a, c);
    portal.stop(false);
}

fn main() {
    let args = Args::parse();
    let scale = args.scale();
    let cases = vec![round_trip(20_000 / scale), many_jobs(10_000 / scale)];
    run_twin_cases(&args, &cases, Unit::NsPerOp);
    portal_round_trip(&args);
}
