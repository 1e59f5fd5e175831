//! TLS beside its twins in the same run, ring on both sides: tokio-rustls on tokio
//! current-thread, futures-rustls (over async-io's `Async<TcpStream>`, in an async-executor
//! run by the calling thread, as anyio's smol backend runs) on smol
//! (`cargo bench --bench tls --features smol [-- quick]`). Cases, over loopback TCP:
//!
//! - bulk: 64 MiB (16 MiB with `quick`) sent in 16 KiB sends, received into a 64 KiB buffer;
//! - ping-pong: a 1 KiB message echoed 2,000 times (500) on one connection;
//! - handshake: connect + TLS 1.3 handshake + close, 200 times (50);
//! - plain TCP ping-pong, the ping-pong without TLS in the same harness (anyio's sockets
//!   against the runtime's own): the share of the TLS rows that is not TLS.
//!
//! Each case runs in interleaved rounds (ours, twin, ours, twin, ...) and reports the median
//! time of each and the ratio ours/twin (below 1: anyio is faster).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyio::net::{connect_tcp, TcpListener};
use anyio::streams::AsyncResource;
use anyio::tls::rustls::{self, ClientConfig, ServerConfig};
use anyio::tls::{TlsOptions, TlsStream};
use anyio::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/tls.rs"]
mod tls;
use tls::configs;

#[derive(Clone, Copy)]
enum Case {
    Bulk(usize),
    PingPong(usize),
    Handshake(usize),
    /// The same ping-pong over plain TCP, in the same harness: what the sockets and the
    /// runtime account for, so that the TLS rows can be read against it.
    PlainPingPong(usize),
}

/// Times `rounds` 1 KiB round trips from `c` to the echoing `s`. A macro, not a generic
/// function: each stream type keeps its own method resolution (a socket's inherent methods,
/// unboxed), as the raw twins do.
macro_rules! ping_pong {
    ($c:expr, $s:expr, $rounds:expr) => {{
        let (c, s, rounds) = (&$c, &$s, $rounds);
        let msg = vec![1u8; 1024];
        let start = Instant::now();
        let echo = async {
            let mut buf = vec![0u8; 1024];
            for _ in 0..rounds {
                let mut got = 0;
                while got < 1024 {
                    got += s.receive_into(&mut buf[got..]).await.unwrap();
                }
                s.send(&buf).await.unwrap();
            }
        };
        let ping = async {
            let mut buf = vec![0u8; 1024];
            for _ in 0..rounds {
                c.send(&msg).await.unwrap();
                let mut got = 0;
                while got < 1024 {
                    got += c.receive_into(&mut buf[got..]).await.unwrap();
                }
            }
        };
        futures::join!(echo, ping);
        start.elapsed()
    }};
}

