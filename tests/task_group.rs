//! Task groups: structured join, parallelism, fail-fast cancellation, error aggregation, panic
//! propagation, cancellation rules, closed groups, task handles and dropping the group future
//! (AnyIO's test_taskgroups.py; rules 1, 2, 3, 5 and 7; sharp edges 13 and 14).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use anyio::{
    error::CancelSource,
    lowlevel::checkpoint,
    move_on_after, sleep,
    task::{GroupClosed, GroupError, JoinError, TaskState},
    task_group,
    time::sleep_forever,
    AnyError, CancelScope, Cancelled, TaskGroup,
};
use anyio_suite::DropCounter;
use futures::FutureExt;

mod support;
use support::{guarded_ok as guarded, wait_for};

/// A panic payload of our own, to prove the parent re-raises the child's very payload.
#[derive(Debug, PartialEq, Eq)]
struct Boom(u32);

/// Panics with `boom` as the payload (typed so it can end a task's body).
fn explode(boom: Boom) -> Result<(), AnyError> {
    std::panic::panic_any(boom)
}

/// Records what cancelled a task, for assertions after the group has finished.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<CancelSource>>>);

impl Seen {
    fn record<T>(&self, r: &Result<T, Cancelled>) {
        if let Err(c) = r {
            self.0.lock().unwrap().push(c.source_kind());
        }
    }
    fn sources(&self) -> Vec<CancelSource> {
        self.0.lock().unwrap().clone()
    }
}

#[anyio::test]
async fn group_waits_for_all_children_including_those_spawned_by_children() {
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let r = guarded(async move {
        let r = task_group(|tg: TaskGroup<AnyError>| async move {
            for _ in 0..2 {
                let f = f.clone();
                let tg2 = tg.clone();
                tg.spawn(async move {
                    sleep(Duration::from_millis(5)).await?;
                    // A grandchild, spawned into the same group after the body has returned.
                    let f2 = f.clone();
                    tg2.spawn(async move {
                        sleep(Duration::from_millis(5)).await?;
                        f2.fetch_add(1, SeqCst);
                        Ok(())
                    });
                    f.fetch_add(1, SeqCst);
                    Ok(())
                });
            }
            Ok("body done")
        })
        .await?;
        Ok(r)
    })
    .await;
    assert_eq!(r, Some("body done"));
    assert_eq!(finished.load(SeqCst), 4, "the group returned before every task finished");
}

#[anyio::test]
async fn children_run_concurrently_and_interleave_at_checkpoints() {
    // Each child waits, through checkpoints, for the other to have started: this completes only
    // if the children run concurrently (interleaved on one thread or in parallel).
    let a = Arc::new(AtomicBool::new(false));
    let b = Arc::new(AtomicBool::new(false));
    guarded(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for (mine, theirs) in [(a.clone(), b.clone()), (b, a)] {
                tg.spawn(async move {
                    mine.store(true, SeqCst);
                    while !theirs.load(SeqCst) {
                        checkpoint().await?;
                    }
                    Ok(())
                });
            }
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

/// How the flavour under test schedules a group's tasks.
#[derive(Debug, PartialEq, Eq)]
enum Flavour {
    /// Tasks run on several worker threads at once.
    Parallel,
    /// Every task runs on the thread that runs the test body.
    SingleThread,
    /// Tasks run on a worker pool, not on the test body's thread; the pool is shared, so the
    /// test must not block its threads to prove parallelism (async-std).
    Pool,
    /// Cannot tell.
    Unknown,
}

fn flavour() -> Flavour {
    #[cfg(feature = "tokio")]
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        return match h.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => Flavour::Parallel,
            tokio::runtime::RuntimeFlavor::CurrentThread => Flavour::SingleThread,
            _ => Flavour::Unknown,
        };
    }
    match anyio::current_backend() {
        // anyio::run_on(Backend::Smol) drives one executor on the calling thread only.
        Some("smol") => Flavour::SingleThread,
        // async-std's pool is process-global, shared with every other test running at the same
        // time, and its executor does not wake an idle thread for work queued behind a blocked
        // one: blocking its threads could stall unrelated tests, so do not try. Its tasks do
        // run on the pool, never on the thread blocked in `block_on`.
        Some("async-std") => Flavour::Pool,
        _ => Flavour::Unknown,
    }
}

