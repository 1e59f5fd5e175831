//! The stream traits (AnyIO's `anyio.abc` streams): object streams carry values, byte streams
//! carry bytes in arbitrary chunks. Every method takes `&self`, so one task can receive while
//! another sends; two tasks receiving (or sending) on one stream at once get
//! [`StreamError::Busy`] from implementations that cannot share a direction.
//!
//! The traits are object safe (through `async_trait`), so wrappers can hold
//! `Box<dyn ByteStream>`; concrete types keep their own inherent, unboxed methods.

use async_trait::async_trait;

use super::error::StreamError;

/// Closes `resource` without waiting (AnyIO's `aclose_forcefully`): its `aclose` runs in a
/// cancel scope that is already cancelled, so a close that would wait (a TLS closing handshake,
/// flushing to a peer that stopped reading) gives up at once and only releases the resource.
///
/// # Errors
///
/// What `aclose` reports other than the scope's own cancellation; the cancellation of an
/// enclosing scope.
///
/// # Cancel safety
///
/// Cancel safe: it never waits.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::streams::{aclose_forcefully, memory::memory_stream_pair, ByteReceiveStream};
/// let (a, b) = memory_stream_pair(1);
/// aclose_forcefully(&a).await.unwrap();
/// assert!(b.receive(1).await.is_err()); // the peer sees the end
/// # });
/// ```
pub async fn aclose_forcefully<R: AsyncResource + ?Sized>(resource: &R) -> Result<(), StreamError> {
    let scope = crate::cancel::CancelScope::new();
    scope.cancel();
    scope.run(resource.aclose()).await.map(drop)
}

/// Something that must be closed asynchronously (AnyIO's `AsyncResource.aclose`). Closing is
/// idempotent; operations on a closed resource fail with [`StreamError::Closed`].
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{streams::AsyncResource, streams::memory::create_memory_object_stream};
///
/// let (tx, _rx) = create_memory_object_stream::<u8>(1);
/// AsyncResource::aclose(&tx).await.unwrap();
/// assert!(tx.is_closed());
/// # });
/// ```
#[async_trait]
pub trait AsyncResource: super::attrs::TypedAttributeProvider + Send + Sync {
    /// Closes the resource.
    ///
    /// # Cancel safety
    ///
    /// Implementations close even when cancelled (closing is shielded where it must wait).
    async fn aclose(&self) -> Result<(), StreamError>;
}

/// Receives objects in order, reliably (AnyIO's `ObjectReceiveStream`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ObjectReceiveStream, StreamError}, streams::memory::create_memory_object_stream,
/// };
///
/// async fn first<R: ObjectReceiveStream<u8>>(r: &R) -> Result<u8, StreamError> {
///     r.receive().await
/// }
/// let (tx, rx) = create_memory_object_stream::<u8>(1);
/// tx.try_send(7).unwrap();
/// assert_eq!(first(&rx).await.unwrap(), 7);
/// # });
/// ```
#[async_trait]
pub trait ObjectReceiveStream<T: Send + 'static>: AsyncResource {
    /// Receives the next object; [`StreamError::EndOfStream`] once the sender is done.
    ///
    /// # Cancel safety
    ///
    /// Implementations document theirs; the memory object stream's is cancel safe.
    async fn receive(&self) -> Result<T, StreamError>;
}

/// Sends objects in order, reliably (AnyIO's `ObjectSendStream`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{streams::ObjectSendStream, streams::memory::create_memory_object_stream};
///
/// let (tx, rx) = create_memory_object_stream::<u8>(1);
/// ObjectSendStream::send(&tx, 3).await.unwrap();
/// assert_eq!(rx.try_receive(), Ok(3));
/// # });
/// ```
#[async_trait]
pub trait ObjectSendStream<T: Send + 'static>: AsyncResource {
    /// Sends an object.
    ///
    /// # Cancel safety
    ///
    /// Implementations document theirs; through this trait an item that was not sent is
    /// dropped (the memory stream's inherent `send` returns it instead).
    async fn send(&self, item: T) -> Result<(), StreamError>;
}

