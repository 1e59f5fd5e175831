//! A per-poll budget of operations that complete without waiting (tokio's coop budget, for
//! anyio's own primitives).
//!
//! A channel operation that finds an item or room at once completes without yielding, which is
//! what makes it fast; but a task that sends into an unbounded channel in a loop would then
//! never give its thread back. Each poll of an anyio task gets `BUDGET` units to spend on such
//! operations; past that they yield instead, until the task is polled again. The yield happens
//! before the operation does anything, so it is invisible to cancel safety. Futures polled
//! outside anyio's tasks (no task id) are not limited: nothing would reset their budget.
//!
//! The budget bounds how long one poll may run on ready operations, so an operation spends
//! by what it costs. A socket operation that completes at once is a system call (a microsecond
//! or more) and spends [`IO_COST`] units: 128 of them per poll, tokio's figure. A ready channel
//! operation takes 10–20 ns and spends one: 512 per poll, some 10 µs. At one unit for every
//! operation and 128 per poll, the yields took about 13 of a buffered message's 169
//! instructions; now about 3 (docs/benchmarks.md, seventh session).

use std::task::{Context, Poll};

use crate::context;

/// Units per poll of a task.
pub(crate) const BUDGET: u32 = 512;

/// What a socket operation that completes at once spends (see the module docs).
const IO_COST: u32 = 4;

/// `Pending` (after waking the task) once the running task's budget for this poll has less
/// than an I/O operation's cost left; otherwise `Ready(true)` inside an anyio task (the cost
/// spent) and `Ready(false)` outside one (nothing limits it).
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<bool> {
    match context::with(|now| spend(now, IO_COST)) {
        Some(limited) => Poll::Ready(limited),
        None => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Spends `cost` units of the running task's budget: `Some(true)` if it had them, `None` if
/// it has fewer left, `Some(false)` outside an anyio task (nothing limits it).
#[inline]
fn spend(now: &context::Ctx, cost: u32) -> Option<bool> {
    if now.task.get() == 0 {
        return Some(false);
    }
    let left = now.budget.get();
    if left < cost {
        return None;
    }
    now.budget.set(left - cost);
    Some(true)
}

/// [`poll_proceed`] for a channel operation (one unit, so it yields only once the budget is
/// spent), then (if it proceeds) the cancellation check of
/// [`check_current`](crate::cancel::current::check_current), with one lookup of the thread's
/// context for both: the start of every channel operation, where the two lookups were 10 of a
/// buffered message's 187 instructions.
#[inline]
pub(crate) fn poll_proceed_checked(cx: &mut Context<'_>) -> Poll<Result<(), crate::error::Cancelled>> {
    context::with(|now| {
        // `spend` without its first test: a budget above zero is only ever set inside a
        // task's poll (the task wrapper sets it and puts back the 0 that is there outside),
        // so it needs no look at the task id; at zero, `spend` tells "spent" from "outside
        // a task". Two instructions of the few this adds to every channel operation.
        let left = now.budget.get();
        if left > 0 {
            now.budget.set(left - 1);
        } else if spend(now, 1).is_none() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(crate::cancel::current::check_in(now))
    })
}
