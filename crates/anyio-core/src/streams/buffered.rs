//! `BufferedByteReceiveStream`: a byte receive stream with a buffer, for reading exact
//! lengths and delimited records (AnyIO's `anyio.streams.buffered`).

pub use super::connectable::BufferedConnectable;

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::abc::{AsyncResource, ByteReceiveStream};
use super::error::StreamError;
use crate::loom::{lock, Mutex};
use crate::sync::BusyResourceError;

/// How much one read from the wrapped stream asks for at most.
const READ_SIZE: usize = 65536;
/// The least room a read gets: below it the buffer is compacted, or grown.
const MIN_READ: usize = READ_SIZE / 2;
const BUSY: BusyResourceError = BusyResourceError::new("receiving from");

/// Bytes received but not handed out yet: `data[start..end]`. `data` is zero-filled once and
/// read into directly, so a byte is copied once more only when a record straddles the end of
/// the buffer and is moved to its front.
#[derive(Debug, Default)]
struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Vec<u8> {
        let out = self.pending()[..n].to_vec();
        self.consume(n);
        out
    }

    /// Room for the next read, at least `MIN_READ` and at most `READ_SIZE` bytes: the
    /// pending bytes move to the front when the tail is short, and the buffer grows when even
    /// that leaves too little (a record longer than the buffer).
    fn room(&mut self, at_least: usize) -> &mut [u8] {
        let want = at_least.max(MIN_READ);
        if self.data.len() - self.end < want && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < want {
            self.data.resize(self.end + want.max(READ_SIZE), 0);
        }
        let stop = self.data.len().min(self.end + READ_SIZE.max(at_least));
        &mut self.data[self.end..stop]
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.room(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }
}

/// Wraps a [`ByteReceiveStream`] with a buffer (AnyIO's `BufferedByteReceiveStream`):
/// [`receive_exactly`](Self::receive_exactly) and [`receive_until`](Self::receive_until) read
/// as much as they need and keep the surplus for the next call. It is itself a
/// `ByteReceiveStream`, which serves buffered bytes first.
///
/// Every receive is cancel safe: bytes read from the wrapped stream go into the buffer before
/// anything else can be cancelled, so a cancelled `receive_exactly` or `receive_until` loses
/// nothing and the next call finds the bytes again.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::ChunkReceiveStream, streams::buffered::BufferedByteReceiveStream,
///     streams::memory::create_memory_object_stream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(4);
/// tx.try_send(b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec()).unwrap();
/// let stream = BufferedByteReceiveStream::new(ChunkReceiveStream::new(rx));
/// assert_eq!(stream.receive_until(b"\r\n", 1024).await.unwrap(), b"GET / HTTP/1.1");
/// assert_eq!(stream.receive_exactly(4).await.unwrap(), b"Host");
/// assert_eq!(stream.buffer(), b": x\r\n");
/// # });
/// ```
#[derive(Debug)]
pub struct BufferedByteReceiveStream<S> {
    inner: S,
    /// `None` while an operation that waits has the buffer out: that is what makes a second
    /// receiver busy, so the common case (the record is buffered already) costs one lock.
    buf: Mutex<Option<Buf>>,
    closed: AtomicBool,
}

/// The buffer taken out of its mutex for one operation, put back when the operation ends or
/// its future is dropped, so no lock is held across an await and no byte is lost.
struct Taken<'a> {
    slot: &'a Mutex<Option<Buf>>,
    buf: Buf,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        *lock(self.slot) = Some(std::mem::take(&mut self.buf));
    }
}

impl<S> BufferedByteReceiveStream<S> {
    /// Wraps `inner`.
    ///
    /// ```
    /// use anyio::{
    ///     streams::ChunkReceiveStream, streams::buffered::BufferedByteReceiveStream,
    ///     streams::memory::create_memory_object_stream,
    /// };
    /// let (_tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let _s = BufferedByteReceiveStream::new(ChunkReceiveStream::new(rx));
    /// ```
    pub fn new(inner: S) -> Self {
        Self { inner, buf: Mutex::new(Some(Buf::default())), closed: AtomicBool::new(false) }
    }