/// A barrier for `n` threads that gives up after 10 s instead of deadlocking: it blocks the
/// calling thread (no await), so it only completes if the parties run on different threads.
fn blocking_rendezvous(arrived: &AtomicUsize, n: usize) -> bool {
    arrived.fetch_add(1, SeqCst);
    let give_up = Instant::now() + Duration::from_secs(10);
    while arrived.load(SeqCst) < n {
        if Instant::now() > give_up {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

#[anyio::test]
async fn children_run_in_parallel_on_multi_thread_flavours() {
    let flavour = flavour();
    let body_thread = std::thread::current().id();
    let arrived = Arc::new(AtomicUsize::new(0));
    let threads: Arc<Mutex<Vec<(ThreadId, bool)>>> = Arc::default();
    let (arr, thr) = (arrived.clone(), threads.clone());
    let parallel = flavour == Flavour::Parallel;
    guarded(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for _ in 0..2 {
                let (arr, thr) = (arr.clone(), thr.clone());
                tg.spawn(async move {
                    // Only block threads where both children can hold one at the same time;
                    // on one thread this rendezvous would deadlock the runtime.
                    let met = parallel && blocking_rendezvous(&arr, 2);
                    thr.lock().unwrap().push((std::thread::current().id(), met));
                    Ok(())
                });
            }
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    let threads = threads.lock().unwrap().clone();
    assert_eq!(threads.len(), 2, "both children must have run");
    match flavour {
        Flavour::Parallel => {
            assert!(
                threads.iter().all(|&(_, met)| met),
                "two children blocking their threads never met: they did not run in parallel"
            );
            assert_ne!(threads[0].0, threads[1].0, "parallel children must be on two threads");
        }
        Flavour::SingleThread => {
            assert!(
                threads.iter().all(|&(t, _)| t == body_thread),
                "a single-threaded flavour must run every child on the runner's thread"
            );
        }
        Flavour::Pool => {
            assert!(
                threads.iter().all(|&(t, _)| t != body_thread),
                "tasks must run on the runtime's pool, not on the thread running the test body"
            );
        }
        Flavour::Unknown => {}
    }
}

#[anyio::test]
async fn failing_child_cancels_sibling_blocked_in_sleep_forever() {
    let seen = Seen::default();
    let drops = DropCounter::new();
    let sibling_blocked = Arc::new(AtomicBool::new(false));
    let (s, token, blocked) = (seen.clone(), drops.token(), sibling_blocked.clone());
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let b = blocked.clone();
            tg.spawn(async move {
                let _token = token;
                b.store(true, SeqCst);
                let r = sleep_forever().await;
                s.record(&r);
                r?;
                Ok(())
            });
            tg.spawn(async move {
                wait_for(&blocked).await?;
                Err::<(), _>(AnyError::msg("boom"))
            });
            Ok(())
        })
        .await)
    })
    .await;
    match r {
        Err(GroupError::Failed(errors)) => {
            assert_eq!(errors.len(), 1, "the sibling's cancellation is not a failure: {errors:?}");
            assert_eq!(errors[0].to_string(), "boom");
        }
        other => panic!("expected GroupError::Failed, got {other:?}"),
    }
    assert_eq!(seen.sources(), vec![CancelSource::GroupChildFailed]);
    assert_eq!(drops.dropped(), 1, "the cancelled sibling must have finished (its future dropped)");
}

#[anyio::test]
async fn failing_body_cancels_children() {
    let seen = Seen::default();
    let drops = DropCounter::new();
    let (s, token) = (seen.clone(), drops.token());
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                let _token = token;
                let r = sleep_forever().await;
                s.record(&r);
                r?;
                Ok(())
            });
            Err::<(), _>(AnyError::msg("body failed"))
        })
        .await)
    })
    .await;
    match r {
        Err(GroupError::Failed(errors)) => {
            assert_eq!(errors.iter().map(ToString::to_string).collect::<Vec<_>>(), ["body failed"]);
        }
        other => panic!("expected GroupError::Failed, got {other:?}"),
    }
    assert_eq!(seen.sources(), vec![CancelSource::GroupChildFailed]);
    assert_eq!(drops.dropped(), 1);
}

#[anyio::test]
async fn two_failing_children_are_both_reported() {
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            for name in ["first", "second"] {
                tg.spawn(async move {
                    // Fails whether or not the sleep was cancelled by the other failure
                    // (AnyIO's `async_error`: the error is raised in a `finally`).
                    let _ = sleep(Duration::from_millis(2)).await;
                    Err::<(), _>(AnyError::msg(name))
                });
            }
            Ok(())
        })
        .await)
    })
    .await;
    match r {
        Err(GroupError::Failed(errors)) => {
            let mut names: Vec<String> = errors.iter().map(ToString::to_string).collect();
            names.sort();
            assert_eq!(names, ["first", "second"]);
        }
        other => panic!("expected GroupError::Failed with two errors, got {other:?}"),
    }
}

