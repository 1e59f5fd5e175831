//! Certificates and connected TLS pairs for the TLS tests: a throwaway CA made with rcgen per
//! call, leaf certificates it signs, and client/server pairs over memory streams or TCP.
#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use anyio::net::{connect_tcp, TcpListener, TcpStream};
use anyio::streams::memory::{memory_stream_pair, MemoryByteStream};
use anyio::streams::ByteStream;
use anyio::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use anyio::tls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use anyio::tls::{TlsError, TlsOptions, TlsStream};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A certificate authority for one test.
pub(crate) struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca: CertificateDer<'static>,
    ca_pem: String,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "anyio test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki { issuer: Issuer::new(params, key), ca: cert.der().clone(), ca_pem: cert.pem() }
    }

    pub(crate) fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.clone()
    }

    pub(crate) fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Writes the CA certificate and a server certificate and key for localhost and 127.0.0.1
    /// as PEM files into a fresh directory; returns (ca, cert, key) paths.
    pub(crate) fn write_pem_files(
        &self,
        tag: &str,
    ) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        // One directory per call: the same test runs on several backends at once.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("anyio-tls-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (leaf, key) = self.issue(&["localhost", "127.0.0.1"], |_| {});
        let (ca, cert, keyf) = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&ca, self.ca_pem()).unwrap();
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&keyf, key.serialize_pem()).unwrap();
        (ca, cert, keyf)
    }

    /// A leaf certificate for `names` (DNS names or IP addresses), adjusted by `edit`, and its
    /// key, as rcgen made them.
    fn issue(
        &self,
        names: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> (rcgen::Certificate, KeyPair) {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("anyio test"));
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        (params.signed_by(&key, &self.issuer).unwrap(), key)
    }

    /// A leaf certificate chain and key for `names`, adjusted by `edit`.
    pub(crate) fn leaf_with(
        &self,
        names: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let (cert, key) = self.issue(names, edit);
        (vec![cert.der().clone()], PrivateKeyDer::Pkcs8(key.serialize_der().into()))
    }

    pub(crate) fn leaf(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        self.leaf_with(names, |_| {})
    }

    pub(crate) fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        roots
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        anyio::tls::client_config_with_roots(self.roots()).unwrap()
    }

    pub(crate) fn server_config(&self) -> ServerConfig {
        let (chain, key) = self.leaf(&["localhost", "127.0.0.1", "::1"]);
        anyio::tls::server_config(chain, key).unwrap()
    }

    /// A server configuration that requires a client certificate signed by this CA.
    pub(crate) fn server_config_requiring_client_cert(&self) -> ServerConfig {
        let (chain, key) = self.leaf(&["localhost"]);
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.roots()),
            anyio::tls::crypto_provider(),
        )
        .build()
        .unwrap();
        ServerConfig::builder_with_provider(anyio::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap()
    }

    /// A client configuration presenting a certificate of this CA.
    pub(crate) fn client_config_with_cert(&self, name: &str) -> ClientConfig {
        let (chain, key) = self.leaf(&[name]);
        ClientConfig::builder_with_provider(anyio::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots())
            .with_client_auth_cert(chain, key)
            .unwrap()
    }
}

/// Only the versions given, for a client or server builder.
pub(crate) fn only(
    version: &'static rustls::SupportedProtocolVersion,
) -> [&'static rustls::SupportedProtocolVersion; 1] {
    [version]
}

/// A server configuration restricted to `versions`.
pub(crate) fn server_config_versions(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ServerConfig {
    let (chain, key) = pki.leaf(&["localhost"]);
    ServerConfig::builder_with_provider(anyio::tls::crypto_provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
}

/// A client configuration restricted to `versions`.
pub(crate) fn client_config_versions(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    ClientConfig::builder_with_provider(anyio::tls::crypto_provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth()
}

/// A connected TCP pair over loopback: (client, accepted server side).
pub(crate) async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = connect_tcp("127.0.0.1", listener.local_addr().unwrap().port()).await.unwrap();
    let server = listener.accept().await.unwrap();
    (client, server)
}

/// Memory streams buffering 16 chunks each way.
pub(crate) fn memory_pair() -> (MemoryByteStream, MemoryByteStream) {
    memory_stream_pair(16)
}

/// Client (verifying the server as `hostname`) and server TLS handshakes over `a` and `b`,
/// run concurrently, each with its own outcome.
pub(crate) async fn try_handshake<A: ByteStream, B: ByteStream>(
    a: A,
    b: B,
    hostname: &str,
    client: ClientConfig,
    server: ServerConfig,
    options: TlsOptions,
) -> (Result<TlsStream<A>, TlsError>, Result<TlsStream<B>, TlsError>) {
    // Boxed: the two handshakes' state is large, and the generic stream checks over TLS over
    // TLS nest it deep in futures that debug builds copy through the stack.
    Box::pin(async {
        futures::join!(
            TlsStream::connect(a, hostname, Arc::new(client), options.clone()),
            TlsStream::accept(b, Arc::new(server), options),
        )
    })
    .await
}

/// [`try_handshake`] over a fresh memory pair.
pub(crate) async fn try_memory_handshake(
    hostname: &str,
    client: ClientConfig,
    server: ServerConfig,
) -> (Result<TlsStream<MemoryByteStream>, TlsError>, Result<TlsStream<MemoryByteStream>, TlsError>) {
    let (a, b) = memory_pair();
    try_handshake(a, b, hostname, client, server, TlsOptions::new()).await
}

/// Client and server TLS streams over `a` and `b` for "localhost", handshaken concurrently.
pub(crate) async fn handshake<A: ByteStream, B: ByteStream>(
    a: A,
    b: B,
    client: ClientConfig,
    server: ServerConfig,
    options: TlsOptions,
) -> (TlsStream<A>, TlsStream<B>) {
    let (c, s) = try_handshake(a, b, "localhost", client, server, options).await;
    (c.expect("client handshake"), s.expect("server handshake"))
}

/// A TLS pair over TCP with a fresh CA (standard compatible).
pub(crate) async fn tls_tcp_pair() -> (TlsStream<TcpStream>, TlsStream<TcpStream>) {
    let pki = Pki::new();
    let (a, b) = tcp_pair().await;
    handshake(a, b, pki.client_config(), pki.server_config(), TlsOptions::new()).await
}

/// A TLS pair over memory streams with a fresh CA (standard compatible).
pub(crate) async fn tls_memory_pair() -> (TlsStream<MemoryByteStream>, TlsStream<MemoryByteStream>) {
    let pki = Pki::new();
    let (a, b) = memory_pair();
    handshake(a, b, pki.client_config(), pki.server_config(), TlsOptions::new()).await
}
