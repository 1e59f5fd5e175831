//! `TaskGroup::start`: the readiness handshake returns the started value; failures and panics
//! before `started()` come out of `start()` without touching the group, failures after it go to
//! the group; cancelling the caller cancels only the starting task (AnyIO's
//! test_taskgroups.py `test_start_*`; rule 4).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyio::{
    error::CancelSource,
    lowlevel::checkpoint,
    sleep,
    task::{GroupError, StartError, TaskStatus},
    task_group,
    time::sleep_forever,
    AnyError, CancelScope, Cancelled, TaskGroup,
};
use futures::FutureExt;

mod support;
use support::{guarded_ok as guarded, wait_for};

/// A sibling task that must not be disturbed: it waits to be released, then records that it
/// finished normally (its waits were never cancelled).
fn spawn_bystander(tg: &TaskGroup<AnyError>, release: Arc<AtomicBool>, finished: Arc<AtomicBool>) {
    tg.spawn(async move {
        wait_for(&release).await?;
        sleep(Duration::from_millis(1)).await?;
        finished.store(true, SeqCst);
        Ok(())
    });
}

#[derive(Debug, PartialEq, Eq)]
struct Boom(u32);

#[anyio::test]
async fn start_returns_the_value_passed_to_started_and_the_task_keeps_running() {
    let kept_running = Arc::new(AtomicBool::new(false));
    let k = kept_running.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let port = tg
                .start(|status: TaskStatus<u16>| async move {
                    status.started(8080);
                    sleep(Duration::from_millis(5)).await?;
                    k.store(true, SeqCst);
                    Ok(())
                })
                .await;
            assert_eq!(port.as_ref().ok(), Some(&8080), "got {port:?}");
            Ok(port.unwrap())
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some(8080))), "got {r:?}");
    assert!(kept_running.load(SeqCst), "the started task must keep running in the group after started()");
}

#[anyio::test]
async fn start_waits_for_started_even_after_checkpoints() {
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let v = tg
                .start(|status: TaskStatus<&'static str>| async move {
                    sleep(Duration::from_millis(2)).await?;
                    checkpoint().await?;
                    status.started("ready");
                    Ok(())
                })
                .await;
            Ok(format!("{v:?}"))
        })
        .await)
    })
    .await;
    assert_eq!(r.unwrap().as_deref(), Some("Ok(\"ready\")"));
}

#[anyio::test]
async fn error_before_started_comes_out_of_start_and_does_not_cancel_the_group() {
    let release = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (rel, fin) = (release.clone(), finished.clone());
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            spawn_bystander(&tg, rel.clone(), fin);
            let r = tg
                .start(|_status: TaskStatus<()>| async move {
                    checkpoint().await?;
                    Err(AnyError::msg("early failure"))
                })
                .await;
            match r {
                Err(StartError::Failed(e)) => assert_eq!(e.to_string(), "early failure"),
                other => panic!("expected StartError::Failed, got {other:?}"),
            }
            assert!(
                !tg.cancel_scope().cancel_called(),
                "a failure before started() must not cancel the group"
            );
            // The body itself is not cancelled either.
            checkpoint().await?;
            rel.store(true, SeqCst);
            Ok("group ok")
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some("group ok"))), "the error must not reach the group: {r:?}");
    assert!(finished.load(SeqCst), "the sibling must have run to completion, uncancelled");
}

#[anyio::test]
async fn error_after_started_goes_to_the_group() {
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.start(|status: TaskStatus<()>| async move {
                status.started(());
                checkpoint().await?;
                Err(AnyError::msg("late failure"))
            })
            .await
            .expect("the task signalled before failing");
            // The failure cancels the group, including this body.
            sleep_forever().await?;
            Ok(())
        })
        .await)
    })
    .await;
    match r {
        Err(GroupError::Failed(errors)) => {
            assert_eq!(errors.iter().map(ToString::to_string).collect::<Vec<_>>(), ["late failure"]);
        }
        other => panic!("expected GroupError::Failed, got {other:?}"),
    }
}

#[anyio::test]
async fn panic_after_started_goes_to_the_group() {
    let caught = guarded(async move {
        Ok(AssertUnwindSafe(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.start(|status: TaskStatus<()>| async move {
                status.started(());
                checkpoint().await?;
                std::panic::panic_any(Boom(8))
            })
            .await
            .expect("the task signalled before panicking");
            sleep_forever().await?;
            Ok(())
        }))
        .catch_unwind()
        .await)
    })
    .await;
    let payload = caught.expect_err("the group must re-raise a panic that happened after started()");
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(8)));
}

