//! TCP: `connect_tcp` (Happy Eyeballs), `create_tcp_listener`, `TcpStream`, `TcpListener`.

use std::any::{Any, TypeId};
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::rt::{self, Timer};
use crate::streams::{AsyncResource, StreamError, TypedAttributeProvider};

use super::addr::{AddressFamily, SocketAddress};
use super::dns::{getaddrinfo, ip_literal, AddrInfoHints, SocketKind};
use super::error::{ConnectAttempt, OpError, SocketError};
use super::io::{Dir, IoCore};
use super::listener::{Listener, MultiListener};
use super::stream::{byte_stream_impls, socket_attribute, ByteSocket, STREAM_ACTIONS};

/// The default delay before Happy Eyeballs starts the next connection attempt (RFC 8305).
///
/// # Examples
///
/// ```
/// use anyio::net::tcp::{HAPPY_EYEBALLS_DELAY, TcpConnectOptions};
/// assert_eq!(HAPPY_EYEBALLS_DELAY, std::time::Duration::from_millis(250));
/// // Half the default, for a client on a fast network:
/// let opts = TcpConnectOptions::new().happy_eyeballs_delay(HAPPY_EYEBALLS_DELAY / 2);
/// # drop(opts);
/// ```
pub const HAPPY_EYEBALLS_DELAY: Duration = Duration::from_millis(250);

/// A connected TCP socket: a [`ByteStream`](crate::streams::ByteStream) with `TCP_NODELAY` on.
///
/// Receiving and sending may run in two tasks at once; two tasks receiving (or sending) at once
/// get [`StreamError::Busy`]. It also implements futures-io's and (feature `tokio`) tokio's
/// `AsyncRead`/`AsyncWrite`, for crates written against either.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     net::{connect_tcp, create_tcp_listener, Listener, LocalPort}, net::tcp::TcpListenerOptions,
///     streams::TypedAttributeExt,
/// };
/// let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
/// let client = connect_tcp("127.0.0.1", listener.extra::<LocalPort>()?).await?;
/// let server = listener.accept().await?;
/// client.send(b"ping").await?;
/// assert_eq!(server.receive(100).await?, b"ping");
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
#[doc(alias = "SocketStream")]
pub struct TcpStream {
    sock: ByteSocket,
}

byte_stream_impls!(TcpStream);

impl TcpStream {
    fn from_core(core: IoCore) -> Self {
        Self { sock: ByteSocket::new(core) }
    }

    /// A stream whose peer is known (accepted or connected here): its address stays
    /// available after a reset, when `getpeername` fails.
    fn with_peer(core: IoCore, peer: SocketAddr) -> Self {
        Self { sock: ByteSocket::with_peer(core, Some(SocketAddress::Inet(peer))) }
    }

