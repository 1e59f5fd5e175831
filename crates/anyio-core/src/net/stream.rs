//! The connected byte-stream socket shared by TCP and Unix streams: receive, send-all, half
//! close, close, addresses, and the `AsyncRead`/`AsyncWrite` adapters. The public stream types
//! wrap it and add what is specific to their family.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::io::{self, Read};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use crate::streams::{provide_attribute, StreamError};

use super::addr::{
    LocalAddress, LocalPort, RawSocket, RemoteAddress, RemotePort, SocketAddress, SocketFamily,
};
use super::error::OpError;
use super::io::{recv_to_vec, Attempt, Dir, IoAttempt, IoCore, IoOp, OpWait, MAX_RECEIVE, SEND_FLAGS};
use crate::sync::InUse;

pub(crate) const STREAM_ACTIONS: [&str; 2] = ["reading from", "writing to"];

/// A connected, registered stream socket.
#[derive(Debug)]
pub(crate) struct ByteSocket {
    pub(crate) core: IoCore,
    /// Set by `send_eof`: later sends fail with `Closed` (as trio's), not the kernel's EPIPE.
    eof_sent: AtomicBool,
    /// Cancel-scope registrations of the poll-style adapters, one per direction.
    compat: [OpWait; 2],
    /// The peer's address as `accept` or `connect` knew it: `getpeername` fails once the
    /// connection is reset, and a server still wants to say whose connection failed.
    peer: Option<SocketAddress>,
}

impl ByteSocket {
    pub(crate) fn new(core: IoCore) -> Self {
        Self::with_peer(core, None)
    }

    pub(crate) fn with_peer(core: IoCore, peer: Option<SocketAddress>) -> Self {
        Self { core, eof_sent: AtomicBool::new(false), compat: [OpWait::new(), OpWait::new()], peer }
    }

    pub(crate) fn receive_into<'a>(&'a self, buf: &'a mut [u8]) -> ReceiveInto<'a> {
        ReceiveInto { sock: self, buf, in_use: None, wait: OpWait::new() }
    }

    pub(crate) async fn receive(&self, max_bytes: usize) -> Result<Vec<u8>, StreamError> {
        if max_bytes == 0 {
            return Err(StreamError::InvalidArgument("max_bytes must be at least 1"));
        }
        // Read into this thread's scratch buffer and copy out what arrived: a buffer reserved
        // per call would be held by every idle connection for as long as it waits (64 KiB
        // each), and one of the right size needs the size first.
        let cap = max_bytes.min(MAX_RECEIVE);
        let (buf, ()) = self
            .core
            .read_io(|s| recv_to_vec(cap, |b| Ok((s.recv(b)?, ()))), |(v, ())| !v.is_empty() && v.len() < cap)
            .await?;
        if buf.is_empty() {
            return Err(StreamError::EndOfStream);
        }
        Ok(buf)
    }

    pub(crate) fn check_eof(&self) -> Result<(), OpError> {
        if self.eof_sent.load(Ordering::Acquire) {
            return Err(OpError::Closed);
        }
        Ok(())
    }

