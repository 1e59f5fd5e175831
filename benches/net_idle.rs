//! Memory of idle connections: 2,000 clients connected to an echo server, each handler blocked
//! in a receive, on anyio's `serve` beside a raw server of the same shape (a task per
//! connection, accepting in a loop): tokio's own sockets on tokio current-thread, async-io's
//! `Async<TcpStream>` on an `async_executor::Executor` for smol. The raw handlers read into a
//! 1 KiB buffer of their own, as tokio's echo example does; anyio's call `receive(65536)`, the
//! natural handler of `serve`'s documentation.
//!
//! Each server runs in a child process of its own (this program run with `child ENV SIDE`),
//! so that one side's freed memory never counts for the other. The parent connects the
//! clients (blocking std sockets, loopback only), sends one 64 B message on each and reads its
//! echo (so every handler has run and waits again), asks the child to measure, closes them all,
//! and repeats for three bursts. Reported per side: the heap's peak (a counting global
//! allocator in the child), the resident set while 2,000 connections are held (`VmRSS`, the
//! largest of the bursts) and after the last burst closed, and the peak resident set
//! (`VmHWM`). Target: ours/raw ≤ 1.5 for the heap peak and the resident sets.
//!
//! `cargo bench --bench net_idle --features smol` (`-- quick`: 500 connections, 2 bursts).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[path = "common/heap.rs"]
mod heap;
use heap::{LIVE, PEAK};

#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;

/// The flavours measured: every backend this bench is built with (async-std with
/// `--features smol,async-std` or `--all-features`).
const ENVS: &[&str] = &[
    "tokio-current-thread",
    "tokio-multi-thread(2)",
    "smol",
    #[cfg(feature = "async-std")]
    "async-std",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return child(&args[1], &args[2]);
    }
    let quick = args.iter().any(|a| a == "quick");
    let (conns, bursts) = if quick { (500, 2) } else { (2000, 3) };
    raise_fd_limit(2 * conns as u64 + 256);
    println!("{conns} idle connections, {bursts} bursts; MB = 10^6 bytes");
    println!(
        "{:<22} {:<5} {:>10} {:>12} {:>12} {:>10}",
        "backend", "side", "heap peak", "RSS held", "RSS after", "VmHWM"
    );
    for env in ENVS.iter().filter(|e| args.iter().all(|a| !a.starts_with("env=") || a == &format!("env={e}")))
    {
        let ours = parent(env, "ours", conns, bursts);
        let raw = parent(env, "raw", conns, bursts);
        for (side, m) in [("ours", &ours), ("raw", &raw)] {
            println!(
                "{:<22} {:<5} {:>10} {:>12} {:>12} {:>10}",
                env,
                side,
                mb(m.heap_peak),
                mb(m.rss_held),
                mb(m.rss_after),
                mb(m.hwm)
            );
        }
        println!(
            "{:<22} {:<5} {:>10.2} {:>12.2} {:>12.2} {:>10.2}   (target <= 1.5)",
            env,
            "ratio",
            ours.heap_peak as f64 / raw.heap_peak as f64,
            ours.rss_held as f64 / raw.rss_held as f64,
            ours.rss_after as f64 / raw.rss_after as f64,
            ours.hwm as f64 / raw.hwm as f64
        );
    }
}