    /// Adopts a connected std socket (switched to non-blocking mode) into the current runtime.
    /// Socket options, `TCP_NODELAY` included, are left as they are.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let std_client = std::net::TcpStream::connect(server.local_addr()?)?;
    /// let client = anyio::net::TcpStream::from_std(std_client)?;
    /// assert_eq!(client.peer_addr()?, server.local_addr()?);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn from_std(stream: std::net::TcpStream) -> Result<Self, SocketError> {
        Ok(Self::from_core(IoCore::new(stream, STREAM_ACTIONS)?))
    }

    /// Receives up to `max_bytes` bytes (at least one).
    ///
    /// # Errors
    ///
    /// [`StreamError::EndOfStream`] once the peer has sent everything and half-closed or
    /// closed; `Broken` when the connection was reset (the OS error is the source); `Closed`
    /// when this stream was closed; `Busy` when another task is receiving;
    /// `InvalidArgument` for `max_bytes == 0`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled receive has taken nothing from the socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let client = anyio::net::connect_tcp("127.0.0.1", listener.local_addr()?.port()).await?;
    /// let server = listener.accept().await?;
    /// client.send(b"hello").await?;
    /// assert_eq!(server.receive(3).await?, b"hel"); // at most `max_bytes`
    /// assert_eq!(server.receive(100).await?, b"lo");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn receive(&self, max_bytes: usize) -> Result<Vec<u8>, StreamError> {
        self.sock.receive(max_bytes).await
    }

    /// Receives into `buf`, returning how many bytes arrived (at least one).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`receive`](Self::receive).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let client = anyio::net::connect_tcp("127.0.0.1", listener.local_addr()?.port()).await?;
    /// let server = listener.accept().await?;
    /// client.send(b"hi").await?;
    /// let mut buf = [0; 16];
    /// let n = server.receive_into(&mut buf).await?;
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
    /// Not cancel safe: a send cancelled while waiting for room may have sent a prefix of
    /// `data`. Close the stream after a cancelled send.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let client = anyio::net::connect_tcp("127.0.0.1", listener.local_addr()?.port()).await?;
    /// let server = listener.accept().await?;
    /// client.send(b"ping").await?;
    /// assert_eq!(server.receive(100).await?, b"ping");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn send<'a>(&'a self, data: &'a [u8]) -> impl Future<Output = Result<(), StreamError>> + Send + 'a {
        self.sock.send(data)
    }

    /// Half-closes the connection: the peer receives end of stream, while this side can still
    /// receive.
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
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let client = anyio::net::connect_tcp("127.0.0.1", listener.local_addr()?.port()).await?;
    /// let server = listener.accept().await?;
    /// client.send_eof().await?;
    /// assert!(matches!(server.receive(100).await, Err(StreamError::EndOfStream)));
    /// server.send(b"still open").await?; // the other direction still works
    /// assert_eq!(client.receive(100).await?, b"still open");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn send_eof(&self) -> Result<(), StreamError> {
        self.sock.send_eof().await
    }

    /// Closes the socket. Operations blocked in other tasks end with `StreamError::Closed`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the socket is closed even in a cancelled scope.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::streams::StreamError;
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let client = anyio::net::connect_tcp("127.0.0.1", listener.local_addr()?.port()).await?;
    /// let server = listener.accept().await?;
    /// client.aclose().await?;
    /// assert!(matches!(client.send(b"x").await, Err(StreamError::Closed)));
    /// assert!(matches!(server.receive(100).await, Err(StreamError::EndOfStream)));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn aclose(&self) -> Result<(), StreamError> {
        self.sock.close();
        Ok(())
    }

    /// The local address.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let client = anyio::net::connect_tcp("127.0.0.1", listener.local_addr()?.port()).await?;
    /// let server = listener.accept().await?;
    /// assert_eq!(client.local_addr()?, server.peer_addr()?);
    /// assert!(client.local_addr()?.ip().is_loopback());
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> Result<SocketAddr, StreamError> {
        inet(self.sock.local_address()?)
    }

    /// The peer's address.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let client = anyio::net::connect_tcp("127.0.0.1", listener.local_addr()?.port()).await?;
    /// assert_eq!(client.peer_addr()?, listener.local_addr()?);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn peer_addr(&self) -> Result<SocketAddr, StreamError> {
        inet(self.sock.remote_address()?)
    }

    /// Turns Nagle's algorithm off (`true`, the default for anyio's connections) or on.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let client = anyio::net::connect_tcp("127.0.0.1", listener.local_addr()?.port()).await?;
    /// client.set_nodelay(false)?; // let the kernel coalesce small writes
    /// assert!(!client.nodelay()?);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> Result<(), StreamError> {
        Ok(self.sock.core.with_socket(|s| s.set_tcp_nodelay(nodelay))?)
    }

    /// Whether `TCP_NODELAY` is on.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let client = anyio::net::connect_tcp("127.0.0.1", listener.local_addr()?.port()).await?;
    /// let server = listener.accept().await?;
    /// assert!(client.nodelay()? && server.nodelay()?); // on for anyio's connections
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn nodelay(&self) -> Result<bool, StreamError> {
        Ok(self.sock.core.with_socket(|s| s.tcp_nodelay())?)
    }
}

fn inet(a: SocketAddress) -> Result<SocketAddr, StreamError> {
    a.as_inet().ok_or(StreamError::InvalidArgument("not an IP socket"))
}

/// Options of [`connect_tcp_with`].
///
/// # Examples
///
/// ```
/// use anyio::net::tcp::TcpConnectOptions;
/// let opts = TcpConnectOptions::new().local_host("127.0.0.1".parse().unwrap())
///     .happy_eyeballs_delay(std::time::Duration::from_millis(100));
/// # drop(opts);
/// ```
#[derive(Clone, Debug)]
pub struct TcpConnectOptions {
    local_host: Option<IpAddr>,
    local_port: u16,
    delay: Duration,
}

impl Default for TcpConnectOptions {
    fn default() -> Self {
        Self { local_host: None, local_port: 0, delay: HAPPY_EYEBALLS_DELAY }
    }
}

