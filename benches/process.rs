//! Subprocesses and signals beside their twins (`cargo bench --bench process --features smol
//! [-- quick]`):
//!
//! - spawn `true` and wait for it (standard streams to /dev/null), against `tokio::process` on
//!   tokio and `async-process` on smol;
//! - 256 MiB through `cat` (one task writes stdin, the other reads stdout), against the same,
//!   with the kernel's pipe size and with `pipe_size(256 KiB)` (the twins keep the default);
//! - a signal delivered to a receiver's next item: p50 and p99 of `raise(SIGUSR1)` to
//!   `receive()` returning, ours and tokio's `signal::unix` (the target: p50 < 50 us).

mod common;

use std::time::{Duration, Instant};

use anyio::process::{open_process, ProcessOptions, Stdio};
use anyio::streams::{ByteReceiveStream, ByteSendStream, StreamError};
use common::{run_twin_cases, workload, Args, Raw, TwinCase, Unit};

fn spawn_true(n: u64) -> TwinCase {
    TwinCase {
        name: "spawn `true` and wait".into(),
        ops: n,
        ours: workload(move |_| async move {
            for _ in 0..n {
                let options =
                    ProcessOptions::new().stdin(Stdio::Null).stdout(Stdio::Null).stderr(Stdio::Null);
                let p = open_process(["true"], options).await.unwrap();
                assert_eq!(p.wait().await.unwrap(), 0);
            }
        }),
        twins: vec![(
            "tokio::process / async-process".into(),
            workload(move |raw| async move {
                for _ in 0..n {
                    let ok = match raw {
                        Raw::Tokio => tokio::process::Command::new("true")
                            .stdin(std::process::Stdio::null())
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null())
                            .status()
                            .await
                            .unwrap()
                            .success(),
                        Raw::Smol(_) => async_process::Command::new("true")
                            .stdin(async_process::Stdio::null())
                            .stdout(async_process::Stdio::null())
                            .stderr(async_process::Stdio::null())
                            .status()
                            .await
                            .unwrap()
                            .success(),
                    };
                    assert!(ok);
                }
            }),
        )],
    }
}

const CHUNK: usize = 64 * 1024;

