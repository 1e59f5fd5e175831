//! Sharp edges of cancellation on drop-based futures (docs: cancellation-model table, rows 1, 2, 5, 7, 11, 12, 16): lost wake-ups across threads, combinators inside a scope, committed values beating a cancel, body values never discarded, foreign futures, dropped scope futures and panics.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use anyio::{
    cancel::{cancellable, current_effective_deadline, CancellableExt},
    error::CancelSource,
    fail_after,
    lowlevel::{cancel_shielded_checkpoint, checkpoint, checkpoint_if_cancelled},
    move_on_after, sleep, task_group,
    time::sleep_forever,
    AnyError, CancelScope, Cancelled,
};
use anyio_suite::{DropCounter, DropToken};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

mod support;
use support::{guarded, NEVER, SHORT};

/// A hand-driven foreign future: pending until `complete` is called.
#[derive(Clone, Default)]
struct Manual(Arc<Mutex<(Option<u32>, Option<Waker>)>>);

impl Manual {
    fn complete(&self, v: u32) {
        let waker = {
            let mut slot = self.0.lock().unwrap();
            slot.0 = Some(v);
            slot.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Future for Manual {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let mut slot = self.0.lock().unwrap();
        match slot.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row 1: lost wake-up race
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn cancel_from_another_thread_never_loses_the_wake_up() {
    const ITERATIONS: usize = 2_000;
    // A wall-clock budget well inside the hang guard: on a heavily loaded machine the test does
    // fewer iterations instead of getting near the guard. Each iteration must still finish.
    const BUDGET: Duration = Duration::from_secs(2);
    let start = std::time::Instant::now();
    let done = guarded(async {
        let mut done = 0;
        for i in 0..ITERATIONS {
            if start.elapsed() > BUDGET {
                break;
            }
            let iteration_start = std::time::Instant::now();
            let outer = CancelScope::new();
            let inner = CancelScope::new();
            // Alternate: cancel the scope the task blocks in, or an ancestor of it; block in
            // a library sleep or in a guarded foreign future.
            let target = if i % 2 == 0 { inner.clone() } else { outer.clone() };
            let blocking = Arc::new(AtomicBool::new(false));
            let b = blocking.clone();
            let spins = i % 64;
            let t = std::thread::spawn(move || {
                // Spin (to land the cancel right around the registration), but yield if the
                // task is slow to get there: a pure spin starves the runtime on a loaded machine.
                let mut waited = 0u32;
                while !b.load(Ordering::Acquire) {
                    waited = waited.saturating_add(1);
                    if waited > 20_000 {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                // Land the cancel at varying points around the waker registration.
                for _ in 0..spins {
                    std::hint::spin_loop();
                }
                target.cancel();
            });
            let inner2 = inner.clone();
            let out = outer
                .run(async move {
                    inner2
                        .run(async move {
                            blocking.store(true, Ordering::Release);
                            if i % 4 < 2 {
                                sleep_forever().await?;
                            } else {
                                std::future::pending::<()>().cancellable().await?;
                            }
                            Ok::<(), Cancelled>(())
                        })
                        .await
                })
                .await;
            t.join().unwrap();
            // An iteration takes microseconds. One that lasts seconds lost the cancel's wake-up
            // and was only rescued when the hang guard's timer woke the task.
            let took = iteration_start.elapsed();
            assert!(took < Duration::from_secs(5), "iteration {i}: wake-up lost, the task slept {took:?}");
            if i % 2 == 0 {
                assert_eq!(out, Ok(Some(None)), "iteration {i}: the inner scope catches");
                assert!(inner.cancelled_caught());
            } else {
                assert_eq!(out, Ok(None), "iteration {i}: the outer scope catches");
                assert!(outer.cancelled_caught());
                assert!(!inner.cancelled_caught());
            }
            done += 1;
        }
        done
    })
    .await;
    assert!(done >= 100, "only {done} iterations ran within {BUDGET:?}");
}

// ---------------------------------------------------------------------------------------------
// Row 2: combinators inside a scope
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn join_all_of_a_hundred_sleepers_all_see_the_cancellation() {
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let started = AtomicUsize::new(0);
        let sleepers = (0..100).map(|_| async {
            started.fetch_add(1, Ordering::SeqCst);
            sleep_forever().await
        });
        let (results, ()) = futures::join!(futures::future::join_all(sleepers), async {
            cancel_shielded_checkpoint().await;
            assert_eq!(started.load(Ordering::SeqCst), 100, "all sleepers blocked before the cancel");
            s.cancel();
        });
        assert_eq!(results.len(), 100);
        for r in &results {
            let e = r.as_ref().expect_err("sleep_forever only returns Err");
            assert_eq!(e.source_kind(), CancelSource::Explicit);
        }
        Err::<(), _>(results.into_iter().next().unwrap().unwrap_err())
    }))
    .await;
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn futures_unordered_of_a_hundred_sleepers_cancelled_from_another_thread() {
    let scope = CancelScope::new();
    let s = scope.clone();
    let started = Arc::new(AtomicUsize::new(0));
    let st = started.clone();
    let t = std::thread::spawn(move || {
        while st.load(Ordering::SeqCst) < 100 {
            std::thread::yield_now();
        }
        s.cancel();
    });
    let r = guarded(scope.run(async move {
        let mut set: FuturesUnordered<_> = (0..100)
            .map(|_| {
                let started = started.clone();
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    sleep_forever().await
                }
            })
            .collect();
        let mut errors = 0;
        while let Some(r) = set.next().await {
            let e = r.expect_err("sleep_forever only returns Err");
            assert_eq!(e.source_kind(), CancelSource::Explicit);
            errors += 1;
        }
        assert_eq!(errors, 100);
        checkpoint().await?;
        Ok::<_, Cancelled>("unreachable")
    }))
    .await;
    t.join().unwrap();
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn futures_unordered_of_sleepers_all_see_a_deadline() {
    let r = guarded(move_on_after(SHORT, async {
        let mut set: FuturesUnordered<_> = (0..100).map(|_| sleep(NEVER)).collect();
        let mut errors = Vec::new();
        while let Some(r) = set.next().await {
            errors.push(r.expect_err("the deadline cancels every sleeper"));
        }
        assert_eq!(errors.len(), 100);
        assert!(errors.iter().all(|e| e.source_kind() == CancelSource::Deadline));
        Err::<(), _>(errors.pop().unwrap())
    }))
    .await;
    assert_eq!(r, Ok(None));
}

// ---------------------------------------------------------------------------------------------
// Row 5: a committed value wins over a cancel that lands in the same poll
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn cancellable_returns_a_value_that_became_ready_together_with_the_cancel() {
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let manual = Manual::default();
        let mut fut = pin!(cancellable(manual.clone()));
        assert!(futures::poll!(fut.as_mut()).is_pending());
        // Both happen before the next poll: the value is committed, so it is returned.
        manual.complete(42);
        s.cancel();
        assert_eq!(fut.await, Ok(42));
        // The cancellation is not lost: the next checkpoint fails.
        checkpoint().await?;
        Ok::<_, Cancelled>("unreachable")
    }))
    .await;
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn cancellable_oneshot_sent_before_the_cancel_returns_the_value() {
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        let mut fut = pin!(rx.cancellable());
        assert!(futures::poll!(fut.as_mut()).is_pending());
        tx.send(7).unwrap();
        s.cancel();
        assert_eq!(fut.await, Ok(Ok(7)));
        let e = checkpoint().await.unwrap_err();
        Err::<(), _>(e)
    }))
    .await;
    assert_eq!(r, Ok(None));
}

