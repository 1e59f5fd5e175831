//! Level-triggered cancellation and checkpoints: once a scope is cancelled every checkpoint inside it fails until the scope exits, checkpoint flavours behave as AnyIO's lowlevel ones, a loop that swallows `Cancelled` does not starve other tasks, and shielded cleanup runs to the end.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyio::{
    cancel::cancellable,
    error::CancelSource,
    lowlevel::{cancel_shielded_checkpoint, checkpoint, checkpoint_if_cancelled},
    move_on_after, sleep, task_group,
    time::{sleep_forever, sleep_until},
    AnyError, CancelScope, Cancelled,
};
use futures::FutureExt;

mod support;
use support::{guarded, GUARD, NEVER, SHORT};

/// Awaits every kind of checkpoint once and returns how many of them failed (out of 6).
async fn failing_checkpoints() -> usize {
    let results = [
        checkpoint().await.is_err(),
        checkpoint_if_cancelled().is_err(),
        sleep(Duration::from_millis(1)).await.is_err(),
        sleep(NEVER).await.is_err(),
        sleep_forever().await.is_err(),
        cancellable(async { 1 }).await.is_err(),
    ];
    results.iter().filter(|failed| **failed).count()
}

// ---------------------------------------------------------------------------------------------
// Level triggering
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn every_checkpoint_fails_after_the_first_cancellation_until_the_scope_exits() {
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        checkpoint().await?;
        s.cancel();
        let first = checkpoint().await.unwrap_err();
        assert_eq!(first.source_kind(), CancelSource::Explicit);
        // Swallowing the first error changes nothing: three more checkpoints fail, at once.
        let second = checkpoint().await.unwrap_err();
        let third = sleep(Duration::from_millis(1)).await.unwrap_err();
        let fourth = sleep_forever().await.unwrap_err();
        for e in [&second, &third, &fourth] {
            assert_eq!(e.source_kind(), CancelSource::Explicit);
        }
        assert_eq!(failing_checkpoints().await, 6);
        Ok::<_, Cancelled>("the body swallowed every error")
    }))
    .await;
    // The body returned Ok: the scope did not catch anything.
    assert_eq!(r, Ok(Some("the body swallowed every error")));
    assert!(scope.cancel_called());
    assert!(!scope.cancelled_caught());
    // Out of the scope, the same checkpoints succeed.
    checkpoint().await.unwrap();
    sleep(Duration::from_millis(1)).await.unwrap();
    checkpoint_if_cancelled().unwrap();
    assert_eq!(cancellable(async { 1 }).await, Ok(1));
}

#[anyio::test]
async fn a_deadline_cancellation_is_level_triggered_too() {
    let r = guarded(move_on_after(SHORT, async {
        let first = sleep(NEVER).await.unwrap_err();
        assert_eq!(first.source_kind(), CancelSource::Deadline);
        for _ in 0..3 {
            let e = sleep(NEVER).await.unwrap_err();
            assert_eq!(e.source_kind(), CancelSource::Deadline);
        }
        assert_eq!(failing_checkpoints().await, 6);
        Err::<(), _>(first)
    }))
    .await;
    assert_eq!(r, Ok(None));
    sleep(Duration::from_millis(1)).await.unwrap();
}

