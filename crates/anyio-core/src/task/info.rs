//! Task introspection (AnyIO's `get_current_task`, `get_running_tasks` and `TaskInfo`): the
//! running task's id, parent and name, and, with task tracking on, every task of the run.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, Weak};

use super::id::{with_current_meta, TaskId, TaskName};
use crate::cancel::node::Node;
use crate::rt::run_state::{key_of, RunKey};

/// What a task is (AnyIO's `TaskInfo`), as [`current_task`] and [`running_tasks`] report it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// The task whose body opened the task group it runs in; `None` for a run's main task and
    /// for tasks run from other threads.
    pub parent_id: Option<TaskId>,
    /// Its name: the one given to [`TaskGroup::spawn_named`](super::TaskGroup::spawn_named),
    /// else the type name of its future.
    pub name: String,
    /// Whether a cancellation is pending for it where it was looked at (AnyIO's
    /// `has_pending_cancellation()`): for the current task, at the current point; for another
    /// task, in the task's own scope (not the scopes inside it).
    pub cancel_pending: bool,
}

/// The task being run on this thread (AnyIO's `get_current_task`); `None` outside anyio's
/// tasks.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let me = anyio::task::current_task().unwrap();
/// assert_eq!(Some(me.id), anyio::task::current_task_id());
/// assert_eq!(me.parent_id, None); // the main task
/// # });
/// ```
#[doc(alias = "get_current_task")]
pub fn current_task() -> Option<TaskInfo> {
    with_current_meta(|meta| {
        meta.map(|m| TaskInfo {
            id: m.id,
            parent_id: m.parent,
            name: m.name.to_string(),
            cancel_pending: crate::cancel::current::check_current().is_err(),
        })
    })
}

/// The error of [`running_tasks`] while task tracking is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackingOff;

impl fmt::Display for TrackingOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "task tracking is off: call anyio::task::track_tasks(true) before spawning the tasks to list",
        )
    }
}

impl StdError for TrackingOff {}

impl From<TrackingOff> for crate::error::AnyError {
    fn from(e: TrackingOff) -> Self {
        crate::error::AnyError::other(e)
    }
}

/// Whether spawned tasks are recorded for [`running_tasks`]. Off by default: a spawn then
/// costs nothing for it.
static TRACKING: AtomicBool = AtomicBool::new(false);

/// A tracked task.
struct Tracked {
    id: TaskId,
    run: RunKey,
    parent: Option<TaskId>,
    name: TaskName,
    /// The task's own scope; `None` for a main task, which runs in the never-cancelled root.
    node: Option<Weak<Node>>,
}

/// The tracked tasks; a task keeps its slot's key and frees it when it finishes (a slab: an
/// insert and a removal cost a few instructions each, listing sorts).
static REGISTRY: Mutex<Option<slab::Slab<Tracked>>> = Mutex::new(None);

/// Turns task tracking on or off, for the whole process: with it on, tasks spawned from then
/// on (and runs' main tasks polled from then on) are recorded until they finish, for
/// [`running_tasks`]. It costs a lock per spawn and per finish, so it is off by default.
///
/// # Examples
///
/// ```
/// anyio::task::track_tasks(true);
/// assert!(anyio::task::is_tracking_tasks());
/// ```
pub fn track_tasks(on: bool) {
    TRACKING.store(on, Ordering::Relaxed);
}

/// Whether task tracking is on (see [`track_tasks`]).
///
/// ```
/// let _ = anyio::task::is_tracking_tasks();
/// ```
#[inline]
pub fn is_tracking_tasks() -> bool {
    TRACKING.load(Ordering::Relaxed)
}

/// A task's slot in the registry (its slab key plus one, so that `Option<Slot>` is one word).
pub(crate) type Slot = std::num::NonZeroUsize;

/// Records a task if tracking is on; returns its slot, to forget it by.
pub(crate) fn track(
    id: TaskId,
    run: RunKey,
    parent: Option<TaskId>,
    name: &TaskName,
    node: Option<Weak<Node>>,
) -> Option<Slot> {
    if !TRACKING.load(Ordering::Relaxed) {
        return None;
    }
    let t = Tracked { id, run, parent, name: name.clone(), node };
    let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    Slot::new(reg.get_or_insert_with(slab::Slab::new).insert(t) + 1)
}

/// Forgets a finished task by its slot.
pub(crate) fn untrack(slot: Slot) {
    let key = slot.get() - 1;
    let gone =
        REGISTRY.lock().unwrap_or_else(PoisonError::into_inner).as_mut().and_then(|r| r.try_remove(key));
    drop(gone);
}

/// Every task of the current run that is recorded and has not finished, in id order (AnyIO's
/// `get_running_tasks`). Tasks are recorded only while [`track_tasks`] is on; the current
/// task is always listed.
///
/// # Errors
///
/// [`TrackingOff`] while task tracking is off.
///
/// # Panics
///
/// Outside a run (no runtime to list the tasks of).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{task::{running_tasks, track_tasks}, task_group, AnyError};
/// track_tasks(true);
/// task_group(|tg| async move {
///     let stop = std::sync::Arc::new(anyio::sync::Event::new());
///     let s = stop.clone();
///     tg.spawn_named("waiter", async move { s.wait().await?; Ok::<_, AnyError>(()) });
///     anyio::lowlevel::checkpoint().await?;
///     assert!(running_tasks()?.iter().any(|t| t.name == "waiter"));
///     stop.set();
///     Ok::<_, AnyError>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[doc(alias = "get_running_tasks")]
pub fn running_tasks() -> Result<Vec<TaskInfo>, TrackingOff> {
    if !TRACKING.load(Ordering::Relaxed) {
        return Err(TrackingOff);
    }
    let run = key_of(&crate::rt::current());
    let current = current_task();
    let mut out: Vec<TaskInfo> = {
        let reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        reg.iter()
            .flat_map(|r| r.iter())
            .filter(|(_, t)| t.run == run)
            .filter_map(|(_, t)| {
                let cancel_pending = match &t.node {
                    Some(node) => node.upgrade()?.is_effectively_cancelled(),
                    None => false,
                };
                Some(TaskInfo { id: t.id, parent_id: t.parent, name: t.name.to_string(), cancel_pending })
            })
            .collect()
    };
    // The current task as it sees itself (its pending cancellation where it stands now).
    if let Some(me) = current {
        out.retain(|t| t.id != me.id);
        out.push(me);
    }
    out.sort_by_key(|t| t.id);
    Ok(out)
}
