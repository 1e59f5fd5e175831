//! UDP sockets (`create_udp_socket`, `create_connected_udp_socket`), unconnected (addressed
//! per packet) and connected, and the datagram core they share with Unix datagram sockets.

use std::any::{Any, TypeId};
use std::io::{self, Read};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use async_trait::async_trait;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::streams::{
    AsyncResource, ObjectReceiveStream, ObjectSendStream, StreamError, TypedAttributeProvider,
};

use super::addr::{AddressFamily, SocketAddress};
use super::dns::{getaddrinfo, AddrInfoHints, SocketKind};
use super::error::SocketError;
use super::io::{recv_to_vec, Dir, IoCore, SEND_FLAGS};

/// The largest datagram a receive returns whole (the UDP maximum).
const MAX_DATAGRAM: usize = 65536;
const ACTIONS: [&str; 2] = ["reading from", "writing to"];

/// Makes a pending socket error (a connected peer's ICMP "port unreachable", say) wake a
/// receive waiting for readability on every backend. Linux reports such an error as `EPOLLERR`
/// alone, which async-io counts as readable but tokio only as a closed write direction, so a
/// receive on tokio would wait for ever; with `SO_SELECT_ERR_QUEUE` the kernel adds
/// `EPOLLPRI`, which every reactor counts as readable (the tokio adapter registers for it).
/// The receive's system call then returns the error.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn report_errors_as_readable(socket: &Socket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor, an `int` option of the right size, read only during the call.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SELECT_ERR_QUEUE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn report_errors_as_readable(_socket: &Socket) -> io::Result<()> {
    Ok(())
}

/// A registered datagram socket: what every datagram type shares.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) core: IoCore,
}

impl Datagram {
    pub(crate) fn new(socket: Socket) -> Result<Self, SocketError> {
        report_errors_as_readable(&socket)?;
        Ok(Self { core: IoCore::new(socket, ACTIONS)? })
    }

    pub(crate) async fn receive_from(&self) -> Result<(Vec<u8>, SockAddr), StreamError> {
        self.receive_with(|s, buf| s.recv_from(buf)).await
    }

    /// One datagram from the connected peer (`recv`: no sender address to build).
    pub(crate) async fn receive_connected(&self) -> Result<Vec<u8>, StreamError> {
        Ok(self.receive_with(|s, buf| Ok((s.recv(buf)?, ()))).await?.0)
    }

    /// One datagram received by `recv` into the thread's scratch buffer (never zero-filled,
    /// and not held by a socket while it waits), copied out.
    pub(crate) async fn receive_with<A>(
        &self,
        mut recv: impl FnMut(&Socket, &mut [std::mem::MaybeUninit<u8>]) -> io::Result<(usize, A)> + Unpin,
    ) -> Result<(Vec<u8>, A), StreamError> {
        Ok(self.core.io(Dir::Receive, |s| recv_to_vec(MAX_DATAGRAM, |buf| recv(s, buf))).await?)
    }

    /// One datagram from the connected peer into `buf`; the part that does not fit is
    /// discarded, as `recv(2)` does.
    pub(crate) async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, StreamError> {
        if buf.is_empty() {
            return Err(StreamError::InvalidArgument(
                "the receive buffer must hold at least 1 byte (an empty one would discard a datagram)",
            ));
        }
        Ok(self.core.io(Dir::Receive, |s| (&*s).read(buf)).await?)
    }

    pub(crate) async fn send_to(&self, data: &[u8], to: &SockAddr) -> Result<(), StreamError> {
        let n = self.core.io(Dir::Send, |s| s.send_to_with_flags(data, to, SEND_FLAGS)).await?;
        debug_assert_eq!(n, data.len(), "a datagram is sent whole or not at all");
        Ok(())
    }

    pub(crate) async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        self.core.io(Dir::Send, |s| s.send_with_flags(data, SEND_FLAGS)).await?;
        Ok(())
    }

    pub(crate) fn local(&self) -> Result<SocketAddress, StreamError> {
        Ok(SocketAddress::from_sockaddr(&self.core.with_socket(|s| s.local_addr())?))
    }

    pub(crate) fn peer(&self) -> Result<SocketAddress, StreamError> {
        Ok(SocketAddress::from_sockaddr(&self.core.with_socket(|s| s.peer_addr())?))
    }
}

