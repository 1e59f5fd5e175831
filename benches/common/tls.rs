//! TLS configurations for the TLS benchmarks: a self-signed certificate for localhost (rcgen),
//! and client and server configurations on ring, anyio's default provider, so that both sides
//! of every comparison use the same crypto. Included with `#[path = "common/tls.rs"] mod tls;`.
#![allow(dead_code)]

use std::sync::Arc;

use anyio::tls::rustls::{self, pki_types::PrivateKeyDer, ClientConfig, RootCertStore, ServerConfig};

#[allow(deprecated)] // ring's provider, as anyio's default: the same crypto on both sides
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting a fresh self-signed localhost certificate, and a server
/// configuration presenting it.
pub(crate) fn configs() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![ck.cert.der().clone()],
            PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        )
        .unwrap();
    (Arc::new(client), Arc::new(server))
}