/// A bidirectional object stream that can signal "no more objects" (AnyIO's `ObjectStream`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ObjectReceiveStream, ObjectSendStream, ObjectStream, StreamError},
///     streams::memory::create_memory_object_stream, streams::stapled::StapledObjectStream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<u8>(1);
/// let both = StapledObjectStream::new(tx, rx);
/// both.send(1).await.unwrap();
/// both.send_eof().await.unwrap();
/// assert_eq!(ObjectReceiveStream::receive(&both).await.unwrap(), 1);
/// assert!(matches!(ObjectReceiveStream::receive(&both).await, Err(StreamError::EndOfStream)));
/// # });
/// ```
#[async_trait]
pub trait ObjectStream<T: Send + 'static>: ObjectReceiveStream<T> + ObjectSendStream<T> {
    /// Closes the sending direction only; idempotent.
    ///
    /// # Cancel safety
    ///
    /// As [`AsyncResource::aclose`].
    async fn send_eof(&self) -> Result<(), StreamError>;
}

/// Receives bytes in arbitrary chunks (AnyIO's `ByteReceiveStream`). The end of the stream is
/// [`StreamError::EndOfStream`], never an empty read.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ByteReceiveStream, ChunkReceiveStream},
///     streams::memory::create_memory_object_stream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(2);
/// tx.try_send(b"hello".to_vec()).unwrap();
/// let bytes = ChunkReceiveStream::new(rx);
/// assert_eq!(bytes.receive(3).await.unwrap(), b"hel");
/// assert_eq!(bytes.receive(65536).await.unwrap(), b"lo");
/// # });
/// ```
#[async_trait]
pub trait ByteReceiveStream: AsyncResource {
    /// Receives at least one and at most `buf.len()` bytes into `buf`, returning how many.
    /// An empty `buf` is [`StreamError::InvalidArgument`].
    ///
    /// # Cancel safety
    ///
    /// Implementations document theirs: a cancelled receive must not lose bytes.
    async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, StreamError>;

    /// Receives at least one and at most `max_bytes` bytes (AnyIO's `receive(max_bytes)`).
    ///
    /// # Cancel safety
    ///
    /// As [`receive_into`](Self::receive_into).
    async fn receive(&self, max_bytes: usize) -> Result<Vec<u8>, StreamError> {
        if max_bytes == 0 {
            return Err(StreamError::InvalidArgument("max_bytes must be at least 1"));
        }
        // Small first allocation for small limits; large reads reuse one buffer.
        let mut buf = vec![0; max_bytes.min(65536)];
        let n = self.receive_into(&mut buf).await?;
        buf.truncate(n);
        // A short read must not keep a 64 KiB allocation alive in the returned chunk.
        if buf.capacity() > 2 * n {
            buf.shrink_to_fit();
        }
        Ok(buf)
    }

    /// The socket under this stream, for a protocol layer that drives the stream from its own
    /// future (TLS does): [`SocketReceiver::receive_into`] is the same operation as
    /// [`receive_into`](Self::receive_into) as a named future, without the boxed future this
    /// trait's methods return. `Some` for TCP and Unix stream sockets and wrappers that
    /// receive through them unchanged; `None` (the default) for every other stream.
    ///
    /// [`SocketReceiver::receive_into`]: crate::net::SocketReceiver::receive_into
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::streams::{memory::memory_stream_pair, ByteReceiveStream};
    /// let (a, _b) = memory_stream_pair(1);
    /// assert!(a.socket_receiver().is_none()); // not a socket
    /// # });
    /// ```
    fn socket_receiver(&self) -> Option<crate::net::SocketReceiver<'_>> {
        None
    }
}