    /// A copy of the bytes buffered now.
    ///
    /// ```
    /// use anyio::{
    ///     streams::ChunkReceiveStream, streams::buffered::BufferedByteReceiveStream,
    ///     streams::memory::create_memory_object_stream,
    /// };
    /// let (_tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// assert!(BufferedByteReceiveStream::new(ChunkReceiveStream::new(rx)).buffer().is_empty());
    /// ```
    pub fn buffer(&self) -> Vec<u8> {
        lock(&self.buf).as_ref().map(|b| b.pending().to_vec()).unwrap_or_default()
    }

    /// Appends `data` to the buffer, as if it had been received (AnyIO's `feed_data`).
    ///
    /// # Errors
    ///
    /// [`BusyResourceError`] while a receive is in progress.
    ///
    /// ```
    /// use anyio::{
    ///     streams::ChunkReceiveStream, streams::buffered::BufferedByteReceiveStream,
    ///     streams::memory::create_memory_object_stream,
    /// };
    /// let (_tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let s = BufferedByteReceiveStream::new(ChunkReceiveStream::new(rx));
    /// s.feed_data(b"abc").unwrap();
    /// assert_eq!(s.buffer(), b"abc");
    /// ```
    pub fn feed_data(&self, data: &[u8]) -> Result<(), BusyResourceError> {
        lock(&self.buf).as_mut().ok_or(BUSY)?.extend(data);
        Ok(())
    }

    /// The wrapped stream.
    ///
    /// ```
    /// use anyio::{
    ///     streams::ChunkReceiveStream, streams::buffered::BufferedByteReceiveStream,
    ///     streams::memory::create_memory_object_stream,
    /// };
    /// let (_tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let s = BufferedByteReceiveStream::new(ChunkReceiveStream::new(rx));
    /// assert!(!s.get_ref().get_ref().is_closed());
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn begin(&self) -> Result<Taken<'_>, StreamError> {
        self.check_open()?;
        let buf = lock(&self.buf).take().ok_or(BUSY)?;
        Ok(Taken { slot: &self.buf, buf })
    }

    fn check_open(&self) -> Result<(), StreamError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StreamError::Closed);
        }
        Ok(())
    }
}

impl<S: ByteReceiveStream> BufferedByteReceiveStream<S> {
    /// Reads once from the wrapped stream into the buffer, with room for `need` more bytes
    /// (and at least half a read). End of stream is returned as is.
    async fn fill(&self, t: &mut Taken<'_>, need: usize) -> Result<(), StreamError> {
        let n = self.inner.receive_into(t.buf.room(need)).await?;
        t.buf.end += n;
        Ok(())
    }

    /// Receives exactly `n` bytes (AnyIO's `receive_exactly`).
    ///
    /// # Errors
    ///
    /// [`StreamError::IncompleteRead`] if the stream ends first (the bytes that did arrive stay
    /// buffered); the wrapped stream's errors; [`StreamError::Closed`] after `aclose`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes read before the cancellation stay buffered.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     streams::ChunkReceiveStream, streams::buffered::BufferedByteReceiveStream,
    ///     streams::memory::create_memory_object_stream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(4);
    /// tx.try_send(b"ab".to_vec()).unwrap();
    /// tx.try_send(b"cd".to_vec()).unwrap();
    /// let s = BufferedByteReceiveStream::new(ChunkReceiveStream::new(rx));
    /// assert_eq!(s.receive_exactly(3).await.unwrap(), b"abc");
    /// # });
    /// ```
    pub async fn receive_exactly(&self, n: usize) -> Result<Vec<u8>, StreamError> {
        let mut t = self.begin()?;
        while t.buf.pending().len() < n {
            let need = n - t.buf.pending().len();
            match self.fill(&mut t, need).await {
                Ok(()) => {}
                Err(StreamError::EndOfStream) => return Err(StreamError::IncompleteRead),
                Err(e) => return Err(e),
            }
        }
        Ok(t.buf.take(n))
    }

