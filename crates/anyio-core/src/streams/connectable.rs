//! Connectables (AnyIO's `ByteStreamConnectable` and `ObjectStreamConnectable`): a value that
//! knows where to connect, so that a client can be handed "how to reach the server" instead of
//! a stream, and reconnect with it. Sockets' connectables are in [`net`](crate::net); this
//! module has the traits and the wrappers that add buffering or text on top of any
//! connectable.

use std::error::Error as StdError;
use std::future::Future;

use super::buffered::BufferedByteStream;
use super::text::TextStream;
use super::{ByteStream, ObjectStream};

/// Connects to make a byte stream (AnyIO's `abc.ByteStreamConnectable`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::net::TcpConnectable;
/// use anyio::streams::{ByteStreamConnectable, ByteSendStream};
///
/// async fn hello<C: ByteStreamConnectable>(server: &C) -> Result<(), Box<dyn std::error::Error>> {
///     let stream = server.connect().await?;
///     stream.send(b"hello").await?;
///     Ok(())
/// }
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// hello(&TcpConnectable::new("127.0.0.1", listener.local_addr()?.port())?).await.unwrap();
/// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
/// ```
pub trait ByteStreamConnectable: Send + Sync {
    /// The stream a connection gives.
    type Stream: ByteStream + 'static;
    /// Why connecting failed (AnyIO's `ConnectionFailed`).
    type Error: StdError + Send + Sync + 'static;

    /// Connects, and returns the new stream.
    ///
    /// # Cancel safety
    ///
    /// Implementations close whatever they opened when cancelled.
    fn connect(&self) -> impl Future<Output = Result<Self::Stream, Self::Error>> + Send;
}

/// Connects to make a stream of objects (AnyIO's `abc.ObjectStreamConnectable`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::net::TcpConnectable;
/// use anyio::streams::{ObjectStreamConnectable, ObjectSendStream, text::TextConnectable};
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let text = TextConnectable::new(TcpConnectable::new("127.0.0.1", listener.local_addr()?.port())?);
/// let stream = text.connect().await?;
/// stream.send("hello".to_owned()).await.unwrap();
/// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
/// ```
pub trait ObjectStreamConnectable<T: Send + 'static>: Send + Sync {
    /// The stream a connection gives.
    type Stream: ObjectStream<T> + 'static;
    /// Why connecting failed (AnyIO's `ConnectionFailed`).
    type Error: StdError + Send + Sync + 'static;

    /// Connects, and returns the new stream.
    ///
    /// # Cancel safety
    ///
    /// Implementations close whatever they opened when cancelled.
    fn connect(&self) -> impl Future<Output = Result<Self::Stream, Self::Error>> + Send;
}

/// Connects with another connectable and buffers the stream (AnyIO's `BufferedConnectable`):
/// its streams are [`BufferedByteStream`]s, with `receive_exactly` and `receive_until`.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::net::TcpConnectable;
/// use anyio::streams::{buffered::BufferedConnectable, ByteStreamConnectable};
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let buffered = BufferedConnectable::new(TcpConnectable::new("127.0.0.1", listener.local_addr()?.port())?);
/// let stream = buffered.connect().await?;
/// # drop(stream);
/// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct BufferedConnectable<C> {
    inner: C,
}

impl<C> BufferedConnectable<C> {
    /// Buffers the streams `inner` connects.
    pub fn new(inner: C) -> Self {
        Self { inner }
    }

    /// The connectable it wraps.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }
}

impl<C: ByteStreamConnectable> ByteStreamConnectable for BufferedConnectable<C> {
    type Stream = BufferedByteStream<C::Stream>;
    type Error = C::Error;

    /// # Cancel safety
    ///
    /// As the inner connectable's.
    async fn connect(&self) -> Result<Self::Stream, Self::Error> {
        Ok(BufferedByteStream::new(self.inner.connect().await?))
    }
}

/// Connects with a byte-stream connectable and speaks UTF-8 text over it (AnyIO's
/// `TextConnectable`): its streams are [`TextStream`]s of `String`.
///
/// # Examples
///
/// See [`ObjectStreamConnectable`].
#[derive(Clone, Debug)]
pub struct TextConnectable<C> {
    inner: C,
}

impl<C> TextConnectable<C> {
    /// Text over the streams `inner` connects.
    pub fn new(inner: C) -> Self {
        Self { inner }
    }

    /// The connectable it wraps.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }
}

impl<C: ByteStreamConnectable> ObjectStreamConnectable<String> for TextConnectable<C> {
    type Stream = TextStream<C::Stream>;
    type Error = C::Error;

    /// # Cancel safety
    ///
    /// As the inner connectable's.
    async fn connect(&self) -> Result<Self::Stream, Self::Error> {
        Ok(TextStream::new(self.inner.connect().await?))
    }
}