    /// One `send(2)` of as much of `data` as the socket takes (waiting until it takes some).
    pub(crate) fn send_some<'a>(
        &'a self,
        data: &'a [u8],
    ) -> impl Future<Output = Result<usize, StreamError>> + Send + 'a {
        StreamOp {
            op: self.core.io(Dir::Send, move |s| s.send_with_flags(data, SEND_FLAGS)),
            refuse: Refuse::IfSet(&self.eof_sent),
            finish: Ok,
        }
    }

    /// One vectored `send(2)` now, or `None` if the socket's buffer is full.
    pub(crate) fn try_send_vectored(&self, bufs: &[io::IoSlice<'_>]) -> Result<Option<usize>, StreamError> {
        self.check_eof()?;
        Ok(self.core.try_io(Dir::Send, |s| s.send_vectored_with_flags(bufs, SEND_FLAGS))?)
    }

    pub(crate) fn send<'a>(
        &'a self,
        data: &'a [u8],
    ) -> impl Future<Output = Result<(), StreamError>> + Send + 'a {
        let mut sent = 0;
        StreamOp {
            op: self.core.io(Dir::Send, move |s| {
                while sent < data.len() {
                    sent += s.send_with_flags(&data[sent..], SEND_FLAGS)?;
                }
                Ok(())
            }),
            refuse: Refuse::IfSet(&self.eof_sent),
            finish: Ok,
        }
    }

    pub(crate) async fn send_eof(&self) -> Result<(), StreamError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        let r = match self.core.with_socket(|s| s.shutdown(Shutdown::Write)) {
            // Already shut down by the peer's reset: nothing left to half-close.
            Err(OpError::Io(e)) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        };
        if r.is_ok() {
            self.eof_sent.store(true, Ordering::Release);
        }
        r.map_err(Into::into)
    }

    pub(crate) fn close(&self) {
        self.core.close();
    }

    pub(crate) fn local_address(&self) -> Result<SocketAddress, StreamError> {
        Ok(SocketAddress::from_sockaddr(&self.core.with_socket(|s| s.local_addr())?))
    }

    pub(crate) fn remote_address(&self) -> Result<SocketAddress, StreamError> {
        if let Some(peer) = &self.peer {
            // As `getpeername` would answer, but also after a reset; closed is still closed.
            return if self.core.is_closed() { Err(StreamError::Closed) } else { Ok(peer.clone()) };
        }
        Ok(SocketAddress::from_sockaddr(&self.core.with_socket(|s| s.peer_addr())?))
    }

    pub(crate) fn attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        if let Some(peer) = self.peer.as_ref().filter(|_| !self.core.is_closed()) {
            let known = provide_attribute::<RemoteAddress>(key, || Some(peer.clone()))
                .or_else(|| provide_attribute::<RemotePort>(key, || peer.port()));
            if known.is_some() {
                return known;
            }
        }
        socket_attribute(&self.core, key, true)
    }

    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let Self { core, compat, .. } = self;
        let want = buf.len();
        core.poll_io(Dir::Receive, cx, &mut compat[0], |s| (&*s).read(buf), |&n| n > 0 && n < want)
            .map_err(compat_error)
    }

    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.check_eof().map_err(compat_error)?;
        let Self { core, compat, .. } = self;
        core.poll_io(Dir::Send, cx, &mut compat[1], |s| s.send_with_flags(buf, SEND_FLAGS), |_| false)
            .map_err(compat_error)
    }

    pub(crate) fn poll_shutdown(&mut self) -> Poll<io::Result<()>> {
        let r = self.core.with_socket(|s| s.shutdown(Shutdown::Write)).map_err(compat_error);
        if r.is_ok() {
            self.eof_sent.store(true, Ordering::Release);
        }
        Poll::Ready(r)
    }
}

/// The socket attributes every registered socket answers; `connected` adds the peer's.
pub(crate) fn socket_attribute(core: &IoCore, key: TypeId, connected: bool) -> Option<Box<dyn Any + Send>> {
    let local = || core.with_socket(|s| s.local_addr()).ok().map(|a| SocketAddress::from_sockaddr(&a));
    let remote = || core.with_socket(|s| s.peer_addr()).ok().map(|a| SocketAddress::from_sockaddr(&a));
    provide_attribute::<LocalAddress>(key, local)
        .or_else(|| provide_attribute::<LocalPort>(key, || local()?.port()))
        .or_else(|| provide_attribute::<SocketFamily>(key, || Some(local()?.family())))
        .or_else(|| provide_attribute::<RawSocket>(key, || (!core.is_closed()).then(|| core.raw_fd())))
        .or_else(|| if connected { provide_attribute::<RemoteAddress>(key, remote) } else { None })
        .or_else(|| if connected { provide_attribute::<RemotePort>(key, || remote()?.port()) } else { None })
}

/// The receive path of a TCP or Unix stream socket, for a protocol layer that drives the
/// socket from its own future: what [`ByteReceiveStream::socket_receiver`] returns.
///
/// [`ByteReceiveStream::socket_receiver`]: crate::streams::ByteReceiveStream::socket_receiver
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::net::{connect_tcp, TcpListener};
/// use anyio::streams::{ByteReceiveStream, ByteSendStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// let port = listener.local_addr().unwrap().port();
/// let (client, server) = futures::join!(connect_tcp("127.0.0.1", port), listener.accept());
/// let (client, server) = (client.unwrap(), server.unwrap());
/// client.send(b"hi").await.unwrap();
/// // Through the trait, as a layer generic over its transport sees the stream.
/// let transport: &dyn ByteReceiveStream = &server;
/// let receiver = transport.socket_receiver().expect("a TCP stream has one");
/// let mut buf = [0u8; 16];
/// let n = receiver.receive_into(&mut buf).await.unwrap();
/// assert_eq!(&buf[..n], b"hi");
/// # });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SocketReceiver<'a>(&'a ByteSocket);

