//! Asynchronous name resolution: `getaddrinfo` and `getnameinfo` on the runtime's blocking
//! pool ([`Runtime::spawn_blocking`](crate::rt::Runtime::spawn_blocking)).

use std::ffi::{CStr, CString};
use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::SockAddr;

use super::addr::AddressFamily;
use super::error::SocketError;
use crate::rt::{run_blocking, BlockingError};

/// The socket type an address is meant for.
///
/// # Examples
///
/// ```
/// assert_ne!(anyio::net::dns::SocketKind::Stream, anyio::net::dns::SocketKind::Datagram);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// `SOCK_STREAM` (TCP).
    Stream,
    /// `SOCK_DGRAM` (UDP).
    Datagram,
    /// `SOCK_RAW`.
    Raw,
    /// Any other type, by number.
    Other(i32),
}

impl SocketKind {
    fn to_raw(self) -> libc::c_int {
        match self {
            SocketKind::Stream => libc::SOCK_STREAM,
            SocketKind::Datagram => libc::SOCK_DGRAM,
            SocketKind::Raw => libc::SOCK_RAW,
            SocketKind::Other(n) => n,
        }
    }

    fn from_raw(n: libc::c_int) -> Self {
        match n {
            libc::SOCK_STREAM => SocketKind::Stream,
            libc::SOCK_DGRAM => SocketKind::Datagram,
            libc::SOCK_RAW => SocketKind::Raw,
            n => SocketKind::Other(n),
        }
    }
}

/// What to look up with [`getaddrinfo`]: `None` fields match anything.
///
/// # Examples
///
/// ```
/// use anyio::{net::AddressFamily, net::dns::{AddrInfoHints, SocketKind}};
/// let hints = AddrInfoHints::new().family(AddressFamily::Ipv4).kind(SocketKind::Stream);
/// # drop(hints);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AddrInfoHints {
    family: Option<AddressFamily>,
    kind: Option<SocketKind>,
    protocol: i32,
    flags: i32,
}

impl AddrInfoHints {
    /// Any family, any type.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::getaddrinfo, net::dns::AddrInfoHints};
    /// // Unrestricted, a numeric address is offered for stream and datagram sockets alike.
    /// let found = getaddrinfo("127.0.0.1", Some(80), AddrInfoHints::new()).await?;
    /// assert_eq!(found.len(), 2);
    /// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Only addresses of this family.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::{getaddrinfo, AddressFamily}, net::dns::AddrInfoHints};
    /// let v4 = AddrInfoHints::new().family(AddressFamily::Ipv4);
    /// assert!(getaddrinfo("127.0.0.1", None, v4).await?.iter().all(|i| i.address.is_ipv4()));
    /// let v6 = AddrInfoHints::new().family(AddressFamily::Ipv6);
    /// assert!(getaddrinfo("127.0.0.1", None, v6).await.is_err());
    /// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
    /// ```
    pub fn family(mut self, family: AddressFamily) -> Self {
        self.family = Some(family);
        self
    }
    /// Only addresses for this socket type.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::getaddrinfo, net::dns::{AddrInfoHints, SocketKind}};
    /// let hints = AddrInfoHints::new().kind(SocketKind::Datagram);
    /// let found = getaddrinfo("127.0.0.1", Some(53), hints).await?;
    /// assert!(found.iter().all(|i| i.kind == SocketKind::Datagram));
    /// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
    /// ```
    pub fn kind(mut self, kind: SocketKind) -> Self {
        self.kind = Some(kind);
        self
    }
    /// Only this protocol number (`IPPROTO_*`).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::getaddrinfo, net::dns::{AddrInfoHints, SocketKind}};
    /// let hints = AddrInfoHints::new().kind(SocketKind::Stream).protocol(libc::IPPROTO_TCP);
    /// let found = getaddrinfo("127.0.0.1", Some(80), hints).await?;
    /// assert!(found.iter().all(|i| i.protocol == libc::IPPROTO_TCP));
    /// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
    /// ```
    pub fn protocol(mut self, protocol: i32) -> Self {
        self.protocol = protocol;
        self
    }
    /// `AI_*` flags, e.g. `AI_PASSIVE` or `AI_CANONNAME`.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::getaddrinfo, net::dns::AddrInfoHints};
    /// let hints = AddrInfoHints::new().flags(libc::AI_CANONNAME);
    /// let found = getaddrinfo("localhost", None, hints).await?;
    /// assert!(found[0].canonical_name.is_some());
    /// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
    /// ```
    pub fn flags(mut self, flags: i32) -> Self {
        self.flags = flags;
        self
    }
}

