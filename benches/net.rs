//! Networking beside the raw runtimes' own sockets, in the same run, on tokio current-thread,
//! tokio multi-thread (2 workers) and smol. The raw twin is `tokio::net` on the tokio
//! flavours and async-io's `Async<std::net::…>` (what smol's own sockets wrap) on smol.
//!
//! Run with `cargo bench --bench net --features smol` (add `-- quick` for a short run). The
//! cases, all on loopback:
//!
//! - TCP ping-pong: a client sends a 64 B or 1 KiB message, an echo server sends it back, the
//!   client reads it whole; 10,000 round trips on 1 connection, or 200 on each of 100
//!   connections at once (a tenth with `quick`). Both sides read into one reused buffer
//!   (anyio's `receive_into`; `read`/`read_exact`), so they make the same system calls;
//! - TCP bulk: 1 GiB (64 MiB with `quick`) sent in 64 KiB blocks (`send`; `write_all`) and
//!   received into a 64 KiB buffer (`receive_into`; `read`);
//! - accept: 10,000 connections (1,000 with `quick`) made by 8 client tasks that connect and
//!   close, accepted and closed by one listener task; the time covers all of them;
//! - UDP ping-pong, 64 B, between two connected sockets, 10,000 round trips, each side
//!   receiving into one reused 64 KiB buffer (`receive_into`; `recv`);
//! - Unix stream ping-pong, 64 B, over a socket pair, 10,000 round trips;
//! - `receive_until`: 1, 2 and 4 MiB of lines of 80–120 bytes, delimiter `\n`, streamed over
//!   TCP in 64 KiB blocks and split with anyio's `BufferedByteReceiveStream::receive_until`,
//!   against a 64 KiB `BufReader::read_until` (tokio's; futures-lite's on smol). Each line
//!   is a fresh `Vec` on both sides, as `receive_until` returns one; a second twin reuses one
//!   `Vec` (the usual tokio idiom) to show what the allocation costs.
//!
//! Every socket gets `TCP_NODELAY` (anyio sets it on every TCP stream; the raw twins set it in
//! their untimed setup, and the accept twin as it accepts and connects), and every listener
//! anyio's backlog (the raw twins' listeners are made with socket2 for that). The listener, the
//! connections and the input are made before the timed region; the timed region spawns every
//! participant (into an anyio task group for ours, straight onto the runtime for the twins)
//! and waits for all of them, closing included.
//!
//! Every case is measured in interleaved rounds (ours, twin, ours, twin, …) and reports the
//! median time per round trip, byte or connection, the matching rate, and the time ratio
//! ours/twin (below 1: anyio is faster). Arguments: `quick`, a name filter matched against
//! "<case> | <twin>", `env=<name>`, `side=ours|raw` (one side alone, for profiling).
//!
//! `diag` adds a diagnostic twin: anyio's own sockets driven from tasks spawned straight onto
//! the runtime (no task group, no cancel scope). Its ratio is what anyio's tasks add.

use std::future::Future;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyio::{
    net::udp::UdpSocketOptions,
    net::{connect_tcp, create_connected_udp_socket, ConnectedUdpSocket, TcpListener},
    streams::buffered::BufferedByteReceiveStream,
    streams::StreamError,
    Cancelled, TaskGroup,
};
use smol::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use smol::Async;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

mod common;

use common::{envs, measure, measure_alone, Args, DynEnv, Raw, Workload};

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The size of a bulk block, of a bulk receive and of a buffered read.
const BLOCK: usize = 64 * 1024;

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A non-blocking std listener on loopback with anyio's listen backlog (`SO_REUSEADDR`,
/// `DEFAULT_BACKLOG`, which the kernel caps at `somaxconn`), for the raw twins: tokio's `bind`
/// asks for 1,024 and std's for 128, and a shorter accept queue that overflows while the
/// clients run ahead of the acceptor costs 1 s SYN retransmissions, not library speed.
fn std_listener() -> std::net::TcpListener {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.bind(&loopback().into()).expect("bind");
    socket.listen(anyio::net::tcp::DEFAULT_BACKLOG as i32).expect("listen");
    socket.set_nonblocking(true).expect("non-blocking");
    socket.into()
}