#[anyio::test]
async fn child_panic_is_reraised_after_siblings_were_cancelled_and_joined() {
    let cleaned = Arc::new(AtomicBool::new(false));
    let seen = Seen::default();
    let started = Arc::new(AtomicBool::new(false));
    let (c, s, st) = (cleaned.clone(), seen.clone(), started.clone());
    let caught = guarded(async move {
        Ok(AssertUnwindSafe(task_group(|tg: TaskGroup<AnyError>| async move {
            let st2 = st.clone();
            tg.spawn(async move {
                st2.store(true, SeqCst);
                let r = sleep_forever().await;
                s.record(&r);
                // Async cleanup after the cancellation, in a shielded scope: it takes a while
                // and must complete before the panic reaches the parent.
                CancelScope::shielded()
                    .run(async {
                        sleep(Duration::from_millis(20)).await?;
                        c.store(true, SeqCst);
                        Ok::<_, Cancelled>(())
                    })
                    .await?;
                r?;
                Ok(())
            });
            tg.spawn(async move {
                wait_for(&st).await?;
                explode(Boom(7))
            });
            sleep_forever().await?;
            Ok(())
        }))
        .catch_unwind()
        .await)
    })
    .await;
    let payload = match caught {
        Err(payload) => payload,
        Ok(r) => panic!("the child's panic was not re-raised; the group returned {r:?}"),
    };
    assert!(cleaned.load(SeqCst), "the panic reached the parent before the sibling's cleanup completed");
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(7)), "the panic payload changed");
    assert_eq!(seen.sources(), vec![CancelSource::GroupChildFailed]);
}

#[anyio::test]
async fn hundreds_of_tasks_finishing_on_other_threads_deliver_every_value() {
    // On a multi-thread runtime most of these finish on another thread than the spawner's,
    // whose next spawn or join frees their nodes (more than a group keeps at once; valgrind
    // in CI checks none is lost).
    let total = guarded(async {
        let out = task_group(|tg: TaskGroup<AnyError>| async move {
            let handles: Vec<_> = (0..500u64)
                .map(|i| {
                    tg.spawn(async move {
                        anyio::lowlevel::checkpoint().await?;
                        Ok(i)
                    })
                })
                .collect();
            let mut total = 0;
            for h in handles {
                total += h.await?;
            }
            Ok(total)
        })
        .await?;
        Ok(out)
    })
    .await;
    assert_eq!(total, Some((0..500).sum::<u64>()));
}

/// A task's value, which panics when dropped with `Boom(n)`.
struct PanicsOnDrop(u32);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        std::panic::panic_any(Boom(self.0));
    }
}

#[anyio::test]
async fn a_value_whose_destructor_panics_is_the_tasks_panic_and_the_group_still_joins() {
    // Nobody holds the task's handle, so its value is dropped when the task finishes.
    let caught = guarded(async move {
        Ok(AssertUnwindSafe(task_group(|tg: TaskGroup<AnyError>| async move {
            drop(tg.spawn(async { Ok(PanicsOnDrop(9)) }));
            Ok(())
        }))
        .catch_unwind()
        .await)
    })
    .await;
    let payload = caught.expect_err("the destructor's panic was not re-raised");
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(9)), "the panic payload changed");
}

#[anyio::test]
async fn body_panic_is_reraised_after_children_were_cancelled_and_joined() {
    let drops = DropCounter::new();
    let seen = Seen::default();
    let (token, s) = (drops.token(), seen.clone());
    let caught = guarded(async move {
        Ok(AssertUnwindSafe(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                let _token = token;
                let r = sleep_forever().await;
                s.record(&r);
                r?;
                Ok(())
            });
            checkpoint().await?;
            explode(Boom(11))
        }))
        .catch_unwind()
        .await)
    })
    .await;
    let payload = caught.expect_err("the body's panic was not re-raised");
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(11)));
    assert_eq!(drops.dropped(), 1, "the child must have finished before the panic was re-raised");
    assert_eq!(seen.sources(), vec![CancelSource::GroupChildFailed]);
}

#[anyio::test]
async fn tg_cancel_with_body_returning_the_cancellation_gives_ok_none() {
    let seen = Seen::default();
    let s = seen.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                let r = sleep_forever().await;
                s.record(&r);
                r?;
                Ok(())
            });
            checkpoint().await?;
            tg.cancel();
            assert!(tg.cancel_scope().cancel_called());
            sleep_forever().await?;
            Ok("unreachable")
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(None)), "expected Ok(None), got {r:?}");
    assert_eq!(seen.sources(), vec![CancelSource::Explicit]);
}

#[anyio::test]
async fn tg_cancel_with_body_returning_ok_gives_ok_some() {
    let seen = Seen::default();
    let s = seen.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                let r = sleep_forever().await;
                s.record(&r);
                r?;
                Ok(())
            });
            tg.cancel();
            Ok(5)
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some(5))), "expected Ok(Some(5)), got {r:?}");
    assert_eq!(seen.sources(), vec![CancelSource::Explicit]);
}

