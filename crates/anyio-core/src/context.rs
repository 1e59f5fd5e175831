//! What this thread is running right now, in one thread-local: the anyio task and its coop
//! budget, the current cancel-scope node, and which runtime anyio entered.
//!
//! One thread-local, not one per concern, because the task wrapper sets all of it around
//! every poll of every task: one TLS lookup instead of three (one of them a `RefCell` whose
//! destructor made every access check the slot's state). Each field is its own `Cell`, so a
//! reader or writer touches only its word. Each guard restores only the fields it changed, so
//! guards of different kinds may nest in any LIFO order.

use std::cell::Cell;
use std::ptr;

/// The thread's current context.
pub(crate) struct Ctx {
    /// The running anyio task's id, 0 outside anyio's tasks.
    pub(crate) task: Cell<u64>,
    /// The running task's metadata (a `*const task::id::TaskMeta`, type-erased), null outside
    /// anyio's tasks. Non-null only while the guard that set it lives, which borrows it.
    pub(crate) meta: Cell<*const ()>,
    /// Coop budget units left in this poll of `task` (see `crate::coop`).
    pub(crate) budget: Cell<u32>,
    /// The current cancel-scope node (a `*const cancel::node::Node`, type-erased so that this
    /// module depends on nothing); null for the implicit, never-cancelled root. Non-null
    /// only while the guard that set it lives, which borrows the node. Only
    /// `cancel::current` and the task wrapper (`task::id`) read or write it, through
    /// [`node`](Self::node), [`set_node`](Self::set_node) and [`replace_node`](Self::replace_node).
    node: Cell<*const ()>,
    /// The cancellation epoch (`cancel::epoch`) at which `node` was last found not effectively
    /// cancelled, or 0: not since it became current (every write of `node` clears it; a
    /// group's task then restores what it kept for its own node, see
    /// `task::id::enter_child_cached`).
    pub(crate) checked: Cell<u64>,
    /// The address of the runtime `crate::rt` entered on this thread (null if none), kept
    /// beside the owning handle so that "is it already current?" is one comparison.
    pub(crate) rt: Cell<*const ()>,
}

impl Ctx {
    /// The current cancel-scope node (type-erased; null for the root).
    #[inline]
    pub(crate) fn node(&self) -> *const () {
        self.node.get()
    }

    /// Makes `node` current, forgetting the cached check of the previous one.
    #[inline]
    pub(crate) fn set_node(&self, node: *const ()) {
        self.checked.set(0);
        self.node.set(node);
    }

    /// [`set_node`](Self::set_node), returning the node that was current.
    #[inline]
    pub(crate) fn replace_node(&self, node: *const ()) -> *const () {
        self.checked.set(0);
        self.node.replace(node)
    }
}

thread_local! {
    static CTX: Ctx = const {
        Ctx {
            task: Cell::new(0),
            meta: Cell::new(ptr::null()),
            budget: Cell::new(0),
            node: Cell::new(ptr::null()),
            checked: Cell::new(0),
            rt: Cell::new(ptr::null()),
        }
    };
}

/// An id of this thread, cheap to read: the address of its context. Unique among the threads
/// alive at one time (a new thread may reuse an exited one's).
#[inline]
pub(crate) fn thread_key() -> usize {
    CTX.with(|c| std::ptr::from_ref(c) as usize)
}

/// Runs `f` with this thread's context.
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&Ctx) -> R) -> R {
    CTX.with(f)
}
