//! Task groups (trio's nurseries, AnyIO's `TaskGroup`).

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use super::slot::SlotOutcome;
use crate::cancel::cell::{BodyNode, NodeArc};
use crate::cancel::current::{current_arc, enter};
use crate::cancel::node::Node;
use crate::cancel::{catches, CancelScope, InScope};
use crate::context;
use crate::error::{AnyError, AsCancelled, CancelSource, Cancelled};
use crate::loom::{lock, AtomicBool, Mutex, Ordering};
use crate::lowlevel::cancel_shielded_checkpoint;
use crate::rt::{self, RuntimeHandle};
use crate::sync::spin::SpinMutex;

use super::children::{Added, Children};
use super::handle::TaskHandle;
use super::id::{enter_child_cached, enter_task, TaskMeta, TaskName};
use super::outcome::{Failure, Panic, StartFailure};
use super::start::{StartShared, StartSink, TaskStatus};
use super::StartError;

/// The message of the panic raised by [`TaskGroup::spawn`] on a closed group.
const GROUP_CLOSED: &str = "anyio: this task group is closed (it has finished waiting for its \
tasks); no new tasks can be spawned into it. Spawn from inside the group's body or its tasks, \
or use `try_spawn` to get the future back instead of a panic.";

/// Runs `body` with a new task group and waits for every task spawned into it.
///
/// The body receives a [`TaskGroup`] handle to spawn tasks with. The group's rules are trio's:
///
/// - The group does not finish until every task in it has finished (tasks may spawn more).
/// - The first task (or body) that fails — returns an error that is not a cancellation, or
///   panics — cancels the group's scope: the body and every other task see cancellation at
///   their next checkpoint. Once all have finished, every failure is returned together in
///   [`GroupError::Failed`], in the order they happened (the body's `Ok` value is dropped).
/// - A panic is re-raised in the caller with its original payload, after all siblings have been
///   cancelled and joined.
/// - Cancellation errors of tasks are never failures.
/// - If the group was cancelled through its own scope ([`TaskGroup::cancel`]) and the body
///   unwound with the cancellation, the output is `Ok(None)`; a cancellation from an enclosing
///   scope comes out as [`GroupError::Cancelled`] for that scope to catch. Otherwise the
///   output is `Ok(Some(value))` with the body's value.
///
/// Tasks run as real runtime tasks, in parallel on a multi-thread runtime.
///
/// # Cancel safety
///
/// Waiting for the tasks is not a cancellation point: when an enclosing scope is cancelled,
/// the tasks are cancelled and the group still waits for them to finish. If the returned
/// future is *dropped* before it finishes, the group's scope is cancelled for good and the
/// running tasks are left to unwind on their own (detached); their errors are dropped, their
/// panics are reported by the panic hook only.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// use anyio::{sleep, task_group, AnyError};
///
/// let r = task_group(|tg| async move {
///     let a = tg.spawn(async { sleep(Duration::from_millis(1)).await?; Ok::<_, AnyError>(1) });
///     let b = tg.spawn(async { Ok(2) });
///     Ok(a.await.unwrap() + b.await.unwrap())
/// })
/// .await;
/// assert_eq!(r.unwrap(), Some(3));
/// # });
/// ```
///
/// Tasks and the body fail with [`AnyError`], which every anyio error and any
/// `std::error::Error` converts into with `?`, so a body or task ending in `Ok(())` needs no
/// annotation. For a group whose tasks fail with an error type of your own, see
/// [`TaskGroup::scope`].
#[doc(alias = "create_task_group")]
pub fn task_group<T, B, Fut>(body: B) -> impl Future<Output = Result<Option<T>, GroupError<AnyError>>>
where
    B: FnOnce(TaskGroup<AnyError>) -> Fut,
    Fut: Future<Output = Result<T, AnyError>>,
{
    run_group(body)
}

impl<E: AsCancelled + Send + 'static> TaskGroup<E> {
    /// Runs `body` with a new task group whose tasks fail with `E`, as [`task_group`] does
    /// with [`AnyError`]: the same rules, the same cancel safety. Name `E` on the closure's
    /// argument.
    ///
    /// # Cancel safety
    ///
    /// As [`task_group`].
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{TaskGroup, streams::StreamError};
    ///
    /// let r = TaskGroup::scope(|tg: TaskGroup<StreamError>| async move {
    ///     tg.spawn(async { Err::<(), _>(StreamError::EndOfStream) });
    ///     Ok(())
    /// })
    /// .await;
    /// assert!(matches!(r.unwrap_err().into_errors()[..], [StreamError::EndOfStream]));
    /// # });
    /// ```
    #[doc(alias = "create_task_group")]
    pub fn scope<T, B, Fut>(body: B) -> impl Future<Output = Result<Option<T>, GroupError<E>>>
    where
        B: FnOnce(TaskGroup<E>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        run_group(body)
    }
}

