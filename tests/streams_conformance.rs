//! trio's generic stream checks (`check_one_way_stream`, `check_two_way_stream`,
//! `check_half_closeable_stream`, ported in tests/support/conformance.rs) against anyio's byte
//! streams, on every backend: TCP connections, Unix stream sockets (a socketpair and a
//! listener's connection) and stapled memory byte streams, unbuffered and buffered.

mod support;
#[macro_use]
#[path = "support/conformance.rs"]
mod conformance;

#[cfg(unix)]
use anyio::net::{connect_tcp, connect_unix, create_unix_listener, TcpListener, TcpStream, UnixStream};
use anyio::{
    streams::memory::{create_memory_object_stream, MemoryObjectReceiveStream, MemoryObjectSendStream},
    streams::stapled::StapledByteStream,
    streams::{ChunkReceiveStream, ChunkSendStream},
};
use conformance::Config;

/// A connected TCP pair over loopback: (client, accepted server side).
#[cfg(unix)]
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = connect_tcp("127.0.0.1", listener.local_addr().unwrap().port()).await.unwrap();
    let server = listener.accept().await.unwrap();
    (client, server)
}

/// A connected Unix stream socket pair (`socketpair`).
#[cfg(unix)]
async fn unix_socketpair() -> (UnixStream, UnixStream) {
    UnixStream::pair().unwrap()
}

/// A Unix stream connection through a listener on a socket file: (client, accepted side). The
/// file and its directory are removed once connected.
#[cfg(unix)]
async fn unix_listener_pair() -> (UnixStream, UnixStream) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("anyio-conformance-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let listener = create_unix_listener(&path).await.unwrap();
    let client = connect_unix(&path).await.unwrap();
    let server = listener.accept().await.unwrap();
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
    (client, server)
}

/// One side of a memory byte-stream pair.
type MemoryByteStream = StapledByteStream<
    ChunkSendStream<MemoryObjectSendStream<Vec<u8>>>,
    ChunkReceiveStream<MemoryObjectReceiveStream<Vec<u8>>>,
>;

/// Two stapled byte streams over two memory object streams of chunks, crossed: what one sends,
/// the other receives. `send_eof` closes a side's send half, so the peer sees the end of the
/// stream while the other direction stays open.
fn memory_pair(buffer: usize) -> (MemoryByteStream, MemoryByteStream) {
    let (a_tx, b_rx) = create_memory_object_stream::<Vec<u8>>(buffer);
    let (b_tx, a_rx) = create_memory_object_stream::<Vec<u8>>(buffer);
    (
        StapledByteStream::new(ChunkSendStream::new(a_tx), ChunkReceiveStream::new(a_rx)),
        StapledByteStream::new(ChunkSendStream::new(b_tx), ChunkReceiveStream::new(b_rx)),
    )
}

/// Memory byte streams without a buffer: every send waits for a receive.
async fn memory_pair_unbuffered() -> (MemoryByteStream, MemoryByteStream) {
    memory_pair(0)
}

/// Memory byte streams buffering up to 16 chunks each way.
async fn memory_pair_buffered() -> (MemoryByteStream, MemoryByteStream) {
    memory_pair(16)
}

#[cfg(unix)]
conformance_tests!(mod tcp, make = tcp_pair, config = Config::SOCKET);
#[cfg(unix)]
conformance_tests!(mod unix_pair, make = unix_socketpair, config = Config::SOCKET);
#[cfg(unix)]
conformance_tests!(mod unix_listener, make = unix_listener_pair, config = Config::SOCKET);
conformance_tests!(mod memory_unbuffered, make = memory_pair_unbuffered, config = Config::MEMORY);
conformance_tests!(mod memory_buffered, make = memory_pair_buffered, config = Config::MEMORY);

/// The composite check runs every check in one go, as trio's function does (on TCP only, to
/// keep the suite short; the per-check tests above cover every stream).
#[cfg(unix)]
#[anyio::test]
async fn tcp_runs_check_half_closeable_stream_as_a_whole() {
    support::guarded_ok(conformance::check_half_closeable_stream(tcp_pair, Config::SOCKET)).await;
}
