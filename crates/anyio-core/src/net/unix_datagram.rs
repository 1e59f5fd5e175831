//! Unix datagram sockets (`create_unix_datagram_socket`, `create_connected_unix_datagram_socket`),
//! unconnected (addressed per packet) and connected; they share the datagram core with UDP.

use std::any::{Any, TypeId};
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use socket2::{Domain, Socket, Type};

use crate::streams::{
    AsyncResource, ObjectReceiveStream, ObjectSendStream, StreamError, TypedAttributeProvider,
};

use super::addr::{unix_sockaddr, SocketAddress, UnixAddress};
use super::error::SocketError;
use super::udp::{datagram_common, Datagram};
use super::unix::unix;

/// An unconnected Unix datagram socket (AnyIO's `UNIXDatagramSocket`); as an object stream its
/// items are `(datagram, sender)` packets.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{net::create_unix_datagram_socket, net::unix::UnixAddress};
/// let path = std::env::temp_dir().join(format!("anyio-doc-dgram-{}.sock", std::process::id()));
/// let server = create_unix_datagram_socket(Some(&path)).await?;
/// let client = create_unix_datagram_socket(None).await?;
/// client.send_to(b"ping", &path).await?;
/// assert_eq!(server.receive().await?.0, b"ping");
/// # drop(server); std::fs::remove_file(&path)?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
#[doc(alias = "UNIXDatagramSocket")]
pub struct UnixDatagramSocket {
    dg: Datagram,
}

datagram_common!(UnixDatagramSocket, false);

impl UnixDatagramSocket {
    /// Adopts a std socket into the current runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// let s = anyio::net::UnixDatagramSocket::from_std(std::os::unix::net::UnixDatagram::unbound()?)?;
    /// # drop(s);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> Result<Self, SocketError> {
        Ok(Self { dg: Datagram::new(Socket::from(std::os::fd::OwnedFd::from(socket)))? })
    }

    /// Receives one datagram and its sender's address.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_unix_datagram_socket, net::unix::UnixAddress};
    /// let tmp = |name: &str| std::env::temp_dir().join(format!("anyio-doc-{name}-{}.sock", std::process::id()));
    /// let (server_path, client_path) = (tmp("dgram-receive-server"), tmp("dgram-receive-client"));
    /// # let _ = (std::fs::remove_file(&server_path), std::fs::remove_file(&client_path));
    /// let server = create_unix_datagram_socket(Some(&server_path)).await?;
    /// let client = create_unix_datagram_socket(Some(&client_path)).await?; // bound: it can get replies
    /// client.send_to(b"ping", &server_path).await?;
    /// let (data, from) = server.receive().await?;
    /// assert_eq!((data, from), (b"ping".to_vec(), UnixAddress::Pathname(client_path.clone())));
    /// # std::fs::remove_file(&server_path)?; std::fs::remove_file(&client_path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn receive(&self) -> Result<(Vec<u8>, UnixAddress), StreamError> {
        let (data, from) = self.dg.receive_from().await?;
        match SocketAddress::from_sockaddr(&from) {
            SocketAddress::Unix(u) => Ok((data, u)),
            SocketAddress::Inet(_) => Err(StreamError::InvalidArgument("not a Unix datagram")),
        }
    }

    /// Sends `data` as one datagram to the socket at `path`.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for a path too long for a socket address.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the datagram is sent whole or not at all.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::net::create_unix_datagram_socket;
    /// let path = std::env::temp_dir().join(format!("anyio-doc-dgram-send-to-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let server = create_unix_datagram_socket(Some(&path)).await?;
    /// let client = create_unix_datagram_socket(None).await?;
    /// client.send_to(b"ping", &path).await?;
    /// assert_eq!(server.receive().await?.0, b"ping");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn send_to(&self, data: &[u8], path: impl AsRef<Path>) -> Result<(), StreamError> {
        let to = unix_sockaddr(path.as_ref()).map_err(|_| {
            StreamError::InvalidArgument("the Unix socket path is too long for a socket address")
        })?;
        self.dg.send_to(data, &to).await
    }

    /// The bound local address.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_unix_datagram_socket, net::unix::UnixAddress};
    /// let path = std::env::temp_dir().join(format!("anyio-doc-dgram-local-address-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let bound = create_unix_datagram_socket(Some(&path)).await?;
    /// assert_eq!(bound.local_addr()?, UnixAddress::Pathname(path.clone()));
    /// let unbound = create_unix_datagram_socket(None).await?;
    /// assert_eq!(unbound.local_addr()?, UnixAddress::Unnamed);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    #[doc(alias = "local_address")]
    pub fn local_addr(&self) -> Result<UnixAddress, StreamError> {
        unix(self.dg.local()?)
    }
}