fn tokio_listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::from_std(std_listener()).expect("tokio listener")
}

fn smol_listener() -> Async<std::net::TcpListener> {
    Async::new(std_listener()).expect("async-io listener")
}

/// Makes a case's sockets and participants (untimed), told which runtime it is on.
type Setup = Arc<dyn Fn(Raw) -> Pin<Box<dyn Future<Output = Vec<Task>> + Send>>>;

fn setup<S, SF>(f: S) -> Setup
where
    S: Fn(Raw) -> SF + 'static,
    SF: Future<Output = Vec<Task>> + Send + 'static,
{
    Arc::new(move |rt| Box::pin(f(rt)))
}

/// Who spawns the participants in the timed region.
#[derive(Clone, Copy)]
enum Spawner {
    /// One anyio task group (anyio's side).
    Anyio,
    /// The runtime itself (the raw twins, and anyio's sockets in `diag`).
    Raw,
}

/// A side of a case: `setup` runs untimed; the timed region spawns the participants and waits
/// for all of them.
fn timed(spawner: Spawner, setup: Setup) -> Workload {
    Box::new(move |env: &dyn DynEnv| {
        let rt = env.raw();
        let setup = setup(rt.clone());
        env.run(Box::pin(async move {
            let tasks = setup.await;
            let t0 = Instant::now();
            match spawner {
                Spawner::Anyio => {
                    TaskGroup::scope(|tg: TaskGroup<Cancelled>| async move {
                        for t in tasks {
                            tg.spawn(async move {
                                t.await;
                                Ok(())
                            });
                        }
                        Ok::<_, Cancelled>(())
                    })
                    .await
                    .expect("task group")
                    .expect("not cancelled");
                }
                Spawner::Raw => {
                    let handles: Vec<_> = tasks.into_iter().map(|t| rt.spawn(t)).collect();
                    for h in handles {
                        h.join().await;
                    }
                }
            }
            t0.elapsed()
        }))
    })
}

// ---------------------------------------------------------------------------------------------
// anyio's byte streams, through their inherent methods (the trait methods box their futures).

trait OurStream: Send + Sync + 'static {
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = Result<usize, StreamError>> + Send + 'a;
    fn send_all<'a>(&'a self, data: &'a [u8]) -> impl Future<Output = Result<(), StreamError>> + Send + 'a;
}

impl OurStream for anyio::net::TcpStream {
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = Result<usize, StreamError>> + Send + 'a {
        self.receive_into(buf)
    }
    fn send_all<'a>(&'a self, data: &'a [u8]) -> impl Future<Output = Result<(), StreamError>> + Send + 'a {
        self.send(data)
    }
}

impl OurStream for anyio::net::UnixStream {
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = Result<usize, StreamError>> + Send + 'a {
        self.receive_into(buf)
    }
    fn send_all<'a>(&'a self, data: &'a [u8]) -> impl Future<Output = Result<(), StreamError>> + Send + 'a {
        self.send(data)
    }
}

/// Echoes whatever arrives until the peer closes.
async fn ours_echo<S: OurStream>(s: S, size: usize) {
    let mut buf = vec![0u8; size];
    loop {
        match s.recv(&mut buf).await {
            Ok(n) => s.send_all(&buf[..n]).await.expect("anyio echo send"),
            Err(StreamError::EndOfStream) => return,
            Err(e) => panic!("anyio echo receive: {e}"),
        }
    }
}

/// `rounds` round trips of a `size`-byte message; closes the stream when done.
async fn ours_ping<S: OurStream>(s: S, size: usize, rounds: u64) {
    let msg = vec![0x5a_u8; size];
    let mut buf = vec![0u8; size];
    for _ in 0..rounds {
        s.send_all(&msg).await.expect("anyio send");
        let mut got = 0;
        while got < size {
            got += s.recv(&mut buf[got..]).await.expect("anyio receive");
        }
    }
    black_box(&buf);
}

/// Sends `bytes` in `BLOCK`-sized blocks.
async fn ours_sink_sender<S: OurStream>(s: S, bytes: u64) {
    let block = vec![0xa5_u8; BLOCK];
    for _ in 0..bytes / BLOCK as u64 {
        s.send_all(&block).await.expect("anyio send");
    }
}

