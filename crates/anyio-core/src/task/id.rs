//! Task identity: which anyio task is running on this thread right now.
//!
//! Every task a task group spawns, and the main future of `anyio::run`, gets a [`TaskId`] and
//! makes it current for the duration of each of its polls (save and restore, as with the
//! current cancel scope). Owner-tracked primitives (`Lock`, `CapacityLimiter`) use it to tell
//! "the same task again" from another task.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::cancel::cell::NodeArc;
use crate::cancel::node::Node;
use crate::context;

/// Identifies a task started by anyio (a task group's child or the main future of
/// `anyio::run`), unique for the life of the process.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{task_group, AnyError, task::current_task_id};
///
/// let me = current_task_id();
/// task_group(|tg| async move {
///     let child = tg.spawn(async move { Ok::<_, AnyError>(current_task_id()) });
///     assert_ne!(child.await?, me); // a child is another task
///     assert_eq!(current_task_id(), me); // the group's body runs in the calling task
///     Ok::<_, AnyError>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(NonZeroU64);

impl TaskId {
    /// The id as a number.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(anyio::task::current_task_id().unwrap().as_u64() > 0);
    /// # });
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }

    pub(crate) fn next() -> TaskId {
        // Ids come from per-thread blocks, so spawning on many threads does not contend on
        // one counter.
        IDS.with(|ids| {
            let (mut next, mut end) = ids.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
                end = next + BLOCK;
            }
            ids.set((next + 1, end));
            TaskId(NonZeroU64::new(next).expect("task ids start at 1"))
        })
    }

    pub(crate) fn from_raw(raw: u64) -> Option<TaskId> {
        NonZeroU64::new(raw).map(TaskId)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.0)
    }
}

const BLOCK: u64 = 1024;
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The anyio task being polled on this thread, or `None` outside anyio's tasks (in a future
/// spawned straight onto a runtime, say).
///
/// # Examples
///
/// ```
/// assert_eq!(anyio::task::current_task_id(), None); // not inside a task
/// ```
#[doc(alias = "get_current_task")]
pub fn current_task_id() -> Option<TaskId> {
    TaskId::from_raw(context::with(|c| c.task.get()))
}

/// What a task is, for introspection ([`current_task`](super::current_task)): its id, the
/// task that hosts the group it runs in, and its name. Lives in a group task's cancel node
/// (`Node::entry`), or in the pinned future of a runner's main task or a task run from
/// another thread; either way a pointer to it stays valid while the task is entered.
#[derive(Clone, Debug)]
pub(crate) struct TaskMeta {
    pub(crate) id: TaskId,
    pub(crate) parent: Option<TaskId>,
    pub(crate) name: TaskName,
    /// The task's span (`tracing` feature), entered around every poll.
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
}

/// A task's name: the future's type name unless one was given.
pub(crate) type TaskName = std::borrow::Cow<'static, str>;

impl TaskMeta {
    #[inline]
    pub(crate) fn new(parent: Option<TaskId>, name: TaskName) -> Self {
        let id = TaskId::next();
        #[cfg(feature = "tracing")]
        let span = tracing::debug_span!(
            target: "anyio::task",
            "task",
            id = id.as_u64(),
            parent = parent.map(TaskId::as_u64),
            name = %name,
        );
        TaskMeta {
            id,
            parent,
            name,
            #[cfg(feature = "tracing")]
            span,
        }
    }
}

/// The metadata of the task being polled on this thread, if any.
pub(crate) fn with_current_meta<R>(f: impl FnOnce(Option<&TaskMeta>) -> R) -> R {
    let p = context::with(|c| c.meta.get()).cast::<TaskMeta>();
    // SAFETY: a non-null `meta` was set by `enter_task`/`enter_child` from a `&TaskMeta`
    // that the returned guard borrows, and the guard restores the previous value when it
    // drops; guards nest LIFO on one thread. So while it is current, the pointee is alive
    // and not mutably borrowed (task metadata is never mutated after creation).
    f(unsafe { p.as_ref() })
}

/// Makes `meta`'s task the current task, with a fresh coop budget, until the guard drops.
pub(crate) fn enter_task(meta: &TaskMeta) -> TaskEntered<'_> {
    // The span first: a subscriber that panics there must find the context untouched, as
    // there is no guard yet to restore it.
    #[cfg(feature = "tracing")]
    let span = meta.span.enter();
    let prev = context::with(|c| Prev {
        task: c.task.replace(meta.id.as_u64()),
        meta: c.meta.replace(std::ptr::from_ref(meta).cast()),
        budget: c.budget.replace(crate::coop::BUDGET),
        node: c.node(),
        rt: c.rt.get(),
    });
    TaskEntered {
        prev,
        checked: None,
        #[cfg(feature = "tracing")]
        _span: span,
        _borrow: PhantomData,
    }
}

