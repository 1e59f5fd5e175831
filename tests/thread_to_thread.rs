//! `to_thread::run_sync` on every backend: AnyIO's tests/test_to_thread.py behaviours (values,
//! panics, limiters, cancellation with and without abandoning), and what anyio adds: the
//! limiter token held until an abandoned thread really finishes, a run that does not wait for
//! abandoned jobs, one pool of named, reused worker threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyio::{
    cancel::CancelScope,
    move_on_after, sleep,
    sync::CapacityLimiter,
    task_group,
    to_thread::{current_default_thread_limiter, run_sync, run_sync_with, RunSyncError, RunSyncOptions},
    AnyError, TaskGroup,
};

mod support;
use support::{guarded_ok, SHORT};

#[anyio::test]
async fn run_sync_returns_the_value_computed_on_another_thread() {
    let me = std::thread::current().id();
    let (v, there) = run_sync(|| (6 * 7, std::thread::current().id())).await.unwrap();
    assert_eq!(v, 42);
    assert_ne!(there, me);
}

#[anyio::test]
async fn a_panic_in_the_job_is_resumed_in_the_caller() {
    let r = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run_sync(|| -> u8 {
        panic!("boom on the worker")
    })))
    .await;
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom on the worker"));
}

#[anyio::test]
async fn workers_are_named_and_a_warm_one_is_reused() {
    let name = run_sync(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
    assert_eq!(name.as_deref(), Some("anyio-worker"));
    // Sequential jobs go to the most recently idled worker: few threads, kept warm. (Other
    // tests share the pool, so only check that reuse happens at all.)
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        ids.insert(run_sync(|| std::thread::current().id()).await.unwrap());
    }
    assert!(ids.len() < 20, "every job started a new thread: {}", ids.len());
}

#[anyio::test]
async fn a_custom_limiter_bounds_how_many_jobs_run_at_once() {
    let limiter = Arc::new(CapacityLimiter::new(2));
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let seen = peak.clone();
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for _ in 0..8 {
                let (limiter, inside, peak) = (limiter.clone(), inside.clone(), peak.clone());
                tg.start_soon(async move {
                    run_sync_with(RunSyncOptions::new().limiter(limiter), move || {
                        let now = inside.fetch_add(1, SeqCst) + 1;
                        peak.fetch_max(now, SeqCst);
                        std::thread::sleep(Duration::from_millis(10));
                        inside.fetch_sub(1, SeqCst);
                    })
                    .await?;
                    Ok(())
                });
            }
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    assert_eq!(seen.load(SeqCst), 2);
}

#[anyio::test]
async fn the_default_limiter_has_40_tokens_and_is_one_per_run() {
    let a = current_default_thread_limiter();
    assert_eq!(a.total_tokens(), 40);
    assert!(Arc::ptr_eq(&a, &current_default_thread_limiter()));
    // Lowering it applies to run_sync at once.
    a.set_total_tokens(1);
    let held = a.acquire().await.unwrap();
    let r = move_on_after(SHORT, run_sync(|| 1)).await.unwrap();
    assert_eq!(r, None, "no token free: run_sync waited");
    drop(held);
    assert_eq!(run_sync(|| 2).await.unwrap(), 2);
    a.set_total_tokens(40);
}

#[test]
fn each_run_has_its_own_default_limiter() {
    for backend in anyio::Backend::compiled() {
        let first = anyio::run_on(backend, async {
            let l = current_default_thread_limiter();
            l.set_total_tokens(3);
            Arc::as_ptr(&l) as usize
        })
        .unwrap();
        let (second, total) = anyio::run_on(backend, async {
            let l = current_default_thread_limiter();
            (Arc::as_ptr(&l) as usize, l.total_tokens())
        })
        .unwrap();
        assert_eq!(total, 40, "{backend}: a new run starts with a fresh limiter");
        let _ = (first, second);
    }
}