    /// Receives up to the next `delimiter` and returns the bytes before it; the delimiter is
    /// consumed, the bytes after it stay buffered (AnyIO's `receive_until`). The result is at
    /// most `max_bytes` long.
    ///
    /// # Errors
    ///
    /// - [`StreamError::DelimiterNotFound`] as soon as enough bytes are buffered to know that
    ///   no delimiter starts within the first `max_bytes` (they stay buffered; the buffer grows
    ///   by at most one read past the limit);
    /// - [`StreamError::IncompleteRead`] if the stream ends before the delimiter;
    /// - [`StreamError::InvalidArgument`] for an empty delimiter;
    /// - the wrapped stream's errors; [`StreamError::Closed`] after `aclose`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes read before the cancellation stay buffered.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     streams::{ChunkReceiveStream, StreamError},
    ///     streams::buffered::BufferedByteReceiveStream,
    ///     streams::memory::create_memory_object_stream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(4);
    /// tx.try_send(b"a,bb,".to_vec()).unwrap();
    /// tx.try_send(b"cccc".to_vec()).unwrap();
    /// let s = BufferedByteReceiveStream::new(ChunkReceiveStream::new(rx));
    /// assert_eq!(s.receive_until(b",", 10).await.unwrap(), b"a");
    /// assert_eq!(s.receive_until(b",", 10).await.unwrap(), b"bb");
    /// assert!(matches!(s.receive_until(b",", 3).await, Err(StreamError::DelimiterNotFound { max_bytes: 3 })));
    /// # });
    /// ```
    pub async fn receive_until(&self, delimiter: &[u8], max_bytes: usize) -> Result<Vec<u8>, StreamError> {
        if delimiter.is_empty() {
            return Err(StreamError::InvalidArgument("the delimiter must not be empty"));
        }
        self.check_open()?;
        // The common case: the record is buffered already; one lock, no buffer moves.
        let (mut t, mut searched) = {
            let mut slot = lock(&self.buf);
            let buf = slot.as_mut().ok_or(BUSY)?;
            if let Some(found) = split_record(buf, 0, delimiter, max_bytes) {
                return found;
            }
            let searched = buf.pending().len().saturating_sub(delimiter.len() - 1);
            // Taken out under the same lock, so nobody consumes what was searched meanwhile.
            let buf = slot.take().expect("checked above");
            (Taken { slot: &self.buf, buf }, searched)
        };
        loop {
            match self.fill(&mut t, 0).await {
                Ok(()) => {}
                Err(StreamError::EndOfStream) => return Err(StreamError::IncompleteRead),
                Err(e) => return Err(e),
            }
            if let Some(found) = split_record(&mut t.buf, searched, delimiter, max_bytes) {
                return found;
            }
            // Bytes before this were searched already, so the total work stays linear in the
            // input however it is chunked.
            searched = t.buf.pending().len().saturating_sub(delimiter.len() - 1);
        }
    }
}

/// The record before the first `delimiter` at or after `searched`, taken out of `buf` with its
/// delimiter; `DelimiterNotFound` once `buf` holds enough to know none starts within
/// `max_bytes`; `None` while it cannot tell yet.
#[inline]
fn split_record(
    buf: &mut Buf,
    searched: usize,
    delimiter: &[u8],
    max_bytes: usize,
) -> Option<Result<Vec<u8>, StreamError>> {
    let pending = buf.pending();
    if let Some(i) = find(&pending[searched..], delimiter) {
        let end = searched + i;
        if end > max_bytes {
            return Some(Err(StreamError::DelimiterNotFound { max_bytes }));
        }
        let found = buf.take(end);
        buf.consume(delimiter.len());
        return Some(Ok(found));
    }
    if pending.len() >= max_bytes + delimiter.len() {
        return Some(Err(StreamError::DelimiterNotFound { max_bytes }));
    }
    None
}

#[inline]
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        return find_byte(needle[0], haystack);
    }
    memchr::memmem::find(haystack, needle)
}

