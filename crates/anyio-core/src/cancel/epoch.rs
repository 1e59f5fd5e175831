//! The cancellation epoch: a process-wide counter bumped after every change that can make a
//! node effectively cancelled, so that a thread that found its current node uncancelled can
//! trust that answer, without walking the node's ancestors again, until the counter moves
//! or its current node changes (see `current::check_current`; a group's task keeps the
//! answer for its own node from one poll to the next, `task::id::enter_child_cached`).
//!
//! What makes a node effectively cancelled: the cancellation of it or of an ancestor up to a
//! shield ([`Node::cancel`](super::node::Node::cancel)), a shield coming down
//! (`Node::set_shield`), and a new parent (`Node::reparent`). Each bumps the epoch after its
//! change is made and before it wakes anyone, also when it found the change already made by
//! a concurrent call (which may not have bumped yet: a caller that saw the flag must not pass
//! its own next check on the old epoch). A checking thread reads the epoch (acquire)
//! before it walks: if it reads a bumped value, the change that bumped it is visible to the
//! walk; if it does not, the change is concurrent with the check, which may then answer
//! either way, as it could have without the cache. A task woken by a change was woken after
//! the bump, so it sees it.
//!
//! A counter in one cache line that every cancellation writes: cancellations are rare next
//! to checkpoints, which only read it. It is 64 bits wide, so it never wraps.
//!
//! Under loom there is no cache (a static atomic cannot be modelled); checks always walk.

#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

/// The epoch; 0 is never a value of it (0 in a thread's cache means "not checked").
#[cfg(not(loom))]
static EPOCH: AtomicU64 = AtomicU64::new(1);

/// The current epoch.
#[cfg(not(loom))]
#[inline]
pub(crate) fn now() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Records a change that may have made some node effectively cancelled. Call it after the
/// change and before waking anyone about it.
#[inline]
pub(crate) fn bump() {
    #[cfg(not(loom))]
    EPOCH.fetch_add(1, Ordering::AcqRel);
}