fn mb(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[derive(Default)]
struct Measured {
    heap_peak: usize,
    rss_held: usize,
    rss_after: usize,
    hwm: usize,
}

/// Runs one server as a child and drives the bursts of clients against it.
fn parent(env: &str, side: &str, conns: usize, bursts: usize) -> Measured {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child", env, side])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = from_child.next().unwrap().unwrap().trim().parse().unwrap();
    let mut ask = |what: &str| -> [usize; 4] {
        writeln!(to_child, "{what}").unwrap();
        let line = from_child.next().unwrap().unwrap();
        let v: Vec<usize> = line.split_whitespace().map(|n| n.parse().unwrap()).collect();
        [v[0], v[1], v[2], v[3]]
    };
    let mut m = Measured::default();
    let message = [7u8; 64];
    for _ in 0..bursts {
        let mut clients = Vec::with_capacity(conns);
        for _ in 0..conns {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.set_nodelay(true).unwrap();
            c.write_all(&message).unwrap();
            let mut echo = [0u8; 64];
            c.read_exact(&mut echo).unwrap();
            clients.push(c);
        }
        // Every handler has answered and waits in its receive again.
        std::thread::sleep(Duration::from_millis(200));
        let [_, _, rss, _] = ask("measure");
        m.rss_held = m.rss_held.max(rss);
        drop(clients);
        std::thread::sleep(Duration::from_millis(300));
    }
    let [_, peak, rss, hwm] = ask("measure");
    m.heap_peak = peak;
    m.rss_after = rss;
    m.hwm = hwm;
    drop(to_child);
    let _ = child.kill();
    let _ = child.wait();
    m
}

/// The server: prints its port, then answers each "measure" line on stdin with
/// "live-heap peak-heap VmRSS VmHWM" (bytes).
fn child(env: &str, side: &str) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    std::thread::spawn(|| {
        for line in std::io::stdin().lines() {
            if line.is_err() {
                break;
            }
            let (rss, hwm) = (status_kb("VmRSS:") * 1024, status_kb("VmHWM:") * 1024);
            println!("{} {} {} {}", LIVE.load(Ordering::Relaxed), PEAK.load(Ordering::Relaxed), rss, hwm);
        }
        std::process::exit(0);
    });
    match (env, side) {
        ("tokio-current-thread", "ours") => {
            anyio::run_on(anyio::Backend::TokioCurrentThread, ours(listener)).unwrap();
        }
        ("tokio-multi-thread(2)", "ours") => {
            let workers = std::num::NonZeroUsize::new(2);
            anyio::run_on(anyio::Backend::TokioMultiThread { workers }, ours(listener)).unwrap();
        }
        ("smol", "ours") => {
            anyio::run_on(anyio::Backend::Smol, ours(listener)).unwrap();
        }
        #[cfg(feature = "async-std")]
        ("async-std", "ours") => {
            anyio::run_on(anyio::Backend::AsyncStd, ours(listener)).unwrap();
        }
        ("tokio-current-thread", "raw") => {
            raw_tokio(tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(), listener)
        }
        ("tokio-multi-thread(2)", "raw") => raw_tokio(
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
            listener,
        ),
        ("smol", "raw") => raw_async_io(listener),
        #[cfg(feature = "async-std")]
        ("async-std", "raw") => raw_async_std(listener),
        _ => panic!("unknown env {env} or side {side}"),
    }
}

/// anyio: `serve` with the natural echo handler.
async fn ours(listener: std::net::TcpListener) {
    use anyio::{net::ListenerExt, AnyError};
    let listener = anyio::net::TcpListener::from_std(listener).unwrap();
    listener
        .serve(|client| async move {
            while let Ok(data) = client.receive(65536).await {
                client.send(&data).await?;
            }
            Ok::<_, AnyError>(())
        })
        .await
        .unwrap();
}

fn raw_tokio(rt: tokio::runtime::Runtime, listener: std::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

fn raw_async_io(listener: std::net::TcpListener) {
    use futures::{AsyncReadExt, AsyncWriteExt};
    let ex = async_executor::Executor::new();
    let listener = async_io::Async::new(listener).unwrap();
    async_io::block_on(ex.run(async {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.get_ref().set_nodelay(true).unwrap();
            ex.spawn(async move {
                let mut buf = vec![0u8; 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .detach();
        }
    }));
}

/// async-std's own sockets, a task per connection, the same loop.
#[cfg(feature = "async-std")]
fn raw_async_std(listener: std::net::TcpListener) {
    use async_std::io::{ReadExt, WriteExt};
    async_std::task::block_on(async {
        let listener = async_std::net::TcpListener::from(listener);
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.set_nodelay(true).unwrap();
            async_std::task::spawn(async move {
                let mut buf = vec![0u8; 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

/// A field of /proc/self/status, in kB.
fn status_kb(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Raises the soft descriptor limit to `want` (or the hard limit): both ends of every
/// connection live on this machine.
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur >= want {
        return;
    }
    lim.rlim_cur = want.min(lim.rlim_max);
    // SAFETY: `lim` is a valid rlimit, read only during the call.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}