#[async_trait]
impl ObjectReceiveStream<(Vec<u8>, UnixAddress)> for UnixDatagramSocket {
    async fn receive(&self) -> Result<(Vec<u8>, UnixAddress), StreamError> {
        UnixDatagramSocket::receive(self).await
    }
}

#[async_trait]
impl ObjectSendStream<(Vec<u8>, PathBuf)> for UnixDatagramSocket {
    async fn send(&self, item: (Vec<u8>, PathBuf)) -> Result<(), StreamError> {
        self.send_to(&item.0, &item.1).await
    }
}

/// A Unix datagram socket connected to one peer (AnyIO's `ConnectedUNIXDatagramSocket`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::net::{create_connected_unix_datagram_socket, create_unix_datagram_socket};
/// let path = std::env::temp_dir().join(format!("anyio-doc-cdgram-{}.sock", std::process::id()));
/// let server = create_unix_datagram_socket(Some(&path)).await?;
/// let client = create_connected_unix_datagram_socket(&path, None).await?;
/// client.send(b"ping").await?;
/// assert_eq!(server.receive().await?.0, b"ping");
/// # drop(server); std::fs::remove_file(&path)?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
#[doc(alias = "ConnectedUNIXDatagramSocket")]
pub struct ConnectedUnixDatagramSocket {
    dg: Datagram,
}

datagram_common!(ConnectedUnixDatagramSocket, true);

impl ConnectedUnixDatagramSocket {
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
    /// let (a, _b) = std::os::unix::net::UnixDatagram::pair()?;
    /// let a = anyio::net::ConnectedUnixDatagramSocket::from_std(a)?;
    /// # drop(a);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> Result<Self, SocketError> {
        if socket.peer_addr().is_err() {
            return Err(SocketError::InvalidArgument(
                "the socket is not connected; use UnixDatagramSocket::from_std for an unconnected one".into(),
            ));
        }
        Ok(Self { dg: Datagram::new(Socket::from(std::os::fd::OwnedFd::from(socket)))? })
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
    /// use anyio::net::ConnectedUnixDatagramSocket;
    /// let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
    /// let (a, b) = (ConnectedUnixDatagramSocket::from_std(a)?, ConnectedUnixDatagramSocket::from_std(b)?);
    /// a.send(b"one").await?;
    /// a.send(b"two").await?;
    /// assert_eq!(b.receive().await?, b"one"); // datagram boundaries are kept
    /// assert_eq!(b.receive().await?, b"two");
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
    /// use anyio::net::ConnectedUnixDatagramSocket;
    /// let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
    /// let (a, b) = (ConnectedUnixDatagramSocket::from_std(a)?, ConnectedUnixDatagramSocket::from_std(b)?);
    /// a.send(b"one, two").await?;
    /// let mut buf = [0u8; 3];
    /// assert_eq!(b.receive_into(&mut buf).await?, 3); // cut to fit: the rest is discarded
    /// assert_eq!(&buf, b"one");
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
    /// use anyio::net::ConnectedUnixDatagramSocket;
    /// let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
    /// let (a, b) = (ConnectedUnixDatagramSocket::from_std(a)?, ConnectedUnixDatagramSocket::from_std(b)?);
    /// a.send(b"ping").await?;
    /// assert_eq!(b.receive().await?, b"ping");
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        self.dg.send(data).await
    }

    /// The path this socket is bound to ([`UnixAddress::Unnamed`] when it was not bound).
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::net::{create_connected_unix_datagram_socket, create_unix_datagram_socket, unix::UnixAddress};
    /// let path = std::env::temp_dir().join(format!("anyio-doc-cdgram-addrs-{}.sock", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let server = create_unix_datagram_socket(Some(&path)).await?;
    /// let client = create_connected_unix_datagram_socket(&path, None).await?;
    /// assert_eq!(client.local_addr()?, UnixAddress::Unnamed);
    /// assert_eq!(client.peer_addr()?, UnixAddress::Pathname(path.clone()));
    /// # drop(server); std::fs::remove_file(&path)?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    #[doc(alias = "local_address")]
    pub fn local_addr(&self) -> Result<UnixAddress, StreamError> {
        unix(self.dg.local()?)
    }

    /// The path of the peer this socket is connected to.
    ///
    /// # Examples
    ///
    /// See [`local_addr`](Self::local_addr).
    #[doc(alias = "remote_address")]
    pub fn peer_addr(&self) -> Result<UnixAddress, StreamError> {
        unix(self.dg.peer()?)
    }
}

