//! A minimal thread-per-task runtime on which this crate's unit tests run, so they need no
//! backend (anyio-core depends on none). Not for production use: the real backends live in
//! their own crates.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

use crate::rt::{self, BlockingJob, BoxTask, Runtime, Timer};

#[derive(Debug)]
pub(crate) struct DocRuntime;

impl Runtime for DocRuntime {
    fn name(&self) -> &'static str {
        "doc"
    }
    fn spawn(&self, task: BoxTask) {
        std::thread::spawn(move || __doc_block_on(task));
    }
    fn spawn_blocking(&self, job: BlockingJob) -> std::io::Result<()> {
        rt::spawn_blocking_thread(job)
    }
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn timer(&self, deadline: Instant) -> std::pin::Pin<Box<dyn Timer>> {
        rt::thread_timer(deadline)
    }
    #[cfg(unix)]
    fn register_io(&self, fd: std::os::fd::OwnedFd) -> std::io::Result<Box<dyn rt::IoSource>> {
        Ok(Box::new(PolledFd(fd)))
    }
}

/// The test runtime's "reactor": it checks readiness with a zero-timeout `poll(2)`
/// and otherwise retries a millisecond later. Fine for examples, useless for anything else.
#[cfg(unix)]
#[derive(Debug)]
struct PolledFd(std::os::fd::OwnedFd);

#[cfg(unix)]
impl PolledFd {
    fn is_ready(&self, interest: rt::Interest) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let events = match interest {
            rt::Interest::Readable => PollFlags::IN,
            rt::Interest::Writable => PollFlags::OUT,
        };
        let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
        poll(&mut [PollFd::new(&self.0, events)], Some(&zero)).is_ok_and(|n| n > 0)
    }
}

#[cfg(unix)]
fn wake_soon(cx: &Context<'_>) {
    let waker = cx.waker().clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1));
        waker.wake();
    });
}

#[cfg(unix)]
impl rt::IoSource for PolledFd {
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        _interest: rt::Interest,
        _phase: rt::IoPhase,
        op: &mut dyn FnMut() -> std::io::Result<bool>,
    ) -> Poll<std::io::Result<()>> {
        match op() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                wake_soon(cx);
                Poll::Pending
            }
            done => Poll::Ready(done.map(drop)),
        }
    }
    fn poll_ready(&self, cx: &mut Context<'_>, interest: rt::Interest) -> Poll<std::io::Result<()>> {
        if self.is_ready(interest) {
            return Poll::Ready(Ok(()));
        }
        wake_soon(cx);
        Poll::Pending
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread with the test runtime current.
#[doc(hidden)]
pub(crate) fn __doc_block_on<F: Future>(fut: F) -> F::Output {
    let _rt = rt::enter(Arc::new(DocRuntime));
    crate::cancel::current::run_in_root(|| {
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(crate::task::id::main_task(fut));
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    })
}
