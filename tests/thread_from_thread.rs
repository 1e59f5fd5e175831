//! `from_thread` and run identity on every backend: AnyIO's tests/test_from_thread.py
//! behaviours (calls from workers, the host task's cancel scope, tokens from other threads,
//! finished runs, misuse), tests/test_lowlevel.py's `RunVar`, and where a blocking call into a
//! runtime is refused: only on threads that poll tasks.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyio::{
    cancel::CancelScope,
    from_thread::{self, FromThreadError},
    lowlevel::{current_token, RunVar, RunVarError},
    move_on_after, sleep,
    to_thread::{run_sync, run_sync_with, RunSyncOptions},
    AnyError, Backend,
};

mod support;
use support::{guarded_ok, SHORT};

#[anyio::test]
async fn from_thread_run_and_run_sync_run_in_the_host_run_from_a_worker() {
    let backend = anyio::current_backend();
    let (a, b, on_worker) = run_sync(|| {
        let a = from_thread::run(|| async {
            sleep(Duration::from_millis(1)).await.unwrap();
            anyio::current_backend()
        })
        .unwrap();
        let b = from_thread::run_sync(|| anyio::task::current_task_id().is_some()).unwrap();
        (a, b, std::thread::current().name().map(str::to_owned))
    })
    .await
    .unwrap();
    assert_eq!(a, backend);
    assert!(b, "run_sync's function runs as an anyio task of the host run");
    assert_eq!(on_worker.as_deref(), Some("anyio-worker"));
}

#[anyio::test]
async fn a_panic_in_the_host_run_is_resumed_on_the_worker() {
    let caught = run_sync(|| {
        std::panic::catch_unwind(|| from_thread::run_sync(|| -> u8 { panic!("boom in the host") })).is_err()
    })
    .await
    .unwrap();
    assert!(caught);
}

#[anyio::test]
async fn cancelling_the_host_task_cancels_what_its_worker_runs_in_the_host() {
    guarded_ok(async {
        let scope = CancelScope::new();
        let handle = scope.clone();
        let outcome = scope
            .run(async move {
                let got = run_sync(move || {
                    from_thread::run(move || async move {
                        handle.cancel();
                        // Inside the host's scope: this sleep is cancelled at once.
                        sleep(Duration::from_secs(30)).await
                    })
                })
                .await?;
                Ok::<_, AnyError>(got)
            })
            .await;
        // The worker's call returned the cancellation (its sleep's error), not a 30 s wait.
        match outcome {
            Ok(Some(Ok(Err(e)))) => assert!(anyio::error::AsCancelled::as_cancelled(&e).is_some(), "{e}"),
            Ok(None) => {}
            other => panic!("unexpected: {other:?}"),
        }
        Ok(())
    })
    .await
}

