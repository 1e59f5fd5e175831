//! One node of the cancel-scope tree, and how a blocked operation registers to be woken when
//! its scope becomes cancelled.
//!
//! Design (see docs/design.md, "The scope tree"): a node knows its parent. Effective
//! cancellation is computed by walking up to the first cancelled node (cancelled) or the first
//! shielded node (not cancelled), so entering and leaving a scope touches no shared list. A
//! blocked operation registers its waker on its own node only. The first time anything waits
//! in a node, the node links itself into its parent's waiter list (and the parent into its
//! parent, up to the root, top-down), and keeps that link until it drops: waking a node wakes
//! its wakers and, through the links, every non-shielded linked node below it. So a wait costs
//! one uncontended lock on the waiter's own node, and only a node's first wait touches shared
//! nodes (a task group's node is shared by all its tasks).

#[cfg(not(loom))]
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::AtomicPtr;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

use super::cell::{NodeArc, NodeWeak, TaskCell, UniqueNode};
use crate::error::{CancelReason, CancelSource, Cancelled};
use crate::loom::{
    get_mut, lock, with_mut_u32, with_mut_u8, AtomicU32, AtomicU8, AtomicUsize, Mutex, Ordering,
};
use crate::task::id::TaskMeta;
use crate::task::registry::{self, TaskEntry};
use crate::task::slot::TaskSlot;

const CANCELLED: u8 = 1;
const SHIELD: u8 = 1 << 1;
const ENTERED: u8 = 1 << 2;
const CAUGHT: u8 = 1 << 3;
/// Linked into the parent's waiter list, and so are all its ancestors.
const LINKED: u8 = 1 << 4;
/// Reparented: `retired_parent` holds a reference.
const REPARENTED: u8 = 1 << 5;
/// Linked into the registry of running tasks (set and cleared under the registry's lock).
const REGISTERED: u8 = 1 << 6;
/// What `drop` has to look at beyond the parent chain: an owned reason (set just before
/// `CANCELLED`), a retired parent, a registry entry.
const DROP_WORK: u8 = CANCELLED | REPARENTED | REGISTERED;

/// What a node's waiter list holds: a blocked operation's waker, or a linked child node.
enum Entry {
    Waker(Waker),
    Child(NodeWeak),
}

#[derive(Default)]
struct Waiters {
    entries: Slab<Entry>,
    /// This node's key in its parent's list, once linked.
    link: Option<Key>,
    /// The key of the resident waker (see `Node::resident`), once there is one.
    resident: Option<Key>,
}

/// A key of a waiter list, kept in four bytes: a node's size shows in the allocator's cost of
/// every spawn (benches/core_tasks.rs, `spawn+join`), and a list never nears 2^32 entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key(std::num::NonZeroU32);

impl Key {
    fn new(key: usize) -> Key {
        let plus_one = u32::try_from(key).ok().and_then(|k| k.checked_add(1));
        Key(plus_one
            .and_then(std::num::NonZeroU32::new)
            .expect("a waiter list has fewer than 2^32 - 1 entries"))
    }

    fn get(self) -> usize {
        self.0.get() as usize - 1
    }
}
pub(crate) struct Node {
    state: AtomicU8,
    /// The enclosing node, or null for the root: a strong reference made with `NodeArc::into_raw`
    /// when the node is entered and released when it is dropped. (A `OnceLock` here cost more
    /// than the rest of entering a scope; see benches/core_tasks.rs.)
    parent: AtomicPtr<Node>,
    /// The first cancellation's reason: null until then, then a strong reference made with
    /// `Arc::into_raw`, set once and released when the node drops. (A `OnceLock` takes twice
    /// the space, and a node's size counts, see `Key`.)
    reason: AtomicPtr<CancelReason>,
    /// The parent before a `reparent`, kept alive until this node drops so that a `&Node`
    /// obtained from the old parent pointer stays valid: null, or a strong reference made with
    /// `NodeArc::into_raw`, set once (under the `waiters` lock) and released when the node drops.
    retired_parent: AtomicPtr<Node>,
    waiters: Mutex<Waiters>,
    /// The data and vtable pointers of the node's *resident* waker: the first waker that
    /// blocked here, which stays registered until the node drops. An operation whose waker is
    /// the resident one (`will_wake`) needs no registration of its own, so a task that blocks
    /// again and again in its own scope takes no lock for it. Zero until set; set once, under
    /// the `waiters` lock, after the entry is in the list.
    resident_data: AtomicUsize,
    resident_vtable: AtomicUsize,
    pub(crate) timing: Mutex<Timing>,
    /// Storage for the outcome of the task this node belongs to, if it is a task's node. The
    /// task module owns the type and all its logic (`task/slot.rs`); the node only holds it
    /// so that spawning a task allocates one node, not a node and a separate result cell: the
    /// tree's links are `NodeArc`, so a task-owned structure holding the node could not be
    /// linked without a hand-written reference count.
    pub(crate) task: TaskSlot,
    /// The metadata of the task this node belongs to, and its place in the registry of
    /// running tasks (`task/registry.rs`), in the node for the same reason as `task`.
    pub(crate) entry: TaskEntry,
    /// Bumped (under the `timing` lock) on every deadline change, so the owner can tell
    /// "nothing changed" without locking. Four bytes, so that it shares a word with `state`
    /// (a node's size counts, see `Key`): a wrap would need 2^32 deadline changes between two
    /// polls of the owner, which every change wakes.
    pub(crate) timing_generation: AtomicU32,
}