/// Sends bytes (AnyIO's `ByteSendStream`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ByteSendStream, ChunkSendStream}, streams::memory::create_memory_object_stream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(2);
/// ChunkSendStream::new(tx).send(b"hi").await.unwrap();
/// assert_eq!(rx.try_receive().unwrap(), b"hi");
/// # });
/// ```
#[async_trait]
pub trait ByteSendStream: AsyncResource {
    /// Sends all of `data`.
    ///
    /// # Cancel safety
    ///
    /// Implementations document theirs; a byte stream cancelled part-way may have sent part of
    /// `data`.
    async fn send(&self, data: &[u8]) -> Result<(), StreamError>;

    /// Sends a prefix of `data` and returns its length: at least 1 byte when `data` is not
    /// empty. A protocol layered on the stream that must know exactly what went out (TLS, so
    /// that a cancelled send never leaves half a record on the wire) sends with this.
    ///
    /// The default sends all of `data` with [`send`](Self::send). Streams whose `send` can be
    /// cancelled part-way (sockets) override it with a single write.
    ///
    /// # Cancel safety
    ///
    /// Where overridden (TCP and Unix sockets, and the wrappers that forward to them): cancel
    /// safe, since a cancelled call sent nothing. The default is as cancel safe as `send`,
    /// which is exact for streams that send a chunk whole or not at all (memory streams).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     streams::{ByteSendStream, ChunkSendStream}, streams::memory::create_memory_object_stream,
    /// };
    ///
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(2);
    /// let tx = ChunkSendStream::new(tx);
    /// let data = b"hello";
    /// let mut sent = 0;
    /// while sent < data.len() {
    ///     sent += tx.send_some(&data[sent..]).await.unwrap();
    /// }
    /// assert_eq!(rx.try_receive().unwrap(), b"hello");
    /// # });
    /// ```
    async fn send_some(&self, data: &[u8]) -> Result<usize, StreamError> {
        self.send(data).await.map(|()| data.len())
    }

    /// Sends a prefix of `bufs` (taken in order, as one byte string) if the stream takes it
    /// at once, and returns its length; `Ok(None)` when it would have to wait, or has no
    /// way to send without waiting. Never waits.
    ///
    /// It is the path for a layer that produces its output into a callback: TLS writes each
    /// record straight from its engine's buffers into the socket with it, and falls back to
    /// copying and [`send_some`](Self::send_some) on `None`. The default returns `None`;
    /// TCP and Unix sockets (and the wrappers that forward to them) override it with one
    /// vectored write.
    ///
    /// # Errors
    ///
    /// As [`send_some`](Self::send_some); [`StreamError::Busy`] while another task's send
    /// is in progress.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::io::IoSlice;
    /// use anyio::net::{connect_tcp, TcpListener};
    /// use anyio::streams::{ByteReceiveStream, ByteSendStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// let port = listener.local_addr().unwrap().port();
    /// let (client, server) = futures::join!(connect_tcp("127.0.0.1", port), listener.accept());
    /// let (client, server) = (client.unwrap(), server.unwrap());
    /// // An empty socket buffer takes a few bytes at once.
    /// let sent = client.try_send_vectored(&[IoSlice::new(b"he"), IoSlice::new(b"llo")]).unwrap();
    /// assert_eq!(sent, Some(5));
    /// let mut buf = [0u8; 5];
    /// let mut got = 0;
    /// while got < 5 {
    ///     got += server.receive_into(&mut buf[got..]).await.unwrap();
    /// }
    /// assert_eq!(&buf, b"hello");
    /// # });
    /// ```
    fn try_send_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> Result<Option<usize>, StreamError> {
        let _ = bufs;
        Ok(None)
    }
}

/// A bidirectional byte stream with half-close (AnyIO's `ByteStream`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ByteStream, ChunkReceiveStream, ChunkSendStream},
///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(2);
/// let pipe = StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx));
/// pipe.send_eof().await.unwrap();
/// # });
/// ```
#[async_trait]
pub trait ByteStream: ByteReceiveStream + ByteSendStream {
    /// Closes the sending direction only; the peer then sees the end of the stream.
    ///
    /// # Cancel safety
    ///
    /// As [`AsyncResource::aclose`].
    async fn send_eof(&self) -> Result<(), StreamError>;
}
