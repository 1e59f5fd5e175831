//! [`BlockingPortal`]: a door from synchronous threads into a run (AnyIO's `BlockingPortal`).
//!
//! The portal is a task of the run that serves requests from threads: each becomes a task of
//! the portal's own task group, and its outcome (or panic) travels back through a one-shot
//! cell the calling thread blocks on. Stopping the portal closes it to new requests, cancels
//! the tasks still running if asked to, and waits for them.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::resume_unwind;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

use crate::cancel::CancelScope;
use crate::error::{AnyError, Cancelled};
use crate::rt::run_state::{current_run, RunState};
use crate::streams::AsyncResource;
use crate::task::{task_group, StartError, TaskGroup, TaskStatus};
use crate::thread::{catch_panic, Completer, Outcome, Shared};

/// What `start_task`'s helper reports: the started value, or why there is none.
type Started<V> = Result<V, StartError<AnyError>>;

/// A request: what to spawn into the portal's task group.
type Request = Box<dyn FnOnce(&TaskGroup<AnyError>) + Send>;

struct Queue {
    items: VecDeque<Request>,
    closed: bool,
    waker: Option<Waker>,
}

struct Inner {
    run: Arc<RunState>,
    queue: Mutex<Queue>,
    /// The serving task group's scope, once it runs (to cancel what is left on `stop`).
    group: std::sync::OnceLock<CancelScope>,
    /// Set by `close`: read without the queue's lock by `block_on`.
    closed: AtomicBool,
    cancel_remaining: AtomicBool,
    /// Completed when the portal has stopped serving and every task of it has finished.
    finished: Arc<Shared<()>>,
}

/// Why a portal call did not run or did not finish.
#[derive(Debug)]
#[non_exhaustive]
pub enum PortalError {
    /// The portal was stopped (or its run ended) before the call ran.
    Stopped,
    /// Called from a thread that polls async tasks: await the code there instead.
    WouldBlockRuntime,
    /// The task was cancelled (through [`PortalFuture::cancel`] or by stopping the portal with
    /// `cancel_remaining`) before it produced its value.
    Cancelled,
    /// [`BlockingPortal::start_task`]: the task finished without calling `started()`.
    NotStarted,
    /// [`BlockingPortal::start_task`]: the task failed before calling `started()`.
    Failed(AnyError),
}

impl fmt::Display for PortalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortalError::Stopped => {
                f.write_str("this portal is not running: it was stopped, or its run ended")
            }
            PortalError::WouldBlockRuntime => f.write_str(
                "this thread is polling async tasks, and blocking it on the portal would stall (or \
                 deadlock) the runtime: await the code here instead",
            ),
            PortalError::Cancelled => f.write_str("the portal task was cancelled before it finished"),
            PortalError::NotStarted => f.write_str(
                "the task finished without calling `TaskStatus::started`; call it once the task is ready",
            ),
            PortalError::Failed(e) => write!(f, "the task failed before it signalled it started: {e}"),
        }
    }
}

impl StdError for PortalError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            PortalError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// A portal into a run, usable from any thread (AnyIO's `BlockingPortal`). Clones share the
/// portal. Made by [`blocking_portal`] inside async code, or with a runtime thread of its own
/// by `anyio::from_thread::start_blocking_portal`.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::from_thread::blocking_portal;
/// let n = blocking_portal(|portal| async move {
///     // A plain thread calls into the run through the portal.
///     let t = std::thread::spawn(move || portal.call(|| async { 6 * 7 }));
///     anyio::to_thread::run_sync(move || t.join().unwrap()).await.unwrap()
/// })
/// .await
/// .unwrap();
/// assert_eq!(n.unwrap(), 42);
/// # });
/// ```
#[derive(Clone)]
pub struct BlockingPortal {
    inner: Arc<Inner>,
}

impl fmt::Debug for BlockingPortal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPortal").field("stopped", &self.is_stopped()).finish_non_exhaustive()
    }
}