async fn run_group<T, E, B, Fut>(body: B) -> Result<Option<T>, GroupError<E>>
where
    B: FnOnce(TaskGroup<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: AsCancelled + Send + 'static,
{
    let shared = Arc::new(GroupShared::<E>::new());
    let tg = TaskGroup { shared: shared.clone() };
    let mut guard = DropGuard { shared: shared.clone(), done: false };
    let node = shared.node.clone();

    // The body and the wait for the children both run inside the group's scope, so that its
    // deadline and cancellation keep reaching the children while the group waits (trio).
    let inner = {
        let shared = shared.clone();
        let node = node.clone();
        async move {
            // `body(tg)` is called inside the first poll, so a panic in the closure itself is
            // caught too and the group still cancels and joins its tasks.
            let body_out = CatchUnwind { inner: async move { body(tg).await } }.await;
            let body_ok = match body_out {
                Err(panic) => {
                    shared.record(Failure::Panic(panic));
                    None
                }
                Ok(Err(e)) if !(e.as_cancelled().is_some() && node.is_effectively_cancelled()) => {
                    shared.record(Failure::Error(e));
                    None
                }
                Ok(other) => Some(other),
            };
            // Waiting for the children is not a cancellation point (trio's Abort.FAILED).
            poll_fn(|cx| shared.poll_children_done(cx)).await;
            body_ok
        }
    };
    let body_ok = InScope::new(node.clone(), inner).await;
    guard.done = true;
    // A group's exit always yields once, even with no children (AnyIO's rule).
    cancel_shielded_checkpoint().await;

    let (errors, mut panics) = {
        let mut st = lock(&shared.state);
        (std::mem::take(&mut st.errors), std::mem::take(&mut st.panics))
    };
    if !panics.is_empty() {
        resume_unwind(panics.swap_remove(0));
    }
    if !errors.is_empty() {
        return Err(GroupError::Failed(errors));
    }
    match body_ok {
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(e)) => {
            if catches(&node, &e) {
                Ok(None)
            } else {
                let c = e.as_cancelled().cloned().unwrap_or_else(|| node.cancelled_error());
                Err(GroupError::Cancelled(c))
            }
        }
        None => unreachable!("a failed body is recorded as a failure"),
    }
}

/// A handle to a running task group, passed to the body of [`task_group`]. Cheap to clone;
/// clones can be moved into the group's tasks so they can spawn siblings.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{task_group, AnyError};
/// task_group(|tg| async move {
///     let tg2 = tg.clone();
///     tg.spawn(async move {
///         tg2.spawn(async { Ok::<_, AnyError>(()) }); // a sibling
///         Ok(())
///     });
///     Ok::<_, AnyError>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct TaskGroup<E> {
    shared: Arc<GroupShared<E>>,
}

impl<E> Clone for TaskGroup<E> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<E> fmt::Debug for TaskGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("running", &self.shared.children.running())
            .field("closed", &self.shared.children.is_closed())
            .field("cancel_called", &self.shared.node.cancel_called())
            .finish()
    }
}

/// The error of [`TaskGroup::try_spawn`] on a closed group; it hands the future back.
pub struct GroupClosed<F>(pub F);

impl<F> fmt::Debug for GroupClosed<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupClosed(..)")
    }
}

impl<F> fmt::Display for GroupClosed<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the task group is closed; no new tasks can be spawned into it")
    }
}

impl<F> StdError for GroupClosed<F> {}