#[anyio::test]
async fn without_abandon_a_cancelled_wait_still_returns_the_value_and_the_next_checkpoint_fails() {
    guarded_ok(async {
        let scope = CancelScope::new();
        let handle = scope.clone();
        let out = scope
            .run(async move {
                let v = run_sync(move || {
                    handle.cancel();
                    std::thread::sleep(Duration::from_millis(30));
                    "value"
                })
                .await;
                // The value is not thrown away for a cancellation that came while it ran...
                assert_eq!(v.unwrap(), "value");
                // ...and the task's next checkpoint raises it.
                anyio::lowlevel::checkpoint().await?;
                Ok::<_, AnyError>("not reached")
            })
            .await;
        assert!(matches!(out, Ok(None)), "the scope caught its cancellation");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn with_abandon_a_cancelled_wait_returns_at_once_and_the_value_is_dropped_on_the_worker() {
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let (release, released) = mpsc::channel::<()>();
    let started = Instant::now();
    let r = move_on_after(SHORT, async move {
        run_sync_with(RunSyncOptions::new().abandon_on_cancel(true), move || {
            let _ = released.recv_timeout(Duration::from_secs(5));
            Flag(d)
        })
        .await
    })
    .await;
    assert!(matches!(r, Ok(None)), "the timeout cancelled the wait");
    assert!(started.elapsed() < Duration::from_secs(4), "returned before the job finished");
    assert!(!dropped.load(SeqCst));
    release.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dropped.load(SeqCst) {
        assert!(Instant::now() < deadline, "the abandoned value was never dropped");
        sleep(Duration::from_millis(1)).await.unwrap();
    }
}

#[anyio::test]
async fn an_already_cancelled_task_starts_no_job() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let scope = CancelScope::new();
    scope.cancel();
    let out = scope
        .run(async move {
            let e = run_sync(move || r.store(true, SeqCst)).await.unwrap_err();
            assert!(matches!(e, RunSyncError::Cancelled(_)));
            Err::<(), _>(AnyError::from(e))
        })
        .await;
    assert!(matches!(out, Ok(None)));
    std::thread::sleep(SHORT);
    assert!(!ran.load(SeqCst));
}

#[anyio::test]
async fn an_abandoned_job_keeps_its_token_until_its_thread_really_finishes() {
    let limiter = Arc::new(CapacityLimiter::new(1));
    let (release, released) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let options = RunSyncOptions::new().abandon_on_cancel(true).limiter(limiter.clone());
    let r = move_on_after(
        SHORT,
        run_sync_with(options.clone(), move || {
            let _ = released.recv_timeout(Duration::from_secs(5));
            f.store(true, SeqCst);
        }),
    )
    .await;
    assert!(matches!(r, Ok(None)));
    // The thread still runs: the next job waits for it (trio's rule).
    assert_eq!(limiter.borrowed_tokens(), 1);
    let r = move_on_after(SHORT, run_sync_with(options.clone(), || ())).await.unwrap();
    assert_eq!(r, None, "the next job waited for the abandoned thread's token");
    release.send(()).unwrap();
    let fin = finished.clone();
    run_sync_with(options, move || assert!(fin.load(SeqCst), "ran only after the abandoned job ended"))
        .await
        .unwrap();
}

#[test]
fn a_run_does_not_wait_for_an_abandoned_job() {
    for backend in anyio::Backend::compiled() {
        let started = Instant::now();
        anyio::run_on(backend, async {
            let r = move_on_after(SHORT, async {
                run_sync_with(RunSyncOptions::new().abandon_on_cancel(true), || {
                    std::thread::sleep(Duration::from_secs(5))
                })
                .await
            })
            .await;
            assert!(matches!(r, Ok(None)));
        })
        .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{backend}: the run waited for the abandoned job"
        );
    }
}

#[anyio::test]
async fn a_limiter_of_zero_waits_and_the_wait_can_be_cancelled() {
    let limiter = Arc::new(CapacityLimiter::new(0));
    let r = move_on_after(SHORT, run_sync_with(RunSyncOptions::new().limiter(limiter), || 1)).await.unwrap();
    assert_eq!(r, None);
}

#[anyio::test]
async fn a_worker_can_use_the_backends_own_apis() {
    let backend = anyio::current_backend().unwrap();
    let entered = run_sync(|| {
        #[cfg(feature = "tokio")]
        {
            tokio::runtime::Handle::try_current().is_ok()
        }
        #[cfg(not(feature = "tokio"))]
        {
            false
        }
    })
    .await
    .unwrap();
    if backend == "tokio" {
        assert!(entered, "tokio's handle is entered on the worker");
    }
}

#[anyio::test]
async fn many_jobs_through_the_default_limiter_all_complete() {
    let total = Arc::new(Mutex::new(0u64));
    let t = total.clone();
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for i in 0..200u64 {
                let t = t.clone();
                tg.start_soon(async move {
                    run_sync(move || *t.lock().unwrap() += i).await?;
                    Ok(())
                });
            }
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    assert_eq!(*total.lock().unwrap(), (0..200).sum::<u64>());
}