/// Receives `bytes` into one `BLOCK`-sized buffer.
async fn ours_sink_receiver<S: OurStream>(s: S, bytes: u64) {
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    while total < bytes {
        total += s.recv(&mut buf).await.expect("anyio receive") as u64;
    }
    assert_eq!(total, bytes);
}

/// `n` connected anyio TCP pairs (client, server).
async fn ours_tcp_pairs(n: usize) -> Vec<(anyio::net::TcpStream, anyio::net::TcpStream)> {
    let listener = TcpListener::bind(loopback()).await.expect("anyio bind");
    let port = listener.local_addr().expect("local address").port();
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let client = connect_tcp("127.0.0.1", port).await.expect("anyio connect");
        let server = listener.accept().await.expect("anyio accept");
        pairs.push((client, server));
    }
    pairs
}

// ---------------------------------------------------------------------------------------------
// tokio's sockets.

async fn tokio_echo<S>(mut s: S, size: usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; size];
    loop {
        let n = s.read(&mut buf).await.expect("tokio echo read");
        if n == 0 {
            return;
        }
        s.write_all(&buf[..n]).await.expect("tokio echo write");
    }
}

async fn tokio_ping<S>(mut s: S, size: usize, rounds: u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let msg = vec![0x5a_u8; size];
    let mut buf = vec![0u8; size];
    for _ in 0..rounds {
        s.write_all(&msg).await.expect("tokio write");
        s.read_exact(&mut buf).await.expect("tokio read");
    }
    black_box(&buf);
}

async fn tokio_sink_sender<S: tokio::io::AsyncWrite + Unpin>(mut s: S, bytes: u64) {
    let block = vec![0xa5_u8; BLOCK];
    for _ in 0..bytes / BLOCK as u64 {
        s.write_all(&block).await.expect("tokio write");
    }
}

async fn tokio_sink_receiver<S: tokio::io::AsyncRead + Unpin>(mut s: S, bytes: u64) {
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    while total < bytes {
        let n = s.read(&mut buf).await.expect("tokio read");
        assert!(n > 0, "tokio: early end of stream");
        total += n as u64;
    }
    assert_eq!(total, bytes);
}

async fn tokio_tcp_pairs(n: usize) -> Vec<(tokio::net::TcpStream, tokio::net::TcpStream)> {
    let listener = tokio_listener();
    let addr = listener.local_addr().expect("local address");
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let client = tokio::net::TcpStream::connect(addr).await.expect("tokio connect");
        let (server, _) = listener.accept().await.expect("tokio accept");
        client.set_nodelay(true).expect("nodelay");
        server.set_nodelay(true).expect("nodelay");
        pairs.push((client, server));
    }
    pairs
}

// ---------------------------------------------------------------------------------------------
// async-io's sockets (smol's).

async fn smol_echo<S>(mut s: S, size: usize)
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; size];
    loop {
        let n = s.read(&mut buf).await.expect("async-io echo read");
        if n == 0 {
            return;
        }
        s.write_all(&buf[..n]).await.expect("async-io echo write");
    }
}

async fn smol_ping<S>(mut s: S, size: usize, rounds: u64)
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let msg = vec![0x5a_u8; size];
    let mut buf = vec![0u8; size];
    for _ in 0..rounds {
        s.write_all(&msg).await.expect("async-io write");
        s.read_exact(&mut buf).await.expect("async-io read");
    }
    black_box(&buf);
}

async fn smol_sink_sender<S: futures::AsyncWrite + Unpin>(mut s: S, bytes: u64) {
    let block = vec![0xa5_u8; BLOCK];
    for _ in 0..bytes / BLOCK as u64 {
        s.write_all(&block).await.expect("async-io write");
    }
}

async fn smol_sink_receiver<S: futures::AsyncRead + Unpin>(mut s: S, bytes: u64) {
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    while total < bytes {
        let n = s.read(&mut buf).await.expect("async-io read");
        assert!(n > 0, "async-io: early end of stream");
        total += n as u64;
    }
    assert_eq!(total, bytes);
}

type AsyncTcp = Async<std::net::TcpStream>;

