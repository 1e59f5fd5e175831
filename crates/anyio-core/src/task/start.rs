//! The `start()` handshake: a task signals that it is ready, passing a value back.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Waker};

use super::outcome::{Failure, StartFailure};
use crate::cancel::cell::NodeArc;
use crate::cancel::node::Node;
use crate::error::{AnyError, AsCancelled, Cancelled};
use crate::loom::{lock, Mutex};

/// Passed to the task started by [`TaskGroup::start`](crate::task::TaskGroup::start); the task calls
/// [`started`](Self::started) once it is ready. `started` consumes the status, so a task cannot
/// signal twice: AnyIO's runtime error for that is a compile error here.
///
/// ```compile_fail,E0382
/// fn signal_twice(status: anyio::task::TaskStatus<u16>) {
///     status.started(1);
///     status.started(2); // error[E0382]: use of moved value: `status`
/// }
/// ```
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{task_group, AnyError, task::TaskStatus};
///
/// async fn serve(status: TaskStatus<&'static str>) -> Result<(), AnyError> {
///     // bind a socket here, then:
///     status.started("listening");
///     Ok(())
/// }
///
/// task_group(|tg| async move {
///     assert_eq!(tg.start(serve).await.unwrap(), "listening");
///     Ok::<_, AnyError>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct TaskStatus<V> {
    sink: Arc<dyn ValueSink<V>>,
}

impl<V> fmt::Debug for TaskStatus<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskStatus(..)")
    }
}

impl<V: Send + 'static> TaskStatus<V> {
    pub(crate) fn new<E: Send + 'static>(shared: Arc<StartShared<V, E>>) -> Self {
        Self { sink: shared }
    }

    /// Signals that the task is ready: the waiting `start()` returns `value`, and from now on
    /// the task's failures go to the task group.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task_group, AnyError};
    /// task_group(|tg| async move {
    ///     tg.start(|status| async move { status.started(()); Ok::<_, AnyError>(()) }).await.unwrap();
    ///     Ok::<_, AnyError>(())
    /// }).await.unwrap();
    /// # });
    /// ```
    pub fn started(self, value: V) {
        self.sink.started(value);
    }
}

trait ValueSink<V>: Send + Sync {
    fn started(&self, value: V);
}

/// What the task wrapper tells the waiting `start()`.
pub(crate) trait StartSink<E>: Send + Sync {
    /// Tells the handshake which node to move under which group node once started. Called
    /// before the task is spawned, so before it can signal.
    fn bind(&self, task: NodeArc, group: NodeArc);
    fn is_started(&self) -> bool;
    /// Delivers a failure before `started`; hands it back if nobody waits any more (the
    /// caller then reports it to the group instead, so it is not lost).
    fn failed(&self, failure: Failure<E>) -> Option<Failure<E>>;
    fn not_started(&self);
    fn cancelled(&self, c: Cancelled);
}

enum StartState<V, E> {
    Waiting,
    Started(V),
    Failed(StartFailure<E>),
    Taken,
    /// The waiting `start()` was dropped before the task signalled.
    Abandoned,
}

pub(crate) struct StartShared<V, E> {
    state: Mutex<(StartState<V, E>, bool, Option<Waker>)>,
    /// The task's node and the group's node, to re-parent on `started`.
    nodes: Mutex<Option<(NodeArc, NodeArc)>>,
}

impl<V, E> StartShared<V, E> {
    pub(crate) fn new() -> Self {
        Self { state: Mutex::new((StartState::Waiting, false, None)), nodes: Mutex::new(None) }
    }

    /// Records a failure before `started`, unless an outcome is already there (only the
    /// first counts); hands the failure back if it was not recorded.
    fn fail(&self, failure: StartFailure<E>) -> Option<StartFailure<E>> {
        *lock(&self.nodes) = None;
        let waker = {
            let mut st = lock(&self.state);
            if !matches!(st.0, StartState::Waiting) {
                return Some(failure);
            }
            st.0 = StartState::Failed(failure);
            st.2.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        None
    }

    /// The waiting side went away; returns `true` if the task had not signalled yet (so it
    /// should be cancelled), `false` if it already started (it belongs to the group).
    pub(crate) fn abandon(&self) -> bool {
        let mut st = lock(&self.state);
        if st.1 {
            return false;
        }
        if matches!(st.0, StartState::Waiting) {
            st.0 = StartState::Abandoned;
        }
        true
    }

    pub(crate) fn poll_result(&self, cx: &mut Context<'_>) -> Option<Result<V, StartFailure<E>>> {
        let mut st = lock(&self.state);
        match std::mem::replace(&mut st.0, StartState::Taken) {
            StartState::Waiting => {
                st.0 = StartState::Waiting;
                st.2 = Some(cx.waker().clone());
                None
            }
            StartState::Started(v) => Some(Ok(v)),
            StartState::Failed(f) => Some(Err(f)),
            StartState::Taken | StartState::Abandoned => None,
        }
    }
}

impl<V: Send, E: Send> ValueSink<V> for StartShared<V, E> {
    fn started(&self, value: V) {
        let moved = {
            let mut st = lock(&self.state);
            match st.0 {
                StartState::Waiting => {
                    st.0 = StartState::Started(value);
                    st.1 = true;
                    Some(st.2.take())
                }
                _ => None,
            }
        };
        if let Some(waker) = moved {
            // From now on the task belongs to the group, not to the caller's scope.
            if let Some((task, group)) = lock(&self.nodes).take() {
                Node::reparent(&task, group);
            }
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<V: Send, E: Send> StartSink<E> for StartShared<V, E> {
    fn bind(&self, task: NodeArc, group: NodeArc) {
        *lock(&self.nodes) = Some((task, group));
    }
    fn is_started(&self) -> bool {
        lock(&self.state).1
    }
    fn failed(&self, failure: Failure<E>) -> Option<Failure<E>> {
        match self.fail(StartFailure::Failed(failure)) {
            Some(StartFailure::Failed(f)) => Some(f),
            _ => None,
        }
    }
    fn not_started(&self) {
        let _ = self.fail(StartFailure::NotStarted);
    }
    fn cancelled(&self, c: Cancelled) {
        let _ = self.fail(StartFailure::Cancelled(c));
    }
}

/// Why [`TaskGroup::start`](crate::task::TaskGroup::start) returned no value.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError<E> {
    /// The task failed before signalling; the group is not affected.
    Failed(E),
    /// The task finished without calling [`TaskStatus::started`].
    NotStarted,
    /// The caller's scope, or the task, was cancelled before the task signalled.
    Cancelled(Cancelled),
    /// The task group is closed.
    GroupClosed,
}

impl<E: fmt::Display> fmt::Display for StartError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Failed(e) => write!(f, "the task failed before signalling it started: {e}"),
            StartError::NotStarted => f.write_str(
                "the task finished without calling `TaskStatus::started`; call it once the task is ready",
            ),
            StartError::Cancelled(c) => c.fmt(f),
            StartError::GroupClosed => {
                f.write_str("the task group is closed; no new tasks can be started in it")
            }
        }
    }
}

impl<E: StdError + 'static> StdError for StartError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            StartError::Failed(e) => Some(e),
            StartError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl<E> AsCancelled for StartError<E> {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            StartError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl<E: StdError + Send + Sync + 'static> From<StartError<E>> for AnyError {
    fn from(e: StartError<E>) -> Self {
        match e {
            StartError::Cancelled(c) => AnyError::from(c),
            other => AnyError::wrap(other),
        }
    }
}
