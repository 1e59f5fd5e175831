//! The allocation a scope node lives in: its reference counts and, for a task's node, the
//! task's body beside the node.
//!
//! A task needs a node that outlives its body (handles, nested scopes and the group's links
//! reach it) and a body the runtime owns and polls. With `Arc<Node>` plus a boxed body these
//! were two allocations on top of the runtime's own task; here the body lives in the node's
//! allocation, and the runtime is handed a [`RawTask`]: one pointer, no box (docs/design.md
//! §2, benches/core_tasks.rs `spawn+join`). [`NodeArc`] and [`NodeWeak`] are `Arc<Node>` and
//! `Weak<Node>` with the same counting rules as std's; only the layout behind them differs.

use std::alloc::{self, Layout};
use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::{offset_of, ManuallyDrop};
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::atomic::{self, AtomicU32, Ordering};
use std::task::{Context, Poll};

use super::node::Node;

/// Past this many references a count is taken to be leaking (as std's `Arc` does with
/// `isize::MAX`, the same limit on 32-bit targets): abort rather than overflow into a
/// use-after-free. References given up with `into_raw` or `mem::forget` take no memory, so
/// this check, not the address space, is what keeps the count from wrapping.
const MAX_REFCOUNT: u32 = i32::MAX as u32;

/// What every allocation starts with: 16 bytes, as std's `ArcInner` header (a node's size
/// counts, see `node::Key`), so the counts are four bytes each.
struct Header {
    strong: AtomicU32,
    /// Weak references, plus one held by all strong ones together (std's scheme): the
    /// allocation is freed when this reaches zero.
    weak: AtomicU32,
    vtable: &'static VTable,
}

/// What depends on the body's type.
struct VTable {
    layout: Layout,
    /// Drops the body in place, if there is one.
    drop_body: unsafe fn(NonNull<Node>),
    /// Polls the body; `Ready` once it has finished (it is then dropped).
    poll_body: unsafe fn(NonNull<Node>, &mut Context<'_>) -> Poll<()>,
}

/// `#[repr(C)]`, so the node's offset is the same whatever the body: a `NodeArc` finds its
/// header without knowing the body's type.
#[repr(C)]
struct Cell<B> {
    header: Header,
    node: Node,
    body: UnsafeCell<Option<B>>,
}

/// The body of a scope's node: none. Uninhabited, so its slot (`Option<NoBody>`) takes no
/// space and a scope's cell is as large as `Arc<Node>`'s was.
enum NoBody {}

impl Future for NoBody {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        match *self {}
    }
}

const NODE_OFFSET: usize = offset_of!(Cell<NoBody>, node);

impl<B: Future<Output = ()> + Send + 'static> Cell<B> {
    const VTABLE: VTable =
        VTable { layout: Layout::new::<Cell<B>>(), drop_body: drop_body::<B>, poll_body: poll_body::<B> };

    /// Allocates a cell with `node` written straight into it (no copy of the node through the
    /// stack) and no body, one strong reference.
    #[inline]
    fn allocate(node: impl FnOnce() -> Node) -> NonNull<Node> {
        debug_assert_eq!(offset_of!(Cell<B>, node), NODE_OFFSET);
        let layout = Layout::new::<Cell<B>>();
        // SAFETY: `Cell` holds a `Header`, so its layout is not zero-sized.
        let raw = unsafe { alloc::alloc(layout) }.cast::<Cell<B>>();
        let Some(cell) = NonNull::new(raw) else { alloc::handle_alloc_error(layout) };
        /// Frees the allocation if building the node unwinds (nothing was written yet that
        /// needs dropping).
        struct Unwinding(*mut u8, Layout);
        impl Drop for Unwinding {
            fn drop(&mut self) {
                // SAFETY: the allocation made just above with this layout, not handed out.
                unsafe { alloc::dealloc(self.0, self.1) }
            }
        }
        let cell = cell.as_ptr();
        let unwinding = Unwinding(cell.cast(), layout);
        // SAFETY: `cell` is a fresh allocation of `Cell<B>`'s layout; each field is written once
        // through a raw pointer to it, before anything reads it.
        unsafe {
            ptr::addr_of_mut!((*cell).node).write(node());
            std::mem::forget(unwinding);
            ptr::addr_of_mut!((*cell).header).write(Header {
                strong: AtomicU32::new(1),
                weak: AtomicU32::new(1),
                vtable: &Self::VTABLE,
            });
            ptr::addr_of_mut!((*cell).body).write(UnsafeCell::new(None));
            NonNull::new_unchecked(ptr::addr_of_mut!((*cell).node))
        }
    }

    /// The body slot of the cell whose node `node` points to.
    ///
    /// # Safety
    ///
    /// `node` points into a live `Cell<B>` (this `B`), and the caller has the body to itself
    /// (it owns the cell's [`RawTask`] or [`TaskCell`]).
    #[allow(clippy::mut_from_ref)]
    unsafe fn body<'a>(node: NonNull<Node>) -> &'a mut Option<B> {
        // SAFETY: by the caller's promise `node` is the node of a live `Cell<B>`, so stepping
        // back to the header gives the cell; the body is reached through its `UnsafeCell`
        // without forming a reference to the node (which others share).
        unsafe {
            let cell = header_of(node).cast::<Cell<B>>();
            &mut *UnsafeCell::raw_get(ptr::addr_of!((*cell.as_ptr()).body))
        }
    }
}