async fn smol_tcp_pairs(n: usize) -> Vec<(AsyncTcp, AsyncTcp)> {
    let listener = smol_listener();
    let addr = listener.get_ref().local_addr().expect("local address");
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let client = AsyncTcp::connect(addr).await.expect("async-io connect");
        let (server, _) = listener.accept().await.expect("async-io accept");
        client.get_ref().set_nodelay(true).expect("nodelay");
        server.get_ref().set_nodelay(true).expect("nodelay");
        pairs.push((client, server));
    }
    pairs
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// TCP ping-pong: `conns` connections, `rounds` round trips of `size` bytes on each.
fn tcp_pingpong(size: usize, conns: usize, rounds: u64) -> (Setup, Setup) {
    let ours = setup(move |_| async move {
        let mut tasks: Vec<Task> = Vec::new();
        for (client, server) in ours_tcp_pairs(conns).await {
            tasks.push(Box::pin(ours_echo(server, size)));
            tasks.push(Box::pin(ours_ping(client, size, rounds)));
        }
        tasks
    });
    let raw = setup(move |rt| async move {
        let mut tasks: Vec<Task> = Vec::new();
        match rt {
            Raw::Tokio => {
                for (client, server) in tokio_tcp_pairs(conns).await {
                    tasks.push(Box::pin(tokio_echo(server, size)));
                    tasks.push(Box::pin(tokio_ping(client, size, rounds)));
                }
            }
            Raw::Smol(_) => {
                for (client, server) in smol_tcp_pairs(conns).await {
                    tasks.push(Box::pin(smol_echo(server, size)));
                    tasks.push(Box::pin(smol_ping(client, size, rounds)));
                }
            }
        }
        tasks
    });
    (ours, raw)
}

/// TCP bulk transfer of `bytes` from client to server.
fn tcp_bulk(bytes: u64) -> (Setup, Setup) {
    let ours = setup(move |_| async move {
        let (client, server) = ours_tcp_pairs(1).await.pop().expect("one pair");
        vec![Box::pin(ours_sink_receiver(server, bytes)) as Task, Box::pin(ours_sink_sender(client, bytes))]
    });
    let raw = setup(move |rt| async move {
        match rt {
            Raw::Tokio => {
                let (client, server) = tokio_tcp_pairs(1).await.pop().expect("one pair");
                vec![
                    Box::pin(tokio_sink_receiver(server, bytes)) as Task,
                    Box::pin(tokio_sink_sender(client, bytes)),
                ]
            }
            Raw::Smol(_) => {
                let (client, server) = smol_tcp_pairs(1).await.pop().expect("one pair");
                vec![
                    Box::pin(smol_sink_receiver(server, bytes)) as Task,
                    Box::pin(smol_sink_sender(client, bytes)),
                ]
            }
        }
    });
    (ours, raw)
}

/// How many client tasks connect at once in the accept case.
const CONNECTORS: usize = 8;

/// `n` connections accepted by one listener task while `CONNECTORS` client tasks connect and
/// close.
fn accept_rate(n: usize) -> (Setup, Setup) {
    assert_eq!(n % CONNECTORS, 0);
    let per = n / CONNECTORS;
    let ours = setup(move |_| async move {
        let listener = TcpListener::bind(loopback()).await.expect("anyio bind");
        let port = listener.local_addr().expect("local address").port();
        let mut tasks: Vec<Task> = vec![Box::pin(async move {
            for _ in 0..n {
                drop(listener.accept().await.expect("anyio accept"));
            }
        })];
        for _ in 0..CONNECTORS {
            tasks.push(Box::pin(async move {
                for _ in 0..per {
                    drop(connect_tcp("127.0.0.1", port).await.expect("anyio connect"));
                }
            }));
        }
        tasks
    });
    let raw = setup(move |rt| async move {
        let mut tasks: Vec<Task> = Vec::new();
        match rt {
            Raw::Tokio => {
                let listener = tokio_listener();
                let addr = listener.local_addr().expect("local address");
                tasks.push(Box::pin(async move {
                    for _ in 0..n {
                        let (s, _) = listener.accept().await.expect("tokio accept");
                        s.set_nodelay(true).expect("nodelay");
                    }
                }));
                for _ in 0..CONNECTORS {
                    tasks.push(Box::pin(async move {
                        for _ in 0..per {
                            let s = tokio::net::TcpStream::connect(addr).await.expect("tokio connect");
                            s.set_nodelay(true).expect("nodelay");
                        }
                    }));
                }
            }
            Raw::Smol(_) => {
                let listener = smol_listener();
                let addr = listener.get_ref().local_addr().expect("local address");
                tasks.push(Box::pin(async move {
                    for _ in 0..n {
                        let (s, _) = listener.accept().await.expect("async-io accept");
                        s.get_ref().set_nodelay(true).expect("nodelay");
                    }
                }));
                for _ in 0..CONNECTORS {
                    tasks.push(Box::pin(async move {
                        for _ in 0..per {
                            let s = AsyncTcp::connect(addr).await.expect("async-io connect");
                            s.get_ref().set_nodelay(true).expect("nodelay");
                        }
                    }));
                }
            }
        }
        tasks
    });
    (ours, raw)
}

