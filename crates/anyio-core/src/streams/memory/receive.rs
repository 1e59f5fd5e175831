//! The receiving half of a memory object stream.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};

use super::error::{ReceiveError, TryReceiveError};
use super::state::{Chan, RecvFail, RecvOp, TryRecvFail};
use super::MemoryObjectStreamStatistics;
use crate::error::{Cancelled, ClosedResourceError};

/// The receiving half of a memory object stream (AnyIO's `MemoryObjectReceiveStream`), made by
/// [`create_memory_object_stream`](super::create_memory_object_stream).
///
/// Clone it for more consumers: each item goes to exactly one of them. Senders get
/// [`SendError::Broken`](super::SendError::Broken) once every clone is closed or dropped.
/// `Send + Sync` when `T: Send`.
///
/// It is a `futures` `Stream` of `Result<T, Cancelled>` that ends at the end of the stream:
/// `try_next().await?` receives the next item or `None` and propagates cancellation.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use futures::TryStreamExt;
/// use anyio::streams::memory::create_memory_object_stream;
///
/// let (tx, mut rx) = create_memory_object_stream::<u8>(4);
/// tx.send(1).await.unwrap();
/// tx.send(2).await.unwrap();
/// drop(tx);
/// let mut got = Vec::new();
/// while let Some(item) = rx.try_next().await? {
///     got.push(item);
/// }
/// assert_eq!(got, [1, 2]);
/// # Ok::<_, anyio::Cancelled>(())
/// # }).unwrap();
/// ```
pub struct MemoryObjectReceiveStream<T> {
    chan: Arc<Chan<T>>,
    closed: AtomicBool,
    /// The receive `Stream::poll_next` has in progress.
    next: RecvOp,
}

impl<T> MemoryObjectReceiveStream<T> {
    pub(super) fn new(chan: Arc<Chan<T>>) -> Self {
        Self { chan, closed: AtomicBool::new(false), next: RecvOp::new() }
    }

    /// Receives the next item: from the buffer, or from a waiting sender, or by waiting for one.
    ///
    /// A checkpoint: it fails at once if the enclosing scope is cancelled. When an item is
    /// there it does not yield, except after 512 ready channel operations in one poll of its task.
    ///
    /// Errors: [`ReceiveError::EndOfStream`] once every sender is closed and the buffer is
    /// drained; [`ReceiveError::Closed`] if this handle was closed; [`ReceiveError::Cancelled`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a receive cancelled before an item reached it took nothing, and the item
    /// stays for another receiver (a send skips waiting receives whose scope is cancelled). An item handed to a waiting receive is returned even if its
    /// scope was cancelled meanwhile; if the receive future is dropped instead, the item goes
    /// to the next waiting receiver or back to the front of the buffer.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let (tx, rx) = anyio::streams::memory::create_memory_object_stream::<u8>(1);
    /// tx.send(5).await.unwrap();
    /// assert_eq!(rx.receive().await, Ok(5));
    /// # });
    /// ```
    pub fn receive(&self) -> ReceiveItem<'_, T> {
        ReceiveItem { rx: self, op: ManuallyDrop::new(RecvOp::new()), state: ItemState::New }
    }

    /// Receives an item if one is there without waiting: buffered, or offered by a waiting
    /// sender.
    ///
    /// # Examples
    ///
    /// ```
    /// use anyio::streams::memory::{create_memory_object_stream, TryReceiveError};
    ///
    /// let (tx, rx) = create_memory_object_stream::<u8>(1);
    /// assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock));
    /// tx.try_send(3).unwrap();
    /// assert_eq!(rx.try_receive(), Ok(3));
    /// ```
    #[doc(alias = "receive_nowait")]
    pub fn try_receive(&self) -> Result<T, TryReceiveError> {
        if self.is_closed() {
            return Err(TryReceiveError::Closed);
        }
        self.chan.try_recv().map_err(|e| match e {
            TryRecvFail::WouldBlock => TryReceiveError::WouldBlock,
            TryRecvFail::EndOfStream => TryReceiveError::EndOfStream,
        })
    }

    /// Closes this handle; idempotent. Receives through it fail with
    /// [`ReceiveError::Closed`]. When the last open receive handle closes, the buffered items
    /// are dropped and every sender, waiting or not, gets
    /// [`SendError::Broken`](super::SendError::Broken) with its item back. Dropping a handle
    /// closes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use anyio::streams::memory::{create_memory_object_stream, TrySendError};
    ///
    /// let (tx, rx) = create_memory_object_stream::<u8>(1);
    /// rx.close();
    /// assert_eq!(tx.try_send(1), Err(TrySendError::Broken(1)));
    /// ```
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.chan.close_receiver();
            // Receives of this handle blocked in other tasks end with `Closed`.
            self.chan.wake_waiting(false);
        }
    }

    /// Closes this handle, as [`close`](Self::close): the closing verb every anyio stream,
    /// socket and listener has (AnyIO's `aclose`), so code that closes a resource reads the
    /// same whatever the resource is. Never fails and never waits.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the handle is closed on the first poll, which completes at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let (tx, rx) = anyio::streams::memory::create_memory_object_stream::<u8>(0);
    /// rx.aclose().await?;
    /// assert!(rx.is_closed());
    /// # Ok::<_, anyio::AnyError>(()) }).unwrap();
    /// ```
    pub async fn aclose(&self) -> Result<(), crate::streams::StreamError> {
        self.close();
        Ok(())
    }

    /// Whether this handle was closed.
    ///
    /// ```
    /// let (_tx, rx) = anyio::streams::memory::create_memory_object_stream::<u8>(0);
    /// rx.close();
    /// assert!(rx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A new open handle on the same stream, or an error if this one is closed (AnyIO's
    /// `clone`).
    ///
    /// ```
    /// let (_tx, rx) = anyio::streams::memory::create_memory_object_stream::<u8>(0);
    /// let rx2 = rx.try_clone().unwrap();
    /// assert_eq!(rx2.statistics().open_receive_streams, 2);
    /// ```
    #[doc(alias = "clone")]
    pub fn try_clone(&self) -> Result<Self, ClosedResourceError> {
        if !self.is_closed() && self.chan.add_receiver() {
            Ok(Self::new(self.chan.clone()))
        } else {
            Err(ClosedResourceError)
        }
    }

    /// A snapshot of the stream's buffer, handles and waiting tasks.
    ///
    /// ```
    /// let (_tx, rx) = anyio::streams::memory::create_memory_object_stream::<u8>(0);
    /// assert_eq!(rx.statistics().open_receive_streams, 1);
    /// ```
    pub fn statistics(&self) -> MemoryObjectStreamStatistics {
        self.chan.statistics().into()
    }
}

