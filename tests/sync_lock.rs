//! `Lock` and `Semaphore`: mutual exclusion across threads, FIFO fairness, cancellation that
//! loses nothing (a granted permit is kept or passed on, never leaked), and clear errors.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyio::{
    error::WouldBlock,
    lowlevel::checkpoint,
    move_on_after, sleep,
    sync::{Lock, LockGuard, Semaphore, SemaphoreError},
    task::current_task_id,
    task_group,
    time::sleep_forever,
    AnyError, CancelScope, Cancelled, TaskGroup,
};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

mod support;
use support::{guarded_ok, SHORT};

/// Acquires `lock` as another task (see `support::as_other_task`), so this test's own task can
/// then queue for it.
async fn hold_as_other_task(lock: &Lock) -> LockGuard<'_> {
    support::as_other_task(lock.acquire()).await.expect("the lock is free")
}

/// Polls `fut` once with a no-op waker, inside whatever scope is current.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(fut).poll(&mut cx)
}

#[anyio::test]
async fn lock_excludes_tasks_on_every_thread() {
    let lock = Arc::new(Lock::new());
    let inside = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let counted = total.clone();
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for _ in 0..8 {
                let (lock, inside, total) = (lock.clone(), inside.clone(), counted.clone());
                tg.spawn(async move {
                    for _ in 0..50 {
                        let _g = lock.acquire().await?;
                        assert_eq!(inside.fetch_add(1, SeqCst), 0, "two holders at once");
                        checkpoint().await?; // hold it across a yield
                        inside.fetch_sub(1, SeqCst);
                        total.fetch_add(1, SeqCst);
                    }
                    Ok(())
                });
            }
            Ok(())
        })
        .await?;
        assert_eq!(total.load(SeqCst), 400);
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn lock_waiters_are_served_in_fifo_order() {
    let lock = Arc::new(Lock::new());
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = order.clone();
    guarded_ok(async move {
        let held = lock.acquire().await?;
        let queue = lock.clone();
        task_group(|tg: TaskGroup<AnyError>| async move {
            for i in 0..5 {
                let (lock, order) = (queue.clone(), seen.clone());
                tg.spawn(async move {
                    let _g = lock.acquire().await?;
                    order.lock().unwrap().push(i);
                    Ok(())
                });
                // Let task i queue up before task i + 1 is spawned.
                while queue.statistics().tasks_waiting < i + 1 {
                    sleep(Duration::from_millis(1)).await?;
                }
            }
            drop(held);
            Ok(())
        })
        .await?;
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn try_acquire_would_block_while_held_and_cannot_barge_past_a_queued_waiter() {
    let lock = Lock::new();
    let g = hold_as_other_task(&lock).await;
    assert_eq!(lock.try_acquire().unwrap_err(), WouldBlock);
    let mut waiter = lock.acquire();
    assert!(poll_once(&mut waiter).is_pending());
    drop(g); // the lock goes straight to the queued waiter...
    assert_eq!(lock.try_acquire().unwrap_err(), WouldBlock, "...so a newcomer cannot barge in");
    let g = guarded_ok(async { Ok(waiter.await?) }).await;
    assert!(lock.statistics().locked);
    drop(g);
    assert!(!lock.is_locked());
    assert!(lock.try_acquire().is_ok());
}

#[anyio::test]
async fn cancelling_a_queued_lock_waiter_from_another_thread_wakes_it_promptly() {
    let lock = Lock::new();
    let held = hold_as_other_task(&lock).await;
    let scope = CancelScope::new();
    let remote = scope.clone();
    let r = guarded_ok(async {
        Ok(scope
            .run(async {
                let lock = &lock;
                let mut acquire = lock.acquire();
                assert!(poll_once(&mut acquire).is_pending());
                std::thread::spawn(move || remote.cancel());
                let _g = acquire.await?;
                Ok::<_, Cancelled>("acquired")
            })
            .await)
    })
    .await;
    assert_eq!(r, Ok(None), "the waiter saw its cancellation");
    assert_eq!(lock.statistics().tasks_waiting, 0);
    drop(held);
    assert!(lock.try_acquire().is_ok(), "the lock was not leaked to the cancelled waiter");
}

#[anyio::test]
async fn acquire_in_a_cancelled_scope_fails_even_when_the_lock_is_free() {
    let lock = Lock::new();
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            let _g = lock.acquire().await?;
            Ok::<_, Cancelled>(())
        })
        .await;
    assert_eq!(r, Ok(None));
    assert!(!lock.is_locked(), "a cancelled acquire takes nothing");
}

#[anyio::test]
async fn cancelled_waiter_leaves_the_queue_and_the_lock_still_works() {
    let lock = Lock::new();
    let held = hold_as_other_task(&lock).await;
    let r = move_on_after(SHORT, async {
        let _g = lock.acquire().await?;
        Ok::<_, Cancelled>("got it")
    })
    .await;
    assert_eq!(r, Ok(None));
    assert_eq!(lock.statistics().tasks_waiting, 0, "the cancelled waiter left the queue");
    drop(held);
    let _g = lock.try_acquire().expect("the lock is free again, not leaked to the cancelled waiter");
}

#[anyio::test]
async fn a_lock_handed_to_a_waiter_whose_scope_is_then_cancelled_is_still_returned() {
    let lock = Lock::new();
    let held = hold_as_other_task(&lock).await;
    let scope = CancelScope::new();
    let (r, got_it) = {
        let s = scope.clone();
        let lock = &lock;
        let body = async move {
            let mut acquire = lock.acquire();
            assert!(poll_once(&mut acquire).is_pending(), "queued behind the holder");
            drop(held); // hands the lock to our queued acquire...
            s.cancel(); // ...and only then is our scope cancelled
            let g = acquire.await?; // committed beats cancellation
            let got = true;
            drop(g);
            Ok::<_, Cancelled>(got)
        };
        let r = scope.run(body).await;
        let got = matches!(r, Ok(Some(true)));
        (r, got)
    };
    assert!(got_it, "the handed-over lock was returned, got {r:?}");
    assert!(!lock.is_locked());
}

#[anyio::test]
async fn a_dropped_acquire_that_was_handed_the_lock_passes_it_on() {
    let lock = Arc::new(Lock::new());
    let held = hold_as_other_task(&lock).await;
    let mut first = lock.acquire();
    assert!(poll_once(&mut first).is_pending());
    let (l, watch) = (lock.clone(), lock.clone());
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            // The second waiter is a real task: it must be *woken* by the hand-off.
            tg.spawn(async move {
                let _g = l.acquire().await?;
                Ok(())
            });
            while watch.statistics().tasks_waiting < 2 {
                sleep(Duration::from_millis(1)).await?;
            }
            drop(held); // hands the lock to `first`...
            drop(first); // ...which never looks: it must go on to the task
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn semaphore_bounds_concurrency_across_threads() {
    let sem = Arc::new(Semaphore::new(3));
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let max_seen = peak.clone();
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for _ in 0..12 {
                let (sem, inside, peak) = (sem.clone(), inside.clone(), max_seen.clone());
                tg.spawn(async move {
                    let _p = sem.acquire().await?;
                    let now = inside.fetch_add(1, SeqCst) + 1;
                    peak.fetch_max(now, SeqCst);
                    sleep(Duration::from_millis(2)).await?;
                    inside.fetch_sub(1, SeqCst);
                    Ok(())
                });
            }
            Ok(())
        })
        .await?;
        let p = peak.load(SeqCst);
        assert!((1..=3).contains(&p), "at most 3 holders at once, saw {p}");
        Ok(())
    })
    .await;
}