#[anyio::test]
async fn outer_scope_cancellation_comes_out_as_group_cancelled_and_the_outer_scope_catches_it() {
    let seen = Seen::default();
    let s = seen.clone();
    let outer = CancelScope::new();
    let o = outer.clone();
    let r = guarded(async move {
        Ok(outer
            .run(async move {
                let r = task_group(|tg: TaskGroup<AnyError>| async move {
                    tg.spawn(async move {
                        let r = sleep_forever().await;
                        s.record(&r);
                        r?;
                        Ok(())
                    });
                    checkpoint().await?;
                    o.cancel();
                    sleep_forever().await?;
                    Ok(())
                })
                .await;
                assert!(
                    matches!(r, Err(GroupError::Cancelled(_))),
                    "expected GroupError::Cancelled, got {r:?}"
                );
                r
            })
            .await)
    })
    .await;
    assert!(matches!(r, Ok(None)), "the outer scope must catch the group's cancellation, got {r:?}");
    assert_eq!(seen.sources(), vec![CancelSource::Explicit]);
}

#[anyio::test]
async fn move_on_after_around_a_group_gives_ok_none() {
    let drops = DropCounter::new();
    let token = drops.token();
    let r = guarded(async move {
        Ok(move_on_after(Duration::from_millis(10), async move {
            task_group(|tg: TaskGroup<AnyError>| async move {
                tg.spawn(async move {
                    let _token = token;
                    sleep_forever().await?;
                    Ok(())
                });
                sleep_forever().await?;
                Ok(())
            })
            .await
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(None)), "expected Ok(None), got {r:?}");
    assert_eq!(drops.dropped(), 1);
}

#[anyio::test]
async fn childrens_cancellation_errors_are_never_failures() {
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            // Cancellation propagated as-is (converted into the group's error type) ...
            tg.spawn(async {
                sleep_forever().await?;
                Ok(())
            });
            // ... after catching and re-raising it by hand ...
            tg.spawn(async {
                match sleep_forever().await {
                    Err(c) => Err::<(), _>(AnyError::from(c)),
                    Ok(never) => match never {},
                }
            });
            // ... and from a task cancelled through its own handle.
            let h = tg.spawn(async {
                sleep_forever().await?;
                Ok(())
            });
            h.cancel();
            checkpoint().await?;
            tg.cancel();
            Ok("no failures")
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some("no failures"))), "expected Ok(Some(..)), got {r:?}");
}

#[anyio::test]
async fn child_spawned_into_cancelled_group_still_starts() {
    let ran = Arc::new(AtomicBool::new(false));
    let seen = Seen::default();
    let (ran2, s) = (ran.clone(), seen.clone());
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.cancel();
            tg.spawn(async move {
                // Code before the first checkpoint runs even though the group is cancelled.
                ran2.store(true, SeqCst);
                let r = checkpoint().await;
                s.record(&r);
                r?;
                Ok(())
            });
            Ok(())
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some(()))), "got {r:?}");
    assert!(ran.load(SeqCst), "a task spawned into a cancelled group must still start");
    assert_eq!(seen.sources(), vec![CancelSource::Explicit], "its first checkpoint must fail");
}

/// What awaiting a task's handle gave, and the handle's state afterwards.
type JoinedAs = (Result<(), JoinError>, TaskState);

#[anyio::test]
async fn spawning_into_a_closed_group_is_refused() {
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
    match tg.try_spawn(async move {
        r2.store(true, SeqCst);
        Ok(1)
    }) {
        Err(GroupClosed(fut)) => {
            // The future comes back unpolled; it is still usable.
            assert!(!ran.load(SeqCst));
            assert_eq!(fut.await.unwrap(), 1);
        }
        Ok(_) => panic!("try_spawn into a closed group must fail"),
    }

    let payload = std::panic::catch_unwind(AssertUnwindSafe(|| {
        tg.spawn(async { Ok(()) });
    }))
    .expect_err("spawn into a closed group must panic");
    let msg = support::panic_message(&*payload);
    assert!(msg.contains("closed"), "the panic message should say the group is closed: {msg}");
}

#[anyio::test]
async fn a_group_that_failed_is_closed_too() {
    let leaked: Arc<Mutex<Option<TaskGroup<AnyError>>>> = Arc::default();
    let l = leaked.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            *l.lock().unwrap() = Some(tg.clone());
            tg.spawn(async { Err::<(), _>(AnyError::msg("boom")) });
            Ok(())
        })
        .await)
    })
    .await;
    assert!(matches!(r, Err(GroupError::Failed(_))));
    let tg = leaked.lock().unwrap().take().unwrap();
    assert!(tg.try_spawn(async { Ok(()) }).is_err());
}