/// Two std UDP sockets on loopback, connected to each other.
fn std_udp_pair() -> (std::net::UdpSocket, std::net::UdpSocket) {
    let a = std::net::UdpSocket::bind(loopback()).expect("udp bind");
    let b = std::net::UdpSocket::bind(loopback()).expect("udp bind");
    a.connect(b.local_addr().unwrap()).expect("udp connect");
    b.connect(a.local_addr().unwrap()).expect("udp connect");
    (a, b)
}

/// UDP ping-pong between two connected sockets: `rounds` datagrams of `size` bytes each way.
fn udp_pingpong(size: usize, rounds: u64) -> (Setup, Setup) {
    let ours = setup(move |_| async move {
        let server_std = std::net::UdpSocket::bind(loopback()).expect("udp bind");
        let server_port = server_std.local_addr().unwrap().port();
        let client = create_connected_udp_socket(
            "127.0.0.1",
            server_port,
            UdpSocketOptions::new().local_host("127.0.0.1"),
        )
        .await
        .expect("anyio udp");
        server_std.connect(client.local_addr().unwrap()).expect("udp connect");
        let server = ConnectedUdpSocket::from_std(server_std).expect("anyio udp");
        vec![
            Box::pin(async move {
                let mut buf = vec![0u8; 65536];
                for _ in 0..rounds {
                    let n = server.receive_into(&mut buf).await.expect("anyio udp receive");
                    server.send(&buf[..n]).await.expect("anyio udp send");
                }
            }) as Task,
            Box::pin(async move {
                let msg = vec![0x5a_u8; size];
                let mut buf = vec![0u8; 65536];
                for _ in 0..rounds {
                    client.send(&msg).await.expect("anyio udp send");
                    let n = client.receive_into(&mut buf).await.expect("anyio udp receive");
                    assert_eq!(n, size);
                }
            }),
        ]
    });
    let raw = setup(move |rt| async move {
        let (c, s) = std_udp_pair();
        match rt {
            Raw::Tokio => {
                c.set_nonblocking(true).unwrap();
                s.set_nonblocking(true).unwrap();
                let client = tokio::net::UdpSocket::from_std(c).expect("tokio udp");
                let server = tokio::net::UdpSocket::from_std(s).expect("tokio udp");
                vec![
                    Box::pin(async move {
                        let mut buf = vec![0u8; 65536];
                        for _ in 0..rounds {
                            let n = server.recv(&mut buf).await.expect("tokio udp recv");
                            server.send(&buf[..n]).await.expect("tokio udp send");
                        }
                    }) as Task,
                    Box::pin(async move {
                        let msg = vec![0x5a_u8; size];
                        let mut buf = vec![0u8; 65536];
                        for _ in 0..rounds {
                            client.send(&msg).await.expect("tokio udp send");
                            let n = client.recv(&mut buf).await.expect("tokio udp recv");
                            assert_eq!(n, size);
                        }
                    }),
                ]
            }
            Raw::Smol(_) => {
                let client = Async::new(c).expect("async-io udp");
                let server = Async::new(s).expect("async-io udp");
                vec![
                    Box::pin(async move {
                        let mut buf = vec![0u8; 65536];
                        for _ in 0..rounds {
                            let n = server.recv(&mut buf).await.expect("async-io udp recv");
                            server.send(&buf[..n]).await.expect("async-io udp send");
                        }
                    }) as Task,
                    Box::pin(async move {
                        let msg = vec![0x5a_u8; size];
                        let mut buf = vec![0u8; 65536];
                        for _ in 0..rounds {
                            client.send(&msg).await.expect("async-io udp send");
                            let n = client.recv(&mut buf).await.expect("async-io udp recv");
                            assert_eq!(n, size);
                        }
                    }),
                ]
            }
        }
    });
    (ours, raw)
}

