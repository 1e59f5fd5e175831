//! The sockets' connectables (AnyIO's `TCPConnectable` and `UNIXConnectable`).

use std::path::{Path, PathBuf};

use super::tcp::{connect_tcp_with, TcpConnectOptions};
use super::unix::connect_unix;
use super::{SocketError, TcpStream, UnixStream};
use crate::streams::ByteStreamConnectable;

/// Connects to a TCP host and port, with Happy Eyeballs (AnyIO's `TCPConnectable`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::net::TcpConnectable;
/// use anyio::streams::ByteStreamConnectable;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let server = TcpConnectable::new("localhost", listener.local_addr()?.port())?;
/// let stream = server.connect().await?;
/// assert_eq!(stream.peer_addr()?.port(), server.port());
/// assert!(TcpConnectable::new("localhost", 0).is_err());
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[doc(alias = "TCPConnectable")]
#[derive(Clone, Debug)]
pub struct TcpConnectable {
    host: String,
    port: u16,
    options: TcpConnectOptions,
}

impl TcpConnectable {
    /// Where to connect: a host name or address, and a port.
    ///
    /// # Errors
    ///
    /// [`SocketError::InvalidArgument`] for port 0 (AnyIO's `ValueError`), or an empty host.
    pub fn new(host: impl Into<String>, port: u16) -> Result<Self, SocketError> {
        let host = host.into();
        if port == 0 {
            return Err(SocketError::InvalidArgument(
                "port 0 is not a valid destination; use a port from 1 to 65535".into(),
            ));
        }
        if host.is_empty() {
            return Err(SocketError::InvalidArgument("the host name is empty".into()));
        }
        Ok(Self { host, port, options: TcpConnectOptions::new() })
    }

    /// The same, connecting with `options` (a local address or port, another Happy Eyeballs
    /// delay).
    ///
    /// ```
    /// let c = anyio::net::TcpConnectable::new("localhost", 80).unwrap()
    ///     .with_options(anyio::net::tcp::TcpConnectOptions::new());
    /// # drop(c);
    /// ```
    pub fn with_options(mut self, options: TcpConnectOptions) -> Self {
        self.options = options;
        self
    }

    /// The host it connects to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port it connects to.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl ByteStreamConnectable for TcpConnectable {
    type Stream = TcpStream;
    type Error = SocketError;

    /// As [`connect_tcp`](super::connect_tcp).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled connect closes every socket it opened.
    async fn connect(&self) -> Result<TcpStream, SocketError> {
        connect_tcp_with(&self.host, self.port, self.options.clone()).await
    }
}

/// Connects to a Unix socket path (AnyIO's `UNIXConnectable`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::net::UnixConnectable;
/// use anyio::streams::ByteStreamConnectable;
/// let err = UnixConnectable::new("/no/such/socket").connect().await.unwrap_err();
/// assert!(err.to_string().contains("/no/such/socket"), "{err}");
/// # });
/// ```
#[doc(alias = "UNIXConnectable")]
#[derive(Clone, Debug)]
pub struct UnixConnectable {
    path: PathBuf,
}

impl UnixConnectable {
    /// Where to connect: the socket's path.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The path it connects to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ByteStreamConnectable for UnixConnectable {
    type Stream = UnixStream;
    type Error = SocketError;

    /// As [`connect_unix`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled connect closes its socket.
    async fn connect(&self) -> Result<UnixStream, SocketError> {
        connect_unix(&self.path).await
    }
}
