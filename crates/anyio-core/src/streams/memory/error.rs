//! What memory object stream operations return when they do not send or receive.

use std::error::Error as StdError;
use std::fmt;

use crate::error::WouldBlock;
use crate::error::{AnyError, AsCancelled, BrokenResourceError, Cancelled, ClosedResourceError, EndOfStream};
use crate::streams::StreamError;

/// Why [`MemoryObjectSendStream::send`](super::MemoryObjectSendStream::send) did not send. The
/// item always comes back ([`into_inner`](Self::into_inner)): nothing is lost.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::streams::memory::{create_memory_object_stream, SendError};
///
/// let (tx, rx) = create_memory_object_stream::<String>(1);
/// drop(rx);
/// let err = tx.send("hello".to_owned()).await.unwrap_err();
/// assert!(matches!(err, SendError::Broken(_)));
/// assert_eq!(err.into_inner(), "hello");
/// # });
/// ```
#[non_exhaustive]
pub enum SendError<T> {
    /// This send handle was closed ([`close`](super::MemoryObjectSendStream::close)).
    Closed(T),
    /// Every receive handle is closed: nobody can receive the item.
    Broken(T),
    /// The enclosing cancel scope was cancelled before the item was sent.
    Cancelled(T, Cancelled),
}

impl<T> SendError<T> {
    /// The item that was not sent.
    ///
    /// ```
    /// let e = anyio::streams::memory::SendError::Broken(7);
    /// assert_eq!(e.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(t) | SendError::Broken(t) | SendError::Cancelled(t, _) => t,
        }
    }

    /// A reference to the item that was not sent.
    ///
    /// ```
    /// let e = anyio::streams::memory::SendError::Closed(7);
    /// assert_eq!(*e.item(), 7);
    /// ```
    pub fn item(&self) -> &T {
        match self {
            SendError::Closed(t) | SendError::Broken(t) | SendError::Cancelled(t, _) => t,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Broken(_) => f.write_str("Broken(..)"),
            SendError::Cancelled(_, c) => f.debug_tuple("Cancelled").field(&"..").field(c).finish(),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => write!(f, "cannot send: {ClosedResourceError}"),
            SendError::Broken(_) => {
                f.write_str("cannot send: every receiver of the memory object stream is closed")
            }
            SendError::Cancelled(_, c) => write!(f, "send not done: {c}"),
        }
    }
}

impl<T> StdError for SendError<T> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SendError::Cancelled(_, c) => Some(c),
            _ => None,
        }
    }
}

impl<T> AsCancelled for SendError<T> {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            SendError::Cancelled(_, c) => Some(c),
            _ => None,
        }
    }
}

/// Drops the item; cancellation stays recognisable.
impl<T> From<SendError<T>> for AnyError {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Closed(_) => AnyError::other(ClosedResourceError),
            SendError::Broken(_) => AnyError::other(BrokenResourceError),
            SendError::Cancelled(_, c) => c.into(),
        }
    }
}

/// Why [`MemoryObjectSendStream::try_send`](super::MemoryObjectSendStream::try_send) did
/// not send. The item comes back.
///
/// # Examples
///
/// ```
/// use anyio::streams::memory::{create_memory_object_stream, TrySendError};
///
/// let (tx, _rx) = create_memory_object_stream::<u8>(0);
/// // Buffer 0 and nobody receiving: sending would have to wait.
/// assert!(matches!(tx.try_send(1), Err(TrySendError::WouldBlock(1))));
/// ```
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The buffer is full and no receiver is waiting.
    WouldBlock(T),
    /// This send handle was closed.
    Closed(T),
    /// Every receive handle is closed.
    Broken(T),
}

impl<T> TrySendError<T> {
    /// The item that was not sent.
    ///
    /// ```
    /// assert_eq!(anyio::streams::memory::TrySendError::WouldBlock(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::WouldBlock(t) | TrySendError::Closed(t) | TrySendError::Broken(t) => t,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::WouldBlock(_) => f.write_str("WouldBlock(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
            TrySendError::Broken(_) => f.write_str("Broken(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::WouldBlock(_) => {
                f.write_str("cannot send without waiting: the buffer is full and no receiver is waiting")
            }
            TrySendError::Closed(_) => write!(f, "cannot send: {ClosedResourceError}"),
            TrySendError::Broken(_) => {
                f.write_str("cannot send: every receiver of the memory object stream is closed")
            }
        }
    }
}