/// Unix stream ping-pong over a socket pair.
fn unix_pingpong(size: usize, rounds: u64) -> (Setup, Setup) {
    let ours = setup(move |_| async move {
        let (client, server) = anyio::net::UnixStream::pair().expect("anyio socketpair");
        vec![Box::pin(ours_echo(server, size)) as Task, Box::pin(ours_ping(client, size, rounds))]
    });
    let raw = setup(move |rt| async move {
        match rt {
            Raw::Tokio => {
                let (client, server) = tokio::net::UnixStream::pair().expect("tokio socketpair");
                vec![Box::pin(tokio_echo(server, size)) as Task, Box::pin(tokio_ping(client, size, rounds))]
            }
            Raw::Smol(_) => {
                let (client, server) =
                    Async::<std::os::unix::net::UnixStream>::pair().expect("async-io socketpair");
                vec![Box::pin(smol_echo(server, size)) as Task, Box::pin(smol_ping(client, size, rounds))]
            }
        }
    });
    (ours, raw)
}

/// Exactly `bytes` bytes of lines of 80–120 bytes, each ending in `\n`; returns the input and
/// its number of lines.
fn lines_input(bytes: usize) -> (Arc<Vec<u8>>, u64) {
    let mut out = Vec::with_capacity(bytes);
    let mut lines = 0u64;
    let mut seed = 0x2545_f491_u32;
    while out.len() < bytes {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let mut len = 80 + (seed >> 16) as usize % 41;
        let left = bytes - out.len();
        if left < len + 80 {
            len = left;
        }
        out.extend((0..len - 1).map(|i| b'a' + ((i as u32 + seed) % 26) as u8));
        out.push(b'\n');
        lines += 1;
    }
    assert_eq!(out.len(), bytes);
    (Arc::new(out), lines)
}

/// How a `read_until` twin treats its line buffer.
#[derive(Clone, Copy)]
enum LineBuf {
    /// A fresh `Vec` per line (what `receive_until` returns).
    Fresh,
    /// One `Vec`, cleared before each line.
    Reused,
}

/// `receive_until` over `bytes` of lines streamed over TCP.
fn receive_until(bytes: usize) -> (Setup, Setup, Setup) {
    let (input, lines) = lines_input(bytes);
    let payload = (bytes as u64) - lines;
    let inp = input.clone();
    let ours = setup(move |_| {
        let input = inp.clone();
        async move {
            let (client, server) = ours_tcp_pairs(1).await.pop().expect("one pair");
            vec![
                Box::pin(async move {
                    let r = BufferedByteReceiveStream::new(server);
                    let mut got = 0u64;
                    for _ in 0..lines {
                        let line = r.receive_until(b"\n", BLOCK).await.expect("receive_until");
                        got += line.len() as u64;
                        black_box(line);
                    }
                    assert_eq!(got, payload);
                }) as Task,
                Box::pin(async move {
                    for chunk in input.chunks(BLOCK) {
                        client.send(chunk).await.expect("anyio send");
                    }
                }),
            ]
        }
    });
    let twin = |mode: LineBuf| {
        let input = input.clone();
        setup(move |rt| {
            let input = input.clone();
            async move {
                match rt {
                    Raw::Tokio => {
                        let (mut client, server) = tokio_tcp_pairs(1).await.pop().expect("one pair");
                        vec![
                            Box::pin(async move {
                                let mut r = tokio::io::BufReader::with_capacity(BLOCK, server);
                                let mut got = 0u64;
                                let mut reused = Vec::new();
                                for _ in 0..lines {
                                    let mut fresh = Vec::new();
                                    let line = match mode {
                                        LineBuf::Fresh => &mut fresh,
                                        LineBuf::Reused => {
                                            reused.clear();
                                            &mut reused
                                        }
                                    };
                                    let n = r.read_until(b'\n', line).await.expect("read_until");
                                    got += n as u64 - 1;
                                    black_box(fresh);
                                }
                                assert_eq!(got, payload);
                            }) as Task,
                            Box::pin(async move {
                                for chunk in input.chunks(BLOCK) {
                                    client.write_all(chunk).await.expect("tokio write");
                                }
                            }),
                        ]
                    }
                    Raw::Smol(_) => {
                        let (mut client, server) = smol_tcp_pairs(1).await.pop().expect("one pair");
                        vec![
                            Box::pin(async move {
                                let mut r = smol::io::BufReader::with_capacity(BLOCK, server);
                                let mut got = 0u64;
                                let mut reused = Vec::new();
                                for _ in 0..lines {
                                    let mut fresh = Vec::new();
                                    let line = match mode {
                                        LineBuf::Fresh => &mut fresh,
                                        LineBuf::Reused => {
                                            reused.clear();
                                            &mut reused
                                        }
                                    };
                                    let n = r.read_until(b'\n', line).await.expect("read_until");
                                    got += n as u64 - 1;
                                    black_box(fresh);
                                }
                                assert_eq!(got, payload);
                            }) as Task,
                            Box::pin(async move {
                                for chunk in input.chunks(BLOCK) {
                                    client.write_all(chunk).await.expect("async-io write");
                                }
                            }),
                        ]
                    }
                }
            }
        })
    };
    (ours, twin(LineBuf::Fresh), twin(LineBuf::Reused))
}