/// Runs `body` with a new portal into the current run, serving it until `body` returns; then
/// stops the portal and waits for the tasks it started (AnyIO's `async with BlockingPortal()`).
///
/// # Errors
///
/// The cancellation of the calling task, if it is cancelled while the portal's tasks finish.
///
/// # Cancel safety
///
/// Cancelling the caller cancels the portal's tasks (they are children of its scope) and
/// ends the portal.
///
/// # Examples
///
/// See [`BlockingPortal`].
pub async fn blocking_portal<T, B, Fut>(body: B) -> Result<T, AnyError>
where
    B: FnOnce(BlockingPortal) -> Fut,
    Fut: Future<Output = T>,
{
    let portal = BlockingPortal::new_in(current_run());
    let serving = portal.clone();
    // However this ends (the body returns, panics, or the future is dropped), the portal
    // closes, so neither `serve` nor a thread waiting on a call is left waiting for ever.
    let _shut = ShutOnDrop(portal.clone());
    let out = task_group(|tg| async move {
        tg.start_soon(async move { serving.serve().await });
        let _close = CloseOnDrop(portal.clone());
        Ok(body(portal.clone()).await)
    })
    .await
    .map_err(|e| {
        e.into_errors().into_iter().next().unwrap_or_else(|| AnyError::other(PortalError::Stopped))
    })?;
    out.ok_or_else(|| AnyError::other(PortalError::Cancelled))
}

impl BlockingPortal {
    fn new_in(run: Arc<RunState>) -> Self {
        Self {
            inner: Arc::new(Inner {
                run,
                queue: Mutex::new(Queue { items: VecDeque::new(), closed: false, waker: None }),
                group: std::sync::OnceLock::new(),
                closed: AtomicBool::new(false),
                cancel_remaining: AtomicBool::new(false),
                finished: Shared::new(),
            }),
        }
    }

    /// A portal of the current run that is not served yet: the caller runs [`serve`] in the
    /// run (for `start_blocking_portal`).
    ///
    /// [`serve`]: Self::serve
    #[doc(hidden)]
    pub fn unserved() -> Self {
        Self::new_in(current_run())
    }

    /// Serves the portal until it is stopped, then waits for its tasks (the body of the
    /// portal's own task).
    ///
    /// # Errors
    ///
    /// The cancellation of the serving task.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it cancels the portal's tasks and stops the portal.
    #[doc(hidden)]
    pub async fn serve(&self) -> Result<(), AnyError> {
        let inner = self.inner.clone();
        let done = Completer(Some(inner.finished.clone()));
        let _shut = ShutOnDrop(self.clone());
        let r = task_group(|tg| async move {
            let _ = inner.group.set(tg.cancel_scope());
            // A stop with `cancel_remaining` that came before the group existed.
            if inner.cancel_remaining.load(Ordering::Acquire) {
                tg.cancel();
            }
            // Ends when the portal closes, or when the serving task is cancelled.
            while let Some(request) = next_request(&inner).await? {
                request(&tg);
            }
            if inner.cancel_remaining.load(Ordering::Acquire) {
                tg.cancel();
            }
            Ok(())
        })
        .await;
        // Stopped from inside (the caller's scope was cancelled): nothing more is taken.
        self.shut();
        done.complete(());
        r.map(drop).map_err(|e| {
            e.into_errors().into_iter().next().unwrap_or_else(|| AnyError::other(PortalError::Stopped))
        })
    }

    /// Closes the portal to new requests; with `cancel_remaining`, cancels its running tasks
    /// and drops the requests queued but not started (their callers hear `Cancelled`).
    /// Without, queued requests are still served.
    fn close(&self, cancel_remaining: bool) {
        self.close_with(cancel_remaining, cancel_remaining);
    }

    /// Closes the portal once nothing will serve it any more: queued requests are dropped.
    fn shut(&self) {
        self.close_with(false, true);
    }

    fn close_with(&self, cancel_remaining: bool, drop_queued: bool) {
        if cancel_remaining {
            self.inner.cancel_remaining.store(true, Ordering::Release);
            if let Some(scope) = self.inner.group.get() {
                scope.cancel();
            }
        }
        self.inner.closed.store(true, Ordering::Release);
        let (waker, unstarted) = {
            let mut q = self.inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
            q.closed = true;
            let unstarted = if drop_queued { std::mem::take(&mut q.items) } else { VecDeque::new() };
            (q.waker.take(), unstarted)
        };
        // Dropped outside the lock: each completes its caller's cell empty.
        drop(unstarted);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the portal no longer takes calls.
    ///
    /// ```
    /// # anyio::run(async {
    /// anyio::from_thread::blocking_portal(|p| async move { assert!(!p.is_stopped()) }).await.unwrap();
    /// # });
    /// ```
    pub fn is_stopped(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire) || self.inner.run.is_finished()
    }