#[anyio::test]
async fn empty_group_contains_a_yield_point() {
    let mut group = std::pin::pin!(task_group(|_tg: TaskGroup<AnyError>| async { Ok(3) }));
    // The body has no await at all, yet the group's exit yields once to the scheduler.
    assert!(futures::poll!(group.as_mut()).is_pending(), "an empty group must yield at least once");
    let r = guarded(async move { Ok(group.await) }).await;
    assert!(matches!(r, Ok(Some(3))));
}

/// A group with one child, both sleeping until cancelled; records what the child saw and how
/// the group ended (`Err(true)` = `GroupError::Cancelled`).
async fn sleeping_nested_group(seen: Seen, results: Arc<Mutex<Vec<String>>>) -> Result<(), AnyError> {
    let r = task_group(|inner: TaskGroup<AnyError>| async move {
        inner.spawn(async move {
            let r = sleep_forever().await;
            seen.record(&r);
            r?;
            Ok(())
        });
        sleep_forever().await?;
        Ok(())
    })
    .await;
    results
        .lock()
        .unwrap()
        .push(format!("{:?}", r.as_ref().map_err(|e| matches!(e, GroupError::Cancelled(_)))));
    r?;
    Ok(())
}

#[anyio::test]
async fn nested_groups_inside_a_cancelled_group_are_cancelled() {
    let seen = Seen::default();
    let (s1, s2) = (seen.clone(), seen.clone());
    let inner_results: Arc<Mutex<Vec<String>>> = Arc::default();
    let (ir1, ir2) = (inner_results.clone(), inner_results.clone());
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            // A nested group in a child task ...
            tg.spawn(sleeping_nested_group(s1, ir1));
            checkpoint().await?;
            tg.cancel();
            // ... and one in the body, entered after the cancellation.
            sleeping_nested_group(s2, ir2).await
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(None)), "the outer group catches its own cancellation, got {r:?}");
    // Both nested groups reported the outer cancellation as GroupError::Cancelled.
    assert_eq!(*inner_results.lock().unwrap(), ["Err(true)", "Err(true)"]);
    assert_eq!(seen.sources(), vec![CancelSource::Explicit, CancelSource::Explicit]);
}

#[anyio::test]
async fn group_wait_survives_outer_cancel_until_children_exit() {
    let cleaned = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let outer = CancelScope::new();
    let (c, st, o) = (cleaned.clone(), started.clone(), outer.clone());
    let (r, cleaned_when_group_returned) = guarded(async move {
        let r = outer
            .run(async move {
                let c_after = c.clone();
                let r = task_group(|tg: TaskGroup<AnyError>| async move {
                    let (st2, c2) = (st.clone(), c.clone());
                    tg.spawn(async move {
                        st2.store(true, SeqCst);
                        let r = sleep_forever().await;
                        // Cleanup that takes a few milliseconds and must not be cut short.
                        CancelScope::shielded()
                            .run(async {
                                sleep(Duration::from_millis(20)).await?;
                                c2.store(true, SeqCst);
                                Ok::<_, Cancelled>(())
                            })
                            .await?;
                        r?;
                        Ok(())
                    });
                    wait_for(&st).await?;
                    o.cancel();
                    sleep_forever().await?;
                    Ok(())
                })
                .await;
                Ok::<_, GroupError<AnyError>>((r, c_after.load(SeqCst)))
            })
            .await;
        Ok(r.expect("the body returns Ok").expect("the body returns Ok even though cancelled"))
    })
    .await;
    assert!(matches!(r, Err(GroupError::Cancelled(_))), "got {r:?}");
    assert!(cleaned_when_group_returned, "the group returned before its child's shielded cleanup finished");
}

#[anyio::test]
async fn task_handle_yields_the_tasks_value() {
    guarded(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            let mut h = tg.spawn(async {
                sleep(Duration::from_millis(1)).await?;
                Ok(7)
            });
            assert_eq!((&mut h).await, Ok(7));
            assert_eq!(h.state(), TaskState::Finished);
            assert!(h.is_finished());
            assert_eq!((&mut h).await, Err(JoinError::AlreadyJoined));
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn task_handle_reports_failure_and_the_group_still_gets_the_error() {
    let join: Arc<Mutex<Option<JoinedAs>>> = Arc::default();
    let j = join.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let mut h = tg.spawn(async {
                checkpoint().await?;
                Err::<(), _>(AnyError::msg("task failed"))
            });
            // Await in a shielded scope: the failure cancels the body's scope (the group's), and
            // an await in a cancelled scope may legitimately end with JoinError::Cancelled first.
            let out = CancelScope::shielded().run(async { Ok::<_, Cancelled>((&mut h).await) }).await;
            *j.lock().unwrap() = Some((out.unwrap().unwrap(), h.state()));
            Ok(())
        })
        .await)
    })
    .await;
    let (out, state) = join.lock().unwrap().take().unwrap();
    assert_eq!(out, Err(JoinError::Failed));
    assert_eq!(state, TaskState::Failed);
    match r {
        Err(GroupError::Failed(errors)) => {
            assert_eq!(errors.iter().map(ToString::to_string).collect::<Vec<_>>(), ["task failed"]);
        }
        other => panic!("a handle must never swallow the task's error; the group returned {other:?}"),
    }
}

