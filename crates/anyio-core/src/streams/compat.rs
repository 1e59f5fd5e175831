//! `ByteStreamIo`: futures-io's (and, with the `tokio` feature, tokio's) `AsyncRead` and
//! `AsyncWrite` for any anyio byte stream, so that wrappers and user-written streams can be
//! handed to crates written for either family. Sockets implement those traits directly.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use super::abc::ByteStream;
use super::error::StreamError;

type Op<T> = Pin<Box<dyn Future<Output = Result<T, StreamError>> + Send>>;

/// The largest chunk one read asks the stream for.
const READ_SIZE: usize = 65536;

/// Poll-style I/O over an anyio [`ByteStream`]: `AsyncRead` + `AsyncWrite` of futures-io, and
/// of tokio with the `tokio` feature.
///
/// A write is accepted as soon as the previous one has finished and is then sent in the
/// background of the next polls (one write in flight, as a one-chunk buffer): `poll_flush` and
/// `poll_close` wait for it. Closing half-closes the stream (`send_eof`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     streams::{ByteStreamIo, ChunkReceiveStream, ChunkSendStream},
///     streams::memory::create_memory_object_stream, streams::stapled::StapledByteStream,
/// };
/// use futures_io::AsyncRead;
/// let (tx, rx) = create_memory_object_stream::<Vec<u8>>(4);
/// let stream = StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx));
/// let mut io = ByteStreamIo::new(stream);
/// # let _ = &mut io;
/// # });
/// ```
pub struct ByteStreamIo<S> {
    stream: Arc<S>,
    reading: Option<Op<Vec<u8>>>,
    leftover: Vec<u8>,
    consumed: usize,
    writing: Option<Op<()>>,
    closing: Option<Op<()>>,
}

impl<S> fmt::Debug for ByteStreamIo<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteStreamIo")
            .field("buffered", &(self.leftover.len() - self.consumed))
            .field("writing", &self.writing.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: ByteStream + 'static> ByteStreamIo<S> {
    /// Wraps `stream`.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::UnixStream, streams::ByteStreamIo};
    /// use futures::io::AsyncWriteExt;
    /// let (a, b) = UnixStream::pair()?;
    /// let mut io = ByteStreamIo::new(a);
    /// io.write_all(b"through futures-io").await?;
    /// io.flush().await?;
    /// assert_eq!(b.receive(100).await?, b"through futures-io");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn new(stream: S) -> Self {
        Self::from_arc(Arc::new(stream))
    }

    /// Wraps a shared stream (other holders may still call its `&self` methods).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::UnixStream, streams::ByteStreamIo};
    /// use futures::io::AsyncReadExt;
    /// let (a, b) = UnixStream::pair()?;
    /// let b = std::sync::Arc::new(b);
    /// let mut io = ByteStreamIo::from_arc(b.clone());
    /// a.send(b"ping").await?;
    /// let mut buf = [0; 4];
    /// io.read_exact(&mut buf).await?;
    /// b.send(b"pong").await?; // the other holder still uses the stream directly
    /// assert_eq!((&buf, a.receive(100).await?), (b"ping", b"pong".to_vec()));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn from_arc(stream: Arc<S>) -> Self {
        Self { stream, reading: None, leftover: Vec::new(), consumed: 0, writing: None, closing: None }
    }

    /// The wrapped stream.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::UnixStream, streams::ByteStreamIo};
    /// let (a, b) = UnixStream::pair()?;
    /// let io = ByteStreamIo::new(a);
    /// io.get_ref().send(b"direct").await?; // the wrapped stream's own method
    /// assert_eq!(b.receive(100).await?, b"direct");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn get_ref(&self) -> &Arc<S> {
        &self.stream
    }

    fn poll_read_chunk(&mut self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.consumed == self.leftover.len() {
            let op = self.reading.get_or_insert_with(|| {
                let s = self.stream.clone();
                Box::pin(async move { s.receive(READ_SIZE).await })
            });
            let got = ready!(op.as_mut().poll(cx));
            self.reading = None;
            match got {
                Ok(chunk) => {
                    self.leftover = chunk;
                    self.consumed = 0;
                }
                Err(StreamError::EndOfStream) => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(to_io(e))),
            }
        }
        let n = out.len().min(self.leftover.len() - self.consumed);
        out[..n].copy_from_slice(&self.leftover[self.consumed..self.consumed + n]);
        self.consumed += n;
        Poll::Ready(Ok(n))
    }

    fn poll_finish_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(op) = self.writing.as_mut() {
            let done = ready!(op.as_mut().poll(cx));
            self.writing = None;
            done.map_err(to_io)?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write_chunk(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_finish_write(cx))?;
        let s = self.stream.clone();
        let owned = data.to_vec();
        let mut op: Op<()> = Box::pin(async move { s.send(&owned).await });
        // Start it now; most sends complete at once.
        match op.as_mut().poll(cx) {
            Poll::Ready(r) => r.map_err(to_io)?,
            Poll::Pending => self.writing = Some(op),
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_finish_write(cx))?;
        let op = self.closing.get_or_insert_with(|| {
            let s = self.stream.clone();
            Box::pin(async move { s.send_eof().await })
        });
        let done = ready!(op.as_mut().poll(cx));
        self.closing = None;
        Poll::Ready(done.map_err(to_io))
    }
}

fn to_io(e: StreamError) -> io::Error {
    match e {
        StreamError::Io(e) | StreamError::Broken(Some(e)) => e,
        StreamError::Broken(None) => io::Error::new(io::ErrorKind::BrokenPipe, StreamError::Broken(None)),
        StreamError::Closed => io::Error::new(io::ErrorKind::NotConnected, StreamError::Closed),
        other => io::Error::other(other),
    }
}

impl<S: ByteStream + 'static> futures_io::AsyncRead for ByteStreamIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read_chunk(cx, buf)
    }
}

impl<S: ByteStream + 'static> futures_io::AsyncWrite for ByteStreamIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_chunk(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_finish_write(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_shutdown(cx)
    }
}

#[cfg(feature = "tokio")]
impl<S: ByteStream + 'static> tokio::io::AsyncRead for ByteStreamIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(self.get_mut().poll_read_chunk(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(feature = "tokio")]
impl<S: ByteStream + 'static> tokio::io::AsyncWrite for ByteStreamIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_chunk(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_finish_write(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_shutdown(cx)
    }
}
