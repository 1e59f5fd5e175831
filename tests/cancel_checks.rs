//! A checkpoint sees every change that cancels it, also later in the same poll as an earlier
//! checkpoint that passed: its own scope's cancellation, an enclosing one's, a shield coming
//! down, a started task moving under a cancelled group, and a cancellation from another
//! thread while the task never yields. (A checkpoint that passed is remembered until the
//! cancellation epoch moves; these prove each change moves it.)

use std::time::{Duration, Instant};

use anyio::{lowlevel::checkpoint_if_cancelled, task_group, AnyError, CancelScope, Cancelled};

mod support;

#[anyio::test]
async fn a_check_after_a_passing_one_sees_its_own_scope_cancelled() {
    let scope = CancelScope::new();
    let s = scope.clone();
    let out = scope
        .run(async move {
            checkpoint_if_cancelled()?;
            checkpoint_if_cancelled()?;
            s.cancel();
            assert!(checkpoint_if_cancelled().is_err(), "the cancel in this poll is seen");
            checkpoint_if_cancelled()?;
            Ok::<_, Cancelled>(())
        })
        .await;
    assert_eq!(out, Ok(None));
}

#[anyio::test]
async fn a_check_in_a_nested_scope_sees_the_enclosing_scope_cancelled() {
    let outer = CancelScope::new();
    let o = outer.clone();
    let out = outer
        .run(async move {
            let inner = CancelScope::new();
            inner
                .run(async move {
                    checkpoint_if_cancelled()?;
                    o.cancel();
                    assert!(checkpoint_if_cancelled().is_err(), "the outer cancel is seen inside");
                    Ok::<_, Cancelled>(())
                })
                .await?;
            Ok::<_, Cancelled>(())
        })
        .await;
    assert_eq!(out, Ok(Some(())), "the inner body returned Ok before the outer check");
}

#[anyio::test]
async fn a_check_sees_an_outer_cancellation_once_the_shield_comes_down() {
    let outer = CancelScope::new();
    outer.cancel();
    let o = outer.clone();
    let out = o
        .run(async move {
            let shield = CancelScope::shielded();
            let s = shield.clone();
            shield
                .run(async move {
                    checkpoint_if_cancelled().expect("shielded from the outer cancellation");
                    checkpoint_if_cancelled().expect("still shielded");
                    s.set_shield(false);
                    assert!(checkpoint_if_cancelled().is_err(), "the outer cancellation is exposed");
                    Ok::<_, Cancelled>(())
                })
                .await?;
            Ok::<_, Cancelled>(())
        })
        .await;
    assert_eq!(out, Ok(Some(())), "the inner body returned Ok after its check failed");
}

#[anyio::test]
async fn a_started_task_sees_its_cancelled_group_right_after_signalling() {
    let out = task_group(|tg| async move {
        tg.cancel_scope().cancel();
        // The caller is shielded so that `start` itself is not cancelled: only the task's move
        // into the (cancelled) group cancels the task.
        let shield = CancelScope::shielded();
        let tg2 = tg.clone();
        let seen = shield
            .run(async move {
                let seen = tg2
                    .start(|status| async move {
                        checkpoint_if_cancelled().expect("the caller's scope is not cancelled");
                        status.started(());
                        // Now in the cancelled group, in the same poll.
                        let after = checkpoint_if_cancelled().is_err();
                        assert!(after, "the group's cancellation is seen after the move");
                        Ok::<_, AnyError>(())
                    })
                    .await;
                Ok::<_, AnyError>(seen.is_ok())
            })
            .await?;
        assert_eq!(seen, Some(true));
        Ok::<_, AnyError>(())
    })
    .await;
    assert!(out.is_ok(), "{out:?}");
}

#[anyio::test]
async fn a_task_that_never_yields_sees_a_cancellation_from_another_thread() {
    let scope = CancelScope::new();
    let s = scope.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        s.cancel();
    });
    let out = scope
        .run(async {
            // One poll, no yield: a hang guard cannot stop it, so it gives up by itself, long
            // after the cancellation should have been seen.
            let give_up = Instant::now() + Duration::from_secs(60);
            while Instant::now() < give_up {
                checkpoint_if_cancelled()?;
            }
            Ok::<_, Cancelled>("the cancellation was never seen")
        })
        .await;
    canceller.join().unwrap();
    assert_eq!(out, Ok(None));
}

#[anyio::test]
async fn a_check_after_leaving_a_shielded_scope_sees_the_enclosing_cancellation() {
    let outer = CancelScope::new();
    outer.cancel();
    let out = outer
        .run(async {
            let inside = CancelScope::shielded().run(async { checkpoint_if_cancelled() }).await;
            assert_eq!(inside, Ok(Some(())), "the shield hides the outer cancellation");
            // Same poll, back in the cancelled scope.
            assert!(checkpoint_if_cancelled().is_err(), "the outer cancellation is seen again");
            Ok::<_, Cancelled>(())
        })
        .await;
    assert_eq!(out, Ok(Some(())));
}

/// Ends the current poll without a checkpoint: `Pending` once, with an immediate wake.
async fn yield_without_checkpoint() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

#[anyio::test]
async fn a_task_sees_a_cancellation_made_after_its_last_check_of_the_previous_poll() {
    // A task carries its passed check from one poll to the next (it is the same node); what
    // it carries must be the epoch of that check, not the epoch at the end of the poll.
    let out = task_group(|tg| async move {
        let tg2 = tg.clone();
        tg.spawn(async move {
            checkpoint_if_cancelled()?;
            tg2.cancel_scope().cancel();
            yield_without_checkpoint().await;
            let seen = checkpoint_if_cancelled().is_err();
            assert!(seen, "the cancellation made in the previous poll is seen");
            Ok::<_, AnyError>(())
        });
        Ok::<_, AnyError>(())
    })
    .await;
    assert!(out.is_ok(), "{out:?}");
}

#[anyio::test]
async fn a_task_sees_a_cancellation_made_between_its_polls() {
    let out = task_group(|tg| async move {
        let (go, ready) = (anyio::sync::Event::new(), std::sync::Arc::new(anyio::sync::Event::new()));
        let ready2 = ready.clone();
        let go = std::sync::Arc::new(go);
        let go2 = go.clone();
        tg.spawn(async move {
            checkpoint_if_cancelled()?;
            ready2.set();
            // Waits in a shield, so that the wait itself does not see the cancellation.
            CancelScope::shielded().run(go2.wait()).await?;
            let seen = checkpoint_if_cancelled().is_err();
            assert!(seen, "the cancellation made while the task waited is seen");
            Ok::<_, AnyError>(())
        });
        ready.wait().await?;
        tg.cancel_scope().cancel();
        go.set();
        Ok::<_, AnyError>(())
    })
    .await;
    assert!(out.is_ok(), "{out:?}");
}
