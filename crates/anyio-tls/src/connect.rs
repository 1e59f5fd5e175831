//! [`connect_tls`]: TCP with Happy Eyeballs, then TLS.

use std::sync::Arc;

use anyio_core::net::{connect_tcp, SocketError, TcpStream};
use rustls::pki_types::ServerName as PkiServerName;
use rustls::ClientConfig;

use crate::error::TlsError;
use crate::stream::{TlsOptions, TlsStream};

/// Connects to `host:port` over TCP (Happy Eyeballs over every address `host` resolves to)
/// and completes a TLS handshake verifying the server as `host` (AnyIO's
/// `connect_tcp(..., tls=True)`).
///
/// # Errors
///
/// [`TlsError::InvalidHostname`] (before connecting), [`TlsError::Connect`] with the TCP
/// failure, then as [`TlsStream::connect`].
///
/// # Cancel safety
///
/// Cancelling closes whatever was opened.
///
/// # Examples
///
/// ```no_run
/// # anyio::run(async {
/// use std::sync::Arc;
/// use anyio::tls::{client_config, connect_tls};
/// let stream = connect_tls("example.com", 443, Arc::new(client_config()?)).await?;
/// # Ok::<_, anyio::AnyError>(())
/// # });
/// ```
#[doc(alias = "connect_tcp")]
pub async fn connect_tls(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, TlsError> {
    connect_tls_with(host, port, config, TlsOptions::new()).await
}

/// [`connect_tls`] with options: [`TlsOptions::hostname`] verifies the server by another name
/// than `host` (AnyIO's `tls_hostname`), [`TlsOptions::standard_compatible`],
/// [`TlsOptions::handshake_timeout`].
///
/// # Errors
///
/// As [`connect_tls`].
///
/// # Cancel safety
///
/// As [`connect_tls`].
///
/// # Examples
///
/// ```no_run
/// # anyio::run(async {
/// use std::sync::Arc;
/// use anyio::tls::{client_config, connect_tls_with, TlsOptions};
/// let options = TlsOptions::new().hostname("internal.example");
/// let stream = connect_tls_with("10.0.0.7", 443, Arc::new(client_config()?), options).await?;
/// # Ok::<_, anyio::AnyError>(())
/// # });
/// ```
pub async fn connect_tls_with(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
    options: TlsOptions,
) -> Result<TlsStream<TcpStream>, TlsError> {
    let hostname = options.hostname_override().unwrap_or(host).to_owned();
    check_hostname(&hostname)?;
    let tcp = connect_tcp(host, port).await.map_err(transport_error)?;
    TlsStream::connect(tcp, &hostname, config, options).await
}

/// Refuses a name that cannot be a server name before anything is connected.
fn check_hostname(hostname: &str) -> Result<(), TlsError> {
    match PkiServerName::try_from(hostname.to_owned()) {
        Ok(_) => Ok(()),
        Err(_) => Err(TlsError::InvalidHostname { hostname: hostname.to_owned() }),
    }
}

/// A failure to connect the transport, as a TLS error (a cancellation stays one).
fn transport_error(e: SocketError) -> TlsError {
    match e {
        SocketError::Cancelled(c) => TlsError::Cancelled(c),
        e => TlsError::Connect(e),
    }
}

/// Connects with another connectable, then completes a TLS handshake over the stream (AnyIO's
/// `TLSConnectable`). The server is verified as `hostname`: by default the host of a
/// [`TcpConnectable`](anyio_core::net::TcpConnectable) via [`TlsConnectable::tcp`], or
/// [`TlsOptions::hostname`].
///
/// # Examples
///
/// ```no_run
/// # anyio::run(async {
/// use std::sync::Arc;
/// use anyio::net::TcpConnectable;
/// use anyio::streams::ByteStreamConnectable;
/// use anyio::tls::{client_config, TlsConnectable, TlsOptions};
/// let server = TlsConnectable::tcp(TcpConnectable::new("example.com", 443)?, Arc::new(client_config()?), TlsOptions::new());
/// let stream = server.connect().await?;
/// # Ok::<_, anyio::AnyError>(())
/// # });
/// ```
#[doc(alias = "TLSConnectable")]
#[derive(Clone, Debug)]
pub struct TlsConnectable<C> {
    inner: C,
    hostname: String,
    config: Arc<ClientConfig>,
    options: TlsOptions,
}

impl<C> TlsConnectable<C> {
    /// TLS over the streams `inner` connects, verifying the server as `hostname` (unless
    /// `options` names another).
    pub fn new(
        inner: C,
        hostname: impl Into<String>,
        config: Arc<ClientConfig>,
        options: TlsOptions,
    ) -> Self {
        let hostname = options.hostname_override().map_or_else(|| hostname.into(), str::to_owned);
        Self { inner, hostname, config, options }
    }

    /// The name the server is verified as.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The connectable it wraps.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }
}

impl TlsConnectable<anyio_core::net::TcpConnectable> {
    /// TLS over `tcp`, verifying the server as `tcp`'s host (unless `options` names another).
    pub fn tcp(tcp: anyio_core::net::TcpConnectable, config: Arc<ClientConfig>, options: TlsOptions) -> Self {
        let host = tcp.host().to_owned();
        Self::new(tcp, host, config, options)
    }
}

impl<C> anyio_core::streams::ByteStreamConnectable for TlsConnectable<C>
where
    C: anyio_core::streams::ByteStreamConnectable<Error = SocketError>,
{
    type Stream = TlsStream<C::Stream>;
    type Error = TlsError;

    /// Connects the transport, then runs the handshake.
    ///
    /// # Errors
    ///
    /// [`TlsError::InvalidHostname`] (before connecting), [`TlsError::Connect`] with the
    /// transport's failure, then as [`TlsStream::connect`].
    ///
    /// # Cancel safety
    ///
    /// Cancelling closes whatever was opened.
    async fn connect(&self) -> Result<Self::Stream, TlsError> {
        check_hostname(&self.hostname)?;
        let transport = self.inner.connect().await.map_err(transport_error)?;
        TlsStream::connect(transport, &self.hostname, self.config.clone(), self.options.clone()).await
    }
}