impl TcpConnectOptions {
    /// No local binding, a 250 ms Happy Eyeballs delay.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::net::tcp::{connect_tcp_with, TcpConnectOptions};
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// let stream = connect_tcp_with("127.0.0.1", port, TcpConnectOptions::new()).await?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Binds the local end to this address; only remote addresses of its family are tried.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::SocketError, net::tcp::{connect_tcp_with, TcpConnectOptions}};
    /// // An IPv6 local address leaves no address of an IPv4-only host to try.
    /// let opts = TcpConnectOptions::new().local_host("::1".parse()?);
    /// let err = connect_tcp_with("127.0.0.1", 80, opts).await.unwrap_err();
    /// assert!(matches!(err, SocketError::InvalidArgument(_)));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_host(mut self, host: IpAddr) -> Self {
        self.local_host = Some(host);
        self
    }
    /// Binds the local end to this port (0: any).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::net::tcp::{connect_tcp_with, TcpConnectOptions};
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    /// let opts = TcpConnectOptions::new().local_port(free);
    /// let stream = connect_tcp_with("127.0.0.1", listener.local_addr()?.port(), opts).await?;
    /// assert_eq!(stream.local_addr()?.port(), free);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = port;
        self
    }
    /// How long an attempt may go unanswered before the next address is tried as well.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::time::Duration;
    /// use anyio::net::tcp::{connect_tcp_with, TcpConnectOptions};
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// // Give each of localhost's addresses 50 ms before also trying the next one.
    /// let opts = TcpConnectOptions::new().happy_eyeballs_delay(Duration::from_millis(50));
    /// let stream = connect_tcp_with("localhost", port, opts).await?;
    /// assert_eq!(stream.peer_addr()?.port(), port);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Connects to `host:port` over TCP (AnyIO's `connect_tcp`), with `TCP_NODELAY` on.
///
/// `host` is a name or an IP address. A name is resolved, and its addresses are tried with
/// Happy Eyeballs (RFC 8305), as AnyIO does: IPv6 and IPv4 addresses interleaved (IPv6 first), the next
/// attempt started when the previous one fails or after 250 ms without an answer, the first
/// connection to succeed wins, the other attempts are cancelled and any late winner closed.
///
/// # Errors
///
/// [`SocketError::InvalidArgument`] for port 0; [`SocketError::Resolve`] when the name does not
/// resolve; [`SocketError::Connect`] when every attempt failed, listing each address and its
/// error; [`SocketError::Cancelled`] when cancelled.
///
/// # Cancel safety
///
/// Cancel safe: a cancelled connect closes every socket it opened.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::net::{connect_tcp, SocketError};
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let stream = connect_tcp("localhost", listener.local_addr()?.port()).await?;
/// assert!(stream.nodelay()?);
///
/// // Nothing listens on a port that was just released: the error names the address.
/// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
/// let err = connect_tcp("127.0.0.1", port).await.unwrap_err();
/// assert!(matches!(err, SocketError::Connect { .. }));
/// assert!(err.to_string().contains(&format!("127.0.0.1:{port}")));
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, SocketError> {
    connect_tcp_with(host, port, TcpConnectOptions::new()).await
}

/// [`connect_tcp`] with a local address or port, or another Happy Eyeballs delay.
///
/// # Cancel safety
///
/// Cancel safe, as [`connect_tcp`].
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::net::tcp::{connect_tcp_with, TcpConnectOptions};
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let opts = TcpConnectOptions::new().local_host("127.0.0.1".parse()?);
/// let stream = connect_tcp_with("127.0.0.1", listener.local_addr()?.port(), opts).await?;
/// assert_eq!(stream.local_addr()?.ip().to_string(), "127.0.0.1");
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn connect_tcp_with(
    host: &str,
    port: u16,
    opts: TcpConnectOptions,
) -> Result<TcpStream, SocketError> {
    if port == 0 {
        return Err(SocketError::InvalidArgument(
            "port 0 is not a valid destination; use a port from 1 to 65535".into(),
        ));
    }
    let mut targets = resolve_stream_targets(host, port).await?;
    if let Some(local) = opts.local_host {
        let family = AddressFamily::of(&SocketAddr::new(local, 0));
        targets.retain(|a| AddressFamily::of(a) == family);
        if targets.is_empty() {
            return Err(SocketError::InvalidArgument(format!(
                "address family mismatch: the local address {local} is {family:?}, and {host} has no {family:?} address"
            )));
        }
    }
    let local = opts.local_host.map(|h| SocketAddr::new(h, opts.local_port)).or_else(|| {
        // A local port without a host binds the unspecified address of each target's family.
        (opts.local_port != 0).then_some(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), opts.local_port))
    });
    happy_eyeballs(host, port, targets, opts.delay, |address| connect_one(address, local)).await
}