impl<'a> SocketReceiver<'a> {
    pub(crate) fn new(sock: &'a ByteSocket) -> Self {
        Self(sock)
    }

    /// Receives at least one and at most `buf.len()` bytes into `buf`: the stream's own
    /// `receive_into`, as a named future that needs no allocation.
    ///
    /// # Errors
    ///
    /// As the stream's `receive_into`: [`StreamError::EndOfStream`] once the peer closed its
    /// side, [`StreamError::InvalidArgument`] for an empty `buf`, [`StreamError::Busy`] while
    /// another task receives, [`StreamError::Closed`] once the stream is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled receive received nothing.
    ///
    /// ```
    /// # anyio::run(async {
    /// # use anyio::net::{connect_tcp, TcpListener};
    /// # use anyio::streams::{ByteReceiveStream, ByteSendStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// # let port = listener.local_addr().unwrap().port();
    /// # let (client, server) = futures::join!(connect_tcp("127.0.0.1", port), listener.accept());
    /// # let (client, server) = (client.unwrap(), server.unwrap());
    /// client.send_eof().await.unwrap();
    /// let mut buf = [0u8; 16];
    /// let end = server.socket_receiver().unwrap().receive_into(&mut buf).await;
    /// assert!(matches!(end, Err(anyio::streams::StreamError::EndOfStream)));
    /// # });
    /// ```
    pub fn receive_into(self, buf: &'a mut [u8]) -> ReceiveInto<'a> {
        self.0.receive_into(buf)
    }
}

/// A stream socket's receive in progress: the future of [`SocketReceiver::receive_into`], and
/// of the inherent `receive_into` of [`TcpStream`](super::TcpStream) and
/// [`UnixStream`](super::UnixStream). One hand-written future: no nested state machines on the
/// hottest path.
///
/// ```
/// # anyio::run(async {
/// # use anyio::net::{connect_tcp, TcpListener};
/// # let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// # let port = listener.local_addr().unwrap().port();
/// # let (client, server) = futures::join!(connect_tcp("127.0.0.1", port), listener.accept());
/// # let (client, server) = (client.unwrap(), server.unwrap());
/// client.send(b"hi").await.unwrap();
/// let mut buf = [0u8; 2];
/// let receive: anyio::net::ReceiveInto<'_> = server.receive_into(&mut buf);
/// assert_eq!(receive.await.unwrap(), 2);
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct ReceiveInto<'a> {
    sock: &'a ByteSocket,
    buf: &'a mut [u8],
    in_use: Option<InUse<'a>>,
    wait: OpWait,
}

impl fmt::Debug for ReceiveInto<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiveInto").field("len", &self.buf.len()).finish_non_exhaustive()
    }
}

impl Future for ReceiveInto<'_> {
    type Output = Result<usize, StreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let want = this.buf.len();
        if want == 0 {
            return Poll::Ready(Err(StreamError::InvalidArgument(
                "the receive buffer must hold at least 1 byte",
            )));
        }
        let sock = this.sock;
        let buf = &mut *this.buf;
        // A read shorter than the buffer emptied the socket (`n == 0` is the end).
        let mut attempt = IoAttempt(|s: &socket2::Socket| (&*s).read(buf), |&n: &usize| n > 0 && n < want);
        match sock.core.poll_op(Dir::Receive, cx, &mut this.in_use, &mut this.wait, &mut attempt) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(StreamError::EndOfStream)),
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A socket operation as a stream operation, in one future (no nested async fns on the hot
/// path): what may refuse it before it starts, and the mapping of its result.
struct StreamOp<'a, A: Attempt, M> {
    op: IoOp<'a, A>,
    refuse: Refuse<'a>,
    finish: M,
}