#[cfg(not(loom))]
thread_local! {
    /// One scope node per thread kept for reuse (see [`Node::recycle`]).
    static SPARE: Cell<Option<UniqueNode>> = const { Cell::new(None) };
}

/// The most waiter slots a recycled node keeps allocated (see [`Node::reset`]).
#[cfg(not(loom))]
const SPARE_WAITERS: usize = 8;

/// A scope's deadline, as set by the user, and the waker of the future that owns the scope's
/// timer (woken when the deadline changes so that it re-arms).
#[derive(Debug, Default)]
pub(crate) struct Timing {
    when: When,
    pub(crate) owner: Option<Waker>,
}

/// A deadline, or a timeout still to be resolved against the runtime's clock on entry (one
/// field, not two options: a node's size counts, see `Key`).
#[derive(Clone, Copy, Debug, Default)]
enum When {
    #[default]
    Never,
    At(Instant),
    After(Duration),
}

impl Timing {
    /// The absolute deadline, once known (`None` while a timeout is unresolved).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.when {
            When::At(at) => Some(at),
            When::Never | When::After(_) => None,
        }
    }

    /// Sets or clears the absolute deadline (replacing an unresolved timeout).
    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.when = deadline.map_or(When::Never, When::At);
    }

    /// Sets a timeout, resolved by [`Timing::resolve`] when the scope is entered.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.when = When::After(timeout);
    }

    /// Turns a timeout into a deadline counted from `now` (none, if that overflows `Instant`).
    pub(crate) fn resolve(&mut self, now: Instant) {
        if let When::After(timeout) = self.when {
            self.set_deadline(now.checked_add(timeout));
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("Node")
            .field("cancel_called", &(s & CANCELLED != 0))
            .field("shield", &(s & SHIELD != 0))
            .field("entered", &(s & ENTERED != 0))
            .finish()
    }
}

impl Node {
    #[cfg(any(test, loom))]
    pub(crate) fn new(shield: bool) -> Self {
        Self::with_entry(shield, TaskEntry::none())
    }

    /// Notes whether the node is linked into the registry of running tasks, so that dropping
    /// a linked node unlinks it (see `drop`). Called by the registry under its lock.
    pub(crate) fn mark_registered(&self, on: bool) {
        if on {
            self.state.fetch_or(REGISTERED, Ordering::AcqRel);
        } else {
            self.state.fetch_and(!REGISTERED, Ordering::AcqRel);
        }
    }