/// The addresses to try: IPv6 and IPv4 interleaved, IPv6 first (AnyIO tries the first IPv6
/// address, then the first IPv4 one; RFC 8305 alternates the rest as well).
async fn resolve_stream_targets(host: &str, port: u16) -> Result<Vec<SocketAddr>, SocketError> {
    if let Some(ip) = ip_literal(host) {
        // What getaddrinfo would answer, without its list of every socket kind to sort.
        crate::lowlevel::checkpoint_if_cancelled()?;
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found = getaddrinfo(host, Some(port), AddrInfoHints::new().kind(SocketKind::Stream)).await?;
    let mut v6 = Vec::new();
    let mut v4 = Vec::new();
    for info in found {
        let list = if info.address.is_ipv6() { &mut v6 } else { &mut v4 };
        if !list.contains(&info.address) {
            list.push(info.address);
        }
    }
    let (mut first, mut second) = (v6.into_iter(), v4.into_iter());
    let mut out = Vec::new();
    loop {
        match (first.next(), second.next()) {
            (None, None) => break,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
    if out.is_empty() {
        return Err(SocketError::Resolve {
            host: host.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "no IPv4 or IPv6 address"),
        });
    }
    Ok(out)
}

/// Runs connection attempts with `connect` as Happy Eyeballs schedules them (generic over the
/// attempt so the schedule is unit-tested without a network).
pub(crate) async fn happy_eyeballs<T, F, Fut>(
    host: &str,
    port: u16,
    targets: Vec<SocketAddr>,
    delay: Duration,
    mut connect: F,
) -> Result<T, SocketError>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = Result<T, OpError>>,
{
    if let [address] = targets[..] {
        // One address (an IP literal, or a name with one address): nothing to schedule, so no
        // boxed attempt, timer or poll loop.
        return connect(address).await.or_else(|e| {
            let attempts = vec![failed_attempt(address, e)?];
            Err(SocketError::Connect { host: host.to_string(), port, attempts })
        });
    }
    let mut pending = targets.into_iter();
    let mut in_flight: Vec<(SocketAddr, Pin<Box<Fut>>)> = Vec::new();
    let mut failed: Vec<ConnectAttempt> = Vec::new();
    let mut timer: Option<Pin<Box<dyn Timer>>> = None;
    poll_fn(|cx| loop {
        let mut start_next = in_flight.is_empty();
        let mut i = 0;
        while i < in_flight.len() {
            match in_flight[i].1.as_mut().poll(cx) {
                // Returning drops the other attempts, which closes their sockets, late winners
                // included.
                Poll::Ready(Ok(stream)) => return Poll::Ready(Ok(stream)),
                Poll::Ready(Err(e)) => {
                    let (address, _) = in_flight.remove(i);
                    failed.push(failed_attempt(address, e)?);
                    start_next = true;
                }
                Poll::Pending => i += 1,
            }
        }
        if !start_next {
            if let Some(t) = timer.as_mut() {
                start_next = t.as_mut().poll_expired(cx).is_ready();
            }
        }
        if start_next {
            if let Some(address) = pending.next() {
                in_flight.push((address, Box::pin(connect(address))));
                // No timer when nothing is left to start (one address: the common case).
                timer = (!pending.as_slice().is_empty())
                    .then(|| rt::with_current(|rt| rt.timer(rt.now() + delay)));
                continue;
            }
            timer = None;
            if in_flight.is_empty() {
                let attempts = std::mem::take(&mut failed);
                return Poll::Ready(Err(SocketError::Connect { host: host.to_string(), port, attempts }));
            }
        }
        return Poll::Pending;
    })
    .await
}

/// A failed attempt for the all-failed error, or the cancellation that ends the whole connect.
fn failed_attempt(address: SocketAddr, e: OpError) -> Result<ConnectAttempt, SocketError> {
    match e {
        OpError::Cancelled(c) => Err(SocketError::Cancelled(c)),
        e => Ok(ConnectAttempt { address, error: super::stream::compat_error(e) }),
    }
}

/// A new non-blocking TCP socket: non-blocking from creation where the OS can (one system
/// call instead of three per connection).
#[cfg(any(
    target_os = "android",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "fuchsia",
    target_os = "illumos",
    target_os = "linux",
    target_os = "netbsd",
    target_os = "openbsd"
))]
fn new_tcp_socket(domain: Domain) -> io::Result<Socket> {
    Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))
}

#[cfg(not(any(
    target_os = "android",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "fuchsia",
    target_os = "illumos",
    target_os = "linux",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