/// One result of [`getaddrinfo`].
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let found = anyio::net::getaddrinfo("127.0.0.1", Some(80), Default::default()).await.unwrap();
/// assert!(found.iter().all(|i| i.address == "127.0.0.1:80".parse().unwrap()));
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// The address family.
    pub family: AddressFamily,
    /// The socket type.
    pub kind: SocketKind,
    /// The protocol number.
    pub protocol: i32,
    /// The canonical name, when `AI_CANONNAME` was asked for (first result only).
    pub canonical_name: Option<String>,
    /// The address and port.
    pub address: SocketAddr,
}

/// Looks up `host` (a name or a numeric address) with the system resolver, on the runtime's
/// blocking pool, like Python's `socket.getaddrinfo`. `port` fills the port of every result.
/// A numeric address is answered at once, without the pool.
///
/// # Errors
///
/// [`SocketError::Resolve`] names the host and carries the resolver's message, or the I/O
/// error of a blocking pool that could not run the lookup; [`SocketError::InvalidArgument`]
/// for a host containing a NUL byte; [`SocketError::Cancelled`] when the task is cancelled.
///
/// # Cancel safety
///
/// Cancel safe: a cancelled lookup returns at once and is abandoned, as AnyIO abandons it:
/// the call runs to its end on the pool, which drops the result.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{net::getaddrinfo, net::dns::{AddrInfoHints, SocketKind}};
/// let found = getaddrinfo("localhost", Some(8080), AddrInfoHints::new().kind(SocketKind::Stream)).await?;
/// assert!(found.iter().all(|i| i.address.ip().is_loopback() && i.address.port() == 8080));
/// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
/// ```
pub async fn getaddrinfo(
    host: &str,
    port: Option<u16>,
    hints: AddrInfoHints,
) -> Result<Vec<AddrInfo>, SocketError> {
    // Numeric addresses need no resolver, so no trip through the pool.
    if let Some(ip) = ip_literal(host) {
        crate::lowlevel::checkpoint_if_cancelled()?;
        let address = SocketAddr::new(ip, port.unwrap_or(0));
        let family = AddressFamily::of(&address);
        if hints.family.is_some_and(|f| f != family) {
            return Err(SocketError::Resolve {
                host: host.to_string(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the address is not of the requested family",
                ),
            });
        }
        let kinds = match hints.kind {
            Some(k) => vec![k],
            None => vec![SocketKind::Stream, SocketKind::Datagram],
        };
        return Ok(kinds
            .into_iter()
            .map(|kind| AddrInfo { family, kind, protocol: hints.protocol, canonical_name: None, address })
            .collect());
    }
    let c_host = CString::new(host)
        .map_err(|_| SocketError::InvalidArgument(format!("the host name {host:?} contains a NUL byte")))?;
    let found = run_blocking(move || blocking_getaddrinfo(&c_host, port, hints)).await;
    lookup_result(found)?.map_err(|source| SocketError::Resolve { host: host.to_string(), source })
}

/// A lookup's outcome with the pool's failures folded in: a lookup that could not run fails
/// like one that ran and failed, and a panic (a bug) carries on in the caller.
fn lookup_result<T>(found: Result<io::Result<T>, BlockingError>) -> Result<io::Result<T>, SocketError> {
    match found {
        Ok(r) => Ok(r),
        Err(BlockingError::Cancelled(c)) => Err(SocketError::Cancelled(c)),
        Err(BlockingError::NotRun(e)) => Ok(Err(e)),
        Err(BlockingError::Panicked(payload)) => std::panic::resume_unwind(payload),
    }
}

/// `host` as an IP address literal (an IPv6 one may be in brackets): no resolver needed.
pub(crate) fn ip_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