    /// The node of a task, which carries the task's metadata.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn new_task(meta: TaskMeta) -> Self {
        Self::with_entry(false, TaskEntry::task(meta))
    }

    /// A new scope node, shared: `Arc::new(Node::new(shield))`, or this thread's spare node
    /// (see [`recycle`](Self::recycle)).
    #[inline]
    pub(crate) fn new_arc(shield: bool) -> NodeArc {
        let mut n = Self::new_unique();
        if shield {
            with_mut_u8(&mut n.state, |s| *s = SHIELD);
        }
        n.share()
    }

    /// A new scope node, not shared yet: this thread's spare, or a new allocation.
    #[inline]
    fn new_unique() -> UniqueNode {
        #[cfg(not(loom))]
        if let Some(n) = SPARE.try_with(Cell::take).ok().flatten() {
            return n;
        }
        Self::alloc_unique()
    }

    /// A new scope node in a new allocation: out of line, so that what inlines into a
    /// scope's constructor is the common case, taking the thread's spare.
    #[cold]
    #[inline(never)]
    fn alloc_unique() -> UniqueNode {
        UniqueNode::new_with(|| Self::with_entry(false, TaskEntry::none()))
    }

    /// A new scope node with its deadline or timeout set by `set`, unshared. The node is
    /// reachable from nowhere else yet, so this writes plainly instead of locking `timing`
    /// and bumping the generation atomically.
    #[inline]
    pub(crate) fn new_arc_timed(set: impl FnOnce(&mut Timing)) -> NodeArc {
        Self::new_unique_timed(set).share()
    }

    /// [`new_arc_timed`](Self::new_arc_timed), not shared yet (a deadline helper's node, see
    /// `Scoped::private`).
    #[inline]
    pub(crate) fn new_unique_timed(set: impl FnOnce(&mut Timing)) -> UniqueNode {
        let mut n = Self::new_unique();
        set(get_mut(&mut n.timing));
        // The owner resolves the deadline on its first poll because the generation moved.
        with_mut_u32(&mut n.timing_generation, |g| *g = g.wrapping_add(1));
        n
    }

    /// Drops a scope's node when the scope is done with it; if that was the last reference and
    /// the node has no task (a task's node is never kept), the allocation is reset and kept as
    /// this thread's spare for the next scope. A scope around a ready future otherwise pays a
    /// `malloc` and a `free` (about 140 of what were 560 instructions, callgrind). Nobody else
    /// can reach a node whose last reference this was and that no `NodeWeak` points to (a
    /// linked child's parent holds one until it unlinks), so reusing it is safe.
    #[inline]
    pub(crate) fn recycle(node: NodeArc) {
        #[cfg(not(loom))]
        if let Some(n) = NodeArc::release_or_reclaim(node) {
            Self::keep_spare(n);
        }
        #[cfg(loom)]
        drop(node);
    }

    /// Resets a node that was a scope's and keeps it as the thread's spare.
    #[cfg(not(loom))]
    fn keep_spare(mut n: UniqueNode) {
        if n.entry.meta().is_some() {
            return;
        }
        n.reset();
        // On a thread being torn down the closure is dropped unrun, and the node with it.
        let _ = SPARE.try_with(move |s| drop(s.replace(Some(n))));
    }

    /// Releases what a scope's node owns (as `Drop` does) and resets it, field by field, to
    /// the node `new_arc(false)` makes: assigning a whole new node cost 140 of a scope's 414
    /// instructions (callgrind), most of it dropping and rebuilding parts that are already
    /// empty. The waiter list keeps its allocation. Only for a node without a task: its
    /// outcome slot and registry entry are never touched, so they are left as they are.
    #[cfg(not(loom))]
    #[inline(always)] // one caller (`recycle`); called, it saved and restored 8 registers
    fn reset(&mut self) {
        if *self.state.get_mut() & DROP_WORK != 0 {
            self.drop_owned();
        }
        let parent = self.take_parent();
        self.unlink_from(parent.as_deref());
        // The parent's own `Drop` releases a chain of ancestors without recursing.
        drop(parent);
        // Every field, by name: a field added to `Node` must be reset here too.
        let Node {
            state,
            parent,
            reason,
            retired_parent,
            waiters,
            resident_data,
            resident_vtable,
            timing,
            timing_generation,
            task,
            entry,
        } = self;
        *state.get_mut() = 0;
        debug_assert!(parent.get_mut().is_null() && reason.get_mut().is_null());
        debug_assert!(retired_parent.get_mut().is_null());
        // A destructor that panicked under one of the locks leaves nothing to see here.
        waiters.clear_poison();
        timing.clear_poison();
        let Waiters { entries, link, resident } = get_mut(waiters);
        // Drops any waker still registered here (the resident one included). A short list
        // keeps its allocation; a long one (a scope where many futures waited) is freed, so
        // that the thread's spare never holds on to it.
        if entries.capacity() > SPARE_WAITERS {
            *entries = Slab::new();
        } else {
            entries.clear();
        }
        *link = None;
        *resident = None;
        *resident_data.get_mut() = 0;
        *resident_vtable.get_mut() = 0;
        *get_mut(timing) = Timing::default();
        *timing_generation.get_mut() = 0;
        debug_assert!(task.is_pristine() && entry.meta().is_none());
    }

    /// A new task node, shared, with no room for a body (a task run by other means than a
    /// group's spawn, and tests).
    #[inline]
    pub(crate) fn new_task_arc(meta: TaskMeta) -> NodeArc {
        Self::arc_with_entry(false, TaskEntry::task(meta))
    }

    /// Writes the node straight into a fresh allocation. `Arc::new` built the 256-byte node
    /// on the stack and copied it: 50 instructions of `memcpy` on every scope and spawn, a
    /// tenth of a scope around a ready future (callgrind, `core_tasks` scope case).
    #[inline]
    fn arc_with_entry(shield: bool, entry: TaskEntry) -> NodeArc {
        NodeArc::new_with(|| Self::with_entry(shield, entry))
    }

    /// A task's node built in place in a cell with room for the task's body `B`.
    #[inline]
    pub(crate) fn new_task_cell<B: std::future::Future<Output = ()> + Send + 'static>(
        meta: TaskMeta,
    ) -> TaskCell<B> {
        TaskCell::new(|| Self::with_entry(false, TaskEntry::task(meta)))
    }

    #[inline]
    fn with_entry(shield: bool, entry: TaskEntry) -> Self {
        Self {
            state: AtomicU8::new(if shield { SHIELD } else { 0 }),
            parent: AtomicPtr::new(ptr::null_mut()),
            reason: AtomicPtr::new(ptr::null_mut()),
            retired_parent: AtomicPtr::new(ptr::null_mut()),
            waiters: Mutex::new(Waiters::default()),
            resident_data: AtomicUsize::new(0),
            resident_vtable: AtomicUsize::new(0),
            timing: Mutex::new(Timing::default()),
            timing_generation: AtomicU32::new(0),
            task: TaskSlot::default(),
            entry,
        }
    }

    /// Binds the node under `parent` (trio's `__enter__`). Returns `false` if it was entered
    /// before: a scope is good for one run only.
    pub(crate) fn enter(&self, parent: Option<NodeArc>) -> bool {
        let prev = self.state.fetch_or(ENTERED, Ordering::AcqRel);
        if prev & ENTERED != 0 {
            return false;
        }
        if let Some(p) = parent {
            self.parent.store(NodeArc::into_raw(p).cast_mut(), Ordering::Release);
        }
        true
    }

    /// [`enter`](Self::enter) for a new task's node, which no other thread can reach yet (the
    /// spawning thread publishes it when it hands the task to the runtime): a load and a store
    /// where `enter` has an atomic read-modify-write, which costs 7-9 ns here (see
    /// docs/benchmarks.md). Only before the node is published: on a node another thread can
    /// reach, a concurrent flag update (`CANCELLED`, `REGISTERED`, which `Drop` relies on to
    /// unlink the node from the task registry) could be lost.
    #[inline]
    pub(crate) fn enter_fresh(&self, parent: Option<NodeArc>) {
        let state = self.state.load(Ordering::Relaxed);
        debug_assert!(state & ENTERED == 0, "a new task's node has not been entered");
        self.state.store(state | ENTERED, Ordering::Release);
        if let Some(p) = parent {
            self.parent.store(NodeArc::into_raw(p).cast_mut(), Ordering::Release);
        }
    }

    /// [`enter`](Self::enter) for a node nothing else can reach yet: plain writes.
    #[inline]
    pub(crate) fn enter_unique(&mut self, parent: Option<NodeArc>) {
        with_mut_u8(&mut self.state, |state| {
            debug_assert!(*state & ENTERED == 0, "a node nothing shares has not been entered");
            *state |= ENTERED;
        });
        if let Some(p) = parent {
            *self.parent.get_mut() = NodeArc::into_raw(p).cast_mut();
        }
    }

    #[inline]
    pub(crate) fn parent(&self) -> Option<&Node> {
        let p = self.parent.load(Ordering::Acquire);
        // SAFETY: a non-null `parent` came from `NodeArc::into_raw` (in `enter` or `reparent`), and
        // the strong reference it stands for is released only when `self` drops: `reparent`
        // moves the old one into `retired_parent` instead of releasing it. So the parent lives
        // at least as long as `&self`.
        unsafe { p.as_ref() }
    }

    /// Moves an entered node under `new_parent` (trio moves a task started with
    /// `nursery.start` from the caller's scope into the nursery once it signals). Can be done
    /// once. Waiters below are woken so they re-register along the new chain.
    pub(crate) fn reparent(this: &NodeArc, new_parent: NodeArc) {
        if this.has(LINKED) {
            Node::ensure_linked(&new_parent);
        }
        {
            // Under our own list's lock, so a concurrent `link_to_parent` sees one parent.
            let mut w = lock(&this.waiters);
            let new_key = w.link.map(|_| {
                Key::new(lock(&new_parent.waiters).entries.insert(Entry::Child(NodeArc::downgrade(this))))
            });
            let old = this.parent.swap(NodeArc::into_raw(new_parent).cast_mut(), Ordering::AcqRel);
            if !old.is_null() {
                // SAFETY: `old` came from `NodeArc::into_raw` and was owned by `self.parent`; that
                // ownership moves to `retired_parent` (released when `self` drops), and this
                // borrow ends before the move.
                let old_node = unsafe { &*old };
                if let Some(key) = w.link {
                    let _ = lock(&old_node.waiters).entries.try_remove(key.get());
                }
                let kept = this.retired_parent.compare_exchange(
                    ptr::null_mut(),
                    old,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                // A second reparent is a bug in this crate. `old` is then left unreleased (a
                // leak) rather than freed, since a reader may still hold a `&Node` from it; the
                // first retired parent stays where it is and is released on drop.
                assert!(kept.is_ok(), "a scope node is reparented at most once");
                this.state.fetch_or(REPARENTED, Ordering::AcqRel);
            }
            w.link = new_key;
        }
        // The new chain may be cancelled where the old one was not.
        super::epoch::bump();
        this.wake_all();
    }

    /// Links this node, and every ancestor not linked yet, into its parent's waiter list,
    /// top-down: a node is marked linked only once its whole chain is, so a waiter that finds
    /// its node linked knows a cancel anywhere above will reach it.
    #[inline]
    fn ensure_linked(this: &NodeArc) {
        // Once per node; every later wait in it only tests the bit.
        if !this.has(LINKED) {
            Node::link_chain(this);
        }
    }

    #[cold]
    fn link_chain(this: &NodeArc) {
        let mut chain = vec![this.clone()];
        while let Some(p) = chain.last().expect("never empty").parent_arc() {
            if p.has(LINKED) {
                break;
            }
            chain.push(p);
        }
        for n in chain.iter().rev() {
            Node::link_to_parent(n);
        }
    }

    fn link_to_parent(this: &NodeArc) {
        let mut w = lock(&this.waiters);
        if this.has(LINKED) {
            return;
        }
        if let Some(p) = this.parent() {
            w.link = Some(Key::new(lock(&p.waiters).entries.insert(Entry::Child(NodeArc::downgrade(this)))));
        }
        this.state.fetch_or(LINKED, Ordering::AcqRel);
    }

    fn parent_arc(&self) -> Option<NodeArc> {
        let p = self.parent.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: as in `parent`: `p` is a live `NodeArc` pointer owned by `self`; taking one
        // more strong reference to it is balanced by the returned Arc's drop.
        unsafe {
            NodeArc::increment_strong_count(p);
            Some(NodeArc::from_raw(p))
        }
    }

    #[inline]
    fn has(&self, bit: u8) -> bool {
        self.state.load(Ordering::Acquire) & bit != 0
    }

    pub(crate) fn cancel_called(&self) -> bool {
        self.has(CANCELLED)
    }
    pub(crate) fn shield(&self) -> bool {
        self.has(SHIELD)
    }
    pub(crate) fn cancelled_caught(&self) -> bool {
        self.has(CAUGHT)
    }
    pub(crate) fn set_caught(&self) {
        self.state.fetch_or(CAUGHT, Ordering::AcqRel);
    }

    /// The node whose cancellation makes this one effectively cancelled, if any: itself or an
    /// ancestor reached without crossing a shield.
    #[inline]
    pub(crate) fn cancelled_origin(&self) -> Option<&Node> {
        let mut n = self;
        loop {
            let s = n.state.load(Ordering::Acquire);
            if s & CANCELLED != 0 {
                return Some(n);
            }
            if s & SHIELD != 0 {
                return None;
            }
            n = n.parent()?;
        }
    }

    pub(crate) fn is_effectively_cancelled(&self) -> bool {
        self.cancelled_origin().is_some()
    }

    /// Whether a cancellation of an enclosing scope is visible inside this one (trio's
    /// `parent_cancellation_is_visible_to_us`): such a cancellation is not ours to catch.
    pub(crate) fn parent_cancellation_visible(&self) -> bool {
        !self.shield() && self.parent().is_some_and(Node::is_effectively_cancelled)
    }

    /// The error a checkpoint in this node returns, if it is effectively cancelled.
    #[inline]
    pub(crate) fn check(&self) -> Result<(), Cancelled> {
        match self.cancelled_origin() {
            None => Ok(()),
            Some(origin) => Err(origin.cancelled_error()),
        }
    }

    pub(crate) fn cancelled_error(&self) -> Cancelled {
        let p = self.reason.load(Ordering::Acquire);
        let reason = if p.is_null() {
            Arc::new(CancelReason { source: CancelSource::Explicit, message: None })
        } else {
            // SAFETY: a non-null `reason` came from `Arc::into_raw` and the strong reference it
            // stands for is released only when the node drops, after every `&self`: it is alive,
            // so taking one more reference to it is sound.
            unsafe {
                Arc::increment_strong_count(p);
                Arc::from_raw(p)
            }
        };
        Cancelled::new(reason)
    }

    /// Cancels this node: sets the flag first, then wakes every registered waiter. The first
    /// reason given is the one reported.
    pub(crate) fn cancel(&self, source: CancelSource, message: Option<String>) {
        #[cfg(feature = "tracing")]
        let logged = message.clone();
        if self.reason.load(Ordering::Acquire).is_null() {
            let new = Arc::into_raw(Arc::new(CancelReason { source, message })).cast_mut();
            if self
                .reason
                .compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: `new` was made by `Arc::into_raw` just above and was not stored.
                drop(unsafe { Arc::from_raw(new) });
            }
        }
        let prev = self.state.fetch_or(CANCELLED, Ordering::AcqRel);
        // Also when another call set the flag first and has not bumped yet: this caller has
        // seen the flag, so its own next check must not pass on a cached epoch.
        super::epoch::bump();
        if prev & CANCELLED == 0 {
            #[cfg(feature = "tracing")]
            tracing::debug!(
                target: "anyio::cancel",
                source = %source,
                message = logged.as_deref(),
                "cancel scope cancelled"
            );
            self.wake_all();
        }
    }

    pub(crate) fn set_shield(&self, on: bool) {
        if on {
            self.state.fetch_or(SHIELD, Ordering::AcqRel);
        } else {
            let prev = self.state.fetch_and(!SHIELD, Ordering::AcqRel);
            // Unconditionally, as in `cancel`: a concurrent call may have lowered it first.
            super::epoch::bump();
            // Waiters below this node ignored an outer cancellation while it was shielded: wake
            // them so they look again.
            if prev & SHIELD != 0 {
                self.wake_all();
            }
        }
    }

    /// Wakes every waiter registered here and, through the links, in every linked node below
    /// that is not shielded. Iterative, so a deep tree does not recurse. Wakers are cloned
    /// out and woken after each lock is released: a `wake` may run executor code that
    /// re-enters `cancel`.
    pub(crate) fn wake_all(&self) {
        let mut wakers = Vec::new();
        let mut children = Vec::new();
        collect(self, &mut wakers, &mut children);
        while let Some(child) = children.pop() {
            if !child.shield() {
                collect(&child, &mut wakers, &mut children);
            }
        }
        for w in wakers {
            w.wake();
        }
    }

    fn register(&self, waker: &Waker) -> usize {
        lock(&self.waiters).entries.insert(Entry::Waker(waker.clone()))
    }

    /// Whether `waker` is this node's resident waker (registered for the node's lifetime).
    /// A resident waker's clone keeps whatever its data pointer points to alive, so a match
    /// cannot be a different waker that reuses a freed address.
    fn is_resident(&self, waker: &Waker) -> bool {
        self.resident_vtable.load(Ordering::Acquire) == waker.vtable() as *const _ as usize
            && self.resident_data.load(Ordering::Acquire) == waker.data() as usize
    }

    /// Whether a cancellation of this node, or of any ancestor up to a shield, is certain to
    /// wake `waker` without registering it: it is the resident waker and the node's chain is
    /// linked. A caller that checked cancellation earlier in the same poll may then return
    /// `Pending` at once: a cancel after that check wakes the resident waker.
    #[inline]
    pub(crate) fn wakes_resident(&self, waker: &Waker) -> bool {
        self.has(LINKED) && self.is_resident(waker)
    }

    /// Makes `waker` the resident waker if there is none yet; returns whether it is now.
    fn try_make_resident(&self, waker: &Waker) -> bool {
        let mut w = lock(&self.waiters);
        if w.resident.is_some() {
            return false;
        }
        w.resident = Some(Key::new(w.entries.insert(Entry::Waker(waker.clone()))));
        // Published after the entry is in the list: whoever sees these sees the entry.
        self.resident_data.store(waker.data() as usize, Ordering::Release);
        self.resident_vtable.store(waker.vtable() as *const _ as usize, Ordering::Release);
        true
    }

    fn update(&self, key: usize, waker: &Waker) {
        if let Some(Entry::Waker(w)) = lock(&self.waiters).entries.get_mut(key) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }

    fn unregister(&self, key: usize) {
        let removed = lock(&self.waiters).entries.try_remove(key);
        drop(removed); // outside the lock: dropping a waker may run executor code
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn waiter_count(&self) -> usize {
        let w = lock(&self.waiters);
        w.entries
            .iter()
            .filter(|(k, e)| matches!(e, Entry::Waker(_)) && Some(*k) != w.resident.map(Key::get))
            .count()
    }
}