fn new_tcp_socket(domain: Domain) -> io::Result<Socket> {
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// One connection attempt: a fresh non-blocking socket, registered, connecting.
async fn connect_one(address: SocketAddr, local: Option<SocketAddr>) -> Result<TcpStream, OpError> {
    let socket = new_tcp_socket(Domain::for_address(address)).map_err(OpError::Io)?;
    if let Some(mut local) = local {
        if local.ip().is_unspecified() && local.is_ipv4() != address.is_ipv4() {
            local.set_ip(if address.is_ipv4() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                Ipv6Addr::UNSPECIFIED.into()
            });
        }
        socket.bind(&local.into()).map_err(OpError::Io)?;
    }
    socket.set_tcp_nodelay(true).map_err(OpError::Io)?;
    // Connect before registering: an unconnected TCP socket polls as hung up, and tokio keeps
    // a hang-up as final readiness, so a socket registered before `connect` would look ready
    // for ever (every receive then spins on EAGAIN). tokio's own connect orders it this way.
    let started = socket.connect(&SockAddr::from(address));
    let core = IoCore::new_nonblocking(socket, STREAM_ACTIONS).map_err(OpError::Io)?;
    match started.map_err(OpError::Io) {
        Ok(()) => {}
        Err(OpError::Io(e))
            if e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock =>
        {
            core.ready(Dir::Send).await?;
            // Writable after connect() means it finished; SO_ERROR tells how (as tokio checks
            // it). A connection reset right after is the first receive's or send's error.
            if let Some(e) = core.with_socket(|s| s.take_error())? {
                return Err(OpError::Io(e));
            }
        }
        Err(e) => return Err(e),
    }
    Ok(TcpStream::with_peer(core, address))
}

/// A listening TCP socket.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
/// assert!(listener.local_addr()?.port() != 0);
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
#[doc(alias = "SocketListener")]
pub struct TcpListener {
    core: IoCore,
}

const LISTENER_ACTIONS: [&str; 2] = ["accepting connections from", "sending to"];

impl TcpListener {
    /// Binds one listening socket to `address` (with `SO_REUSEADDR`, backlog 65536).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it does not wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::net::{SocketError, TcpListener};
    /// let listener = TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let address = listener.local_addr()?;
    /// assert_ne!(address.port(), 0); // port 0 picks a free port
    /// // The address is taken now.
    /// assert!(matches!(TcpListener::bind(address).await, Err(SocketError::Bind { .. })));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn bind(address: SocketAddr) -> Result<Self, SocketError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        listen_on(address, false, false, DEFAULT_BACKLOG)
    }

    /// Adopts a bound, listening std socket into the current runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let listener = anyio::net::TcpListener::from_std(std_listener)?;
    /// # drop(listener);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn from_std(listener: std::net::TcpListener) -> Result<Self, SocketError> {
        Ok(Self { core: IoCore::new(listener, LISTENER_ACTIONS)? })
    }

    /// The address the socket listens on.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let address = listener.local_addr()?;
    /// assert!(address.ip().is_loopback() && address.port() != 0);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> Result<SocketAddr, StreamError> {
        inet(SocketAddress::from_sockaddr(&self.core.with_socket(|s| s.local_addr())?))
    }

    /// Accepts the next connection, with `TCP_NODELAY` on.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no connection is taken from the backlog unless it is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let listener = anyio::net::TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let client = anyio::net::connect_tcp("127.0.0.1", listener.local_addr()?.port()).await?;
    /// let server = listener.accept().await?;
    /// server.send(b"welcome").await?;
    /// assert_eq!(client.receive(100).await?, b"welcome");
    /// assert_eq!(server.peer_addr()?, client.local_addr()?);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn accept(&self) -> Result<TcpStream, StreamError> {
        let (socket, peer) = self.core.io(Dir::Receive, accept_raw).await?;
        // Only a connection that is already gone can refuse this (some systems say EINVAL
        // after a reset); its first operation will report that, to its own handler.
        let _ = socket.set_tcp_nodelay(true);
        let core = IoCore::new_nonblocking(socket, STREAM_ACTIONS).map_err(StreamError::Io)?;
        Ok(match peer.as_socket() {
            Some(peer) => TcpStream::with_peer(core, peer),
            None => TcpStream::from_core(core),
        })
    }

    /// Closes the socket; a blocked `accept` in another task ends with `StreamError::Closed`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::TcpListener, streams::StreamError};
    /// let listener = TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// listener.aclose().await?;
    /// assert!(matches!(listener.accept().await, Err(StreamError::Closed)));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn aclose(&self) -> Result<(), StreamError> {
        self.core.close();
        Ok(())
    }
}

/// `accept` that retries connections the peer aborted before we took them.
pub(crate) fn accept_raw(s: &Socket) -> io::Result<(Socket, SockAddr)> {
    loop {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        let r = s.accept4(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK);
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        let r = s.accept().and_then(|(sock, a)| sock.set_nonblocking(true).map(|()| (sock, a)));
        match r {
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            r => return r,
        }
    }
}

impl TypedAttributeProvider for TcpListener {
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        socket_attribute(&self.core, key, false)
    }
}

#[async_trait]
impl AsyncResource for TcpListener {
    async fn aclose(&self) -> Result<(), StreamError> {
        self.core.close();
        Ok(())
    }
}

#[async_trait]
impl Listener for TcpListener {
    type Stream = TcpStream;
    async fn accept(&self) -> Result<TcpStream, StreamError> {
        TcpListener::accept(self).await
    }
}

