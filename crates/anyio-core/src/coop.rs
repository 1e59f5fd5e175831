//! A per-poll budget of operations that complete without waiting (tokio's coop budget, for
//! anyio's own primitives).
//!
//! A channel operation that finds an item or room at once completes without yielding, which is
//! what makes it fast; but a task that sends into an unbounded channel in a loop would then
//! never give its thread back. Each poll of an anyio task may complete `BUDGET` such
//! operations; past that they yield instead, until the task is polled again. The yield happens
//! before the operation does anything, so it is invisible to cancel safety. Futures polled
//! outside anyio's tasks (no task id) are not limited: nothing would reset their budget.

use std::task::{Context, Poll};

use crate::context;

/// Ready operations per poll of a task.
pub(crate) const BUDGET: u32 = 128;

/// `Pending` (after waking the task) once the running task's budget for this poll is spent;
/// otherwise `Ready(true)` inside an anyio task (one unit spent) and `Ready(false)` outside
/// one (nothing limits it).
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<bool> {
    match context::with(spend) {
        Some(limited) => Poll::Ready(limited),
        None => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Spends one unit of the running task's budget: `Some(true)` if it had one, `None` if it is
/// spent, `Some(false)` outside an anyio task (nothing limits it).
#[inline]
fn spend(now: &context::Ctx) -> Option<bool> {
    if now.task.get() == 0 {
        return Some(false);
    }
    let left = now.budget.get();
    if left == 0 {
        return None;
    }
    now.budget.set(left - 1);
    Some(true)
}

/// [`poll_proceed`], then (if it proceeds) the cancellation check of
/// [`check_current`](crate::cancel::current::check_current), with one lookup of the thread's
/// context for both: the start of every channel operation, where the two lookups were 10 of a
/// buffered message's 187 instructions.
#[inline]
pub(crate) fn poll_proceed_checked(cx: &mut Context<'_>) -> Poll<Result<(), crate::error::Cancelled>> {
    let proceed = context::with(|now| spend(now).map(|_| crate::cancel::current::check_in(now)));
    match proceed {
        Some(checked) => Poll::Ready(checked),
        None => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