fn ours(backend: Backend, case: Case, client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Duration {
    anyio::run_on(backend, async move {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connect = || {
            let client = client.clone();
            async move {
                let tcp = connect_tcp("127.0.0.1", port).await.unwrap();
                TlsStream::connect(tcp, "localhost", client, TlsOptions::new().standard_compatible(false))
                    .await
                    .unwrap()
            }
        };
        let accept = || {
            let server = server.clone();
            let listener = &listener;
            async move {
                let tcp = listener.accept().await.unwrap();
                TlsStream::accept(tcp, server, TlsOptions::new().standard_compatible(false)).await.unwrap()
            }
        };
        match case {
            Case::Handshake(n) => {
                let start = Instant::now();
                for _ in 0..n {
                    let (c, s) = futures::join!(connect(), accept());
                    let _ = futures::join!(c.aclose(), s.aclose());
                }
                start.elapsed()
            }
            Case::PlainPingPong(rounds) => {
                let (c, s) = futures::join!(connect_tcp("127.0.0.1", port), listener.accept());
                let (c, s) = (c.unwrap(), s.unwrap());
                ping_pong!(c, s, rounds)
            }
            Case::Bulk(total) => {
                let (c, s) = futures::join!(connect(), accept());
                let block = vec![7u8; 16 << 10];
                let start = Instant::now();
                let send = async {
                    let mut sent = 0;
                    while sent < total {
                        c.send(&block).await.unwrap();
                        sent += block.len();
                    }
                };
                let recv = async {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut got = 0;
                    while got < total {
                        got += s.receive_into(&mut buf).await.unwrap();
                    }
                };
                futures::join!(send, recv);
                start.elapsed()
            }
            Case::PingPong(rounds) => {
                let (c, s) = futures::join!(connect(), accept());
                ping_pong!(c, s, rounds)
            }
        }
    })
    .unwrap()
}

fn tokio_twin(case: Case, client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connector = tokio_rustls::TlsConnector::from(client);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connect = || async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            connector.connect(name.clone(), tcp).await.unwrap()
        };
        let accept = || async {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            acceptor.accept(tcp).await.unwrap()
        };
        match case {
            Case::Handshake(n) => {
                let start = Instant::now();
                for _ in 0..n {
                    let (mut c, mut s) = futures::join!(connect(), accept());
                    let _ = futures::join!(c.shutdown(), s.shutdown());
                }
                start.elapsed()
            }
            Case::PlainPingPong(rounds) => {
                let (c, s) =
                    futures::join!(tokio::net::TcpStream::connect(("127.0.0.1", port)), listener.accept());
                let (mut c, (mut s, _)) = (c.unwrap(), s.unwrap());
                c.set_nodelay(true).unwrap();
                s.set_nodelay(true).unwrap();
                let msg = vec![1u8; 1024];
                let start = Instant::now();
                let echo = async {
                    let mut buf = vec![0u8; 1024];
                    for _ in 0..rounds {
                        s.read_exact(&mut buf).await.unwrap();
                        s.write_all(&buf).await.unwrap();
                    }
                };
                let ping = async {
                    let mut buf = vec![0u8; 1024];
                    for _ in 0..rounds {
                        c.write_all(&msg).await.unwrap();
                        c.read_exact(&mut buf).await.unwrap();
                    }
                };
                futures::join!(echo, ping);
                start.elapsed()
            }
            Case::Bulk(total) => {
                let (c, s) = futures::join!(connect(), accept());
                let (mut c, mut s) = (c, s);
                let block = vec![7u8; 16 << 10];
                let start = Instant::now();
                let send = async {
                    let mut sent = 0;
                    while sent < total {
                        c.write_all(&block).await.unwrap();
                        sent += block.len();
                    }
                    c.flush().await.unwrap();
                };
                let recv = async {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut got = 0;
                    while got < total {
                        got += s.read(&mut buf).await.unwrap();
                    }
                };
                futures::join!(send, recv);
                start.elapsed()
            }
            Case::PingPong(rounds) => {
                let (c, s) = futures::join!(connect(), accept());
                let (mut c, mut s) = (c, s);
                let msg = vec![1u8; 1024];
                let start = Instant::now();
                let echo = async {
                    let mut buf = vec![0u8; 1024];
                    for _ in 0..rounds {
                        s.read_exact(&mut buf).await.unwrap();
                        s.write_all(&buf).await.unwrap();
                        s.flush().await.unwrap();
                    }
                };
                let ping = async {
                    let mut buf = vec![0u8; 1024];
                    for _ in 0..rounds {
                        c.write_all(&msg).await.unwrap();
                        c.flush().await.unwrap();
                        c.read_exact(&mut buf).await.unwrap();
                    }
                };
                futures::join!(echo, ping);
                start.elapsed()
            }
        }
    })
}