#[anyio::test]
async fn child_returning_without_started_gives_not_started() {
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let r = tg.start(|_status: TaskStatus<u8>| async move { Ok(()) }).await;
            assert!(matches!(r, Err(StartError::NotStarted)), "got {r:?}");
            assert!(!tg.cancel_scope().cancel_called());
            Ok(())
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some(()))), "got {r:?}");
}

#[anyio::test]
async fn panic_before_started_is_reraised_from_start() {
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let caught = AssertUnwindSafe(tg.start(|_status: TaskStatus<()>| async move {
                checkpoint().await?;
                std::panic::panic_any(Boom(5))
            }))
            .catch_unwind()
            .await;
            let payload = caught.expect_err("the panic must come out of start()");
            assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(5)), "the panic payload changed");
            assert!(
                !tg.cancel_scope().cancel_called(),
                "a panic caught from start() must not cancel the group"
            );
            Ok("group ok")
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some("group ok"))), "the panic must not reach the group again: {r:?}");
}

#[anyio::test]
async fn cancelling_the_callers_scope_while_start_waits_cancels_only_the_starting_task() {
    let release = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let child_cancel: Arc<Mutex<Option<CancelSource>>> = Arc::default();
    let (rel, fin, cc) = (release.clone(), finished.clone(), child_cancel.clone());
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            spawn_bystander(&tg, rel.clone(), fin);
            let caller = CancelScope::new();
            let child_waiting = Arc::new(AtomicBool::new(false));
            // Another task cancels the caller's scope once the starting task is blocked.
            let (c2, w2) = (caller.clone(), child_waiting.clone());
            tg.spawn(async move {
                wait_for(&w2).await?;
                c2.cancel();
                Ok(())
            });
            let outcome = caller
                .run(async {
                    let r = tg
                        .start(|status: TaskStatus<u32>| async move {
                            child_waiting.store(true, SeqCst);
                            let r = sleep_forever().await;
                            *cc.lock().unwrap() = r.as_ref().err().map(Cancelled::source_kind);
                            r?;
                            status.started(1);
                            Ok(())
                        })
                        .await;
                    assert!(matches!(r, Err(StartError::Cancelled(_))), "got {r:?}");
                    r
                })
                .await;
            assert!(
                matches!(outcome, Ok(None)),
                "the caller's scope must catch its cancellation: {outcome:?}"
            );
            assert!(caller.cancelled_caught());
            assert!(!tg.cancel_scope().cancel_called(), "the group must not be cancelled");
            // The body keeps running normally.
            checkpoint().await?;
            rel.store(true, SeqCst);
            Ok("group ok")
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some("group ok"))), "got {r:?}");
    assert!(child_cancel.lock().unwrap().is_some(), "the starting task must have been cancelled");
    assert!(finished.load(SeqCst), "the sibling must have run to completion, uncancelled");
}

#[anyio::test]
async fn start_in_an_already_cancelled_caller_scope_still_runs_the_task_and_spares_the_group() {
    // AnyIO's test_start_cancels_parent_scope (#685 / #710).
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let caller = CancelScope::new();
            caller.cancel();
            let outcome = caller
                .run(async {
                    tg.start(|_status: TaskStatus<()>| async move {
                        s.store(true, SeqCst);
                        sleep_forever().await?;
                        Ok(())
                    })
                    .await
                })
                .await;
            assert!(matches!(outcome, Ok(None)), "got {outcome:?}");
            assert!(!tg.cancel_scope().cancel_called());
            Ok(())
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some(()))), "got {r:?}");
    assert!(started.load(SeqCst), "the task must run until its first checkpoint");
}

#[anyio::test]
async fn start_in_an_already_cancelled_group_runs_the_task_until_its_first_checkpoint() {
    // AnyIO's test_start_cancelled.
    let started = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (s, f) = (started.clone(), finished.clone());
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.cancel();
            let r = tg
                .start(|_status: TaskStatus<()>| async move {
                    s.store(true, SeqCst);
                    sleep(Duration::from_secs(3600)).await?;
                    f.store(true, SeqCst);
                    Ok(())
                })
                .await;
            match r {
                Err(StartError::Cancelled(c)) => Err::<(), _>(AnyError::from(c)),
                other => panic!("expected StartError::Cancelled, got {other:?}"),
            }
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(None)), "the group catches its own cancellation: {r:?}");
    assert!(started.load(SeqCst));
    assert!(!finished.load(SeqCst));
}