#[test]
fn semaphore_rejects_an_initial_value_above_its_maximum_and_releases_past_it() {
    assert_eq!(
        Semaphore::with_max(3, 2).unwrap_err(),
        SemaphoreError::InitialAboveMax { initial: 3, max: 2 }
    );
    let sem = Semaphore::with_max(1, 1).unwrap();
    let err = sem.release().unwrap_err();
    assert_eq!(err, SemaphoreError::ReleasedTooManyTimes { max: 1 });
    assert!(err.to_string().contains("released too many times"));
    assert_eq!(sem.value(), 1, "a refused release changes nothing");
    sem.try_acquire().unwrap().forget();
    assert_eq!(sem.value(), 0);
    sem.release().unwrap();
    assert_eq!(sem.value(), 1);
}

#[test]
fn a_permit_dropped_when_the_semaphore_is_already_at_its_maximum_is_absorbed() {
    let sem = Semaphore::with_max(1, 1).unwrap();
    let p = sem.try_acquire().unwrap();
    sem.release().unwrap(); // the count is back at its maximum while `p` is still out
    drop(p);
    assert_eq!(sem.value(), 1, "never more than the maximum");
}

#[anyio::test]
async fn semaphore_release_hands_a_permit_to_the_oldest_waiter() {
    let sem = Semaphore::new(0);
    let mut waiter = sem.acquire();
    assert!(poll_once(&mut waiter).is_pending());
    assert_eq!(sem.statistics().tasks_waiting, 1);
    sem.release().unwrap();
    assert_eq!(sem.value(), 0, "the permit went to the waiter, not to the pool");
    let p = guarded_ok(async { Ok(waiter.await?) }).await;
    drop(p);
    assert_eq!(sem.value(), 1);
}

