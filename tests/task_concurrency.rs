//! AnyIO 4.15's concurrency helpers on every backend (AnyIO's tests/test_concurrency_utils.py):
//! `gather`, `gather_all`, `amap`, `amap_limited` and `as_completed` run their items as real
//! tasks of one group, concurrently; values come back in argument order (`as_completed`: in
//! completion order); the first failure cancels the rest and every failure is reported; an
//! enclosing cancellation propagates; a limiter bounds how many run at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use anyio::{
    move_on_after, sleep,
    sync::{CapacityLimiter, Event},
    task::{amap, amap_limited, as_completed, gather, gather_all, GroupError},
    time::sleep_forever,
    AnyError,
};

mod support;
use support::{guarded, guarded_ok};

/// Sets its flag when dropped: proof that a task's future was cancelled (dropped unfinished)
/// or ended.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

#[anyio::test]
async fn gather_runs_a_tuple_concurrently_and_returns_values_in_argument_order() {
    guarded_ok(async {
        // The first waits for the last: only concurrent tasks can finish.
        let ev = Arc::new(Event::new());
        let (waiter, setter) = (ev.clone(), ev.clone());
        let (a, b, c) = gather((
            async move {
                waiter.wait().await?;
                Ok::<_, AnyError>("first")
            },
            async { Ok::<_, std::io::Error>(2u8) },
            async move {
                sleep(Duration::from_millis(1)).await?;
                setter.set();
                Ok::<_, AnyError>(3.5f64)
            },
        ))
        .await?;
        assert_eq!((a, b, c), ("first", 2, 3.5));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn gather_all_and_amap_keep_the_items_order_whatever_order_they_finish_in() {
    guarded_ok(async {
        let delays = [8u64, 1, 4, 0, 2];
        let values = gather_all(delays.map(|ms| async move {
            sleep(Duration::from_millis(ms)).await?;
            Ok::<_, AnyError>(ms)
        }))
        .await?;
        assert_eq!(values, delays);
        let doubled = amap(
            |ms: u64| async move {
                sleep(Duration::from_millis(ms)).await?;
                Ok::<_, AnyError>(ms * 2)
            },
            delays,
        )
        .await?;
        assert_eq!(doubled, delays.map(|d| d * 2));
        let none: Vec<u8> = gather_all(Vec::<std::future::Ready<Result<u8, AnyError>>>::new()).await?;
        assert!(none.is_empty());
        Ok(())
    })
    .await
}

#[anyio::test]
async fn the_first_failure_cancels_the_rest_and_every_failure_is_reported() {
    guarded(async {
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let r = gather((
            async move {
                let _mark = SetOnDrop(flag);
                sleep_forever().await?;
                Ok::<_, AnyError>(())
            },
            async { Err::<(), _>(AnyError::msg("first")) },
            async {
                sleep(Duration::from_millis(1)).await?;
                Ok::<_, AnyError>(())
            },
        ))
        .await;
        match r {
            Err(GroupError::Failed(errors)) => {
                assert_eq!(errors.len(), 1, "{errors:?}");
                assert_eq!(errors[0].to_string(), "first");
            }
            other => panic!("expected the failure, got {other:?}"),
        }
        assert!(cancelled.load(SeqCst), "the sleeper was cancelled");
        // Two failures, both reported.
        let r = gather_all((0..4).map(|i| async move {
            if i % 2 == 1 {
                return Err(AnyError::msg(format!("failed {i}")));
            }
            Ok(i)
        }))
        .await;
        let mut messages: Vec<String> =
            r.unwrap_err().into_errors().iter().map(ToString::to_string).collect();
        messages.sort();
        assert_eq!(messages, ["failed 1", "failed 3"]);
    })
    .await
}

#[anyio::test]
async fn an_enclosing_cancellation_cancels_every_task_and_propagates() {
    guarded_ok(async {
        let cancelled = Arc::new(AtomicUsize::new(0));
        let c = cancelled.clone();
        let r = move_on_after(Duration::from_millis(5), async move {
            gather_all((0..3).map(|_| {
                let c = c.clone();
                async move {
                    let r = sleep_forever().await;
                    c.fetch_add(1, SeqCst);
                    r?;
                    Ok::<_, AnyError>(())
                }
            }))
            .await?;
            Ok::<_, AnyError>(())
        })
        .await?;
        assert_eq!(r, None, "the deadline's scope caught the cancellation");
        assert_eq!(cancelled.load(SeqCst), 3);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn amap_limited_never_runs_more_than_the_limiter_allows() {
    guarded_ok(async {
        let limiter = Arc::new(CapacityLimiter::new(3));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        // Nothing finishes until three run at once: fewer would hang, more would show.
        let all_three = Arc::new(Event::new());
        let (r, m, ev) = (running.clone(), most.clone(), all_three.clone());
        let out = amap_limited(
            move |i: usize| {
                let (r, m, ev) = (r.clone(), m.clone(), ev.clone());
                async move {
                    let now = r.fetch_add(1, SeqCst) + 1;
                    m.fetch_max(now, SeqCst);
                    if now == 3 {
                        ev.set();
                    }
                    ev.wait().await?;
                    r.fetch_sub(1, SeqCst);
                    Ok::<_, AnyError>(i)
                }
            },
            0..20,
            &limiter,
        )
        .await?;
        assert_eq!(out, (0..20).collect::<Vec<_>>());
        assert_eq!(most.load(SeqCst), 3, "three at a time, and no more");
        assert_eq!(limiter.borrowed_tokens(), 0);
        // After a failure, items not yet started never start.
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let r = amap_limited(
            move |i: usize| {
                s.fetch_add(1, SeqCst);
                async move {
                    if i == 0 {
                        return Err(AnyError::msg("stop"));
                    }
                    sleep_forever().await?;
                    Ok(())
                }
            },
            0..1000,
            &Arc::new(CapacityLimiter::new(2)),
        )
        .await;
        assert_eq!(r.unwrap_err().into_errors()[0].to_string(), "stop");
        assert!(started.load(SeqCst) < 1000, "items after the failure were not started");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn as_completed_hands_out_handles_in_completion_order() {
    guarded_ok(async {
        let gates: Vec<Arc<Event>> = (0..3).map(|_| Arc::new(Event::new())).collect();
        let tasks: Vec<_> = gates
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, gate)| async move {
                gate.wait().await?;
                Ok::<_, AnyError>(i)
            })
            .collect();
        let order = as_completed(tasks, |mut done| async move {
            let mut order = Vec::new();
            for i in [2, 0, 1] {
                assert_eq!(done.remaining(), 3 - order.len());
                gates[i].set();
                let h = done.next().await?.expect("a task is left");
                assert!(h.is_finished(), "a handed-out task has finished");
                order.push(h.await?);
            }
            assert!(done.next().await?.is_none(), "every task was handed out");
            Ok(order)
        })
        .await?;
        assert_eq!(order, [2, 0, 1]);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn as_completed_cancels_the_rest_when_its_body_ends_and_refuses_no_futures() {
    guarded_ok(async {
        let cancelled = Arc::new(AtomicUsize::new(0));
        let tasks = (0..4u64).map(|i| {
            let mark = SetOnDrop(Arc::new(AtomicBool::new(false)));
            let c = cancelled.clone();
            async move {
                let _mark = mark;
                if i == 0 {
                    return Ok::<_, AnyError>(i);
                }
                let r = sleep_forever().await;
                c.fetch_add(1, SeqCst);
                r?;
                Ok(i)
            }
        });
        let first = as_completed(tasks, |mut done| async move {
            let h = done.next().await?.expect("four tasks");
            Ok(h.await?)
        })
        .await?;
        assert_eq!(first, 0);
        assert_eq!(cancelled.load(SeqCst), 3, "the other three were cancelled");
        let empty =
            as_completed(Vec::<std::future::Ready<Result<(), AnyError>>>::new(), |_| async { Ok(()) }).await;
        let e = empty.unwrap_err().into_errors();
        assert!(e[0].to_string().contains("at least one"), "{e:?}");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_failing_task_in_as_completed_cancels_the_body_and_is_reported() {
    guarded(async {
        let r = as_completed(
            [0u8, 1].map(|i| async move {
                if i == 1 {
                    return Err(AnyError::msg("task failed"));
                }
                sleep_forever().await?;
                Ok(())
            }),
            |mut done| async move {
                // The failed task finishes first; awaiting it reports the group's cancellation.
                let h = done.next().await?.expect("two tasks");
                h.await?;
                sleep_forever().await?;
                Ok(())
            },
        )
        .await;
        let errors = r.unwrap_err().into_errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].to_string(), "task failed");
    })
    .await
}