    /// Stops the portal from async code (AnyIO's `stop`): no new calls are taken, and with
    /// `cancel_remaining` the tasks still running are cancelled. It does not wait for them
    /// (a portal task may call it): [`blocking_portal`] waits for them when its body returns,
    /// and [`stop_blocking`](Self::stop_blocking) waits from a thread.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for a checkpoint.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the portal is stopped at once.
    ///
    /// ```
    /// # anyio::run(async {
    /// anyio::from_thread::blocking_portal(|p| async move {
    ///     p.stop(true).await.unwrap();
    ///     assert!(p.is_stopped());
    /// }).await.unwrap();
    /// # });
    /// ```
    pub async fn stop(&self, cancel_remaining: bool) -> Result<(), Cancelled> {
        self.close(cancel_remaining);
        Ok(())
    }

    /// Stops the portal from a thread and blocks until its tasks have finished (AnyIO's
    /// `stop_from_external_thread`).
    ///
    /// # Errors
    ///
    /// [`PortalError::WouldBlockRuntime`] on a thread that polls tasks (use
    /// [`stop`](Self::stop) there).
    ///
    /// ```
    /// # anyio::run(async {
    /// anyio::from_thread::blocking_portal(|p| async move {
    ///     let t = std::thread::spawn(move || p.stop_blocking(false));
    ///     anyio::to_thread::run_sync(move || t.join().unwrap()).await.unwrap().unwrap();
    /// }).await.unwrap();
    /// # });
    /// ```
    pub fn stop_blocking(&self, cancel_remaining: bool) -> Result<(), PortalError> {
        if crate::rt::is_polling() {
            return Err(PortalError::WouldBlockRuntime);
        }
        self.close(cancel_remaining);
        if !self.inner.run.is_finished() {
            self.inner.finished.wait_done();
        }
        Ok(())
    }

    fn submit(&self, request: Request) -> Result<(), PortalError> {
        if self.inner.run.is_finished() {
            return Err(PortalError::Stopped);
        }
        let waker = {
            let mut q = self.inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if q.closed {
                return Err(PortalError::Stopped);
            }
            q.items.push_back(request);
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Runs the future `f()` makes as a task of the portal and blocks until it is done
    /// (AnyIO's `portal.call`). A panic in it is resumed here.
    ///
    /// # Errors
    ///
    /// [`PortalError::Stopped`] if the portal is stopped (or stops before the task ran);
    /// [`PortalError::Cancelled`] if the portal was stopped with `cancel_remaining` and the
    /// task was dropped unfinished; [`PortalError::WouldBlockRuntime`] on a thread that polls
    /// tasks.
    ///
    /// ```
    /// # anyio::run(async {
    /// # anyio::from_thread::blocking_portal(|portal| async move {
    /// let t = std::thread::spawn(move || portal.call(|| async { anyio::current_backend() }));
    /// # let _ = anyio::to_thread::run_sync(move || t.join().unwrap()).await;
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn call<T, F, Fut>(&self, f: F) -> Result<T, PortalError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        if crate::rt::is_polling() {
            return Err(PortalError::WouldBlockRuntime);
        }
        self.start_task_soon(f)?.wait()
    }

    /// Runs the future on this thread, blocking it, inside the portal's run: its runtime is
    /// current and the future is in the portal's cancel scope (so stopping the portal with
    /// `cancel_remaining` cancels it), as tokio's `Handle::block_on` runs a future. Unlike
    /// [`call`](Self::call), nothing crosses to the run's own threads, which makes it much
    /// cheaper for short calls; the future is not a task of the portal, so a stop without
    /// `cancel_remaining` does not wait for it. A panic in it unwinds here.
    ///
    /// # Errors
    ///
    /// [`PortalError::Stopped`] if the portal is stopped; [`PortalError::WouldBlockRuntime`]
    /// on a thread that polls tasks.
    ///
    /// ```
    /// # anyio::run(async {
    /// # anyio::from_thread::blocking_portal(|portal| async move {
    /// let t = std::thread::spawn(move || {
    ///     portal.block_on(async {
    ///         anyio::sleep(std::time::Duration::from_millis(1)).await.unwrap();
    ///         anyio::current_backend()
    ///     })
    /// });
    /// # let b = anyio::to_thread::run_sync(move || t.join().unwrap()).await.unwrap().unwrap();
    /// # assert_eq!(b, anyio::current_backend());
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, PortalError> {
        if crate::rt::is_polling() {
            return Err(PortalError::WouldBlockRuntime);
        }
        if self.is_stopped() {
            return Err(PortalError::Stopped);
        }
        let _entered = crate::rt::enter(self.inner.run.rt.clone());
        let meta = crate::task::id::TaskMeta::new(None, std::any::type_name::<F>().into());
        let mut fut = pin!(fut);
        let run = &self.inner.run;
        let group = &self.inner.group;
        crate::thread::block_on_here(|cx| {
            // A run that ended under the call cannot drive it any further.
            if run.is_finished() {
                return Poll::Ready(Err(PortalError::Stopped));
            }
            let polled = match group.get() {
                // In the portal's own scope: what cancels the portal's tasks cancels this.
                Some(scope) => {
                    let _task = crate::task::id::enter_child(&meta, &scope.node);
                    fut.as_mut().poll(cx)
                }
                None => {
                    let _task = crate::task::id::enter_task(&meta);
                    let _root = crate::cancel::current::enter_root();
                    fut.as_mut().poll(cx)
                }
            };
            polled.map(Ok)
        })
    }

    /// Runs `f` in the run (as a task of the portal) and blocks until it returns.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    ///
    /// ```
    /// # anyio::run(async {
    /// # anyio::from_thread::blocking_portal(|portal| async move {
    /// let t = std::thread::spawn(move || portal.call_sync(|| 1 + 1));
    /// # let _ = anyio::to_thread::run_sync(move || t.join().unwrap()).await;
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn call_sync<T, F>(&self, f: F) -> Result<T, PortalError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.call(move || async move { f() })
    }