impl<E: AsCancelled + Send + 'static> TaskGroup<E> {
    /// Spawns `fut` as a task of the group (AnyIO's `start_soon`) and returns a handle that
    /// yields its result. The task runs in the group's cancel scope; its failure fails the
    /// group whether or not anyone awaits the handle.
    ///
    /// A task spawned into a cancelled group still starts and runs until its first checkpoint.
    ///
    /// # Panics
    ///
    /// Panics if the group is closed (it already finished waiting for its tasks); use
    /// [`try_spawn`](Self::try_spawn) to get an error instead. Panics if no runtime can be
    /// found.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task_group, AnyError};
    /// let r = task_group(|tg| async move {
    ///     let h = tg.spawn(async { Ok::<_, AnyError>("done") });
    ///     Ok(h.await.unwrap())
    /// })
    /// .await;
    /// assert_eq!(r.unwrap(), Some("done"));
    /// # });
    /// ```
    ///
    /// A task run for its effect, whose body is a `loop` or only ever returns `Ok(())`, is
    /// easier to write with [`start_soon`](Self::start_soon): its value type is fixed to `()`,
    /// so nothing needs annotating.
    pub fn spawn<T, F>(&self, fut: F) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        match self.try_spawn(fut) {
            Ok(h) => h,
            Err(_) => panic!("{GROUP_CLOSED}"),
        }
    }

    /// Spawns `fut`, a task run for its effect, as a task of the group (AnyIO's
    /// `start_soon`). The same as [`spawn`](Self::spawn) with the value type fixed to `()`:
    /// a task whose body is a `loop` that ends only through `?`, or that returns `Ok(())`,
    /// then needs no type annotation (with `spawn`, Rust cannot tell what value such a task
    /// would produce).
    ///
    /// # Panics
    ///
    /// As [`spawn`](Self::spawn): if the group is closed, or if no runtime can be found.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use anyio::{sleep, task_group};
    /// let ticks = Arc::new(AtomicU32::new(0));
    /// let seen = ticks.clone();
    /// task_group(|tg| async move {
    ///     // A heartbeat: a loop that ends only when the group's cancellation reaches `?`.
    ///     tg.start_soon(async move {
    ///         loop {
    ///             sleep(Duration::from_millis(5)).await?;
    ///             seen.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     });
    ///     while ticks.load(Ordering::Relaxed) < 3 {
    ///         sleep(Duration::from_millis(1)).await?;
    ///     }
    ///     tg.cancel();
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn start_soon<F>(&self, fut: F) -> TaskHandle<()>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.spawn(fut)
    }

    /// Like [`spawn`](Self::spawn), but returns the future in [`GroupClosed`] if the group is
    /// closed.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task_group, AnyError, TaskGroup};
    /// let mut leaked: Option<TaskGroup<AnyError>> = None;
    /// task_group(|tg| { leaked = Some(tg.clone()); async { Ok::<_, AnyError>(()) } }).await.unwrap();
    /// assert!(leaked.unwrap().try_spawn(async { Ok(()) }).is_err());
    /// # });
    /// ```
    pub fn try_spawn<T, F>(&self, fut: F) -> Result<TaskHandle<T>, GroupClosed<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_inner(fut, None, std::any::type_name::<F>().into())
    }

    /// [`spawn`](Self::spawn), with a name for the task (AnyIO's `start_soon(..., name=)`;
    /// the default name is the future's type name), as [`current_task`](super::current_task)
    /// and [`running_tasks`](super::running_tasks) report it.
    ///
    /// # Panics
    ///
    /// As [`spawn`](Self::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task::current_task, task_group, AnyError};
    /// task_group(|tg| async move {
    ///     let h = tg.spawn_named("worker", async { Ok::<_, AnyError>(current_task().unwrap().name) });
    ///     assert_eq!(h.await.unwrap(), "worker");
    ///     Ok::<_, AnyError>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn spawn_named<T, F>(&self, name: impl Into<TaskName>, fut: F) -> TaskHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        match self.spawn_inner(fut, None, name.into()) {
            Ok(h) => h,
            Err(_) => panic!("{GROUP_CLOSED}"),
        }
    }

    fn spawn_inner<T, F>(
        &self,
        fut: F,
        start: Option<Arc<dyn StartSink<E>>>,
        name: TaskName,
    ) -> Result<TaskHandle<T>, GroupClosed<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        // Find the runtime first: if there is none this panics before the task is counted in,
        // so the group does not wait for a task that never started.
        let rt = self.shared.rt.get_or_init(rt::current);
        self.shared.reap();
        // The task's node and its body (the `Child` below) share one allocation; the runtime
        // gets a `RawTask` it can spawn without boxing.
        let cell = Node::new_task_cell::<Child<T, E, F>>(TaskMeta::new(self.shared.host, name));
        let counted = match self.shared.children.add() {
            Added::Closed => return Err(GroupClosed(fut)),
            Added::First => GroupRef::first_child(&self.shared),
            Added::Another => GroupRef::another_child(&self.shared),
        };
        // Until the task is handed over, an unwind counts it out, so the group never waits for
        // a task that never ran.
        let counted = CountedIn(Some(counted));
        let node = cell.node();
        match &start {
            // A task started with `start()` runs under the caller's scope until it signals,
            // then moves into the group (trio's re-parenting): the caller's cancellation
            // reaches it only while it starts, the group's only once it has started.
            Some(sink) => {
                node.enter_fresh(current_arc());
                sink.bind(node.clone(), self.shared.node.clone());
            }
            None => {
                node.enter_fresh(Some(self.shared.node.clone()));
            }
        }
        // Off by default: then one relaxed load, nothing else. The last step that can fail:
        // from the `Child` on, its drop unlinks and counts out.
        let tracked = super::info::is_tracking_tasks();
        if tracked {
            let run = *self.shared.run.get_or_init(|| crate::rt::run_state::key_of(rt));
            super::registry::link(&node, run);
        }
        let child = Child {
            task: ChildTask {
                origin: context::thread_key() | usize::from(tracked),
                checked: 0,
                rt: None,
                // SAFETY: kept in the cell's body only (the `Child` started below).
                node: unsafe { cell.body_node() },
                group: counted.hand_over(),
                _value: PhantomData,
                start: start.map(Box::new),
            },
            fut: Some(fut),
        };
        if let Some(hold) = rt.spawn_task_held(cell.start(child)) {
            node.task.keep(hold);
        }
        Ok(TaskHandle::new(node))
    }

    /// Spawns the task built by `f` and waits until it signals readiness with
    /// [`TaskStatus::started`], returning the value it passes (trio's `nursery.start`). The
    /// task then keeps running in the group.
    ///
    /// # Errors
    ///
    /// - [`StartError::Failed`] with the task's error if it fails before signalling (the group
    ///   is not affected); a failure after signalling goes to the group as usual.
    /// - [`StartError::NotStarted`] if the task finished without signalling.
    /// - [`StartError::Cancelled`] if the caller's scope was cancelled while waiting (only this
    ///   task is cancelled, and `start` waits for it to finish) or the task was cancelled
    ///   before signalling.
    /// - [`StartError::GroupClosed`] if the group is closed.
    ///
    /// A panic in the task before it signals is re-raised here.
    ///
    /// # Cancel safety
    ///
    /// Until it signals, the task runs under the caller's scope (as in trio): if the caller's
    /// scope is cancelled, the starting task is cancelled and `start` waits for it, and a value
    /// it still signals (from a shielded section, say) is returned. Once it has signalled, the
    /// task belongs to the group and the caller's scope no longer reaches it. Dropping the
    /// returned future cancels the starting task only if it has not signalled yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task_group, AnyError};
    /// task_group(|tg| async move {
    ///     let port = tg
    ///         .start(|status| async move {
    ///             status.started(8080u16);
    ///             Ok::<_, AnyError>(()) // a server would keep serving here
    ///         })
    ///         .await
    ///         .unwrap();
    ///     assert_eq!(port, 8080);
    ///     Ok::<_, AnyError>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub async fn start<V, F, Fut>(&self, f: F) -> Result<V, StartError<E>>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        V: Send + 'static,
    {
        self.start_inner(std::any::type_name::<Fut>().into(), f).await
    }

    /// As [`start`](Self::start), with the task named `name` (AnyIO's `tg.start(..., name=)`):
    /// the name [`current_task`](super::current_task) and
    /// [`running_tasks`](super::running_tasks) report, and the `tracing` span's.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    ///
    /// # Cancel safety
    ///
    /// As [`start`](Self::start).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task::current_task, task_group, AnyError};
    /// task_group(|tg| async move {
    ///     let name = tg
    ///         .start_named("listener", |status| async move {
    ///             status.started(current_task().unwrap().name);
    ///             Ok::<_, AnyError>(())
    ///         })
    ///         .await
    ///         .unwrap();
    ///     assert_eq!(name, "listener");
    ///     Ok::<_, AnyError>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub async fn start_named<V, F, Fut>(&self, name: impl Into<TaskName>, f: F) -> Result<V, StartError<E>>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        V: Send + 'static,
    {
        self.start_inner(name.into(), f).await
    }

    async fn start_inner<V, F, Fut>(&self, name: TaskName, f: F) -> Result<V, StartError<E>>
    where
        F: FnOnce(TaskStatus<V>) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        V: Send + 'static,
    {
        let start = Arc::new(StartShared::<V, E>::new());
        let fut = f(TaskStatus::new(start.clone()));
        let sink: Arc<dyn StartSink<E>> = start.clone();
        let node = match self.spawn_inner::<(), _>(fut, Some(sink), name) {
            // The handle is dropped (the task's value is `()`, its outcome goes to the group).
            Ok(handle) => handle.node().clone(),
            Err(_) => return Err(StartError::GroupClosed),
        };
        let mut waiter = StartWaiter { start, node, done: false };
        poll_fn(|cx| waiter.poll(cx)).await
    }

    /// Cancels the group's scope: the body and every task see cancellation at their next
    /// checkpoint (AnyIO's `tg.cancel_scope.cancel()`).
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task_group, time::sleep_forever};
    /// let r = task_group(|tg| async move {
    ///     tg.start_soon(async { sleep_forever().await?; Ok(()) });
    ///     tg.cancel();
    ///     Ok(())
    /// })
    /// .await;
    /// assert_eq!(r.unwrap(), Some(()));
    /// # });
    /// ```
    pub fn cancel(&self) {
        self.shared.node.cancel(CancelSource::Explicit, None);
    }

    /// The group's cancel scope, to read or change its deadline and shield or to cancel it.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task_group, AnyError};
    /// task_group(|tg| async move {
    ///     assert!(!tg.cancel_scope().cancel_called());
    ///     Ok::<_, AnyError>(())
    /// }).await.unwrap();
    /// # });
    /// ```
    pub fn cancel_scope(&self) -> CancelScope {
        CancelScope::from_node(self.shared.node.clone())
    }
}