#[anyio::test]
async fn scopes_entered_inside_a_cancelled_scope_are_cancelled_too() {
    let outer = CancelScope::new();
    outer.cancel();
    let r = guarded(outer.run(async {
        let inner = CancelScope::new();
        let inner_r = inner
            .run(async {
                let failed = failing_checkpoints().await;
                assert_eq!(failed, 6);
                checkpoint().await?;
                Ok::<_, Cancelled>(())
            })
            .await;
        assert!(inner_r.is_err(), "the inner scope does not catch the outer cancellation");
        assert!(!inner.cancel_called());
        assert!(inner.is_effectively_cancelled());
        let timed = move_on_after(NEVER, async {
            sleep(NEVER).await?;
            Ok::<(), Cancelled>(())
        })
        .await;
        Err::<(), _>(timed.expect_err("move_on_after propagates the outer cancellation"))
    }))
    .await;
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn a_thousand_swallowed_cancellations_all_fail() {
    let scope = CancelScope::new();
    scope.cancel();
    let r = guarded(scope.run(async {
        let mut failed = 0;
        for _ in 0..1000 {
            if checkpoint().await.is_err() {
                failed += 1;
            }
        }
        Ok::<_, Cancelled>(failed)
    }))
    .await;
    assert_eq!(r, Ok(Some(1000)));
}

// ---------------------------------------------------------------------------------------------
// Checkpoint flavours (AnyIO test_lowlevel.py)
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn checkpoint_yields_then_checks() {
    // It does not complete on its first poll: it yields to the scheduler.
    assert!(checkpoint().now_or_never().is_none());

    // Another future in the same task runs while it yields.
    let other_ran = AtomicBool::new(false);
    let ((), ()) = futures::join!(
        async {
            checkpoint().await.unwrap();
            assert!(other_ran.load(Ordering::SeqCst), "checkpoint let the other branch run");
        },
        async {
            other_ran.store(true, Ordering::SeqCst);
        }
    );

    // A cancellation that lands while it is yielding is seen: the check comes after the yield.
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let (res, ()) = futures::join!(checkpoint(), async move { s.cancel() });
        Err::<(), _>(res.expect_err("the cancellation landed during the yield"))
    }))
    .await;
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn checkpoint_if_cancelled_checks_without_yielding() {
    assert_eq!(checkpoint_if_cancelled(), Ok(()));
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = scope
        .run(async move {
            assert_eq!(checkpoint_if_cancelled(), Ok(()));
            s.cancel();
            // Synchronous: it fails right away, with no await in between.
            let e = checkpoint_if_cancelled().unwrap_err();
            assert_eq!(e.source_kind(), CancelSource::Explicit);
            assert!(checkpoint_if_cancelled().is_err(), "level-triggered");
            let shielded = CancelScope::shielded()
                .run(async {
                    assert_eq!(checkpoint_if_cancelled(), Ok(()), "a shield hides the cancellation");
                    Ok::<_, Cancelled>(())
                })
                .await;
            assert_eq!(shielded, Ok(Some(())));
            Err::<(), _>(e)
        })
        .await;
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn cancel_shielded_checkpoint_yields_without_checking() {
    // It yields: not ready on the first poll, and another branch runs meanwhile.
    assert!(cancel_shielded_checkpoint().now_or_never().is_none());
    let other_ran = AtomicBool::new(false);
    futures::join!(
        async {
            cancel_shielded_checkpoint().await;
            assert!(other_ran.load(Ordering::SeqCst));
        },
        async {
            other_ran.store(true, Ordering::SeqCst);
        }
    );

    // It completes inside a cancelled scope, and does not consume the cancellation.
    let scope = CancelScope::new();
    scope.cancel();
    let r = guarded(scope.run(async {
        for _ in 0..3 {
            cancel_shielded_checkpoint().await;
        }
        checkpoint().await?;
        Ok::<_, Cancelled>("unreachable")
    }))
    .await;
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn sleep_zero_and_past_sleep_until_are_checkpoints() {
    assert!(sleep(Duration::ZERO).now_or_never().is_none(), "sleep(0) yields");
    sleep(Duration::ZERO).await.unwrap();
    sleep_until(Instant::now()).await.unwrap();
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            assert!(sleep(Duration::ZERO).await.is_err());
            sleep_until(Instant::now()).await?;
            Ok::<_, Cancelled>(())
        })
        .await;
    assert_eq!(r, Ok(None));
}