fn smol_twin(case: Case, client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Duration {
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};
    // Driven as anyio's smol backend drives its main future (and as benches/net.rs drives its
    // smol twins): an executor run by the calling thread under async-io's block_on.
    let ex = async_executor::Executor::new();
    async_io::block_on(ex.run(async move {
        let listener = smol::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
        let port = listener.get_ref().local_addr().unwrap().port();
        let connector = futures_rustls::TlsConnector::from(client);
        let acceptor = futures_rustls::TlsAcceptor::from(server);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connect = || async {
            let tcp = smol::Async::<std::net::TcpStream>::connect(([127, 0, 0, 1], port)).await.unwrap();
            tcp.get_ref().set_nodelay(true).unwrap();
            connector.connect(name.clone(), tcp).await.unwrap()
        };
        let accept = || async {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.get_ref().set_nodelay(true).unwrap();
            acceptor.accept(tcp).await.unwrap()
        };
        match case {
            Case::Handshake(n) => {
                let start = Instant::now();
                for _ in 0..n {
                    let (mut c, mut s) = futures::join!(connect(), accept());
                    let _ = futures::join!(c.close(), s.close());
                }
                start.elapsed()
            }
            Case::PlainPingPong(rounds) => {
                let (c, s) = futures::join!(
                    smol::Async::<std::net::TcpStream>::connect(([127, 0, 0, 1], port)),
                    listener.accept()
                );
                let (mut c, (mut s, _)) = (c.unwrap(), s.unwrap());
                c.get_ref().set_nodelay(true).unwrap();
                s.get_ref().set_nodelay(true).unwrap();
                let msg = vec![1u8; 1024];
                let start = Instant::now();
                let echo = async {
                    let mut buf = vec![0u8; 1024];
                    for _ in 0..rounds {
                        s.read_exact(&mut buf).await.unwrap();
                        s.write_all(&buf).await.unwrap();
                    }
                };
                let ping = async {
                    let mut buf = vec![0u8; 1024];
                    for _ in 0..rounds {
                        c.write_all(&msg).await.unwrap();
                        c.read_exact(&mut buf).await.unwrap();
                    }
                };
                futures::join!(echo, ping);
                start.elapsed()
            }
            Case::Bulk(total) => {
                let (mut c, mut s) = futures::join!(connect(), accept());
                let block = vec![7u8; 16 << 10];
                let start = Instant::now();
                let send = async {
                    let mut sent = 0;
                    while sent < total {
                        c.write_all(&block).await.unwrap();
                        sent += block.len();
                    }
                    c.flush().await.unwrap();
                };
                let recv = async {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut got = 0;
                    while got < total {
                        got += s.read(&mut buf).await.unwrap();
                    }
                };
                futures::join!(send, recv);
                start.elapsed()
            }
            Case::PingPong(rounds) => {
                let (mut c, mut s) = futures::join!(connect(), accept());
                let msg = vec![1u8; 1024];
                let start = Instant::now();
                let echo = async {
                    let mut buf = vec![0u8; 1024];
                    for _ in 0..rounds {
                        s.read_exact(&mut buf).await.unwrap();
                        s.write_all(&buf).await.unwrap();
                        s.flush().await.unwrap();
                    }
                };
                let ping = async {
                    let mut buf = vec![0u8; 1024];
                    for _ in 0..rounds {
                        c.write_all(&msg).await.unwrap();
                        c.flush().await.unwrap();
                        c.read_exact(&mut buf).await.unwrap();
                    }
                };
                futures::join!(echo, ping);
                start.elapsed()
            }
        }
    }))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "quick");
    // `side=ours` or `side=twin` runs one side alone (for profiling); any other word filters
    // the cases by name.
    let side = args.iter().find_map(|a| a.strip_prefix("side=")).map(str::to_owned);
    let filters: Vec<&String> =
        args.iter().filter(|a| *a != "quick" && !a.starts_with("side=") && !a.starts_with("--")).collect();
    let (client, server) = configs();
    let cases = [
        ("bulk 16 KiB sends", if quick { Case::Bulk(16 << 20) } else { Case::Bulk(64 << 20) }),
        ("ping-pong 1 KiB", if quick { Case::PingPong(500) } else { Case::PingPong(2000) }),
        ("connect+handshake+close", if quick { Case::Handshake(50) } else { Case::Handshake(200) }),
        (
            "plain TCP ping-pong 1 KiB",
            if quick { Case::PlainPingPong(500) } else { Case::PlainPingPong(2000) },
        ),
    ];
    let rounds = if quick { 3 } else { 7 };
    type Twin = fn(Case, Arc<ClientConfig>, Arc<ServerConfig>) -> Duration;
    let envs: [(&str, Backend, &str, Twin); 2] = [
        ("tokio current-thread", Backend::TokioCurrentThread, "tokio-rustls", tokio_twin),
        ("smol", Backend::Smol, "futures-rustls", smol_twin),
    ];
    for (env, backend, twin_name, twin) in envs {
        println!("{:<26} {:>12} {:>14} {:>7}   ({env}; twin {twin_name})", "case", "anyio", "twin", "ratio");
        for (name, case) in cases {
            if !filters.is_empty() && !filters.iter().any(|f| format!("{env} {name}").contains(f.as_str())) {
                continue;
            }
            let (mut a, mut b) = (vec![Duration::ZERO], vec![Duration::ZERO]);
            for _ in 0..rounds {
                if side.as_deref() != Some("twin") {
                    a.push(ours(backend, case, client.clone(), server.clone()));
                }
                if side.as_deref() != Some("ours") {
                    b.push(twin(case, client.clone(), server.clone()));
                }
            }
            a.remove(0);
            b.remove(0);
            if a.is_empty() || b.is_empty() {
                let only = if a.is_empty() { median(b) } else { median(a) };
                println!("{name:<26} {only:>12.2?} (one side only)");
                continue;
            }
            let (a, b) = (median(a), median(b));
            println!("{name:<26} {a:>12.2?} {b:>14.2?} {:>7.2}", a.as_secs_f64() / b.as_secs_f64());
        }
    }
}
