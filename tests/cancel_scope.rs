//! Cancel scopes and timeouts: nested deadlines, shields, moving deadlines, the catch rule (a scope catches only its own cancellation), reasons, `current_effective_deadline` and the single-use lifecycle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyio::{
    cancel::{current_effective_deadline, fail_at, move_on_at},
    error::CancelSource,
    fail_after,
    lowlevel::{cancel_shielded_checkpoint, checkpoint, checkpoint_if_cancelled},
    move_on_after, sleep,
    time::{current_time, sleep_forever},
    AnyError, CancelScope, Cancelled,
};

mod support;
use support::{guarded, NEVER, SHORT};

// ---------------------------------------------------------------------------------------------
// Nested deadlines
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn short_outer_deadline_fires_through_a_long_inner_deadline() {
    let outer = CancelScope::with_timeout(SHORT);
    let inner = CancelScope::with_timeout(NEVER);
    let (o, i) = (outer.clone(), inner.clone());
    let inner_outcome = Arc::new(Mutex::new(None));
    let seen = inner_outcome.clone();
    let r = guarded(outer.run(async move {
        assert!(o.deadline().is_some(), "a relative timeout is resolved on entry");
        assert_eq!(current_effective_deadline(), o.deadline());
        let r = i
            .run(async move {
                // The outer deadline is the earlier one, so it is the effective one.
                assert_eq!(current_effective_deadline(), o.deadline());
                sleep(NEVER).await?;
                Ok::<_, Cancelled>("inner body finished")
            })
            .await;
        *seen.lock().unwrap() = Some(r.clone());
        r?;
        Ok::<_, Cancelled>("outer body finished")
    }))
    .await;
    assert_eq!(r, Ok(None), "the outer scope catches its own deadline");
    let inner_r = inner_outcome.lock().unwrap().take().expect("inner scope ran");
    let e = inner_r.expect_err("the inner scope must propagate the outer scope's cancellation");
    assert_eq!(e.source_kind(), CancelSource::Deadline);
    assert!(outer.cancel_called());
    assert!(outer.cancelled_caught());
    assert!(!inner.cancel_called());
    assert!(!inner.cancelled_caught());
}

