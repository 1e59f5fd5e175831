//! Task introspection (AnyIO's `get_current_task`, `get_running_tasks` and `TaskInfo`): the
//! running task's id, parent and name, and, with task tracking on, every task of the run.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use super::id::{with_current_meta, TaskId};
use crate::rt::run_state::key_of;

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

/// Turns task tracking on or off, for the whole process: with it on, tasks spawned from then
/// on (and runs' main tasks polled from then on) are recorded until they finish, for
/// [`running_tasks`]. It costs an uncontended lock and a few stores per spawn and per finish,
/// so it is off by default.
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
    let mut out = Vec::new();
    super::registry::for_each_task(run, |meta, node| {
        out.push(TaskInfo {
            id: meta.id,
            parent_id: meta.parent,
            name: meta.name.to_string(),
            // A main task's node is never entered nor cancelled: `false`, as AnyIO reports.
            cancel_pending: node.is_effectively_cancelled(),
        });
    });
    // The current task as it sees itself (its pending cancellation where it stands now).
    if let Some(me) = current {
        out.retain(|t| t.id != me.id);
        out.push(me);
    }
    out.sort_by_key(|t| t.id);
    Ok(out)
}
