//! `CancelScope`: the user-facing handle of a node of the scope tree, and the future that runs a
//! body inside it.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use super::cell::NodeArc;
use super::current::{current_arc, enter};
use super::node::{Node, Timing};
use crate::error::{AsCancelled, CancelSource};
use crate::loom::{get_mut, lock, Ordering};
use crate::rt::{self, Timer};

/// A cancel scope: a region of code that can be cancelled as a whole, by a call to
/// [`cancel`](Self::cancel) from anywhere or by its deadline (trio's and AnyIO's `CancelScope`).
///
/// Scopes nest: a scope run inside another one (or inside a task group) is cancelled when its
/// parent is, unless it is *shielded*. While a scope is cancelled, every checkpoint inside it
/// (`sleep`, `checkpoint`, channel and lock operations, socket I/O...) returns
/// [`Cancelled`](crate::error::Cancelled) — every time, until the body returns: cancellation is
/// level-triggered. The body propagates the error with `?`, and [`run`](Self::run) catches it
/// when it belongs to this scope.
///
/// The handle is cheap to clone and can be moved to other tasks and threads to cancel the scope
/// or change its deadline and shield while it runs. A scope can be run only once.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{CancelScope, Cancelled, time::sleep_forever};
///
/// let scope = CancelScope::new();
/// let remote = scope.clone();
/// let outcome = scope
///     .run(async move {
///         remote.cancel(); // e.g. from another task
///         sleep_forever().await?;
///         Ok::<(), Cancelled>(())
///     })
///     .await;
/// assert_eq!(outcome, Ok(None));
/// assert!(scope.cancelled_caught());
/// # });
/// ```
pub struct CancelScope {
    // Taken out in `drop`, to be recycled (see `Node::recycle`).
    pub(crate) node: ManuallyDrop<NodeArc>,
}

impl CancelScope {
    pub(crate) fn from_node(node: NodeArc) -> Self {
        Self { node: ManuallyDrop::new(node) }
    }
}

impl Clone for CancelScope {
    fn clone(&self) -> Self {
        Self::from_node(NodeArc::clone(&self.node))
    }
}

impl Drop for CancelScope {
    fn drop(&mut self) {
        // SAFETY: this destructor runs once, and the field is never used after it nor dropped
        // otherwise (it is `ManuallyDrop`): this is its one drop.
        Node::recycle(unsafe { ManuallyDrop::take(&mut self.node) });
    }
}

impl fmt::Debug for CancelScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelScope")
            .field("cancel_called", &self.cancel_called())
            .field("shield", &self.shield())
            .field("deadline", &self.deadline())
            .field("cancelled_caught", &self.cancelled_caught())
            .finish()
    }
}

impl Default for CancelScope {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelScope {
    /// A scope with no deadline, not shielded.
    ///
    /// ```
    /// let scope = anyio::CancelScope::new();
    /// assert_eq!(scope.deadline(), None);
    /// assert!(!scope.shield());
    /// ```
    pub fn new() -> Self {
        Self::from_node(Node::new_arc(false))
    }

    /// A scope that is cancelled when the runtime's clock reaches `deadline`. A deadline that
    /// has already passed when the scope is entered cancels it at once: its first checkpoint
    /// fails.
    ///
    /// ```
    /// let at = std::time::Instant::now();
    /// assert_eq!(anyio::CancelScope::with_deadline(at).deadline(), Some(at));
    /// ```
    pub fn with_deadline(deadline: Instant) -> Self {
        Self::from_node(Node::new_arc_timed(|t| t.set_deadline(Some(deadline))))
    }

    /// A scope cancelled `timeout` after it is entered (its first poll), as trio computes
    /// relative deadlines. A timeout too large to represent means no deadline.
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::time::Duration;
    /// let scope = anyio::CancelScope::with_timeout(Duration::from_secs(60));
    /// assert_eq!(scope.deadline(), None); // not resolved until entered
    /// let s = scope.clone();
    /// scope.run(async move { assert!(s.deadline().is_some()); Ok::<_, anyio::Cancelled>(()) }).await.unwrap();
    /// # });
    /// ```
    pub fn with_timeout(timeout: Duration) -> Self {
        Self::from_node(Node::new_arc_timed(|t| t.set_timeout(timeout)))
    }