/// Drops the body, if there is one, where it lies: it is pinned, so it must not be moved out
/// first (`Option::take` would run its destructor on a copy, and a future registered in an
/// intrusive waiter list would unlink the wrong address). The slot reads empty afterwards even
/// if the destructor unwinds, so nothing drops the body twice.
///
/// # Safety
///
/// As [`Cell::body`].
unsafe fn drop_body<B: Future<Output = ()> + Send + 'static>(node: NonNull<Node>) {
    // SAFETY: the caller's promise (the vtable of a `Cell<B>` calls this for its own cell).
    let slot: *mut Option<B> = unsafe { Cell::<B>::body(node) };
    // SAFETY: `slot` is valid and ours (above).
    unsafe { drop_in_slot(slot) }
}

/// Drops the `Some` value of `slot` in place and leaves `None` there, also when the value's
/// destructor unwinds.
///
/// # Safety
///
/// `slot` is valid for reads and writes and nothing else accesses it meanwhile.
unsafe fn drop_in_slot<B>(slot: *mut Option<B>) {
    /// Writes `None` over the slot without dropping what is there (already dropped, or being
    /// dropped while unwinding).
    struct Clear<B>(*mut Option<B>);
    impl<B> Drop for Clear<B> {
        fn drop(&mut self) {
            // SAFETY: the slot is valid (the caller's promise); its value was dropped in place,
            // so it is overwritten, not dropped again.
            unsafe { ptr::write(self.0, None) }
        }
    }
    // SAFETY: the caller's promise.
    if let Some(body) = unsafe { (*slot).as_mut() } {
        let body: *mut B = body;
        let _clear = Clear(slot);
        // SAFETY: the value is live and dropped exactly once, here; `_clear` then empties the
        // slot whether this returns or unwinds.
        unsafe { ptr::drop_in_place(body) }
    }
}

/// # Safety
///
/// As [`Cell::body`].
unsafe fn poll_body<B: Future<Output = ()> + Send + 'static>(
    node: NonNull<Node>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    // SAFETY: the caller's promise, as in `drop_body`.
    let slot = unsafe { Cell::<B>::body(node) };
    let Some(body) = slot.as_mut() else { return Poll::Ready(()) };
    // SAFETY: the body is never moved out of its slot: it is dropped in place (below, or by
    // `drop_body`) and the cell is not freed while the slot's owner holds a reference.
    if unsafe { Pin::new_unchecked(body) }.poll(cx).is_pending() {
        return Poll::Pending;
    }
    // Finished: release what the body holds now, as a runtime drops a finished future (in
    // place: it is pinned).
    // SAFETY: the slot is ours (the caller's promise) and no borrow of it is alive.
    unsafe { drop_in_slot(slot) };
    Poll::Ready(())
}

/// The header of the cell whose node `node` points to.
#[inline]
fn header_of(node: NonNull<Node>) -> NonNull<Header> {
    // SAFETY: every `NonNull<Node>` this module hands around points `NODE_OFFSET` bytes into a
    // cell, whose header is at its start: the subtraction stays inside that allocation.
    unsafe { NonNull::new_unchecked(node.as_ptr().cast::<u8>().sub(NODE_OFFSET).cast::<Header>()) }
}