macro_rules! datagram_common {
    ($ty:ty, $connected:expr) => {
        impl TypedAttributeProvider for $ty {
            fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
                $crate::net::stream::socket_attribute(&self.dg.core, key, $connected)
            }
        }

        #[async_trait]
        impl AsyncResource for $ty {
            async fn aclose(&self) -> Result<(), StreamError> {
                self.dg.core.close();
                Ok(())
            }
        }

        impl $ty {
            /// Closes the socket; operations blocked in other tasks end with
            /// `StreamError::Closed`.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            ///
            /// # Examples
            ///
            /// ```
            /// # anyio::run(async {
            /// use anyio::{
            ///     net::create_udp_socket, net::udp::UdpSocketOptions, streams::StreamError,
            /// };
            /// let socket = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
            /// socket.aclose().await?;
            /// assert!(matches!(socket.receive().await, Err(StreamError::Closed)));
            /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
            /// ```
            pub async fn aclose(&self) -> Result<(), StreamError> {
                self.dg.core.close();
                Ok(())
            }
        }
    };
}
pub(crate) use datagram_common;

/// An unconnected UDP socket: receives from anyone, sends to any address (AnyIO's `UDPSocket`).
/// As an object stream its items are `(datagram, address)` packets.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{net::create_udp_socket, net::udp::UdpSocketOptions};
/// let a = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
/// let b = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
/// a.send_to(b"ping", b.local_addr()?).await?;
/// let (data, from) = b.receive().await?;
/// assert_eq!((data.as_slice(), from), (&b"ping"[..], a.local_addr()?));
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
#[doc(alias = "UDPSocket")]
pub struct UdpSocket {
    dg: Datagram,
    /// Fixed at creation; checked on every `send_to` without a `getsockname` call.
    family: AddressFamily,
}

datagram_common!(UdpSocket, false);

impl UdpSocket {
    /// Adopts a bound std socket into the current runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let s = anyio::net::UdpSocket::from_std(std::net::UdpSocket::bind("127.0.0.1:0")?)?;
    /// # drop(s);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn from_std(socket: std::net::UdpSocket) -> Result<Self, SocketError> {
        let family = AddressFamily::of(&socket.local_addr()?);
        Ok(Self { dg: Datagram::new(Socket::from(socket))?, family })
    }

    /// Receives one datagram and its sender's address.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled receive has taken no datagram.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_udp_socket, net::udp::UdpSocketOptions};
    /// let a = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
    /// let b = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
    /// a.send_to(b"one", b.local_addr()?).await?;
    /// a.send_to(b"two", b.local_addr()?).await?;
    /// assert_eq!(b.receive().await?, (b"one".to_vec(), a.local_addr()?)); // one datagram at a time
    /// assert_eq!(b.receive().await?.0, b"two");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn receive(&self) -> Result<(Vec<u8>, SocketAddr), StreamError> {
        let (data, from) = self.dg.receive_from().await?;
        Ok((data, from.as_socket().ok_or(StreamError::InvalidArgument("not an IP datagram"))?))
    }

    /// Sends `data` as one datagram to `address`.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` when `address` is not of this socket's family.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the datagram is sent whole or not at all.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::streams::StreamError;
    /// use anyio::{net::create_udp_socket, net::udp::UdpSocketOptions};
    /// let a = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
    /// let b = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
    /// a.send_to(b"ping", b.local_addr()?).await?;
    /// assert_eq!(b.receive().await?.0, b"ping");
    /// // An IPv4 socket cannot send to an IPv6 address.
    /// let err = a.send_to(b"ping", "[::1]:9".parse()?).await;
    /// assert!(matches!(err, Err(StreamError::InvalidArgument(_))));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn send_to(&self, data: &[u8], address: SocketAddr) -> Result<(), StreamError> {
        if self.family != AddressFamily::of(&address) {
            return Err(StreamError::InvalidArgument(
                "address family mismatch: the destination is not of this socket's family",
            ));
        }
        self.dg.send_to(data, &address.into()).await
    }

    /// The bound local address.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_udp_socket, net::udp::UdpSocketOptions};
    /// let socket = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
    /// let address = socket.local_addr()?;
    /// assert!(address.ip().is_loopback() && address.port() != 0);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> Result<SocketAddr, StreamError> {
        self.dg.local()?.as_inet().ok_or(StreamError::InvalidArgument("not an IP socket"))
    }
}

#[async_trait]
impl ObjectReceiveStream<(Vec<u8>, SocketAddr)> for UdpSocket {
    async fn receive(&self) -> Result<(Vec<u8>, SocketAddr), StreamError> {
        UdpSocket::receive(self).await
    }
}