#[async_trait]
impl ObjectReceiveStream<Vec<u8>> for ConnectedUnixDatagramSocket {
    async fn receive(&self) -> Result<Vec<u8>, StreamError> {
        ConnectedUnixDatagramSocket::receive(self).await
    }
}

#[async_trait]
impl ObjectSendStream<Vec<u8>> for ConnectedUnixDatagramSocket {
    async fn send(&self, item: Vec<u8>) -> Result<(), StreamError> {
        self.dg.send(&item).await
    }
}

fn unix_datagram(local_path: Option<&Path>) -> Result<Socket, SocketError> {
    let socket = Socket::new(Domain::UNIX, Type::DGRAM, None)?;
    if let Some(path) = local_path {
        let address = unix_sockaddr(path)?;
        socket.bind(&address).map_err(|source| SocketError::Bind {
            address: SocketAddress::Unix(UnixAddress::Pathname(path.to_path_buf())),
            source,
        })?;
    }
    Ok(socket)
}

/// Creates an unconnected Unix datagram socket, bound to `local_path` if given (needed to
/// receive replies).
///
/// # Errors
///
/// [`SocketError::InvalidArgument`] for a path too long; [`SocketError::Bind`] when the path
/// cannot be bound (it exists, a directory is missing).
///
/// # Cancel safety
///
/// Cancel safe: it does not wait.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let s = anyio::net::create_unix_datagram_socket(None).await?;
/// # drop(s);
/// # Ok::<_, anyio::net::SocketError>(()) }).unwrap();
/// ```
pub async fn create_unix_datagram_socket(
    local_path: Option<&Path>,
) -> Result<UnixDatagramSocket, SocketError> {
    crate::lowlevel::checkpoint_if_cancelled()?;
    Ok(UnixDatagramSocket { dg: Datagram::new(unix_datagram(local_path)?)? })
}

/// Creates a Unix datagram socket connected to `remote_path`, bound to `local_path` if given.
///
/// # Errors
///
/// As [`create_unix_datagram_socket`], and the OS error when nothing is bound at
/// `remote_path`.
///
/// # Cancel safety
///
/// Cancel safe: it does not wait.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let missing = std::env::temp_dir().join("anyio-doc-nothing-here.sock");
/// assert!(anyio::net::create_connected_unix_datagram_socket(&missing, None).await.is_err());
/// # });
/// ```
pub async fn create_connected_unix_datagram_socket(
    remote_path: impl AsRef<Path>,
    local_path: Option<&Path>,
) -> Result<ConnectedUnixDatagramSocket, SocketError> {
    crate::lowlevel::checkpoint_if_cancelled()?;
    let remote_path = remote_path.as_ref();
    let remote = unix_sockaddr(remote_path)?;
    let socket = unix_datagram(local_path)?;
    socket.connect(&remote).map_err(|e| {
        SocketError::Io(io::Error::new(
            e.kind(),
            format!("could not connect to {}: {e}", remote_path.display()),
        ))
    })?;
    Ok(ConnectedUnixDatagramSocket { dg: Datagram::new(socket)? })
}