    /// A shielded scope: cancellation of enclosing scopes does not reach its body (its own
    /// `cancel` and deadline still do). Use it for async cleanup after a cancellation.
    ///
    /// ```
    /// assert!(anyio::CancelScope::shielded().shield());
    /// ```
    pub fn shielded() -> Self {
        Self::from_node(Node::new_arc(true))
    }

    /// Cancels the scope. Every checkpoint inside it fails from now on, and tasks blocked in
    /// one on any thread are woken at once. Cancelling a scope that has not been entered yet
    /// takes effect when it is entered. Idempotent.
    ///
    /// ```
    /// let scope = anyio::CancelScope::new();
    /// scope.cancel();
    /// assert!(scope.cancel_called());
    /// ```
    pub fn cancel(&self) {
        self.node.cancel(CancelSource::Explicit, None);
    }

    /// Cancels the scope, recording `reason` in the [`Cancelled`](crate::error::Cancelled) error
    /// (only the first cancellation's reason is kept).
    ///
    /// ```
    /// let scope = anyio::CancelScope::new();
    /// scope.cancel_with_reason("client went away");
    /// assert!(scope.cancel_called());
    /// ```
    pub fn cancel_with_reason(&self, reason: impl Into<String>) {
        self.node.cancel(CancelSource::Explicit, Some(reason.into()));
    }

    /// Whether the scope was cancelled, explicitly or by its deadline.
    ///
    /// ```
    /// assert!(!anyio::CancelScope::new().cancel_called());
    /// ```
    pub fn cancel_called(&self) -> bool {
        self.node.cancel_called()
    }

    /// Whether the scope caught its own cancellation when its body returned: the body ended
    /// with a cancellation error that belonged to this scope.
    ///
    /// ```
    /// assert!(!anyio::CancelScope::new().cancelled_caught());
    /// ```
    pub fn cancelled_caught(&self) -> bool {
        self.node.cancelled_caught()
    }

    /// The scope's deadline, if it has one.
    ///
    /// ```
    /// assert_eq!(anyio::CancelScope::new().deadline(), None);
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        lock(&self.node.timing).deadline()
    }

    /// Sets or clears the deadline, also while the scope runs: an earlier deadline re-arms the
    /// timer, a deadline already past cancels the scope.
    ///
    /// ```
    /// let scope = anyio::CancelScope::new();
    /// let at = std::time::Instant::now();
    /// scope.set_deadline(Some(at));
    /// assert_eq!(scope.deadline(), Some(at));
    /// scope.set_deadline(None);
    /// assert_eq!(scope.deadline(), None);
    /// ```
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        let owner = {
            let mut t = lock(&self.node.timing);
            t.set_deadline(deadline);
            self.node.timing_generation.fetch_add(1, Ordering::AcqRel);
            t.owner.clone()
        };
        if let Some(w) = owner {
            w.wake();
        }
    }

    /// Whether the scope is shielded.
    ///
    /// ```
    /// assert!(!anyio::CancelScope::new().shield());
    /// ```
    pub fn shield(&self) -> bool {
        self.node.shield()
    }

    /// Turns the shield on or off, also while the scope runs. Turning it off exposes a pending
    /// cancellation of an enclosing scope at once (blocked tasks inside are woken).
    ///
    /// ```
    /// let scope = anyio::CancelScope::new();
    /// scope.set_shield(true);
    /// assert!(scope.shield());
    /// ```
    #[doc(alias = "shield")]
    pub fn set_shield(&self, shield: bool) {
        self.node.set_shield(shield);
    }

    /// Runs `body` inside this scope.
    ///
    /// The scope is entered on the first poll: it becomes a child of the scope that poll runs
    /// in, and a relative timeout starts counting. The output is
    /// - `Ok(Some(value))` when the body returned `Ok(value)` — even if the scope was cancelled
    ///   meanwhile: a value the body produced is never discarded;
    /// - `Ok(None)` when the body returned a cancellation error that belongs to this scope (the
    ///   scope "caught" it; [`cancelled_caught`](Self::cancelled_caught) becomes true);
    /// - `Err(e)` for any other error, including the cancellation of an enclosing scope, which
    ///   keeps propagating to the scope that owns it.
    ///
    /// # Panics
    ///
    /// Panics if the scope was already run: each `CancelScope` is good for a single run.
    ///
    /// # Cancel safety
    ///
    /// The returned future is cancelled (by its scope) cooperatively: the body keeps being
    /// polled and unwinds through its own checkpoints. If the future is *dropped* before it
    /// finishes (it lost a `select!`, say), the body is dropped inside the scope, the scope is
    /// cancelled with [`CancelSource::ScopeDropped`] and stays cancelled, so anything that
    /// outlives it (a task spawned into a group inside) sees cancellation.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{CancelScope, Cancelled, lowlevel::checkpoint};
    /// let r = CancelScope::new().run(async { checkpoint().await?; Ok::<_, Cancelled>(7) }).await;
    /// assert_eq!(r, Ok(Some(7)));
    /// # });
    /// ```
    pub fn run<F, T, E>(&self, body: F) -> Scoped<F>
    where
        F: Future<Output = Result<T, E>>,
        E: AsCancelled,
    {
        Scoped { inner: InScope::new(NodeArc::clone(&self.node), body) }
    }

    /// Runs `body` inside this scope and returns its output as it is: no catching, for bodies
    /// whose output is not a `Result` (an application's main future).
    pub(crate) fn run_uncaught<F: Future>(&self, body: F) -> InScope<F> {
        InScope::new(NodeArc::clone(&self.node), body)
    }

    /// Whether code running in this scope right now would see a cancellation (it or an
    /// enclosing scope up to a shield is cancelled).
    ///
    /// ```
    /// assert!(!anyio::CancelScope::new().is_effectively_cancelled());
    /// ```
    pub fn is_effectively_cancelled(&self) -> bool {
        self.node.is_effectively_cancelled()
    }
}

