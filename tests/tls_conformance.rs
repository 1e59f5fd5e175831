//! trio's generic stream checks (tests/support/conformance.rs) over TLS: TLS over TCP, over
//! memory streams, and TLS over TLS, on every backend. A TLS stream is a half-closeable
//! two-way stream (send_eof is a TLS 1.3 half-close), busy per direction like a socket.
//!
//! The pairs are not standard compatible: the checks close one side and then the other from
//! one task, and a standard-compatible `aclose` waits for the peer's close_notify (AnyIO's
//! rule), which that order never sends. tests/tls_stream.rs covers standard compatibility.
//! There is no pair over unbuffered memory streams: a TLS 1.3 server's handshake ends by
//! writing its session tickets, which a transport that holds nothing cannot take until the
//! client reads again (over TCP the socket buffer takes them).

mod support;
#[macro_use]
#[path = "support/conformance.rs"]
mod conformance;
mod tls_support;

use anyio::net::TcpStream;
use anyio::streams::memory::MemoryByteStream;
use anyio::tls::{TlsOptions, TlsStream};
use conformance::Config;
use tls_support::{handshake, memory_pair, tcp_pair, Pki};

fn options() -> TlsOptions {
    TlsOptions::new().standard_compatible(false)
}

async fn tls_tcp_pair() -> (TlsStream<TcpStream>, TlsStream<TcpStream>) {
    let pki = Pki::new();
    let (a, b) = tcp_pair().await;
    handshake(a, b, pki.client_config(), pki.server_config(), options()).await
}

async fn tls_memory_pair() -> (TlsStream<MemoryByteStream>, TlsStream<MemoryByteStream>) {
    let pki = Pki::new();
    let (a, b) = memory_pair();
    handshake(a, b, pki.client_config(), pki.server_config(), options()).await
}

/// TLS over a TLS pair over TCP (the inner layer is the outer one's transport).
async fn tls_over_tls_pair() -> (TlsStream<TlsStream<TcpStream>>, TlsStream<TlsStream<TcpStream>>) {
    let (a, b) = tls_tcp_pair().await;
    let pki = Pki::new();
    handshake(a, b, pki.client_config(), pki.server_config(), options()).await
}

conformance_tests!(mod over_tcp, make = tls_tcp_pair, config = Config::SOCKET);
conformance_tests!(mod over_memory, make = tls_memory_pair, config = Config::SOCKET);
conformance_tests!(mod over_tls, make = tls_over_tls_pair, config = Config::SOCKET);