/// As [`enter_task`], and makes `node` the current cancel-scope node too: what a task
/// group's child does around each poll, in one access to the thread's context.
#[inline]
pub(crate) fn enter_child<'a>(meta: &'a TaskMeta, node: &'a NodeArc) -> TaskEntered<'a> {
    enter_child_inner(meta, node, None)
}

/// As [`enter_child`], and carries the task's cached cancellation check
/// (`context::Ctx::checked`) from one poll to the next in `checked`: making a node current
/// forgets the cache, so without this every poll's first checkpoint walked the task's scope
/// chain even when no cancellation had changed anything since the last poll (the epoch tells,
/// see `cancel::epoch`).
#[inline]
pub(crate) fn enter_child_cached<'a>(
    meta: &'a TaskMeta,
    node: &'a NodeArc,
    checked: &'a mut u64,
) -> TaskEntered<'a> {
    enter_child_inner(meta, node, Some(checked))
}

#[inline]
fn enter_child_inner<'a>(
    meta: &'a TaskMeta,
    node: &'a NodeArc,
    checked: Option<&'a mut u64>,
) -> TaskEntered<'a> {
    let node_ptr = NodeArc::as_ptr(node).cast::<()>();
    // The span first, as in `enter_task`.
    #[cfg(feature = "tracing")]
    let span = meta.span.enter();
    let prev = context::with(|c| {
        let prev = Prev {
            task: c.task.replace(meta.id.as_u64()),
            meta: c.meta.replace(std::ptr::from_ref(meta).cast()),
            budget: c.budget.replace(crate::coop::BUDGET),
            node: c.replace_node(node_ptr),
            rt: c.rt.get(),
        };
        if let Some(e) = &checked {
            // The epoch at which this node last passed a check while current (0: never).
            c.checked.set(**e);
        }
        prev
    });
    TaskEntered {
        prev,
        checked: checked.map(|e| (e, node_ptr)),
        #[cfg(feature = "tracing")]
        _span: span,
        _borrow: PhantomData,
    }
}

/// What a [`TaskEntered`] restores, and the runtime that was current.
#[derive(Clone, Copy)]
struct Prev {
    task: u64,
    meta: *const (),
    budget: u32,
    node: *const (),
    rt: *const (),
}

/// Restores the task, budget and node that were current before; leaves the runtime alone (its
/// own guard restores it).
pub(crate) struct TaskEntered<'a> {
    prev: Prev,
    /// Where to keep the cached check of the task's node (see [`enter_child_cached`]).
    checked: Option<(&'a mut u64, *const ())>,
    #[cfg(feature = "tracing")]
    _span: tracing::span::Entered<'a>,
    _borrow: PhantomData<&'a ()>,
}

impl TaskEntered<'_> {
    /// The address of the runtime that was current when the task was entered (see
    /// `crate::context::Ctx::rt`).
    pub(crate) fn runtime(&self) -> *const () {
        self.prev.rt
    }

    /// Makes the node that was current before current again, the task staying entered (its
    /// id, its span): what a finished task does before it reports, since its node may be
    /// released on the way. The cached check is not kept: the task will not poll again.
    pub(crate) fn leave_node(&mut self) {
        self.checked = None;
        let node = self.prev.node;
        context::with(|c| c.set_node(node));
    }
}

impl Drop for TaskEntered<'_> {
    #[inline]
    fn drop(&mut self) {
        let prev = self.prev;
        let keep = self.checked.take();
        context::with(|c| {
            if let Some((slot, node)) = keep {
                // Guards nest, so the task's node is current again here; were it not, the
                // cache would belong to another node and is not kept.
                *slot = if c.node() == node { c.checked.get() } else { 0 };
            }
            c.task.set(prev.task);
            c.meta.set(prev.meta);
            c.budget.set(prev.budget);
            c.set_node(prev.node);
        });
    }
}

pin_project! {
    /// The main future of a runner, given a task id of its own.
    #[derive(Debug)]
    pub struct MainTask<F> {
        meta: TaskMeta,
        // Its entry in `running_tasks`'s registry (task tracking was on at a poll): a node of
        // its own, never entered, unlinked when the main task drops.
        tracked: Option<super::registry::Registered>,
        #[pin]
        fut: F,
    }
}

/// Wraps a runner's main future so it runs as an anyio task (with a [`TaskId`]), named after
/// the future's type (AnyIO names it after the function passed to `run`).
pub fn main_task<F: Future>(fut: F) -> MainTask<F> {
    MainTask { meta: TaskMeta::new(None, std::any::type_name::<F>().into()), tracked: None, fut }
}

impl<F: Future> Future for MainTask<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.tracked.is_none() && super::info::is_tracking_tasks() {
            if let Some(rt) = crate::rt::try_current() {
                let node = Node::new_task_arc(this.meta.clone());
                *this.tracked =
                    Some(super::registry::Registered::link(node, crate::rt::run_state::key_of(&rt)));
            }
        }
        let _task = enter_task(this.meta);
        this.fut.poll(cx)
    }
}