// ---------------------------------------------------------------------------------------------
// The runner.

/// What a case counts, for its per-operation and rate figures.
#[derive(Clone, Copy)]
enum Metric {
    RoundTrips,
    Bytes,
    Connections,
}

impl Metric {
    fn per_op_unit(self) -> &'static str {
        match self {
            Metric::RoundTrips => "ns/rt",
            Metric::Bytes => "ns/B",
            Metric::Connections => "ns/conn",
        }
    }

    /// The rate for a time per operation, and its unit.
    fn rate(self, ns_per_op: f64) -> (f64, &'static str) {
        match self {
            Metric::RoundTrips => (1e6 / ns_per_op, "k rt/s"),
            Metric::Bytes => (1.0 / ns_per_op, "GB/s"),
            Metric::Connections => (1e6 / ns_per_op, "k conn/s"),
        }
    }
}

/// A twin's label on each runtime: (tokio, smol).
type Label = (&'static str, &'static str);

struct Case {
    name: String,
    ops: u64,
    metric: Metric,
    ours: Workload,
    twins: Vec<(Label, Workload)>,
}

fn label(l: Label, env: &dyn DynEnv) -> &'static str {
    match env.raw() {
        Raw::Tokio => l.0,
        Raw::Smol(_) => l.1,
    }
}

const SOCKETS: Label = ("tokio::net", "async-io Async<std>");
const DIAG: Label = ("anyio in raw tasks (diag)", "anyio in raw tasks (diag)");
const READ_UNTIL_FRESH: Label =
    ("tokio BufReader::read_until, new Vec", "futures-lite BufReader::read_until, new Vec");
const READ_UNTIL_REUSED: Label =
    ("tokio BufReader::read_until, reused Vec", "futures-lite BufReader::read_until, reused Vec");