pin_project! {
    /// The future returned by [`CancelScope::run`], [`move_on_after`](crate::cancel::move_on_after) and
    /// [`move_on_at`](crate::cancel::move_on_at).
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<F> {
        #[pin]
        inner: InScope<F>,
    }
}

impl<F> Scoped<F> {
    /// A scope future that owns its node outright (`move_on_after` and the other deadline
    /// helpers, which hand out no `CancelScope`), its deadline set by `set`: the node is unique
    /// until the first poll, which enters it and resolves its deadline through `&mut`, without
    /// locking.
    ///
    /// Inlined: called, its 80-byte result was returned through memory and read back at once
    /// (perf put a quarter of `move_on_after`'s own time on that copy).
    #[inline]
    pub(crate) fn private<T, E>(set: impl FnOnce(&mut Timing), body: F) -> Scoped<F>
    where
        F: Future<Output = Result<T, E>>,
        E: AsCancelled,
    {
        let mut inner = InScope::new(Node::new_unique_timed(set).share(), body);
        inner.phase = Phase::Private;
        Scoped { inner }
    }
}

impl<F> fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped").field("node", &self.inner.node).finish_non_exhaustive()
    }
}

impl<F, T, E> Future for Scoped<F>
where
    F: Future<Output = Result<T, E>>,
    E: AsCancelled,
{
    type Output = Result<Option<T>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        match this.inner.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(v)) => Poll::Ready(Ok(Some(v))),
            Poll::Ready(Err(e)) => Poll::Ready(if catches(&this.inner.node, &e) { Ok(None) } else { Err(e) }),
        }
    }
}

