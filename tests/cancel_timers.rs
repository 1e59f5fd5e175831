//! A deadline scope's timer is released with the scope: when the body finishes, and when the
//! scope future is dropped while its body waits (the timer is armed then). A timer that
//! outlived its scope would keep a runtime timer entry, and its allocation, for nothing.

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
async fn a_scope_whose_body_finishes_after_waiting_releases_its_timer() {
    let (rt, live) = counting();
    let live2 = live.clone();
    on_runtime(rt, async move {
        let out = move_on_after(Duration::from_secs(3600), async {
            anyio::lowlevel::checkpoint().await?;
            assert_eq!(live2.load(Ordering::SeqCst), 1, "the waiting body armed the timer");
            Ok::<_, Cancelled>(7)
        })
        .await;
        assert_eq!(out, Ok(Some(7)));
        assert_eq!(live2.load(Ordering::SeqCst), 0, "the finished scope released the timer");
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
