//! `Condition`: waiting releases the lock and holds it again on return (also after a
//! cancellation), notify wakes waiters oldest first, a notification is never lost to a
//! cancellation or a dropped waiter, and a guard of another lock is refused.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyio::{
    move_on_after, sleep,
    sync::{Condition, Lock},
    task_group, AnyError, TaskGroup,
};

mod support;
use support::{guarded_ok, SHORT};

#[anyio::test]
async fn notify_wakes_waiters_oldest_first_and_each_returns_holding_the_lock() {
    let cond = Arc::new(Condition::new());
    let order = Arc::new(Mutex::new(Vec::new()));
    let (c, o) = (cond.clone(), order.clone());
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for i in 0..3 {
                let (c2, o2) = (c.clone(), o.clone());
                tg.spawn(async move {
                    let g = c2.acquire().await?;
                    let (g, r) = c2.wait(g).await;
                    r?;
                    assert!(c2.lock().is_locked(), "the waiter holds the lock again");
                    o2.lock().unwrap().push(i);
                    drop(g);
                    Ok(())
                });
                while c.statistics().tasks_waiting < i + 1 {
                    sleep(Duration::from_millis(1)).await?;
                }
            }
            for i in 0..3 {
                let g = c.acquire().await?;
                c.notify(&g, 1);
                drop(g);
                // One notification wakes one waiter: wait until it has run before the next.
                while o.lock().unwrap().len() < i + 1 {
                    sleep(Duration::from_millis(1)).await?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
}

#[anyio::test]
async fn waiting_releases_the_lock_for_the_notifier() {
    let cond = Arc::new(Condition::new());
    let flag = Arc::new(AtomicBool::new(false));
    let (c, f) = (cond.clone(), flag.clone());
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            let (c2, f2) = (c.clone(), f.clone());
            tg.spawn(async move {
                let g = c2.acquire().await?;
                let (_g, r) = c2.wait_for(g, || f2.load(SeqCst)).await;
                r?;
                Ok(())
            });
            // This acquire only succeeds because the waiter released the lock.
            while c.statistics().tasks_waiting < 1 {
                sleep(Duration::from_millis(1)).await?;
            }
            let g = c.acquire().await?;
            f.store(true, SeqCst);
            c.notify_all(&g);
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_cancelled_wait_returns_holding_the_lock_and_leaves_the_queue() {
    let cond = Condition::new();
    let g = cond.acquire().await.unwrap();
    let r = move_on_after(SHORT, async {
        let (g, r) = cond.wait(g).await;
        assert!(cond.lock().is_locked(), "re-acquired despite the cancellation");
        drop(g);
        r
    })
    .await;
    assert_eq!(r, Ok(None));
    assert_eq!(cond.statistics().tasks_waiting, 0);
    assert!(!cond.lock().is_locked());
}

#[anyio::test]
async fn a_notification_reaching_a_dropped_waiter_goes_to_the_next_one() {
    let cond = Arc::new(Condition::new());
    let c = cond.clone();
    guarded_ok(async move {
        let g = c.acquire().await?;
        let mut first = c.wait(g);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::pin::Pin::new(&mut first).poll(&mut cx).is_pending());
        let c = &c;
        task_group(|tg: TaskGroup<AnyError>| async move {
            let c2 = c.clone();
            tg.spawn(async move {
                let g = c2.acquire().await?;
                let (_g, r) = c2.wait(g).await;
                r?;
                Ok(())
            });
            while c.statistics().tasks_waiting < 2 {
                sleep(Duration::from_millis(1)).await?;
            }
            let g = c.acquire().await?;
            c.notify(&g, 1); // reaches `first`...
            drop(g);
            drop(first); // ...which never looks: the second waiter must get it
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[test]
#[should_panic(expected = "belongs to another lock")]
fn notifying_with_the_guard_of_another_lock_is_refused() {
    let cond = Condition::new();
    let other = Lock::new();
    let g = other.try_acquire().unwrap();
    cond.notify(&g, 1);
}

#[anyio::test]
async fn two_futures_of_one_task_share_a_condition_through_join() {
    // The condition's lock is taken in turn by futures of one task (no "not reentrant" panic),
    // and a wait releases it so the sibling future can take it and notify.
    let cond = Condition::new();
    let ready = AtomicBool::new(false);
    guarded_ok(async {
        let waiter = async {
            let g = cond.acquire().await?;
            // Yields holding the lock, so the notifier's acquire comes while it is held.
            anyio::lowlevel::checkpoint().await?;
            let (g, r) = cond.wait_for(g, || ready.load(SeqCst)).await;
            assert!(cond.lock().is_locked(), "the wait returned holding the lock");
            drop(g);
            r?;
            Ok::<_, AnyError>(())
        };
        let notifier = async {
            let g = cond.acquire().await?;
            ready.store(true, SeqCst);
            cond.notify_all(&g);
            Ok::<_, AnyError>(())
        };
        let (a, b) = futures::join!(waiter, notifier);
        a?;
        b?;
        Ok(())
    })
    .await;
    assert!(!cond.lock().is_locked());
}
