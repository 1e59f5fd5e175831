// Scratch (not committed): spawn+join inside anyio's own tokio multi-thread runtime, and a
// JoinSet in the same runtime, interleaved.
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

fn main() {
    let n = 100_000u32;
    let backend = anyio::Backend::TokioMultiThread { workers: NonZeroUsize::new(2) };
    let (ours, theirs) = anyio::run_on(backend, async move {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..8 {
            let t = Instant::now();
            anyio::TaskGroup::scope(|tg: anyio::TaskGroup<anyio::Cancelled>| async move {
                for _ in 0..n {
                    tg.spawn(async { Ok::<_, anyio::Cancelled>(()) });
                }
                Ok::<_, anyio::Cancelled>(())
            })
            .await
            .unwrap();
            ours.push(t.elapsed());
            let t = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..n {
                set.spawn(async {});
            }
            while set.join_next().await.is_some() {}
            theirs.push(t.elapsed());
        }
        (ours, theirs)
    })
    .unwrap();
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_nanos() as f64 / n as f64
    };
    let (o, t) = (med(ours), med(theirs));
    println!(
        "inside anyio::run (tokio mt 2): ours {o:.1} ns/task, JoinSet {t:.1} ns/task, ratio {:.2}",
        o / t
    );
}
