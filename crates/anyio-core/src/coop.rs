//! A per-thread budget of operations that complete without waiting.
//!
//! A channel operation that finds an item or room at once completes without yielding, which is
//! what makes it fast; but a task that sends into an unbounded channel in a loop would then
//! never give its thread back. Every `BUDGET` such operations on a thread, one yields instead
//! (tokio's coop budget does the same for tokio's own primitives, per task). The yield happens
//! before the operation does anything, so it is invisible to cancel safety.

use std::task::{Context, Poll};

/// Ready operations between two forced yields on one thread.
#[cfg(not(loom))]
const BUDGET: u32 = 128;

#[cfg(not(loom))]
thread_local! {
    static LEFT: std::cell::Cell<u32> = const { std::cell::Cell::new(BUDGET) };
}

/// `Pending` (after waking the task) once every `BUDGET` calls on this thread, else `Ready`.
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    #[cfg(not(loom))]
    {
        let exhausted = LEFT.with(|l| {
            let left = l.get();
            if left <= 1 {
                l.set(BUDGET);
                true
            } else {
                l.set(left - 1);
                false
            }
        });
        if exhausted {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
    }
    // Loom models explore interleavings; a budget carried between them would make runs differ.
    #[cfg(loom)]
    let _ = cx;
    Poll::Ready(())
}