/// The most finished task nodes a group keeps for its spawner to free (see
/// `GroupShared::keep_finished`).
const KEPT_FINISHED: usize = 64;

/// The largest task body (`Child`, the future included) whose node is kept for the spawner
/// to free: with the node, about a kilobyte, so a group keeps at most about 64 KiB.
const KEPT_BODY_MAX: usize = 768;

struct GroupShared<E> {
    node: NodeArc,
    /// The task whose body opened the group: its tasks' parent (AnyIO's `parent_id`).
    host: Option<super::id::TaskId>,
    rt: OnceLock<RuntimeHandle>,
    /// The run's key for task tracking, found once (asking a runtime its id is not free).
    run: OnceLock<crate::rt::run_state::RunKey>,
    /// Running tasks, and whether the group takes no more (spawning and finishing take no
    /// lock). The tasks hold one reference to this between them (see `GroupRef`).
    children: Children,
    /// Nodes of tasks that finished on another thread than the one that spawned them, kept
    /// so that the next spawn (or the join) frees them on its own thread (`keep_finished`).
    finished: SpinMutex<Vec<NodeArc>>,
    /// `finished` is not empty: lets a spawn skip its lock.
    has_finished: AtomicBool,
    state: Mutex<GroupState<E>>,
}

struct GroupState<E> {
    orphaned: bool,
    errors: Vec<E>,
    panics: Vec<Panic>,
    waker: Option<Waker>,
}