/// The header, borrowed. Sound for as long as a strong or weak reference is held.
#[inline]
fn header<'a>(node: NonNull<Node>) -> &'a Header {
    // SAFETY: callers hold a reference that keeps the allocation (and so the header) alive
    // for the borrow; the header's fields are atomics or never written after allocation.
    unsafe { header_of(node).as_ref() }
}

/// Releases the weak reference all strong ones hold together, or a `NodeWeak`'s: frees the
/// allocation if it was the last.
///
/// # Safety
///
/// The caller gives up one weak reference to the cell of `node`; the node and body were
/// dropped already if this may be the last.
unsafe fn release_weak(node: NonNull<Node>) {
    let h = header(node);
    if h.weak.fetch_sub(1, Ordering::Release) != 1 {
        return;
    }
    atomic::fence(Ordering::Acquire);
    let layout = h.vtable.layout;
    // SAFETY: that was the last reference of any kind: nothing can reach the allocation, which
    // `Cell::allocate` made with this layout.
    unsafe { alloc::dealloc(header_of(node).as_ptr().cast(), layout) }
}

/// Drops the body and the node of a cell whose last strong reference just went, then the
/// strong references' shared weak one.
///
/// # Safety
///
/// The strong count of the cell of `node` has just dropped to zero, by the caller.
unsafe fn drop_slow(node: NonNull<Node>) {
    atomic::fence(Ordering::Acquire);
    /// Drops the node and releases the weak reference after the body, also if dropping the
    /// body unwinds.
    struct Rest(NonNull<Node>);
    impl Drop for Rest {
        fn drop(&mut self) {
            // SAFETY: as below: the node is dropped once, here, then the weak released.
            unsafe {
                ptr::drop_in_place(self.0.as_ptr());
                release_weak(self.0);
            }
        }
    }
    let vtable = header(node).vtable;
    let _rest = Rest(node);
    // SAFETY: no strong reference is left, so nothing else reaches the body or the node (a
    // `NodeWeak` cannot upgrade any more); the body is dropped once, here, then `_rest` drops
    // the node and releases the weak reference.
    unsafe { (vtable.drop_body)(node) }
}

/// A shared reference to a scope node: what `Arc<Node>` was, with the node's allocation
/// laid out by this module (see the module docs).
pub(crate) struct NodeArc {
    ptr: NonNull<Node>,
    _owns: PhantomData<Node>,
}

// SAFETY: a `NodeArc` shares only the `Node` (the body is reached through `RawTask` alone), and
// `Node` is `Send + Sync`, as `Arc<Node>` would require.
unsafe impl Send for NodeArc {}
// SAFETY: as for `Send`.
unsafe impl Sync for NodeArc {}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Node>();
};

impl NodeArc {
    /// A new scope node (no body) in its own allocation, built in place by `node`.
    #[inline]
    pub(crate) fn new_with(node: impl FnOnce() -> Node) -> NodeArc {
        NodeArc { ptr: Cell::<NoBody>::allocate(node), _owns: PhantomData }
    }

    #[cfg(any(test, loom))]
    pub(crate) fn new(node: Node) -> NodeArc {
        Self::new_with(|| node)
    }

    #[inline]
    pub(crate) fn ptr_eq(a: &NodeArc, b: &NodeArc) -> bool {
        a.ptr == b.ptr
    }

    #[inline]
    pub(crate) fn as_ptr(this: &NodeArc) -> *const Node {
        this.ptr.as_ptr()
    }

    /// Gives up the reference without releasing it, as a pointer [`from_raw`](Self::from_raw)
    /// takes back.
    #[inline]
    pub(crate) fn into_raw(this: NodeArc) -> *const Node {
        ManuallyDrop::new(this).ptr.as_ptr()
    }

    /// Takes back a reference given up by [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    ///
    /// `p` came from `into_raw` and its reference is released only by the result.
    #[inline]
    pub(crate) unsafe fn from_raw(p: *const Node) -> NodeArc {
        // SAFETY: `into_raw` returned a non-null pointer.
        NodeArc { ptr: unsafe { NonNull::new_unchecked(p.cast_mut()) }, _owns: PhantomData }
    }