fn collect(node: &Node, wakers: &mut Vec<Waker>, children: &mut Vec<NodeArc>) {
    let w = lock(&node.waiters);
    for (_, e) in w.entries.iter() {
        match e {
            Entry::Waker(waker) => wakers.push(waker.clone()),
            Entry::Child(c) => children.extend(c.upgrade()),
        }
    }
}

/// The registration a blocked operation holds on the scope tree: its waker in the waiter list
/// of the node it blocked in.
#[derive(Debug, Default)]
pub(crate) struct WaitRegistration {
    entry: Option<(NodeArc, usize)>,
}

impl WaitRegistration {
    pub(crate) const fn new() -> Self {
        Self { entry: None }
    }

    /// Registers `waker` so that cancelling `node` (or any ancestor up to a shield) wakes it,
    /// then re-checks cancellation. Returns the cancellation error if the node is effectively
    /// cancelled; otherwise the caller may return `Pending`.
    ///
    /// Linking and registering before the final check close the lost wake-up race with
    /// `cancel`, which sets its flag before it takes any list's lock: if our check misses the
    /// flag, the cancel's walk down the links takes each lock after we released it and finds
    /// our waker.
    pub(crate) fn register(&mut self, node: &NodeArc, waker: &Waker) -> Result<(), Cancelled> {
        node.check()?;
        Node::ensure_linked(node);
        // The common case: the task blocks in a node where its waker is resident already.
        if node.is_resident(waker) || (self.entry.is_none() && node.try_make_resident(waker)) {
            self.clear();
            return node.check();
        }
        match &self.entry {
            Some((n, key)) if NodeArc::ptr_eq(n, node) => n.update(*key, waker),
            _ => {
                self.clear();
                let key = node.register(waker);
                self.entry = Some((node.clone(), key));
            }
        }
        node.check()
    }