/// The default listen backlog (AnyIO's; the kernel caps it at `somaxconn`).
///
/// # Examples
///
/// ```
/// use anyio::net::tcp::{DEFAULT_BACKLOG, TcpListenerOptions};
/// assert_eq!(DEFAULT_BACKLOG, 65536);
/// let opts = TcpListenerOptions::new().backlog(DEFAULT_BACKLOG / 2);
/// # drop(opts);
/// ```
pub const DEFAULT_BACKLOG: u32 = 65536;

/// Options of [`create_tcp_listener`].
///
/// # Examples
///
/// ```
/// let opts = anyio::net::tcp::TcpListenerOptions::new().local_host("localhost").local_port(8000).reuse_port(true);
/// # drop(opts);
/// ```
#[derive(Clone, Debug)]
pub struct TcpListenerOptions {
    local_host: Option<String>,
    local_port: u16,
    family: Option<AddressFamily>,
    backlog: u32,
    reuse_port: bool,
}

impl Default for TcpListenerOptions {
    fn default() -> Self {
        Self { local_host: None, local_port: 0, family: None, backlog: DEFAULT_BACKLOG, reuse_port: false }
    }
}

impl TcpListenerOptions {
    /// All interfaces, an ephemeral port, both families, backlog 65536.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     net::{create_tcp_listener, LocalPort}, net::tcp::TcpListenerOptions,
    ///     streams::TypedAttributeExt,
    /// };
    /// let listener = create_tcp_listener(TcpListenerOptions::new()).await?;
    /// assert_ne!(listener.extra::<LocalPort>()?, 0); // an ephemeral port was picked
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Listens on the addresses this name or IP address resolves to (default: all interfaces,
    /// through one dual-stack socket).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_tcp_listener, net::tcp::TcpListenerOptions};
    /// let multi = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
    /// assert_eq!(multi.listeners().len(), 1);
    /// assert!(multi.listeners()[0].local_addr()?.ip().is_loopback());
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_host(mut self, host: impl Into<String>) -> Self {
        self.local_host = Some(host.into());
        self
    }
    /// The port (default 0: one ephemeral port, the same on every socket).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     net::{create_tcp_listener, LocalPort}, net::tcp::TcpListenerOptions,
    ///     streams::TypedAttributeExt,
    /// };
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(); // a free port
    /// let opts = TcpListenerOptions::new().local_host("127.0.0.1").local_port(port);
    /// let listener = create_tcp_listener(opts).await?;
    /// assert_eq!(listener.extra::<LocalPort>()?, port);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = port;
        self
    }
    /// Only this family ([`AddressFamily::Ipv4`] or [`AddressFamily::Ipv6`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::{create_tcp_listener, AddressFamily}, net::tcp::TcpListenerOptions};
    /// let multi = create_tcp_listener(TcpListenerOptions::new().family(AddressFamily::Ipv4)).await?;
    /// assert!(multi.listeners()[0].local_addr()?.is_ipv4());
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn family(mut self, family: AddressFamily) -> Self {
        self.family = Some(family);
        self
    }
    /// The listen backlog (capped at 65536).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     net::{connect_tcp, create_tcp_listener, LocalPort}, net::tcp::TcpListenerOptions,
    ///     streams::TypedAttributeExt,
    /// };
    /// let opts = TcpListenerOptions::new().local_host("127.0.0.1").backlog(16);
    /// let listener = create_tcp_listener(opts).await?;
    /// // Connections wait in the backlog until accepted.
    /// let client = connect_tcp("127.0.0.1", listener.extra::<LocalPort>()?).await?;
    /// # drop(client);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }
    /// Sets `SO_REUSEPORT`, so several sockets (and processes) can listen on one port.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     net::{create_tcp_listener, LocalPort}, net::tcp::TcpListenerOptions,
    ///     streams::TypedAttributeExt,
    /// };
    /// let opts = TcpListenerOptions::new().local_host("127.0.0.1").reuse_port(true);
    /// let first = create_tcp_listener(opts.clone()).await?;
    /// let port = first.extra::<LocalPort>()?;
    /// // A second socket (of this or another process) listens on the same port.
    /// let second = create_tcp_listener(opts.local_port(port)).await?;
    /// assert_eq!(second.extra::<LocalPort>()?, port);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn reuse_port(mut self, reuse: bool) -> Self {
        self.reuse_port = reuse;
        self
    }
}