/// The C library's `memchr`: for the short records this stream mostly splits (a line is
/// found some 100 bytes into a 64 KiB buffer), glibc's fixed cost per call is about half the
/// memchr crate's, which was 1.05M of the 2.15M instructions by which `receive_until` trailed
/// tokio's `read_until` over 1 MiB of lines (callgrind). Re-measured for issue 12: with
/// `memchr::memchr` that case runs 22.5M instructions instead of 21.2M (the search itself
/// 2.5M against glibc's 1.2M; the crate's `avx2::One` used directly, 22.9M), and wall-clock
/// medians are 0-5 % slower; so the one `unsafe` call stays.
#[inline]
fn find_byte(byte: u8, haystack: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe `haystack`, a live and initialised slice;
    // `memchr` reads only within it and returns null or a pointer into it.
    let p = unsafe { libc::memchr(haystack.as_ptr().cast(), libc::c_int::from(byte), haystack.len()) };
    (!p.is_null()).then(|| p as usize - haystack.as_ptr() as usize)
}

impl<S: super::attrs::TypedAttributeProvider> super::attrs::TypedAttributeProvider
    for BufferedByteReceiveStream<S>
{
    /// Forwarded to the wrapped stream.
    fn extra_attribute(&self, key: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        self.inner.extra_attribute(key)
    }
}

#[async_trait]
impl<S: AsyncResource> AsyncResource for BufferedByteReceiveStream<S> {
    /// Closes the wrapped stream; later receives fail with [`StreamError::Closed`].
    async fn aclose(&self) -> Result<(), StreamError> {
        self.closed.store(true, Ordering::Release);
        self.inner.aclose().await
    }
}

#[async_trait]
impl<S: ByteReceiveStream> ByteReceiveStream for BufferedByteReceiveStream<S> {
    /// Buffered bytes first, else one read of the wrapped stream. Cancel safe.
    async fn receive_into(&self, out: &mut [u8]) -> Result<usize, StreamError> {
        if out.is_empty() {
            return Err(StreamError::InvalidArgument("the receive buffer must hold at least 1 byte"));
        }
        let mut t = self.begin()?;
        if t.buf.pending().is_empty() {
            // Nothing buffered: read straight into the caller's buffer (still marked busy).
            return self.inner.receive_into(out).await;
        }
        let n = out.len().min(t.buf.pending().len());
        out[..n].copy_from_slice(&t.buf.pending()[..n]);
        t.buf.consume(n);
        Ok(n)
    }
}

/// A [`ByteStream`](super::abc::ByteStream) whose receiving side is buffered (AnyIO's
/// `BufferedByteStream`): [`receive_exactly`](Self::receive_exactly) and
/// [`receive_until`](Self::receive_until) as on [`BufferedByteReceiveStream`], while `send`
/// and `send_eof` go straight to the wrapped stream.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ByteSendStream, ChunkReceiveStream, ChunkSendStream},
///     streams::buffered::BufferedByteStream, streams::memory::create_memory_object_stream,
///     streams::stapled::StapledByteStream,
/// };
///
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(4);
/// let s = BufferedByteStream::new(StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx)));
/// s.send(b"line one\nline two\n").await.unwrap();
/// assert_eq!(s.receive_until(b"\n", 100).await.unwrap(), b"line one");
/// assert_eq!(s.receive_until(b"\n", 100).await.unwrap(), b"line two");
/// # });
/// ```
#[derive(Debug)]
pub struct BufferedByteStream<S> {
    receive: BufferedByteReceiveStream<S>,
}

impl<S> BufferedByteStream<S> {
    /// Wraps a byte stream.
    ///
    /// ```
    /// use anyio::{
    ///     streams::{ChunkReceiveStream, ChunkSendStream}, streams::buffered::BufferedByteStream,
    ///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let _s = BufferedByteStream::new(StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx)));
    /// ```
    pub fn new(inner: S) -> Self {
        Self { receive: BufferedByteReceiveStream::new(inner) }
    }

    /// The buffered receiving side (for [`buffer`](BufferedByteReceiveStream::buffer) and
    /// [`feed_data`](BufferedByteReceiveStream::feed_data)).
    ///
    /// ```
    /// use anyio::{
    ///     streams::{ChunkReceiveStream, ChunkSendStream}, streams::buffered::BufferedByteStream,
    ///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let s = BufferedByteStream::new(StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx)));
    /// assert!(s.receiver().buffer().is_empty());
    /// ```
    pub fn receiver(&self) -> &BufferedByteReceiveStream<S> {
        &self.receive
    }