/// trio's catch rule: a scope catches a cancellation error iff the scope itself was cancelled
/// and no cancellation of an enclosing scope is visible inside it.
pub(crate) fn catches<E: AsCancelled>(node: &Node, e: &E) -> bool {
    if e.as_cancelled().is_some() && node.cancel_called() && !node.parent_cancellation_visible() {
        node.set_caught();
        true
    } else {
        false
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Unentered,
    /// Unentered, and the future holds the only reference to its node (see
    /// [`CancelScope::run_private`]).
    Private,
    Running,
    Done,
}

pin_project! {
    /// Polls a body with its node current, owning the node's deadline timer.
    ///
    /// The body is polled before the timer, and the timer is only created once the body is
    /// pending: a scope around a future that is ready at once never touches the timer wheel
    /// (as `tokio::time::timeout` does).
    pub(crate) struct InScope<F> {
        // Taken out in `drop`, to be recycled (see `Node::recycle`).
        node: ManuallyDrop<NodeArc>,
        #[pin]
        body: Option<F>,
        // Boxed: most scopes never arm a timer. Released in `drop` only if armed: as a plain
        // field its drop glue was an out-of-line call on every scope (13 instructions).
        timer: ManuallyDrop<Option<Box<ArmedTimer>>>,
        // The deadline the timer should fire at, once resolved.
        deadline: Option<Instant>,
        seen_generation: u32,
        // The waker last published as the node's owner, to skip re-publishing it.
        owner: Option<Waker>,
        phase: Phase,
    }

    impl<F> PinnedDrop for InScope<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // Out of the field first, so that a panic anywhere below still releases the node
            // (and its chain of parents) as the unwinding drops this local.
            // SAFETY: this destructor runs once and is the field's only drop (it is
            // `ManuallyDrop`); nothing reads the field after this line.
            let node = unsafe { ManuallyDrop::take(this.node) };
            if *this.phase == Phase::Running {
                // Dropped from outside before the body finished: leave the scope cancelled for
                // good, and drop the body inside it so its destructors see the right scope.
                node.cancel(CancelSource::ScopeDropped, None);
                let dropped = catch_unwind(AssertUnwindSafe(|| {
                    let _g = enter(&node);
                    this.body.set(None);
                }));
                // Forget the owner's waker even if a destructor panicked: the node must not
                // keep the task alive (node -> waker -> task -> node).
                lock(&node.timing).owner = None;
                if let Err(p) = dropped {
                    release_timer(this.timer);
                    Node::recycle(node);
                    resume_unwind(p);
                }
            }
            // After the body: a runtime's timer whose drop panics must not skip the above.
            release_timer(this.timer);
            Node::recycle(node);
        }
    }
}

/// Drops an armed timer and leaves the field empty (an empty `Option` owns nothing, so the
/// `ManuallyDrop` field needs no other drop).
#[inline]
fn release_timer(timer: &mut ManuallyDrop<Option<Box<ArmedTimer>>>) {
    if timer.is_some() {
        drop(timer.take());
    }
}

impl<F> InScope<F> {
    pub(crate) fn new(node: NodeArc, body: F) -> Self {
        Self {
            node: ManuallyDrop::new(node),
            body: Some(body),
            timer: ManuallyDrop::new(None),
            deadline: None,
            seen_generation: 0,
            owner: None,
            phase: Phase::Unentered,
        }
    }
}

impl<F: Future> Future for InScope<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        match *this.phase {
            Phase::Running => {}
            Phase::Private => {
                // SAFETY: in this phase the future holds the only reference to its node, of any
                // kind: `Scoped::private` made it from a `UniqueNode`, and nothing reaches the
                // field before this first poll (`Debug` only reads it through `&`, which cannot
                // overlap this `&mut`), which is also the last use of the phase. The borrow
                // ends before the node is made current (shared).
                let n = unsafe { NodeArc::get_mut_unchecked(this.node) };
                n.enter_unique(current_arc());
                *this.phase = Phase::Running;
                resolve_unshared(n, this.deadline, this.seen_generation);
            }
            Phase::Unentered => {
                assert!(
                    this.node.enter(current_arc()),
                    "CancelScope entered twice: each CancelScope may only be used for a single run; \
                     create a new scope for each run"
                );
                *this.phase = Phase::Running;
            }
            Phase::Done => panic!("a cancel scope's future was polled after it completed"),
        }
        // A deadline was set or moved: resolve it now, so that one already past cancels the
        // scope before the body runs (its first checkpoint fails).
        if this.node.timing_generation.load(Ordering::Acquire) != *this.seen_generation {
            resolve_deadline(this.node, this.deadline, this.seen_generation);
        }

        let out = {
            let _g = enter(this.node);
            let out = match this.body.as_mut().as_pin_mut() {
                Some(body) => body.poll(cx),
                None => unreachable!("body is present while running"),
            };
            if out.is_ready() {
                // The finished body is dropped inside the scope, under the same entry.
                *this.phase = Phase::Done;
                this.body.set(None);
            }
            out
        };
        match out {
            Poll::Pending => {
                if !this.owner.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    let w = cx.waker().clone();
                    lock(&this.node.timing).owner = Some(w.clone());
                    *this.owner = Some(w);
                }
                // Re-check: the deadline may have moved while the body ran. If that cancelled
                // the scope, poll the body again to see it.
                if this.node.timing_generation.load(Ordering::Acquire) != *this.seen_generation
                    && resolve_deadline(this.node, this.deadline, this.seen_generation)
                {
                    cx.waker().wake_by_ref();
                }
                // Fast path: armed for this deadline and silent since the last poll.
                let quiet = this.timer.as_ref().is_some_and(|a| {
                    Some(a.at) == *this.deadline && !a.signal.woke.load(std::sync::atomic::Ordering::Acquire)
                });
                if !quiet && poll_timer(this.node, this.timer, *this.deadline) {
                    // The deadline cancelled the scope: make sure the body is polled again to
                    // see it, even if it registered nothing that the cancellation wakes.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Poll::Ready(v) => {
                release_timer(this.timer);
                if this.owner.take().is_some() {
                    lock(&this.node.timing).owner = None;
                }
                Poll::Ready(v)
            }
        }
    }
}

