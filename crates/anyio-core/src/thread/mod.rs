//! What `to_thread`, `from_thread` and the blocking portal share: the worker pool, the context
//! a worker thread runs its job in, the one-shot result cell both directions use, and the task
//! wrapper that runs a thread's future inside a runtime.

pub(crate) mod pool;

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::cancel::cell::NodeArc;
use crate::cancel::node::Node;
use crate::rt::run_state::RunState;
use crate::rt::{self, RuntimeHandle};
use crate::task::id::{enter_child, enter_task, TaskMeta};

/// What a job's value or panic comes back as.
pub(crate) type Outcome<T> = Result<T, Box<dyn Any + Send>>;

/// The context of a job `to_thread::run_sync` runs on a worker: whose run it serves and the
/// cancel scope of the task waiting for it.
#[derive(Clone)]
pub(crate) struct WorkerCtx {
    pub(crate) run: Arc<RunState>,
    /// The waiting task's cancel-scope node (`None`: the root).
    pub(crate) node: Option<NodeArc>,
    /// Set when the waiting task stopped waiting (abandoned the job): the thread's calls
    /// back into the run then no longer belong to that task's scope.
    pub(crate) abandoned: Arc<AtomicBool>,
}

impl WorkerCtx {
    /// The scope a call back into the run runs in: the waiting task's, unless it abandoned
    /// this job.
    pub(crate) fn scope(&self) -> Option<NodeArc> {
        if self.abandoned.load(Ordering::Acquire) {
            None
        } else {
            self.node.clone()
        }
    }
}

thread_local! {
    static WORKER: RefCell<Option<WorkerCtx>> = const { RefCell::new(None) };
}

/// The job context of this thread, if it runs a `to_thread` job now.
pub(crate) fn worker_ctx() -> Option<WorkerCtx> {
    WORKER.with(|w| w.borrow().clone())
}

/// Runs `f` with `ctx` as this thread's job context.
pub(crate) fn with_worker_ctx<R>(ctx: WorkerCtx, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<WorkerCtx>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            WORKER.with(|w| *w.borrow_mut() = prev);
        }
    }
    let _restore = Restore(WORKER.with(|w| w.borrow_mut().replace(ctx)));
    f()
}

/// A one-shot cell for a value that one side fills and the other waits for, either as a task
/// (`poll`) or as a thread (`wait`). Dropping the filling side unfilled completes it empty.
pub(crate) struct Shared<T> {
    state: Mutex<Slot<T>>,
    cond: Condvar,
}

struct Slot<T> {
    done: bool,
    value: Option<T>,
    waker: Option<Waker>,
}

impl<T> Shared<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Slot { done: false, value: None, waker: None }),
            cond: Condvar::new(),
        })
    }

    /// Fills the cell (`None`: it will never have a value). Only the first call counts.
    pub(crate) fn complete(&self, value: Option<T>) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if s.done {
                return;
            }
            s.done = true;
            s.value = value;
            s.waker.take()
        };
        self.cond.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).done
    }

    /// `Ready(value)` once filled (`None`: completed empty, or already taken).
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.done {
            return Poll::Ready(s.value.take());
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Blocks this thread until filled, leaving the value in place.
    pub(crate) fn wait_done(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !s.done {
            s = self.cond.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Blocks this thread until filled.
    pub(crate) fn wait(&self) -> Option<T> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !s.done {
            s = self.cond.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.value.take()
    }
}

/// Completes a [`Shared`] empty if dropped before it was filled (a job dropped unrun, a task
/// dropped by a runtime that shut down), so that nobody waits for ever.
pub(crate) struct Completer<T>(pub(crate) Option<Arc<Shared<T>>>);

impl<T> Completer<T> {
    pub(crate) fn complete(mut self, value: T) {
        if let Some(s) = self.0.take() {
            s.complete(Some(value));
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.complete(None);
        }
    }
}

/// Polls `fut`, catching a panic into the outcome (so that it travels to whoever waits for
/// the value instead of unwinding into the runtime).
pub(crate) async fn catch_panic<F: Future>(fut: F) -> Outcome<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

/// Calls `poll` on this thread until it is ready, parking the thread while it waits.
pub(crate) fn block_on_here<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    thread_local! {
        // One waker per thread, made once: blocking again allocates nothing.
        static WAKER: Waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    }
    let waker = WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = poll(&mut cx) {
            return v;
        }
        // A wake before this park makes it return at once (the token is kept).
        std::thread::park();
    }
}

/// A future from another thread, run as an anyio task of the runtime `rt`: its own task id,
/// inside `scope` (a child of that node, so cancelling the scope cancels it) or the root.
pub(crate) struct Hosted<F> {
    meta: TaskMeta,
    node: Option<NodeArc>,
    rt: RuntimeHandle,
    fut: Pin<Box<F>>,
}

impl<F: Future> Hosted<F> {
    pub(crate) fn new(rt: RuntimeHandle, scope: Option<NodeArc>, fut: F) -> Self {
        let node = scope.map(|parent| {
            let node = Node::new_arc(false);
            node.enter(Some(parent));
            node
        });
        Self { meta: TaskMeta::new(None, std::any::type_name::<F>().into()), node, rt, fut: Box::pin(fut) }
    }
}

impl<F: Future> Future for Hosted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _rt = (crate::context::with(|c| c.rt.get()) != rt::handle_addr(&this.rt))
            .then(|| rt::enter(this.rt.clone()));
        match &this.node {
            Some(node) => {
                let _task = enter_child(&this.meta, node);
                this.fut.as_mut().poll(cx)
            }
            None => {
                let _task = enter_task(&this.meta);
                let _root = crate::cancel::current::enter_root();
                this.fut.as_mut().poll(cx)
            }
        }
    }
}