#[anyio::test]
async fn task_handle_reports_panic_and_the_group_reraises_it() {
    let join: Arc<Mutex<Option<JoinedAs>>> = Arc::default();
    let j = join.clone();
    let caught = guarded(async move {
        Ok(AssertUnwindSafe(task_group(|tg: TaskGroup<AnyError>| async move {
            let mut h = tg.spawn(async {
                checkpoint().await?;
                explode(Boom(3))
            });
            let out = CancelScope::shielded().run(async { Ok::<_, Cancelled>((&mut h).await) }).await;
            *j.lock().unwrap() = Some((out.unwrap().unwrap(), h.state()));
            Ok(())
        }))
        .catch_unwind()
        .await)
    })
    .await;
    let (out, state) = join.lock().unwrap().take().unwrap();
    assert_eq!(out, Err(JoinError::Panicked));
    assert_eq!(state, TaskState::Panicked);
    let payload = caught.expect_err("the group must re-raise the task's panic");
    assert_eq!(payload.downcast_ref::<Boom>(), Some(&Boom(3)));
}

#[anyio::test]
async fn task_handle_cancel_cancels_only_that_task() {
    let seen = Seen::default();
    let s = seen.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let mut victim = tg.spawn(async move {
                let r = sleep_forever().await;
                s.record(&r);
                r?;
                Ok(())
            });
            let bystander = tg.spawn(async {
                sleep(Duration::from_millis(5)).await?;
                Ok("bystander done")
            });
            assert_eq!(victim.state(), TaskState::Running);
            victim.cancel();
            assert_eq!((&mut victim).await, Err(JoinError::TaskCancelled));
            assert_eq!(victim.state(), TaskState::Cancelled);
            assert_eq!(bystander.await, Ok("bystander done"));
            assert!(!tg.cancel_scope().cancel_called(), "cancelling one task must not cancel the group");
            // Cancelling a finished task has no effect.
            victim.cancel();
            assert_eq!(victim.state(), TaskState::Cancelled);
            Ok("group ok")
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some("group ok"))), "a cancelled handle must not fail the group: {r:?}");
    assert_eq!(seen.sources(), vec![CancelSource::Explicit]);
}

#[anyio::test]
async fn task_handle_state_tracks_the_task() {
    let release = Arc::new(AtomicBool::new(false));
    let rel = release.clone();
    guarded(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            let r2 = rel.clone();
            let mut h = tg.spawn(async move {
                wait_for(&r2).await?;
                Ok(())
            });
            // The task cannot finish before it is released.
            sleep(Duration::from_millis(2)).await?;
            assert_eq!(h.state(), TaskState::Running);
            assert!(!h.is_finished());
            rel.store(true, SeqCst);
            (&mut h).await.unwrap();
            assert_eq!(h.state(), TaskState::Finished);
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn awaiting_a_handle_in_a_cancelled_scope_returns_cancelled_and_the_handle_stays_usable() {
    guarded(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            let release = Arc::new(AtomicBool::new(false));
            let rel = release.clone();
            let mut h = tg.spawn(async move {
                wait_for(&rel).await?;
                Ok(9)
            });
            let scope = CancelScope::new();
            scope.cancel();
            let out = scope.run(async { Ok::<_, Cancelled>((&mut h).await) }).await;
            match out {
                Ok(Some(Err(JoinError::Cancelled(c)))) => assert_eq!(c.source_kind(), CancelSource::Explicit),
                other => panic!("expected JoinError::Cancelled, got {other:?}"),
            }
            assert_eq!(h.state(), TaskState::Running, "the task keeps running");
            release.store(true, SeqCst);
            assert_eq!((&mut h).await, Ok(9));
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn dropping_the_group_future_cancels_its_children() {
    let seen = Seen::default();
    let drops = DropCounter::new();
    let finished = Arc::new(AtomicBool::new(false));
    let (s, token, fin) = (seen.clone(), drops.token(), finished.clone());
    let mut group = Box::pin(task_group(|tg: TaskGroup<AnyError>| async move {
        tg.spawn(async move {
            let _token = token;
            let r = sleep_forever().await;
            s.record(&r);
            fin.store(true, SeqCst);
            r?;
            Ok(())
        });
        sleep_forever().await?;
        Ok(())
    }));
    // One poll runs the body up to its sleep: the child is spawned.
    assert!(futures::poll!(group.as_mut()).is_pending());
    drop(group);
    guarded(async {
        wait_for(&finished).await?;
        while drops.dropped() == 0 {
            sleep(Duration::from_millis(1)).await?;
        }
        Ok(())
    })
    .await;
    assert_eq!(seen.sources(), vec![CancelSource::ScopeDropped]);
    assert_eq!(drops.dropped(), 1);
}

#[anyio::test]
async fn a_group_that_lost_a_select_cancels_its_children() {
    let seen = Seen::default();
    let child_started = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (s, cs, fin) = (seen.clone(), child_started.clone(), finished.clone());
    let group = Box::pin(task_group(|tg: TaskGroup<AnyError>| async move {
        tg.spawn(async move {
            cs.store(true, SeqCst);
            let r = sleep_forever().await;
            s.record(&r);
            fin.store(true, SeqCst);
            r?;
            Ok(())
        });
        sleep_forever().await?;
        Ok(())
    }));
    let winner = Box::pin(async { wait_for(&child_started).await });
    guarded(async {
        match futures::future::select(group, winner).await {
            futures::future::Either::Right((r, group)) => {
                r?;
                drop(group);
            }
            futures::future::Either::Left((r, _)) => panic!("the group cannot finish first: {r:?}"),
        }
        wait_for(&finished).await?;
        Ok(())
    })
    .await;
    assert_eq!(seen.sources(), vec![CancelSource::ScopeDropped]);
}

#[anyio::test]
async fn group_scope_deadline_cancels_the_body_and_children() {
    let seen = Seen::default();
    let s = seen.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                let r = sleep_forever().await;
                s.record(&r);
                r?;
                Ok(())
            });
            tg.cancel_scope().set_deadline(Some(anyio::time::current_time() + Duration::from_millis(10)));
            sleep_forever().await?;
            Ok(())
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(None)), "the group catches its own deadline: {r:?}");
    assert_eq!(seen.sources(), vec![CancelSource::Deadline]);
}