// ---------------------------------------------------------------------------------------------
// Swallowing loops and shielded cleanup
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn a_loop_swallowing_cancelled_does_not_starve_a_sibling_task() {
    const SIBLING_STEPS: usize = 10;
    let progress = Arc::new(AtomicUsize::new(0));
    let p = progress.clone();
    let r = task_group(|tg| async move {
        let sib = p.clone();
        tg.spawn(async move {
            for _ in 0..SIBLING_STEPS {
                sib.fetch_add(1, Ordering::SeqCst);
                checkpoint().await?;
            }
            Ok::<_, AnyError>(())
        });
        let scope = CancelScope::new();
        scope.cancel();
        let spin = scope
            .run(async move {
                // A buggy retry loop that ignores its errors. Each failing checkpoint still
                // yields, so the sibling makes progress even on a single-threaded runtime.
                // Bounded by wall time only as a hang guard (the cancellation is swallowed,
                // so no enclosing deadline could stop it).
                let start = Instant::now();
                let (mut iterations, mut failed) = (0usize, 0usize);
                while p.load(Ordering::SeqCst) < SIBLING_STEPS && start.elapsed() < GUARD {
                    iterations += 1;
                    if checkpoint().await.is_err() {
                        failed += 1;
                    }
                }
                // Sampled here, before the group joins the sibling: it must already be done.
                Ok::<_, AnyError>((iterations, failed, p.load(Ordering::SeqCst)))
            })
            .await?;
        Ok::<_, AnyError>(spin)
    })
    .await
    .unwrap();
    let (iterations, failed, progress_during_loop) = r.flatten().expect("the body returned its counts");
    assert_eq!(progress_during_loop, SIBLING_STEPS, "the sibling was starved while the loop ran");
    assert_eq!(progress.load(Ordering::SeqCst), SIBLING_STEPS);
    assert_eq!(failed, iterations, "every swallowed checkpoint failed");
}

#[anyio::test]
async fn shielded_cleanup_after_cancellation_runs_to_the_end() {
    let cleanup_steps = Arc::new(AtomicUsize::new(0));
    let steps = cleanup_steps.clone();
    let r = guarded(move_on_after(SHORT, async move {
        let e = sleep(NEVER).await.unwrap_err();
        // Unshielded cleanup would fail at its first await...
        assert!(sleep(Duration::from_millis(1)).await.is_err());
        // ...a shielded one runs to the end, through several awaits.
        let cleanup = CancelScope::shielded()
            .run(async {
                for _ in 0..3 {
                    sleep(Duration::from_millis(2)).await?;
                    checkpoint().await?;
                    steps.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<_, Cancelled>("cleaned up")
            })
            .await;
        assert_eq!(cleanup, Ok(Some("cleaned up")));
        Err::<(), _>(e)
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert_eq!(cleanup_steps.load(Ordering::SeqCst), 3);
}

#[anyio::test]
async fn shielded_cleanup_bounded_by_its_own_timeout_is_cut_off() {
    let outer = CancelScope::new();
    outer.cancel();
    let r = guarded(outer.run(async {
        let cleanup = CancelScope::shielded()
            .run(async {
                // Cleanup that would hang forever, bounded by a timeout inside the shield.
                move_on_after(SHORT, async {
                    sleep_forever().await?;
                    Ok::<(), Cancelled>(())
                })
                .await
            })
            .await;
        assert_eq!(cleanup, Ok(Some(None)), "the cleanup's own timeout fired");
        checkpoint().await?;
        Ok::<_, Cancelled>(())
    }))
    .await;
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn a_cancelled_task_group_waits_for_a_childs_shielded_cleanup() {
    let cleaned = Arc::new(AtomicBool::new(false));
    let c = cleaned.clone();
    let r = guarded(task_group(|tg| async move {
        let handle = tg.clone();
        tg.spawn(async move {
            let e = sleep_forever().await.unwrap_err();
            CancelScope::shielded()
                .run(async {
                    sleep(Duration::from_millis(5)).await?;
                    checkpoint().await?;
                    c.store(true, Ordering::SeqCst);
                    Ok::<_, Cancelled>(())
                })
                .await?;
            Err::<(), AnyError>(e.into())
        });
        cancel_shielded_checkpoint().await;
        handle.cancel();
        Ok::<_, AnyError>(())
    }))
    .await;
    assert!(r.is_ok(), "cancelling the group's own scope is not a failure: {r:?}");
    assert!(cleaned.load(Ordering::SeqCst), "the group returned before the child's cleanup finished");
}
