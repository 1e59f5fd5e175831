//! Handles to the tasks of a group, which yield each task's result.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::cancel::current::current_arc;
use crate::cancel::node::{Node, WaitRegistration};
use crate::error::{AsCancelled, CancelSource, Cancelled};
use crate::sync::{lock, Mutex};

pub(crate) enum Outcome<T> {
    Running,
    Done(T),
    Failed,
    Panicked,
    Cancelled,
    Taken,
}

pub(crate) struct HandleShared<T> {
    state: Mutex<(Outcome<T>, Option<Waker>)>,
}

impl<T> HandleShared<T> {
    pub(crate) fn new() -> Self {
        Self { state: Mutex::new((Outcome::Running, None)) }
    }

    pub(crate) fn complete(&self, outcome: Outcome<T>) {
        let waker = {
            let mut st = lock(&self.state);
            st.0 = outcome;
            st.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What a task is doing, as reported by [`TaskHandle::state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskState {
    /// Still running.
    Running,
    /// Returned `Ok`.
    Finished,
    /// Returned an error (which went to the task group).
    Failed,
    /// Panicked (the panic goes to the task group).
    Panicked,
    /// Ended by cancellation.
    Cancelled,
}

/// A handle to a task spawned into a [`TaskGroup`](crate::TaskGroup). Awaiting it yields the
/// task's value; the task's failure still goes to the group (a handle never swallows it).
/// Dropping the handle does not affect the task.
///
/// # Examples
///
/// ```
/// # anyio_core::__doc_block_on(async {
/// use anyio_core::{task_group, AnyError, TaskState};
/// task_group(|tg| async move {
///     let mut h = tg.spawn(async { Ok::<_, AnyError>(21 * 2) });
///     assert_eq!((&mut h).await.unwrap(), 42);
///     assert_eq!(h.state(), TaskState::Finished);
///     Ok::<_, AnyError>(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct TaskHandle<T> {
    shared: Arc<HandleShared<T>>,
    node: Arc<Node>,
    reg: WaitRegistration,
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle").field("state", &self.state()).finish()
    }
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(shared: Arc<HandleShared<T>>, node: Arc<Node>) -> Self {
        Self { shared, node, reg: WaitRegistration::new() }
    }

    /// Cancels this task only (its own cancel scope); the group is not affected and the
    /// task's cancellation is not a failure. No effect on a finished task.
    ///
    /// ```
    /// # anyio_core::__doc_block_on(async {
    /// use anyio_core::{sleep_forever, task_group, AnyError, JoinError};
    /// task_group(|tg| async move {
    ///     let mut h = tg.spawn(async { sleep_forever().await?; Ok::<(), AnyError>(()) });
    ///     h.cancel();
    ///     assert!(matches!((&mut h).await, Err(JoinError::TaskCancelled)));
    ///     Ok::<_, AnyError>(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn cancel(&self) {
        self.node.cancel(CancelSource::Explicit, None);
    }

    /// What the task is doing now.
    ///
    /// ```
    /// # anyio_core::__doc_block_on(async {
    /// use anyio_core::{task_group, AnyError, TaskState};
    /// task_group(|tg| async move {
    ///     let h = tg.spawn(async { Ok::<_, AnyError>(()) });
    ///     assert!(matches!(h.state(), TaskState::Running | TaskState::Finished));
    ///     Ok::<_, AnyError>(())
    /// }).await.unwrap();
    /// # });
    /// ```
    pub fn state(&self) -> TaskState {
        match lock(&self.shared.state).0 {
            Outcome::Running => TaskState::Running,
            Outcome::Done(_) | Outcome::Taken => TaskState::Finished,
            Outcome::Failed => TaskState::Failed,
            Outcome::Panicked => TaskState::Panicked,
            Outcome::Cancelled => TaskState::Cancelled,
        }
    }

    /// Whether the task has finished, whatever the outcome.
    ///
    /// ```
    /// # anyio_core::__doc_block_on(async {
    /// use anyio_core::{task_group, AnyError};
    /// task_group(|tg| async move {
    ///     let mut h = tg.spawn(async { Ok::<_, AnyError>(()) });
    ///     (&mut h).await.unwrap();
    ///     assert!(h.is_finished());
    ///     Ok::<_, AnyError>(())
    /// }).await.unwrap();
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.state() != TaskState::Running
    }
}

/// Awaiting a handle waits for the task to finish.
///
/// # Cancel safety
///
/// Cancel safe: a checkpoint of the awaiting task's scope. If that scope is cancelled the wait
/// ends with [`JoinError::Cancelled`], the task keeps running, and the handle can be awaited
/// again (await `&mut handle` to keep it).
impl<T> Future for TaskHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        {
            let mut st = lock(&this.shared.state);
            let out = match std::mem::replace(&mut st.0, Outcome::Taken) {
                Outcome::Running => {
                    st.0 = Outcome::Running;
                    if !st.1.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        st.1 = Some(cx.waker().clone());
                    }
                    None
                }
                Outcome::Done(v) => Some(Ok(v)),
                Outcome::Taken => Some(Err(JoinError::AlreadyJoined)),
                Outcome::Failed => {
                    st.0 = Outcome::Failed;
                    Some(Err(JoinError::Failed))
                }
                Outcome::Panicked => {
                    st.0 = Outcome::Panicked;
                    Some(Err(JoinError::Panicked))
                }
                Outcome::Cancelled => {
                    st.0 = Outcome::Cancelled;
                    Some(Err(JoinError::TaskCancelled))
                }
            };
            if let Some(out) = out {
                drop(st);
                this.reg.clear();
                return Poll::Ready(out);
            }
        }
        if let Some(node) = current_arc() {
            if let Err(c) = this.reg.register(&node, cx.waker()) {
                this.reg.clear();
                return Poll::Ready(Err(JoinError::Cancelled(c)));
            }
        }
        Poll::Pending
    }
}

/// Why awaiting a [`TaskHandle`] gave no value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// The task returned an error; the error went to its task group.
    Failed,
    /// The task panicked; the panic goes to its task group.
    Panicked,
    /// The task was cancelled before it produced a value.
    TaskCancelled,
    /// The awaiting code's own scope was cancelled; the task may still be running.
    Cancelled(Cancelled),
    /// The value was already taken by an earlier await of this handle.
    AlreadyJoined,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Failed => f.write_str("the task failed; its error was reported to its task group"),
            JoinError::Panicked => f.write_str("the task panicked; the panic is re-raised by its task group"),
            JoinError::TaskCancelled => f.write_str("the task was cancelled before it produced a value"),
            JoinError::Cancelled(c) => c.fmt(f),
            JoinError::AlreadyJoined => {
                f.write_str("the task's value was already taken by an earlier await of this handle")
            }
        }
    }
}

impl StdError for JoinError {}

impl AsCancelled for JoinError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            JoinError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}
