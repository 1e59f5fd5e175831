//! The registry of running tasks behind [`running_tasks`](super::running_tasks): an intrusive
//! doubly-linked list threaded through the tasks' own cancel nodes, under one lock.
//!
//! Why intrusive: a task already owns one allocation, its cancel node (which also holds its
//! outcome and its metadata). Linking that node costs a lock and four pointer stores, and
//! unlinking the same; a slab of records cost a lock, a slab operation and a record copy each
//! way, 6.4% of a trivial spawn and join against the 5% allowed (docs/benchmarks.md).
//!
//! There is one list per run, so that a run lists its own tasks without walking others'.
//!
//! Soundness rests on one rule: a node is in the list only while it is alive. Whoever links a
//! node unlinks it before releasing its reference (a group's task when it ends or is dropped,
//! a main task through [`Registered`]); as a safety net, `Node::drop` unlinks a node still
//! linked, under the lock, before any field is dropped or the memory freed, and a node in the
//! registry is never moved out of its allocation (`Node::drop`'s ancestor loop drops it in
//! place). Every pointer in the list is followed only under the lock, so it always points at
//! a live node.

use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::id::TaskMeta;
use crate::cancel::cell::NodeArc;
use crate::cancel::node::Node;
use crate::rt::run_state::RunKey;

/// What a cancel node carries for the task it belongs to: the task's metadata (`None` for a
/// scope's node) and its place in the registry.
///
/// The links are atomics only so that the entry is `Sync` without unsafe code: they are
/// written only under the registry's lock (a neighbour's unlink writes this node's links too)
/// and read there, relaxed being enough since the lock orders everything. Outside the lock
/// only `unlink_dropped` reads `next`, to see whether the node is linked at all: only the
/// node's own link and unlink set and clear the `unlinked()` marker, so a neighbour's write
/// never changes that answer.
pub(crate) struct TaskEntry {
    meta: Option<TaskMeta>,
    prev: AtomicPtr<Node>,
    /// [`unlinked()`] while the node is not in the registry.
    next: AtomicPtr<Node>,
}

/// The `next` of a node not in the registry: a non-null address no node has.
#[inline]
fn unlinked() -> *mut Node {
    NonNull::dangling().as_ptr()
}

impl TaskEntry {
    /// A scope node's entry: no task.
    #[inline]
    pub(crate) fn none() -> Self {
        TaskEntry::new(None)
    }

    /// A task node's entry.
    #[inline]
    pub(crate) fn task(meta: TaskMeta) -> Self {
        TaskEntry::new(Some(meta))
    }

    #[inline]
    fn new(meta: Option<TaskMeta>) -> Self {
        TaskEntry { meta, prev: AtomicPtr::new(ptr::null_mut()), next: AtomicPtr::new(unlinked()) }
    }

    /// The task's metadata; `None` for a scope's node.
    #[inline]
    pub(crate) fn meta(&self) -> Option<&TaskMeta> {
        self.meta.as_ref()
    }

    fn prev(&self) -> *const Node {
        self.prev.load(Ordering::Relaxed)
    }

    fn next(&self) -> *const Node {
        self.next.load(Ordering::Relaxed)
    }

    fn set_prev(&self, p: *const Node) {
        self.prev.store(p.cast_mut(), Ordering::Relaxed);
    }

    fn set_next(&self, p: *const Node) {
        self.next.store(p.cast_mut(), Ordering::Relaxed);
    }
}

impl std::fmt::Debug for TaskEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskEntry")
            .field("meta", &self.meta)
            .field("linked", &(self.next() != unlinked()))
            .finish()
    }
}

/// The registry: one list per run (usually one run), each by its newest node.
struct Registry {
    heads: Vec<(RunKey, *const Node)>,
}

// SAFETY: the head pointers are dereferenced only under the registry's lock and point at live
// nodes (module docs); nodes are `Sync`.
unsafe impl Send for Registry {}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { heads: Vec::new() });

fn lock() -> MutexGuard<'static, Registry> {
    // No update of the lists can panic halfway (allocation failure aborts), so a poisoned lock
    // still holds good lists.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether two run keys name the same run: the names are compared by address first (they are
/// the backends' static names), by content only when the addresses differ.
#[inline]
fn same_run(a: &RunKey, b: &RunKey) -> bool {
    a.1 == b.1 && (ptr::eq(a.0, b.0) || a.0 == b.0)
}

