//! `SocketError`: why a socket could not be created, bound, connected or resolved.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use crate::error::{AnyError, AsCancelled, Cancelled};
use crate::streams::StreamError;
use crate::sync::BusyResourceError;

use super::addr::SocketAddress;

/// One failed connection attempt of [`connect_tcp`](crate::net::connect_tcp).
///
/// # Examples
///
/// ```
/// let a = anyio::net::ConnectAttempt {
///     address: "127.0.0.1:1".parse().unwrap(),
///     error: std::io::ErrorKind::ConnectionRefused.into(),
/// };
/// assert!(a.to_string().starts_with("127.0.0.1:1: "));
/// ```
#[derive(Debug)]
pub struct ConnectAttempt {
    /// The address tried.
    pub address: std::net::SocketAddr,
    /// Why it failed.
    pub error: io::Error,
}

impl fmt::Display for ConnectAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.address, self.error)
    }
}

/// Why a socket could not be set up: created, bound, connected, resolved or adopted.
///
/// Operations on an established stream return [`StreamError`] instead.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::net::{connect_tcp, SocketError};
/// // Port 0 is never a valid destination.
/// let err = connect_tcp("127.0.0.1", 0).await.unwrap_err();
/// assert!(matches!(err, SocketError::InvalidArgument(_)));
/// # });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SocketError {
    /// The operation was cancelled by a cancel scope; nothing was left open.
    Cancelled(Cancelled),
    /// An argument cannot work (a port of 0 for a destination, a Unix path that is too long,
    /// an address of the wrong family); the message says which and why.
    InvalidArgument(String),
    /// The host name could not be resolved.
    Resolve {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// Every connection attempt failed; each attempt names its address and its cause.
    Connect {
        /// The host asked for.
        host: String,
        /// The port asked for.
        port: u16,
        /// Every attempt, in the order they were started.
        attempts: Vec<ConnectAttempt>,
    },
    /// A socket could not be bound to a local address.
    Bind {
        /// The address.
        address: SocketAddress,
        /// The operating system's error.
        source: io::Error,
    },
    /// Another task is already using the socket in the same direction.
    Busy(BusyResourceError),
    /// The socket was closed (by this program) while the operation was under way.
    Closed,
    /// Any other operating-system error.
    Io(io::Error),
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketError::Cancelled(c) => c.fmt(f),
            SocketError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            SocketError::Resolve { host, source } => write!(f, "could not resolve host {host:?}: {source}"),
            SocketError::Connect { host, port, attempts } => {
                write!(f, "all connection attempts to {host}:{port} failed")?;
                for (i, a) in attempts.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { "; " })?;
                    a.fmt(f)?;
                }
                Ok(())
            }
            SocketError::Bind { address, source } => write!(f, "could not bind to {address}: {source}"),
            SocketError::Busy(b) => b.fmt(f),
            SocketError::Closed => f.write_str("the socket was closed"),
            SocketError::Io(e) => e.fmt(f),
        }
    }
}

impl StdError for SocketError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SocketError::Cancelled(c) => Some(c),
            SocketError::Resolve { source, .. } | SocketError::Bind { source, .. } => Some(source),
            SocketError::Connect { attempts, .. } => attempts.first().map(|a| &a.error as _),
            SocketError::Busy(b) => Some(b),
            SocketError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl AsCancelled for SocketError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            SocketError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl From<Cancelled> for SocketError {
    fn from(c: Cancelled) -> Self {
        SocketError::Cancelled(c)
    }
}

impl From<io::Error> for SocketError {
    fn from(e: io::Error) -> Self {
        SocketError::Io(e)
    }
}

impl From<SocketError> for AnyError {
    fn from(e: SocketError) -> Self {
        match e {
            SocketError::Cancelled(c) => c.into(),
            other => AnyError::other(other),
        }
    }
}

/// How an operation on a registered socket ended, before it is named for its caller.
#[derive(Debug)]
pub(crate) enum OpError {
    Closed,
    Busy(BusyResourceError),
    Cancelled(Cancelled),
    Io(io::Error),
}

/// Errors that mean the connection itself is gone (the peer reset or vanished).
pub(crate) fn is_broken(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | TimedOut)
        || e.raw_os_error() == Some(libc::EHOSTUNREACH)
        || e.raw_os_error() == Some(libc::ENETUNREACH)
}

impl From<OpError> for StreamError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Closed => StreamError::Closed,
            OpError::Busy(b) => StreamError::Busy(b),
            OpError::Cancelled(c) => StreamError::Cancelled(c),
            OpError::Io(e) if is_broken(&e) => StreamError::Broken(Some(e)),
            OpError::Io(e) => StreamError::Io(e),
        }
    }
}

impl From<OpError> for SocketError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Closed => SocketError::Closed,
            OpError::Busy(b) => SocketError::Busy(b),
            OpError::Cancelled(c) => SocketError::Cancelled(c),
            OpError::Io(e) => SocketError::Io(e),
        }
    }
}

impl From<StreamError> for SocketError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Cancelled(c) => SocketError::Cancelled(c),
            StreamError::Closed => SocketError::Closed,
            StreamError::Busy(b) => SocketError::Busy(b),
            StreamError::Io(e) | StreamError::Broken(Some(e)) => SocketError::Io(e),
            other => SocketError::Io(io::Error::other(other)),
        }
    }
}
