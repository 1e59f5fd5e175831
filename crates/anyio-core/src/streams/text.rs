//! Text streams: UTF-8 strings over byte streams, decoded incrementally (AnyIO's
//! `anyio.streams.text`, with UTF-8 and strict errors).

pub use super::connectable::TextConnectable;

use std::io;

use async_trait::async_trait;

use super::abc::{
    AsyncResource, ByteReceiveStream, ByteSendStream, ByteStream, ObjectReceiveStream, ObjectSendStream,
    ObjectStream,
};
use super::error::StreamError;
use crate::loom::{lock, Mutex};

/// The most bytes one `receive` reads from the byte stream.
const READ_SIZE: usize = 65536;

/// Receives strings decoded from a byte stream (AnyIO's `TextReceiveStream`). Each receive
/// returns at least one whole character; a character split across reads is completed by the
/// next read. Invalid UTF-8 is an [`io::ErrorKind::InvalidData`] error
/// ([`StreamError::Io`]), as is a stream that ends inside a character.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ChunkReceiveStream, ObjectReceiveStream},
///     streams::memory::create_memory_object_stream, streams::text::TextReceiveStream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(4);
/// let euro = "€".as_bytes(); // three bytes
/// tx.try_send(euro[..2].to_vec()).unwrap();
/// tx.try_send(euro[2..].to_vec()).unwrap();
/// let text = TextReceiveStream::new(ChunkReceiveStream::new(rx));
/// assert_eq!(text.receive().await.unwrap(), "€");
/// # });
/// ```
#[derive(Debug)]
pub struct TextReceiveStream<S> {
    inner: S,
    /// The start of a character whose remaining bytes have not arrived yet (at most 3 bytes).
    partial: Mutex<Vec<u8>>,
}

impl<S> TextReceiveStream<S> {
    /// Decodes `inner` as UTF-8.
    ///
    /// ```
    /// use anyio::{
    ///     streams::ChunkReceiveStream, streams::memory::create_memory_object_stream,
    ///     streams::text::TextReceiveStream,
    /// };
    /// let (_tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let _text = TextReceiveStream::new(ChunkReceiveStream::new(rx));
    /// ```
    pub fn new(inner: S) -> Self {
        Self { inner, partial: Mutex::new(Vec::new()) }
    }

