//! The sending half of a memory object stream.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::error::{SendError, TrySendError};
use super::state::{Chan, SendFail, SendOp, TrySendFail};
use super::MemoryObjectStreamStatistics;
use crate::error::ClosedResourceError;

/// The sending half of a memory object stream (AnyIO's `MemoryObjectSendStream`), made by
/// [`create_memory_object_stream`](super::create_memory_object_stream).
///
/// Clone it for more producers; the stream ends for receivers when every clone is closed or
/// dropped. `Send + Sync` when `T: Send`. Implements `futures`' `Sink`.
///
/// # Examples
///
/// ```
/// use anyio::streams::memory::create_memory_object_stream;
///
/// let (tx, rx) = create_memory_object_stream::<&str>(8);
/// let tx2 = tx.clone();
/// tx.try_send("a").unwrap();
/// tx2.try_send("b").unwrap();
/// assert_eq!(rx.try_receive(), Ok("a"));
/// assert_eq!(rx.try_receive(), Ok("b"));
/// ```
pub struct MemoryObjectSendStream<T> {
    chan: Arc<Chan<T>>,
    closed: AtomicBool,
    /// The item `Sink::start_send` accepted and the channel has not taken yet.
    sink: OnlyMut<SendOp<T>>,
}

impl<T> MemoryObjectSendStream<T> {
    pub(super) fn new(chan: Arc<Chan<T>>) -> Self {
        Self { chan, closed: AtomicBool::new(false), sink: OnlyMut(SendOp::new(None)) }
    }

    /// Sends `item`: hands it to the oldest waiting receiver, or puts it in the buffer, or
    /// waits until one of those is possible. With a buffer of 0 it returns once a receiver has
    /// the item.
    ///
    /// A checkpoint: it fails at once if the enclosing scope is cancelled. When it can proceed
    /// at once it does not yield (like AnyIO's `fast_acquire`), except after 512 ready channel
    /// operations in one poll of its task, so a sending loop cannot starve other tasks.
    ///
    /// Errors return the item: [`SendError::Closed`] if this handle was closed,
    /// [`SendError::Broken`] if every receiver is closed (also for a send already waiting when
    /// the last receiver went away), [`SendError::Cancelled`] if the scope was cancelled first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a send cancelled (or dropped) before its item was delivered did not send
    /// it; cancellation returns the item in [`SendError::Cancelled`]. A send whose item was
    /// delivered reports success even if the scope was cancelled meanwhile.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::streams::memory::create_memory_object_stream;
    ///
    /// let (tx, rx) = create_memory_object_stream::<u8>(1);
    /// tx.send(1).await.unwrap(); // room in the buffer: returns at once
    /// assert_eq!(rx.receive().await, Ok(1));
    /// # });
    /// ```
    pub fn send(&self, item: T) -> SendItem<'_, T> {
        SendItem { tx: self, op: ManuallyDrop::new(SendOp::new(Some(item))), started: false }
    }

    /// Sends `item` if that needs no waiting: a receiver is waiting or the buffer has room.
    ///
    /// # Examples
    ///
    /// ```
    /// use anyio::streams::memory::{create_memory_object_stream, TrySendError};
    ///
    /// let (tx, _rx) = create_memory_object_stream::<u8>(1);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(tx.try_send(2), Err(TrySendError::WouldBlock(2))); // full
    /// ```
    #[doc(alias = "send_nowait")]
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        if self.is_closed() {
            return Err(TrySendError::Closed(item));
        }
        self.chan.try_send(item).map_err(|e| match e {
            TrySendFail::WouldBlock(t) => TrySendError::WouldBlock(t),
            TrySendFail::Broken(t) => TrySendError::Broken(t),
        })
    }

    /// Closes this handle; idempotent. Sends through it fail with [`SendError::Closed`]. When
    /// the last open send handle closes, waiting receivers drain the buffer and then get
    /// [`ReceiveError::EndOfStream`](super::ReceiveError::EndOfStream). Dropping a handle
    /// closes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use anyio::streams::memory::{create_memory_object_stream, TryReceiveError};
    ///
    /// let (tx, rx) = create_memory_object_stream::<u8>(1);
    /// tx.try_send(1).unwrap();
    /// tx.close();
    /// assert_eq!(rx.try_receive(), Ok(1));
    /// assert_eq!(rx.try_receive(), Err(TryReceiveError::EndOfStream));
    /// ```
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.chan.close_sender();
            // Sends of this handle blocked in other tasks end with `Closed`.
            self.chan.wake_waiting(true);
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
    /// tx.aclose().await?;
    /// assert!(tx.is_closed());
    /// # Ok::<_, anyio::AnyError>(()) }).unwrap();
    /// ```
    pub async fn aclose(&self) -> Result<(), crate::streams::StreamError> {
        self.close();
        Ok(())
    }

    /// Whether this handle was closed.
    ///
    /// ```
    /// let (tx, _rx) = anyio::streams::memory::create_memory_object_stream::<u8>(0);
    /// tx.close();
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A new open handle on the same stream, or an error if this one is closed (AnyIO's
    /// `clone`).
    ///
    /// ```
    /// let (tx, _rx) = anyio::streams::memory::create_memory_object_stream::<u8>(0);
    /// let tx2 = tx.try_clone().unwrap();
    /// tx.close();
    /// assert!(tx.try_clone().is_err());
    /// assert!(!tx2.is_closed());
    /// ```
    #[doc(alias = "clone")]
    pub fn try_clone(&self) -> Result<Self, ClosedResourceError> {
        if !self.is_closed() && self.chan.add_sender() {
            Ok(Self::new(self.chan.clone()))
        } else {
            Err(ClosedResourceError)
        }
    }

    /// A snapshot of the stream's buffer, handles and waiting tasks.
    ///
    /// ```
    /// let (tx, _rx) = anyio::streams::memory::create_memory_object_stream::<u8>(0);
    /// assert_eq!(tx.statistics().open_send_streams, 1);
    /// ```
    pub fn statistics(&self) -> MemoryObjectStreamStatistics {
        self.chan.statistics().into()
    }

    fn map_fail(e: SendFail<T>) -> SendError<T> {
        match e {
            SendFail::Broken(t) => SendError::Broken(t),
            SendFail::Cancelled(t, c) => SendError::Cancelled(t, c),
        }
    }
}

