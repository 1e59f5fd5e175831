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
    if PkiServerName::try_from(hostname.clone()).is_err() {
        return Err(TlsError::InvalidHostname { hostname });
    }
    let tcp = connect_tcp(host, port).await.map_err(|e| match e {
        SocketError::Cancelled(c) => TlsError::Cancelled(c),
        e => TlsError::Connect(e),
    })?;
    TlsStream::connect(tcp, &hostname, config, options).await
}