impl<E> GroupShared<E> {
    fn new() -> Self {
        Self {
            node: Node::new_arc(false),
            host: super::id::current_task_id(),
            rt: OnceLock::new(),
            run: OnceLock::new(),
            children: Children::new(),
            finished: SpinMutex::new(Vec::new()),
            has_finished: AtomicBool::new(false),
            state: Mutex::new(GroupState {
                orphaned: false,
                errors: Vec::new(),
                panics: Vec::new(),
                waker: None,
            }),
        }
    }

    /// Records a failure and cancels the group (outside the lock: cancelling wakes tasks).
    fn record(&self, failure: Failure<E>) {
        #[cfg(feature = "tracing")]
        match &failure {
            Failure::Error(_) => {
                tracing::debug!(target: "anyio::task", "task failed: cancelling its task group")
            }
            Failure::Panic(_) => {
                tracing::debug!(target: "anyio::task", "task panicked: cancelling its task group")
            }
        }
        let unreported = {
            let mut st = lock(&self.state);
            if st.orphaned {
                Some(failure)
            } else {
                match failure {
                    Failure::Error(e) => st.errors.push(e),
                    Failure::Panic(p) => st.panics.push(p),
                }
                None
            }
        };
        // Nobody will join an orphaned group: its failures are dropped, here, by a task that
        // still has to count itself out; a destructor's panic must not stop it.
        if let Some(f) = unreported {
            let _ = catch_unwind(AssertUnwindSafe(|| drop(f)));
        }
        self.node.cancel(CancelSource::GroupChildFailed, None);
    }

    /// Runs `f`, a step of a task's ending that runs user code (a destructor, `as_cancelled`);
    /// a panic there is the task's: recorded for the group to re-raise, and `None` returned,
    /// so the task still gets counted out.
    fn catch<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(p) => {
                self.record(Failure::Panic(p));
                None
            }
        }
    }

    /// Keeps a reference to the node of a task that finished on another thread than its
    /// spawner's, so that the node's allocation is freed where it was made: by the next spawn
    /// into the group, or by the join. A task node freed by the worker that finished it put
    /// that worker and the spawning thread on glibc's arena lock for every task (`strace`:
    /// 80,646 `futex` calls for 100,000 tasks on tokio multi-thread, against 1,757 for
    /// `JoinSet`, which frees its tasks on the joining thread). At most `KEPT_FINISHED` small
    /// cells are kept (`Child::poll` keeps none of a large future's); beyond that the worker
    /// frees the node, as before. Clones only when there is room, so the caller's reference
    /// is never the last one here and nothing is freed under, or by, this call.
    fn keep_finished(&self, node: &NodeArc) {
        let mut kept = self.finished.lock();
        if kept.len() < KEPT_FINISHED {
            kept.push(NodeArc::clone(node));
            self.has_finished.store(true, Ordering::Relaxed);
        }
    }

    /// Frees the nodes `keep_finished` kept, on this thread. One relaxed load when there are
    /// none (always, when tasks finish on the thread that spawned them).
    #[inline]
    fn reap(&self) {
        if self.has_finished.load(Ordering::Relaxed) {
            self.reap_kept();
        }
    }

    /// Frees the kept nodes in batches taken under the lock and dropped outside it (a node's
    /// drop may run waker destructors, which may spawn into this group). The list keeps its
    /// capacity, so a worker never allocates it again for this thread to free.
    #[cold]
    fn reap_kept(&self) {
        loop {
            let mut batch: [Option<NodeArc>; 16] = Default::default();
            let more = {
                let mut kept = self.finished.lock();
                for slot in &mut batch {
                    match kept.pop() {
                        Some(node) => *slot = Some(node),
                        None => break,
                    }
                }
                let more = !kept.is_empty();
                self.has_finished.store(more, Ordering::Relaxed);
                more
            };
            drop(batch);
            if !more {
                return;
            }
        }
    }

    fn poll_children_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.reap();
        // Publish the waker before trying to close, so that a task finishing in between
        // finds it (it takes the same lock after bringing the count to zero).
        lock(&self.state).waker = Some(cx.waker().clone());
        if self.children.try_close() {
            lock(&self.state).waker = None;
            // Every task kept its node before counting out: none is added after this.
            self.reap();
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A running task's access to its group. The tasks running at one time hold one `Arc` of the
/// group between them, taken by the spawn that counted the first of them in and released by
/// the last to finish (`children.rs`), instead of one each: that was an increment on the
/// spawning thread and a decrement on the finishing worker per task, on a line both write.
struct GroupRef<E> {
    ptr: NonNull<GroupShared<E>>,
}

// SAFETY: it gives access to a `GroupShared<E>` as `&`, as an `Arc<GroupShared<E>>` does, and
// is `Send`/`Sync` exactly when such an `Arc` is.
unsafe impl<E> Send for GroupRef<E> where Arc<GroupShared<E>>: Send {}
// SAFETY: as above.
unsafe impl<E> Sync for GroupRef<E> where Arc<GroupShared<E>>: Sync {}

impl<E> GroupRef<E> {
    /// For the task counted in first (`Added::First`): takes the tasks' reference.
    fn first_child(shared: &Arc<GroupShared<E>>) -> Self {
        // SAFETY: `shared` is a live `Arc`; this reference is released by the task that counts
        // the last of this run of tasks out (`child_done`).
        unsafe { Arc::increment_strong_count(Arc::as_ptr(shared)) };
        Self::another_child(shared)
    }

    /// For a task counted in beside running ones (`Added::Another`), which already hold the
    /// tasks' reference: it lasts until the last of them, this one included, is counted out.
    fn another_child(shared: &Arc<GroupShared<E>>) -> Self {
        Self { ptr: NonNull::from(&**shared) }
    }

    /// Counts this task out; the last one takes the group owner's waker, releases the tasks'
    /// reference, and then wakes the owner.
    ///
    /// # Safety
    ///
    /// Called once per task, as its last use of the group (the group may be freed by it).
    unsafe fn child_done(&self) {
        if self.children.done() {
            let waker = lock(&self.state).waker.take();
            // SAFETY: this task was counted out last, so the tasks' reference (taken by the spawn
            // that counted the first of them in) is still held, and nothing here touches the
            // group after it (the waker is ours now). A spawn racing with this one took a new
            // reference of its own. Released before the wake, which may panic.
            unsafe { Arc::decrement_strong_count(self.ptr.as_ptr()) };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// A task counted into its group and not yet handed to its runtime: dropped (by an unwind),
/// it counts the task out.
struct CountedIn<E>(Option<GroupRef<E>>);

impl<E> CountedIn<E> {
    fn hand_over(mut self) -> GroupRef<E> {
        self.0.take().expect("handed over once")
    }
}

impl<E> Drop for CountedIn<E> {
    fn drop(&mut self) {
        if let Some(group) = self.0.take() {
            // SAFETY: the task was counted in and never ran: this is its one count-out, and
            // `group` is not used after it.
            unsafe { group.child_done() };
        }
    }
}

impl<E> std::ops::Deref for GroupRef<E> {
    type Target = GroupShared<E>;

    fn deref(&self) -> &GroupShared<E> {
        // SAFETY: the tasks' reference keeps the group alive while any task is counted in, and
        // a task uses its `GroupRef` only until it is counted out (`child_done`).
        unsafe { self.ptr.as_ref() }
    }
}

/// Cancels the group for good if the `task_group` future is dropped before it finished.
struct DropGuard<E> {
    shared: Arc<GroupShared<E>>,
    done: bool,
}

impl<E> Drop for DropGuard<E> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.node.cancel(CancelSource::ScopeDropped, None);
            let (errors, panics, waker) = {
                let mut st = lock(&self.shared.state);
                st.orphaned = true;
                (std::mem::take(&mut st.errors), std::mem::take(&mut st.panics), st.waker.take())
            };
            // User values are dropped after the lock is released: their destructors may do
            // anything, spawning into this group included.
            drop((errors, panics, waker));
        }
    }
}

pin_project! {
    /// Catches a panic raised while polling the body, so the group can cancel and join its
    /// tasks before re-raising it (and, in `serve`, so one connection's panic ends only that
    /// connection).
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        pub(crate) inner: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

pin_project! {
    /// A task of a group as handed to the runtime: polls the user's future inside the task's
    /// node with the group's runtime current, catches its panic, and reports its outcome.
    struct Child<T, E, F> {
        task: ChildTask<T, E>,
        // In the task node's allocation with this wrapper (`cancel::cell`): one allocation for
        // node, wrapper and future. Dropped in place (set to `None`) inside the task's scope
        // once it completes.
        #[pin]
        fut: Option<F>,
    }

    impl<T, E, F> PinnedDrop for Child<T, E, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.task.drop_unfinished(this.fut);
        }
    }
}

