//! The typed attributes of a [`TlsStream`](crate::TlsStream) (AnyIO's `TLSAttribute`). Each is
//! looked up with `stream.extra::<Key>()`; a stream wrapping a TLS stream forwards the lookup.

use anyio_core::streams::TypedAttribute;

/// The application protocol negotiated with ALPN, or `None` if none was (AnyIO's
/// `TLSAttribute.alpn_protocol`).
///
/// ```no_run
/// # async fn f(stream: anyio::tls::TlsStream<anyio::net::TcpStream>) {
/// use anyio::{streams::TypedAttributeExt, tls::AlpnProtocol};
/// if stream.extra::<AlpnProtocol>().unwrap().as_deref() == Some(&b"h2"[..]) { /* HTTP/2 */ }
/// # }
/// ```
#[doc(alias = "alpn_protocol")]
#[derive(Debug)]
pub struct AlpnProtocol;
impl TypedAttribute for AlpnProtocol {
    type Value = Option<Vec<u8>>;
}

/// The negotiated cipher suite (AnyIO's `TLSAttribute.cipher`).
#[doc(alias = "cipher")]
#[derive(Debug)]
pub struct CipherSuite;
impl TypedAttribute for CipherSuite {
    type Value = rustls::CipherSuite;
}

/// The negotiated protocol version: TLS 1.2 or 1.3 (AnyIO's `TLSAttribute.tls_version`).
#[doc(alias = "tls_version")]
#[derive(Debug)]
pub struct TlsVersion;
impl TypedAttribute for TlsVersion {
    type Value = rustls::ProtocolVersion;
}

/// Whether this end is the server (AnyIO's `TLSAttribute.server_side`).
#[doc(alias = "server_side")]
#[derive(Debug)]
pub struct ServerSide;
impl TypedAttribute for ServerSide {
    type Value = bool;
}

/// Whether the stream insists on close_notify (AnyIO's `TLSAttribute.standard_compatible`):
/// see [`TlsOptions::standard_compatible`](crate::TlsOptions::standard_compatible).
#[doc(alias = "standard_compatible")]
#[derive(Debug)]
pub struct StandardCompatible;
impl TypedAttribute for StandardCompatible {
    type Value = bool;
}

/// The peer's end-entity certificate, DER-encoded, or `None` if it sent none (a client
/// without a certificate). AnyIO's `TLSAttribute.peer_certificate_binary`.
#[doc(alias = "peer_certificate_binary", alias = "peer_certificate")]
#[derive(Debug)]
pub struct PeerCertificate;
impl TypedAttribute for PeerCertificate {
    type Value = Option<Vec<u8>>;
}

/// The peer's whole certificate chain as it sent it, DER-encoded, end-entity first; empty if it
/// sent none.
#[derive(Debug)]
pub struct PeerCertificateChain;
impl TypedAttribute for PeerCertificateChain {
    type Value = Vec<Vec<u8>>;
}

/// The server name (SNI): on a client, the name it verified the server by (`None` for an IP
/// address, which is not sent); on a server, the name the client asked for, if any.
#[doc(alias = "server_hostname")]
#[derive(Debug)]
pub struct ServerName;
impl TypedAttribute for ServerName {
    type Value = Option<String>;
}

/// The RFC 9266 `tls-exporter` channel binding: 32 bytes exported with the label
/// `EXPORTER-Channel-Binding` and no context, equal on both ends of one connection and
/// different on every other. It takes the place of AnyIO's `tls-unique`
/// (`TLSAttribute.channel_binding_tls_unique`), which TLS 1.3 does not define.
#[doc(alias = "channel_binding_tls_unique")]
#[derive(Debug)]
pub struct ChannelBinding;
impl TypedAttribute for ChannelBinding {
    type Value = Vec<u8>;
}
