//! Memory object streams: AnyIO's `create_memory_object_stream`, a multi-producer,
//! multi-consumer channel whose buffer is 0 (rendezvous), bounded or unbounded.
//!
//! Items are delivered in FIFO order, each to exactly one receiver; a send hands its item
//! straight to the oldest waiting receiver when there is one. Waiting senders and receivers are
//! served in arrival order. Nothing is lost to cancellation: see each operation's
//! `# Cancel safety` section.

mod error;
mod receive;
mod send;
mod state;

#[cfg(all(test, loom))]
mod loom_tests;

use std::sync::Arc;

pub use error::{ReceiveError, SendError, TryReceiveError, TrySendError};
pub use receive::{MemoryObjectReceiveStream, ReceiveItem};
pub use send::{MemoryObjectSendStream, SendItem};

use state::{Chan, Snapshot};

/// How many items a memory object stream buffers before a send has to wait.
///
/// `0` (the default) makes a rendezvous channel: each send waits until a receiver takes its item.
/// A plain `usize` converts into `Bounded`.
///
/// # Examples
///
/// ```
/// use anyio::streams::memory::BufferSize;
/// assert_eq!(BufferSize::from(16), BufferSize::Bounded(16));
/// assert_eq!(BufferSize::default(), BufferSize::Bounded(0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferSize {
    /// At most this many items wait in the buffer.
    Bounded(usize),
    /// The buffer grows without limit: sends never wait.
    Unbounded,
}

impl Default for BufferSize {
    fn default() -> Self {
        BufferSize::Bounded(0)
    }
}

impl From<usize> for BufferSize {
    fn from(n: usize) -> Self {
        BufferSize::Bounded(n)
    }
}

impl BufferSize {
    fn limit(self) -> usize {
        match self {
            BufferSize::Bounded(n) => n,
            BufferSize::Unbounded => usize::MAX,
        }
    }

    fn from_limit(n: usize) -> Self {
        if n == usize::MAX {
            BufferSize::Unbounded
        } else {
            BufferSize::Bounded(n)
        }
    }
}

/// Creates a memory object stream: a send half and a receive half sharing a buffer of
/// `max_buffer_size` items (AnyIO's `create_memory_object_stream`).
///
/// Clone either half for more producers or consumers. The stream ends for receivers once every
/// send handle is closed or dropped and the buffer is drained; senders get
/// [`SendError::Broken`] once every receive handle is closed or dropped.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{task_group, AnyError, streams::memory::create_memory_object_stream};
///
/// let (tx, rx) = create_memory_object_stream::<u32>(0); // rendezvous
/// let total = task_group(|tg| async move {
///     tg.spawn(async move {
///         for i in 1..=3 {
///             tx.send(i).await?;
///         }
///         Ok::<_, AnyError>(()) // dropping `tx` ends the stream
///     });
///     let mut total = 0;
///     while let Ok(i) = rx.receive().await {
///         total += i;
///     }
///     Ok::<_, AnyError>(total)
/// })
/// .await
/// .unwrap();
/// assert_eq!(total, Some(6)); // `None` had the group been cancelled
/// # });
/// ```
pub fn create_memory_object_stream<T>(
    max_buffer_size: impl Into<BufferSize>,
) -> (MemoryObjectSendStream<T>, MemoryObjectReceiveStream<T>) {
    let chan = Arc::new(Chan::new(max_buffer_size.into().limit()));
    (MemoryObjectSendStream::new(chan.clone()), MemoryObjectReceiveStream::new(chan))
}

/// A snapshot of a memory object stream's state, from
/// [`MemoryObjectSendStream::statistics`] or [`MemoryObjectReceiveStream::statistics`].
///
/// # Examples
///
/// ```
/// use anyio::streams::memory::{create_memory_object_stream, BufferSize};
///
/// let (tx, rx) = create_memory_object_stream::<u8>(2);
/// tx.try_send(1).unwrap();
/// let stats = rx.statistics();
/// assert_eq!(stats.current_buffer_used, 1);
/// assert_eq!(stats.max_buffer_size, BufferSize::Bounded(2));
/// assert_eq!((stats.open_send_streams, stats.open_receive_streams), (1, 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryObjectStreamStatistics {
    /// Items in the buffer now.
    pub current_buffer_used: usize,
    /// The buffer's capacity.
    pub max_buffer_size: BufferSize,
    /// Send handles not yet closed.
    pub open_send_streams: usize,
    /// Receive handles not yet closed.
    pub open_receive_streams: usize,
    /// Tasks waiting in `send`.
    pub tasks_waiting_send: usize,
    /// Tasks waiting in `receive`.
    pub tasks_waiting_receive: usize,
}