    /// [`register`](Self::register) for a caller that found `node` not effectively cancelled
    /// earlier in the same poll (the check may have been the cached one of `cancel::epoch`)
    /// and has registered nowhere since. In the common case, `waker` is `node`'s resident
    /// waker, and there is nothing left to do, not even a second check: a waker becomes
    /// resident only in `register`, after the node is linked to its parent, and stays so for
    /// the node's life, so it was resident at that check, and a cancel after the check wakes
    /// it. A channel op waiting for every message saved a full registration (two walks up
    /// the scope chain) per wait: 47 of a rendezvous message's instructions.
    ///
    /// The crate calls it as `current::register_current_after_check`, which does the same
    /// through the current-node pointer and so takes no reference in the common case; this
    /// form, on an explicit node, is what the loom models drive.
    #[cfg(loom)]
    pub(crate) fn register_after_check(&mut self, node: &NodeArc, waker: &Waker) -> Result<(), Cancelled> {
        if node.wakes_resident(waker) {
            self.clear();
            return Ok(());
        }
        self.register(node, waker)
    }

    /// Whether a waker is registered (`clear` has something to do).
    #[inline]
    pub(crate) fn is_registered(&self) -> bool {
        self.entry.is_some()
    }

    /// Unregisters, if registered. Inlined: on the hot paths there is nothing to do.
    #[inline]
    pub(crate) fn clear(&mut self) {
        if self.entry.is_some() {
            self.unregister();
        }
    }