    /// Starts the future `f()` makes as a task of the portal and returns at once with a
    /// [`PortalFuture`] to wait for it, poll it or cancel it (AnyIO's `start_task_soon`).
    ///
    /// # Errors
    ///
    /// [`PortalError::Stopped`] if the portal is stopped.
    ///
    /// ```
    /// # anyio::run(async {
    /// # anyio::from_thread::blocking_portal(|portal| async move {
    /// let t = std::thread::spawn(move || {
    ///     let fut = portal.start_task_soon(|| async { 5 }).unwrap();
    ///     fut.wait().unwrap()
    /// });
    /// # assert_eq!(anyio::to_thread::run_sync(move || t.join().unwrap()).await.unwrap(), 5);
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn start_task_soon<T, F, Fut>(&self, f: F) -> Result<PortalFuture<T>, PortalError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let shared: Arc<Shared<Outcome<T>>> = Shared::new();
        let scope = CancelScope::new();
        let completer = Completer(Some(shared.clone()));
        let task_scope = scope.clone();
        self.submit(Box::new(move |tg| {
            tg.start_soon(async move {
                let out = task_scope
                    .run(async move { Ok::<_, Cancelled>(catch_panic(async move { f().await }).await) })
                    .await;
                match out {
                    // A task that ends while cancelled (its own scope, or the portal stopping
                    // with `cancel_remaining`) counts as cancelled, whatever it returned.
                    Ok(Some(outcome)) if !task_scope.is_effectively_cancelled() => {
                        completer.complete(outcome)
                    }
                    _ => drop(completer),
                }
                Ok(())
            });
        }))?;
        Ok(PortalFuture { shared, scope, cancelled: Arc::new(AtomicBool::new(false)), portal: self.clone() })
    }

    /// Starts a task of the portal that signals when it is ready, and blocks until it does
    /// (AnyIO's `start_task`): returns a [`PortalFuture`] for the task's end and the value it
    /// passed to [`TaskStatus::started`].
    ///
    /// # Errors
    ///
    /// [`PortalError::NotStarted`] if the task finished without signalling;
    /// [`PortalError::Failed`] if it failed first; [`PortalError::Stopped`],
    /// [`PortalError::WouldBlockRuntime`] as [`call`](Self::call).
    ///
    /// ```
    /// # anyio::run(async {
    /// # anyio::from_thread::blocking_portal(|portal| async move {
    /// let t = std::thread::spawn(move || {
    ///     let (done, port) = portal
    ///         .start_task(|status| async move {
    ///             status.started(8080u16);
    ///             Ok(())
    ///         })
    ///         .unwrap();
    ///     done.wait().unwrap().unwrap();
    ///     port
    /// });
    /// # assert_eq!(anyio::to_thread::run_sync(move || t.join().unwrap()).await.unwrap(), 8080);
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn start_task<V, F, Fut>(&self, f: F) -> Result<(PortalFuture<Result<(), AnyError>>, V), PortalError>
    where
        F: FnOnce(TaskStatus<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), AnyError>> + Send + 'static,
        V: Send + 'static,
    {
        if crate::rt::is_polling() {
            return Err(PortalError::WouldBlockRuntime);
        }
        let started: Arc<Shared<Outcome<Started<V>>>> = Shared::new();
        let done: Arc<Shared<Outcome<Result<(), AnyError>>>> = Shared::new();
        let scope = CancelScope::new();
        let (started_tx, done_tx) = (Completer(Some(started.clone())), Completer(Some(done.clone())));
        let task_scope = scope.clone();
        self.submit(Box::new(move |tg| {
            let group = tg.clone();
            tg.start_soon(async move {
                let r = catch_panic(group.start(move |status| {
                    let fut = f(status);
                    async move {
                        // The task's own outcome (its error included) goes to the future, never
                        // to the portal's group, which must keep serving.
                        let out =
                            task_scope.run(async move { Ok::<_, Cancelled>(catch_panic(fut).await) }).await;
                        match out {
                            Ok(Some(outcome)) if !task_scope.is_effectively_cancelled() => {
                                done_tx.complete(outcome)
                            }
                            _ => drop(done_tx),
                        }
                        Ok(())
                    }
                }))
                .await;
                started_tx.complete(r);
                Ok(())
            });
        }))?;
        let value = match started.wait() {
            Some(Ok(Ok(v))) => v,
            // Finished without signalling: failed first, panicked, or just returned.
            Some(Ok(Err(StartError::NotStarted | StartError::Failed(_)))) => {
                return Err(match done.wait() {
                    Some(Ok(Err(e))) => PortalError::Failed(e),
                    Some(Err(panic)) => resume_unwind(panic),
                    _ => PortalError::NotStarted,
                })
            }
            Some(Ok(Err(StartError::Cancelled(_)))) => return Err(PortalError::Cancelled),
            Some(Ok(Err(_))) | None => return Err(PortalError::Stopped),
            Some(Err(panic)) => resume_unwind(panic),
        };
        Ok((
            PortalFuture {
                shared: done,
                scope,
                cancelled: Arc::new(AtomicBool::new(false)),
                portal: self.clone(),
            },
            value,
        ))
    }

    /// Wraps `resource` so that threads use it through this portal and it is closed in the
    /// run when the wrapper is closed or dropped (AnyIO's `wrap_async_context_manager`, for
    /// resources).
    ///
    /// ```
    /// # anyio::run(async {
    /// # anyio::from_thread::blocking_portal(|portal| async move {
    /// use anyio::streams::memory::create_memory_object_stream;
    /// let (tx, _rx) = create_memory_object_stream::<u8>(1);
    /// let t = std::thread::spawn(move || {
    ///     let tx = portal.wrap_async_resource(tx);
    ///     tx.call(|tx| async move { anyio::streams::ObjectSendStream::send(&*tx, 1).await }).unwrap().unwrap();
    ///     tx.close().unwrap().unwrap(); // aclose runs in the run
    /// });
    /// # anyio::to_thread::run_sync(move || t.join().unwrap()).await.unwrap();
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn wrap_async_resource<R: AsyncResource + 'static>(&self, resource: R) -> PortalResource<R> {
        PortalResource { resource: Some(Arc::new(resource)), portal: self.clone() }
    }
}