#[async_trait]
impl ObjectSendStream<(Vec<u8>, SocketAddr)> for UdpSocket {
    async fn send(&self, item: (Vec<u8>, SocketAddr)) -> Result<(), StreamError> {
        self.send_to(&item.0, item.1).await
    }
}

/// A UDP socket connected to one peer (AnyIO's `ConnectedUDPSocket`): datagrams from others
/// are filtered out by the kernel. As an object stream its items are datagrams.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{net::{create_connected_udp_socket, create_udp_socket}, net::udp::UdpSocketOptions};
/// let server = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
/// let client = create_connected_udp_socket("127.0.0.1", server.local_addr()?.port(), UdpSocketOptions::new()).await?;
/// client.send(b"hello").await?;
/// let (data, from) = server.receive().await?;
/// server.send_to(&data, from).await?;
/// assert_eq!(client.receive().await?, b"hello");
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
#[doc(alias = "ConnectedUDPSocket")]
pub struct ConnectedUdpSocket {
    dg: Datagram,
}

datagram_common!(ConnectedUdpSocket, true);

impl ConnectedUdpSocket {
    /// Adopts a connected std socket into the current runtime.
    ///
    /// # Errors
    ///
    /// [`SocketError::InvalidArgument`] when the socket is not connected.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// std_socket.connect("127.0.0.1:9")?;
    /// let s = anyio::net::ConnectedUdpSocket::from_std(std_socket)?;
    /// assert_eq!(s.peer_addr()?.port(), 9);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn from_std(socket: std::net::UdpSocket) -> Result<Self, SocketError> {
        if socket.peer_addr().is_err() {
            return Err(SocketError::InvalidArgument(
                "the socket is not connected; use UdpSocket::from_std for an unconnected one".into(),
            ));
        }
        Ok(Self { dg: Datagram::new(Socket::from(socket))? })
    }

    /// Receives one datagram from the peer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     net::{create_connected_udp_socket, create_udp_socket}, net::udp::UdpSocketOptions,
    /// };
    /// let local = UdpSocketOptions::new().local_host("127.0.0.1");
    /// let server = create_udp_socket(local.clone()).await?;
    /// let client = create_connected_udp_socket("127.0.0.1", server.local_addr()?.port(), local).await?;
    /// server.send_to(b"hello", client.local_addr()?).await?;
    /// assert_eq!(client.receive().await?, b"hello");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn receive(&self) -> Result<Vec<u8>, StreamError> {
        self.dg.receive_connected().await
    }

    /// Receives one datagram from the peer into `buf` and returns its length, without
    /// allocating (the reused-buffer form of [`receive`](Self::receive), as tokio's `recv`).
    /// A datagram longer than `buf` is cut to fit and the rest discarded, as `recv(2)` does:
    /// pass 65,536 bytes to be sure of whole datagrams.
    ///
    /// # Errors
    ///
    /// [`StreamError::InvalidArgument`] for an empty `buf` (it would discard a datagram);
    /// [`StreamError::Closed`] after `aclose`; cancellation; the OS error otherwise.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is taken from the socket only by the call that returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     net::{create_connected_udp_socket, create_udp_socket}, net::udp::UdpSocketOptions,
    /// };
    /// let local = UdpSocketOptions::new().local_host("127.0.0.1");
    /// let server = create_udp_socket(local.clone()).await?;
    /// let client = create_connected_udp_socket("127.0.0.1", server.local_addr()?.port(), local).await?;
    /// server.send_to(b"hello", client.local_addr()?).await?;
    /// let mut buf = [0u8; 65536];
    /// let n = client.receive_into(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"hello");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, StreamError> {
        self.dg.receive_into(buf).await
    }

    /// Sends `data` as one datagram to the peer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the datagram is sent whole or not at all.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     net::{create_connected_udp_socket, create_udp_socket}, net::udp::UdpSocketOptions,
    /// };
    /// let local = UdpSocketOptions::new().local_host("127.0.0.1");
    /// let server = create_udp_socket(local.clone()).await?;
    /// let client = create_connected_udp_socket("127.0.0.1", server.local_addr()?.port(), local).await?;
    /// client.send(b"hello").await?;
    /// assert_eq!(server.receive().await?, (b"hello".to_vec(), client.local_addr()?));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        self.dg.send(data).await
    }

    /// The bound local address.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_connected_udp_socket, net::udp::UdpSocketOptions};
    /// let opts = UdpSocketOptions::new().local_host("127.0.0.1");
    /// let socket = create_connected_udp_socket("127.0.0.1", 9, opts).await?;
    /// let address = socket.local_addr()?;
    /// assert!(address.ip().is_loopback() && address.port() != 0);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> Result<SocketAddr, StreamError> {
        self.dg.local()?.as_inet().ok_or(StreamError::InvalidArgument("not an IP socket"))
    }

    /// The peer's address.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_connected_udp_socket, net::udp::UdpSocketOptions};
    /// let socket = create_connected_udp_socket("127.0.0.1", 9, UdpSocketOptions::new()).await?;
    /// assert_eq!(socket.peer_addr()?, "127.0.0.1:9".parse::<std::net::SocketAddr>()?);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn peer_addr(&self) -> Result<SocketAddr, StreamError> {
        self.dg.peer()?.as_inet().ok_or(StreamError::InvalidArgument("not an IP socket"))
    }
}