    #[cold]
    fn unregister(&mut self) {
        if let Some((n, key)) = self.entry.take() {
            n.unregister(key);
        }
    }
}

impl Drop for WaitRegistration {
    #[inline]
    fn drop(&mut self) {
        self.clear();
    }
}

impl Node {
    /// Leaves the registry of running tasks and releases the references `reason` and
    /// `retired_parent` own (see their docs).
    #[cold]
    fn drop_owned(&mut self) {
        // Leave the registry before anything else is torn down: the registry may follow a
        // pointer to this node until then.
        registry::unlink_dropped(self);
        let reason = std::mem::replace(self.reason.get_mut(), ptr::null_mut());
        if !reason.is_null() {
            // SAFETY: a non-null `reason` came from `Arc::into_raw` and is owned by the field,
            // just replaced by null: this is the one place that releases it.
            drop(unsafe { Arc::from_raw(reason) });
        }
        let retired = std::mem::replace(self.retired_parent.get_mut(), ptr::null_mut());
        if !retired.is_null() {
            // SAFETY: as for `reason`.
            drop(unsafe { NodeArc::from_raw(retired) });
        }
    }

    /// Takes this node's strong reference to its parent out of the raw pointer.
    fn take_parent(&mut self) -> Option<NodeArc> {
        let p = std::mem::replace(self.parent.get_mut(), ptr::null_mut());
        // SAFETY: a non-null `p` came from `NodeArc::into_raw` and is owned by `self.parent`; it
        // was just replaced by null, so this is the single place that releases it.
        (!p.is_null()).then(|| unsafe { NodeArc::from_raw(p) })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // One load for what most nodes (never cancelled, reparented or registered) skip.
        if self.state.load(Ordering::Acquire) & DROP_WORK != 0 {
            self.drop_owned();
        }
        // Release the chain of ancestors iteratively: dropping the last reference to a long
        // chain from its leaf must not recurse once per level. Each node leaves its parent's
        // waiter list first (the parent is alive until then: the node holds it).
        let mut next = self.take_parent();
        self.unlink_from(next.as_deref());
        while let Some(parent) = next {
            next = match NodeArc::into_last(parent) {
                // A node in the task registry must leave it before any of its fields is
                // written (the registry reads them under its own lock): it drops as a whole, its
                // own `drop` unlinking it first (its task always unlinks it sooner; this is the
                // safety net). Tested only once `into_last` has synchronised with every earlier
                // owner, so the bit read is the last one written.
                Some(last) if last.state.load(Ordering::Acquire) & REGISTERED != 0 => {
                    drop(last);
                    None
                }
                // The last reference to a parent takes its parent out before the parent drops
                // in place (its own `drop` then finds no chain to walk).
                Some(mut last) => {
                    let grandparent = last.take_parent();
                    last.unlink_from(grandparent.as_deref());
                    grandparent
                }
                None => None,
            };
        }
    }
}

