//! A deadline scope's timer is released with the scope: when the body finishes, and when the
//! scope future is dropped while its body waits (the timer is armed then), also when the
//! body's destructor panics. A timer that outlived its scope would keep a runtime timer entry,
//! and its allocation, for nothing. And the runtime's clock, read with the current runtime
//! borrowed, gets a clear panic if it breaks the rule that it must not enter a runtime.

use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyio::cancel::move_on_after;
use anyio::rt::{BlockingJob, BoxTask, RawTask, Runtime, RuntimeHandle, Timer};
use anyio::Cancelled;

mod support;
use support::on_runtime;

/// The current runtime, counting the timers it handed out that are still alive.
#[derive(Debug)]
struct CountingTimers {
    inner: RuntimeHandle,
    live: Arc<AtomicUsize>,
}

struct Counted {
    inner: Pin<Box<dyn Timer>>,
    live: Arc<AtomicUsize>,
}

impl Timer for Counted {
    fn poll_expired(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll_expired(cx)
    }
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.inner.as_mut().reset(deadline)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Runtime for CountingTimers {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn spawn(&self, task: BoxTask) {
        self.inner.spawn(task)
    }
    fn spawn_task(&self, task: RawTask) {
        self.inner.spawn_task(task)
    }
    fn spawn_blocking(&self, job: BlockingJob) -> std::io::Result<()> {
        self.inner.spawn_blocking(job)
    }
    fn now(&self) -> Instant {
        self.inner.now()
    }
    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        self.live.fetch_add(1, Ordering::SeqCst);
        Box::pin(Counted { inner: self.inner.timer(deadline), live: self.live.clone() })
    }
}

fn counting() -> (RuntimeHandle, Arc<AtomicUsize>) {
    let live = Arc::new(AtomicUsize::new(0));
    (Arc::new(CountingTimers { inner: anyio::rt::current(), live: live.clone() }), live)
}

/// Polls `fut` once.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

#[anyio::test]
async fn a_scope_dropped_while_its_body_waits_releases_its_armed_timer() {
    let (rt, live) = counting();
    let live2 = live.clone();
    on_runtime(rt, async move {
        let mut scope =
            Box::pin(move_on_after(Duration::from_secs(3600), pending::<Result<(), Cancelled>>()));
        assert!(poll_once(&mut scope).await.is_pending());
        assert_eq!(live2.load(Ordering::SeqCst), 1, "the waiting body armed the deadline's timer");
        drop(scope);
        assert_eq!(live2.load(Ordering::SeqCst), 0, "dropping the scope released the timer");
    })
    .await;
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[anyio::test]
async fn a_scope_whose_body_finishes_after_waiting_releases_its_timer_when_it_completes() {
    let (rt, live) = counting();
    let live2 = live.clone();
    on_runtime(rt, async move {
        let mut waited = false;
        let body = poll_fn(move |cx| {
            if std::mem::replace(&mut waited, true) {
                Poll::Ready(Ok::<_, Cancelled>(7))
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        });
        let mut scope = Box::pin(move_on_after(Duration::from_secs(3600), body));
        assert!(poll_once(&mut scope).await.is_pending());
        assert_eq!(live2.load(Ordering::SeqCst), 1, "the waiting body armed the timer");
        assert_eq!(poll_once(&mut scope).await, Poll::Ready(Ok(Some(7))));
        // Checked before the scope future is dropped: completing released it.
        assert_eq!(live2.load(Ordering::SeqCst), 0, "the finished scope released the timer");
        drop(scope);
    })
    .await;
}

/// A value whose destructor panics.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("body destructor");
    }
}

#[anyio::test]
async fn a_scope_dropped_while_waiting_releases_its_timer_when_the_body_destructor_panics() {
    let (rt, live) = counting();
    let live2 = live.clone();
    on_runtime(rt, async move {
        let guard = PanicsOnDrop;
        let mut scope = Box::pin(move_on_after(Duration::from_secs(3600), async move {
            let _guard = guard;
            pending::<Result<(), Cancelled>>().await
        }));
        assert!(poll_once(&mut scope).await.is_pending());
        assert_eq!(live2.load(Ordering::SeqCst), 1);
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(scope)));
        assert!(dropped.is_err(), "the body's panic reaches the dropper");
        assert_eq!(live2.load(Ordering::SeqCst), 0, "the timer was released all the same");
    })
    .await;
}

#[anyio::test]
async fn a_scope_around_a_ready_body_arms_no_timer() {
    let (rt, live) = counting();
    let live2 = live.clone();
    on_runtime(rt, async move {
        let out = move_on_after(Duration::from_secs(3600), async { Ok::<_, Cancelled>(1) }).await;
        assert_eq!(out, Ok(Some(1)));
        assert_eq!(live2.load(Ordering::SeqCst), 0, "a ready body never touched the timer wheel");
    })
    .await;
}

/// A runtime whose clock breaks `Runtime::now`'s contract by entering a runtime.
#[derive(Debug)]
struct EntersInNow {
    inner: RuntimeHandle,
}

impl Runtime for EntersInNow {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn spawn(&self, task: BoxTask) {
        self.inner.spawn(task)
    }
    fn spawn_blocking(&self, job: BlockingJob) -> std::io::Result<()> {
        self.inner.spawn_blocking(job)
    }
    fn now(&self) -> Instant {
        let _entered = anyio::rt::enter(self.inner.clone());
        self.inner.now()
    }
    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        self.inner.timer(deadline)
    }
}

#[anyio::test]
async fn a_clock_that_enters_a_runtime_fails_with_a_message_naming_the_rule() {
    let rt: RuntimeHandle = Arc::new(EntersInNow { inner: anyio::rt::current() });
    let read = on_runtime(rt, async { std::panic::catch_unwind(anyio::time::current_time) }).await;
    let payload = read.expect_err("entering a runtime from `now` is refused");
    let message = support::panic_message(&*payload);
    assert!(message.contains("must not enter"), "{message}");
    // The thread's current runtime is intact: clocks still read.
    let _ = anyio::time::current_time();
}
