//! Unix domain sockets: streams (`connect_unix`, `create_unix_listener`, `UnixStream` with file
//! descriptor passing, `UnixListener`) and datagram sockets (`create_unix_datagram_socket`,
//! `create_connected_unix_datagram_socket`).

use std::any::{Any, TypeId};
use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use socket2::{Domain, Socket, Type};

use crate::streams::{AsyncResource, StreamError, TypedAttributeProvider};

use super::addr::{unix_sockaddr, SocketAddress};
use super::error::SocketError;
use super::io::{Dir, IoCore, SEND_FLAGS};
use super::listener::Listener;
use super::stream::{byte_stream_impls, socket_attribute, ByteSocket, STREAM_ACTIONS};
use super::tcp::{accept_raw, DEFAULT_BACKLOG};

pub use super::addr::UnixAddress;
pub use super::unix_datagram::{
    create_connected_unix_datagram_socket, create_unix_datagram_socket, ConnectedUnixDatagramSocket,
    UnixDatagramSocket,
};

/// A connected Unix domain stream socket: a [`ByteStream`](crate::streams::ByteStream) that can also
/// pass file descriptors.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let (a, b) = anyio::net::UnixStream::pair()?;
/// a.send(b"over a socketpair").await?;
/// assert_eq!(b.receive(100).await?, b"over a socketpair");
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
#[doc(alias = "UNIXSocketStream")]
pub struct UnixStream {
    sock: ByteSocket,
}

byte_stream_impls!(UnixStream);

impl UnixStream {
    fn from_core(core: IoCore) -> Self {
        Self { sock: ByteSocket::new(core) }
    }

