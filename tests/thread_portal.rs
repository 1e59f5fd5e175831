//! Blocking portals on every backend: AnyIO's `TestBlockingPortal` behaviours (call, call_sync,
//! start_task_soon futures that can be waited on, polled and cancelled, start_task with its
//! started() handshake, stop with and without cancelling, wrapped resources, misuse), portals
//! with a thread of their own, and the shared provider.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyio::{
    from_thread::{blocking_portal, start_blocking_portal, BlockingPortalProvider, PortalError},
    sleep,
    time::sleep_forever,
    to_thread::run_sync,
    AnyError, Backend,
};

mod support;
use support::guarded;

/// Runs `f` on a plain thread while the run keeps going, and returns its value.
async fn on_a_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let t = std::thread::spawn(f);
    run_sync(move || t.join().unwrap()).await.unwrap()
}

#[anyio::test]
async fn call_and_call_sync_run_in_the_run_and_return_values() {
    let r = guarded(blocking_portal(|portal| async move {
        on_a_thread(move || {
            let a = portal.call(|| async {
                sleep(Duration::from_millis(1)).await.unwrap();
                anyio::current_backend()
            });
            let b = portal.call_sync(|| anyio::task::current_task_id().is_some());
            (a.unwrap(), b.unwrap())
        })
        .await
    }))
    .await
    .unwrap();
    assert_eq!(r.0, anyio::current_backend());
    assert!(r.1);
}

#[anyio::test]
async fn a_panic_in_a_portal_call_is_resumed_in_the_calling_thread() {
    let caught = blocking_portal(|portal| async move {
        on_a_thread(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                portal.call_sync(|| -> u8 { panic!("boom") })
            }))
            .is_err()
        })
        .await
    })
    .await
    .unwrap();
    assert!(caught);
}

#[anyio::test]
async fn start_task_soon_gives_a_future_to_poll_wait_for_and_cancel() {
    guarded(blocking_portal(|portal| async move {
        on_a_thread(move || {
            let quick = portal.start_task_soon(|| async { 7 }).unwrap();
            assert_eq!(quick.wait().unwrap(), 7);

            let slow = portal
                .start_task_soon(|| async {
                    sleep_forever().await?;
                    Ok::<(), AnyError>(())
                })
                .unwrap();
            std::thread::sleep(Duration::from_millis(10));
            assert!(!slow.is_done());
            slow.cancel();
            let started = Instant::now();
            assert!(matches!(slow.wait(), Err(PortalError::Cancelled)));
            assert!(started.elapsed() < Duration::from_secs(5));
        })
        .await
    }))
    .await
    .unwrap();
}

#[anyio::test]
async fn start_task_returns_the_started_value_and_a_future_for_the_end() {
    guarded(blocking_portal(|portal| async move {
        on_a_thread(move || {
            let (done, value) = portal
                .start_task(|status| async move {
                    status.started("ready");
                    sleep(Duration::from_millis(5)).await?;
                    Ok(())
                })
                .unwrap();
            assert_eq!(value, "ready");
            done.wait().unwrap().unwrap();
        })
        .await
    }))
    .await
    .unwrap();
}

#[anyio::test]
async fn start_task_that_never_calls_started_or_fails_first_is_a_typed_error() {
    guarded(blocking_portal(|portal| async move {
        on_a_thread(move || {
            let r = portal.start_task(|_status: anyio::task::TaskStatus<u8>| async { Ok(()) });
            assert!(matches!(r, Err(PortalError::NotStarted)), "{r:?}");
            let r = portal.start_task(|_status: anyio::task::TaskStatus<u8>| async {
                Err(AnyError::other(std::io::Error::other("no config")))
            });
            match r {
                Err(PortalError::Failed(e)) => assert!(e.to_string().contains("no config")),
                other => panic!("expected Failed, got {other:?}"),
            }
            // The portal still serves.
            assert_eq!(portal.call_sync(|| 1).unwrap(), 1);
        })
        .await
    }))
    .await
    .unwrap();
}

#[anyio::test]
async fn a_stopped_portal_refuses_calls_with_a_typed_error() {
    blocking_portal(|portal| async move {
        portal.stop(false).await.unwrap();
        let r = on_a_thread(move || portal.call_sync(|| 1)).await;
        assert!(matches!(r, Err(PortalError::Stopped)), "{r:?}");
    })
    .await
    .unwrap();
}

#[anyio::test]
async fn stop_without_cancelling_lets_tasks_finish_and_with_cancelling_cancels_them() {
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    blocking_portal(|portal| async move {
        let p = portal.clone();
        on_a_thread(move || {
            drop(p.start_task_soon(move || async move {
                sleep(Duration::from_millis(20)).await.unwrap();
                f.store(true, SeqCst);
            }));
        })
        .await;
        // No new calls from here; the running task is left to finish.
        portal.stop(false).await.unwrap();
        assert!(portal.is_stopped());
    })
    .await
    .unwrap();
    assert!(finished.load(SeqCst), "blocking_portal waited for the task stop(false) left running");

    let started = Instant::now();
    let fut = blocking_portal(|portal| async move {
        let p = portal.clone();
        let fut = on_a_thread(move || {
            p.start_task_soon(|| async {
                sleep_forever().await?;
                Ok::<(), AnyError>(())
            })
            .unwrap()
        })
        .await;
        portal.stop(true).await.unwrap();
        fut
    })
    .await
    .unwrap();
    assert!(fut.is_done(), "the cancelled task had finished when blocking_portal returned");
    assert!(matches!(fut.wait(), Err(PortalError::Cancelled)));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[anyio::test]
async fn a_portal_whose_body_fails_closes_and_its_callers_are_told() {
    let (tx, rx) = std::sync::mpsc::channel();
    let r = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(blocking_portal(
        |portal| async move {
            tx.send(portal.clone()).unwrap();
            panic!("the body fails");
        },
    )))
    .await;
    assert!(r.is_err(), "the body's panic is resumed");
    let portal = rx.recv().unwrap();
    assert!(portal.is_stopped());
    let r = on_a_thread(move || portal.call_sync(|| 1)).await;
    assert!(matches!(r, Err(PortalError::Stopped)), "{r:?}");
}

