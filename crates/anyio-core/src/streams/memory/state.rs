//! The state shared by every handle of one memory object stream, and the operations on it.
//!
//! One mutex guards the buffer and both wait queues, so every hand-off decision is made under a
//! single lock and items cannot be lost or duplicated between the queues. Waiters live in a
//! [`WaitQueue`] owned by the channel; an operation future holds only its key, so a wait costs no
//! allocation once the queue has grown, and a cancelled one leaves it in O(1). Wakers, and items the channel drops, are dropped after the lock is
//! released: either may run user code that touches this channel again.

use std::collections::VecDeque;
use std::mem::{self, ManuallyDrop};
use std::task::{Context, Poll, Waker};

use crate::cancel::cell::NodeArc;
use crate::cancel::current::{check_current, current_arc, register_current_after_check};
use crate::cancel::node::WaitRegistration;
use crate::coop;
use crate::error::Cancelled;
use crate::sync::spin::{SpinGuard, SpinMutex};
use crate::sync::waitq::WaitQueue;
use crate::sync::waker::replace_waker;

pub(super) struct Chan<T> {
    state: SpinMutex<State<T>>,
}

struct State<T> {
    buf: VecDeque<T>,
    /// `usize::MAX` means unbounded.
    max: usize,
    senders: usize,
    receivers: usize,
    send_q: Queue<T>,
    recv_q: Queue<T>,
}

/// Waiters of one side, FIFO.
struct Queue<T> {
    q: WaitQueue<Waiter<T>>,
}

/// A waiting sender or receiver.
///
/// A sender's entry holds its item while queued; a receiver that takes it leaves `None` and
/// dequeues it. A receiver's entry is empty while queued; a sender that serves it stores the
/// item and dequeues it. Closing the other side dequeues every entry as it is. So a dequeued
/// entry is a resolved operation, whose outcome its owner reads on its next poll — or one that
/// was skipped because its scope is cancelled (see `Queue::pop`).
struct Waiter<T> {
    waker: Option<Waker>,
    item: Option<T>,
    /// The cancel scope the operation waits in (`None` outside any scope).
    node: Option<NodeArc>,
}

impl<T> Queue<T> {
    fn new() -> Self {
        Self { q: WaitQueue::new() }
    }

    fn push(&mut self, waker: Waker, item: Option<T>, node: Option<NodeArc>) -> usize {
        self.q.push_back(Waiter { waker: Some(waker), item, node })
    }

    /// Queues a skipped entry again; returns what it replaced, for the caller to drop after
    /// the lock (a waker's drop is not our code, and a node's may free a chain of nodes).
    fn requeue(
        &mut self,
        key: usize,
        waker: &Waker,
        node: Option<NodeArc>,
    ) -> (Option<Waker>, Option<NodeArc>) {
        self.q.relink(key);
        let w = &mut self.q[key];
        (w.waker.replace(waker.clone()), std::mem::replace(&mut w.node, node))
    }

    /// Whether the entry is still queued (not resolved or skipped).
    fn is_queued(&self, key: usize) -> bool {
        self.q.is_linked(key)
    }

    /// Dequeues the oldest waiter whose scope is not cancelled, leaving its entry for its owner
    /// to read. Waiters with a pending cancellation are dequeued untouched on the way (AnyIO
    /// and trio never hand an item to an operation that is being cancelled); their scope's
    /// cancellation has already woken them, and they return `Cancelled` having taken nothing.
    #[inline]
    fn pop(&mut self) -> Option<&mut Waiter<T>> {
        // Nobody waits on the buffered fast path: keep that test inline, the walk out of line.
        if self.q.is_empty() {
            return None;
        }
        self.pop_waiting()
    }

    #[cold]
    fn pop_waiting(&mut self) -> Option<&mut Waiter<T>> {
        loop {
            let key = self.q.pop_front()?;
            if !self.q[key].node.as_ref().is_some_and(|n| n.is_effectively_cancelled()) {
                return Some(&mut self.q[key]);
            }
        }
    }