// ---------------------------------------------------------------------------------------------
// Row 7: move_on_after never discards a value the body produced
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn body_finishing_in_a_shield_after_the_deadline_keeps_its_value() {
    let scope = CancelScope::with_timeout(SHORT);
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let v = CancelScope::shielded()
            .run(async move {
                // Work on inside the shield until the outer deadline has certainly fired.
                while !s.cancel_called() {
                    sleep(Duration::from_millis(1)).await?;
                }
                Ok::<_, Cancelled>(42)
            })
            .await?
            .expect("the shielded scope was not cancelled");
        Ok::<_, Cancelled>(v)
    }))
    .await;
    assert_eq!(r, Ok(Some(42)));
    assert!(scope.cancel_called());
    assert!(!scope.cancelled_caught());
}

#[anyio::test]
async fn fail_after_body_finishing_in_a_shield_after_the_deadline_is_not_a_timeout() {
    let r: Result<u32, AnyError> = guarded(fail_after(SHORT, async {
        let deadline = current_effective_deadline().expect("fail_after sets a deadline");
        let v = CancelScope::shielded()
            .run(async move {
                // Outlive the deadline inside the shield, then return a value.
                anyio::time::sleep_until(deadline).await?;
                sleep(SHORT).await?;
                Ok::<_, Cancelled>(42)
            })
            .await?
            .expect("the shielded scope was not cancelled");
        Ok(v)
    }))
    .await;
    assert_eq!(r.unwrap(), 42);
}

