//! A task group's count of running children, which also decides when the children as a whole
//! hold a reference to the group's shared state.
//!
//! Each child used to hold its own `Arc` of the group: one more increment on the spawning
//! thread and one more decrement on the worker that finished it, per task, on a cache line
//! every worker writes. Now the children hold one reference between them: the spawn that
//! takes the count from zero takes it, and the child that brings the count back to zero
//! releases it, after its last use of the group. A spawner always holds a reference of its
//! own (its `TaskGroup`), so the shared state cannot be freed while a first child is counted
//! in, and the last child's release is the last thing it does to the group.

use crate::loom::{AtomicUsize, Ordering};

/// Set once the group has stopped waiting for children: no child can join after it.
const CLOSED: usize = 1;
/// One child, in the count (the low bit is [`CLOSED`]).
const ONE: usize = 2;

/// How a spawn was counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// The group is closed; the spawn must not run.
    Closed,
    /// Counted in, as the first running child: the caller takes the children's reference.
    First,
    /// Counted in beside running children, who already hold their reference.
    Another,
}

/// The number of running children of a group, and whether the group is closed.
#[derive(Debug)]
pub(crate) struct Children {
    count: AtomicUsize,
}

impl Children {
    pub(crate) fn new() -> Self {
        Self { count: AtomicUsize::new(0) }
    }

    /// Counts a new child in, unless the group is closed.
    ///
    /// One `fetch_add` and no prior load, so a spawn takes the line once. A spawn into a
    /// closed group takes its count back out; a closed group's count is never read as a
    /// number of children again.
    #[inline]
    pub(crate) fn add(&self) -> Added {
        let before = self.count.fetch_add(ONE, Ordering::AcqRel);
        if before & CLOSED != 0 {
            self.count.fetch_sub(ONE, Ordering::Relaxed);
            Added::Closed
        } else if before == 0 {
            Added::First
        } else {
            Added::Another
        }
    }

    /// Counts a child out; `true` if it was the last running one: the caller then takes the
    /// group owner's waker, releases the children's reference, and wakes the waker.
    #[inline]
    pub(crate) fn done(&self) -> bool {
        self.count.fetch_sub(ONE, Ordering::AcqRel) == ONE
    }

    /// Closes the group if no child runs; `true` if it is closed now.
    pub(crate) fn try_close(&self) -> bool {
        self.count.compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Running children (a snapshot).
    pub(crate) fn running(&self) -> usize {
        let c = self.count.load(Ordering::Acquire);
        if c & CLOSED != 0 {
            0
        } else {
            c / ONE
        }
    }

    /// Whether the group is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.count.load(Ordering::Acquire) & CLOSED != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_first_child_after_zero_takes_the_reference_and_the_last_gives_it_back() {
        let c = Children::new();
        assert_eq!(c.add(), Added::First);
        assert_eq!(c.add(), Added::Another);
        assert_eq!(c.running(), 2);
        assert!(!c.done());
        assert!(c.done());
        // Back at zero: the next spawn is a first again.
        assert_eq!(c.add(), Added::First);
        assert!(c.done());
    }

    #[test]
    fn a_group_closes_only_with_no_child_running_and_then_admits_none() {
        let c = Children::new();
        assert_eq!(c.add(), Added::First);
        assert!(!c.try_close());
        assert!(c.done());
        assert!(c.try_close());
        assert!(c.is_closed());
        assert_eq!(c.add(), Added::Closed);
        assert_eq!(c.add(), Added::Closed);
        assert_eq!(c.running(), 0);
        assert!(c.is_closed());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Stands in for a group's shared state.
    struct Shared {
        children: Children,
    }

    /// A child finishing, as the group's task does: counted out and, if last, releases the
    /// children's reference as its final access (the group's task takes the owner's waker
    /// first, and wakes it after).
    fn finish(shared: *const Shared) {
        // SAFETY: a running child's group is kept alive by the children's reference, which
        // only the last child releases, below, after its last access.
        let s = unsafe { &*shared };
        if s.children.done() {
            // SAFETY: the children's reference, taken by the spawn that counted in the first
            // child of this run of children; nothing here touches the group after it.
            unsafe { Arc::decrement_strong_count(shared) };
        }
    }

    fn spawn(group: &Arc<Shared>) -> Option<usize> {
        match group.children.add() {
            Added::Closed => None,
            Added::First => {
                // SAFETY: `group` is a live `Arc`; this is the children's reference.
                unsafe { Arc::increment_strong_count(Arc::as_ptr(group)) };
                Some(Arc::as_ptr(group) as usize)
            }
            Added::Another => Some(Arc::as_ptr(group) as usize),
        }
    }

    /// A child finishes on one thread while a sibling spawns from another holding its own
    /// handle (so the count may go 1 -> 0 -> 1 and the reference be released and taken
    /// again), and the owner closes: the children's reference is released exactly once per
    /// run of children, after its last use, and nothing joins a closed group.
    #[test]
    fn children_share_one_reference_across_spawns_and_finishes() {
        loom::model(|| {
            let group = Arc::new(Shared { children: Children::new() });
            let a = spawn(&group).expect("open");
            let spawner = group.clone();
            let t1 = thread::spawn(move || finish(a as *const Shared));
            let t2 = thread::spawn(move || {
                if let Some(b) = spawn(&spawner) {
                    drop(spawner);
                    finish(b as *const Shared);
                }
            });
            // The owner waits for its children, then closes (as `poll_children_done` does).
            loop {
                if group.children.try_close() {
                    break;
                }
                thread::yield_now();
            }
            assert_eq!(group.children.add(), Added::Closed);
            t1.join().unwrap();
            t2.join().unwrap();
            // The children's reference was released exactly once: only the owner's is left.
            assert_eq!(Arc::strong_count(&group), 1);
        });
    }
}