    /// A pair of connected sockets (`socketpair`).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let (a, b) = anyio::net::UnixStream::pair()?;
    /// # drop((a, b));
    /// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
    /// ```
    pub fn pair() -> Result<(Self, Self), SocketError> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
        Ok((
            Self::from_core(IoCore::new(a, STREAM_ACTIONS)?),
            Self::from_core(IoCore::new(b, STREAM_ACTIONS)?),
        ))
    }

    /// Adopts a connected std socket into the current runtime (switched to non-blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = anyio::net::UnixStream::from_std(a)?;
    /// # drop(a);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> Result<Self, SocketError> {
        Ok(Self::from_core(IoCore::new(stream, STREAM_ACTIONS)?))
    }

    /// Receives up to `max_bytes` bytes (at least one).
    ///
    /// # Errors
    ///
    /// As [`TcpStream::receive`](crate::net::TcpStream::receive).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled receive has taken nothing from the socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let (a, b) = anyio::net::UnixStream::pair()?;
    /// a.send(b"hello").await?;
    /// assert_eq!(b.receive(3).await?, b"hel"); // at most `max_bytes`
    /// assert_eq!(b.receive(100).await?, b"lo");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn receive(&self, max_bytes: usize) -> Result<Vec<u8>, StreamError> {
        self.sock.receive(max_bytes).await
    }

    /// Receives into `buf`, returning how many bytes arrived (at least one).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let (a, b) = anyio::net::UnixStream::pair()?;
    /// a.send(b"hi").await?;
    /// let mut buf = [0; 16];
    /// let n = b.receive_into(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"hi");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    // Returns the socket's future itself: an `async fn` wrapper here would add a state machine
    // per operation on the hottest path.
    pub fn receive_into<'a>(&'a self, buf: &'a mut [u8]) -> super::ReceiveInto<'a> {
        self.sock.receive_into(buf)
    }

    /// Sends all of `data`.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled send may have sent a prefix of `data`.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let (a, b) = anyio::net::UnixStream::pair()?;
    /// a.send(b"ping").await?;
    /// assert_eq!(b.receive(100).await?, b"ping");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn send<'a>(&'a self, data: &'a [u8]) -> impl Future<Output = Result<(), StreamError>> + Send + 'a {
        self.sock.send(data)
    }

    /// Half-closes the connection (the peer receives end of stream).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it does not wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::streams::StreamError;
    /// let (a, b) = anyio::net::UnixStream::pair()?;
    /// a.send_eof().await?;
    /// assert!(matches!(b.receive(100).await, Err(StreamError::EndOfStream)));
    /// b.send(b"reply").await?; // `a` can still receive
    /// assert_eq!(a.receive(100).await?, b"reply");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn send_eof(&self) -> Result<(), StreamError> {
        self.sock.send_eof().await
    }

    /// Closes the socket; operations blocked in other tasks end with `StreamError::Closed`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::streams::StreamError;
    /// let (a, b) = anyio::net::UnixStream::pair()?;
    /// a.aclose().await?;
    /// assert!(matches!(a.send(b"x").await, Err(StreamError::Closed)));
    /// assert!(matches!(b.receive(100).await, Err(StreamError::EndOfStream)));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn aclose(&self) -> Result<(), StreamError> {
        self.sock.close();
        Ok(())
    }

    /// This socket's address.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::{connect_unix, create_unix_listener}, net::unix::UnixAddress};
    /// let path = std::env::temp_dir().join(format!("anyio-doc-stream-local-address-{}.sock", std::process::id()));
    /// let listener = create_unix_listener(&path).await?;
    /// let client = connect_unix(&path).await?;
    /// let server = listener.accept().await?;
    /// assert_eq!(server.local_addr()?, UnixAddress::Pathname(path.clone()));
    /// assert_eq!(client.local_addr()?, UnixAddress::Unnamed); // the client did not bind
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    #[doc(alias = "local_address")]
    pub fn local_addr(&self) -> Result<UnixAddress, StreamError> {
        unix(self.sock.local_address()?)
    }

    /// The peer's address.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::{connect_unix, create_unix_listener}, net::unix::UnixAddress};
    /// let path = std::env::temp_dir().join(format!("anyio-doc-stream-peer-address-{}.sock", std::process::id()));
    /// let listener = create_unix_listener(&path).await?;
    /// let client = connect_unix(&path).await?;
    /// assert_eq!(client.peer_addr()?, UnixAddress::Pathname(path.clone()));
    /// # drop(listener); std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    #[doc(alias = "remote_address")]
    pub fn peer_addr(&self) -> Result<UnixAddress, StreamError> {
        unix(self.sock.remote_address()?)
    }

    /// Sends `message` (at least one byte) together with the descriptors `fds` (`SCM_RIGHTS`),
    /// as AnyIO's `UNIXSocketStream.send_fds`. The receiver gets duplicates; these stay open.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message and descriptors are sent in one system call or not at all.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::os::fd::AsFd;
    /// let (a, b) = anyio::net::UnixStream::pair()?;
    /// let file = std::fs::File::open("/dev/null")?;
    /// a.send_fds(b"x", &[file.as_fd()]).await?;
    /// let (msg, fds) = b.receive_fds(10, 4).await?;
    /// assert_eq!((msg.as_slice(), fds.len()), (&b"x"[..], 1));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn send_fds(&self, message: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), StreamError> {
        if message.is_empty() {
            return Err(StreamError::InvalidArgument("send_fds needs a message of at least 1 byte"));
        }
        if fds.is_empty() {
            return Err(StreamError::InvalidArgument("send_fds needs at least one file descriptor"));
        }
        let mut sent = 0;
        self.sock
            .core
            .io(Dir::Send, |s| {
                // The descriptors travel with the first byte; the rest is an ordinary send.
                if sent == 0 {
                    sent = sendmsg_fds(s, message, fds)?;
                }
                while sent < message.len() {
                    sent += s.send_with_flags(&message[sent..], SEND_FLAGS)?;
                }
                Ok(())
            })
            .await
            .map_err(Into::into)
    }

    /// Receives up to `msglen` bytes and up to `maxfds` descriptors sent with
    /// [`send_fds`](Self::send_fds).
    ///
    /// # Errors
    ///
    /// `EndOfStream` when the peer has closed and nothing arrived; `InvalidArgument` when
    /// `msglen` or `maxfds` is 0.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is taken from the socket unless it is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::os::{fd::AsFd, unix::fs::MetadataExt};
    /// let (a, b) = anyio::net::UnixStream::pair()?;
    /// let file = std::fs::File::open("/dev/null")?;
    /// a.send_fds(b"x", &[file.as_fd()]).await?;
    /// let (msg, mut fds) = b.receive_fds(10, 4).await?;
    /// let received = std::fs::File::from(fds.remove(0)); // a new descriptor of the same file
    /// assert_eq!((msg, received.metadata()?.ino()), (b"x".to_vec(), file.metadata()?.ino()));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn receive_fds(
        &self,
        msglen: usize,
        maxfds: usize,
    ) -> Result<(Vec<u8>, Vec<OwnedFd>), StreamError> {
        if msglen == 0 || maxfds == 0 {
            return Err(StreamError::InvalidArgument("receive_fds needs msglen and maxfds of at least 1"));
        }
        let mut buf = vec![0u8; msglen];
        let (n, fds) = self.sock.core.io(Dir::Receive, |s| recvmsg_fds(s, &mut buf, maxfds)).await?;
        if n == 0 && fds.is_empty() {
            return Err(StreamError::EndOfStream);
        }
        buf.truncate(n);
        Ok((buf, fds))
    }
}

