//! TLS for anyio's byte streams, on rustls (AnyIO's `anyio.streams.tls`): [`TlsStream`] over
//! any [`ByteStream`](anyio_core::streams::ByteStream) (a TCP or Unix socket, an in-memory
//! pair, another TLS stream), [`TlsListener`], and [`connect_tls`]. Runs on every anyio
//! backend. Use it as `anyio::tls` with the `tls` feature.
//!
//! rustls does the cryptography and the protocol; this crate drives rustls's connection
//! state machine with anyio's own stream operations (it does not wrap tokio-rustls), so a
//! TLS stream has the same `&self` full-duplex operations, cancellation rules and typed
//! errors as every other anyio stream.
//!
//! # Configuration
//!
//! Configurations are rustls's ([`rustls::ClientConfig`], [`rustls::ServerConfig`]),
//! re-exported here as [`rustls`] so that the versions match. [`client_config`],
//! [`client_config_with_roots`] and [`server_config`] build them with the crypto provider
//! the features chose ([`crypto_provider`]: ring by default, aws-lc-rs with
//! `tls-aws-lc-rs`); [`read_certificates`] and [`read_private_key`] read PEM files.
//!
//! # Attributes
//!
//! A TLS stream answers [`AlpnProtocol`], [`CipherSuite`], [`TlsVersion`], [`ServerSide`],
//! [`StandardCompatible`], [`PeerCertificate`], [`PeerCertificateChain`], [`ServerName`] and
//! [`ChannelBinding`], and forwards every other lookup to its transport (the peer's address
//! of a TCP transport, for one).
//!
//! # Examples
//!
//! ```
//! # anyio::run(async {
//! use anyio::streams::{memory::memory_stream_pair, ByteReceiveStream, ByteSendStream, TypedAttributeExt};
//! use anyio::tls::{TlsOptions, TlsStream, TlsVersion, rustls::ProtocolVersion};
//! # let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
//! # let mut roots = anyio::tls::rustls::RootCertStore::empty();
//! # roots.add(ck.cert.der().clone()).unwrap();
//! # let client_config = std::sync::Arc::new(anyio::tls::client_config_with_roots(roots).unwrap());
//! # let key = anyio::tls::rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
//! # let server_config = std::sync::Arc::new(anyio::tls::server_config(vec![ck.cert.der().clone()], key).unwrap());
//! let (a, b) = memory_stream_pair(16);
//! let (client, server) = futures::join!(
//!     TlsStream::connect(a, "localhost", client_config, TlsOptions::new()),
//!     TlsStream::accept(b, server_config, TlsOptions::new()),
//! );
//! let (client, server) = (client.unwrap(), server.unwrap());
//! assert_eq!(client.extra::<TlsVersion>().unwrap(), ProtocolVersion::TLSv1_3);
//! server.send(b"welcome").await.unwrap();
//! assert_eq!(client.receive(100).await.unwrap(), b"welcome");
//! # });
//! ```

#![forbid(unsafe_code)]

mod attrs;
mod config;
mod connect;
mod error;
mod listener;
mod record;
mod stream;

pub use attrs::{
    AlpnProtocol, ChannelBinding, CipherSuite, PeerCertificate, PeerCertificateChain, ServerName, ServerSide,
    StandardCompatible, TlsVersion,
};
pub use config::{
    client_config, client_config_with_roots, crypto_provider, read_certificates, read_private_key,
    server_config, TlsConfig,
};
pub use connect::{connect_tls, connect_tls_with, TlsConnectable};
pub use error::{TlsError, TlsProtocolError};
pub use listener::{HandshakeFailure, TlsListener, DEFAULT_HANDSHAKE_TIMEOUT};
pub use rustls;
pub use stream::{TlsOptions, TlsStream, Unwrapped};
