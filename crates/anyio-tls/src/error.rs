//! What can go wrong setting up TLS: [`TlsError`].

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use anyio_core::error::{AnyError, AsCancelled, Cancelled, TimeoutError};
use anyio_core::net::SocketError;
use anyio_core::streams::StreamError;

/// Why a TLS handshake, connection or configuration failed.
///
/// Errors of an established [`TlsStream`](crate::TlsStream) are [`StreamError`]s, as for every
/// other stream: a TLS protocol failure there is [`StreamError::Broken`] carrying a
/// [`TlsProtocolError`].
///
/// # Examples
///
/// ```
/// use anyio::tls::{client_config_with_roots, TlsError};
/// let config = client_config_with_roots(anyio::tls::rustls::RootCertStore::empty());
/// assert!(matches!(config, Err(TlsError::NoRootCertificates)));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The handshake failed on the TLS level: the peer's certificate is not trusted or does
    /// not match the host name, no protocol version or cipher suite in common, a required
    /// client certificate is missing, the peer sent something that is not TLS, ...
    Handshake(rustls::Error),
    /// The peer sent bytes that are not TLS records (a plain-text client on a TLS port), or
    /// a record larger than TLS allows; the reason says which.
    NotTls(String),
    /// The transport failed or ended before the handshake finished (an end of stream during
    /// the handshake is always this, with [`StreamError::Broken`]).
    Transport(StreamError),
    /// The handshake did not finish within the handshake timeout.
    Timeout(Duration),
    /// The host name to verify the server by is neither a DNS name nor an IP address.
    /// Internationalised names must be given as A-labels (`xn--...`, punycode).
    InvalidHostname {
        /// The name as given.
        hostname: String,
    },
    /// A client configuration where a server one is needed, or the reverse.
    ConfigMismatch {
        /// Whether a server-side configuration was needed.
        server_side: bool,
    },
    /// A client configuration without root certificates: the client could verify no server.
    /// Add roots ([`client_config_with_roots`](crate::client_config_with_roots)) or enable the
    /// `tls-webpki-roots` or `tls-platform-verifier` feature for
    /// [`client_config`](crate::client_config).
    NoRootCertificates,
    /// The configuration could not be built (a key that does not match its certificate, an
    /// unsupported key type, ...).
    Config(rustls::Error),
    /// Reading a PEM certificate or key failed.
    Pem(String),
    /// Connecting the TCP transport failed ([`connect_tls`](crate::connect_tls)).
    Connect(SocketError),
    /// The caller's cancel scope was cancelled; the transport was closed.
    Cancelled(Cancelled),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
            TlsError::NotTls(m) => write!(f, "TLS handshake failed: {m}"),
            TlsError::Transport(e) => write!(f, "the transport failed during the TLS handshake: {e}"),
            TlsError::Timeout(d) => write!(f, "the TLS handshake did not finish within {d:?}"),
            TlsError::InvalidHostname { hostname } => write!(
                f,
                "{hostname:?} is not a valid DNS name or IP address to verify a server by \
                 (give internationalised names as A-labels, xn--...)"
            ),
            TlsError::ConfigMismatch { server_side: true } => {
                f.write_str("a client TLS configuration was given where a server one is needed")
            }
            TlsError::ConfigMismatch { server_side: false } => {
                f.write_str("a server TLS configuration was given where a client one is needed")
            }
            TlsError::NoRootCertificates => f.write_str(
                "the client TLS configuration has no root certificates: add some, or enable the \
                 tls-webpki-roots or tls-platform-verifier feature",
            ),
            TlsError::Config(e) => write!(f, "invalid TLS configuration: {e}"),
            TlsError::Pem(m) => write!(f, "cannot read PEM: {m}"),
            TlsError::Connect(e) => write!(f, "connecting the TLS transport failed: {e}"),
            TlsError::Cancelled(c) => c.fmt(f),
        }
    }
}

impl StdError for TlsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            TlsError::Handshake(e) | TlsError::Config(e) => Some(e),
            TlsError::Transport(e) => Some(e),
            TlsError::Connect(e) => Some(e),
            TlsError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl AsCancelled for TlsError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            TlsError::Cancelled(c) => Some(c),
            TlsError::Transport(e) => e.as_cancelled(),
            TlsError::Connect(e) => e.as_cancelled(),
            _ => None,
        }
    }
}

impl From<Cancelled> for TlsError {
    fn from(c: Cancelled) -> Self {
        TlsError::Cancelled(c)
    }
}

impl From<TimeoutError> for TlsError {
    fn from(e: TimeoutError) -> Self {
        TlsError::Timeout(e.after().unwrap_or_default())
    }
}

impl From<StreamError> for TlsError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Cancelled(c) => TlsError::Cancelled(c),
            other => TlsError::Transport(other),
        }
    }
}

impl From<TlsError> for AnyError {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Cancelled(c) => c.into(),
            other => AnyError::other(other),
        }
    }
}

/// How a [`TlsError`] reads as a stream error (the listener's `accept` reports through
/// [`StreamError`]): cancellation stays cancellation, a transport error stays itself, the rest
/// is [`StreamError::Broken`] carrying the TLS error.
impl From<TlsError> for StreamError {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Cancelled(c) => StreamError::Cancelled(c),
            TlsError::Transport(e) => e,
            other => StreamError::Broken(Some(io::Error::new(io::ErrorKind::InvalidData, other))),
        }
    }
}

/// The TLS-level failure of an established stream, carried by [`StreamError::Broken`]: the peer
/// sent a record that failed to decrypt, an oversized record, bytes that are not TLS, or a fatal
/// alert.
#[derive(Debug, Clone)]
pub struct TlsProtocolError(pub(crate) String);

impl fmt::Display for TlsProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS protocol error: {}", self.0)
    }
}

impl StdError for TlsProtocolError {}

impl TlsProtocolError {
    pub(crate) fn stream_error(&self) -> StreamError {
        StreamError::Broken(Some(io::Error::new(io::ErrorKind::InvalidData, self.clone())))
    }
}
