//! Free ports for tests of networked code (AnyIO's pytest fixtures `free_tcp_port` and
//! `free_udp_port`).
use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Mutex, PoisonError};

/// Ports handed out already in this process: never handed out twice, so tests running at the
/// same time do not get the same one.
static HANDED_OUT: Mutex<Option<HashSet<(bool, u16)>>> = Mutex::new(None);

/// A port the system just gave out as free, on IPv4 loopback and (where the machine has
/// IPv6) on IPv6 loopback too, not handed out before by this process.
fn free_port(tcp: bool) -> io::Result<u16> {
    for _ in 0..100 {
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let port = if tcp {
            TcpListener::bind(v4)?.local_addr()?.port()
        } else {
            UdpSocket::bind(v4)?.local_addr()?.port()
        };
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        let v6_free = if tcp { TcpListener::bind(v6).map(drop) } else { UdpSocket::bind(v6).map(drop) };
        match v6_free {
            Ok(()) => {}
            // No IPv6 on this machine: IPv4 alone decides.
            Err(e)
                if e.kind() == io::ErrorKind::AddrNotAvailable
                    || e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
            Err(_) => continue,
        }
        let mut seen = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.get_or_insert_with(HashSet::new).insert((tcp, port)) {
            return Ok(port);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "no free port found in 100 tries"))
}

/// A TCP port free on the loopback addresses now, never handed out before in this process
/// (AnyIO's `free_tcp_port`). Another program may still take it before you bind it: bind
/// port 0 and ask the listener when you can.
///
/// # Errors
///
/// The system's error when it cannot bind a socket, or `AddrInUse` when no unused port came
/// up in 100 tries.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let port = anyio::testing::free_tcp_port().unwrap();
/// let listener = anyio::net::TcpListener::bind(([127, 0, 0, 1], port).into()).await.unwrap();
/// assert_eq!(listener.local_addr().unwrap().port(), port);
/// # });
/// ```
pub fn free_tcp_port() -> io::Result<u16> {
    free_port(true)
}

/// A UDP port free on the loopback addresses now, never handed out before in this process
/// (AnyIO's `free_udp_port`); as [`free_tcp_port`].
///
/// # Errors
///
/// As [`free_tcp_port`].
///
/// # Examples
///
/// ```
/// let port = anyio::testing::free_udp_port().unwrap();
/// assert!(std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok());
/// ```
pub fn free_udp_port() -> io::Result<u16> {
    free_port(false)
}
