//! Stapled streams: a send half and a receive half used as one bidirectional stream.

use async_trait::async_trait;

use super::abc::{
    AsyncResource, ByteReceiveStream, ByteSendStream, ByteStream, ObjectReceiveStream, ObjectSendStream,
    ObjectStream,
};
use super::error::StreamError;

/// An [`ObjectStream`] made of a send half and a receive half (AnyIO's `StapledObjectStream`).
/// `send_eof` closes the send half; `aclose` closes both (the receive half even if closing
/// the send half failed).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{AsyncResource, ObjectSendStream}, streams::memory::create_memory_object_stream,
///     streams::stapled::StapledObjectStream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<u8>(1);
/// let s = StapledObjectStream::new(tx, rx);
/// s.send(1).await.unwrap();
/// s.aclose().await.unwrap();
/// assert!(s.send_half().is_closed() && s.receive_half().is_closed());
/// # });
/// ```
#[derive(Debug)]
pub struct StapledObjectStream<S, R> {
    send: S,
    receive: R,
}

impl<S, R> StapledObjectStream<S, R> {
    /// Staples `send` and `receive` together.
    ///
    /// ```
    /// let (tx, rx) = anyio::streams::memory::create_memory_object_stream::<u8>(1);
    /// let _s = anyio::streams::stapled::StapledObjectStream::new(tx, rx);
    /// ```
    pub fn new(send: S, receive: R) -> Self {
        Self { send, receive }
    }

    /// The send half.
    ///
    /// ```
    /// let (tx, rx) = anyio::streams::memory::create_memory_object_stream::<u8>(1);
    /// assert!(!anyio::streams::stapled::StapledObjectStream::new(tx, rx).send_half().is_closed());
    /// ```
    pub fn send_half(&self) -> &S {
        &self.send
    }

    /// The receive half.
    ///
    /// ```
    /// let (tx, rx) = anyio::streams::memory::create_memory_object_stream::<u8>(1);
    /// assert!(!anyio::streams::stapled::StapledObjectStream::new(tx, rx).receive_half().is_closed());
    /// ```
    pub fn receive_half(&self) -> &R {
        &self.receive
    }

    /// The two halves.
    ///
    /// ```
    /// let (tx, rx) = anyio::streams::memory::create_memory_object_stream::<u8>(1);
    /// let (_tx, _rx) = anyio::streams::stapled::StapledObjectStream::new(tx, rx).into_inner();
    /// ```
    pub fn into_inner(self) -> (S, R) {
        (self.send, self.receive)
    }
}

async fn close_both(a: &dyn AsyncResource, b: &dyn AsyncResource) -> Result<(), StreamError> {
    let first = a.aclose().await;
    let second = b.aclose().await;
    first.and(second)
}

impl<S: super::attrs::TypedAttributeProvider, R: super::attrs::TypedAttributeProvider>
    super::attrs::TypedAttributeProvider for StapledObjectStream<S, R>
{
    /// The send half's answer, else the receive half's (AnyIO merges both).
    fn extra_attribute(&self, key: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        self.send.extra_attribute(key).or_else(|| self.receive.extra_attribute(key))
    }
}

#[async_trait]
impl<S: AsyncResource, R: AsyncResource> AsyncResource for StapledObjectStream<S, R> {
    async fn aclose(&self) -> Result<(), StreamError> {
        close_both(&self.send, &self.receive).await
    }
}

#[async_trait]
impl<T: Send + 'static, S: AsyncResource, R: ObjectReceiveStream<T>> ObjectReceiveStream<T>
    for StapledObjectStream<S, R>
{
    /// Cancel safe as the receive half.
    async fn receive(&self) -> Result<T, StreamError> {
        self.receive.receive().await
    }
}