/// Creates TCP listeners (AnyIO's `create_tcp_listener`): one socket per local address, all on
/// the same port, combined in a [`MultiListener`].
///
/// Without a host, one dual-stack IPv6 socket accepts both IPv6 and IPv4 connections (an IPv4
/// socket where IPv6 is unavailable). With port 0, the first socket's ephemeral port is used
/// for the others.
///
/// # Errors
///
/// [`SocketError::Bind`] names the address that could not be bound (in use, not local, no
/// permission); [`SocketError::Resolve`] for a host that does not resolve;
/// [`SocketError::InvalidArgument`] for a family mismatch. Sockets created before an error are
/// closed.
///
/// # Cancel safety
///
/// Cancel safe: a cancelled call closes what it created.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     net::{create_tcp_listener, LocalPort}, net::tcp::TcpListenerOptions,
///     streams::TypedAttributeExt,
/// };
/// let listener = create_tcp_listener(TcpListenerOptions::new()).await?;
/// let port = listener.extra::<LocalPort>()?;
/// // The dual-stack socket accepts IPv4 clients too.
/// let client = anyio::net::connect_tcp("127.0.0.1", port).await?;
/// # drop(client);
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn create_tcp_listener(
    opts: TcpListenerOptions,
) -> Result<MultiListener<TcpListener>, SocketError> {
    let backlog = opts.backlog.min(DEFAULT_BACKLOG);
    let Some(host) = opts.local_host.as_deref() else {
        crate::lowlevel::checkpoint_if_cancelled()?;
        let v6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), opts.local_port);
        let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), opts.local_port);
        let listener = match opts.family {
            Some(AddressFamily::Ipv4) => listen_on(v4, false, opts.reuse_port, backlog)?,
            Some(AddressFamily::Ipv6) => listen_on(v6, true, opts.reuse_port, backlog)?,
            Some(AddressFamily::Unix) => return Err(family_error()),
            None => match listen_on(v6, false, opts.reuse_port, backlog) {
                Err(SocketError::Io(e)) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                    listen_on(v4, false, opts.reuse_port, backlog)?
                }
                r => r?,
            },
        };
        return Ok(MultiListener::new(vec![listener]));
    };
    if opts.family == Some(AddressFamily::Unix) {
        return Err(family_error());
    }
    let mut hints = AddrInfoHints::new().kind(SocketKind::Stream).flags(libc::AI_PASSIVE);
    if let Some(f) = opts.family {
        hints = hints.family(f);
    }
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for info in getaddrinfo(host, Some(opts.local_port), hints).await? {
        if !addresses.contains(&info.address) {
            addresses.push(info.address);
        }
    }
    let mut listeners = Vec::new();
    let mut port = opts.local_port;
    for mut address in addresses {
        address.set_port(port);
        // With both families on one port, each IPv6 socket must leave IPv4 to its own socket.
        let listener = listen_on(address, true, opts.reuse_port, backlog)?;
        if port == 0 {
            port = listener.local_addr()?.port();
        }
        listeners.push(listener);
    }
    Ok(MultiListener::new(listeners))
}

fn family_error() -> SocketError {
    SocketError::InvalidArgument(
        "a TCP listener needs the IPv4 or IPv6 family; use create_unix_listener for Unix sockets".into(),
    )
}

