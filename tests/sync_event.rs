//! `Event`: set once, wakes every waiter on any thread, waits are checkpoints, and
//! cancellation wins over a concurrent set without losing the set.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use anyio::{move_on_after, sleep, sync::Event, task_group, AnyError, CancelScope, Cancelled, TaskGroup};

mod support;
use support::{guarded_ok, SHORT};

#[anyio::test]
async fn set_wakes_every_waiter_on_every_thread() {
    let event = Arc::new(Event::new());
    let woke = Arc::new(AtomicUsize::new(0));
    let (e, w) = (event.clone(), woke.clone());
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for _ in 0..10 {
                let (e, w) = (e.clone(), w.clone());
                tg.spawn(async move {
                    e.wait().await?;
                    w.fetch_add(1, SeqCst);
                    Ok(())
                });
            }
            while e.statistics().tasks_waiting < 10 {
                sleep(Duration::from_millis(1)).await?;
            }
            let setter = e.clone();
            std::thread::spawn(move || setter.set()).join().unwrap();
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    assert_eq!(woke.load(SeqCst), 10);
    assert!(event.is_set());
    assert_eq!(event.statistics().tasks_waiting, 0);
}

#[anyio::test]
async fn waiting_on_a_set_event_returns_at_once_but_is_still_a_checkpoint() {
    let event = Event::new();
    event.set();
    let mut wait = event.wait();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(std::pin::Pin::new(&mut wait).poll(&mut cx).is_pending(), "it yields once first");
    wait.await.unwrap();
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope.run(async { event.wait().await }).await;
    assert_eq!(r, Ok(None), "a wait in a cancelled scope fails even on a set event");
}

#[anyio::test]
async fn a_cancelled_wait_leaves_no_waiter_behind() {
    let event = Event::new();
    let r = move_on_after(SHORT, async {
        event.wait().await?;
        Ok::<_, Cancelled>(())
    })
    .await;
    assert_eq!(r, Ok(None));
    assert_eq!(event.statistics().tasks_waiting, 0);
    assert!(!event.is_set());
    event.set();
    event.wait().await.unwrap();
}

#[anyio::test]
async fn cancellation_wins_over_a_concurrent_set_and_the_set_is_kept() {
    let event = Event::new();
    let scope = CancelScope::new();
    let r = scope
        .run(async {
            let mut wait = event.wait();
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(std::pin::Pin::new(&mut wait).poll(&mut cx).is_pending());
            event.set();
            scope.cancel();
            wait.await
        })
        .await;
    assert_eq!(r, Ok(None), "the wait reports the cancellation");
    assert!(event.is_set(), "the set is not lost");
    event.wait().await.unwrap();
}

#[test]
fn set_is_idempotent_and_works_outside_any_runtime() {
    let event = Event::new();
    assert!(!event.is_set());
    event.set();
    event.set();
    assert!(event.is_set());
}