    /// Adds a strong reference to the node `p` points to.
    ///
    /// # Safety
    ///
    /// `p` came from `into_raw` or `as_ptr`, and a strong reference to it is alive throughout.
    #[inline]
    pub(crate) unsafe fn increment_strong_count(p: *const Node) {
        // SAFETY: the caller's promise: the pointer is a live node's.
        let this = ManuallyDrop::new(unsafe { NodeArc::from_raw(p) });
        std::mem::forget(NodeArc::clone(&this));
    }

    /// A weak reference to the node.
    pub(crate) fn downgrade(this: &NodeArc) -> NodeWeak {
        let h = header(this.ptr);
        if h.weak.fetch_add(1, Ordering::Relaxed) > MAX_REFCOUNT {
            std::process::abort();
        }
        NodeWeak { ptr: this.ptr }
    }

    /// Releases this reference; if it was the last strong one, returns the node to look at
    /// once more before it drops (std's `Arc::into_inner`, without moving the node out).
    #[inline]
    pub(crate) fn into_last(this: NodeArc) -> Option<LastRef> {
        let this = ManuallyDrop::new(this);
        if header(this.ptr).strong.fetch_sub(1, Ordering::Release) != 1 {
            return None;
        }
        atomic::fence(Ordering::Acquire);
        Some(LastRef { ptr: this.ptr })
    }

    /// Releases this reference, as dropping it does; but if it was the last reference of any
    /// kind, keeps the node and returns it, unique, instead of dropping it (for reuse, see
    /// `Node::recycle`). Two Acquire loads when it is the last (a scope's node usually is), one
    /// atomic read-modify-write otherwise: the locked instruction cost 1.5–5 ns of a scope's
    /// 33 (benches/core_tasks.rs). (`get_mut`'s check cost a compare-and-swap.)
    #[inline]
    pub(crate) fn release_or_reclaim(this: NodeArc) -> Option<UniqueNode> {
        let this = ManuallyDrop::new(this);
        let h = header(this.ptr);
        // Two separate loads prove uniqueness here, where they would not for std's `Arc`,
        // because of how this tree uses weak references. Owning `this`, nothing else can make
        // a reference from it once it is the only strong one. The one kind of `NodeWeak` is a
        // node's link in its parent's waiter list (`Entry::Child`): made from a strong
        // reference, upgraded by a cancel walking the parent's list (which then holds a strong
        // one, seen by the first load or keeping the count above one), and dropped only by the
        // node's own teardown (`unlink_from`, after this decision) or after its replacement is
        // in (`reparent`); a parent, which holds the list, cannot go while its child holds it.
        // So no other thread can drop the last weak reference between the loads, and weak == 1
        // means none exists. A new kind of weak reference must keep that true, or this must
        // take std's route (lock the weak count). Acquire: whoever released the other
        // references is done with the node before it is reused.
        if h.strong.load(Ordering::Acquire) == 1 && h.weak.load(Ordering::Acquire) == 1 {
            return Some(UniqueNode(NodeArc { ptr: this.ptr, _owns: PhantomData }));
        }
        if h.strong.fetch_sub(1, Ordering::Release) != 1 {
            return None;
        }
        atomic::fence(Ordering::Acquire);
        // No strong reference is left, so no `NodeWeak` can be made (that takes a strong one)
        // and none can upgrade. If none exists either, nothing but this reaches the node.
        if h.weak.load(Ordering::Acquire) == 1 {
            h.strong.store(1, Ordering::Relaxed);
            return Some(UniqueNode(NodeArc { ptr: this.ptr, _owns: PhantomData }));
        }
        // SAFETY: that was the last strong reference.
        unsafe { drop_slow(this.ptr) };
        None
    }

    /// The node, writable, without checking that this is the only reference to it.
    ///
    /// # Safety
    ///
    /// No other strong or weak reference to the node exists, and none is made while the
    /// result is alive.
    #[inline]
    pub(crate) unsafe fn get_mut_unchecked(this: &mut NodeArc) -> &mut Node {
        debug_assert!(header(this.ptr).strong.load(Ordering::Relaxed) == 1);
        debug_assert!(header(this.ptr).weak.load(Ordering::Relaxed) == 1);
        // SAFETY: the caller's promise, and `&mut this` excludes new references made from it.
        unsafe { &mut *this.ptr.as_ptr() }
    }