/// Why an operation may fail before it starts. `Copy` and without a destructor, so the future
/// costs nothing to drop on this account.
#[derive(Clone, Copy)]
enum Refuse<'a> {
    No,
    /// `Closed` if this flag is set by the time the operation first runs (`send` after
    /// `send_eof`).
    IfSet(&'a AtomicBool),
}

impl<A: Attempt + Unpin, T, M: FnMut(A::Output) -> Result<T, StreamError> + Unpin> Future
    for StreamOp<'_, A, M>
{
    type Output = Result<T, StreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match std::mem::replace(&mut this.refuse, Refuse::No) {
            Refuse::No => {}
            Refuse::IfSet(flag) => {
                if flag.load(Ordering::Acquire) {
                    return Poll::Ready(Err(StreamError::Closed));
                }
            }
        }
        match Pin::new(&mut this.op).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready((this.finish)(r)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What a poll-style adapter reports for an anyio failure: the same kinds std's sockets use,
/// with cancellation carried as the error's payload.
pub(crate) fn compat_error(e: OpError) -> io::Error {
    match e {
        OpError::Io(e) => e,
        OpError::Closed => io::Error::new(io::ErrorKind::NotConnected, crate::error::ClosedResourceError),
        OpError::Busy(b) => io::Error::other(b),
        OpError::Cancelled(c) => io::Error::other(c),
    }
}

/// Implements the stream traits, typed attributes and the futures-io (and, with the `tokio`
/// feature, tokio) `AsyncRead`/`AsyncWrite` for a type whose `sock` field is a `ByteSocket`.
macro_rules! byte_stream_impls {
    ($ty:ty) => {
        impl $crate::streams::TypedAttributeProvider for $ty {
            fn extra_attribute(&self, key: std::any::TypeId) -> Option<Box<dyn std::any::Any + Send>> {
                self.sock.attribute(key)
            }
        }

        #[async_trait::async_trait]
        impl $crate::streams::AsyncResource for $ty {
            /// Closes the socket at once; operations blocked in other tasks end with
            /// [`StreamError::Closed`](crate::streams::StreamError::Closed).
            async fn aclose(&self) -> Result<(), $crate::streams::StreamError> {
                self.sock.close();
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::streams::ByteReceiveStream for $ty {
            async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, $crate::streams::StreamError> {
                self.sock.receive_into(buf).await
            }
            async fn receive(&self, max_bytes: usize) -> Result<Vec<u8>, $crate::streams::StreamError> {
                self.sock.receive(max_bytes).await
            }
            fn socket_receiver(&self) -> Option<$crate::net::SocketReceiver<'_>> {
                Some($crate::net::SocketReceiver::new(&self.sock))
            }
        }

        #[async_trait::async_trait]
        impl $crate::streams::ByteSendStream for $ty {
            async fn send(&self, data: &[u8]) -> Result<(), $crate::streams::StreamError> {
                self.sock.send(data).await
            }

            /// One write of what the socket takes now. Cancel safe: a cancelled call wrote
            /// nothing.
            async fn send_some(&self, data: &[u8]) -> Result<usize, $crate::streams::StreamError> {
                self.sock.send_some(data).await
            }

            /// One vectored write of what the socket's buffer takes now.
            fn try_send_vectored(
                &self,
                bufs: &[std::io::IoSlice<'_>],
            ) -> Result<Option<usize>, $crate::streams::StreamError> {
                self.sock.try_send_vectored(bufs)
            }
        }

        #[async_trait::async_trait]
        impl $crate::streams::ByteStream for $ty {
            async fn send_eof(&self) -> Result<(), $crate::streams::StreamError> {
                self.sock.send_eof().await
            }
        }

        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.get_mut().sock.poll_read(cx, buf)
            }
        }

        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.get_mut().sock.poll_write(cx, buf)
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.get_mut().sock.poll_shutdown()
            }
        }

        #[cfg(feature = "tokio")]
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let n = std::task::ready!(self.get_mut().sock.poll_read(cx, buf.initialize_unfilled()))?;
                buf.advance(n);
                std::task::Poll::Ready(Ok(()))
            }
        }

        #[cfg(feature = "tokio")]
        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.get_mut().sock.poll_write(cx, buf)
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.get_mut().sock.poll_shutdown()
            }
        }
    };
}
pub(crate) use byte_stream_impls;