    /// The wrapped byte stream.
    ///
    /// ```
    /// use anyio::{
    ///     streams::ChunkReceiveStream, streams::memory::create_memory_object_stream,
    ///     streams::text::TextReceiveStream,
    /// };
    /// let (_tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// assert!(!TextReceiveStream::new(ChunkReceiveStream::new(rx)).get_ref().get_ref().is_closed());
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn invalid(msg: String) -> StreamError {
    StreamError::Io(io::Error::new(io::ErrorKind::InvalidData, msg))
}

impl<S: super::attrs::TypedAttributeProvider> super::attrs::TypedAttributeProvider for TextReceiveStream<S> {
    /// Forwarded to the wrapped stream.
    fn extra_attribute(&self, key: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        self.inner.extra_attribute(key)
    }
}

#[async_trait]
impl<S: AsyncResource> AsyncResource for TextReceiveStream<S> {
    async fn aclose(&self) -> Result<(), StreamError> {
        self.inner.aclose().await
    }
}

#[async_trait]
impl<S: ByteReceiveStream> ObjectReceiveStream<String> for TextReceiveStream<S> {
    /// Cancel safe as the byte stream's receive: bytes are decoded or kept as soon as they
    /// arrive.
    async fn receive(&self) -> Result<String, StreamError> {
        loop {
            let mut bytes = match self.inner.receive(READ_SIZE).await {
                Ok(b) => b,
                Err(StreamError::EndOfStream) if !lock(&self.partial).is_empty() => {
                    return Err(invalid("the stream ended inside a UTF-8 character".into()));
                }
                Err(e) => return Err(e),
            };
            let mut partial = lock(&self.partial);
            if !partial.is_empty() {
                partial.append(&mut bytes);
                bytes = std::mem::take(&mut *partial);
            }
            match std::str::from_utf8(&bytes) {
                Ok(_) => return Ok(String::from_utf8(bytes).expect("checked")),
                Err(e) if e.error_len().is_none() => {
                    // The tail is an incomplete character: keep it for the next read.
                    let valid = e.valid_up_to();
                    *partial = bytes.split_off(valid);
                    if valid > 0 {
                        return Ok(String::from_utf8(bytes).expect("checked"));
                    }
                }
                Err(e) => return Err(invalid(format!("invalid UTF-8 in the stream: {e}"))),
            }
        }
    }
}

/// Sends strings as UTF-8 over a byte stream (AnyIO's `TextSendStream`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ChunkSendStream, ObjectSendStream}, streams::memory::create_memory_object_stream,
///     streams::text::TextSendStream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
/// TextSendStream::new(ChunkSendStream::new(tx)).send("hé".to_owned()).await.unwrap();
/// assert_eq!(rx.try_receive().unwrap(), "hé".as_bytes());
/// # });
/// ```
#[derive(Debug)]
pub struct TextSendStream<S> {
    inner: S,
}

impl<S> TextSendStream<S> {
    /// Encodes strings sent through it as UTF-8 onto `inner`.
    ///
    /// ```
    /// use anyio::{
    ///     streams::ChunkSendStream, streams::memory::create_memory_object_stream,
    ///     streams::text::TextSendStream,
    /// };
    /// let (tx, _rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let _text = TextSendStream::new(ChunkSendStream::new(tx));
    /// ```
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped byte stream.
    ///
    /// ```
    /// use anyio::{
    ///     streams::ChunkSendStream, streams::memory::create_memory_object_stream,
    ///     streams::text::TextSendStream,
    /// };
    /// let (tx, _rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// assert!(!TextSendStream::new(ChunkSendStream::new(tx)).get_ref().get_ref().is_closed());
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: super::attrs::TypedAttributeProvider> super::attrs::TypedAttributeProvider for TextSendStream<S> {
    /// Forwarded to the wrapped stream.
    fn extra_attribute(&self, key: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        self.inner.extra_attribute(key)
    }
}

#[async_trait]
impl<S: AsyncResource> AsyncResource for TextSendStream<S> {
    async fn aclose(&self) -> Result<(), StreamError> {
        self.inner.aclose().await
    }
}

#[async_trait]
impl<S: ByteSendStream> ObjectSendStream<String> for TextSendStream<S> {
    /// Cancel safe as the byte stream's send.
    async fn send(&self, item: String) -> Result<(), StreamError> {
        self.inner.send(item.as_bytes()).await
    }
}

/// A bidirectional text stream over a [`ByteStream`] (AnyIO's `TextStream`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ChunkReceiveStream, ChunkSendStream, ObjectReceiveStream, ObjectSendStream},
///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
///     streams::text::TextStream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(4);
/// let text = TextStream::new(StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx)));
/// text.send("ok".to_owned()).await.unwrap();
/// assert_eq!(text.receive().await.unwrap(), "ok");
/// # });
/// ```
#[derive(Debug)]
pub struct TextStream<S> {
    receive: TextReceiveStream<S>,
}

impl<S> TextStream<S> {
    /// Wraps a byte stream.
    ///
    /// ```
    /// use anyio::{
    ///     streams::{ChunkReceiveStream, ChunkSendStream},
    ///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
    ///     streams::text::TextStream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let _t = TextStream::new(StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx)));
    /// ```
    pub fn new(inner: S) -> Self {
        Self { receive: TextReceiveStream::new(inner) }
    }

    /// The wrapped byte stream.
    ///
    /// ```
    /// use anyio::{
    ///     streams::{ChunkReceiveStream, ChunkSendStream},
    ///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
    ///     streams::text::TextStream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let t = TextStream::new(StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx)));
    /// let _bytes = t.get_ref();
    /// ```
    pub fn get_ref(&self) -> &S {
        self.receive.get_ref()
    }
}

impl<S: super::attrs::TypedAttributeProvider> super::attrs::TypedAttributeProvider for TextStream<S> {
    /// Forwarded to the wrapped stream.
    fn extra_attribute(&self, key: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        self.receive.extra_attribute(key)
    }
}

#[async_trait]
impl<S: AsyncResource> AsyncResource for TextStream<S> {
    async fn aclose(&self) -> Result<(), StreamError> {
        self.get_ref().aclose().await
    }
}

#[async_trait]
impl<S: ByteStream> ObjectReceiveStream<String> for TextStream<S> {
    /// As [`TextReceiveStream`]'s.
    async fn receive(&self) -> Result<String, StreamError> {
        self.receive.receive().await
    }
}

#[async_trait]
impl<S: ByteStream> ObjectSendStream<String> for TextStream<S> {
    /// Cancel safe as the byte stream's send.
    async fn send(&self, item: String) -> Result<(), StreamError> {
        self.get_ref().send(item.as_bytes()).await
    }
}

#[async_trait]
impl<S: ByteStream> ObjectStream<String> for TextStream<S> {
    async fn send_eof(&self) -> Result<(), StreamError> {
        self.get_ref().send_eof().await
    }
}