impl Node {
    /// Inline up to the test: most nodes never linked (nothing waited in them).
    #[inline]
    fn unlink_from(&mut self, parent: Option<&Node>) {
        // Exclusive: no lock needed for our own list.
        let link = get_mut(&mut self.waiters).link.take();
        if let (Some(key), Some(p)) = (link, parent) {
            Self::remove_link(p, key);
        }
    }

    #[inline(never)]
    fn remove_link(parent: &Node, key: Key) {
        let _ = lock(&parent.waiters).entries.try_remove(key.get());
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn tree(depth: usize) -> Vec<NodeArc> {
        let mut nodes: Vec<NodeArc> = Vec::new();
        for _ in 0..depth {
            let n = NodeArc::new(Node::new(false));
            assert!(n.enter(nodes.last().cloned()));
            nodes.push(n);
        }
        nodes
    }

    #[test]
    fn cancelling_an_ancestor_wakes_a_waiter_registered_below() {
        let nodes = tree(3);
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut reg = WaitRegistration::new();
        reg.register(&nodes[2], &waker).unwrap();
        nodes[0].cancel(CancelSource::Explicit, None);
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(nodes[2].check().is_err());
        reg.clear();
        assert!(nodes.iter().all(|n| n.waiter_count() == 0));
    }

    #[test]
    fn shield_blocks_outer_cancellation_until_lifted() {
        let nodes = tree(3);
        nodes[1].set_shield(true);
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut reg = WaitRegistration::new();
        reg.register(&nodes[2], &waker).unwrap();
        assert_eq!(nodes[0].waiter_count(), 0, "only the waiter's own node holds its waker");
        nodes[0].cancel(CancelSource::Explicit, None);
        assert!(nodes[2].check().is_ok());
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        nodes[1].set_shield(false);
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(reg.register(&nodes[2], &waker).is_err());
    }

    #[test]
    fn deep_chain_check_does_not_recurse() {
        let nodes = tree(100_000);
        nodes[0].cancel(CancelSource::Deadline, None);
        let err = nodes[99_999].check().unwrap_err();
        assert_eq!(err.source_kind(), CancelSource::Deadline);
        // Drop from the leaf up so that dropping the Arc chain does not recurse deeply.
        let mut nodes = nodes;
        while let Some(n) = nodes.pop() {
            drop(n);
        }
    }

    #[test]
    fn first_reason_wins() {
        let n = Node::new(false);
        n.cancel(CancelSource::Deadline, None);
        n.cancel(CancelSource::Explicit, Some("later".into()));
        assert_eq!(n.cancelled_error().source_kind(), CancelSource::Deadline);
    }

    #[test]
    fn a_recycled_node_comes_back_fresh_and_is_reused() {
        let parent = Node::new_arc(false);
        let n = Node::new_arc(true);
        assert!(n.enter(Some(parent.clone())));
        n.cancel(CancelSource::Explicit, Some("old".into()));
        lock(&n.timing).set_deadline(Some(Instant::now()));
        n.timing_generation.fetch_add(1, Ordering::AcqRel);
        let addr = NodeArc::as_ptr(&n);
        Node::recycle(n);
        // The old node released its parent.
        assert_eq!(NodeArc::strong_count(&parent), 1);
        let m = Node::new_arc(false);
        assert_eq!(NodeArc::as_ptr(&m), addr, "the spare allocation is reused");
        assert!(!m.cancel_called() && !m.shield() && m.parent().is_none());
        assert_eq!(m.timing_generation.load(Ordering::Acquire), 0);
        assert!(m.reason.load(Ordering::Acquire).is_null());
        assert_eq!(lock(&m.timing).deadline(), None);
        assert!(m.enter(None), "a recycled node can be entered again");
        // A shielded scope taking the spare is shielded.
        Node::recycle(m);
        assert!(Node::new_arc(true).shield());
    }

    #[test]
    fn a_recycled_node_drops_its_wakers_and_starts_with_none() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let n = Node::new_arc(false);
        assert!(n.enter(None));
        n.register(&waker);
        assert!(n.try_make_resident(&waker));
        lock(&n.timing).owner = Some(waker.clone());
        assert_eq!(Arc::strong_count(&counter), 5);
        Node::recycle(n);
        // Every clone the old node held is gone, none of them woken.
        assert_eq!(Arc::strong_count(&counter), 2);
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        let m = Node::new_arc(false);
        assert!(lock(&m.waiters).entries.is_empty());
        assert!(!m.is_resident(&waker));
        assert!(lock(&m.timing).owner.is_none());
        assert!(m.try_make_resident(&waker), "the reused node has no resident waker");
    }