impl<T> StdError for TrySendError<T> {}

/// Drops the item.
impl<T> From<TrySendError<T>> for AnyError {
    fn from(e: TrySendError<T>) -> Self {
        match e {
            TrySendError::WouldBlock(_) => AnyError::other(WouldBlock),
            TrySendError::Closed(_) => AnyError::other(ClosedResourceError),
            TrySendError::Broken(_) => AnyError::other(BrokenResourceError),
        }
    }
}

/// Why [`MemoryObjectReceiveStream::receive`](super::MemoryObjectReceiveStream::receive)
/// returned no item. No item was taken from the stream.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::streams::memory::{create_memory_object_stream, ReceiveError};
///
/// let (tx, rx) = create_memory_object_stream::<u8>(4);
/// tx.send(1).await.unwrap();
/// drop(tx);
/// assert_eq!(rx.receive().await, Ok(1)); // the buffer drains first
/// assert_eq!(rx.receive().await, Err(ReceiveError::EndOfStream));
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiveError {
    /// This receive handle was closed ([`close`](super::MemoryObjectReceiveStream::close)).
    Closed,
    /// Every send handle is closed and the buffer is empty.
    EndOfStream,
    /// The enclosing cancel scope was cancelled before an item arrived.
    Cancelled(Cancelled),
}

impl fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiveError::Closed => write!(f, "cannot receive: {ClosedResourceError}"),
            ReceiveError::EndOfStream => EndOfStream.fmt(f),
            ReceiveError::Cancelled(c) => write!(f, "receive not done: {c}"),
        }
    }
}

impl StdError for ReceiveError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ReceiveError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl AsCancelled for ReceiveError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            ReceiveError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl From<ReceiveError> for AnyError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::Closed => AnyError::other(ClosedResourceError),
            ReceiveError::EndOfStream => AnyError::other(EndOfStream),
            ReceiveError::Cancelled(c) => c.into(),
        }
    }
}

/// Why [`MemoryObjectReceiveStream::try_receive`](super::MemoryObjectReceiveStream::try_receive)
/// returned no item.
///
/// # Examples
///
/// ```
/// use anyio::streams::memory::{create_memory_object_stream, TryReceiveError};
///
/// let (_tx, rx) = create_memory_object_stream::<u8>(4);
/// assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryReceiveError {
    /// Nothing is buffered and no sender is waiting.
    WouldBlock,
    /// This receive handle was closed.
    Closed,
    /// Every send handle is closed and the buffer is empty.
    EndOfStream,
}

impl fmt::Display for TryReceiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryReceiveError::WouldBlock => {
                f.write_str("cannot receive without waiting: nothing is buffered and no sender is waiting")
            }
            TryReceiveError::Closed => write!(f, "cannot receive: {ClosedResourceError}"),
            TryReceiveError::EndOfStream => EndOfStream.fmt(f),
        }
    }
}

impl StdError for TryReceiveError {}

impl From<TryReceiveError> for AnyError {
    fn from(e: TryReceiveError) -> Self {
        match e {
            TryReceiveError::WouldBlock => AnyError::other(WouldBlock),
            TryReceiveError::Closed => AnyError::other(ClosedResourceError),
            TryReceiveError::EndOfStream => AnyError::other(EndOfStream),
        }
    }
}

// The conversions into the byte/object streams' error live here, beside the memory stream
// errors, so that `streams::error` does not depend on this module.
impl From<ReceiveError> for StreamError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::Closed => StreamError::Closed,
            ReceiveError::EndOfStream => StreamError::EndOfStream,
            ReceiveError::Cancelled(c) => StreamError::Cancelled(c),
        }
    }
}

/// Drops the unsent item.
impl<T> From<SendError<T>> for StreamError {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Closed(_) => StreamError::Closed,
            SendError::Broken(_) => StreamError::Broken(None),
            SendError::Cancelled(_, c) => StreamError::Cancelled(c),
        }
    }
}