// ---------------------------------------------------------------------------------------------
// Row 11: foreign futures
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn cancellable_pending_returns_err_when_the_scope_is_cancelled() {
    // Cancelled from the same task while it waits.
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded(scope.run(async move {
        let (res, ()) = futures::join!(cancellable(std::future::pending::<()>()), async move {
            cancel_shielded_checkpoint().await;
            s.cancel_with_reason("stop");
        });
        let e = res.unwrap_err();
        assert_eq!(e.reason(), Some("stop"));
        Err::<(), _>(e)
    }))
    .await;
    assert_eq!(r, Ok(None));

    // Cancelled by a deadline.
    let r = guarded(move_on_after(SHORT, cancellable(std::future::pending::<()>()))).await;
    assert_eq!(r, Ok(None));

    // Cancelled from another OS thread.
    let scope = CancelScope::new();
    let s = scope.clone();
    let t = std::thread::spawn(move || s.cancel());
    let r = guarded(scope.run(cancellable(std::future::pending::<()>()))).await;
    t.join().unwrap();
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn cancellable_drops_the_foreign_future_at_the_cancel() {
    let counter = DropCounter::new();
    let token = counter.token();
    let scope = CancelScope::new();
    let s = scope.clone();
    let c = counter.clone();
    let r = guarded(scope.run(async move {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let foreign = async move {
            let _token: DropToken = token;
            let _ = rx.await;
        };
        let (res, ()) = futures::join!(foreign.cancellable(), async move {
            cancel_shielded_checkpoint().await;
            s.cancel();
        });
        assert!(res.is_err());
        // Dropped at the cancel, not at the scope's exit.
        assert_eq!(c.dropped(), 1);
        assert!(tx.is_canceled(), "the receiver was dropped with the foreign future");
        Err::<(), _>(res.unwrap_err())
    }))
    .await;
    assert_eq!(r, Ok(None));
    assert_eq!(counter.dropped(), 1);
}

#[anyio::test]
async fn cancellable_in_a_cancelled_scope_never_polls_the_inner_future() {
    let polled = Arc::new(AtomicUsize::new(0));
    let p = polled.clone();
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async move {
            let foreign = std::future::poll_fn(move |_| {
                p.fetch_add(1, Ordering::SeqCst);
                Poll::Ready(5)
            });
            let e = cancellable(foreign).await.unwrap_err();
            assert_eq!(e.source_kind(), CancelSource::Explicit);
            Err::<(), _>(e)
        })
        .await;
    assert_eq!(r, Ok(None));
    assert_eq!(polled.load(Ordering::SeqCst), 0, "foreign work was started in a cancelled scope");
}

// ---------------------------------------------------------------------------------------------
// Row 12: the scope future dropped from outside
// ---------------------------------------------------------------------------------------------

/// Records, when dropped, whether the code dropping it runs in a cancelled scope.
struct ObservesScopeOnDrop {
    _token: DropToken,
    seen: Arc<Mutex<Option<Option<CancelSource>>>>,
}

impl Drop for ObservesScopeOnDrop {
    fn drop(&mut self) {
        let state = checkpoint_if_cancelled().err().map(|e| e.source_kind());
        *self.seen.lock().unwrap() = Some(state);
    }
}

type Seen = Arc<Mutex<Option<Option<CancelSource>>>>;

/// A scope body that holds an `ObservesScopeOnDrop` and blocks in a nested scope whose handle
/// it leaks through `inner_out`.
fn droppable_body(
    counter: &DropCounter,
    seen: &Seen,
    inner_out: &Arc<Mutex<Option<CancelScope>>>,
) -> impl Future<Output = Result<(), Cancelled>> + Send + 'static {
    let guard = ObservesScopeOnDrop { _token: counter.token(), seen: seen.clone() };
    let inner_out = inner_out.clone();
    async move {
        let _guard = guard;
        let inner = CancelScope::new();
        *inner_out.lock().unwrap() = Some(inner.clone());
        inner
            .run(async {
                sleep_forever().await?;
                Ok::<(), Cancelled>(())
            })
            .await?;
        Ok(())
    }
}