fn through_cat(mib: u64, pipe_size: Option<usize>) -> TwinCase {
    let total = (mib as usize) << 20;
    let label = match pipe_size {
        None => String::new(),
        Some(s) => format!(", pipe_size({} KiB)", s >> 10),
    };
    TwinCase {
        name: format!("{mib} MiB through `cat` (per MiB){label}"),
        ops: mib,
        ours: workload(move |_| async move {
            let mut options = ProcessOptions::new().stderr(Stdio::Null);
            if let Some(size) = pipe_size {
                options = options.pipe_size(size);
            }
            let mut p = open_process(["cat"], options).await.unwrap();
            let (stdin, stdout) = (p.take_stdin().unwrap(), p.take_stdout().unwrap());
            let got = anyio::task_group(|tg| async move {
                tg.start_soon(async move {
                    let chunk = vec![7u8; CHUNK];
                    for _ in 0..total / CHUNK {
                        stdin.send(&chunk).await?;
                    }
                    stdin.send_eof().await?;
                    Ok(())
                });
                let mut got = 0;
                let mut buf = vec![0u8; CHUNK];
                loop {
                    match stdout.receive_into(&mut buf).await {
                        Ok(n) => got += n,
                        Err(StreamError::EndOfStream) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(got)
            })
            .await
            .unwrap()
            .unwrap();
            assert_eq!(got, total);
            assert_eq!(p.wait().await.unwrap(), 0);
        }),
        twins: vec![(
            "tokio::process / async-process".into(),
            workload(move |raw| async move {
                match &raw {
                    Raw::Tokio => {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut child = tokio::process::Command::new("cat")
                            .stdin(std::process::Stdio::piped())
                            .stdout(std::process::Stdio::piped())
                            .stderr(std::process::Stdio::null())
                            .spawn()
                            .unwrap();
                        let mut stdin = child.stdin.take().unwrap();
                        let mut stdout = child.stdout.take().unwrap();
                        let writer = raw.spawn(async move {
                            let chunk = vec![7u8; CHUNK];
                            for _ in 0..total / CHUNK {
                                stdin.write_all(&chunk).await.unwrap();
                            }
                            drop(stdin);
                        });
                        let mut got = 0;
                        let mut buf = vec![0u8; CHUNK];
                        loop {
                            match stdout.read(&mut buf).await.unwrap() {
                                0 => break,
                                n => got += n,
                            }
                        }
                        writer.join().await;
                        assert_eq!(got, total);
                        assert!(child.wait().await.unwrap().success());
                    }
                    Raw::Smol(_) => {
                        use futures::{AsyncReadExt, AsyncWriteExt};
                        let mut child = async_process::Command::new("cat")
                            .stdin(async_process::Stdio::piped())
                            .stdout(async_process::Stdio::piped())
                            .stderr(async_process::Stdio::null())
                            .spawn()
                            .unwrap();
                        let mut stdin = child.stdin.take().unwrap();
                        let mut stdout = child.stdout.take().unwrap();
                        let writer = raw.spawn(async move {
                            let chunk = vec![7u8; CHUNK];
                            for _ in 0..total / CHUNK {
                                stdin.write_all(&chunk).await.unwrap();
                            }
                            stdin.close().await.unwrap();
                        });
                        let mut got = 0;
                        let mut buf = vec![0u8; CHUNK];
                        loop {
                            match stdout.read(&mut buf).await.unwrap() {
                                0 => break,
                                n => got += n,
                            }
                        }
                        writer.join().await;
                        assert_eq!(got, total);
                        assert!(child.status().await.unwrap().success());
                    }
                }
            }),
        )],
    }
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
    (us(v[v.len() / 2]), us(v[v.len() * 99 / 100]))
}

fn raise_usr1() {
    // SAFETY: raise(3) only sends this thread SIGUSR1, which a receiver is subscribed to.
    unsafe { libc::raise(libc::SIGUSR1) };
}

/// Signal delivery latency: `raise` to the receiver's next item, on a current-thread tokio
/// runtime for both (the signal is handled on this thread, the wake goes through the reactor).
fn signal_latency(args: &Args) {
    if !args.selects("signal") || args.env_filter.is_some() {
        return;
    }
    let n = 20_000 / args.scale() as usize;
    // tokio's first: its signal driver registers SIGUSR1 through signal-hook-registry for
    // good, so our receiver finds that handler installed and leaves it in place when it closes.
    // (The other order would restore SIGUSR1's default disposition under tokio's registration;
    // see the signal guide chapter.)
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let twin = rt.block_on(async move {
        let mut rx = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).unwrap();
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            raise_usr1();
            rx.recv().await.unwrap();
            samples.push(t.elapsed());
        }
        samples
    });
    let ours = anyio::run_on(anyio::Backend::TokioCurrentThread, async move {
        let mut rx = anyio::signal::open_signal_receiver(&[anyio::signal::Signal::SIGUSR1]).unwrap();
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            raise_usr1();
            rx.receive().await.unwrap();
            samples.push(t.elapsed());
        }
        samples
    })
    .unwrap();
    let (o50, o99) = percentiles(ours);
    let (t50, t99) = percentiles(twin);
    println!(
        "{:<22} {:<58} {:<32} {:>10.1} {:>10.1} {:>7.2}",
        "tokio-current-thread",
        "signal to next item, p50 (us)",
        "tokio::signal::unix",
        o50,
        t50,
        o50 / t50
    );
    println!(
        "{:<22} {:<58} {:<32} {:>10.1} {:>10.1} {:>7.2}",
        "tokio-current-thread",
        "signal to next item, p99 (us)",
        "tokio::signal::unix",
        o99,
        t99,
        o99 / t99
    );
}

fn main() {
    let args = Args::parse();
    let scale = args.scale();
    let cases = vec![
        spawn_true(400 / scale),
        through_cat(256 / scale, None),
        through_cat(256 / scale, Some(256 << 10)),
    ];
    run_twin_cases(&args, &cases, Unit::NsPerOp);
    signal_latency(&args);
}