#[async_trait]
impl ObjectReceiveStream<Vec<u8>> for ConnectedUdpSocket {
    async fn receive(&self) -> Result<Vec<u8>, StreamError> {
        ConnectedUdpSocket::receive(self).await
    }
}

#[async_trait]
impl ObjectSendStream<Vec<u8>> for ConnectedUdpSocket {
    async fn send(&self, item: Vec<u8>) -> Result<(), StreamError> {
        self.dg.send(&item).await
    }
}

/// Options of [`create_udp_socket`] and [`create_connected_udp_socket`].
///
/// # Examples
///
/// ```
/// let opts = anyio::net::udp::UdpSocketOptions::new().local_host("0.0.0.0").local_port(5353).reuse_port(true);
/// # drop(opts);
/// ```
#[derive(Clone, Debug, Default)]
pub struct UdpSocketOptions {
    family: Option<AddressFamily>,
    local_host: Option<String>,
    local_port: u16,
    reuse_port: bool,
}

impl UdpSocketOptions {
    /// No family, host or port chosen.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::{create_udp_socket, SocketError}, net::udp::UdpSocketOptions};
    /// // An unconnected socket needs a family or a local host to bind to.
    /// let err = create_udp_socket(UdpSocketOptions::new()).await;
    /// assert!(matches!(err, Err(SocketError::InvalidArgument(_))));
    /// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// The address family.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::{create_udp_socket, AddressFamily}, net::udp::UdpSocketOptions};
    /// let socket = create_udp_socket(UdpSocketOptions::new().family(AddressFamily::Ipv4)).await?;
    /// let address = socket.local_addr()?;
    /// assert!(address.is_ipv4() && address.ip().is_unspecified()); // 0.0.0.0: every interface
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn family(mut self, family: AddressFamily) -> Self {
        self.family = Some(family);
        self
    }
    /// Binds to this local name or IP address.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_udp_socket, net::udp::UdpSocketOptions};
    /// let socket = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
    /// assert_eq!(socket.local_addr()?.ip().to_string(), "127.0.0.1");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_host(mut self, host: impl Into<String>) -> Self {
        self.local_host = Some(host.into());
        self
    }
    /// Binds to this local port (0: ephemeral).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_udp_socket, net::udp::UdpSocketOptions};
    /// let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port(); // a free port
    /// let opts = UdpSocketOptions::new().local_host("127.0.0.1").local_port(port);
    /// assert_eq!(create_udp_socket(opts).await?.local_addr()?.port(), port);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = port;
        self
    }
    /// Sets `SO_REUSEPORT`.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_udp_socket, net::udp::UdpSocketOptions};
    /// let opts = UdpSocketOptions::new().local_host("127.0.0.1").reuse_port(true);
    /// let first = create_udp_socket(opts.clone()).await?;
    /// let port = first.local_addr()?.port();
    /// let second = create_udp_socket(opts.local_port(port)).await?; // the same port again
    /// assert_eq!(second.local_addr()?.port(), port);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn reuse_port(mut self, reuse: bool) -> Self {
        self.reuse_port = reuse;
        self
    }
}

fn udp_socket(local: SocketAddr, reuse_port: bool) -> Result<Socket, SocketError> {
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&local.into()).map_err(|source| SocketError::Bind { address: local.into(), source })?;
    Ok(socket)
}

