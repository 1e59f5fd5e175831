//! What one uncontended atomic read-modify-write costs on this machine, beside a plain load
//! and store: the unit in which docs/benchmarks.md (issue 18, sixth session) counts what a
//! cancel scope, a spawn and a channel hand-off cannot shed.
//!
//! Run with `cargo bench --bench atomics --features smol` (add `-- quick` for a tenth of the
//! iterations). Each case runs a loop of dependent operations on one atomic that no other
//! thread touches (reached through `black_box`, so the compiler keeps every operation), three
//! rounds, and reports the fastest round's nanoseconds per iteration.

use std::hint::black_box;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Instant;

mod common;

/// Runs `body` `n` times per round, three rounds; the fastest round's ns per iteration.
fn time(n: u64, mut body: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                body();
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let n: u64 = if quick { 5_000_000 } else { 50_000_000 };
    println!("# machine: {}", common::machine());
    println!("{:<58} {:>10}", "operation (uncontended, one thread)", "ns/iter");
    let word = AtomicUsize::new(1);
    let byte = AtomicU8::new(0);
    let cases: [(&str, &mut dyn FnMut()); 6] = [
        ("plain load + store (no read-modify-write)", &mut || {
            let w = black_box(&word);
            w.store(w.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
        }),
        ("fetch_add (a reference count taken)", &mut || {
            black_box(&word).fetch_add(1, Ordering::Relaxed);
        }),
        ("fetch_add + fetch_sub (a reference taken and given back)", &mut || {
            let w = black_box(&word);
            w.fetch_add(1, Ordering::Relaxed);
            w.fetch_sub(1, Ordering::Release);
        }),
        ("fetch_or on a byte, result used (a flag claimed)", &mut || {
            black_box(black_box(&byte).fetch_or(4, Ordering::AcqRel));
        }),
        ("compare_exchange that succeeds (a lock taken)", &mut || {
            let w = black_box(&word);
            let cur = w.load(Ordering::Relaxed);
            black_box(w.compare_exchange(cur, cur.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed))
                .ok();
        }),
        ("swap (std's mutex released)", &mut || {
            black_box(black_box(&word).swap(1, Ordering::Release));
        }),
    ];
    for (name, body) in cases {
        println!("{name:<58} {:>10.2}", time(n, body));
    }
}