/// Everything of a [`Child`] but its future.
struct ChildTask<T, E> {
    /// The spawning thread (`context::thread_key`, an address, so its low bit is free) with,
    /// in the low bit, whether its node is in `running_tasks`'s registry (task tracking was on
    /// when it was spawned). One word for both: the task's cell is one allocation with its
    /// node, and its size decides which of glibc's bins serves it (see `docs/benchmarks.md`).
    origin: usize,
    /// The cancellation epoch at which its node last passed a check (see
    /// `task::id::enter_child_cached`).
    checked: u64,
    /// Its own handle to the group's runtime, once it was polled where another runtime (or
    /// none) was current: moved in and out of the thread's slot on each such poll
    /// (`rt::enter_moved`).
    rt: Option<RuntimeHandle>,
    /// The task's cancel node, which also holds its metadata and its outcome.
    node: BodyNode,
    group: GroupRef<E>,
    _value: PhantomData<fn() -> T>,
    /// Boxed (a thin pointer) for the size of every task's cell, as `origin`: only the tasks
    /// of `start()` have one, and that call allocates anyway.
    #[allow(clippy::redundant_allocation)]
    start: Option<Box<Arc<dyn StartSink<E>>>>,
}

/// The spawning thread (`context::thread_key`) in a `ChildTask::origin` (a free function, so
/// that reading it borrows only that field while the task's entry guard holds another).
fn spawned_on(origin: usize) -> usize {
    origin & !1
}

/// Whether a task's node is in the task registry (the low bit of `ChildTask::origin`), clearing
/// the bit: the caller unlinks it.
fn untrack(origin: &mut usize) -> bool {
    let tracked = *origin & 1 != 0;
    *origin &= !1;
    tracked
}