#[anyio::test]
async fn check_cancelled_on_a_worker_sees_the_host_scope() {
    guarded_ok(async {
        let scope = CancelScope::new();
        let handle = scope.clone();
        let r = scope
            .run(async move {
                let seen = run_sync(move || {
                    assert!(from_thread::check_cancelled().is_ok());
                    handle.cancel();
                    match from_thread::check_cancelled() {
                        Err(FromThreadError::Cancelled(_)) => true,
                        other => panic!("expected Cancelled, got {other:?}"),
                    }
                })
                .await?;
                Ok::<_, AnyError>(seen)
            })
            .await;
        assert!(matches!(r, Ok(Some(true)) | Ok(None)), "{r:?}");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn an_abandoned_worker_is_no_longer_in_the_host_scope() {
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let r = move_on_after(
        SHORT,
        run_sync_with(RunSyncOptions::new().abandon_on_cancel(true), move || {
            wait.recv().unwrap();
            // The host scope was cancelled, but this job was abandoned: not told, and calls back
            // into the run run in no task's scope.
            let r = from_thread::check_cancelled().map_err(|e| e.to_string());
            done_tx.send(r).unwrap();
        }),
    )
    .await;
    assert!(matches!(r, Ok(None)));
    go.send(()).unwrap();
    let r = run_sync(move || done_rx.recv_timeout(Duration::from_secs(5)).unwrap()).await.unwrap();
    assert_eq!(r, Ok(()));
}

#[test]
fn outside_a_worker_from_thread_and_check_cancelled_are_typed_errors() {
    assert!(matches!(from_thread::run_sync(|| 1), Err(FromThreadError::NotInWorker)));
    assert!(matches!(from_thread::check_cancelled(), Err(FromThreadError::NotInWorker)));
    assert!(FromThreadError::NotInWorker.to_string().contains("worker thread"));
}

#[anyio::test]
async fn a_token_lets_any_thread_run_code_in_the_run() {
    let token = current_token();
    let t = std::thread::spawn(move || {
        from_thread::run_with_token(&token, || async {
            sleep(Duration::from_millis(1)).await.unwrap();
            anyio::current_backend()
        })
    });
    let got = run_sync(move || t.join().unwrap()).await.unwrap().unwrap();
    assert_eq!(got, anyio::current_backend());
}

#[anyio::test]
async fn a_blocking_from_thread_call_on_a_thread_that_polls_tasks_is_refused() {
    let token = current_token();
    let r = from_thread::run_sync_with_token(&token, || 1);
    assert!(matches!(r, Err(FromThreadError::WouldBlockRuntime)), "{r:?}");
}

#[test]
fn a_token_of_a_finished_run_says_so() {
    for backend in Backend::compiled() {
        let token = anyio::run_on(backend, async { current_token() }).unwrap();
        assert!(token.is_finished());
        let r = from_thread::run_sync_with_token(&token, || 1);
        assert!(matches!(r, Err(FromThreadError::RunFinished(_))), "{backend}: {r:?}");
    }
}

static NUMBER: RunVar<u32> = RunVar::new("number");
static WITH_DEFAULT: RunVar<&'static str> = RunVar::with_default("with default", || "default");

#[anyio::test]
async fn a_run_var_has_a_value_per_run_and_resets_with_its_token() {
    assert_eq!(NUMBER.get(), Err(RunVarError::NotSet { name: "number" }));
    assert_eq!(NUMBER.get_or(5), 5);
    assert_eq!(WITH_DEFAULT.get().unwrap(), "default");
    let t1 = NUMBER.set(1);
    let t2 = NUMBER.set(2);
    assert_eq!(NUMBER.get().unwrap(), 2);
    NUMBER.reset(t2).unwrap();
    assert_eq!(NUMBER.get().unwrap(), 1);
    NUMBER.reset(t1).unwrap();
    assert!(NUMBER.get().is_err());
}

#[anyio::test]
async fn a_token_of_another_run_var_is_refused() {
    static OTHER: RunVar<u32> = RunVar::new("other");
    let t = OTHER.set(3);
    let e = NUMBER.reset(t).unwrap_err();
    assert_eq!(e, RunVarError::WrongToken { name: "number" });
    assert_eq!(OTHER.get().unwrap(), 3, "the value was left alone");
}

#[test]
fn runs_do_not_share_run_var_values_even_at_once() {
    static SHARED: RunVar<u64> = RunVar::new("shared");
    for backend in Backend::compiled() {
        let threads: Vec<_> = (0..4u64)
            .map(|i| {
                std::thread::spawn(move || {
                    anyio::run_on(backend, async move {
                        assert!(SHARED.get().is_err(), "a new run starts empty");
                        let _t = SHARED.set(i);
                        for _ in 0..20 {
                            sleep(Duration::from_millis(1)).await.unwrap();
                            assert_eq!(SHARED.get().unwrap(), i, "another run's value leaked in");
                        }
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}

#[anyio::test]
async fn a_run_var_set_in_a_task_is_seen_from_another_task_of_the_run() {
    static FLAG: RunVar<bool> = RunVar::new("flag");
    let _t = FLAG.set(true);
    let seen = anyio::task_group(|tg: anyio::TaskGroup<AnyError>| async move {
        Ok(tg.spawn(async { Ok::<_, AnyError>(FLAG.get().unwrap()) }).await?)
    })
    .await
    .unwrap();
    assert_eq!(seen, Some(true));
}

#[test]
fn anyio_run_works_on_anyio_worker_threads() {
    for backend in Backend::compiled() {
        let inner = anyio::run_on(backend, async move {
            run_sync(move || anyio::run_on(backend, async { 5 })).await.unwrap()
        })
        .unwrap();
        assert_eq!(inner.unwrap(), 5, "{backend}");
    }
}

#[cfg(feature = "tokio")]
#[test]
fn anyio_run_works_on_tokio_blocking_threads_and_is_refused_in_tokio_tasks() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let backend = Backend::compiled().into_iter().last().unwrap();
    rt.block_on(async move {
        let in_blocking =
            tokio::task::spawn_blocking(move || anyio::run_on(backend, async { 1 })).await.unwrap();
        assert_eq!(in_blocking.unwrap(), 1, "a blocking thread may block");
        let in_task = tokio::spawn(async move { anyio::run_on(backend, async { 1 }) }).await.unwrap();
        let err = in_task.unwrap_err();
        assert!(err.to_string().contains("inside a running async runtime"), "{err}");
    });
}

#[cfg(feature = "smol")]
#[test]
fn anyio_run_works_on_smol_blocking_threads() {
    let r = smol::block_on(blocking_unblock(|| anyio::run_on(Backend::Smol, async { 2 })));
    assert_eq!(r.unwrap(), 2);
}

#[cfg(feature = "smol")]
async fn blocking_unblock<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    smol::unblock(f).await
}

#[cfg(feature = "async-std")]
#[test]
fn anyio_run_works_on_async_std_blocking_threads_and_is_refused_in_its_tasks() {
    async_std::task::block_on(async {
        let r = async_std::task::spawn_blocking(|| anyio::run_on(Backend::AsyncStd, async { 3 })).await;
        assert_eq!(r.unwrap(), 3);
        let r =
            async_std::task::spawn(async { anyio::run_on(Backend::AsyncStd, async { 3 }).is_err() }).await;
        assert!(r, "refused inside an async-std task");
    });
}

#[test]
fn the_blocking_call_from_a_plain_thread_needs_a_token_and_a_live_run() {
    let started = Instant::now();
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    anyio::run(async move {
        let token = current_token();
        let t = std::thread::spawn(move || {
            from_thread::run_sync_with_token(&token, move || f.store(true, SeqCst)).unwrap();
        });
        run_sync(move || t.join().unwrap()).await.unwrap();
    });
    assert!(flag.load(SeqCst));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[cfg(feature = "tokio")]
#[test]
fn from_thread_in_a_tokio_spawn_blocking_thread_without_a_token_is_a_typed_error() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let r = rt.block_on(async {
        tokio::task::spawn_blocking(|| {
            (from_thread::run_sync(|| 1).map_err(|e| e.to_string()), from_thread::check_cancelled().is_err())
        })
        .await
    });
    let (run, checked) = r.unwrap();
    let msg = run.unwrap_err();
    assert!(msg.contains("worker thread") && msg.contains("EventLoopToken"), "{msg}");
    assert!(checked);
}
