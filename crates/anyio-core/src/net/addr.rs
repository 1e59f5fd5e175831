//! Socket addresses as anyio reports them, and the socket typed attributes (AnyIO's
//! `SocketAttribute`).

use std::fmt;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use socket2::SockAddr;

use crate::streams::TypedAttribute;

/// The address family of a socket.
///
/// # Examples
///
/// ```
/// assert_ne!(anyio::net::AddressFamily::Ipv4, anyio::net::AddressFamily::Ipv6);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// `AF_INET`.
    Ipv4,
    /// `AF_INET6`.
    Ipv6,
    /// `AF_UNIX`.
    Unix,
}

impl AddressFamily {
    pub(crate) fn domain(self) -> socket2::Domain {
        match self {
            AddressFamily::Ipv4 => socket2::Domain::IPV4,
            AddressFamily::Ipv6 => socket2::Domain::IPV6,
            AddressFamily::Unix => socket2::Domain::UNIX,
        }
    }

    pub(crate) fn of(addr: &std::net::SocketAddr) -> Self {
        if addr.is_ipv4() {
            AddressFamily::Ipv4
        } else {
            AddressFamily::Ipv6
        }
    }
}

/// The address of a Unix domain socket.
///
/// # Examples
///
/// ```
/// use anyio::net::unix::UnixAddress;
/// let a = UnixAddress::Pathname("/tmp/app.sock".into());
/// assert_eq!(a.to_string(), "/tmp/app.sock");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnixAddress {
    /// A socket file in the file system.
    Pathname(PathBuf),
    /// A name in Linux's abstract namespace (written with a leading `\0` when passed as a path).
    Abstract(Vec<u8>),
    /// No address (an unbound socket, or a peer of `socketpair`).
    Unnamed,
}

impl fmt::Display for UnixAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddress::Pathname(p) => write!(f, "{}", p.display()),
            UnixAddress::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
            UnixAddress::Unnamed => f.write_str("(unnamed)"),
        }
    }
}

/// A socket's address: an IP address and port, or a Unix socket address.
///
/// # Examples
///
/// ```
/// use anyio::net::SocketAddress;
/// let a = SocketAddress::Inet("127.0.0.1:80".parse().unwrap());
/// assert_eq!(a.port(), Some(80));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SocketAddress {
    /// An IPv4 or IPv6 address and port.
    Inet(std::net::SocketAddr),
    /// A Unix domain socket address.
    Unix(UnixAddress),
}

impl SocketAddress {
    /// The port, for IP addresses.
    ///
    /// # Examples
    ///
    /// ```
    /// use anyio::{net::SocketAddress, net::unix::UnixAddress};
    /// assert_eq!(SocketAddress::Inet("[::1]:443".parse().unwrap()).port(), Some(443));
    /// assert_eq!(SocketAddress::Unix(UnixAddress::Unnamed).port(), None);
    /// ```
    pub fn port(&self) -> Option<u16> {
        match self {
            SocketAddress::Inet(a) => Some(a.port()),
            SocketAddress::Unix(_) => None,
        }
    }

    /// The IP address and port, for IP addresses.
    ///
    /// # Examples
    ///
    /// ```
    /// use anyio::{net::SocketAddress, net::unix::UnixAddress};
    /// let inet: std::net::SocketAddr = "127.0.0.1:80".parse().unwrap();
    /// assert_eq!(SocketAddress::Inet(inet).as_inet(), Some(inet));
    /// assert_eq!(SocketAddress::Unix(UnixAddress::Pathname("/tmp/app.sock".into())).as_inet(), None);
    /// ```
    pub fn as_inet(&self) -> Option<std::net::SocketAddr> {
        match self {
            SocketAddress::Inet(a) => Some(*a),
            SocketAddress::Unix(_) => None,
        }
    }

    /// The family of this address.
    ///
    /// # Examples
    ///
    /// ```
    /// use anyio::{net::{AddressFamily, SocketAddress}, net::unix::UnixAddress};
    /// assert_eq!(SocketAddress::Inet("[::1]:80".parse().unwrap()).family(), AddressFamily::Ipv6);
    /// assert_eq!(SocketAddress::Unix(UnixAddress::Unnamed).family(), AddressFamily::Unix);
    /// ```
    pub fn family(&self) -> AddressFamily {
        match self {
            SocketAddress::Inet(a) => AddressFamily::of(a),
            SocketAddress::Unix(_) => AddressFamily::Unix,
        }
    }

