//! Byte streams over object streams of byte chunks: AnyIO lets byte-stream code consume an
//! `ObjectReceiveStream[bytes]`; these adapters make that explicit and typed.

use async_trait::async_trait;

use super::abc::{AsyncResource, ByteReceiveStream, ByteSendStream, ObjectReceiveStream, ObjectSendStream};
use super::error::StreamError;
use crate::loom::{lock, Mutex};
use crate::sync::ResourceGuard;

/// A [`ByteReceiveStream`] over an object stream of `Vec<u8>` chunks. A chunk larger than the
/// receiver's buffer is kept and handed out over the next receives; empty chunks are skipped.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ByteReceiveStream, ChunkReceiveStream, StreamError},
///     streams::memory::create_memory_object_stream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(4);
/// tx.try_send(b"abc".to_vec()).unwrap();
/// drop(tx);
/// let bytes = ChunkReceiveStream::new(rx);
/// let mut buf = [0; 2];
/// assert_eq!(bytes.receive_into(&mut buf).await.unwrap(), 2);
/// assert_eq!(bytes.receive(10).await.unwrap(), b"c");
/// assert!(matches!(bytes.receive(10).await, Err(StreamError::EndOfStream)));
/// # });
/// ```
#[derive(Debug)]
pub struct ChunkReceiveStream<R> {
    inner: R,
    /// The rest of a chunk that did not fit, and how much of it was handed out.
    leftover: Mutex<(Vec<u8>, usize)>,
    guard: ResourceGuard,
}

impl<R> ChunkReceiveStream<R> {
    /// Wraps an object stream of chunks.
    ///
    /// ```
    /// let (_tx, rx) = anyio::streams::memory::create_memory_object_stream::<Vec<u8>>(1);
    /// let _bytes = anyio::streams::ChunkReceiveStream::new(rx);
    /// ```
    pub fn new(inner: R) -> Self {
        Self { inner, leftover: Mutex::new((Vec::new(), 0)), guard: ResourceGuard::new("receiving from") }
    }

    /// The wrapped stream.
    ///
    /// ```
    /// let (_tx, rx) = anyio::streams::memory::create_memory_object_stream::<Vec<u8>>(1);
    /// assert!(!anyio::streams::ChunkReceiveStream::new(rx).get_ref().is_closed());
    /// ```
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    fn take_leftover(&self, buf: &mut [u8]) -> usize {
        let mut l = lock(&self.leftover);
        let (chunk, pos) = &mut *l;
        let n = buf.len().min(chunk.len() - *pos);
        buf[..n].copy_from_slice(&chunk[*pos..*pos + n]);
        *pos += n;
        if *pos == chunk.len() {
            chunk.clear();
            *pos = 0;
        }
        n
    }
}

impl<R: super::attrs::TypedAttributeProvider> super::attrs::TypedAttributeProvider for ChunkReceiveStream<R> {
    /// Forwarded to the wrapped stream.
    fn extra_attribute(&self, key: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        self.inner.extra_attribute(key)
    }
}

#[async_trait]
impl<R: AsyncResource> AsyncResource for ChunkReceiveStream<R> {
    async fn aclose(&self) -> Result<(), StreamError> {
        self.inner.aclose().await
    }
}

#[async_trait]
impl<R: ObjectReceiveStream<Vec<u8>>> ByteReceiveStream for ChunkReceiveStream<R> {
    /// Cancel safe: the inner receive is, and a received chunk is stored before anything else
    /// can be cancelled.
    async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, StreamError> {
        if buf.is_empty() {
            return Err(StreamError::InvalidArgument("the receive buffer must hold at least 1 byte"));
        }
        let _busy = self.guard.enter()?;
        let n = self.take_leftover(buf);
        if n > 0 {
            return Ok(n);
        }
        loop {
            let chunk = self.inner.receive().await?;
            if chunk.is_empty() {
                continue;
            }
            *lock(&self.leftover) = (chunk, 0);
            return Ok(self.take_leftover(buf));
        }
    }
}

/// A [`ByteSendStream`] that sends each `send` as one `Vec<u8>` chunk to an object stream.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ByteSendStream, ChunkSendStream}, streams::memory::create_memory_object_stream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
/// ChunkSendStream::new(tx).send(b"x").await.unwrap();
/// assert_eq!(rx.try_receive().unwrap(), b"x");
/// # });
/// ```
#[derive(Debug)]
pub struct ChunkSendStream<S> {
    inner: S,
    /// Set by `aclose`: an empty send never reaches the inner stream, so it checks this.
    closed: std::sync::atomic::AtomicBool,
}

impl<S> ChunkSendStream<S> {
    /// Wraps an object stream of chunks.
    ///
    /// ```
    /// let (tx, _rx) = anyio::streams::memory::create_memory_object_stream::<Vec<u8>>(1);
    /// let _bytes = anyio::streams::ChunkSendStream::new(tx);
    /// ```
    pub fn new(inner: S) -> Self {
        Self { inner, closed: std::sync::atomic::AtomicBool::new(false) }
    }

    /// The wrapped stream.
    ///
    /// ```
    /// let (tx, _rx) = anyio::streams::memory::create_memory_object_stream::<Vec<u8>>(1);
    /// assert!(!anyio::streams::ChunkSendStream::new(tx).get_ref().is_closed());
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: super::attrs::TypedAttributeProvider> super::attrs::TypedAttributeProvider for ChunkSendStream<S> {
    /// Forwarded to the wrapped stream.
    fn extra_attribute(&self, key: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        self.inner.extra_attribute(key)
    }
}

#[async_trait]
impl<S: AsyncResource> AsyncResource for ChunkSendStream<S> {
    async fn aclose(&self) -> Result<(), StreamError> {
        self.closed.store(true, std::sync::atomic::Ordering::Release);
        self.inner.aclose().await
    }
}

#[async_trait]
impl<S: ObjectSendStream<Vec<u8>>> ByteSendStream for ChunkSendStream<S> {
    /// Cancel safe as the inner send: either the whole chunk was sent or none of it.
    async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        if data.is_empty() {
            // Nothing to send, but a closed stream still says so.
            crate::lowlevel::checkpoint_if_cancelled()?;
            if self.closed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(StreamError::Closed);
            }
            return Ok(());
        }
        self.inner.send(data.to_vec()).await
    }
}