async fn local_udp_address(
    opts: &UdpSocketOptions,
    family: Option<AddressFamily>,
) -> Result<Option<SocketAddr>, SocketError> {
    if family == Some(AddressFamily::Unix) || opts.family == Some(AddressFamily::Unix) {
        return Err(SocketError::InvalidArgument(
            "a UDP socket needs the IPv4 or IPv6 family; use create_unix_datagram_socket for Unix sockets"
                .into(),
        ));
    }
    match &opts.local_host {
        Some(host) => {
            let mut hints = AddrInfoHints::new().kind(SocketKind::Datagram).flags(libc::AI_PASSIVE);
            if let Some(f) = opts.family {
                hints = hints.family(f);
            }
            let found = getaddrinfo(host, Some(opts.local_port), hints).await?;
            // `family` (the remote's, for a connected socket) picks among the local addresses.
            let wanted = family.or(opts.family);
            match found.iter().find(|i| wanted.is_none_or(|f| i.family == f)) {
                Some(info) => Ok(Some(info.address)),
                None => Err(SocketError::InvalidArgument(format!(
                    "address family mismatch: the local host {host} has no {:?} address",
                    wanted.unwrap_or(AddressFamily::Ipv4)
                ))),
            }
        }
        None => Ok(family.or(opts.family).map(|f| {
            let ip = if f == AddressFamily::Ipv6 {
                Ipv6Addr::UNSPECIFIED.into()
            } else {
                Ipv4Addr::UNSPECIFIED.into()
            };
            SocketAddr::new(ip, opts.local_port)
        })),
    }
}

/// Creates an unconnected UDP socket (AnyIO's `create_udp_socket`). Give a family or a local
/// host: the socket is bound to the host's address (or the family's wildcard address) and
/// `local_port`.
///
/// # Errors
///
/// [`SocketError::InvalidArgument`] when neither a family nor a local host is given, or they
/// disagree; [`SocketError::Bind`] when the address cannot be bound.
///
/// # Cancel safety
///
/// Cancel safe: a cancelled call leaves nothing open.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{net::{create_udp_socket, AddressFamily}, net::udp::UdpSocketOptions};
/// let s = create_udp_socket(UdpSocketOptions::new().family(AddressFamily::Ipv4)).await?;
/// assert!(s.local_addr()?.port() != 0);
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn create_udp_socket(opts: UdpSocketOptions) -> Result<UdpSocket, SocketError> {
    let Some(local) = local_udp_address(&opts, None).await? else {
        return Err(SocketError::InvalidArgument("create_udp_socket needs a family or a local_host".into()));
    };
    Ok(UdpSocket {
        dg: Datagram::new(udp_socket(local, opts.reuse_port)?)?,
        family: AddressFamily::of(&local),
    })
}

/// Creates a UDP socket connected to `remote_host:remote_port` (AnyIO's
/// `create_connected_udp_socket`), bound to the options' local address if one is given.
///
/// # Errors
///
/// [`SocketError::InvalidArgument`] for port 0 or a family mismatch between the local and
/// remote addresses; [`SocketError::Resolve`] when the remote host does not resolve.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{net::create_connected_udp_socket, net::udp::UdpSocketOptions};
/// let s = create_connected_udp_socket("127.0.0.1", 9, UdpSocketOptions::new()).await?;
/// assert_eq!(s.peer_addr()?.port(), 9);
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn create_connected_udp_socket(
    remote_host: &str,
    remote_port: u16,
    opts: UdpSocketOptions,
) -> Result<ConnectedUdpSocket, SocketError> {
    if remote_port == 0 {
        return Err(SocketError::InvalidArgument(
            "port 0 is not a valid destination; use a port from 1 to 65535".into(),
        ));
    }
    let mut hints = AddrInfoHints::new().kind(SocketKind::Datagram);
    if let Some(f) = opts.family {
        hints = hints.family(f);
    }
    let remote =
        getaddrinfo(remote_host, Some(remote_port), hints).await?.first().map(|i| i.address).ok_or_else(
            || SocketError::Resolve {
                host: remote_host.to_string(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            },
        )?;
    let family = AddressFamily::of(&remote);
    let local = match local_udp_address(&opts, Some(family)).await {
        Ok(Some(l)) if AddressFamily::of(&l) != family => {
            return Err(SocketError::InvalidArgument(format!(
                "address family mismatch: the local address {l} is not {family:?} like the remote {remote}"
            )))
        }
        Ok(l) => l.unwrap_or_else(|| {
            let ip = if family == AddressFamily::Ipv6 {
                Ipv6Addr::UNSPECIFIED.into()
            } else {
                Ipv4Addr::UNSPECIFIED.into()
            };
            SocketAddr::new(ip, 0)
        }),
        Err(e) => return Err(e),
    };
    let socket = udp_socket(local, opts.reuse_port)?;
    socket.connect(&remote.into())?;
    Ok(ConnectedUdpSocket { dg: Datagram::new(socket)? })
}
