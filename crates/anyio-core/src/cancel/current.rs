//! The current cancel-scope node of this thread, set for the duration of each poll by the
//! wrapper future that owns the node (as `tracing::Instrumented` does with spans).
//!
//! Polls nest strictly on the call stack, so one save/restore pointer is enough; a task that
//! migrates between worker threads is found again because the pointer is re-established on
//! every poll.

use std::marker::PhantomData;
use std::ptr;

use super::cell::NodeArc;
use super::node::{Node, WaitRegistration};
use crate::context;

/// Makes `node` current until the guard drops (also while unwinding from a panic).
pub(crate) fn enter(node: &NodeArc) -> Entered<'_> {
    let prev = context::with(|c| c.replace_node(NodeArc::as_ptr(node).cast()));
    Entered { prev, _node: PhantomData, _not_send: PhantomData }
}

/// Makes no node current (the implicit, never-cancelled root) until the guard drops.
pub(crate) fn enter_root() -> Entered<'static> {
    let prev = context::with(|c| c.replace_node(ptr::null()));
    Entered { prev, _node: PhantomData, _not_send: PhantomData }
}

pub(crate) struct Entered<'a> {
    prev: *const (),
    _node: PhantomData<&'a Node>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        context::with(|c| c.set_node(self.prev));
    }
}

/// Runs `f` with the current node (`None` = the root).
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Node>) -> R) -> R {
    let p = context::with(|c| c.node()).cast::<Node>();
    // SAFETY: every non-null pointer stored in the context's node is `Arc::as_ptr` of an
    // `NodeArc` (only `enter` and the task wrappers' `task::id::enter_child*` store one), so
    // the cast restores its type. It is non-null only between `enter(node)` (or
    // `enter_child*`) and the drop of the returned guard, whose lifetime is
    // tied to a borrow of the `NodeArc`; guards are stack values that drop in LIFO order and
    // are never leaked, so the node outlives every read made while it is current. The
    // reference does not escape `f`.
    f(unsafe { p.as_ref() })
}

/// Registers `waker` with the current node, as [`WaitRegistration::register`] does (nothing
/// to do in the root), and returns the node's cancellation if it is effectively cancelled.
///
/// The common case takes no lock and no reference: the task waits in a linked node where its
/// waker is resident. The resident waker was in place before this check, so a cancel before
/// the check is seen by it and a cancel after it wakes the waker.
pub(crate) fn register_current(
    reg: &mut WaitRegistration,
    waker: &std::task::Waker,
) -> Result<(), crate::error::Cancelled> {
    let fast = with_current(|n| match n {
        None => Some(Ok(())),
        Some(n) if n.wakes_resident(waker) => Some(n.check()),
        Some(_) => None,
    });
    match fast {
        Some(checked) => {
            reg.clear();
            checked
        }
        None => match current_arc() {
            Some(node) => reg.register(&node, waker),
            None => Ok(()),
        },
    }
}

/// As [`register_current`], for a caller that checked cancellation earlier in the same poll
/// (with [`check_current`]) and has not registered anywhere since: in the common case (the
/// current node's resident waker) there is nothing left to do, not even a second check: a
/// waker becomes resident only once its node is linked to its parent, and stays resident for
/// the node's life, so it was resident at that check, and a cancel after the check wakes it.
/// (`WaitRegistration::register_after_check`, the same on an explicit node, is what the loom
/// models drive.)
#[inline]
pub(crate) fn register_current_after_check(
    reg: &mut WaitRegistration,
    waker: &std::task::Waker,
) -> Result<(), crate::error::Cancelled> {
    let resident = with_current(|n| n.is_none_or(|n| n.wakes_resident(waker)));
    if resident {
        reg.clear();
        return Ok(());
    }
    register_current(reg, waker)
}

/// A new strong reference to the current node, if any.
pub(crate) fn current_arc() -> Option<NodeArc> {
    let p = context::with(|c| c.node()).cast::<Node>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` came from `Arc::as_ptr` on an `NodeArc` that is alive while it is current
    // (see `with_current`), so incrementing its strong count and rebuilding an Arc from it is
    // sound and balanced by the drop of the returned Arc.
    unsafe {
        NodeArc::increment_strong_count(p);
        Some(NodeArc::from_raw(p))
    }
}

/// Whether the current node is effectively cancelled: one TLS read and, while the
/// cancellation epoch has not moved since the node last passed, one load of the epoch;
/// otherwise one atomic load per scope level up to a shield.
#[inline]
pub(crate) fn check_current() -> Result<(), crate::error::Cancelled> {
    context::with(check_in)
}

/// [`check_current`] on a context already at hand, so that a caller that also reads or writes
/// other fields of it (the coop budget, see [`crate::coop::poll_proceed_checked`]) looks the
/// thread-local up once.
#[inline]
pub(crate) fn check_in(c: &context::Ctx) -> Result<(), crate::error::Cancelled> {
    // The epoch is read before the walk (see `epoch`): a change it shows is visible to
    // the walk, and one it does not show moves it before the next check. The cache first:
    // it is only ever set for a non-null node (and cleared whenever the node changes), so a
    // hit needs no look at the node.
    #[cfg(not(loom))]
    let now = super::epoch::now();
    #[cfg(not(loom))]
    if c.checked.get() == now {
        return Ok(());
    }
    let p = c.node().cast::<Node>();
    if p.is_null() {
        return Ok(());
    }
    // SAFETY: as in `with_current`: the node is alive while it is current, and the
    // reference does not outlive this call.
    let checked = unsafe { &*p }.check();
    #[cfg(not(loom))]
    if checked.is_ok() {
        c.checked.set(now);
    }
    checked
}

/// Runs `f` with the implicit root scope current: runners call this around `block_on` so the
/// main future never inherits a scope from whatever polled the runner (see docs/design.md).
/// A closure, not a guard, so that no caller can make the restore happen out of order.
///
/// It also marks the thread as running a runner (see `rt::is_polling`) and, when `f` returns,
/// ends the run's [`RunVar`](crate::lowlevel::RunVar) values and [`EventLoopToken`]s.
///
/// [`EventLoopToken`]: crate::lowlevel::EventLoopToken
pub fn run_in_root<R>(f: impl FnOnce() -> R) -> R {
    let _g = enter_root();
    let _run = crate::rt::run_state::RunGuard::begin();
    f()
}
