//! What this thread is running right now, in one thread-local cell: the anyio task and its coop
//! budget, the current cancel-scope node, and which runtime anyio entered.
//!
//! One cell, not one per concern, because the task wrapper sets all of it around every poll of
//! every task: one TLS access and one copy instead of three lookups (one of them a `RefCell`
//! whose destructor makes every access check the slot's state). Each guard restores only the
//! fields it changed, so guards of different kinds may nest in any LIFO order.

use std::cell::Cell;
use std::ptr;

use crate::cancel::node::Node;

/// The thread's current context. `Copy`, so reading it is one load of a few words.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    /// The running anyio task's id, 0 outside anyio's tasks.
    pub(crate) task: u64,
    /// Ready operations left in this poll of `task` (see `crate::coop`).
    pub(crate) budget: u32,
    /// The current cancel-scope node; null for the implicit, never-cancelled root. Non-null
    /// only while the `Entered` guard that set it lives, which borrows the node.
    pub(crate) node: *const Node,
    /// The address of the runtime `crate::rt` entered on this thread (null if none), kept
    /// beside the owning handle so that "is it already current?" is one comparison.
    pub(crate) rt: *const (),
}

thread_local! {
    static CTX: Cell<Ctx> = const {
        Cell::new(Ctx { task: 0, budget: 0, node: ptr::null(), rt: ptr::null() })
    };
}

/// The context now.
#[inline]
pub(crate) fn get() -> Ctx {
    CTX.with(Cell::get)
}

/// Changes the context with `f` and returns what `f` returns.
#[inline]
pub(crate) fn update<R>(f: impl FnOnce(&mut Ctx) -> R) -> R {
    CTX.with(|c| {
        let mut now = c.get();
        let r = f(&mut now);
        c.set(now);
        r
    })
}
