//! A task's outcome as its [`TaskHandle`](super::TaskHandle) reads it: how the task ended, its
//! value until the handle takes it, and the waker of whoever awaits the handle.
//!
//! Stored inside the task's cancel node (see `cancel/node.rs`, field `task`) so that spawning
//! allocates once; everything about it lives here.

use std::any::Any;
use std::task::Waker;

use crate::sync::spin::SpinMutex;
use crate::sync::waker::replace_waker;

/// How a task ended, as its handle reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum SlotOutcome {
    #[default]
    Running,
    Done,
    Failed,
    Panicked,
    Cancelled,
    /// `Done`, and the value was taken by an await of the handle.
    Taken,
}

/// A task's value, type-erased (a `Box` of a zero-sized value does not allocate).
pub(crate) type SlotValue = Box<dyn Any + Send>;

#[derive(Default)]
struct SlotState {
    outcome: SlotOutcome,
    /// The task's value when `Done`.
    value: Option<SlotValue>,
    waker: Option<Waker>,
    /// The handle was dropped: a value arriving later is dropped instead of stored.
    detached: bool,
    /// The runtime's hold on the task (see `Runtime::spawn_task_held`), dropped with the node.
    hold: Option<crate::rt::TaskHold>,
}

/// A task's outcome slot, written once by the task and read by its handle.
///
/// Under the spin lock, not std's mutex: every section is a few stores, and std's unlock is an
/// atomic swap where the spin lock's is a plain store. An uncontended atomic read-modify-write
/// costs 7-9 ns on the machine of docs/benchmarks.md, and each task completes and detaches its
/// slot once.
#[derive(Default)]
pub(crate) struct TaskSlot {
    state: SpinMutex<SlotState>,
}

/// What a poll of the slot found.
pub(crate) enum SlotPoll {
    /// The task finished with a value; it is now taken.
    Value(SlotValue),
    /// The task ended without a value (or it was taken before): its outcome.
    Ended(SlotOutcome),
    /// Still running; the waker is registered.
    Pending,
}

impl TaskSlot {
    /// Records how the task ended and wakes whoever awaits its handle.
    pub(crate) fn complete(&self, outcome: SlotOutcome, value: Option<SlotValue>) {
        let (waker, unread) = {
            let mut st = self.state.lock();
            st.outcome = outcome;
            let unread = if st.detached { value } else { std::mem::replace(&mut st.value, value) };
            (st.waker.take(), unread)
        };
        // Dropped outside the lock: a value's destructor may do anything.
        drop(unread);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Never written: what a node without a task holds (checked when such a node is reused).
    #[cfg(not(loom))]
    pub(crate) fn is_pristine(&mut self) -> bool {
        let st = self.state.get_mut();
        st.outcome == SlotOutcome::Running
            && st.value.is_none()
            && st.waker.is_none()
            && !st.detached
            && st.hold.is_none()
    }

    /// Keeps the runtime's hold on the task until the node drops.
    pub(crate) fn keep(&self, hold: crate::rt::TaskHold) {
        let mut st = self.state.lock();
        debug_assert!(st.hold.is_none(), "a task is spawned, and held, once");
        st.hold = Some(hold);
    }

    pub(crate) fn outcome(&self) -> SlotOutcome {
        self.state.lock().outcome
    }

    /// Takes the value if there is one; otherwise reports the outcome, or (only when
    /// `may_wait`) registers `waker` and reports `Pending` for a running task.
    pub(crate) fn poll(&self, waker: &Waker, may_wait: bool) -> SlotPoll {
        let mut st = self.state.lock();
        match st.outcome {
            SlotOutcome::Done => {
                st.outcome = SlotOutcome::Taken;
                SlotPoll::Value(st.value.take().expect("a finished task stores its value"))
            }
            SlotOutcome::Running if may_wait => {
                let old = replace_waker(&mut st.waker, waker);
                drop(st);
                drop(old);
                SlotPoll::Pending
            }
            other => SlotPoll::Ended(other),
        }
    }

    /// Whether the task has finished; registers `waker` while it runs (the value stays).
    pub(crate) fn poll_finished(&self, waker: &Waker) -> bool {
        let mut st = self.state.lock();
        if st.outcome != SlotOutcome::Running {
            return true;
        }
        let old = replace_waker(&mut st.waker, waker);
        drop(st);
        drop(old);
        false
    }

    /// The handle is gone: nobody can read the value any more. Drops a stored value now and
    /// makes a later one be dropped on arrival. (A value kept in the task's node could
    /// otherwise hold that node, or its descendants, alive in a reference cycle.)
    pub(crate) fn detach(&self) {
        let (value, waker) = {
            let mut st = self.state.lock();
            st.detached = true;
            (st.value.take(), st.waker.take())
        };
        // Outside the lock: either drop may run code that is not ours.
        drop(value);
        drop(waker);
    }
}
