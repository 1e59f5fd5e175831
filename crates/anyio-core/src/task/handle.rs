//! Handles to the tasks of a group, which yield each task's result.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::slot::{SlotOutcome, SlotPoll};
use crate::cancel::cell::NodeArc;
use crate::cancel::current::{check_current, current_arc};
use crate::cancel::node::WaitRegistration;
use crate::error::{AnyError, AsCancelled, CancelSource, Cancelled};

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

/// A handle to a task spawned into a [`TaskGroup`](crate::task::TaskGroup). Awaiting it yields the
/// task's value; the task's failure still goes to the group (a handle never swallows it).
/// Dropping the handle does not affect the task. For that reason the handle is not
/// `#[must_use]` (as tokio's `JoinHandle` is not): most spawns run a task for its effect and
/// ignore the handle, and the group already waits for the task and reports its failure.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{task_group, AnyError, task::TaskState};
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
    node: NodeArc,
    reg: WaitRegistration,
    _value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle").field("state", &self.state()).finish()
    }
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(node: NodeArc) -> Self {
        Self { node, reg: WaitRegistration::new(), _value: PhantomData }
    }

    /// The task's node.
    pub(crate) fn node(&self) -> &NodeArc {
        &self.node
    }

    /// Cancels this task only (its own cancel scope); the group is not affected and the
    /// task's cancellation is not a failure. No effect on a finished task.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task_group, AnyError, task::JoinError, time::sleep_forever};
    /// task_group(|tg| async move {
    ///     let mut h = tg.start_soon(async { sleep_forever().await?; Ok(()) });
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
    /// # anyio::run(async {
    /// use anyio::{task_group, AnyError, task::TaskState};
    /// task_group(|tg| async move {
    ///     let h = tg.spawn(async { Ok::<_, AnyError>(()) });
    ///     assert!(matches!(h.state(), TaskState::Running | TaskState::Finished));
    ///     Ok::<_, AnyError>(())
    /// }).await.unwrap();
    /// # });
    /// ```
    pub fn state(&self) -> TaskState {
        match self.node.task.outcome() {
            SlotOutcome::Running => TaskState::Running,
            SlotOutcome::Done | SlotOutcome::Taken => TaskState::Finished,
            SlotOutcome::Failed => TaskState::Failed,
            SlotOutcome::Panicked => TaskState::Panicked,
            SlotOutcome::Cancelled => TaskState::Cancelled,
        }
    }

    /// Whether the task has finished, whatever the outcome.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task_group, AnyError};
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

    /// Waits until the task has finished, whatever the outcome, without taking its value
    /// (AnyIO's `TaskHandle.wait`): awaiting the handle afterwards returns at once.
    ///
    /// # Errors
    ///
    /// [`Cancelled`] if the waiting task's scope is cancelled first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a checkpoint; the task is untouched.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{task_group, AnyError};
    /// task_group(|tg| async move {
    ///     let h = tg.spawn(async { Ok::<_, AnyError>(7) });
    ///     h.wait().await?;
    ///     assert!(h.is_finished());
    ///     assert_eq!(h.await.unwrap(), 7);
    ///     Ok::<_, AnyError>(())
    /// }).await.unwrap();
    /// # });
    /// ```
    pub async fn wait(&self) -> Result<(), Cancelled> {
        crate::cancel::cancellable(std::future::poll_fn(|cx| {
            if self.node.task.poll_finished(cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }))
        .await
    }
}

/// Awaiting a handle waits for the task to finish.
///
/// # Cancel safety
///
/// Cancel safe: a checkpoint of the awaiting task's scope. If that scope is cancelled the wait
/// ends with [`JoinError::Cancelled`], the task keeps running, and the handle can be awaited
/// again (await `&mut handle` to keep it).
impl<T: 'static> Future for TaskHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Only a value beats the awaiting scope's cancellation (it must not be lost); any
        // other outcome is reported after the cancellation, as AnyIO's `await handle` does,
        // so that code unwinding from a cancel never sees a sibling's outcome as a failure.
        let cancelled = check_current().err();
        let out = match (this.node.task.poll(cx.waker(), cancelled.is_none()), cancelled) {
            (SlotPoll::Value(value), _) => {
                let value = value.downcast::<T>().expect("a task handle reads its own task's value type");
                Some(Ok(*value))
            }
            (_, Some(c)) => Some(Err(JoinError::Cancelled(c))),
            (SlotPoll::Pending, None) => None,
            (SlotPoll::Ended(outcome), None) => Some(Err(match outcome {
                SlotOutcome::Taken => JoinError::AlreadyJoined,
                SlotOutcome::Failed => JoinError::Failed,
                SlotOutcome::Panicked => JoinError::Panicked,
                SlotOutcome::Cancelled => JoinError::TaskCancelled,
                SlotOutcome::Running | SlotOutcome::Done => unreachable!("the slot reports these itself"),
            })),
        };
        if let Some(out) = out {
            this.reg.clear();
            return Poll::Ready(out);
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

impl<T> Drop for TaskHandle<T> {
    fn drop(&mut self) {
        self.node.task.detach();
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

impl StdError for JoinError {
    // The cancellation is the source, so a chain walk finds it wherever this error is wrapped.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            JoinError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl AsCancelled for JoinError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            JoinError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl From<JoinError> for AnyError {
    fn from(e: JoinError) -> Self {
        match e {
            JoinError::Cancelled(c) => AnyError::from(c),
            other => AnyError::wrap(other),
        }
    }
}
