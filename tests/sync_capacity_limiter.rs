//! `CapacityLimiter`: at most one token per borrower, a concurrency bound across threads,
//! resizing while in use (raising wakes waiters, lowering takes effect as tokens return), and
//! cancellation that takes nothing.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use anyio::{
    error::WouldBlock,
    move_on_after, sleep,
    sync::{CapacityLimiter, CapacityLimiterError},
    task_group, AnyError, TaskGroup,
};

mod support;
use support::{guarded_ok, SHORT};

#[anyio::test]
async fn a_borrower_holds_at_most_one_token() {
    let limiter = CapacityLimiter::new(3);
    let t = limiter.acquire_on_behalf_of("job").await.unwrap();
    let err = limiter.acquire_on_behalf_of("job").await.unwrap_err();
    assert_eq!(err, CapacityLimiterError::AlreadyBorrowing);
    assert!(err.to_string().contains("already holding"));
    assert_eq!(limiter.statistics().named_borrowers, 1);
    drop(t);
    assert_eq!(limiter.statistics().named_borrowers, 0);
    let _again = limiter.acquire_on_behalf_of("job").await.expect("free to borrow again");
}

#[anyio::test]
async fn tokens_bound_concurrency_across_threads() {
    let limiter = Arc::new(CapacityLimiter::new(2));
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let seen = peak.clone();
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for job in 0..10u32 {
                let (limiter, inside, peak) = (limiter.clone(), inside.clone(), seen.clone());
                tg.spawn(async move {
                    let _t = limiter.acquire_on_behalf_of(job).await.map_err(AnyError::other)?;
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
        Ok(())
    })
    .await;
    assert!((1..=2).contains(&peak.load(SeqCst)));
}

#[anyio::test]
async fn raising_the_total_wakes_waiters_and_lowering_it_takes_effect_as_tokens_return() {
    let limiter = Arc::new(CapacityLimiter::new(0));
    let got = Arc::new(AtomicUsize::new(0));
    let (l, g) = (limiter.clone(), got.clone());
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for _ in 0..2 {
                let (l, g) = (l.clone(), g.clone());
                tg.spawn(async move {
                    let _t = l.acquire().await.map_err(AnyError::other)?;
                    g.fetch_add(1, SeqCst);
                    Ok(())
                });
            }
            while l.statistics().tasks_waiting < 2 {
                sleep(Duration::from_millis(1)).await?;
            }
            assert_eq!(g.load(SeqCst), 0, "no token while the total is zero");
            l.set_total_tokens(2); // wakes both waiters
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    assert_eq!(got.load(SeqCst), 2);

    let a = limiter.try_acquire().unwrap();
    let b = limiter.try_acquire().unwrap();
    limiter.set_total_tokens(1); // nothing is revoked...
    assert_eq!(limiter.borrowed_tokens(), 2);
    drop(a); // ...but the returned token disappears
    assert_eq!(limiter.try_acquire().unwrap_err(), WouldBlock);
    drop(b);
    assert_eq!(limiter.available_tokens(), 1);
}

#[anyio::test]
async fn a_cancelled_waiter_takes_nothing_and_stops_counting_as_a_borrower() {
    let limiter = CapacityLimiter::new(1);
    let held = limiter.acquire().await.unwrap();
    let r = move_on_after(SHORT, async { limiter.acquire_on_behalf_of("late").await.map(drop) }).await;
    assert_eq!(r, Ok(None));
    assert_eq!(limiter.statistics().tasks_waiting, 0);
    assert_eq!(limiter.statistics().named_borrowers, 0);
    drop(held);
    let _t = limiter.acquire_on_behalf_of("late").await.expect("the reservation was released");
    assert_eq!(limiter.borrowed_tokens(), 1);
}

#[anyio::test]
async fn two_futures_of_one_task_borrow_anonymously_in_turn() {
    // Anonymous acquisitions are separate borrowers even from one task (AnyIO would raise for
    // the task's second borrow): with one token, the second future waits for the first.
    let limiter = CapacityLimiter::new(1);
    let inside = AtomicUsize::new(0);
    let hold = || async {
        let _t = limiter.acquire().await?;
        assert_eq!(inside.fetch_add(1, SeqCst), 0, "two futures held the only token");
        for _ in 0..3 {
            anyio::lowlevel::checkpoint().await?;
        }
        inside.fetch_sub(1, SeqCst);
        Ok::<_, AnyError>(())
    };
    guarded_ok(async {
        let (a, b) = futures::join!(hold(), hold());
        a?;
        b?;
        Ok(())
    })
    .await;
    assert_eq!(limiter.borrowed_tokens(), 0);
}

#[anyio::test]
async fn a_total_of_usize_max_serves_waiters_and_counts_exactly() {
    // Raising the total to "unlimited" hands tokens to the waiters at once and counts the
    // rest exactly (it used to add them one release at a time: 2^64 of them).
    let limiter = Arc::new(CapacityLimiter::new(0));
    let l = limiter.clone();
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            let waiter = l.clone();
            tg.spawn(async move {
                let _t = waiter.acquire().await.map_err(AnyError::other)?;
                Ok(())
            });
            while l.statistics().tasks_waiting < 1 {
                sleep(Duration::from_millis(1)).await?;
            }
            l.set_total_tokens(usize::MAX);
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    assert_eq!(limiter.available_tokens(), usize::MAX);
    let t = limiter.try_acquire().unwrap();
    assert_eq!(limiter.available_tokens(), usize::MAX - 1);
    drop(t);
    assert_eq!(limiter.available_tokens(), usize::MAX);
    limiter.set_total_tokens(2);
    assert_eq!(limiter.available_tokens(), 2);
}