/// Reads the node's deadline after a change, resolving a relative timeout against the
/// runtime's clock, and cancels the node at once if the deadline has passed.
fn resolve_deadline(node: &Node, deadline: &mut Option<Instant>, seen: &mut u32) -> bool {
    let now = rt::now();
    let mut t = lock(&node.timing);
    t.resolve(now);
    // Read under the lock: every bump happens under it, so this matches `deadline` below.
    *seen = node.timing_generation.load(Ordering::Acquire);
    *deadline = t.deadline();
    drop(t);
    cancel_if_past(node, *deadline, now)
}

/// [`resolve_deadline`] for a node nothing else can reach: no lock, plain reads.
fn resolve_unshared(node: &mut Node, deadline: &mut Option<Instant>, seen: &mut u32) {
    let now = rt::now();
    let t = get_mut(&mut node.timing);
    t.resolve(now);
    *deadline = t.deadline();
    *seen = node.timing_generation.load(Ordering::Relaxed);
    cancel_if_past(node, *deadline, now);
}

/// Cancels the node if `deadline` has passed at `now` (and nothing cancelled it before);
/// `true` if this cancelled it.
fn cancel_if_past(node: &Node, deadline: Option<Instant>, now: Instant) -> bool {
    match deadline {
        Some(at) if at <= now && !node.cancel_called() => {
            node.cancel(CancelSource::Deadline, None);
            true
        }
        _ => false,
    }
}

/// A scope's deadline timer. It is polled with its own waker, which records that the timer
/// woke and then wakes the scope's owner task; so the scope polls the timer only when it was
/// armed, moved, or woke — not on every poll of the body.
struct ArmedTimer {
    at: Instant,
    timer: Pin<Box<dyn Timer>>,
    signal: Arc<TimerSignal>,
    waker: Waker,
}

struct TimerSignal {
    woke: AtomicBool,
    node: NodeArc,
}

impl Wake for TimerSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woke.store(true, std::sync::atomic::Ordering::Release);
        let owner = lock(&self.node.timing).owner.clone();
        if let Some(w) = owner {
            w.wake();
        }
    }
}

/// Arms (or re-arms) the timer for `deadline` and polls it if it needs polling; returns `true`
/// if it fired and cancelled the node.
#[cold]
fn poll_timer(node: &NodeArc, timer: &mut Option<Box<ArmedTimer>>, deadline: Option<Instant>) -> bool {
    let Some(at) = deadline.filter(|_| !node.cancel_called()) else {
        *timer = None;
        return false;
    };
    let armed = match timer {
        Some(armed) => {
            if armed.at != at {
                armed.at = at;
                armed.timer.as_mut().reset(at);
            } else if !(armed.signal.woke.load(std::sync::atomic::Ordering::Acquire)
                && armed.signal.woke.swap(false, std::sync::atomic::Ordering::AcqRel))
            {
                // Armed for this deadline and silent since its last poll: nothing to do.
                return false;
            }
            armed
        }
        None => {
            let signal = Arc::new(TimerSignal { woke: AtomicBool::new(false), node: node.clone() });
            timer.insert(Box::new(ArmedTimer {
                at,
                timer: rt::with_current(|rt| rt.timer(at)),
                waker: Waker::from(signal.clone()),
                signal,
            }))
        }
    };
    let mut tcx = Context::from_waker(&armed.waker);
    if armed.timer.as_mut().poll_expired(&mut tcx).is_ready() {
        *timer = None;
        node.cancel(CancelSource::Deadline, None);
        return true;
    }
    false
}