impl<T: Send + 'static, E: AsCancelled, F: Future<Output = Result<T, E>>> Future for Child<T, E, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let proj = self.project();
        let (this, mut fut_slot) = (proj.task, proj.fut);
        let Some(fut) = fut_slot.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        let node = &this.node;
        // The group's runtime is set before any task is spawned (see `spawn_inner`).
        let rt = this.group.rt.get().expect("a group's runtime is set before its first task");
        let meta = node.entry.meta().expect("a task's node carries its metadata");
        let mut entered = enter_child_cached(meta, node, &mut this.checked);
        let polled = if entered.runtime() == rt::handle_addr(rt) {
            catch_unwind(AssertUnwindSafe(|| fut.poll(cx)))
        } else {
            this.rt.get_or_insert_with(|| rt.clone());
            let _rt = rt::enter_moved(&mut this.rt);
            catch_unwind(AssertUnwindSafe(|| fut.poll(cx)))
        };
        let mut outcome = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(r)) => Ok(r),
            Err(p) => Err(p),
        };
        // Drop the future inside its task and scope before reporting, so its destructors run
        // first; a destructor that panics counts as the task panicking.
        let dropped = catch_unwind(AssertUnwindSafe(|| fut_slot.set(None)));
        // Out of the task's scope, whose node may be released below, but still in the task,
        // so that what the report emits belongs to it. (Leaving the task and entering it
        // again would exit and re-enter its span, and a subscriber that panicked there
        // would unwind past the report: the group would wait for the task for ever.)
        entered.leave_node();
        if let Err(p) = dropped {
            outcome = Err(p);
        }
        if untrack(&mut this.origin) {
            super::registry::unlink(node);
        }
        // Freed where it was allocated (see `keep_finished`); a large future's cell is not
        // worth keeping (it is outside the allocator's per-thread caches anyway).
        if std::mem::size_of::<Self>() <= KEPT_BODY_MAX && spawned_on(this.origin) != context::thread_key() {
            this.group.keep_finished(&this.node);
        }
        ChildTask::<T, E>::finish(&this.node, &this.group, &mut this.start, outcome);
        drop(entered);
        Poll::Ready(())
    }
}

impl<T: Send + 'static, E: AsCancelled> ChildTask<T, E> {
    /// Reports the outcome (an associated function over the fields it needs, so that the
    /// task's metadata stays borrowed by the entered task meanwhile).
    fn finish(
        node: &NodeArc,
        group: &GroupRef<E>,
        start: &mut Option<Box<Arc<dyn StartSink<E>>>>,
        outcome: Result<Result<T, E>, Panic>,
    ) {
        let before_start = start.as_ref().is_some_and(|s| !s.is_started());
        // User code runs here too (`as_cancelled`, the error's destructor at the end of its
        // arm): a panic is the task's.
        let classified = group.catch(|| match outcome {
            Ok(Ok(v)) => {
                if before_start {
                    start.as_ref().expect("checked").not_started();
                }
                (SlotOutcome::Done, Some(Box::new(v) as Box<dyn Any + Send>))
            }
            Ok(Err(e)) if e.as_cancelled().is_some() && node.is_effectively_cancelled() => {
                if before_start {
                    let c = e.as_cancelled().cloned().expect("checked");
                    start.as_ref().expect("checked").cancelled(c);
                }
                (SlotOutcome::Cancelled, None)
            }
            Ok(Err(e)) => {
                let undelivered = match &*start {
                    Some(s) if before_start => s.failed(Failure::Error(e)),
                    _ => Some(Failure::Error(e)),
                };
                if let Some(f) = undelivered {
                    group.record(f);
                }
                (SlotOutcome::Failed, None)
            }
            Err(p) => {
                let undelivered = match &*start {
                    Some(s) if before_start => s.failed(Failure::Panic(p)),
                    _ => Some(Failure::Panic(p)),
                };
                if let Some(f) = undelivered {
                    group.record(f);
                }
                (SlotOutcome::Panicked, None)
            }
        });
        let (outcome, value) = classified.unwrap_or((SlotOutcome::Panicked, None));
        // Both may run user destructors (the value, when nobody holds the task's handle; a
        // value signalled to a `start` caller that left): a panic there is the task's, and it
        // must not skip counting the task out, or the group would wait for it for ever.
        group.catch(|| node.task.complete(outcome, value));
        group.catch(|| drop(start.take()));
        // SAFETY: once per task (its future is gone, so neither `poll` nor `drop_unfinished`
        // gets here again), and the last use of the group.
        unsafe { group.child_done() };
    }
}

impl<T, E> ChildTask<T, E> {
    /// The `Child`'s drop: `fut` is its pinned future slot.
    fn drop_unfinished<F>(&mut self, mut fut: Pin<&mut Option<F>>) {
        // However the task ended, its node leaves the registry before the task lets go of it
        // (normally `poll` did this already).
        if untrack(&mut self.origin) {
            super::registry::unlink(&self.node);
        }
        if fut.is_some() {
            // The runtime dropped the task before it finished (it is shutting down): the task
            // counts as cancelled, and the group must not wait for it forever. The future is
            // dropped in place (it is pinned), inside its scope; a destructor that panics is
            // reported to the group as the task's panic, after the bookkeeping is done.
            self.node.cancel(CancelSource::ScopeDropped, None);
            let dropped = catch_unwind(AssertUnwindSafe(|| {
                let _task = enter_task(self.node.entry.meta().expect("a task's node carries its metadata"));
                let _g = enter(&self.node);
                fut.set(None);
            }));
            let start = self.start.take();
            self.group.catch(|| {
                if let Some(s) = start {
                    if !s.is_started() {
                        s.cancelled(self.node.cancelled_error());
                    }
                }
            });
            match dropped {
                Ok(()) => self.node.task.complete(SlotOutcome::Cancelled, None),
                Err(p) => {
                    self.group.record(Failure::Panic(p));
                    self.node.task.complete(SlotOutcome::Panicked, None);
                }
            }
            // SAFETY: once per task (it did not finish, so `finish` never ran), and the last
            // use of the group.
            unsafe { self.group.child_done() };
        }
    }
}