#[async_trait]
impl<T: Send + 'static, S: ObjectSendStream<T>, R: AsyncResource> ObjectSendStream<T>
    for StapledObjectStream<S, R>
{
    /// Cancel safe as the send half.
    async fn send(&self, item: T) -> Result<(), StreamError> {
        self.send.send(item).await
    }
}

#[async_trait]
impl<T: Send + 'static, S: ObjectSendStream<T>, R: ObjectReceiveStream<T>> ObjectStream<T>
    for StapledObjectStream<S, R>
{
    async fn send_eof(&self) -> Result<(), StreamError> {
        self.send.aclose().await
    }
}

/// A [`ByteStream`] made of a send half and a receive half (AnyIO's `StapledByteStream`).
/// `send_eof` closes the send half; `aclose` closes both.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ByteReceiveStream, ByteSendStream, ChunkReceiveStream, ChunkSendStream},
///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(4);
/// let loopback = StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx));
/// loopback.send(b"ping").await.unwrap();
/// assert_eq!(loopback.receive(64).await.unwrap(), b"ping");
/// # });
/// ```
#[derive(Debug)]
pub struct StapledByteStream<S, R> {
    send: S,
    receive: R,
}

impl<S, R> StapledByteStream<S, R> {
    /// Staples `send` and `receive` together.
    ///
    /// ```
    /// use anyio::{
    ///     streams::{ChunkReceiveStream, ChunkSendStream},
    ///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let _s = StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx));
    /// ```
    pub fn new(send: S, receive: R) -> Self {
        Self { send, receive }
    }

    /// The send half.
    ///
    /// ```
    /// use anyio::{
    ///     streams::{ChunkReceiveStream, ChunkSendStream},
    ///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let s = StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx));
    /// assert!(!s.send_half().get_ref().is_closed());
    /// ```
    pub fn send_half(&self) -> &S {
        &self.send
    }

    /// The receive half.
    ///
    /// ```
    /// use anyio::{
    ///     streams::{ChunkReceiveStream, ChunkSendStream},
    ///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let s = StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx));
    /// assert!(!s.receive_half().get_ref().is_closed());
    /// ```
    pub fn receive_half(&self) -> &R {
        &self.receive
    }
}

impl<S: super::attrs::TypedAttributeProvider, R: super::attrs::TypedAttributeProvider>
    super::attrs::TypedAttributeProvider for StapledByteStream<S, R>
{
    /// The send half's answer, else the receive half's (AnyIO merges both).
    fn extra_attribute(&self, key: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        self.send.extra_attribute(key).or_else(|| self.receive.extra_attribute(key))
    }
}

#[async_trait]
impl<S: AsyncResource, R: AsyncResource> AsyncResource for StapledByteStream<S, R> {
    async fn aclose(&self) -> Result<(), StreamError> {
        close_both(&self.send, &self.receive).await
    }
}

#[async_trait]
impl<S: AsyncResource, R: ByteReceiveStream> ByteReceiveStream for StapledByteStream<S, R> {
    /// Cancel safe as the receive half.
    async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, StreamError> {
        self.receive.receive_into(buf).await
    }

    fn socket_receiver(&self) -> Option<crate::net::SocketReceiver<'_>> {
        self.receive.socket_receiver()
    }
}

#[async_trait]
impl<S: ByteSendStream, R: AsyncResource> ByteSendStream for StapledByteStream<S, R> {
    /// Cancel safe as the send half.
    async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        self.send.send(data).await
    }

    /// Cancel safe as the send half's.
    async fn send_some(&self, data: &[u8]) -> Result<usize, StreamError> {
        self.send.send_some(data).await
    }

    /// Forwards to the wrapped stream's.
    fn try_send_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> Result<Option<usize>, StreamError> {
        self.send.try_send_vectored(bufs)
    }
}

#[async_trait]
impl<S: ByteSendStream, R: ByteReceiveStream> ByteStream for StapledByteStream<S, R> {
    async fn send_eof(&self) -> Result<(), StreamError> {
        self.send.aclose().await
    }
}