#[anyio::test]
async fn a_panic_before_the_first_await_of_a_portal_call_is_resumed_in_the_caller() {
    blocking_portal(|portal| async move {
        let p = portal.clone();
        let caught = on_a_thread(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                p.call(|| -> std::future::Ready<u8> { panic!("before any await") })
            }))
            .is_err()
        })
        .await;
        assert!(caught);
        // The portal still serves.
        assert_eq!(on_a_thread(move || portal.call_sync(|| 2)).await.unwrap(), 2);
    })
    .await
    .unwrap();
}

#[anyio::test]
async fn a_blocking_portal_call_on_a_thread_that_polls_tasks_is_refused() {
    blocking_portal(|portal| async move {
        assert!(matches!(portal.call_sync(|| 1), Err(PortalError::WouldBlockRuntime)));
    })
    .await
    .unwrap();
}

#[anyio::test]
async fn a_wrapped_resource_is_used_and_closed_through_the_portal() {
    use anyio::streams::memory::create_memory_object_stream;
    let (tx, rx) = create_memory_object_stream::<u32>(4);
    blocking_portal(|portal| async move {
        on_a_thread(move || {
            let tx = portal.wrap_async_resource(tx);
            tx.call(|tx| async move { tx.send(5).await }).unwrap().unwrap();
            tx.close().unwrap().unwrap();
        })
        .await;
        assert_eq!(rx.receive().await.unwrap(), 5);
        assert!(rx.receive().await.is_err(), "the sender was closed in the run");
    })
    .await
    .unwrap();
}

#[test]
fn a_portal_thread_serves_a_synchronous_program_on_every_backend() {
    for backend in Backend::compiled() {
        let portal = start_blocking_portal(backend).unwrap();
        let name = portal.call(|| async { anyio::current_backend() }).unwrap();
        assert!(backend.to_string().starts_with(name.unwrap()), "{backend}");
        // Several plain threads at once.
        let hits = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (portal, hits) = (&*portal, hits.clone());
                s.spawn(move || {
                    for _ in 0..10 {
                        let hits = hits.clone();
                        portal.call_sync(move || hits.fetch_add(1, SeqCst)).unwrap();
                    }
                });
            }
        });
        assert_eq!(hits.load(SeqCst), 40);
        portal.stop(false);
    }
}

#[test]
fn dropping_a_portal_thread_cancels_its_tasks_and_joins() {
    for backend in Backend::compiled() {
        let portal = start_blocking_portal(backend).unwrap();
        let fut = portal
            .start_task_soon(|| async {
                sleep_forever().await?;
                Ok::<(), AnyError>(())
            })
            .unwrap();
        let started = Instant::now();
        drop(portal);
        assert!(started.elapsed() < Duration::from_secs(5), "{backend}");
        assert!(matches!(fut.wait(), Err(PortalError::Cancelled)), "{backend}");
    }
}

#[test]
fn a_provider_shares_one_portal_among_leases_and_stops_it_after_the_last() {
    let provider = BlockingPortalProvider::new(Backend::compiled()[0]);
    let a = provider.lease().unwrap();
    let b = provider.lease().unwrap();
    let token_a = a.call_sync(anyio::lowlevel::current_token).unwrap();
    let token_b = b.call_sync(anyio::lowlevel::current_token).unwrap();
    drop(a);
    assert!(!token_b.is_finished(), "one lease left: still running");
    drop(b);
    assert!(token_a.is_finished(), "the last lease stopped the portal's run");
    let c = provider.lease().unwrap();
    assert_eq!(c.call_sync(|| 3).unwrap(), 3, "a new lease starts a new portal");
}

#[test]
fn block_on_runs_the_future_on_the_calling_thread_in_the_portal_scope() {
    for backend in Backend::compiled() {
        let portal = start_blocking_portal(backend).unwrap();
        let me = std::thread::current().id();
        let (there, name) = portal
            .block_on(async {
                sleep(Duration::from_millis(1)).await.unwrap();
                (std::thread::current().id(), anyio::current_backend())
            })
            .unwrap();
        assert_eq!(there, me, "{backend}: ran on the calling thread");
        assert!(backend.to_string().starts_with(name.unwrap()), "{backend}");
        // Stopping the portal with cancel_remaining cancels a future blocked in block_on.
        std::thread::scope(|s| {
            let p = &*portal;
            let waiter = s.spawn(move || p.block_on(async { sleep_forever().await }));
            std::thread::sleep(Duration::from_millis(20));
            p.stop_blocking(true).unwrap();
            // The future sees the cancellation, or the run ends first and says so: either
            // way the blocked thread is released.
            match waiter.join().unwrap() {
                Ok(r) => assert!(r.is_err(), "{backend}: the blocked future saw the cancellation"),
                Err(e) => assert!(matches!(e, PortalError::Stopped), "{backend}: {e}"),
            }
        });
        assert!(matches!(portal.block_on(async { 1 }), Err(PortalError::Stopped)));
    }
}
