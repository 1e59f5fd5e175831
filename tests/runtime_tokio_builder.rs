//! `anyio::backends::tokio::AnyioRuntime`: a tokio runtime built from the caller's builder
//! keeps anyio's handle current on every one of its threads, lets go of it when dropped, and
//! runs futures in anyio's root scope as `anyio::run` does.
#![cfg(feature = "tokio")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyio::backends::tokio::AnyioRuntime;
use anyio::error::Cancelled;
use anyio::rt::RuntimeHandle;
use anyio::task::TaskGroup;

/// Whether the runtime current on this thread is `handle` itself (entered), rather than one
/// anyio found by asking tokio (a fresh handle each time).
fn is_current(handle: &RuntimeHandle) -> bool {
    let current = anyio::rt::current();
    std::ptr::addr_eq(Arc::as_ptr(&current), Arc::as_ptr(handle))
}

fn multi_thread(workers: usize) -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(workers);
    b
}

#[test]
fn every_worker_and_blocking_thread_has_the_handle_current() {
    let runtime = AnyioRuntime::build(&mut multi_thread(2)).unwrap();
    let handle = runtime.handle().clone();
    let (workers, blocking) = runtime.tokio().block_on(async move {
        // Plain tokio tasks, spread over both workers by yielding, each checks its thread.
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    for _ in 0..4 {
                        seen.push((std::thread::current().id(), is_current(&handle)));
                        tokio::task::yield_now().await;
                    }
                    seen
                })
            })
            .collect();
        let mut workers = Vec::new();
        for t in tasks {
            workers.extend(t.await.unwrap());
        }
        let handle2 = handle.clone();
        let blocking = tokio::task::spawn_blocking(move || is_current(&handle2)).await.unwrap();
        (workers, blocking)
    });
    assert!(workers.iter().all(|&(_, current)| current), "a worker without the handle: {workers:?}");
    assert!(blocking, "the blocking thread had no handle current");
}

#[test]
fn a_plain_tokio_runtime_has_no_handle_current_on_its_workers() {
    // The contrast the test above relies on: anyio finds a runtime it was not given, as a
    // fresh handle, so `is_current` is false for any handle made beforehand.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let handle: RuntimeHandle = Arc::new(anyio::backends::tokio::TokioRuntime::new(runtime.handle().clone()));
    let current =
        runtime.block_on(async move { tokio::spawn(async move { is_current(&handle) }).await.unwrap() });
    assert!(!current);
}

#[test]
fn dropping_the_runtime_lets_go_of_every_thread_s_handle() {
    let runtime = AnyioRuntime::build(&mut multi_thread(2)).unwrap();
    // Start a blocking thread too; it keeps the handle until it stops.
    runtime.tokio().block_on(async { tokio::task::spawn_blocking(|| ()).await.unwrap() });
    let weak = Arc::downgrade(runtime.handle());
    drop(runtime);
    assert!(weak.upgrade().is_none(), "a thread (or a cycle) still holds anyio's handle");
}

#[test]
fn block_on_runs_in_anyio_s_root_scope_more_than_once() {
    let runtime = AnyioRuntime::build(&mut multi_thread(2)).unwrap();
    for round in 0..2 {
        let got = runtime.block_on(async move {
            // A task group, a deadline, and the run's own token: what `anyio::run` offers.
            let sum = TaskGroup::scope(|tg: TaskGroup<Cancelled>| async move {
                let hs: Vec<_> = (0..8u64).map(|i| tg.spawn(async move { Ok(i + round) })).collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.expect("task");
                }
                Ok(sum)
            })
            .await
            .expect("group")
            .expect("not cancelled");
            let timed_out =
                anyio::move_on_after(Duration::from_millis(1), anyio::time::sleep_forever()).await;
            assert!(matches!(timed_out, Ok(None)), "the deadline cancelled the sleep");
            let token = anyio::lowlevel::current_token();
            let from_thread = anyio::to_thread::run_sync(move || {
                anyio::from_thread::run_sync_with_token(&token, || 5).expect("the run is live")
            })
            .await
            .expect("not cancelled");
            sum + from_thread
        });
        assert_eq!(got, (0..8).map(|i| i + round).sum::<u64>() + 5);
    }
}

#[test]
fn the_builder_s_settings_are_kept() {
    let mut builder = multi_thread(3);
    builder.thread_name("kept-name");
    let runtime = AnyioRuntime::build(&mut builder).unwrap();
    assert_eq!(runtime.tokio().metrics().num_workers(), 3);
    let name = runtime.block_on(async {
        tokio::spawn(async { std::thread::current().name().map(str::to_owned) }).await.unwrap()
    });
    assert_eq!(name.as_deref(), Some("kept-name"));
}

#[test]
fn a_builder_used_again_does_not_carry_the_first_runtime_s_handle() {
    let mut builder = multi_thread(2);
    let first = AnyioRuntime::build(&mut builder).unwrap();
    let handle = first.handle().clone();
    // The same builder, now for a plain tokio runtime, while the first one lives.
    let plain = builder.build().unwrap();
    let current =
        plain.block_on(async move { tokio::spawn(async move { is_current(&handle) }).await.unwrap() });
    assert!(!current, "the second runtime's workers entered the first runtime's handle");
    drop(plain);
    drop(first);
}

#[test]
fn thread_hooks_run_beside_anyio_s_own() {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let (s, t) = (started.clone(), stopped.clone());
    let runtime = AnyioRuntime::build_with_thread_hooks(
        &mut multi_thread(2),
        Box::new(move || {
            s.fetch_add(1, Ordering::SeqCst);
        }),
        Box::new(move || {
            t.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .unwrap();
    let handle = runtime.handle().clone();
    let on_worker =
        runtime.block_on(async move { tokio::spawn(async move { is_current(&handle) }).await.unwrap() });
    assert!(on_worker, "anyio's own hook still ran");
    drop(runtime);
    let (started, stopped) = (started.load(Ordering::SeqCst), stopped.load(Ordering::SeqCst));
    assert!(started >= 2, "both workers ran the start hook ({started})");
    assert_eq!(started, stopped, "every started thread ran the stop hook");
}