#[anyio::test]
async fn start_in_a_cancelled_group_returns_a_value_signalled_before_the_first_checkpoint() {
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.cancel();
            let v = tg
                .start(|status: TaskStatus<i32>| async move {
                    status.started(-1);
                    sleep_forever().await?;
                    Ok(())
                })
                .await;
            assert!(matches!(v, Ok(-1)), "a value signalled before finishing is still returned: {v:?}");
            Ok(v.unwrap())
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some(-1))), "got {r:?}");
}

#[anyio::test]
async fn start_in_a_closed_group_gives_group_closed() {
    let leaked: Arc<Mutex<Option<TaskGroup<AnyError>>>> = Arc::default();
    let l = leaked.clone();
    guarded(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            *l.lock().unwrap() = Some(tg);
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    let tg = leaked.lock().unwrap().take().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    let r = guarded(async move {
        Ok(tg
            .start(|status: TaskStatus<()>| async move {
                r2.store(true, SeqCst);
                status.started(());
                Ok(())
            })
            .await)
    })
    .await;
    assert!(matches!(r, Err(StartError::GroupClosed)), "got {r:?}");
    assert!(!ran.load(SeqCst), "nothing may run in a closed group");
}

#[anyio::test]
async fn sibling_failure_while_start_waits_cancels_the_starting_task() {
    let start_result: Arc<Mutex<Option<String>>> = Arc::default();
    let sr = start_result.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let waiting = Arc::new(AtomicBool::new(false));
            let w = waiting.clone();
            tg.spawn(async move {
                wait_for(&w).await?;
                Err::<(), _>(AnyError::msg("sibling failed"))
            });
            let r = tg
                .start(|status: TaskStatus<()>| async move {
                    waiting.store(true, SeqCst);
                    sleep_forever().await?;
                    status.started(());
                    Ok(())
                })
                .await;
            *sr.lock().unwrap() = Some(match &r {
                Err(StartError::Cancelled(c)) => format!("cancelled: {:?}", c.source_kind()),
                other => format!("{other:?}"),
            });
            r?;
            Ok(())
        })
        .await)
    })
    .await;
    match r {
        Err(GroupError::Failed(errors)) => {
            assert_eq!(errors.iter().map(ToString::to_string).collect::<Vec<_>>(), ["sibling failed"]);
        }
        other => panic!("expected only the sibling's failure, got {other:?}"),
    }
    assert_eq!(start_result.lock().unwrap().as_deref(), Some("cancelled: GroupChildFailed"));
}

#[anyio::test]
async fn start_can_be_called_from_a_task_of_the_group() {
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let tg2 = tg.clone();
            let h = tg.spawn(async move {
                let v = tg2
                    .start(|status: TaskStatus<u8>| async move {
                        checkpoint().await?;
                        status.started(9);
                        Ok(())
                    })
                    .await
                    .map_err(|e| AnyError::msg(e.to_string()))?;
                Ok(v)
            });
            h.await.map_err(AnyError::other)
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some(9))), "got {r:?}");
}

#[anyio::test]
async fn a_task_that_signals_inside_a_shield_after_its_caller_was_cancelled_keeps_running_in_the_group() {
    let after_start = Arc::new(AtomicBool::new(false));
    let flag = after_start.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let caller = CancelScope::new();
            let c = caller.clone();
            let started = caller
                .run(async move {
                    let tg2 = tg.clone();
                    tg2.start(|status: TaskStatus<u32>| async move {
                        c.cancel(); // the caller's scope is cancelled while the task starts
                        CancelScope::shielded()
                            .run(async {
                                sleep(Duration::from_millis(2)).await?;
                                Ok::<_, AnyError>(())
                            })
                            .await?;
                        status.started(7); // signalled despite the caller's cancellation
                                           // Now the task belongs to the group: the caller's cancellation must
                                           // no longer reach it.
                        sleep(Duration::from_millis(2)).await?;
                        flag.store(true, SeqCst);
                        Ok(())
                    })
                    .await
                    .map_err(AnyError::other)
                })
                .await?;
            Ok(started)
        })
        .await)
    })
    .await;
    assert_eq!(r.unwrap(), Some(Some(7)), "start() returns the signalled value");
    assert!(after_start.load(SeqCst), "the started task ran on after its caller's scope was cancelled");
}