    /// Removes an entry for good, unlinking it if it is still queued.
    fn remove(&mut self, key: usize) -> Waiter<T> {
        self.q.remove(key)
    }

    /// Dequeues everyone (the other side is gone) and returns their wakers.
    fn release_all(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::with_capacity(self.q.len());
        while let Some(key) = self.q.pop_front() {
            wakers.extend(self.q[key].waker.take());
        }
        wakers
    }

    /// Stores a fresh waker if the task's waker changed.
    fn update_waker(&mut self, key: usize, waker: &Waker) -> Option<Waker> {
        replace_waker(&mut self.q[key].waker, waker)
    }
}

/// Why a send did not happen; the item comes back.
pub(super) enum SendFail<T> {
    Broken(T),
    Cancelled(T, Cancelled),
}

/// Why a non-waiting send did not happen.
pub(super) enum TrySendFail<T> {
    WouldBlock(T),
    Broken(T),
}

/// Why a receive returned no item.
pub(super) enum RecvFail {
    EndOfStream,
    Cancelled(Cancelled),
}

/// Why a non-waiting receive returned no item.
pub(super) enum TryRecvFail {
    WouldBlock,
    EndOfStream,
}

/// A send in progress: the item until it is queued or delivered, and the queue entry.
#[derive(Debug)]
pub(super) struct SendOp<T> {
    pub(super) item: Option<T>,
    key: Option<usize>,
    reg: WaitRegistration,
}

/// A receive in progress.
#[derive(Debug)]
pub(super) struct RecvOp {
    key: Option<usize>,
    reg: WaitRegistration,
}

impl<T> SendOp<T> {
    pub(super) fn new(item: Option<T>) -> Self {
        Self { item, key: None, reg: WaitRegistration::new() }
    }

    /// Whether an item is waiting to be sent (in the op or in the queue).
    pub(super) fn is_pending(&self) -> bool {
        self.item.is_some() || self.key.is_some()
    }
}

impl RecvOp {
    pub(super) const fn new() -> Self {
        Self { key: None, reg: WaitRegistration::new() }
    }

    pub(super) fn is_waiting(&self) -> bool {
        self.key.is_some()
    }
}

/// What [`Chan::statistics`] reads, in one consistent snapshot.
pub(super) struct Snapshot {
    pub(super) buffer_used: usize,
    pub(super) max: usize,
    pub(super) senders: usize,
    pub(super) receivers: usize,
    pub(super) waiting_send: usize,
    pub(super) waiting_receive: usize,
}

impl<T> State<T> {
    /// Delivers `item` to the oldest waiting receiver or into the buffer. Returns the waker to
    /// wake, or the item back if there is neither a receiver nor room.
    fn offer(&mut self, item: T) -> Result<Option<Waker>, T> {
        if let Some(w) = self.recv_q.pop() {
            w.item = Some(item);
            return Ok(w.waker.take());
        }
        if self.buf.len() < self.max {
            self.buf.push_back(item);
            return Ok(None);
        }
        Err(item)
    }

    /// A send that does not wait: `Broken` once every receiver is closed, else [`offer`].
    ///
    /// [`offer`]: Self::offer
    fn deliver(&mut self, item: T) -> Result<Option<Waker>, TrySendFail<T>> {
        if self.receivers == 0 {
            return Err(TrySendFail::Broken(item));
        }
        self.offer(item).map_err(TrySendFail::WouldBlock)
    }

    /// Takes the next item: from the buffer (refilling it from the oldest waiting sender) or
    /// straight from a waiting sender. Returns the item and the sender's waker to wake.
    fn take(&mut self) -> Option<(T, Option<Waker>)> {
        if let Some(item) = self.buf.pop_front() {
            let mut waker = None;
            if self.buf.len() < self.max {
                if let Some(w) = self.send_q.pop() {
                    self.buf.push_back(w.item.take().expect("a queued sender holds its item"));
                    waker = w.waker.take();
                }
            }
            return Some((item, waker));
        }
        let w = self.send_q.pop()?;
        Some((w.item.take().expect("a queued sender holds its item"), w.waker.take()))
    }
}