/// Cloning a closed handle gives another closed handle; use
/// [`try_clone`](MemoryObjectReceiveStream::try_clone) to get an error instead.
impl<T> Clone for MemoryObjectReceiveStream<T> {
    fn clone(&self) -> Self {
        self.try_clone().unwrap_or_else(|_| {
            let closed = Self::new(self.chan.clone());
            closed.closed.store(true, Ordering::Release);
            closed
        })
    }
}

impl<T> Drop for MemoryObjectReceiveStream<T> {
    fn drop(&mut self) {
        // An item handed to the stream's pending `poll_next` goes on to another receiver first.
        self.chan.abandon_recv(&mut self.next);
        self.close();
    }
}

impl<T> fmt::Debug for MemoryObjectReceiveStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryObjectReceiveStream")
            .field("closed", &self.is_closed())
            .field("statistics", &self.statistics())
            .finish()
    }
}

/// Yields `Ok(item)` per item, `Err(Cancelled)` when polled in a cancelled scope (a
/// checkpoint, like [`receive`](MemoryObjectReceiveStream::receive)), and ends at the end of
/// the stream or once this handle is closed. Cancel safe in the same way as `receive`; an item
/// handed to a pending `poll_next` stays with this stream until the next poll.
impl<T> Stream for MemoryObjectReceiveStream<T> {
    type Item = Result<T, Cancelled>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.is_closed() {
            this.chan.abandon_recv(&mut this.next);
            return Poll::Ready(None);
        }
        match this.chan.poll_recv(&mut this.next, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(item)) => Poll::Ready(Some(Ok(item))),
            Poll::Ready(Err(RecvFail::EndOfStream)) => Poll::Ready(None),
            Poll::Ready(Err(RecvFail::Cancelled(c))) => Poll::Ready(Some(Err(c))),
        }
    }
}

impl<T> FusedStream for MemoryObjectReceiveStream<T> {
    fn is_terminated(&self) -> bool {
        self.is_closed() || self.chan.is_drained()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ItemState {
    New,
    Started,
    Done,
}

/// The future of [`MemoryObjectReceiveStream::receive`].
#[must_use = "futures do nothing unless polled"]
pub struct ReceiveItem<'a, T> {
    rx: &'a MemoryObjectReceiveStream<T>,
    /// Dropped by `Drop` (see `Chan::drop_recv_op`).
    op: ManuallyDrop<RecvOp>,
    state: ItemState,
}

impl<T> Future for ReceiveItem<'_, T> {
    type Output = Result<T, ReceiveError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.state {
            ItemState::Done => panic!("a receive future was polled after it completed"),
            ItemState::New if this.rx.is_closed() => {
                this.state = ItemState::Done;
                return Poll::Ready(Err(ReceiveError::Closed));
            }
            _ => this.state = ItemState::Started,
        }
        let poll = this.rx.chan.poll_recv(&mut this.op, cx).map_err(|e| match e {
            RecvFail::EndOfStream => ReceiveError::EndOfStream,
            RecvFail::Cancelled(c) => ReceiveError::Cancelled(c),
        });
        if poll.is_ready() {
            this.state = ItemState::Done;
            return poll;
        }
        // Closed while waiting (checked after queueing: `close` sets the flag before it wakes
        // the queue, so one of the two sees the other). An item handed over meanwhile goes
        // back to the channel.
        if this.rx.is_closed() {
            this.rx.chan.abandon_recv(&mut this.op);
            this.state = ItemState::Done;
            return Poll::Ready(Err(ReceiveError::Closed));
        }
        Poll::Pending
    }
}

impl<T> Drop for ReceiveItem<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.rx.chan.drop_recv_op(&mut self.op);
    }
}

impl<T> fmt::Debug for ReceiveItem<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiveItem").field("waiting", &self.op.is_waiting()).finish_non_exhaustive()
    }
}