#[anyio::test]
async fn scope_future_dropped_after_one_poll_drops_its_body_inside_the_cancelled_scope() {
    let counter = DropCounter::new();
    let seen: Seen = Arc::default();
    let inner_out = Arc::default();
    let scope = CancelScope::new();
    let leaked = scope.clone();
    {
        let mut fut = Box::pin(scope.run(droppable_body(&counter, &seen, &inner_out)));
        assert!(futures::poll!(fut.as_mut()).is_pending());
        assert_eq!(counter.dropped(), 0);
        drop(fut);
    }
    assert_eq!(counter.dropped(), 1, "the body was dropped with the scope future");
    assert_eq!(
        *seen.lock().unwrap(),
        Some(Some(CancelSource::ScopeDropped)),
        "the body's Drop ran inside its own, now cancelled, scope"
    );
    assert!(scope.cancel_called());
    assert!(!scope.cancelled_caught());
    assert!(leaked.is_effectively_cancelled(), "a handle cloned out stays cancelled");
    let inner = inner_out.lock().unwrap().take().expect("the body entered its nested scope");
    // The nested scope's future was dropped with the body, so it is cancelled the same way.
    assert!(inner.cancel_called());
    assert!(inner.is_effectively_cancelled(), "a nested scope handle leaked out stays cancelled");
    // The caller's own scope is untouched.
    checkpoint().await.unwrap();
    assert_eq!(checkpoint_if_cancelled(), Ok(()));
}

#[anyio::test]
async fn scope_future_losing_a_select_is_cancelled_for_good() {
    let counter = DropCounter::new();
    let seen: Seen = Arc::default();
    let inner_out = Arc::default();
    let scope = CancelScope::new();
    let leaked = scope.clone();
    let winner = guarded(async {
        let mut scoped = Box::pin(scope.run(droppable_body(&counter, &seen, &inner_out)).fuse());
        let mut timer = Box::pin(sleep(Duration::from_millis(5)).fuse());
        futures::select! {
            r = scoped => panic!("the scope body never finishes on its own: {r:?}"),
            t = timer => t.map(|()| "timer"),
        }
    })
    .await;
    assert_eq!(winner, Ok("timer"));
    assert_eq!(counter.dropped(), 1);
    assert_eq!(*seen.lock().unwrap(), Some(Some(CancelSource::ScopeDropped)));
    assert!(scope.cancel_called());
    assert!(leaked.is_effectively_cancelled());
    let inner = inner_out.lock().unwrap().take().expect("the body entered its nested scope");
    assert!(inner.is_effectively_cancelled());
    checkpoint().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Row 16: a panic inside a scope body does not leave the scope current
// ---------------------------------------------------------------------------------------------

/// A cancelled scope with a deadline, whose body panics: if it stayed current after the
/// panic, the caller's checkpoints would fail and its effective deadline would be `Some`.
async fn panicking_scope() -> Result<Option<()>, Cancelled> {
    let scope = CancelScope::with_timeout(NEVER);
    scope.cancel();
    scope
        .run(async {
            assert!(checkpoint_if_cancelled().is_err());
            panic!("boom in a cancel scope body");
            #[allow(unreachable_code)]
            Ok::<(), Cancelled>(())
        })
        .await
}

#[anyio::test]
async fn a_panic_caught_around_a_scope_future_does_not_leave_the_scope_current() {
    let caught = AssertUnwindSafe(panicking_scope()).catch_unwind().await;
    let payload = caught.expect_err("the panic propagates out of the scope future");
    assert_eq!(support::panic_message(&*payload), "boom in a cancel scope body");
    checkpoint().await.expect("the caller is back in its own, uncancelled scope");
    assert_eq!(current_effective_deadline(), None);
}

#[anyio::test]
async fn a_panic_in_a_task_group_child_scope_does_not_leave_the_scope_current() {
    let caught = AssertUnwindSafe(task_group(|tg| async move {
        tg.spawn(async {
            panicking_scope().await?;
            Ok::<_, AnyError>(())
        });
        Ok::<_, AnyError>(())
    }))
    .catch_unwind()
    .await;
    let payload = caught.expect_err("the group re-raises its child's panic");
    assert_eq!(support::panic_message(&*payload), "boom in a cancel scope body");
    checkpoint().await.expect("the caller is back in its own, uncancelled scope");
    sleep(Duration::from_millis(1)).await.unwrap();
    assert_eq!(current_effective_deadline(), None);
}

#[anyio::test]
async fn a_panic_in_a_task_group_body_scope_does_not_leave_the_scope_current() {
    let caught = AssertUnwindSafe(task_group(|_tg| async move {
        panicking_scope().await?;
        Ok::<_, AnyError>(())
    }))
    .catch_unwind()
    .await;
    let payload = caught.expect_err("the group re-raises its body's panic");
    assert_eq!(support::panic_message(&*payload), "boom in a cancel scope body");
    checkpoint().await.expect("the caller is back in its own, uncancelled scope");
    assert_eq!(current_effective_deadline(), None);
}