    #[cfg(test)]
    pub(crate) fn strong_count(this: &NodeArc) -> usize {
        header(this.ptr).strong.load(Ordering::Acquire) as usize
    }
}

impl Clone for NodeArc {
    #[inline]
    fn clone(&self) -> NodeArc {
        if header(self.ptr).strong.fetch_add(1, Ordering::Relaxed) > MAX_REFCOUNT {
            std::process::abort();
        }
        NodeArc { ptr: self.ptr, _owns: PhantomData }
    }
}

impl Drop for NodeArc {
    #[inline]
    fn drop(&mut self) {
        if header(self.ptr).strong.fetch_sub(1, Ordering::Release) == 1 {
            // SAFETY: this was the last strong reference.
            unsafe { drop_slow(self.ptr) }
        }
    }
}

impl Deref for NodeArc {
    type Target = Node;
    #[inline]
    fn deref(&self) -> &Node {
        // SAFETY: a strong reference keeps the node alive and initialised.
        unsafe { self.ptr.as_ref() }
    }
}

impl fmt::Debug for NodeArc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The only reference of any kind to a node (no other `NodeArc`, no `NodeWeak`), so the node
/// can be changed with plain writes: a new scope's node before anything shares it, and the
/// thread's spare node (`Node::recycle`).
pub(crate) struct UniqueNode(NodeArc);

impl UniqueNode {
    /// A new scope node (no body) in its own allocation, built in place by `node`.
    #[inline]
    pub(crate) fn new_with(node: impl FnOnce() -> Node) -> UniqueNode {
        UniqueNode(NodeArc::new_with(node))
    }

    /// The node as a reference that can be shared.
    #[inline]
    pub(crate) fn share(self) -> NodeArc {
        self.0
    }
}

impl Deref for UniqueNode {
    type Target = Node;
    #[inline]
    fn deref(&self) -> &Node {
        &self.0
    }
}

impl DerefMut for UniqueNode {
    #[inline]
    fn deref_mut(&mut self) -> &mut Node {
        // SAFETY: the type's invariant: no other reference of any kind exists, and none can be
        // made from this one without `share`, which gives it up.
        unsafe { &mut *self.0.ptr.as_ptr() }
    }
}

/// A weak reference to a scope node (`Weak<Node>`).
pub(crate) struct NodeWeak {
    ptr: NonNull<Node>,
}

// SAFETY: as for `NodeArc`: it reaches only the node, and only through `upgrade`.
unsafe impl Send for NodeWeak {}
// SAFETY: as for `Send`.
unsafe impl Sync for NodeWeak {}