/// The Unix address in `a`; an IP address here means the socket is not a Unix socket.
pub(crate) fn unix(a: SocketAddress) -> Result<UnixAddress, StreamError> {
    match a {
        SocketAddress::Unix(u) => Ok(u),
        SocketAddress::Inet(_) => Err(StreamError::InvalidArgument("not a Unix socket")),
    }
}

// Descriptor passing goes through rustix, whose ancillary-data buffers build and parse the
// SCM_RIGHTS control messages safely (and close any received descriptor nobody claimed), so
// this module needs no `unsafe` of its own.

#[cfg(any(target_os = "linux", target_os = "android"))]
const FD_SEND_FLAGS: SendFlags = SendFlags::NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const FD_SEND_FLAGS: SendFlags = SendFlags::empty();

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const FD_RECV_FLAGS: RecvFlags = RecvFlags::CMSG_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const FD_RECV_FLAGS: RecvFlags = RecvFlags::empty();

/// Sends `message` with `fds` attached (one SCM_RIGHTS message); returns the bytes sent.
fn sendmsg_fds(sock: &Socket, message: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        // Only if the buffer were too small, which `cmsg_space!` rules out.
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors for one message"));
    }
    Ok(sendmsg(sock, &[IoSlice::new(message)], &mut control, FD_SEND_FLAGS)?)
}

/// Receives into `buf` and up to `maxfds` descriptors; returns the bytes received and the
/// descriptors, now owned by this process.
fn recvmsg_fds(sock: &Socket, buf: &mut [u8], maxfds: usize) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(maxfds))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(sock, &mut [IoSliceMut::new(buf)], &mut control, FD_RECV_FLAGS)?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    // The buffer's alignment padding can leave room for more than asked: close the extras.
    fds.truncate(maxfds);
    Ok((msg.bytes, fds))
}

/// Connects to the Unix socket at `path` (AnyIO's `connect_unix`). A path starting with a NUL
/// byte names Linux's abstract namespace.
///
/// # Errors
///
/// [`SocketError::InvalidArgument`] for a path too long for a socket address; otherwise the
/// OS error (no such file, connection refused) in [`SocketError::Io`], naming the path.
///
/// # Cancel safety
///
/// Cancel safe: a cancelled connect closes its socket.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let dir = std::env::temp_dir().join(format!("anyio-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("connect.sock");
/// let listener = anyio::net::create_unix_listener(&path).await?;
/// let client = anyio::net::connect_unix(&path).await?;
/// let server = listener.accept().await?;
/// client.send(b"hi").await?;
/// assert_eq!(server.receive(10).await?, b"hi");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn connect_unix(path: impl AsRef<Path>) -> Result<UnixStream, SocketError> {
    let path = path.as_ref();
    let address = unix_sockaddr(path)?;
    let named = |e: io::Error| {
        SocketError::Io(io::Error::new(e.kind(), format!("could not connect to {}: {e}", path.display())))
    };
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    // Connect before registering with the reactor: an unconnected socket polls as hung up,
    // which tokio keeps as final readiness (see `connect_one` in tcp.rs).
    let in_progress = loop {
        match socket.connect(&address) {
            Ok(()) => break false,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => break true,
            // The listener's backlog is full: no readiness event announces room, so retry.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                crate::time::sleep(Duration::from_millis(1)).await?;
            }
            Err(e) => return Err(named(e)),
        }
    };
    let core = IoCore::new_nonblocking(socket, STREAM_ACTIONS)?;
    if in_progress {
        core.ready(Dir::Send).await?;
        if let Some(e) = core.with_socket(|s| s.take_error())? {
            return Err(named(e));
        }
    }
    Ok(UnixStream::from_core(core))
}