/// The next request, `None` once the portal is closed, or the serving task's cancellation.
async fn next_request(inner: &Inner) -> Result<Option<Request>, Cancelled> {
    let mut reg = crate::cancel::node::WaitRegistration::new();
    poll_fn(|cx| {
        {
            let mut q = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
            // What was asked before the portal closed is still served.
            if let Some(r) = q.items.pop_front() {
                return Poll::Ready(Ok(Some(r)));
            }
            if q.closed {
                return Poll::Ready(Ok(None));
            }
            q.waker = Some(cx.waker().clone());
        }
        crate::cancel::current::register_current(&mut reg, cx.waker())?;
        Poll::Pending
    })
    .await
}

/// Closes a portal when dropped (its body ended: what is queued is still served).
struct CloseOnDrop(BlockingPortal);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close(false);
    }
}

/// Shuts a portal when dropped (nothing serves it any more: what is queued is dropped).
struct ShutOnDrop(BlockingPortal);

impl Drop for ShutOnDrop {
    fn drop(&mut self) {
        self.0.shut();
    }
}

/// A task started through a portal, seen from a thread (AnyIO's portal futures, which are
/// `concurrent.futures.Future`s): wait for it, ask whether it is done, cancel it.
pub struct PortalFuture<T> {
    shared: Arc<Shared<Outcome<T>>>,
    scope: CancelScope,
    cancelled: Arc<AtomicBool>,
    portal: BlockingPortal,
}