impl From<Snapshot> for MemoryObjectStreamStatistics {
    fn from(s: Snapshot) -> Self {
        Self {
            current_buffer_used: s.buffer_used,
            max_buffer_size: BufferSize::from_limit(s.max),
            open_send_streams: s.senders,
            open_receive_streams: s.receivers,
            tasks_waiting_send: s.waiting_send,
            tasks_waiting_receive: s.waiting_receive,
        }
    }
}

/// Memory streams have no typed attributes.
impl<T> crate::streams::TypedAttributeProvider for MemoryObjectSendStream<T> {}
/// Memory streams have no typed attributes.
impl<T> crate::streams::TypedAttributeProvider for MemoryObjectReceiveStream<T> {}

#[async_trait::async_trait]
impl<T: Send + 'static> crate::streams::abc::AsyncResource for MemoryObjectSendStream<T> {
    /// Closes this handle (never fails, never waits).
    async fn aclose(&self) -> Result<(), crate::streams::StreamError> {
        Self::aclose(self).await
    }
}

#[async_trait::async_trait]
impl<T: Send + 'static> crate::streams::abc::AsyncResource for MemoryObjectReceiveStream<T> {
    /// Closes this handle (never fails, never waits).
    async fn aclose(&self) -> Result<(), crate::streams::StreamError> {
        Self::aclose(self).await
    }
}

#[async_trait::async_trait]
impl<T: Send + 'static> crate::streams::abc::ObjectSendStream<T> for MemoryObjectSendStream<T> {
    /// [`MemoryObjectSendStream::send`], dropping the item on failure.
    async fn send(&self, item: T) -> Result<(), crate::streams::StreamError> {
        MemoryObjectSendStream::send(self, item).await.map_err(Into::into)
    }
}

#[async_trait::async_trait]
impl<T: Send + 'static> crate::streams::abc::ObjectReceiveStream<T> for MemoryObjectReceiveStream<T> {
    /// [`MemoryObjectReceiveStream::receive`]; cancel safe.
    async fn receive(&self) -> Result<T, crate::streams::StreamError> {
        MemoryObjectReceiveStream::receive(self).await.map_err(Into::into)
    }
}

/// One end of a connected pair of in-memory byte streams ([`memory_stream_pair`]).
pub type MemoryByteStream = crate::streams::stapled::StapledByteStream<
    crate::streams::ChunkSendStream<MemoryObjectSendStream<Vec<u8>>>,
    crate::streams::ChunkReceiveStream<MemoryObjectReceiveStream<Vec<u8>>>,
>;

/// Two byte streams connected to each other in memory, like a socket pair (trio's
/// `memory_stream_pair`): what one sends the other receives. Each direction buffers up to
/// `max_chunks` sends before a sender waits. Useful to test a protocol, TLS included, without
/// a network.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::streams::{memory::memory_stream_pair, ByteReceiveStream, ByteSendStream, ByteStream};
/// let (a, b) = memory_stream_pair(4);
/// a.send(b"ping").await.unwrap();
/// assert_eq!(b.receive(10).await.unwrap(), b"ping");
/// b.send_eof().await.unwrap();
/// assert!(a.receive(10).await.is_err()); // end of stream
/// # });
/// ```
pub fn memory_stream_pair(max_chunks: usize) -> (MemoryByteStream, MemoryByteStream) {
    use crate::streams::{stapled::StapledByteStream, ChunkReceiveStream, ChunkSendStream};
    let (a_tx, b_rx) = create_memory_object_stream::<Vec<u8>>(max_chunks);
    let (b_tx, a_rx) = create_memory_object_stream::<Vec<u8>>(max_chunks);
    (
        StapledByteStream::new(ChunkSendStream::new(a_tx), ChunkReceiveStream::new(a_rx)),
        StapledByteStream::new(ChunkSendStream::new(b_tx), ChunkReceiveStream::new(b_rx)),
    )
}
