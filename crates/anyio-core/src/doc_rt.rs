//! A minimal thread-per-task runtime on which this crate's documentation examples run, so they
//! need no backend. Not for production use: the real backends live in their own crates.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

use crate::rt::{self, BoxTask, Runtime, Timer};

#[derive(Debug)]
struct DocRuntime;

impl Runtime for DocRuntime {
    fn name(&self) -> &'static str {
        "doc"
    }
    fn spawn(&self, task: BoxTask) {
        std::thread::spawn(move || __doc_block_on(task));
    }
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn timer(&self, deadline: Instant) -> std::pin::Pin<Box<dyn Timer>> {
        rt::thread_timer(deadline)
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

/// Runs `fut` to completion on this thread with the documentation runtime current.
#[doc(hidden)]
pub fn __doc_block_on<F: Future>(fut: F) -> F::Output {
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