    #[test]
    fn a_shared_node_is_not_recycled() {
        let n = Node::new_arc(false);
        let kept = n.clone();
        Node::recycle(n);
        assert!(spare_is_empty(), "a shared node was kept as the spare");
        let fresh = Node::new_arc(false);
        assert!(!NodeArc::ptr_eq(&fresh, &kept));
        kept.cancel(CancelSource::Explicit, None);
        assert!(!fresh.cancel_called());
        // Nor one a child still holds weakly (its parent's list links it).
        let child = Node::new_arc(false);
        assert!(child.enter(Some(fresh.clone())));
        Node::ensure_linked(&child);
        Node::recycle(fresh);
        assert!(spare_is_empty(), "a weakly-linked node was kept as the spare");
        drop(child);
    }

    #[test]
    fn a_task_node_is_not_recycled() {
        SPARE.with(Cell::take);
        let n = Node::new_task_arc(crate::task::id::TaskMeta::new(None, "t".into()));
        Node::recycle(n);
        assert!(spare_is_empty(), "a task's node was kept as the spare");
    }

    #[test]
    fn a_recycled_node_frees_a_long_waiter_list() {
        let n = Node::new_arc(false);
        let waker = Waker::from(Arc::new(CountingWaker(AtomicUsize::new(0))));
        let keys: Vec<_> = (0..100).map(|_| n.register(&waker)).collect();
        for k in keys {
            n.unregister(k);
        }
        Node::recycle(n);
        let m = Node::new_arc(false);
        assert!(lock(&m.waiters).entries.capacity() <= SPARE_WAITERS);
    }

    fn spare_is_empty() -> bool {
        SPARE.with(|s| {
            let spare = s.take();
            let empty = spare.is_none();
            s.set(spare);
            empty
        })
    }
}