/// A node a link points at.
///
/// # Safety
///
/// `p` must be non-null and read from the registry (a head or a neighbour) under its lock,
/// which must still be held while the result is used.
unsafe fn node_at<'a>(p: *const Node) -> &'a Node {
    // SAFETY: the caller's contract; a node is in the registry only while alive (module docs).
    unsafe { &*p }
}

impl Registry {
    fn link(&mut self, node: &Node, run: RunKey) {
        // Usually there is one run, named by the same static string every time.
        let i = match self.heads.first() {
            Some((r, _)) if r.1 == run.1 && ptr::eq(r.0, run.0) => 0,
            _ => self.find_or_add_run(run),
        };
        let head = &mut self.heads[i].1;
        node.entry.set_prev(ptr::null());
        node.entry.set_next(*head);
        if !head.is_null() {
            // SAFETY: a head read under the lock, which `&mut self` holds.
            unsafe { node_at(*head) }.entry.set_prev(node);
        }
        *head = node;
        node.mark_registered(true);
    }

    /// The index of `run`'s list, added empty if there is none. Out of line: `link` tries
    /// the first list first.
    #[cold]
    #[inline(never)]
    fn find_or_add_run(&mut self, run: RunKey) -> usize {
        match self.heads.iter().position(|(r, _)| same_run(r, &run)) {
            Some(i) => i,
            None => {
                self.heads.push((run, ptr::null()));
                self.heads.len() - 1
            }
        }
    }

    fn unlink(&mut self, node: &Node) {
        let (prev, next) = (node.entry.prev(), node.entry.next());
        if next == unlinked() {
            return;
        }
        if prev.is_null() {
            // The newest of its run: its run's head.
            let i = self
                .heads
                .iter()
                .position(|(_, h)| ptr::eq(*h, node))
                .expect("a linked node without a predecessor is a head");
            if next.is_null() {
                self.heads.swap_remove(i); // the run's last tracked task
            } else {
                self.heads[i].1 = next;
            }
        } else {
            // SAFETY: a neighbour read under the lock, which `&mut self` holds.
            unsafe { node_at(prev) }.entry.set_next(next);
        }
        if !next.is_null() {
            // SAFETY: as for `prev`.
            unsafe { node_at(next) }.entry.set_prev(prev);
        }
        node.entry.set_prev(ptr::null());
        node.entry.set_next(unlinked());
        node.mark_registered(false);
    }

    /// Calls `f` on every linked node of `run`, newest first.
    fn for_each(&self, run: RunKey, mut f: impl FnMut(&Node)) {
        let Some(&(_, mut at)) = self.heads.iter().find(|(r, _)| same_run(r, &run)) else { return };
        while !at.is_null() {
            // SAFETY: a head or neighbour read under the lock, held as long as `&self` (the
            // guard) lives.
            let node = unsafe { node_at(at) };
            f(node);
            at = node.entry.next();
        }
    }
}

/// Links a task's node into the registry, as a task of `run`. The node must not be linked.
pub(crate) fn link(node: &Node, run: RunKey) {
    debug_assert_eq!(node.entry.next(), unlinked(), "a node is linked once");
    lock().link(node, run);
}

/// A node linked into the registry for as long as this value lives: unlinked before the node
/// is released, so that `Node::drop`'s safety net never has to (a runner's main task holds
/// one).
#[derive(Debug)]
pub(crate) struct Registered(NodeArc);

impl Registered {
    pub(crate) fn link(node: NodeArc, run: RunKey) -> Self {
        link(&node, run);
        Registered(node)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        unlink(&self.0);
    }
}

/// Unlinks a task's node, if it is linked.
pub(crate) fn unlink(node: &Node) {
    lock().unlink(node);
}

/// What `Node::drop` calls first for a node that was ever linked: unlinks it if it still is.
///
/// A safety net: every owner unlinks its node before releasing it (a group's task when it
/// ends or is dropped, a main task through [`Registered`]), so this finds nothing to do. Were
/// it ever to, a listing on another thread could be reading the node through its list pointer
/// until the lock is taken here, while the dropping thread holds `&mut Node`: no field is
/// written or freed before the unlink, so nothing is read torn, though stricter aliasing
/// models than rustc's would object.
#[inline]
pub(crate) fn unlink_dropped(node: &Node) {
    // Relaxed is enough: the node is being dropped, so the last `NodeArc` release synchronised
    // with every earlier owner, including whoever linked or unlinked it, and only those set
    // or clear the `unlinked()` marker (see `TaskEntry`).
    if node.entry.next() != unlinked() {
        unlink(node);
    }
}