fn run(args: &Args, cases: &[Case]) {
    let rounds = args.rounds();
    println!(
        "{:<22} {:<34} {:<46} {:>10} {:>10} {:<7} {:>9} {:>9} {:<8} {:>6}",
        "backend", "case", "twin", "ours", "twin", "unit", "ours", "twin", "rate", "ratio"
    );
    for env in envs().iter().filter(|e| args.selects_env(e.as_ref())) {
        for case in cases {
            let env = env.as_ref();
            let twins: Vec<&(Label, Workload)> = case
                .twins
                .iter()
                .filter(|(l, _)| args.selects(&format!("{} | {}", case.name, label(*l, env))))
                .collect();
            if twins.is_empty() {
                continue;
            }
            let per_op = |d: Duration| d.as_nanos() as f64 / case.ops as f64;
            if let Some(side) = args.side.as_deref() {
                let runs: Vec<(&str, &Workload)> = if side == "raw" {
                    twins.iter().map(|(l, w)| (label(*l, env), w)).collect()
                } else {
                    vec![("anyio", &case.ours)]
                };
                for (l, w) in runs {
                    let t = measure_alone(env, w, rounds);
                    println!(
                        "{:<22} {} | {l}: {side} {:.3} {}",
                        env.name(),
                        case.name,
                        per_op(t) / rounds as f64,
                        case.metric.per_op_unit()
                    );
                }
                continue;
            }
            let mut sides: Vec<&Workload> = vec![&case.ours];
            sides.extend(twins.iter().map(|(_, w)| w));
            let medians = measure(env, &sides, rounds);
            let o = per_op(medians[0]);
            for ((l, _), m) in twins.iter().zip(&medians[1..]) {
                let r = per_op(*m);
                let (or, unit) = case.metric.rate(o);
                let (rr, _) = case.metric.rate(r);
                let digits = if matches!(case.metric, Metric::Bytes) { 3 } else { 1 };
                println!(
                    "{:<22} {:<34} {:<46} {:>10.digits$} {:>10.digits$} {:<7} {:>9.2} {:>9.2} {:<8} {:>6.2}",
                    env.name(),
                    case.name,
                    label(*l, env),
                    o,
                    r,
                    case.metric.per_op_unit(),
                    or,
                    rr,
                    unit,
                    o / r
                );
            }
        }
    }
}

fn main() {
    let args = Args::parse();
    let scale = args.scale();
    let rounds_one = 10_000 / scale;
    let rounds_many = 200 / scale;
    let bulk: u64 = if args.quick { 64 << 20 } else { 1 << 30 };
    let accepts = 10_000 / scale as usize;

    let mut cases = Vec::new();
    let mut add = |name: String, ops: u64, metric: Metric, (ours, twin): (Setup, Setup)| {
        let mut twins = vec![(SOCKETS, timed(Spawner::Raw, twin))];
        if args.diag {
            twins.push((DIAG, timed(Spawner::Raw, ours.clone())));
        }
        cases.push(Case { name, ops, metric, ours: timed(Spawner::Anyio, ours), twins });
    };
    for size in [64, 1024] {
        let label = if size == 64 { "64 B".to_owned() } else { "1 KiB".to_owned() };
        add(
            format!("TCP ping-pong {label}, 1 conn"),
            rounds_one,
            Metric::RoundTrips,
            tcp_pingpong(size, 1, rounds_one),
        );
        add(
            format!("TCP ping-pong {label}, 100 conns"),
            100 * rounds_many,
            Metric::RoundTrips,
            tcp_pingpong(size, 100, rounds_many),
        );
    }
    add(format!("TCP bulk {} MiB", bulk >> 20), bulk, Metric::Bytes, tcp_bulk(bulk));
    add(format!("TCP accept {accepts}"), accepts as u64, Metric::Connections, accept_rate(accepts));
    add("UDP ping-pong 64 B".to_owned(), rounds_one, Metric::RoundTrips, udp_pingpong(64, rounds_one));
    add("Unix ping-pong 64 B".to_owned(), rounds_one, Metric::RoundTrips, unix_pingpong(64, rounds_one));
    for mib in [1, 2, 4] {
        let name = format!("receive_until {mib} MiB");
        // Building the input takes a moment: skip it when the filters leave no twin.
        let labels = [READ_UNTIL_FRESH, READ_UNTIL_REUSED, DIAG];
        if !labels.iter().any(|l| [l.0, l.1].iter().any(|l| args.selects(&format!("{name} | {l}")))) {
            continue;
        }
        let (ours, fresh, reused) = receive_until(mib << 20);
        let mut twins = vec![
            (READ_UNTIL_FRESH, timed(Spawner::Raw, fresh)),
            (READ_UNTIL_REUSED, timed(Spawner::Raw, reused)),
        ];
        if args.diag {
            twins.push((DIAG, timed(Spawner::Raw, ours.clone())));
        }
        cases.push(Case {
            name,
            ops: (mib as u64) << 20,
            metric: Metric::Bytes,
            ours: timed(Spawner::Anyio, ours),
            twins,
        });
    }
    run(&args, &cases);
}