/// The waiting side of [`TaskGroup::start`]. Not a cancellation point of its own: the
/// starting task runs under the caller's scope, so the caller's cancellation reaches the task,
/// and its outcome (a value it managed to signal, or the cancellation) comes back here.
struct StartWaiter<V, E> {
    start: Arc<StartShared<V, E>>,
    node: NodeArc,
    done: bool,
}

impl<V, E> StartWaiter<V, E> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<V, StartError<E>>> {
        match self.start.poll_result(cx) {
            None => Poll::Pending,
            Some(r) => {
                self.done = true;
                Poll::Ready(match r {
                    Ok(v) => Ok(v),
                    Err(StartFailure::Failed(Failure::Error(e))) => Err(StartError::Failed(e)),
                    Err(StartFailure::Failed(Failure::Panic(p))) => resume_unwind(p),
                    Err(StartFailure::NotStarted) => Err(StartError::NotStarted),
                    Err(StartFailure::Cancelled(c)) => Err(StartError::Cancelled(c)),
                })
            }
        }
    }
}

impl<V, E> Drop for StartWaiter<V, E> {
    fn drop(&mut self) {
        // Nobody waits for the task any more: cancel it if (and only if) it has not started;
        // a started task belongs to the group now.
        if !self.done && self.start.abandon() {
            self.node.cancel(CancelSource::ScopeDropped, None);
        }
    }
}

/// The error of [`task_group`]: the failures of its tasks and body, or the cancellation of an
/// enclosing scope.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{task_group, AnyError, task::GroupError};
/// let r = task_group(|tg| async move {
///     tg.spawn(async { Err::<(), _>(AnyError::msg("boom")) });
///     Ok::<_, AnyError>(())
/// })
/// .await;
/// match r {
///     Err(GroupError::Failed(errors)) => assert_eq!(errors[0].to_string(), "boom"),
///     other => panic!("unexpected {other:?}"),
/// }
/// # });
/// ```
#[derive(Debug)]
#[doc(alias = "ExceptionGroup")]
pub enum GroupError<E> {
    /// Every failure of the group's tasks and body, in the order they happened (never empty).
    Failed(Vec<E>),
    /// An enclosing scope was cancelled; propagate this so that scope can catch it.
    Cancelled(Cancelled),
}

impl<E> GroupError<E> {
    /// The failures, or an empty vector for a cancellation.
    ///
    /// ```
    /// let e: anyio::task::GroupError<std::fmt::Error> = anyio::task::GroupError::Failed(vec![std::fmt::Error]);
    /// assert_eq!(e.into_errors().len(), 1);
    /// ```
    pub fn into_errors(self) -> Vec<E> {
        match self {
            GroupError::Failed(v) => v,
            GroupError::Cancelled(_) => Vec::new(),
        }
    }

    /// The first failure, if any.
    ///
    /// ```
    /// let e: anyio::task::GroupError<std::fmt::Error> = anyio::task::GroupError::Failed(vec![std::fmt::Error]);
    /// assert!(e.first().is_some());
    /// ```
    pub fn first(&self) -> Option<&E> {
        match self {
            GroupError::Failed(v) => v.first(),
            GroupError::Cancelled(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::Failed(errors) => {
                write!(f, "{} unhandled error(s) in a task group", errors.len())?;
                for (i, e) in errors.iter().enumerate() {
                    write!(f, "\n  [{}] {e}", i + 1)?;
                }
                Ok(())
            }
            GroupError::Cancelled(c) => c.fmt(f),
        }
    }
}

impl<E: StdError + 'static> StdError for GroupError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            GroupError::Failed(v) => v.first().map(|e| e as &(dyn StdError + 'static)),
            GroupError::Cancelled(c) => Some(c),
        }
    }
}

impl<E> AsCancelled for GroupError<E> {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            GroupError::Cancelled(c) => Some(c),
            GroupError::Failed(_) => None,
        }
    }
}

impl<E: StdError + Send + Sync + 'static> From<GroupError<E>> for AnyError {
    fn from(e: GroupError<E>) -> Self {
        match e {
            GroupError::Cancelled(c) => AnyError::from(c),
            other => AnyError::wrap(other),
        }
    }
}

/// Drops the future that could not be spawned (it need not be `Send + Sync`), keeping the
/// message.
impl<F> From<GroupClosed<F>> for AnyError {
    fn from(_: GroupClosed<F>) -> Self {
        AnyError::wrap(GroupClosed(()))
    }
}