#[anyio::test]
async fn group_scope_deadline_still_applies_while_waiting_for_children() {
    // The body returns at once; the deadline it set must still cancel the children that the
    // group is waiting for (trio/AnyIO: the group's scope covers its exit too).
    let seen = Seen::default();
    let group_scope: Arc<Mutex<Option<CancelScope>>> = Arc::default();
    let gs = group_scope.clone();
    let s = seen.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                let r = sleep_forever().await;
                s.record(&r);
                r?;
                Ok(())
            });
            tg.cancel_scope().set_deadline(Some(anyio::time::current_time() + Duration::from_millis(10)));
            *gs.lock().unwrap() = Some(tg.cancel_scope());
            Ok("body returned")
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some("body returned"))), "got {r:?}");
    assert_eq!(seen.sources(), vec![CancelSource::Deadline]);
    assert!(
        group_scope.lock().unwrap().as_ref().unwrap().cancel_called(),
        "the group's own deadline must fire"
    );
}

#[anyio::test]
async fn group_scope_deadline_set_by_a_child_after_the_body_returned_applies() {
    let seen = Seen::default();
    let group_scope: Arc<Mutex<Option<CancelScope>>> = Arc::default();
    let gs = group_scope.clone();
    let s = seen.clone();
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let scope = tg.cancel_scope();
            *gs.lock().unwrap() = Some(scope.clone());
            tg.spawn(async move {
                sleep(Duration::from_millis(2)).await?;
                scope.set_deadline(Some(anyio::time::current_time() + Duration::from_millis(5)));
                let r = sleep_forever().await;
                s.record(&r);
                r?;
                Ok(())
            });
            Ok("body returned")
        })
        .await)
    })
    .await;
    assert!(matches!(r, Ok(Some("body returned"))), "got {r:?}");
    assert_eq!(seen.sources(), vec![CancelSource::Deadline]);
    assert!(
        group_scope.lock().unwrap().as_ref().unwrap().cancel_called(),
        "the group's own deadline must fire"
    );
}

#[anyio::test]
async fn children_are_cancelled_when_the_body_sits_in_a_shielded_scope() {
    // AnyIO's test_cancel_child_task_when_host_is_shielded: the group's parent is cancelled
    // while the body waits in a shielded scope; the children are not shielded by it.
    let seen = Seen::default();
    let child_done = Arc::new(AtomicBool::new(false));
    let (s, cd) = (seen.clone(), child_done.clone());
    let outer = CancelScope::new();
    let o = outer.clone();
    let r = guarded(async move {
        Ok(outer
            .run(async move {
                task_group(|tg: TaskGroup<AnyError>| async move {
                    let cd2 = cd.clone();
                    tg.spawn(async move {
                        let r = sleep_forever().await;
                        s.record(&r);
                        cd2.store(true, SeqCst);
                        r?;
                        Ok(())
                    });
                    CancelScope::shielded()
                        .run(async {
                            checkpoint().await?;
                            o.cancel();
                            wait_for(&cd).await
                        })
                        .await?;
                    Ok(())
                })
                .await
            })
            .await)
    })
    .await;
    assert!(matches!(r, Ok(Some(Some(())))), "got {r:?}");
    assert_eq!(seen.sources(), vec![CancelSource::Explicit]);
}