fn blocking_getaddrinfo(host: &CStr, port: Option<u16>, hints: AddrInfoHints) -> io::Result<Vec<AddrInfo>> {
    // SAFETY: addrinfo is a plain C struct; all-zero is the documented "no hints" value.
    let mut raw_hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    raw_hints.ai_family = hints.family.map_or(libc::AF_UNSPEC, |f| f.domain().into());
    raw_hints.ai_socktype = hints.kind.map_or(0, SocketKind::to_raw);
    raw_hints.ai_protocol = hints.protocol;
    raw_hints.ai_flags = hints.flags;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `host` is NUL-terminated, the service is NULL, `raw_hints` and `res` are valid for
    // the call; on success `res` owns a list freed below with freeaddrinfo.
    let rc = unsafe { libc::getaddrinfo(host.as_ptr(), std::ptr::null(), &raw_hints, &mut res) };
    if rc != 0 {
        return Err(gai_error(rc));
    }
    let mut out = Vec::new();
    let mut cur = res;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getaddrinfo returned, not yet freed.
        let ai = unsafe { &*cur };
        // SAFETY: ai_addr points to ai_addrlen bytes of a socket address of family ai_family;
        // the copy is bounded by the storage size.
        let addr = unsafe {
            SockAddr::try_init(|storage, len| {
                let n = (ai.ai_addrlen as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
                std::ptr::copy_nonoverlapping(ai.ai_addr.cast::<u8>(), storage.cast::<u8>(), n);
                *len = n as libc::socklen_t;
                Ok(())
            })
        }
        .map(|(_, a)| a)?;
        if let Some(mut address) = addr.as_socket() {
            address.set_port(port.unwrap_or(0));
            let canonical_name = (!ai.ai_canonname.is_null())
                // SAFETY: a non-null ai_canonname is a NUL-terminated string owned by the list.
                .then(|| unsafe { CStr::from_ptr(ai.ai_canonname) }.to_string_lossy().into_owned());
            out.push(AddrInfo {
                family: AddressFamily::of(&address),
                kind: SocketKind::from_raw(ai.ai_socktype),
                protocol: ai.ai_protocol,
                canonical_name,
                address,
            });
        }
        cur = ai.ai_next;
    }
    // SAFETY: `res` is the list getaddrinfo allocated; it is freed once, after its last use.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

fn gai_error(rc: libc::c_int) -> io::Error {
    if rc == libc::EAI_SYSTEM {
        return io::Error::last_os_error();
    }
    // SAFETY: gai_strerror returns a pointer to a static NUL-terminated message.
    let msg = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) }.to_string_lossy().into_owned();
    let kind = if rc == libc::EAI_NONAME { io::ErrorKind::NotFound } else { io::ErrorKind::Other };
    io::Error::new(kind, msg)
}

/// Translates `address` back into a host name and service name (Python's
/// `socket.getnameinfo`), on the runtime's blocking pool. `flags` are `NI_*` flags
/// (`NI_NUMERICHOST`, `NI_NAMEREQD`, ...).
///
/// # Errors
///
/// [`SocketError::Resolve`] carrying the resolver's message, or the I/O error of a blocking
/// pool that could not run the lookup; [`SocketError::Cancelled`] when the task is cancelled.
///
/// # Cancel safety
///
/// Cancel safe: a cancelled lookup returns at once and is abandoned: the call runs to its end
/// on the pool, which drops the result.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let (host, port) = anyio::net::getnameinfo("127.0.0.1:80".parse().unwrap(), libc::NI_NUMERICHOST | libc::NI_NUMERICSERV).await?;
/// assert_eq!((host.as_str(), port.as_str()), ("127.0.0.1", "80"));
/// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
/// ```
pub async fn getnameinfo(address: SocketAddr, flags: i32) -> Result<(String, String), SocketError> {
    let found = run_blocking(move || blocking_getnameinfo(address, flags)).await;
    lookup_result(found)?.map_err(|source| SocketError::Resolve { host: address.to_string(), source })
}

fn blocking_getnameinfo(address: SocketAddr, flags: i32) -> io::Result<(String, String)> {
    let sa = SockAddr::from(address);
    let mut host = [0 as libc::c_char; 1025];
    let mut serv = [0 as libc::c_char; 32];
    // SAFETY: `sa` is a valid socket address of `sa.len()` bytes; both buffers are writable for
    // the lengths passed and getnameinfo NUL-terminates what it writes.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr().cast(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            serv.as_mut_ptr(),
            serv.len() as libc::socklen_t,
            flags,
        )
    };
    if rc != 0 {
        return Err(gai_error(rc));
    }
    // SAFETY: both buffers were NUL-terminated by a successful getnameinfo.
    let (h, s) = unsafe { (CStr::from_ptr(host.as_ptr()), CStr::from_ptr(serv.as_ptr())) };
    Ok((h.to_string_lossy().into_owned(), s.to_string_lossy().into_owned()))
}