#[anyio::test]
async fn cancelling_semaphore_waiters_at_random_points_never_loses_a_permit() {
    let sem = Arc::new(Semaphore::new(2));
    let s = sem.clone();
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for i in 0..20u64 {
                let s = s.clone();
                tg.spawn(async move {
                    // Each task gives up after a different short time.
                    let _ = move_on_after(Duration::from_micros(300 * (i % 7)), async {
                        let _p = s.acquire().await?;
                        sleep(Duration::from_millis(1)).await?;
                        Ok::<_, Cancelled>(())
                    })
                    .await;
                    Ok(())
                });
            }
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    assert_eq!(sem.value(), 2, "every permit came back");
    assert_eq!(sem.statistics().tasks_waiting, 0);
}

#[anyio::test]
async fn lock_records_the_acquiring_task_as_owner() {
    let lock = Arc::new(Lock::new());
    guarded_ok(async move {
        let me = current_task_id();
        assert!(me.is_some(), "the main future runs as an anyio task");
        assert_eq!(lock.statistics().owner, None);
        let g = lock.acquire().await?;
        assert_eq!(lock.statistics().owner, me);
        drop(g);
        assert_eq!(lock.statistics().owner, None);
        let other = lock.clone();
        task_group(|tg: TaskGroup<AnyError>| async move {
            let child = tg.spawn(async move {
                let _g = other.acquire().await?;
                let owner = other.statistics().owner;
                assert_eq!(owner, current_task_id());
                Ok(owner)
            });
            let owner = child.await?;
            assert!(owner.is_some() && owner != me, "the child task owned it, not the parent");
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

/// One future's turn holding `lock`: checks it is alone and that the lock names this task as
/// owner, then yields while holding it so a sibling future of the same task runs meanwhile.
async fn hold_in_turn(
    lock: &Lock,
    inside: &AtomicUsize,
    order: &Mutex<Vec<u32>>,
    id: u32,
) -> Result<(), AnyError> {
    let g = lock.acquire().await?;
    assert_eq!(inside.fetch_add(1, SeqCst), 0, "two futures held the lock at once");
    assert_eq!(lock.statistics().owner, current_task_id());
    order.lock().unwrap().push(id);
    for _ in 0..3 {
        checkpoint().await?;
    }
    inside.fetch_sub(1, SeqCst);
    drop(g);
    Ok(())
}

#[anyio::test]
async fn two_futures_of_one_task_joined_take_the_lock_in_turn() {
    // AnyIO raises when the holding task acquires again; in Rust two futures of one task can
    // contend through join!, which is no deadlock: the second waits for the first to release.
    let lock = Lock::new();
    let inside = AtomicUsize::new(0);
    let order = Mutex::new(Vec::new());
    guarded_ok(async {
        let me = current_task_id();
        let watch = async {
            // While the first future holds the lock, the second is queued behind it, and the
            // holder's own task trying again gets WouldBlock, not a panic.
            while lock.statistics().tasks_waiting == 0 {
                checkpoint().await?;
            }
            assert_eq!(lock.statistics().owner, me);
            assert_eq!(lock.try_acquire().unwrap_err(), WouldBlock);
            assert!(lock.is_locked(), "the failed try left the lock held by its owner");
            Ok::<_, AnyError>(())
        };
        let (a, b, w) = futures::join!(
            hold_in_turn(&lock, &inside, &order, 1),
            hold_in_turn(&lock, &inside, &order, 2),
            watch
        );
        a?;
        b?;
        w?;
        Ok(())
    })
    .await;
    assert_eq!(*order.lock().unwrap(), [1, 2], "FIFO: the first to queue is served first");
    assert!(!lock.is_locked());
    assert_eq!(lock.statistics().owner, None);
}

#[anyio::test]
async fn a_select_branch_waits_for_the_lock_held_by_its_sibling_branch() {
    let lock = Lock::new();
    let inside = AtomicUsize::new(0);
    let order = Mutex::new(Vec::new());
    let winner = guarded_ok(async {
        let first = async {
            hold_in_turn(&lock, &inside, &order, 1).await?;
            // Stays pending after releasing, so the other branch is the one to finish.
            sleep_forever().await?;
            Ok::<_, AnyError>(1)
        }
        .fuse();
        let second = async {
            hold_in_turn(&lock, &inside, &order, 2).await?;
            Ok::<_, AnyError>(2)
        }
        .fuse();
        futures::pin_mut!(first, second);
        // Biased, so the first branch is polled first and takes the lock.
        futures::select_biased! {
            r = first => r,
            r = second => r,
        }
    })
    .await;
    assert_eq!(winner, 2);
    assert_eq!(*order.lock().unwrap(), [1, 2]);
    assert!(!lock.is_locked());
}

#[anyio::test]
async fn futures_unordered_in_one_task_all_take_the_lock_in_turn() {
    let lock = Lock::new();
    let inside = AtomicUsize::new(0);
    let order = Mutex::new(Vec::new());
    guarded_ok(async {
        let mut all: FuturesUnordered<_> = (0..5).map(|i| hold_in_turn(&lock, &inside, &order, i)).collect();
        while let Some(r) = all.next().await {
            r?;
        }
        Ok(())
    })
    .await;
    let mut seen = order.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 3, 4], "every future held the lock once");
    assert!(!lock.is_locked());
    assert_eq!(lock.statistics().tasks_waiting, 0);
}

#[anyio::test]
async fn lock_held_by_one_task_makes_another_wait_not_panic() {
    let lock = Arc::new(Lock::new());
    guarded_ok(async move {
        let held = lock.acquire().await?;
        let other = lock.clone();
        let watched = lock.clone();
        task_group(|tg: TaskGroup<AnyError>| async move {
            let waiter = tg.spawn(async move {
                let _g = other.acquire().await?;
                Ok(())
            });
            while watched.statistics().tasks_waiting == 0 {
                sleep(Duration::from_millis(1)).await?;
            }
            drop(held);
            waiter.await?;
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_semaphore_of_usize_max_permits_counts_exactly() {
    // Past what the lock-free word holds (usize::MAX / 2), the pool counts under its lock.
    let sem = Semaphore::new(usize::MAX);
    let p = sem.acquire().await.unwrap();
    assert_eq!(sem.value(), usize::MAX - 1);
    drop(p);
    assert_eq!(sem.value(), usize::MAX);
    let capped = Semaphore::with_max(usize::MAX - 1, usize::MAX).unwrap();
    capped.release().unwrap();
    assert_eq!(capped.value(), usize::MAX);
    assert!(capped.release().is_err(), "the maximum holds");
    assert_eq!(capped.value(), usize::MAX);
}