impl NodeWeak {
    /// A strong reference, if the node is still alive.
    pub(crate) fn upgrade(&self) -> Option<NodeArc> {
        let h = header(self.ptr);
        let mut cur = h.strong.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return None;
            }
            if cur > MAX_REFCOUNT {
                std::process::abort();
            }
            match h.strong.compare_exchange_weak(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(NodeArc { ptr: self.ptr, _owns: PhantomData }),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for NodeWeak {
    fn drop(&mut self) {
        // SAFETY: this weak reference is given up here, once.
        unsafe { release_weak(self.ptr) }
    }
}

/// The last strong reference to a node, taken by [`NodeArc::into_last`]: the node can be
/// changed through it, and it drops the node (and the allocation, unless weak references
/// remain) when it goes.
pub(crate) struct LastRef {
    ptr: NonNull<Node>,
}

impl Deref for LastRef {
    type Target = Node;
    fn deref(&self) -> &Node {
        // SAFETY: the node is alive until this drops.
        unsafe { self.ptr.as_ref() }
    }
}

impl DerefMut for LastRef {
    fn deref_mut(&mut self) -> &mut Node {
        // SAFETY: no strong reference is left but this one, and a `NodeWeak` cannot upgrade
        // (the strong count is zero): the node is ours alone.
        unsafe { self.ptr.as_mut() }
    }
}

impl Drop for LastRef {
    fn drop(&mut self) {
        // SAFETY: `into_last` saw the strong count reach zero.
        unsafe { drop_slow(self.ptr) }
    }
}

/// A task's node in an allocation with room for the task's body, before the body is there:
/// the node can be shared (entered, linked, handed to a `TaskHandle`) while the body, which
/// holds references to it, is being built.
pub(crate) struct TaskCell<B> {
    ptr: NonNull<Node>,
    _body: PhantomData<B>,
}

impl<B: Future<Output = ()> + Send + 'static> TaskCell<B> {
    /// A task cell whose node is built in place by `node`.
    #[inline]
    pub(crate) fn new(node: impl FnOnce() -> Node) -> TaskCell<B> {
        TaskCell { ptr: Cell::<B>::allocate(node), _body: PhantomData }
    }

    /// A strong reference to the node.
    #[inline]
    pub(crate) fn node(&self) -> NodeArc {
        let this = ManuallyDrop::new(NodeArc { ptr: self.ptr, _owns: PhantomData });
        NodeArc::clone(&this)
    }

    /// The node as the body sees it: no reference count of its own, because the body cannot
    /// outlive the cell's reference that the [`RawTask`] holds (a body is dropped, in
    /// place, before that reference is released). It saves the body an increment on the
    /// spawning thread and a decrement on the worker that finishes it.
    ///
    /// # Safety
    ///
    /// The returned value is not a reference of its own: it must not outlive this cell's
    /// reference, so keep it only in the body passed to [`start`](Self::start) (or drop it
    /// before this `TaskCell`).
    #[inline]
    pub(crate) unsafe fn body_node(&self) -> BodyNode {
        BodyNode { node: ManuallyDrop::new(NodeArc { ptr: self.ptr, _owns: PhantomData }) }
    }

    /// Puts the body in, making the task a runtime can run.
    #[inline]
    pub(crate) fn start(self, body: B) -> RawTask {
        let this = ManuallyDrop::new(self);
        // SAFETY: the cell is a `Cell<B>` (made by `new`), and this `TaskCell` (consumed here,
        // its reference passing to the `RawTask`) is the body's only owner.
        unsafe { *Cell::<B>::body(this.ptr) = Some(body) };
        RawTask { ptr: this.ptr }
    }
}

impl<B> Drop for TaskCell<B> {
    fn drop(&mut self) {
        // Never started: there is no body, only this strong reference to release.
        drop(NodeArc { ptr: self.ptr, _owns: PhantomData });
    }
}

/// A task cell's node, held by the cell's own body (see [`TaskCell::body_node`]): a
/// `NodeArc` in every use but that it never releases a reference.
pub(crate) struct BodyNode {
    node: ManuallyDrop<NodeArc>,
}

impl Deref for BodyNode {
    type Target = NodeArc;

    #[inline]
    fn deref(&self) -> &NodeArc {
        &self.node
    }
}

/// An anyio task as a runtime runs it: a future that drives the task to completion, handed to
/// [`Runtime::spawn_task`](crate::rt::Runtime::spawn_task). It is one pointer and needs no
/// box: the task's body lives in the allocation of its cancel-scope node.
///
/// Dropping it before it completes cancels the task (its scope reports it cancelled to its
/// group), as a runtime does to the tasks it still holds when it shuts down.
///
/// # Examples
///
/// A backend that passes it to its executor's generic spawn, so that the task costs the
/// executor's own allocation and no box:
///
/// ```
/// use std::pin::Pin;
/// use std::time::Instant;
/// use anyio::rt::{BlockingJob, BoxTask, RawTask, Runtime, Timer};
///
/// #[derive(Debug)]
/// struct ThreadPerTask;
///
/// impl Runtime for ThreadPerTask {
///     fn name(&self) -> &'static str { "thread-per-task" }
///     fn spawn(&self, task: BoxTask) {
///         std::thread::spawn(move || anyio::run(task));
///     }
///     fn spawn_task(&self, task: RawTask) {
///         std::thread::spawn(move || anyio::run(task));
///     }
///     fn spawn_blocking(&self, job: BlockingJob) -> std::io::Result<()> {
///         anyio::rt::spawn_blocking_thread(job)
///     }
///     fn now(&self) -> Instant { Instant::now() }
///     fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
///         anyio::rt::thread_timer(deadline)
///     }
/// }
/// ```
pub struct RawTask {
    ptr: NonNull<Node>,
}

// SAFETY: a `RawTask` owns the body, which `TaskCell::new` requires to be `Send`, and a strong
// reference to the node, which is `Send + Sync`. It is not `Sync`: polling needs `&mut`.
unsafe impl Send for RawTask {}

impl Future for RawTask {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ptr = self.ptr;
        // SAFETY: the vtable is the cell's own, and this `RawTask` (borrowed mutably) is the
        // body's only owner.
        unsafe { (header(ptr).vtable.poll_body)(ptr, cx) }
    }
}