impl<T> Chan<T> {
    pub(super) fn new(max: usize) -> Self {
        Self {
            state: SpinMutex::new(State {
                // Small eager capacity: a huge bound must not allocate up front.
                buf: VecDeque::with_capacity(max.min(16)),
                max,
                senders: 1,
                receivers: 1,
                send_q: Queue::new(),
                recv_q: Queue::new(),
            }),
        }
    }

    /// Counts a new open sender; `false` if every sender is already closed.
    pub(super) fn add_sender(&self) -> bool {
        let mut st = self.state.lock();
        if st.senders == 0 {
            return false;
        }
        st.senders += 1;
        true
    }

    /// Counts a new open receiver; `false` if every receiver is already closed.
    pub(super) fn add_receiver(&self) -> bool {
        let mut st = self.state.lock();
        if st.receivers == 0 {
            return false;
        }
        st.receivers += 1;
        true
    }

    /// One sender closed; the last one wakes every waiting receiver (they drain the buffer,
    /// then see the end of the stream).
    pub(super) fn close_sender(&self) {
        let wakers = {
            let mut st = self.state.lock();
            st.senders -= 1;
            if st.senders > 0 {
                return;
            }
            st.recv_q.release_all()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// One receiver closed; the last one wakes every waiting sender (they get their items back
    /// as broken-resource errors) and drops the buffered items, which nobody can receive now.
    pub(super) fn close_receiver(&self) {
        let (wakers, buf) = {
            let mut st = self.state.lock();
            st.receivers -= 1;
            if st.receivers > 0 {
                return;
            }
            (st.send_q.release_all(), mem::take(&mut st.buf))
        };
        wakers.into_iter().for_each(Waker::wake);
        drop(buf);
    }

    pub(super) fn statistics(&self) -> Snapshot {
        let st = self.state.lock();
        Snapshot {
            buffer_used: st.buf.len(),
            max: st.max,
            senders: st.senders,
            receivers: st.receivers,
            waiting_send: st.send_q.q.len(),
            waiting_receive: st.recv_q.q.len(),
        }
    }

    /// Whether a receiver can never get another item.
    pub(super) fn is_drained(&self) -> bool {
        let st = self.state.lock();
        st.senders == 0 && st.buf.is_empty() && st.send_q.q.is_empty()
    }

    pub(super) fn try_send(&self, item: T) -> Result<(), TrySendFail<T>> {
        let waker = self.state.lock().deliver(item)?;
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    pub(super) fn try_recv(&self) -> Result<T, TryRecvFail> {
        let mut st = self.state.lock();
        match st.take() {
            Some((item, waker)) => {
                drop(st);
                if let Some(w) = waker {
                    w.wake();
                }
                Ok(item)
            }
            None if st.senders == 0 => Err(TryRecvFail::EndOfStream),
            None => Err(TryRecvFail::WouldBlock),
        }
    }

    /// Drives a send. `Ready(Ok)` once the item is in the buffer or with a receiver; a
    /// cancellation or a broken stream returns the item, unless it was delivered first.
    ///
    /// Inlined up to the lock: a send that finds room and no waiting receiver (the buffered
    /// fast path) completes here; everything else continues out of line.
    #[inline]
    pub(super) fn poll_send(
        &self,
        op: &mut SendOp<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SendFail<T>>> {
        if op.key.is_some() {
            return self.poll_send_queued(op, cx);
        }
        let checked = std::task::ready!(coop::poll_proceed_checked(cx));
        let item = op.item.take().expect("a send future was polled after it completed");
        if let Err(c) = checked {
            return Poll::Ready(Err(SendFail::Cancelled(item, c)));
        }
        let mut st = self.state.lock();
        if st.receivers > 0 && st.recv_q.q.is_empty() && st.buf.len() < st.max {
            st.buf.push_back(item);
            return Poll::Ready(Ok(()));
        }
        self.send_locked(st, item, op, cx)
    }

    /// The rest of a first send attempt, under the lock: hand the item to a waiting receiver,
    /// fail, or queue the op.
    #[inline(never)]
    fn send_locked(
        &self,
        mut st: SpinGuard<'_, State<T>>,
        item: T,
        op: &mut SendOp<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SendFail<T>>> {
        match st.deliver(item) {
            Ok(waker) => {
                drop(st);
                if let Some(w) = waker {
                    w.wake();
                }
                Poll::Ready(Ok(()))
            }
            Err(TrySendFail::Broken(item)) => Poll::Ready(Err(SendFail::Broken(item))),
            Err(TrySendFail::WouldBlock(item)) => {
                // A TLS read and a reference count: cheap enough to do under the lock.
                op.key = Some(st.send_q.push(cx.waker().clone(), Some(item), current_arc()));
                drop(st);
                self.register_send(op, cx)
            }
        }
    }

    /// A send whose op is queued: see whether it was resolved, or wait on.
    #[inline(never)]
    fn poll_send_queued(&self, op: &mut SendOp<T>, cx: &mut Context<'_>) -> Poll<Result<(), SendFail<T>>> {
        let cancelled = check_current().err();
        let key = op.key.expect("the op is queued");
        let mut st = self.state.lock();
        let queued = st.send_q.is_queued(key);
        let w = &st.send_q.q[key];
        if queued && cancelled.is_none() {
            let old = st.send_q.update_waker(key, cx.waker());
            drop(st);
            drop(old);
        } else if !queued && w.item.is_some() && cancelled.is_none() && st.receivers > 0 {
            // Skipped while its scope was cancelled, which it no longer is (a shield went
            // up meanwhile): queue again.
            let old = st.send_q.requeue(key, cx.waker(), current_arc());
            drop(st);
            drop(old);
        } else {
            // Resolved (delivered, or the receivers are gone), or cancelled.
            let w = st.send_q.remove(key);
            drop(st);
            op.key = None;
            op.reg.clear();
            return Poll::Ready(resolve_send(w, cancelled));
        }
        self.register_send(op, cx)
    }

    /// Registers a queued send with its cancel scope, the current one; a cancellation found
    /// there takes the op out of the queue (unless the item was delivered meanwhile). The
    /// caller checked the scope earlier in this poll. Through the current-node pointer, not a
    /// `NodeArc`: in the common case (the task's resident waker) that takes no reference.
    fn register_send(&self, op: &mut SendOp<T>, cx: &mut Context<'_>) -> Poll<Result<(), SendFail<T>>> {
        if let Err(c) = register_current_after_check(&mut op.reg, cx.waker()) {
            let w = self.leave(&mut op.key, Side::Send).expect("the op is queued");
            op.reg.clear();
            return Poll::Ready(resolve_send(w, Some(c)));
        }
        Poll::Pending
    }

    /// Drives a receive. An item handed to this op is returned even if the scope was
    /// cancelled meanwhile; a cancelled op that got nothing took nothing.
    ///
    /// Inlined up to the lock, as [`poll_send`](Self::poll_send): a receive that finds an item
    /// buffered and no waiting sender to refill from completes here.
    #[inline]
    pub(super) fn poll_recv(&self, op: &mut RecvOp, cx: &mut Context<'_>) -> Poll<Result<T, RecvFail>> {
        if op.key.is_some() {
            return self.poll_recv_queued(op, cx);
        }
        if let Err(c) = std::task::ready!(coop::poll_proceed_checked(cx)) {
            return Poll::Ready(Err(RecvFail::Cancelled(c)));
        }
        let mut st = self.state.lock();
        if st.send_q.q.is_empty() {
            if let Some(item) = st.buf.pop_front() {
                return Poll::Ready(Ok(item));
            }
        }
        self.recv_locked(st, op, cx)
    }

    /// A receive whose op is queued: take what was handed to it, or wait on.
    #[inline(never)]
    fn poll_recv_queued(&self, op: &mut RecvOp, cx: &mut Context<'_>) -> Poll<Result<T, RecvFail>> {
        let key = op.key.expect("the op is queued");
        let cancelled = check_current().err();
        let mut st = self.state.lock();
        if let Some(item) = st.recv_q.q[key].item.take() {
            // Handed over: ours, whatever happened to the scope meanwhile.
            let w = st.recv_q.remove(key);
            drop(st);
            drop(w);
            op.key = None;
            op.reg.clear();
            return Poll::Ready(Ok(item));
        }
        if let Some(c) = cancelled {
            let w = st.recv_q.remove(key);
            drop(st);
            drop(w);
            op.key = None;
            op.reg.clear();
            return Poll::Ready(Err(RecvFail::Cancelled(c)));
        }
        if st.recv_q.is_queued(key) {
            let old = st.recv_q.update_waker(key, cx.waker());
            drop(st);
            drop(old);
            return self.register_recv(op, cx);
        }
        // Dequeued without an item: the senders closed, or it was skipped while its scope was
        // cancelled and a shield went up since. Look again.
        self.recv_locked(st, op, cx)
    }

    /// The rest of a receive, under the lock: take an item (refilling the buffer from a
    /// waiting sender), see the end of the stream, or queue the op (or requeue it).
    #[inline(never)]
    fn recv_locked(
        &self,
        mut st: SpinGuard<'_, State<T>>,
        op: &mut RecvOp,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, RecvFail>> {
        if let Some((item, waker)) = st.take() {
            let own = op.key.take().map(|key| st.recv_q.remove(key));
            drop(st);
            drop(own);
            if let Some(w) = waker {
                w.wake();
            }
            op.reg.clear();
            return Poll::Ready(Ok(item));
        }
        if st.senders == 0 {
            let own = op.key.take().map(|key| st.recv_q.remove(key));
            drop(st);
            drop(own);
            op.reg.clear();
            return Poll::Ready(Err(RecvFail::EndOfStream));
        }
        match op.key {
            Some(key) => {
                let old = st.recv_q.requeue(key, cx.waker(), current_arc());
                drop(st);
                drop(old);
            }
            None => {
                op.key = Some(st.recv_q.push(cx.waker().clone(), None, current_arc()));
                drop(st);
            }
        }
        self.register_recv(op, cx)
    }

    /// [`register_send`](Self::register_send) for a queued receive.
    fn register_recv(&self, op: &mut RecvOp, cx: &mut Context<'_>) -> Poll<Result<T, RecvFail>> {
        if let Err(c) = register_current_after_check(&mut op.reg, cx.waker()) {
            let w = self.leave(&mut op.key, Side::Recv).expect("the op is queued");
            op.reg.clear();
            return Poll::Ready(match w.item {
                Some(item) => Ok(item),
                None => Err(RecvFail::Cancelled(c)),
            });
        }
        Poll::Pending
    }

    /// Removes an op's entry, returning it (with the item it holds, if any).
    #[cold]
    fn leave(&self, key: &mut Option<usize>, side: Side) -> Option<Waiter<T>> {
        let key = key.take()?;
        let mut st = self.state.lock();
        Some(match side {
            Side::Send => st.send_q.remove(key),
            Side::Recv => st.recv_q.remove(key),
        })
    }

    /// A send op is given up unfinished (the sink's held op, when the stream drops): leave the
    /// queue and the scope. An item not yet delivered is dropped with the op (the caller gave
    /// up on sending it). One inline test; the rest is out of line.
    #[inline]
    pub(super) fn abandon_send(&self, op: &mut SendOp<T>) {
        if op.key.is_some() || op.reg.is_registered() {
            self.abandon_send_slow(op);
        }
    }

    #[cold]
    #[inline(never)]
    fn abandon_send_slow(&self, op: &mut SendOp<T>) {
        op.reg.clear();
        if op.key.is_some() {
            drop(self.leave(&mut op.key, Side::Send));
        }
    }

    /// Drops a send future's op, which the future holds in `ManuallyDrop` so that this is the
    /// whole of its drop glue: the compiler outlined the glue of a plain `SendOp` field (the
    /// registration's and the item's drops), a call of 13 instructions a message each way.
    /// An op that holds no queue entry, no registration and no item that needs dropping owns
    /// nothing, so it is left as it is; anything else is abandoned and dropped out of line.
    #[inline]
    pub(super) fn drop_send_op(&self, op: &mut ManuallyDrop<SendOp<T>>) {
        if op.key.is_some() || op.reg.is_registered() || (mem::needs_drop::<T>() && op.item.is_some()) {
            self.drop_send_op_slow(op);
        }
    }

    #[cold]
    #[inline(never)]
    fn drop_send_op_slow(&self, op: &mut SendOp<T>) {
        self.abandon_send_slow(op);
        drop(mem::replace(op, SendOp::new(None)));
    }

    /// A waiting send whose own handle was closed meanwhile: leave the queue and take the item
    /// back, or `None` if it was delivered before.
    pub(super) fn withdraw_send(&self, op: &mut SendOp<T>) -> Option<T> {
        op.reg.clear();
        if op.key.is_none() {
            // Not queued (it yielded to the coop budget first): the item is still the op's.
            return op.item.take();
        }
        self.leave(&mut op.key, Side::Send).and_then(|w| w.item)
    }

    /// Wakes every queued op on one side without dequeuing it, so that the ops of a handle
    /// that was just closed notice it (the others re-poll and wait again).
    pub(super) fn wake_waiting(&self, senders: bool) {
        let wakers: Vec<Waker> = {
            let st = self.state.lock();
            let q = if senders { &st.send_q } else { &st.recv_q };
            q.q.iter().filter_map(|w| w.waker.clone()).collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// A receive op is dropped unfinished: leave the queue, and if an item was handed to it
    /// meanwhile, pass the item to the next waiting receiver or put it back at the front of the
    /// buffer, so that it is not lost.
    ///
    /// Inlined for the same reason as [`abandon_send`](Self::abandon_send).
    #[inline]
    pub(super) fn abandon_recv(&self, op: &mut RecvOp) {
        if op.key.is_some() || op.reg.is_registered() {
            self.abandon_recv_slow(op);
        }
    }

    /// The rest of [`abandon_recv`](Self::abandon_recv), out of line as `abandon_send_slow`.
    #[cold]
    #[inline(never)]
    fn abandon_recv_slow(&self, op: &mut RecvOp) {
        op.reg.clear();
        if op.key.is_some() {
            self.return_recv(op);
        }
    }

    /// [`drop_send_op`](Self::drop_send_op) for a receive future's op.
    #[inline]
    pub(super) fn drop_recv_op(&self, op: &mut ManuallyDrop<RecvOp>) {
        if op.key.is_some() || op.reg.is_registered() {
            self.drop_recv_op_slow(op);
        }
    }

    #[cold]
    #[inline(never)]
    fn drop_recv_op_slow(&self, op: &mut RecvOp) {
        self.abandon_recv_slow(op);
        drop(mem::replace(op, RecvOp::new()));
    }

    /// The queued part of [`abandon_recv`](Self::abandon_recv).
    #[cold]
    fn return_recv(&self, op: &mut RecvOp) {
        let Some(item) = self.leave(&mut op.key, Side::Recv).and_then(|w| w.item) else { return };
        let mut st = self.state.lock();
        if st.receivers == 0 {
            // Nobody can receive it any more; it goes the way of the buffer.
            drop(st);
            drop(item);
            return;
        }
        let waker = match st.recv_q.pop() {
            Some(w) => {
                w.item = Some(item);
                w.waker.take()
            }
            None => {
                st.buf.push_front(item);
                None
            }
        };
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[derive(Clone, Copy)]
enum Side {
    Send,
    Recv,
}

/// The outcome of a send whose entry was removed: delivered if the item is gone.
fn resolve_send<T>(w: Waiter<T>, cancelled: Option<Cancelled>) -> Result<(), SendFail<T>> {
    match (w.item, cancelled) {
        (None, _) => Ok(()),
        (Some(item), Some(c)) => Err(SendFail::Cancelled(item, c)),
        (Some(item), None) => Err(SendFail::Broken(item)),
    }
}