    pub(crate) fn from_sockaddr(addr: &SockAddr) -> Self {
        if let Some(a) = addr.as_socket() {
            return SocketAddress::Inet(a);
        }
        if let Some(p) = addr.as_pathname() {
            return SocketAddress::Unix(UnixAddress::Pathname(p.to_path_buf()));
        }
        if let Some(name) = addr.as_abstract_namespace() {
            return SocketAddress::Unix(UnixAddress::Abstract(name.to_vec()));
        }
        SocketAddress::Unix(UnixAddress::Unnamed)
    }
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Inet(a) => a.fmt(f),
            SocketAddress::Unix(u) => u.fmt(f),
        }
    }
}

impl From<std::net::SocketAddr> for SocketAddress {
    fn from(a: std::net::SocketAddr) -> Self {
        SocketAddress::Inet(a)
    }
}

/// The local address of a socket (typed attribute).
///
/// # Examples
///
/// ```no_run
/// # anyio::run(async {
/// use anyio::{net::{connect_tcp, LocalAddress}, streams::TypedAttributeExt};
/// let stream = connect_tcp("localhost", 8080).await?;
/// println!("{}", stream.extra::<LocalAddress>()?);
/// # Ok::<_, Box<dyn std::error::Error>>(()) });
/// ```
#[derive(Debug)]
pub struct LocalAddress;
impl TypedAttribute for LocalAddress {
    type Value = SocketAddress;
}

/// The local port of an IP socket (typed attribute).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     net::{create_tcp_listener, LocalPort}, net::tcp::TcpListenerOptions,
///     streams::TypedAttributeExt,
/// };
/// let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
/// assert_ne!(listener.extra::<LocalPort>()?, 0);
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct LocalPort;
impl TypedAttribute for LocalPort {
    type Value = u16;
}

/// The address of a connected socket's peer (typed attribute).
///
/// # Examples
///
/// ```no_run
/// # anyio::run(async {
/// use anyio::{net::{connect_tcp, RemoteAddress}, streams::TypedAttributeExt};
/// let stream = connect_tcp("localhost", 8080).await?;
/// println!("connected to {}", stream.extra::<RemoteAddress>()?);
/// # Ok::<_, Box<dyn std::error::Error>>(()) });
/// ```
#[derive(Debug)]
pub struct RemoteAddress;
impl TypedAttribute for RemoteAddress {
    type Value = SocketAddress;
}

/// The port of a connected IP socket's peer (typed attribute).
///
/// # Examples
///
/// ```no_run
/// # anyio::run(async {
/// use anyio::{net::{connect_tcp, RemotePort}, streams::TypedAttributeExt};
/// let stream = connect_tcp("localhost", 8080).await?;
/// assert_eq!(stream.extra::<RemotePort>()?, 8080);
/// # Ok::<_, Box<dyn std::error::Error>>(()) });
/// ```
#[derive(Debug)]
pub struct RemotePort;
impl TypedAttribute for RemotePort {
    type Value = u16;
}

/// The address family of a socket (typed attribute).
///
/// # Examples
///
/// ```no_run
/// # anyio::run(async {
/// use anyio::{net::{connect_tcp, AddressFamily, SocketFamily}, streams::TypedAttributeExt};
/// let stream = connect_tcp("127.0.0.1", 8080).await?;
/// assert_eq!(stream.extra::<SocketFamily>()?, AddressFamily::Ipv4);
/// # Ok::<_, Box<dyn std::error::Error>>(()) });
/// ```
#[derive(Debug)]
pub struct SocketFamily;
impl TypedAttribute for SocketFamily {
    type Value = AddressFamily;
}

/// The raw file descriptor of a socket (typed attribute), for socket options anyio does not
/// wrap. It is only valid while the stream is open.
///
/// # Examples
///
/// ```no_run
/// # anyio::run(async {
/// use anyio::{net::{connect_tcp, RawSocket}, streams::TypedAttributeExt};
/// let stream = connect_tcp("127.0.0.1", 8080).await?;
/// let fd: std::os::fd::RawFd = stream.extra::<RawSocket>()?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) });
/// ```
#[derive(Debug)]
pub struct RawSocket;
impl TypedAttribute for RawSocket {
    type Value = RawFd;
}

pub(crate) fn unix_sockaddr(path: &Path) -> Result<SockAddr, crate::net::SocketError> {
    SockAddr::unix(path).map_err(|_| {
        crate::net::SocketError::InvalidArgument(format!(
            "the Unix socket path {} is {} bytes long; the limit is {} bytes (use a shorter path, e.g. under /tmp)",
            path.display(),
            path.as_os_str().len(),
            UNIX_PATH_MAX - 1
        ))
    })
}

/// `sizeof(sun_path)`: 108 bytes on Linux, 104 on the BSDs and macOS.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const UNIX_PATH_MAX: usize = 108;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const UNIX_PATH_MAX: usize = 104;