/// Calls `f` on every registered task of `run`, with its metadata and node.
pub(crate) fn for_each_task(run: RunKey, mut f: impl FnMut(&TaskMeta, &Node)) {
    lock().for_each(run, |node| {
        if let Some(meta) = node.entry.meta() {
            f(meta, node);
        }
    });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::task::id::TaskId;

    /// Two runs no real runtime has, so that tests running alongside do not interfere. The
    /// second run's name comes in two copies at different addresses: a run key compares by
    /// content, and `copy` picks which one.
    fn run_key(which: usize, copy: usize) -> RunKey {
        // Each test lists its own runs: the tests of this module run on parallel threads.
        static NAMES: std::sync::OnceLock<[&'static str; 2]> = std::sync::OnceLock::new();
        let names = NAMES
            .get_or_init(|| [0, 1].map(|_| &*Box::leak(String::from("registry-test-b").into_boxed_str())));
        // Runs 2 and 3 are for the plain tests, which run alongside the property test.
        [
            ("registry-test-a", u64::MAX - 7),
            (names[copy], u64::MAX - 8),
            ("registry-test-c", u64::MAX - 9),
            ("registry-test-d", u64::MAX - 10),
        ][which]
    }

    fn task_node() -> NodeArc {
        NodeArc::new(Node::new_task(TaskMeta::new(None, "t".into())))
    }

    fn listed(run: usize) -> BTreeSet<TaskId> {
        let mut out = BTreeSet::new();
        for_each_task(run_key(run, 1), |meta, _| {
            out.insert(meta.id);
        });
        out
    }

    proptest! {
        /// Any order of links (into either of two runs), unlinks and drops leaves exactly the
        /// linked, live nodes listed, each under its own run.
        #[test]
        fn lists_match_the_model(ops in proptest::collection::vec((0u8..3, 0usize..8, 0usize..2), 0..64)) {
            let mut nodes: Vec<Option<NodeArc>> = (0..8).map(|_| Some(task_node())).collect();
            let mut model = [BTreeSet::new(), BTreeSet::new()];
            for (op, i, run) in ops {
                let Some(n) = nodes[i].clone() else { continue };
                let id = n.entry.meta().expect("a task node").id;
                match op {
                    0 if !model.iter().any(|m| m.contains(&id)) => {
                        link(&n, run_key(run, i % 2));
                        model[run].insert(id);
                    }
                    1 => {
                        unlink(&n);
                        model.iter_mut().for_each(|m| { m.remove(&id); });
                    }
                    2 => {
                        model.iter_mut().for_each(|m| { m.remove(&id); });
                        drop(n);
                        nodes[i] = None; // the last reference: `Node::drop` unlinks it
                    }
                    _ => {}
                }
                prop_assert_eq!(listed(0), model[0].clone());
                prop_assert_eq!(listed(1), model[1].clone());
            }
            drop(nodes);
            prop_assert!(listed(0).is_empty() && listed(1).is_empty());
        }
    }

    #[test]
    fn scope_nodes_carry_no_task() {
        let n = Node::new(false);
        assert!(n.entry.meta().is_none());
        unlink(&n); // not linked: nothing happens
    }

    #[test]
    fn a_dropped_node_leaves_its_run_list() {
        let a = task_node();
        let b = task_node();
        link(&a, run_key(2, 0));
        link(&b, run_key(2, 0));
        drop(a); // the older one, in the middle of nothing: b is the head
        assert_eq!(listed(2).into_iter().collect::<Vec<_>>(), vec![b.entry.meta().unwrap().id]);
        drop(b);
        assert!(listed(2).is_empty());
    }

    #[test]
    fn a_registered_ancestor_released_by_its_child_leaves_the_registry() {
        let task = task_node();
        link(&task, run_key(3, 0));
        let scope = NodeArc::new(Node::new(false));
        scope.enter(Some(task.clone()));
        drop(task); // only the scope holds the task's node now, still linked
        assert_eq!(listed(3).len(), 1);
        // Releases the task's node through `Node::drop`'s ancestor loop, which must drop it in
        // place (unlinking it) rather than move it out of its allocation.
        drop(scope);
        assert!(listed(3).is_empty());
    }
}