/// A listening Unix domain stream socket.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// // An abstract-namespace socket (Linux): no file to clean up.
/// # #[cfg(target_os = "linux")] {
/// let name = format!("\0anyio-doc-{}", std::process::id());
/// let listener = anyio::net::create_unix_listener(&name).await?;
/// let client = anyio::net::connect_unix(&name).await?;
/// # drop((listener, client));
/// # }
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
#[doc(alias = "UNIXListener")]
pub struct UnixListener {
    core: IoCore,
}

const LISTENER_ACTIONS: [&str; 2] = ["accepting connections from", "sending to"];

impl UnixListener {
    /// Adopts a bound, listening std socket into the current runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let path = std::env::temp_dir().join(format!("anyio-doc-adopt-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = anyio::net::UnixListener::from_std(std::os::unix::net::UnixListener::bind(&path)?)?;
    /// # drop(listener); std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> Result<Self, SocketError> {
        Ok(Self { core: IoCore::new(listener, LISTENER_ACTIONS)? })
    }

    /// The address the socket listens on.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_unix_listener, net::unix::UnixAddress};
    /// let path = std::env::temp_dir().join(format!("anyio-doc-listener-local-address-{}.sock", std::process::id()));
    /// let listener = create_unix_listener(&path).await?;
    /// assert_eq!(listener.local_addr()?, UnixAddress::Pathname(path.clone()));
    /// # drop(listener); std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    #[doc(alias = "local_address")]
    pub fn local_addr(&self) -> Result<UnixAddress, StreamError> {
        unix(SocketAddress::from_sockaddr(&self.core.with_socket(|s| s.local_addr())?))
    }

    /// Accepts the next connection.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no connection is taken from the backlog unless it is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let path = std::env::temp_dir().join(format!("anyio-doc-listener-accept-{}.sock", std::process::id()));
    /// let listener = anyio::net::create_unix_listener(&path).await?;
    /// let client = anyio::net::connect_unix(&path).await?;
    /// let server = listener.accept().await?;
    /// server.send(b"welcome").await?;
    /// assert_eq!(client.receive(100).await?, b"welcome");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn accept(&self) -> Result<UnixStream, StreamError> {
        let (socket, peer) = self.core.io(Dir::Receive, accept_raw).await?;
        let core = IoCore::new_nonblocking(socket, STREAM_ACTIONS).map_err(StreamError::Io)?;
        // Kept from accept(2): `getpeername` fails once the peer has reset the connection.
        Ok(UnixStream { sock: ByteSocket::with_peer(core, Some(SocketAddress::from_sockaddr(&peer))) })
    }

    /// Closes the socket (the socket file stays; remove it if it should go).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_unix_listener, streams::StreamError};
    /// let path = std::env::temp_dir().join(format!("anyio-doc-listener-aclose-{}.sock", std::process::id()));
    /// let listener = create_unix_listener(&path).await?;
    /// listener.aclose().await?;
    /// assert!(matches!(listener.accept().await, Err(StreamError::Closed)));
    /// assert!(path.exists()); // the socket file stays
    /// std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn aclose(&self) -> Result<(), StreamError> {
        self.core.close();
        Ok(())
    }
}

impl TypedAttributeProvider for UnixListener {
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        socket_attribute(&self.core, key, false)
    }
}

#[async_trait]
impl AsyncResource for UnixListener {
    async fn aclose(&self) -> Result<(), StreamError> {
        self.core.close();
        Ok(())
    }
}

#[async_trait]
impl Listener for UnixListener {
    type Stream = UnixStream;
    async fn accept(&self) -> Result<UnixStream, StreamError> {
        UnixListener::accept(self).await
    }
}