#[anyio::test]
async fn nested_move_on_after_short_outer_catches_and_inner_propagates() {
    let inner_ran_after = Arc::new(AtomicBool::new(false));
    let flag = inner_ran_after.clone();
    let r = guarded(move_on_after(SHORT, async move {
        let inner = move_on_after(NEVER, async {
            sleep_forever().await?;
            Ok::<(), Cancelled>(())
        })
        .await;
        let e = inner.expect_err("the inner move_on_after must not catch the outer deadline");
        assert_eq!(e.source_kind(), CancelSource::Deadline);
        flag.store(true, Ordering::SeqCst);
        Err::<(), _>(e)
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(inner_ran_after.load(Ordering::SeqCst));
}

#[anyio::test]
async fn nested_move_on_after_short_inner_catches_and_outer_continues() {
    let r = guarded(move_on_after(NEVER, async {
        let inner = move_on_after(SHORT, async {
            sleep_forever().await?;
            Ok::<(), Cancelled>(())
        })
        .await;
        assert_eq!(inner, Ok(None), "the inner scope catches its own deadline");
        // The outer scope is not cancelled: its checkpoints succeed.
        checkpoint().await?;
        sleep(Duration::from_millis(1)).await?;
        Ok::<_, Cancelled>("outer finished")
    }))
    .await;
    assert_eq!(r, Ok(Some("outer finished")));
}

#[anyio::test]
async fn nested_fail_after_inner_deadline_is_a_timeout_error_for_the_outer_body() {
    let r: Result<&str, AnyError> = guarded(fail_after(NEVER, async {
        let inner: Result<(), AnyError> = fail_after(SHORT, async {
            sleep_forever().await?;
            Ok(())
        })
        .await;
        let e = inner.expect_err("the inner deadline fires");
        assert!(e.is_timeout(), "inner fail_after reports TimeoutError, got {e}");
        assert!(!e.is_cancelled());
        checkpoint().await?;
        Ok("outer finished")
    }))
    .await;
    assert_eq!(r.unwrap(), "outer finished");
}

#[anyio::test]
async fn fail_after_inside_an_explicitly_cancelled_scope_propagates_the_cancellation_not_a_timeout() {
    // AnyIO test_nested_fail_after.
    let outer = CancelScope::new();
    let killer = outer.clone();
    let r = guarded(outer.run(async move {
        let middle = CancelScope::new();
        let m = middle.clone();
        let middle_r = m
            .run(async move {
                let r: Result<(), AnyError> = fail_after(NEVER, async move {
                    let (blocked, ()) = futures::join!(sleep_forever(), async move {
                        cancel_shielded_checkpoint().await;
                        killer.cancel();
                    });
                    blocked?;
                    Ok(())
                })
                .await;
                let e = r.expect_err("the outer cancellation reaches the fail_after body");
                assert!(e.is_cancelled(), "expected a cancellation, got {e}");
                assert!(!e.is_timeout());
                Err::<(), AnyError>(e)
            })
            .await;
        let e = middle_r.expect_err("the uncancelled middle scope propagates");
        assert!(!middle.cancel_called());
        assert!(!middle.cancelled_caught());
        Err::<(), AnyError>(e)
    }))
    .await;
    assert!(matches!(r, Ok(None)), "the outer scope catches its cancellation: {r:?}");
    assert!(outer.cancelled_caught());
}

#[anyio::test]
async fn fail_after_inside_a_shield_inside_a_cancelled_scope_still_times_out() {
    // AnyIO test_nested_shield.
    let outer = CancelScope::new();
    outer.cancel();
    let r = guarded(outer.run(async {
        let shielded = CancelScope::shielded()
            .run(async {
                fail_after(SHORT, async {
                    sleep_forever().await?;
                    Ok::<(), AnyError>(())
                })
                .await
            })
            .await;
        let e = shielded.expect_err("the shielded fail_after times out");
        assert!(e.is_timeout(), "expected TimeoutError, got {e}");
        // Outside the shield the outer cancellation is visible again.
        checkpoint().await?;
        Ok::<_, AnyError>("unreachable")
    }))
    .await;
    assert!(matches!(r, Ok(None)), "{r:?}");
}

#[anyio::test]
async fn deadline_helpers_count_from_first_poll_and_show_their_deadline_inside() {
    // The helpers own their scope's node outright and resolve the deadline without a lock on
    // first poll (`run_private`): the deadline must still be the scope's, visible to the body.
    let fut = move_on_after(Duration::from_secs(60), async {
        Ok::<_, Cancelled>(current_effective_deadline().expect("move_on_after's deadline is visible inside"))
    });
    sleep(Duration::from_millis(5)).await.unwrap();
    let polled = current_time();
    let d = fut.await.unwrap().unwrap();
    assert!(d >= polled + Duration::from_secs(60), "counted from the first poll, not from creation");
    assert!(d <= current_time() + Duration::from_secs(60));

    let at = current_time() + Duration::from_secs(30);
    let r = move_on_at(at, async move { Ok::<_, Cancelled>(current_effective_deadline()) }).await;
    assert_eq!(r, Ok(Some(Some(at))));
    let r: Result<_, AnyError> = fail_at(at, async move { Ok(current_effective_deadline()) }).await;
    assert_eq!(r.unwrap(), Some(at));
    let polled = current_time();
    let r: Result<_, AnyError> =
        fail_after(Duration::from_secs(45), async { Ok(current_effective_deadline()) }).await;
    assert!(r.unwrap().expect("fail_after's deadline is visible inside") >= polled + Duration::from_secs(45));
}

#[anyio::test]
async fn an_unpolled_deadline_helper_dropped_leaves_the_next_scope_fresh() {
    // A helper's node goes back to the thread's spare when its future drops unpolled; the next
    // scope must not inherit its deadline, nor a cancellation from a deadline already past.
    drop(move_on_after(Duration::from_secs(60), async { Ok::<_, Cancelled>(()) }));
    let scope = CancelScope::new();
    assert_eq!(scope.deadline(), None);
    let r = scope
        .run(async {
            checkpoint().await?;
            Ok::<_, Cancelled>(current_effective_deadline())
        })
        .await;
    assert_eq!(r, Ok(Some(None)));

    drop(fail_at(current_time(), async { Ok::<_, AnyError>(()) }));
    let r = CancelScope::new()
        .run(async {
            checkpoint().await?;
            Ok::<_, Cancelled>(1)
        })
        .await;
    assert_eq!(r, Ok(Some(1)), "a past deadline never resolved cancels nothing");
}

#[anyio::test]
async fn relative_timeout_starts_counting_at_first_poll() {
    let scope = CancelScope::with_timeout(Duration::from_secs(60));
    assert_eq!(scope.deadline(), None, "not resolved before entry");
    let s = scope.clone();
    sleep(Duration::from_millis(5)).await.unwrap();
    let before = current_time();
    let r = scope
        .run(async move {
            let d = s.deadline().expect("resolved on entry");
            assert!(d >= before + Duration::from_secs(60));
            assert!(d <= current_time() + Duration::from_secs(60));
            Ok::<_, Cancelled>(())
        })
        .await;
    assert_eq!(r, Ok(Some(())));
}

#[anyio::test]
async fn move_on_after_and_fail_after_fire_and_a_later_checkpoint_succeeds() {
    // AnyIO test_move_on_after / test_fail_after / test_cancel_scope_cleared.
    let scope = CancelScope::with_timeout(SHORT);
    let r = guarded(scope.run(async {
        sleep(NEVER).await?;
        Ok::<_, Cancelled>("slept")
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(scope.cancel_called());
    assert!(scope.cancelled_caught());
    checkpoint().await.expect("the expired scope left no cancellation behind");

    let r: Result<(), AnyError> = guarded(fail_after(SHORT, async {
        sleep(NEVER).await?;
        Ok(())
    }))
    .await;
    assert!(r.unwrap_err().is_timeout());
    sleep(Duration::from_millis(1)).await.expect("no leftover cancellation after fail_after");

    // Zero-delay variants ("instant").
    let r: Result<(), AnyError> = guarded(fail_after(Duration::ZERO, async {
        sleep(NEVER).await?;
        Ok(())
    }))
    .await;
    assert!(r.unwrap_err().is_timeout());
    let r = guarded(move_on_after(Duration::ZERO, async {
        sleep(Duration::ZERO).await?;
        Ok::<_, Cancelled>(())
    }))
    .await;
    assert_eq!(r, Ok(None));
}

// ---------------------------------------------------------------------------------------------
// Shields
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn shielded_sleep_completes_while_the_outer_scope_is_cancelled() {
    // AnyIO test_shielding: the outer scope is cancelled while the shielded sleep is blocked.
    let outer = CancelScope::new();
    let o = outer.clone();
    let inner = CancelScope::shielded();
    let i = inner.clone();
    let r = guarded(outer.run(async move {
        let (shielded, ()) = futures::join!(
            i.run(async {
                assert_eq!(current_effective_deadline(), None);
                sleep(Duration::from_millis(30)).await?;
                checkpoint().await?;
                Ok::<_, Cancelled>("slept")
            }),
            async move {
                cancel_shielded_checkpoint().await;
                o.cancel();
            }
        );
        assert_eq!(shielded, Ok(Some("slept")));
        // Outside the shield the outer cancellation is visible at once, every time.
        assert!(sleep(Duration::from_millis(1)).await.is_err());
        let e = sleep(Duration::from_millis(1)).await.unwrap_err();
        Err::<(), _>(e)
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(outer.cancelled_caught());
    assert!(!inner.cancel_called());
    assert!(!inner.cancelled_caught());
}

#[anyio::test]
async fn shielded_scope_own_deadline_still_fires_inside_a_cancelled_scope() {
    let outer = CancelScope::new();
    outer.cancel();
    let inner = CancelScope::shielded();
    inner.set_deadline(Some(current_time() + SHORT));
    let i = inner.clone();
    let r = guarded(outer.run(async move {
        let shielded = i
            .run(async {
                let e = sleep(NEVER).await.unwrap_err();
                assert_eq!(e.source_kind(), CancelSource::Deadline);
                Err::<(), _>(e)
            })
            .await;
        assert_eq!(shielded, Ok(None), "the shielded scope catches its own deadline");
        checkpoint().await?;
        Ok::<_, Cancelled>(())
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(inner.cancel_called());
    assert!(inner.cancelled_caught());
}

#[anyio::test]
async fn shielded_scope_own_cancel_still_works() {
    // AnyIO test_cancel_shielded_scope / test_shielding_immediate_scope_cancelled.
    let scope = CancelScope::shielded();
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let (blocked, ()) = futures::join!(sleep(NEVER), async move {
            cancel_shielded_checkpoint().await;
            s.cancel();
        });
        let e = blocked.unwrap_err();
        let d = current_effective_deadline().expect("cancelled: a deadline in the past");
        assert!(d <= current_time());
        Err::<(), _>(e)
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(scope.cancelled_caught());
}

#[anyio::test]
async fn unshielding_while_blocked_wakes_and_cancels() {
    let outer = CancelScope::new();
    outer.cancel();
    let shield = CancelScope::shielded();
    let lift = shield.clone();
    let r = guarded(outer.run(async move {
        let (blocked, ()) = futures::join!(
            shield.run(async {
                sleep_forever().await?;
                Ok::<(), Cancelled>(())
            }),
            async move {
                cancel_shielded_checkpoint().await;
                lift.set_shield(false);
            }
        );
        let e = blocked.expect_err("lifting the shield exposes the outer cancellation");
        assert!(!shield.cancelled_caught(), "the outer cancellation is not the shield scope's to catch");
        Err::<(), _>(e)
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(outer.cancelled_caught());
}

#[anyio::test]
async fn unshielding_from_another_thread_wakes_the_blocked_task() {
    let outer = CancelScope::new();
    outer.cancel();
    let shield = CancelScope::shielded();
    let lift = shield.clone();
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    let r = guarded(outer.run(async move {
        let (blocked, ()) = futures::join!(
            shield.run(async {
                sleep_forever().await?;
                Ok::<(), Cancelled>(())
            }),
            async move {
                // Let the sleeper block first, then lift the shield from a plain OS thread.
                for _ in 0..3 {
                    cancel_shielded_checkpoint().await;
                }
                go2.store(true, Ordering::SeqCst);
            }
        );
        Err::<(), _>(blocked.expect_err("lifting the shield exposes the outer cancellation"))
    }));
    let t = std::thread::spawn(move || {
        while !go.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        lift.set_shield(false);
    });
    let r = r.await;
    t.join().unwrap();
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn shield_turned_on_mid_run_blocks_then_unshielding_redelivers() {
    // AnyIO test_shielding_mutate.
    let outer = CancelScope::new();
    let o = outer.clone();
    let completed = Arc::new(AtomicBool::new(false));
    let done = completed.clone();
    let r = guarded(outer.run(async move {
        let scope = CancelScope::new();
        let s = scope.clone();
        let inner = scope
            .run(async move {
                checkpoint().await?;
                s.set_shield(true);
                o.cancel();
                sleep(Duration::from_millis(5)).await?;
                done.store(true, Ordering::SeqCst);
                s.set_shield(false);
                sleep(NEVER).await?;
                Ok::<_, Cancelled>("unreachable")
            })
            .await;
        Err::<(), _>(inner.expect_err("outer cancellation after unshielding"))
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(completed.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------------------
// Cancel before entry, deadlines moved, deadlines in the past
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn cancel_before_entering_is_honoured_at_entry() {
    let scope = CancelScope::new();
    scope.cancel();
    assert!(scope.cancel_called());
    let started = Arc::new(AtomicBool::new(false));
    let st = started.clone();
    let r = guarded(scope.run(async move {
        // Cancellation is only observed at checkpoints: the body starts.
        st.store(true, Ordering::SeqCst);
        sleep(NEVER).await?;
        Ok::<_, Cancelled>("unreachable")
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(started.load(Ordering::SeqCst));
    assert!(scope.cancelled_caught());
}

#[anyio::test]
async fn deadline_moved_earlier_while_blocked_fires() {
    let scope = CancelScope::with_timeout(NEVER);
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let (blocked, ()) = futures::join!(sleep_forever(), async move {
            cancel_shielded_checkpoint().await;
            s.set_deadline(Some(current_time() + SHORT));
        });
        let e = blocked.unwrap_err();
        assert_eq!(e.source_kind(), CancelSource::Deadline);
        Err::<(), _>(e)
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(scope.cancelled_caught());
}

#[anyio::test]
async fn deadline_moved_into_the_past_from_another_thread_fires() {
    let scope = CancelScope::new();
    let s = scope.clone();
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    let at = current_time();
    let t = std::thread::spawn(move || {
        while !go.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        s.set_deadline(Some(at));
    });
    let r = guarded(scope.run(async move {
        let (blocked, ()) = futures::join!(sleep_forever(), async move {
            for _ in 0..3 {
                cancel_shielded_checkpoint().await;
            }
            go2.store(true, Ordering::SeqCst);
        });
        Err::<(), _>(blocked.unwrap_err())
    }))
    .await;
    t.join().unwrap();
    assert_eq!(r, Ok(None));
    assert!(scope.cancelled_caught());
}

#[anyio::test]
async fn deadline_set_during_the_first_poll_of_a_scope_without_deadline_fires() {
    // The deadline is set synchronously by the body, in the very first poll of the scope,
    // before the scope future has returned Pending even once.
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        s.set_deadline(Some(current_time() + SHORT));
        sleep_forever().await?;
        Ok::<(), Cancelled>(())
    }))
    .await;
    assert_eq!(r, Ok(None), "the new deadline must be armed and fire");
    assert!(scope.cancelled_caught());
}

#[anyio::test]
async fn deadline_moved_earlier_during_the_first_poll_fires() {
    let scope = CancelScope::with_timeout(NEVER);
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let (blocked, ()) = futures::join!(sleep_forever(), async move {
            // No yield: the sleeper is blocked, but this is still the scope's first poll.
            s.set_deadline(Some(current_time() + SHORT));
        });
        Err::<(), _>(blocked.unwrap_err())
    }))
    .await;
    assert_eq!(r, Ok(None), "the earlier deadline must be armed and fire");
}

#[anyio::test]
async fn deadline_moved_later_while_blocked_does_not_fire_early() {
    // AnyIO test_deadline_moved. The original deadline is SHORT; it is moved an hour later
    // while the body is blocked in a sleep that outlasts the original deadline.
    let scope = CancelScope::with_timeout(SHORT);
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let (slept, ()) = futures::join!(sleep(SHORT * 3), async move {
            s.set_deadline(Some(current_time() + NEVER));
        });
        slept?;
        Ok::<_, Cancelled>("slept past the original deadline")
    }))
    .await;
    assert_eq!(r, Ok(Some("slept past the original deadline")));
    assert!(!scope.cancel_called());
}

#[anyio::test]
async fn deadline_cleared_while_blocked_does_not_fire() {
    let scope = CancelScope::with_timeout(SHORT);
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let (slept, ()) = futures::join!(sleep(SHORT * 3), async move {
            s.set_deadline(None);
        });
        slept?;
        Ok::<_, Cancelled>("slept")
    }))
    .await;
    assert_eq!(r, Ok(Some("slept")));
    assert!(!scope.cancel_called());
    assert_eq!(scope.deadline(), None);
}

#[anyio::test]
async fn past_deadline_on_entry_fails_the_first_checkpoint() {
    // AnyIO test_deadline_reached_on_start.
    let started = Arc::new(AtomicBool::new(false));
    let st = started.clone();
    let r = guarded(move_on_at(current_time(), async move {
        st.store(true, Ordering::SeqCst);
        let e = checkpoint().await.unwrap_err();
        assert_eq!(e.source_kind(), CancelSource::Deadline);
        Err::<(), _>(e)
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(started.load(Ordering::SeqCst));

    let r: Result<(), AnyError> = guarded(fail_at(current_time(), async {
        sleep(NEVER).await?;
        Ok(())
    }))
    .await;
    assert!(r.unwrap_err().is_timeout());
}

#[anyio::test]
async fn past_deadline_on_entry_with_a_body_without_checkpoints_returns_the_value() {
    let scope = CancelScope::with_deadline(current_time());
    let r = scope
        .run(async {
            assert!(checkpoint_if_cancelled().is_err(), "the scope is cancelled on entry");
            Ok::<_, Cancelled>(7)
        })
        .await;
    assert_eq!(r, Ok(Some(7)));
    assert!(scope.cancel_called());
    assert!(!scope.cancelled_caught());

    let r: Result<i32, AnyError> = fail_at(current_time(), async { Ok(5) }).await;
    assert_eq!(r.unwrap(), 5, "fail_at never turns a finished body into a timeout");
}

// ---------------------------------------------------------------------------------------------
// The catch rule
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn cancel_called_without_reaching_a_checkpoint_is_not_caught() {
    // AnyIO test_cancelled_not_caught.
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = scope
        .run(async move {
            s.cancel();
            Ok::<_, Cancelled>("finished")
        })
        .await;
    assert_eq!(r, Ok(Some("finished")));
    assert!(scope.cancel_called());
    assert!(!scope.cancelled_caught());
    checkpoint().await.expect("the finished scope's cancellation does not leak out");
}

#[anyio::test]
async fn inner_scope_propagates_an_outer_cancellation_and_the_outer_catches() {
    let outer = CancelScope::new();
    let inner = CancelScope::new();
    let (o, i) = (outer.clone(), inner.clone());
    let r = guarded(outer.run(async move {
        let r = i
            .run(async move {
                o.cancel();
                sleep(NEVER).await?;
                Ok::<(), Cancelled>(())
            })
            .await;
        Err::<(), _>(r.expect_err("not the inner scope's cancellation"))
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(!inner.cancel_called());
    assert!(!inner.cancelled_caught());
    assert!(outer.cancelled_caught());
}

#[anyio::test]
async fn both_cancelled_the_outermost_cancelled_scope_catches() {
    // AnyIO test_cancelled_raises_beyond_origin_unshielded: the inner scope is cancelled too,
    // but the outer cancellation is visible inside it, so it is not the inner scope's to catch.
    let outer = CancelScope::new();
    let inner = CancelScope::new();
    let (o, i) = (outer.clone(), inner.clone());
    let r = guarded(outer.run(async move {
        let i2 = i.clone();
        let r = i
            .run(async move {
                o.cancel();
                i2.cancel();
                sleep(NEVER).await?;
                Ok::<(), Cancelled>(())
            })
            .await;
        Err::<(), _>(r.expect_err("the outer cancellation is visible, the inner scope must not catch"))
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(inner.cancel_called());
    assert!(!inner.cancelled_caught());
    assert!(outer.cancelled_caught());
}

#[anyio::test]
async fn both_cancelled_a_shielded_inner_scope_catches_its_own() {
    // AnyIO test_cancelled_raises_beyond_origin_shielded.
    let outer = CancelScope::new();
    let inner = CancelScope::shielded();
    let (o, i) = (outer.clone(), inner.clone());
    let r = guarded(outer.run(async move {
        let i2 = i.clone();
        let r = i
            .run(async move {
                o.cancel();
                i2.cancel();
                sleep(NEVER).await?;
                Ok::<(), Cancelled>(())
            })
            .await;
        assert_eq!(r, Ok(None), "the shield hides the outer cancellation: the inner scope catches");
        checkpoint().await?;
        Ok::<_, Cancelled>("unreachable")
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(inner.cancelled_caught());
    assert!(outer.cancelled_caught());
}

#[anyio::test]
async fn triple_nested_shield_checkpoint_in_outer_fails() {
    // AnyIO test_triple_nested_shield_checkpoint_in_outer (#370).
    let scope1 = CancelScope::new();
    let s1 = scope1.clone();
    let got_past = Arc::new(AtomicBool::new(false));
    let past = got_past.clone();
    let r = guarded(scope1.run(async move {
        let scope2 = CancelScope::new();
        let s2 = scope2.clone();
        let r2 = scope2
            .run(async move {
                CancelScope::shielded()
                    .run(async move {
                        s1.cancel();
                        s2.cancel();
                        Ok::<_, Cancelled>(())
                    })
                    .await
            })
            .await;
        assert_eq!(r2, Ok(Some(Some(()))), "no checkpoint was reached inside scope2");
        checkpoint().await?;
        past.store(true, Ordering::SeqCst);
        Ok::<_, Cancelled>(())
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(!got_past.load(Ordering::SeqCst));
}

#[anyio::test]
async fn triple_nested_shield_checkpoint_in_middle_fails() {
    // AnyIO test_triple_nested_shield_checkpoint_in_middle.
    let scope1 = CancelScope::new();
    let s1 = scope1.clone();
    let got_past = Arc::new(AtomicBool::new(false));
    let past = got_past.clone();
    let r = guarded(scope1.run(async move {
        let middle = CancelScope::new()
            .run(async move {
                CancelScope::shielded()
                    .run(async move {
                        s1.cancel();
                        Ok::<_, Cancelled>(())
                    })
                    .await?;
                checkpoint().await?;
                past.store(true, Ordering::SeqCst);
                Ok::<_, Cancelled>(())
            })
            .await;
        Err::<(), _>(middle.expect_err("scope1's cancellation goes through the middle scope"))
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert!(!got_past.load(Ordering::SeqCst));
}

#[anyio::test]
async fn inner_timeout_then_outer_cancel_without_checkpoint_exits_cleanly() {
    // AnyIO test_escaping_cancelled_error_from_cancelled_task (#88).
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let inner = move_on_after(SHORT, async {
            sleep(NEVER).await?;
            Ok::<(), Cancelled>(())
        })
        .await;
        assert_eq!(inner, Ok(None));
        s.cancel();
        Ok::<_, Cancelled>("done")
    }))
    .await;
    assert_eq!(r, Ok(Some("done")));
    assert!(!scope.cancelled_caught());
}

// ---------------------------------------------------------------------------------------------
// Reasons, effective deadline
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn cancel_with_reason_text_is_visible_in_cancelled() {
    let scope = CancelScope::new();
    scope.cancel_with_reason("client went away");
    scope.cancel_with_reason("a second reason is ignored");
    scope.cancel();
    let s = scope.clone();
    let r = scope
        .run(async move {
            let e = checkpoint().await.unwrap_err();
            assert_eq!(e.reason(), Some("client went away"));
            assert_eq!(e.source_kind(), CancelSource::Explicit);
            assert!(e.to_string().contains("client went away"), "Display: {e}");
            // Seen the same way from a nested scope.
            let nested = CancelScope::new()
                .run(async {
                    sleep(NEVER).await?;
                    Ok::<(), Cancelled>(())
                })
                .await
                .unwrap_err();
            assert_eq!(nested.reason(), Some("client went away"));
            assert!(s.cancel_called());
            Err::<(), _>(e)
        })
        .await;
    assert_eq!(r, Ok(None));

    let r = guarded(move_on_after(SHORT, async {
        let e = sleep(NEVER).await.unwrap_err();
        assert_eq!(e.source_kind(), CancelSource::Deadline);
        assert_eq!(e.reason(), None);
        assert!(e.to_string().contains("deadline exceeded"), "Display: {e}");
        Err::<(), _>(e)
    }))
    .await;
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn current_effective_deadline_is_none_outside_any_deadline() {
    assert_eq!(current_effective_deadline(), None);
    let r = CancelScope::new()
        .run(async {
            assert_eq!(current_effective_deadline(), None);
            Ok::<_, Cancelled>(())
        })
        .await;
    assert_eq!(r, Ok(Some(())));
}

#[anyio::test]
async fn current_effective_deadline_is_the_minimum_of_the_chain() {
    let now = current_time();
    let near = now + Duration::from_secs(50);
    let far = now + Duration::from_secs(100);
    let r = CancelScope::with_deadline(far)
        .run(async move {
            assert_eq!(current_effective_deadline(), Some(far));
            let inner = CancelScope::with_deadline(near)
                .run(async move {
                    assert_eq!(current_effective_deadline(), Some(near));
                    let innermost = CancelScope::new()
                        .run(async move {
                            assert_eq!(current_effective_deadline(), Some(near));
                            Ok::<_, Cancelled>(())
                        })
                        .await;
                    assert_eq!(innermost, Ok(Some(())));
                    Ok::<_, Cancelled>(())
                })
                .await;
            assert_eq!(inner, Ok(Some(())));
            assert_eq!(current_effective_deadline(), Some(far));
            Ok::<_, Cancelled>(())
        })
        .await;
    assert_eq!(r, Ok(Some(())));

    // Reverse nesting: a later inner deadline does not hide the earlier outer one.
    let r = CancelScope::with_deadline(near)
        .run(async move {
            CancelScope::with_deadline(far)
                .run(async move {
                    assert_eq!(current_effective_deadline(), Some(near));
                    Ok::<_, Cancelled>(())
                })
                .await
        })
        .await;
    assert_eq!(r, Ok(Some(Some(()))));
}

#[anyio::test]
async fn current_effective_deadline_stops_at_a_shield() {
    // AnyIO test_shielded_deadline.
    let now = current_time();
    let near = now + Duration::from_secs(10);
    let far = now + Duration::from_secs(1000);
    let r = CancelScope::with_deadline(near)
        .run(async move {
            CancelScope::shielded()
                .run(async move {
                    assert_eq!(current_effective_deadline(), None);
                    CancelScope::with_deadline(far)
                        .run(async move {
                            assert_eq!(current_effective_deadline(), Some(far));
                            Ok::<_, Cancelled>(())
                        })
                        .await
                })
                .await
        })
        .await;
    assert_eq!(r, Ok(Some(Some(Some(())))));
}

#[anyio::test]
async fn current_effective_deadline_is_in_the_past_when_cancelled() {
    // AnyIO test_cancel_from_shielded_scope: -inf while cancelled, +inf inside a shield.
    let outer = CancelScope::with_deadline(current_time() + NEVER);
    let o = outer.clone();
    let r = outer
        .run(async move {
            o.cancel();
            let d = current_effective_deadline().expect("Some(past) while cancelled");
            assert!(d <= current_time());
            CancelScope::shielded()
                .run(async {
                    assert_eq!(current_effective_deadline(), None);
                    Ok::<_, Cancelled>(())
                })
                .await?;
            let d = current_effective_deadline().expect("Some(past) while cancelled");
            assert!(d <= current_time());
            // Two consecutive sleeps both fail.
            assert!(sleep(Duration::from_millis(10)).await.is_err());
            let e = sleep(Duration::from_millis(10)).await.unwrap_err();
            Err::<(), _>(e)
        })
        .await;
    assert_eq!(r, Ok(None));
}

// ---------------------------------------------------------------------------------------------
// Lifecycle and extreme timeouts
// ---------------------------------------------------------------------------------------------

#[anyio::test]
#[should_panic(expected = "each CancelScope may only be used for a single run")]
async fn running_a_scope_twice_panics_with_a_clear_message() {
    let scope = CancelScope::new();
    scope.run(async { Ok::<_, Cancelled>(()) }).await.unwrap();
    let _ = scope.run(async { Ok::<_, Cancelled>(()) }).await;
}

#[anyio::test]
#[should_panic(expected = "each CancelScope may only be used for a single run")]
async fn running_a_clone_of_a_running_scope_panics() {
    let scope = CancelScope::new();
    let clone = scope.clone();
    let _ = scope
        .run(async move {
            let _ = clone.run(async { Ok::<_, Cancelled>(()) }).await;
            Ok::<_, Cancelled>(())
        })
        .await;
}

#[anyio::test]
async fn duration_max_timeout_means_no_deadline() {
    let r = move_on_after(Duration::MAX, async {
        assert_eq!(current_effective_deadline(), None);
        sleep(Duration::from_millis(1)).await?;
        Ok::<_, Cancelled>(1)
    })
    .await;
    assert_eq!(r, Ok(Some(1)));

    let scope = CancelScope::with_timeout(Duration::MAX);
    let s = scope.clone();
    let r = scope
        .run(async move {
            assert_eq!(s.deadline(), None);
            checkpoint().await?;
            Ok::<_, Cancelled>(2)
        })
        .await;
    assert_eq!(r, Ok(Some(2)));
    assert!(!scope.cancel_called());

    let r: Result<i32, AnyError> = fail_after(Duration::MAX, async {
        checkpoint().await?;
        Ok(3)
    })
    .await;
    assert_eq!(r.unwrap(), 3);

    // A sleep too long for the clock sleeps until cancelled, without overflowing.
    let r = guarded(move_on_after(SHORT, async {
        sleep(Duration::MAX).await?;
        Ok::<(), Cancelled>(())
    }))
    .await;
    assert_eq!(r, Ok(None));
    let cancelled = CancelScope::new();
    cancelled.cancel();
    let r = cancelled
        .run(async {
            sleep(Duration::MAX).await?;
            Ok::<(), Cancelled>(())
        })
        .await;
    assert_eq!(r, Ok(None));
}

// ---------------------------------------------------------------------------------------------
// Scope nodes are reused per thread: reuse must never leak state between scopes
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn a_new_scope_never_inherits_a_finished_scopes_state() {
    for _ in 0..3 {
        // Cancelled, with a deadline and a shield, then dropped: its node may be reused.
        let old = CancelScope::shielded();
        old.set_deadline(Some(std::time::Instant::now() + NEVER));
        let r = old
            .run(async {
                CancelScope::new().cancel();
                checkpoint().await?;
                Ok::<_, Cancelled>(())
            })
            .await;
        assert_eq!(r, Ok(Some(())));
        old.cancel();
        drop(old);

        let fresh = CancelScope::new();
        assert!(!fresh.cancel_called());
        assert!(!fresh.shield());
        assert_eq!(fresh.deadline(), None);
        let r = fresh.run(async { checkpoint().await.map(|()| 7) }).await;
        assert_eq!(r, Ok(Some(7)));
        assert!(!fresh.cancelled_caught());
    }
}

#[anyio::test]
async fn a_scope_handle_kept_after_its_run_stays_its_own() {
    let kept = CancelScope::new();
    assert_eq!(kept.run(async { Ok::<_, Cancelled>(1) }).await, Ok(Some(1)));
    let next = CancelScope::new();
    // Cancelling the finished scope's handle must not reach the next scope.
    kept.cancel();
    let r = next.run(async { checkpoint().await.map(|()| 2) }).await;
    assert_eq!(r, Ok(Some(2)));
    assert!(!next.cancel_called());
}
