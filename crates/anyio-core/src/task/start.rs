//! The `start()` handshake: a task signals that it is ready, passing a value back.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Waker};

use super::group::{Failure, StartFailure};
use crate::error::{AsCancelled, Cancelled};
use crate::sync::{lock, Mutex};

/// Passed to the task started by [`TaskGroup::start`](crate::TaskGroup::start); the task calls
/// [`started`](Self::started) once it is ready. `started` consumes the status, so a task cannot
/// signal twice.
///
/// # Examples
///
/// ```
/// # anyio_core::__doc_block_on(async {
/// use anyio_core::{task_group, AnyError, TaskStatus};
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
    /// # anyio_core::__doc_block_on(async {
    /// use anyio_core::{task_group, AnyError};
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
    fn is_started(&self) -> bool;
    fn failed(&self, failure: Failure<E>);
    fn not_started(&self);
    fn cancelled(&self, c: Cancelled);
}

enum StartState<V, E> {
    Waiting,
    Started(V),
    Failed(StartFailure<E>),
    Taken,
}

pub(crate) struct StartShared<V, E> {
    state: Mutex<(StartState<V, E>, bool, Option<Waker>)>,
}

impl<V, E> StartShared<V, E> {
    pub(crate) fn new() -> Self {
        Self { state: Mutex::new((StartState::Waiting, false, None)) }
    }

    fn set(&self, s: StartState<V, E>, started: bool) {
        let w = {
            let mut st = lock(&self.state);
            if !matches!(st.0, StartState::Waiting) {
                return;
            }
            st.0 = s;
            st.1 |= started;
            st.2.take()
        };
        if let Some(w) = w {
            w.wake();
        }
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
            StartState::Taken => None,
        }
    }
}

impl<V: Send, E: Send> ValueSink<V> for StartShared<V, E> {
    fn started(&self, value: V) {
        self.set(StartState::Started(value), true);
    }
}

impl<V: Send, E: Send> StartSink<E> for StartShared<V, E> {
    fn is_started(&self) -> bool {
        lock(&self.state).1
    }
    fn failed(&self, failure: Failure<E>) {
        self.set(StartState::Failed(StartFailure::Failed(failure)), false);
    }
    fn not_started(&self) {
        self.set(StartState::Failed(StartFailure::NotStarted), false);
    }
    fn cancelled(&self, c: Cancelled) {
        self.set(StartState::Failed(StartFailure::Cancelled(c)), false);
    }
}

/// Why [`TaskGroup::start`](crate::TaskGroup::start) returned no value.
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
