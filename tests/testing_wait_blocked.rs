//! `wait_all_tasks_blocked` on every backend (trio's test_testing.py and AnyIO's
//! test_debugging.py): it waits while any task is runnable, a cancelled wait says so, the
//! smallest cushions wake first and together, a task still reacting to a cancellation is not
//! blocked, and neither is a worker-thread job in flight nor a socket whose data has arrived.
//! A run without tracking gets a typed error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyio::lowlevel::checkpoint;
use anyio::sync::Event;
use anyio::testing::{wait_all_tasks_blocked, wait_all_tasks_blocked_for, WaitBlockedError};
use anyio::{sleep, task_group, AnyError, CancelScope};

mod support;
use support::guarded;

type Log = Arc<Mutex<Vec<&'static str>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn push(log: &Log, what: &'static str) {
    log.lock().unwrap().push(what);
}

#[anyio::test]
async fn waiters_wake_only_once_the_busy_task_is_done() {
    let record = log();
    let r = record.clone();
    guarded(task_group(|tg| async move {
        let bee = r.clone();
        tg.spawn(async move {
            for _ in 0..10 {
                checkpoint().await?;
            }
            push(&bee, "busy bee exhausted");
            Ok::<_, AnyError>(())
        });
        for _ in 0..2 {
            let w = r.clone();
            tg.spawn(async move {
                wait_all_tasks_blocked().await?;
                push(&w, "quiet at last!");
                Ok::<_, AnyError>(())
            });
        }
        Ok::<_, AnyError>(())
    }))
    .await
    .unwrap();
    assert_eq!(*record.lock().unwrap(), ["busy bee exhausted", "quiet at last!", "quiet at last!"]);
}

#[anyio::test]
async fn a_cancelled_wait_returns_cancelled() {
    let record = log();
    let r = record.clone();
    task_group(|tg| async move {
        tg.spawn(async move {
            match wait_all_tasks_blocked().await {
                Err(WaitBlockedError::Cancelled(_)) => push(&r, "ok"),
                other => panic!("expected a cancellation, got {other:?}"),
            }
            Ok::<_, AnyError>(())
        });
        tg.cancel_scope().cancel();
        Ok::<_, AnyError>(())
    })
    .await
    .unwrap();
    assert_eq!(*record.lock().unwrap(), ["ok"]);
}

/// A task that blinks (three 50 ms sleeps) keeps waiters whose cushion is longer than its
/// sleeps from waking until it ends; a zero cushion wakes during its first sleep. The
/// cushions are far longer than the sleeps, so a slow machine does not change the order.
#[anyio::test]
async fn the_smallest_cushions_wake_first_and_together() {
    let record = log();
    let r = record.clone();
    guarded(task_group(|tg| async move {
        let b = r.clone();
        tg.spawn(async move {
            push(&b, "blink start");
            for _ in 0..3 {
                sleep(Duration::from_millis(50)).await?;
            }
            push(&b, "blink end");
            Ok::<_, AnyError>(())
        });
        let w = r.clone();
        tg.spawn(async move {
            wait_all_tasks_blocked().await?;
            push(&w, "wait_no_cushion end");
            Ok::<_, AnyError>(())
        });
        for _ in 0..2 {
            let w = r.clone();
            tg.spawn(async move {
                wait_all_tasks_blocked_for(Duration::from_millis(300)).await?;
                push(&w, "wait_small_cushion end");
                Ok::<_, AnyError>(())
            });
        }
        let w = r.clone();
        tg.spawn(async move {
            wait_all_tasks_blocked_for(Duration::from_millis(600)).await?;
            push(&w, "wait_big_cushion end");
            Ok::<_, AnyError>(())
        });
        Ok::<_, AnyError>(())
    }))
    .await
    .unwrap();
    assert_eq!(
        *record.lock().unwrap(),
        [
            "blink start",
            "wait_no_cushion end",
            "blink end",
            "wait_small_cushion end",
            "wait_small_cushion end",
            "wait_big_cushion end"
        ]
    );
}

/// AnyIO's regression test: a task whose scope was cancelled is still running (reacting to
/// the cancellation), so the run is not idle until it has finished.
#[anyio::test]
async fn a_task_reacting_to_a_cancellation_is_not_blocked() {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    guarded(task_group(|tg| async move {
        let d2 = d.clone();
        tg.start(|status| async move {
            status.started(());
            let never = Event::new();
            CancelScope::with_deadline(anyio::time::current_time() - Duration::from_secs(1))
                .run(async { never.wait().await })
                .await?;
            d2.store(true, Ordering::SeqCst);
            Ok::<_, AnyError>(())
        })
        .await?;
        wait_all_tasks_blocked().await?;
        assert!(d.load(Ordering::SeqCst));
        Ok::<_, AnyError>(())
    }))
    .await
    .unwrap();
    assert!(done.load(Ordering::SeqCst));
}

#[anyio::test]
async fn a_worker_thread_job_in_flight_is_not_blocked() {
    let record = log();
    let r = record.clone();
    guarded(task_group(|tg| async move {
        let t = r.clone();
        tg.spawn(async move {
            anyio::to_thread::run_sync(|| std::thread::sleep(Duration::from_millis(50))).await?;
            push(&t, "job done");
            Ok::<_, AnyError>(())
        });
        wait_all_tasks_blocked().await?;
        push(&r, "idle");
        Ok::<_, AnyError>(())
    }))
    .await
    .unwrap();
    assert_eq!(*record.lock().unwrap(), ["job done", "idle"]);
}

/// Bytes sent on loopback are in the receiver's socket before `send` returns: a reader
/// waiting for them is about to run, so the run is not idle until it has.
#[cfg(unix)]
#[anyio::test]
async fn a_reader_whose_data_has_arrived_is_not_blocked() {
    use anyio::net::{connect_tcp, TcpListener};
    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let record = log();
    let r = record.clone();
    guarded(task_group(|tg| async move {
        let (got_tx, got) = (r.clone(), Arc::new(Event::new()));
        let accepted = Arc::new(Event::new());
        let (acc, g) = (accepted.clone(), got.clone());
        tg.spawn(async move {
            let conn = listener.accept().await?;
            acc.set();
            let mut buf = [0u8; 5];
            let mut n = 0;
            while n < 5 {
                n += conn.receive_into(&mut buf[n..]).await?;
            }
            push(&got_tx, "received");
            g.set();
            Ok::<_, AnyError>(())
        });
        let client = connect_tcp("127.0.0.1", port).await?;
        accepted.wait().await?;
        wait_all_tasks_blocked().await?;
        client.send(b"hello").await?;
        wait_all_tasks_blocked().await?;
        push(&r, "idle");
        got.wait().await?;
        Ok::<_, AnyError>(())
    }))
    .await
    .unwrap();
    assert_eq!(*record.lock().unwrap(), ["received", "idle"]);
}

#[test]
fn a_run_without_tracking_gets_a_typed_error() {
    let r = anyio::run(wait_all_tasks_blocked());
    let e = r.unwrap_err();
    assert!(matches!(e, WaitBlockedError::NotTracking));
    assert!(e.to_string().contains("#[anyio::test]"), "{e}");
}

#[test]
fn a_run_with_tracking_on_has_it() {
    for backend in anyio::Backend::compiled() {
        let options = anyio::RunOptions::new().track_blocked(true);
        anyio::run_with(backend, options, async {
            assert!(anyio::testing::MockClock::current().is_none());
            wait_all_tasks_blocked().await.unwrap();
        })
        .unwrap();
    }
}