/// Cloning a closed handle gives another closed handle; use
/// [`try_clone`](MemoryObjectSendStream::try_clone) to get an error instead.
impl<T> Clone for MemoryObjectSendStream<T> {
    fn clone(&self) -> Self {
        self.try_clone().unwrap_or_else(|_| {
            let closed = Self::new(self.chan.clone());
            closed.closed.store(true, Ordering::Release);
            closed
        })
    }
}

// Items are never pinned: they move in and out of the channel by value.
impl<T> Unpin for MemoryObjectSendStream<T> {}

impl<T> Drop for MemoryObjectSendStream<T> {
    fn drop(&mut self) {
        self.chan.abandon_send(&mut self.sink.0);
        self.close();
    }
}

impl<T> fmt::Debug for MemoryObjectSendStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryObjectSendStream")
            .field("closed", &self.is_closed())
            .field("statistics", &self.statistics())
            .finish()
    }
}

/// A `Sink` that accepts one item at a time: `start_send` sends at once if it can, otherwise
/// keeps the item, and `poll_ready`/`poll_flush` wait until the stream takes it. Errors return
/// the item, as [`send`](MemoryObjectSendStream::send)'s do. `poll_close` flushes, then closes
/// this handle.
impl<T> futures_sink::Sink<T> for MemoryObjectSendStream<T> {
    type Error = SendError<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        let this = self.get_mut();
        assert!(!this.sink.0.is_pending(), "Sink::start_send called without poll_ready returning Ready(Ok)");
        match this.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::WouldBlock(item)) => {
                this.sink.0.item = Some(item);
                Ok(())
            }
            Err(TrySendError::Closed(item)) => Err(SendError::Closed(item)),
            Err(TrySendError::Broken(item)) => Err(SendError::Broken(item)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if !this.sink.0.is_pending() {
            return Poll::Ready(Ok(()));
        }
        this.chan.poll_send(&mut this.sink.0, cx).map_err(Self::map_fail)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        std::task::ready!(self.as_mut().poll_flush(cx))?;
        self.close();
        Poll::Ready(Ok(()))
    }
}

/// The future of [`MemoryObjectSendStream::send`].
#[must_use = "futures do nothing unless polled"]
pub struct SendItem<'a, T> {
    tx: &'a MemoryObjectSendStream<T>,
    /// Dropped by `Drop` (see `Chan::drop_send_op`).
    op: ManuallyDrop<SendOp<T>>,
    started: bool,
}

impl<T> Future for SendItem<'_, T> {
    type Output = Result<(), SendError<T>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.started {
            this.started = true;
            if this.tx.is_closed() {
                let item = this.op.item.take().expect("a send future was polled after it completed");
                return Poll::Ready(Err(SendError::Closed(item)));
            }
        }
        let poll = this.tx.chan.poll_send(&mut this.op, cx).map_err(MemoryObjectSendStream::map_fail);
        if poll.is_ready() {
            return poll;
        }
        // Closed while waiting (checked after queueing, see `ReceiveItem::poll`): the item
        // comes back unless it was delivered first.
        if this.tx.is_closed() {
            return Poll::Ready(match this.tx.chan.withdraw_send(&mut this.op) {
                Some(item) => Err(SendError::Closed(item)),
                None => Ok(()),
            });
        }
        Poll::Pending
    }
}

impl<T> Unpin for SendItem<'_, T> {}

impl<T> Drop for SendItem<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.tx.chan.drop_send_op(&mut self.op);
    }
}

impl<T> fmt::Debug for SendItem<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendItem").field("pending", &self.op.is_pending()).finish_non_exhaustive()
    }
}

/// Holds a value that is only ever reached through `&mut`, so sharing `&` to its owner across
/// threads shares nothing of it (the idea of the unstable `std::sync::Exclusive`).
struct OnlyMut<T>(T);

// SAFETY: `OnlyMut` has no method taking `&self`, and its field is private to this module,
// where it is only accessed through `&mut OnlyMut` or by value; a `&OnlyMut<T>` therefore gives
// no access to the `T`, so sharing it between threads cannot race. `T: Send` is required
// because `&mut` access from another thread (via `&mut` to the owner) moves the use there.
unsafe impl<T: Send> Sync for OnlyMut<T> {}