impl<T> fmt::Debug for PortalFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalFuture").field("done", &self.is_done()).finish_non_exhaustive()
    }
}

impl<T> PortalFuture<T> {
    /// Whether the task has finished (or was cancelled, or will never run).
    pub fn is_done(&self) -> bool {
        self.shared.is_done()
    }

    /// Cancels the task (its scope): it sees the cancellation at its next checkpoint, and
    /// [`wait`](Self::wait) then reports [`PortalError::Cancelled`] even if it still produced a
    /// value (so does a task that ends while the portal stops with `cancel_remaining`). Does
    /// nothing once the task is done.
    pub fn cancel(&self) {
        if !self.is_done() {
            self.cancelled.store(true, Ordering::Release);
            self.scope.cancel();
        }
    }

    /// Blocks until the task is done and returns its value; a panic in it is resumed here.
    ///
    /// # Errors
    ///
    /// [`PortalError::Cancelled`] if it was cancelled; [`PortalError::Stopped`] if it never
    /// ran (the portal stopped first); [`PortalError::WouldBlockRuntime`] on a thread that
    /// polls tasks.
    pub fn wait(self) -> Result<T, PortalError> {
        if crate::rt::is_polling() && !self.is_done() {
            return Err(PortalError::WouldBlockRuntime);
        }
        let out =
            if self.portal.inner.run.is_finished() && !self.is_done() { None } else { self.shared.wait() };
        if self.cancelled.load(Ordering::Acquire) {
            return Err(PortalError::Cancelled);
        }
        match out {
            Some(Ok(v)) => Ok(v),
            Some(Err(panic)) => resume_unwind(panic),
            None if self.portal.inner.cancel_remaining.load(Ordering::Acquire) => Err(PortalError::Cancelled),
            None => Err(PortalError::Stopped),
        }
    }
}

/// An async resource used from threads through a portal, closed in the run (see
/// [`BlockingPortal::wrap_async_resource`]).
pub struct PortalResource<R: AsyncResource + 'static> {
    resource: Option<Arc<R>>,
    portal: BlockingPortal,
}

impl<R: AsyncResource + 'static> fmt::Debug for PortalResource<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalResource").field("open", &self.resource.is_some()).finish_non_exhaustive()
    }
}

impl<R: AsyncResource + 'static> PortalResource<R> {
    /// Runs `f(resource)` in the run and blocks for its value.
    ///
    /// # Errors
    ///
    /// As [`BlockingPortal::call`].
    pub fn call<T, F, Fut>(&self, f: F) -> Result<T, PortalError>
    where
        F: FnOnce(Arc<R>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let r = self.resource.clone().ok_or(PortalError::Stopped)?;
        self.portal.call(move || f(r))
    }

    /// Closes the resource in the run (its `aclose`) and returns what that returned.
    ///
    /// # Errors
    ///
    /// As [`BlockingPortal::call`].
    pub fn close(mut self) -> Result<Result<(), crate::streams::StreamError>, PortalError> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<Result<(), crate::streams::StreamError>, PortalError> {
        match self.resource.take() {
            Some(r) => self.portal.call(move || async move { r.aclose().await }),
            None => Ok(Ok(())),
        }
    }
}

impl<R: AsyncResource + 'static> Drop for PortalResource<R> {
    fn drop(&mut self) {
        // On a thread that may block, close it in the run; elsewhere (or once the portal is
        // gone) it is dropped, which closes it without waiting.
        if !crate::rt::is_polling() && !self.portal.is_stopped() {
            let _ = self.close_inner();
        }
    }
}
