//! What TLS streams hold, beside tokio-rustls on tokio current-thread (ring on both sides):
//!
//! - idle: the live heap per established connection (both ends) while each server side waits
//!   in a read into its own 64 KiB buffer (`receive_into`; `read`) and each client sits idle,
//!   200 connections (50 with `quick`). (anyio's `receive(max)` would allocate nothing while
//!   waiting.)
//!   Target: ours ≤ the twin's + 16 KiB per stream;
//! - 1 GiB send (128 MiB with `quick`) in 1 MiB sends to a peer that reads all: the heap's peak
//!   rise during the transfer. Target: under 1 MiB.
//!
//! `cargo bench --bench tls_idle --features smol [-- quick]`. Heap is counted by a global
//! allocator (live bytes and their peak), so the figures are exact and repeatable.

use std::sync::Arc;
use std::time::Duration;

use anyio::net::{connect_tcp, TcpListener};
use anyio::streams::AsyncResource;
use anyio::tls::rustls::{self, ClientConfig, ServerConfig};
use anyio::tls::{TlsOptions, TlsStream};
use anyio::{task_group, AnyError, Backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/heap.rs"]
mod heap;
#[path = "common/tls.rs"]
mod tls;
use heap::{live, peak, reset_peak};
use tls::configs;

#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;

/// Heap per connection while idle, ours.
fn ours_idle(n: usize, client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> usize {
    anyio::run_on(Backend::TokioCurrentThread, async move {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = live();
        let mut clients = Vec::new();
        task_group(|tg| async move {
            for _ in 0..n {
                let (c, s) = futures::join!(
                    async {
                        let tcp = connect_tcp("127.0.0.1", port).await.unwrap();
                        TlsStream::connect(tcp, "localhost", client.clone(), TlsOptions::new()).await.unwrap()
                    },
                    async {
                        let tcp = listener.accept().await.unwrap();
                        TlsStream::accept(tcp, server.clone(), TlsOptions::new()).await.unwrap()
                    }
                );
                // The client reads its session tickets, as a client's first receive would.
                let _ = anyio::move_on_after(Duration::from_millis(1), c.receive(1)).await;
                clients.push(c);
                tg.start_soon(async move {
                    // The same 64 KiB buffer as the twin's read, so that only the streams differ.
                    let mut buf = vec![0u8; 65536];
                    let _ = s.receive_into(&mut buf).await;
                    Ok(())
                });
            }
            anyio::sleep(Duration::from_millis(100)).await?;
            let per = (live() - base) / n;
            tg.cancel();
            for c in &clients {
                let _ = c.get_ref().aclose().await;
            }
            Ok::<_, AnyError>(per)
        })
        .await
        .unwrap()
        .unwrap()
    })
    .unwrap()
}

/// Heap per connection while idle, tokio-rustls.
fn twin_idle(n: usize, client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connector = tokio_rustls::TlsConnector::from(client);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let base = live();
        let mut clients = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (c, s) = futures::join!(
                async {
                    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                    connector.connect(name.clone(), tcp).await.unwrap()
                },
                async {
                    let (tcp, _) = listener.accept().await.unwrap();
                    acceptor.accept(tcp).await.unwrap()
                }
            );
            let mut c = c;
            let mut one = [0u8; 1];
            let _ = tokio::time::timeout(Duration::from_millis(1), c.read(&mut one)).await;
            clients.push(c);
            tasks.push(tokio::spawn(async move {
                let mut s = s;
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let per = (live() - base) / n;
        for t in tasks {
            t.abort();
        }
        for mut c in clients {
            let _ = c.get_mut().0.shutdown().await;
        }
        per
    })
}

/// The heap's peak rise while `total` bytes go through one connection, ours.
fn ours_bulk_peak(total: usize, client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> usize {
    anyio::run_on(Backend::TokioCurrentThread, async move {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (c, s) = futures::join!(
            async {
                let tcp = connect_tcp("127.0.0.1", port).await.unwrap();
                TlsStream::connect(tcp, "localhost", client, TlsOptions::new()).await.unwrap()
            },
            async {
                let tcp = listener.accept().await.unwrap();
                TlsStream::accept(tcp, server, TlsOptions::new()).await.unwrap()
            }
        );
        let block = vec![7u8; 1 << 20];
        let mut buf = vec![0u8; 64 << 10];
        let base = live();
        reset_peak();
        futures::join!(
            async {
                let mut sent = 0;
                while sent < total {
                    c.send(&block).await.unwrap();
                    sent += block.len();
                }
            },
            async {
                let mut got = 0;
                while got < total {
                    got += s.receive_into(&mut buf).await.unwrap();
                }
            }
        );
        let rise = peak() - base;
        let _ = futures::join!(c.aclose(), s.aclose());
        rise
    })
    .unwrap()
}

/// The same with tokio-rustls.
fn twin_bulk_peak(total: usize, client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connector = tokio_rustls::TlsConnector::from(client);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let (mut c, mut s) = futures::join!(
            async {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                connector.connect(name.clone(), tcp).await.unwrap()
            },
            async {
                let (tcp, _) = listener.accept().await.unwrap();
                acceptor.accept(tcp).await.unwrap()
            }
        );
        let block = vec![7u8; 1 << 20];
        let mut buf = vec![0u8; 64 << 10];
        let base = live();
        reset_peak();
        futures::join!(
            async {
                let mut sent = 0;
                while sent < total {
                    c.write_all(&block).await.unwrap();
                    sent += block.len();
                }
                c.flush().await.unwrap();
            },
            async {
                let mut got = 0;
                while got < total {
                    got += s.read(&mut buf).await.unwrap();
                }
            }
        );
        peak() - base
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let (client, server) = configs();
    let n = if quick { 50 } else { 200 };
    let ours = ours_idle(n, client.clone(), server.clone());
    let twin = twin_idle(n, client.clone(), server.clone());
    println!(
        "idle, heap per connection (both ends), {n} connections: anyio {ours} B, tokio-rustls {twin} B, \
         difference {} B (target <= {} B)",
        ours as i64 - twin as i64,
        2 * 16 * 1024
    );
    let total = if quick { 128 << 20 } else { 1 << 30 };
    let ours = ours_bulk_peak(total, client.clone(), server.clone());
    let twin = twin_bulk_peak(total, client, server);
    println!(
        "{} MiB send in 1 MiB sends, peak heap rise: anyio {} KiB, tokio-rustls {} KiB (target < 1024 KiB)",
        total >> 20,
        ours >> 10,
        twin >> 10
    );
}