fn listen_on(
    address: SocketAddr,
    v6_only: bool,
    reuse_port: bool,
    backlog: u32,
) -> Result<TcpListener, SocketError> {
    let bind_error = |source| SocketError::Bind { address: address.into(), source };
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if address.is_ipv6() {
        socket.set_only_v6(v6_only)?;
    }
    socket.bind(&address.into()).map_err(bind_error)?;
    socket.listen(backlog.min(i32::MAX as u32) as i32).map_err(bind_error)?;
    Ok(TcpListener { core: IoCore::new(socket, LISTENER_ACTIONS)? })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;
    use crate::__doc_block_on as block_on;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (1..=n).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect()
    }

    fn refused() -> OpError {
        OpError::Io(io::ErrorKind::ConnectionRefused.into())
    }

    /// Counts drops, standing in for a connected socket that must be closed.
    struct Conn(u16, Arc<AtomicUsize>);
    impl Drop for Conn {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn an_unanswered_attempt_gets_company_after_the_delay_and_the_first_success_wins() {
        let started = Arc::new(Mutex::new(Vec::new()));
        let dropped = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let (s, d) = (started.clone(), dropped.clone());
        let won = block_on(happy_eyeballs("h", 1, addrs(2), Duration::from_millis(50), move |a| {
            s.lock().unwrap().push((a.port(), t0.elapsed()));
            let d = d.clone();
            async move {
                if a.port() == 1 {
                    std::future::pending::<()>().await; // never answers
                }
                Ok(Conn(a.port(), d))
            }
        }))
        .unwrap();
        assert_eq!(won.0, 2);
        let started = started.lock().unwrap();
        assert_eq!(started.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 2]);
        assert!(started[1].1 >= Duration::from_millis(50), "the second attempt waited for the delay");
    }

    #[test]
    fn a_failed_attempt_starts_the_next_at_once_and_all_failures_are_reported_in_order() {
        // An hour's delay: only "start the next as soon as one fails" can finish this.
        let err = block_on(happy_eyeballs("example", 80, addrs(3), Duration::from_secs(3600), |_| async {
            Err::<(), _>(refused())
        }))
        .unwrap_err();
        match err {
            SocketError::Connect { host, port, attempts } => {
                assert_eq!((host.as_str(), port), ("example", 80));
                assert_eq!(attempts.iter().map(|a| a.address.port()).collect::<Vec<_>>(), [1, 2, 3]);
                assert!(attempts.iter().all(|a| a.error.kind() == io::ErrorKind::ConnectionRefused));
            }
            other => panic!("expected Connect, got {other}"),
        }
    }

    #[test]
    fn late_winners_are_closed_and_only_the_first_success_is_returned() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let release = Arc::new(crate::sync::Event::new());
        let r = release.clone();
        // Three attempts all block on one event (a 1 ms delay starts them all), then all become
        // ready together: the first is returned, the other two are dropped with their sockets.
        let won = block_on(async move {
            let starter = async {
                crate::time::sleep(Duration::from_millis(30)).await.unwrap();
                r.set();
            };
            let connect = happy_eyeballs("h", 1, addrs(3), Duration::from_millis(1), |a| {
                let d = d.clone();
                let release = release.clone();
                async move {
                    // The attempt owns its "socket" from the start, as a real one does.
                    let conn = Conn(a.port(), d);
                    release.wait().await.map_err(OpError::Cancelled)?;
                    Ok(conn)
                }
            });
            let (won, ()) = futures_join(connect, starter).await;
            won
        })
        .unwrap();
        assert_eq!(won.0, 1, "the first attempt in order wins a tie");
        assert_eq!(dropped.load(Ordering::SeqCst), 2, "the late winners were closed");
    }

    #[test]
    fn cancelling_the_caller_cancels_every_attempt() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let out = block_on(crate::cancel::move_on_after(Duration::from_millis(30), async move {
            let r = happy_eyeballs("h", 1, addrs(2), Duration::from_millis(1), |_| {
                let d = d.clone();
                async move {
                    let _guard = Conn(0, d);
                    crate::time::sleep_forever().await.map_err(OpError::Cancelled)?;
                    Ok(())
                }
            })
            .await;
            assert!(matches!(r, Err(SocketError::Cancelled(_))));
            Ok::<_, crate::error::AnyError>(())
        }))
        .unwrap();
        assert!(out.is_some());
        assert_eq!(dropped.load(Ordering::SeqCst), 2, "both attempts ended");
    }

    #[test]
    fn one_address_is_tried_alone_and_its_failure_or_cancellation_is_reported_as_with_many() {
        let err = block_on(happy_eyeballs("one", 8, addrs(1), Duration::from_secs(3600), |_| async {
            Err::<(), _>(refused())
        }))
        .unwrap_err();
        match err {
            SocketError::Connect { host, port, attempts } => {
                assert_eq!((host.as_str(), port), ("one", 8));
                assert_eq!(attempts.len(), 1);
                assert_eq!(attempts[0].address, addrs(1)[0]);
                assert_eq!(attempts[0].error.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected Connect, got {other}"),
        }
        let won = block_on(happy_eyeballs("one", 8, addrs(1), Duration::from_secs(3600), |a| async move {
            Ok::<_, OpError>(a.port())
        }));
        assert_eq!(won.unwrap(), 1);
        let out = block_on(crate::cancel::move_on_after(Duration::from_millis(10), async {
            let r = happy_eyeballs("one", 8, addrs(1), Duration::from_secs(3600), |_| async {
                crate::time::sleep_forever().await.map_err(OpError::Cancelled)?;
                Ok(())
            })
            .await;
            assert!(matches!(r, Err(SocketError::Cancelled(_))), "{r:?}");
            Ok::<_, crate::error::AnyError>(())
        }))
        .unwrap();
        assert!(out.is_some());
    }

    /// Polls two futures to completion in one task.
    async fn futures_join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
        let mut a = Box::pin(a);
        let mut b = Box::pin(b);
        let (mut ra, mut rb) = (None, None);
        poll_fn(|cx| {
            if ra.is_none() {
                if let Poll::Ready(v) = a.as_mut().poll(cx) {
                    ra = Some(v);
                }
            }
            if rb.is_none() {
                if let Poll::Ready(v) = b.as_mut().poll(cx) {
                    rb = Some(v);
                }
            }
            if ra.is_some() && rb.is_some() {
                Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
            } else {
                Poll::Pending
            }
        })
        .await
    }
}