    /// The wrapped stream.
    ///
    /// ```
    /// use anyio::{
    ///     streams::{ChunkReceiveStream, ChunkSendStream}, streams::buffered::BufferedByteStream,
    ///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
    /// let s = BufferedByteStream::new(StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx)));
    /// let _inner = s.get_ref();
    /// ```
    pub fn get_ref(&self) -> &S {
        self.receive.get_ref()
    }
}

impl<S: ByteReceiveStream> BufferedByteStream<S> {
    /// [`BufferedByteReceiveStream::receive_exactly`].
    ///
    /// # Errors
    ///
    /// As [`BufferedByteReceiveStream::receive_exactly`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes read before the cancellation stay buffered.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     streams::{ByteSendStream, ChunkReceiveStream, ChunkSendStream},
    ///     streams::buffered::BufferedByteStream, streams::memory::create_memory_object_stream,
    ///     streams::stapled::StapledByteStream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(2);
    /// let s = BufferedByteStream::new(StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx)));
    /// s.send(b"abcd").await.unwrap();
    /// assert_eq!(s.receive_exactly(2).await.unwrap(), b"ab");
    /// # });
    /// ```
    pub async fn receive_exactly(&self, n: usize) -> Result<Vec<u8>, StreamError> {
        self.receive.receive_exactly(n).await
    }

    /// [`BufferedByteReceiveStream::receive_until`].
    ///
    /// # Errors
    ///
    /// As [`BufferedByteReceiveStream::receive_until`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes read before the cancellation stay buffered.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     streams::{ByteSendStream, ChunkReceiveStream, ChunkSendStream},
    ///     streams::buffered::BufferedByteStream, streams::memory::create_memory_object_stream,
    ///     streams::stapled::StapledByteStream,
    /// };
    /// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(2);
    /// let s = BufferedByteStream::new(StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx)));
    /// s.send(b"k=v;").await.unwrap();
    /// assert_eq!(s.receive_until(b";", 10).await.unwrap(), b"k=v");
    /// # });
    /// ```
    pub async fn receive_until(&self, delimiter: &[u8], max_bytes: usize) -> Result<Vec<u8>, StreamError> {
        self.receive.receive_until(delimiter, max_bytes).await
    }
}

impl<S: super::attrs::TypedAttributeProvider> super::attrs::TypedAttributeProvider for BufferedByteStream<S> {
    /// Forwarded to the wrapped stream.
    fn extra_attribute(&self, key: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
        self.receive.extra_attribute(key)
    }
}

#[async_trait]
impl<S: AsyncResource> AsyncResource for BufferedByteStream<S> {
    async fn aclose(&self) -> Result<(), StreamError> {
        self.receive.aclose().await
    }
}

#[async_trait]
impl<S: ByteReceiveStream> ByteReceiveStream for BufferedByteStream<S> {
    /// Buffered bytes first; cancel safe.
    async fn receive_into(&self, out: &mut [u8]) -> Result<usize, StreamError> {
        self.receive.receive_into(out).await
    }
}

#[async_trait]
impl<S: super::abc::ByteStream> super::abc::ByteSendStream for BufferedByteStream<S> {
    /// Cancel safe as the wrapped stream's send.
    async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        self.get_ref().send(data).await
    }

    /// Cancel safe as the wrapped stream's.
    async fn send_some(&self, data: &[u8]) -> Result<usize, StreamError> {
        self.get_ref().send_some(data).await
    }

    /// Forwards to the wrapped stream's.
    fn try_send_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> Result<Option<usize>, StreamError> {
        self.get_ref().try_send_vectored(bufs)
    }
}

#[async_trait]
impl<S: super::abc::ByteStream> super::abc::ByteStream for BufferedByteStream<S> {
    async fn send_eof(&self) -> Result<(), StreamError> {
        self.get_ref().send_eof().await
    }
}