impl Drop for RawTask {
    fn drop(&mut self) {
        // Released after the body, also if dropping the body unwinds.
        let _strong = NodeArc { ptr: self.ptr, _owns: PhantomData };
        // SAFETY: as in `poll`. The body goes first (a body dropped unfinished reports the
        // task cancelled through the node), then this task's strong reference.
        unsafe { (header(self.ptr).vtable.drop_body)(self.ptr) };
    }
}

impl fmt::Debug for RawTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawTask").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Waker;

    struct Counted(Arc<AtomicUsize>, usize);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A body that is pending until polled `.1` times, and counts its drops.
    impl Future for Counted {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.1 == 0 {
                return Poll::Ready(());
            }
            self.1 -= 1;
            Poll::Pending
        }
    }

    #[test]
    fn clones_share_one_node_and_the_last_drop_frees_it() {
        let a = NodeArc::new(Node::new(false));
        let b = a.clone();
        assert!(NodeArc::ptr_eq(&a, &b));
        assert_eq!(NodeArc::strong_count(&a), 2);
        drop(a);
        assert_eq!(NodeArc::strong_count(&b), 1);
    }

    #[test]
    fn a_weak_reference_upgrades_only_while_a_strong_one_lives() {
        let a = NodeArc::new(Node::new(false));
        let w = NodeArc::downgrade(&a);
        let up = w.upgrade().expect("alive");
        assert_eq!(NodeArc::strong_count(&a), 2);
        drop((a, up));
        assert!(w.upgrade().is_none());
    }

    #[test]
    fn release_or_reclaim_keeps_only_the_last_reference_of_any_kind() {
        let a = NodeArc::new(Node::new(false));
        let b = a.clone();
        assert!(NodeArc::release_or_reclaim(b).is_none(), "another strong reference is alive");
        let w = NodeArc::downgrade(&a);
        assert!(NodeArc::release_or_reclaim(a).is_none(), "a weak reference could see it");
        assert!(w.upgrade().is_none(), "the node was dropped, not kept");
        drop(w);
        let a = NodeArc::new(Node::new(false));
        let kept = NodeArc::release_or_reclaim(a).expect("the only reference");
        let shared = kept.share();
        assert_eq!(NodeArc::strong_count(&shared), 1);
        let w = NodeArc::downgrade(&shared);
        assert!(w.upgrade().is_some(), "the kept node is alive and counted");
    }

    #[test]
    fn raw_pointers_round_trip_a_reference() {
        let a = NodeArc::new(Node::new(false));
        let p = NodeArc::into_raw(a.clone());
        assert_eq!(p, NodeArc::as_ptr(&a));
        // SAFETY: `p` came from `into_raw` and `a` keeps the node alive.
        unsafe { NodeArc::increment_strong_count(p) };
        assert_eq!(NodeArc::strong_count(&a), 3);
        // SAFETY: two references were given up as `p`; each is taken back once.
        let (b, c) = unsafe { (NodeArc::from_raw(p), NodeArc::from_raw(p)) };
        drop((b, c));
        assert_eq!(NodeArc::strong_count(&a), 1);
    }

    #[test]
    fn into_last_yields_only_the_last_reference() {
        let a = NodeArc::new(Node::new(false));
        let b = a.clone();
        assert!(NodeArc::into_last(a).is_none());
        let last = NodeArc::into_last(b).expect("the last one");
        assert!(!last.cancel_called());
    }

    #[test]
    fn a_raw_task_drops_its_body_when_it_finishes_and_keeps_the_node() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = TaskCell::<Counted>::new(|| Node::new(false));
        let node = cell.node();
        let mut task = cell.start(Counted(drops.clone(), 1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut task).poll(&mut cx).is_pending());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        assert!(Pin::new(&mut task).poll(&mut cx).is_ready());
        assert_eq!(drops.load(Ordering::SeqCst), 1, "a finished body is dropped at once");
        assert!(Pin::new(&mut task).poll(&mut cx).is_ready(), "and stays finished");
        assert_eq!(NodeArc::strong_count(&node), 2);
        drop(task);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(NodeArc::strong_count(&node), 1, "the node outlives the task");
    }

    #[test]
    fn dropping_an_unfinished_raw_task_drops_its_body() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = TaskCell::<Counted>::new(|| Node::new(false));
        let node = cell.node();
        let task = cell.start(Counted(drops.clone(), 5));
        let weak = NodeArc::downgrade(&node);
        drop(task);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        drop(node);
        assert!(weak.upgrade().is_none());
    }

    /// A `!Unpin` body that records its address when first polled and checks it when dropped,
    /// as a future in an intrusive waiter list relies on.
    struct Pinned {
        at: Option<usize>,
        pending: bool,
        checked: Arc<AtomicUsize>,
        _pin: std::marker::PhantomPinned,
    }

    impl Future for Pinned {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            let addr = &*self as *const Self as usize;
            // SAFETY: no field is moved out.
            let this = unsafe { self.get_unchecked_mut() };
            this.at.get_or_insert(addr);
            if this.pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }
    }

    impl Drop for Pinned {
        fn drop(&mut self) {
            if let Some(at) = self.at {
                assert_eq!(at, self as *const Self as usize, "a polled body moved before its drop");
                self.checked.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[test]
    fn a_polled_body_is_dropped_where_it_was_polled() {
        let mut cx = Context::from_waker(Waker::noop());
        for pending in [true, false] {
            let checked = Arc::new(AtomicUsize::new(0));
            let body =
                Pinned { at: None, pending, checked: checked.clone(), _pin: std::marker::PhantomPinned };
            let mut task = TaskCell::<Pinned>::new(|| Node::new(false)).start(body);
            let _ = Pin::new(&mut task).poll(&mut cx);
            // Unfinished: dropped with the task; finished: dropped by the poll that finished it.
            drop(task);
            assert_eq!(checked.load(Ordering::SeqCst), 1, "pending: {pending}");
        }
    }

    /// A body whose destructor panics.
    struct PanicsOnDrop(Arc<AtomicUsize>);

    impl Future for PanicsOnDrop {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("body drop");
        }
    }

    #[test]
    fn a_body_whose_drop_panics_is_dropped_once_and_the_node_still_released() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = TaskCell::<PanicsOnDrop>::new(|| Node::new(false));
        let node = cell.node();
        let task = cell.start(PanicsOnDrop(drops.clone()));
        let weak = NodeArc::downgrade(&node);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(task)));
        assert!(unwound.is_err());
        assert_eq!(NodeArc::strong_count(&node), 1, "the task's reference was released");
        drop(node);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped once, not again with the node");
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn a_node_constructor_that_unwinds_frees_the_allocation() {
        // Under Miri, a leak here fails the run.
        let r = std::panic::catch_unwind(|| NodeArc::new_with(|| panic!("no node")));
        assert!(r.is_err());
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_scope_cell_is_as_large_as_an_arc_of_the_node() {
        assert_eq!(std::mem::size_of::<Cell<NoBody>>(), std::mem::size_of::<Node>() + 16);
    }

    #[test]
    fn an_unstarted_task_cell_releases_its_node() {
        let cell = TaskCell::<Counted>::new(|| Node::new(false));
        let node = cell.node();
        drop(cell);
        assert_eq!(NodeArc::strong_count(&node), 1);
    }

    #[test]
    fn a_raw_task_moves_between_threads() {
        let drops = Arc::new(AtomicUsize::new(0));
        let task = TaskCell::<Counted>::new(|| Node::new(false)).start(Counted(drops.clone(), 0));
        std::thread::spawn(move || {
            let mut task = task;
            let mut cx = Context::from_waker(Waker::noop());
            assert!(Pin::new(&mut task).poll(&mut cx).is_ready());
        })
        .join()
        .unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