#[anyio::test]
async fn task_handle_can_be_awaited_after_the_group_finished() {
    let r = guarded(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            Ok(tg.spawn(async {
                sleep(Duration::from_millis(1)).await?;
                Ok(String::from("kept"))
            }))
        })
        .await)
    })
    .await;
    let mut h = r.unwrap().unwrap();
    assert_eq!(h.state(), TaskState::Finished, "the group waited for the task");
    assert_eq!(guarded(async { Ok((&mut h).await) }).await.as_deref(), Ok("kept"));
}

#[anyio::test]
async fn awaiting_a_cancelled_siblings_handle_after_tg_cancel_is_a_cancellation_not_a_failure() {
    let r = task_group(|tg: TaskGroup<AnyError>| async move {
        let h = tg.spawn(async {
            sleep_forever().await?;
            Ok::<(), AnyError>(())
        });
        tg.cancel();
        CancelScope::shielded()
            .run(async {
                while !h.is_finished() {
                    sleep(Duration::from_millis(1)).await?;
                }
                Ok::<_, AnyError>(())
            })
            .await?;
        h.await?; // the body's own scope is cancelled: this is its cancellation
        Ok::<_, AnyError>(())
    })
    .await;
    assert!(matches!(r, Ok(None)), "tg.cancel() must end the group normally, got {r:?}");
}

#[anyio::test]
async fn dropping_a_handle_drops_the_value_its_task_returns_even_a_scope_of_its_own() {
    let counter = DropCounter::new();
    let token = counter.token();
    task_group(|tg: TaskGroup<AnyError>| async move {
        let h = tg.spawn(async move {
            // The returned scope's node is a child of this task's node: kept in the task's
            // result, it would form a reference cycle with it.
            let s = CancelScope::new();
            s.clone().run(async { Ok::<_, AnyError>(()) }).await?;
            sleep(Duration::from_millis(2)).await?;
            Ok::<_, AnyError>((s, token))
        });
        drop(h);
        Ok::<_, AnyError>(())
    })
    .await
    .unwrap();
    assert_eq!(counter.dropped(), 1, "the task's value was dropped, not leaked");
}

#[anyio::test]
async fn a_panic_in_the_body_closure_itself_still_cancels_and_joins_the_tasks() {
    let joined = Arc::new(AtomicBool::new(false));
    let j = joined.clone();
    let caught = AssertUnwindSafe(task_group(move |tg: TaskGroup<AnyError>| {
        tg.spawn(async move {
            let r = sleep_forever().await;
            j.store(true, SeqCst);
            r?;
            Ok(())
        });
        if true {
            panic!("panic in the body closure");
        }
        async { Ok::<_, AnyError>(()) }
    }))
    .catch_unwind()
    .await;
    assert!(caught.is_err(), "the panic reaches the caller");
    assert!(joined.load(SeqCst), "the task was cancelled and joined before the panic surfaced");
}

#[anyio::test]
async fn start_soon_runs_a_loop_bodied_task_without_a_type_annotation() {
    // The proof is partly that this compiles: the task's body is a `loop` left only by `?`,
    // and nothing names its value type.
    let (tx, rx) = anyio::streams::memory::create_memory_object_stream::<u32>(4);
    let sum = Arc::new(AtomicUsize::new(0));
    let seen = sum.clone();
    let r = guarded(async move {
        Ok(task_group(|tg| async move {
            let mut h = tg.start_soon(async move {
                loop {
                    let n = rx.receive().await?;
                    seen.fetch_add(n as usize, SeqCst);
                }
            });
            for n in 1..=4 {
                tx.send(n).await?;
            }
            while sum.load(SeqCst) != 10 {
                sleep(Duration::from_millis(1)).await?;
            }
            assert_eq!(h.state(), TaskState::Running, "the loop is still receiving");
            h.cancel();
            assert_eq!((&mut h).await, Err(JoinError::TaskCancelled));
            Ok(h.state())
        })
        .await)
    })
    .await;
    assert_eq!(r.ok().flatten(), Some(TaskState::Cancelled), "a cancelled task is not a failure");
}

#[anyio::test]
async fn running_tasks_is_refused_while_task_tracking_is_off() {
    // Nothing in this test binary turns tracking on (tests/task_introspection.rs does).
    let e = anyio::task::running_tasks().unwrap_err();
    assert!(e.to_string().contains("track_tasks(true)"), "{e}");
}