/// Options of [`create_unix_listener_with`].
///
/// # Examples
///
/// ```
/// let opts = anyio::net::unix::UnixListenerOptions::new().mode(0o600).backlog(128);
/// # drop(opts);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct UnixListenerOptions {
    mode: Option<u32>,
    backlog: u32,
}

impl Default for UnixListenerOptions {
    fn default() -> Self {
        Self { mode: None, backlog: DEFAULT_BACKLOG }
    }
}

impl UnixListenerOptions {
    /// Default permissions (the umask's), backlog 65536.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::connect_unix, net::unix::{create_unix_listener_with, UnixListenerOptions}};
    /// let path = std::env::temp_dir().join(format!("anyio-doc-options-new-{}.sock", std::process::id()));
    /// let listener = create_unix_listener_with(&path, UnixListenerOptions::new()).await?;
    /// let client = connect_unix(&path).await?;
    /// # drop((listener, client)); std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the socket file's permission bits after binding.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::os::unix::fs::PermissionsExt;
    /// use anyio::net::unix::{create_unix_listener_with, UnixListenerOptions};
    /// let path = std::env::temp_dir().join(format!("anyio-doc-options-mode-{}.sock", std::process::id()));
    /// // Only the owner and the owner's group may connect.
    /// let listener = create_unix_listener_with(&path, UnixListenerOptions::new().mode(0o660)).await?;
    /// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o660);
    /// # drop(listener); std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }
    /// The listen backlog (capped at 65536).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::connect_unix, net::unix::{create_unix_listener_with, UnixListenerOptions}};
    /// let path = std::env::temp_dir().join(format!("anyio-doc-options-backlog-{}.sock", std::process::id()));
    /// let listener = create_unix_listener_with(&path, UnixListenerOptions::new().backlog(8)).await?;
    /// let client = connect_unix(&path).await?; // waits in the backlog until accepted
    /// let server = listener.accept().await?;
    /// # drop((client, server)); std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }
}

/// Listens on the Unix socket `path` (AnyIO's `create_unix_listener`). A stale socket file at
/// `path` (left by a process that exited) is removed first; any other kind of file is an error.
/// A path starting with a NUL byte names Linux's abstract namespace.
///
/// # Errors
///
/// [`SocketError::InvalidArgument`] for a path too long for a socket address;
/// [`SocketError::Bind`] when the path cannot be bound (a directory is missing, a
/// non-socket file is in the way, no permission).
///
/// # Cancel safety
///
/// Cancel safe: it does not wait.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let path = std::env::temp_dir().join(format!("anyio-doc-listen-{}.sock", std::process::id()));
/// let first = anyio::net::create_unix_listener(&path).await?;
/// drop(first); // leaves the socket file behind
/// let second = anyio::net::create_unix_listener(&path).await?; // removes the stale file
/// # drop(second); std::fs::remove_file(&path)?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn create_unix_listener(path: impl AsRef<Path>) -> Result<UnixListener, SocketError> {
    create_unix_listener_with(path, UnixListenerOptions::new()).await
}

/// [`create_unix_listener`] with permission bits or a backlog.
///
/// # Cancel safety
///
/// Cancel safe: it does not wait.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::os::unix::fs::PermissionsExt;
/// let path = std::env::temp_dir().join(format!("anyio-doc-mode-{}.sock", std::process::id()));
/// let l = anyio::net::unix::create_unix_listener_with(&path, anyio::net::unix::UnixListenerOptions::new().mode(0o600)).await?;
/// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
/// # drop(l); std::fs::remove_file(&path)?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn create_unix_listener_with(
    path: impl AsRef<Path>,
    opts: UnixListenerOptions,
) -> Result<UnixListener, SocketError> {
    crate::lowlevel::checkpoint_if_cancelled()?;
    let path = path.as_ref();
    let address = unix_sockaddr(path)?;
    let bind_error = |source| SocketError::Bind {
        address: SocketAddress::Unix(UnixAddress::Pathname(path.to_path_buf())),
        source,
    };
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(path).map_err(bind_error)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&address).map_err(bind_error)?;
    if let Some(mode) = opts.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_error)?;
    }
    socket.listen(opts.backlog.min(DEFAULT_BACKLOG) as i32).map_err(bind_error)?;
    Ok(UnixListener { core: IoCore::new(socket, LISTENER_ACTIONS)? })
}
