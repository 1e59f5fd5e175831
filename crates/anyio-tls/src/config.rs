//! Building rustls configurations with the crypto provider our features chose, and reading
//! certificates and keys from PEM.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::TlsError;

/// The crypto provider anyio's TLS uses: aws-lc-rs with the `tls-aws-lc-rs` feature, otherwise
/// ring. Never a process-wide default: configurations built here name it explicitly.
///
/// ```
/// let provider = anyio::tls::crypto_provider();
/// assert!(!provider.cipher_suites.is_empty());
/// ```
pub fn crypto_provider() -> Arc<CryptoProvider> {
    cfg_provider()
}

#[cfg(feature = "aws-lc-rs")]
fn cfg_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
// rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange. ring stays
// the default because it builds with only a C compiler; `tls-aws-lc-rs` brings X25519MLKEM768.
#[allow(deprecated)]
fn cfg_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!(
    "anyio's TLS needs a crypto provider: enable anyio's `tls` (ring) or `tls-aws-lc-rs` feature \
     (or anyio-tls's `ring` or `aws-lc-rs`) beside `tls-webpki-roots` / `tls-platform-verifier`"
);

/// A client configuration that trusts the root certificates the features provide: Mozilla's
/// (`tls-webpki-roots`) or the operating system's verifier (`tls-platform-verifier`, preferred
/// when both are on), TLS 1.2 and 1.3, no client certificate.
///
/// # Errors
///
/// [`TlsError::NoRootCertificates`] when neither feature is enabled: build one with
/// [`client_config_with_roots`] instead.
///
/// ```
/// match anyio::tls::client_config() {
///     Ok(config) => assert!(config.alpn_protocols.is_empty()),
///     Err(e) => assert!(matches!(e, anyio::tls::TlsError::NoRootCertificates)),
/// }
/// ```
pub fn client_config() -> Result<ClientConfig, TlsError> {
    platform_client_config()
}

#[cfg(feature = "platform-verifier")]
fn platform_client_config() -> Result<ClientConfig, TlsError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    Ok(ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_platform_verifier()
        .map_err(TlsError::Config)?
        .with_no_client_auth())
}

#[cfg(all(feature = "webpki-roots", not(feature = "platform-verifier")))]
fn platform_client_config() -> Result<ClientConfig, TlsError> {
    let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    client_config_with_roots(roots)
}

#[cfg(not(any(feature = "webpki-roots", feature = "platform-verifier")))]
fn platform_client_config() -> Result<ClientConfig, TlsError> {
    Err(TlsError::NoRootCertificates)
}

/// A client configuration that trusts exactly `roots` (TLS 1.2 and 1.3, no client
/// certificate). Set `alpn_protocols` or client authentication on the result as rustls
/// documents.
///
/// # Errors
///
/// [`TlsError::NoRootCertificates`] when `roots` is empty.
///
/// ```
/// use anyio::tls::{client_config_with_roots, rustls::RootCertStore, TlsError};
/// assert!(matches!(client_config_with_roots(RootCertStore::empty()), Err(TlsError::NoRootCertificates)));
/// ```
pub fn client_config_with_roots(roots: RootCertStore) -> Result<ClientConfig, TlsError> {
    if roots.is_empty() {
        return Err(TlsError::NoRootCertificates);
    }
    Ok(ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A server configuration presenting `cert_chain` (the server's certificate first) with `key`,
/// TLS 1.2 and 1.3, no client authentication.
///
/// # Errors
///
/// [`TlsError::Config`] when the key does not suit the certificate or is of a kind the
/// provider cannot use.
///
/// ```no_run
/// use anyio::tls::{read_certificates, read_private_key, server_config};
/// let config = server_config(read_certificates("cert.pem")?, read_private_key("key.pem")?)?;
/// # Ok::<_, anyio::tls::TlsError>(())
/// ```
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, TlsError> {
    ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(cert_chain, key)
        .map_err(TlsError::Config)
}

/// Reads every certificate in a PEM file, in order.
///
/// # Errors
///
/// [`TlsError::Pem`] when the file cannot be read, is not PEM, or holds no certificate.
pub fn read_certificates(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!("{}: no CERTIFICATE block", path.display())));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
///
/// # Errors
///
/// [`TlsError::Pem`] when the file cannot be read or holds no private key.
pub fn read_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem(format!("{}: {e}", path.display())))
}

/// A client or a server configuration, for [`TlsStream::wrap`](crate::TlsStream::wrap), which
/// (as AnyIO's) takes either and checks it against the side asked for.
#[derive(Clone, Debug)]
pub enum TlsConfig {
    /// The client side's configuration.
    Client(Arc<ClientConfig>),
    /// The server side's configuration.
    Server(Arc<ServerConfig>),
}

impl From<Arc<ClientConfig>> for TlsConfig {
    fn from(c: Arc<ClientConfig>) -> Self {
        TlsConfig::Client(c)
    }
}

impl From<Arc<ServerConfig>> for TlsConfig {
    fn from(c: Arc<ServerConfig>) -> Self {
        TlsConfig::Server(c)
    }
}

impl From<ClientConfig> for TlsConfig {
    fn from(c: ClientConfig) -> Self {
        TlsConfig::Client(Arc::new(c))
    }
}

impl From<ServerConfig> for TlsConfig {
    fn from(c: ServerConfig) -> Self {
        TlsConfig::Server(Arc::new(c))
    }
}
