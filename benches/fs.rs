//! Files beside their twins (`cargo bench --bench fs --features smol [-- quick]`): tokio::fs on
//! tokio, async-fs on smol, in the same run.
//!
//! - open + read 4 KiB + close;
//! - a 64 MiB file read sequentially in 64 KiB reads (per read);
//! - iterdir of 10,000 entries (per entry);
//! - 256 MiB copied through `FileReadStream` -> `FileWriteStream` with a 64 KiB buffer, against
//!   the twins' files with a 64 KiB buffer (per MiB; 32 MiB with `quick`).

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use anyio::fs::{open_file, OpenOptions, Path};
use common::{run_twin_cases, workload, Args, Raw, TwinCase, Unit};

struct Fixture {
    small: PathBuf,
    big: PathBuf,
    dir: PathBuf,
    copy_src: PathBuf,
    copy_dst: PathBuf,
    _root: tempfile::TempDir,
}

fn fixture(copy_mib: u64) -> Arc<Fixture> {
    let root = tempfile::tempdir().unwrap();
    let small = root.path().join("small");
    std::fs::write(&small, vec![7u8; 4096]).unwrap();
    let big = root.path().join("big");
    std::fs::write(&big, vec![9u8; 64 << 20]).unwrap();
    let dir = root.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..10_000 {
        std::fs::File::create(dir.join(format!("entry-{i}"))).unwrap();
    }
    let copy_src = root.path().join("copy-src");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&copy_src).unwrap();
        let block = vec![3u8; 1 << 20];
        for _ in 0..copy_mib {
            f.write_all(&block).unwrap();
        }
    }
    let copy_dst = root.path().join("copy-dst");
    Arc::new(Fixture { small, big, dir, copy_src, copy_dst, _root: root })
}

fn open_read_close(fx: &Arc<Fixture>, n: u64) -> TwinCase {
    let (a, b) = (fx.clone(), fx.clone());
    TwinCase {
        name: "open + read 4 KiB + close".into(),
        ops: n,
        ours: workload(move |_| {
            let path = a.small.clone();
            async move {
                for _ in 0..n {
                    let f = open_file(&path, OpenOptions::from_mode("r").unwrap()).await.unwrap();
                    assert_eq!(f.read(4096).await.unwrap().len(), 4096);
                    f.close().await.unwrap();
                }
            }
        }),
        twins: vec![(
            "tokio::fs / async-fs".into(),
            workload(move |raw| {
                let path = b.small.clone();
                async move {
                    let mut buf = vec![0u8; 4096];
                    for _ in 0..n {
                        let got = match raw {
                            Raw::Tokio => {
                                use tokio::io::AsyncReadExt;
                                let mut f = tokio::fs::File::open(&path).await.unwrap();
                                f.read_exact(&mut buf).await.unwrap()
                            }
                            Raw::Smol(_) => {
                                use futures::AsyncReadExt;
                                let mut f = async_fs::File::open(&path).await.unwrap();
                                f.read_exact(&mut buf).await.unwrap();
                                buf.len()
                            }
                        };
                        assert_eq!(got, 4096);
                    }
                }
            }),
        )],
    }
}

fn sequential(fx: &Arc<Fixture>) -> TwinCase {
    let (a, b) = (fx.clone(), fx.clone());
    let reads = (64 << 20) / (64 << 10);
    TwinCase {
        name: "64 MiB read in 64 KiB reads (per read)".into(),
        ops: reads,
        ours: workload(move |_| {
            let path = a.big.clone();
            async move {
                let f = open_file(&path, OpenOptions::from_mode("r").unwrap()).await.unwrap();
                let mut buf = vec![0u8; 64 << 10];
                let mut total = 0;
                loop {
                    match f.read_into(&mut buf).await.unwrap() {
                        0 => break,
                        n => total += n,
                    }
                }
                assert_eq!(total, 64 << 20);
                f.close().await.unwrap();
            }
        }),
        twins: vec![(
            "tokio::fs / async-fs".into(),
            workload(move |raw| {
                let path = b.big.clone();
                async move {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut total = 0;
                    match raw {
                        Raw::Tokio => {
                            use tokio::io::AsyncReadExt;
                            let mut f = tokio::fs::File::open(&path).await.unwrap();
                            loop {
                                match f.read(&mut buf).await.unwrap() {
                                    0 => break,
                                    n => total += n,
                                }
                            }
                        }
                        Raw::Smol(_) => {
                            use futures::AsyncReadExt;
                            let mut f = async_fs::File::open(&path).await.unwrap();
                            loop {
                                match f.read(&mut buf).await.unwrap() {
                                    0 => break,
                                    n => total += n,
                                }
                            }
                        }
                    }
                    assert_eq!(total, 64 << 20);
                }
            }),
        )],
    }
}

fn iterdir(fx: &Arc<Fixture>) -> TwinCase {
    let (a, b) = (fx.clone(), fx.clone());
    TwinCase {
        name: "iterdir of 10,000 entries (per entry)".into(),
        ops: 10_000,
        ours: workload(move |_| {
            let dir = Path::new(a.dir.clone());
            async move {
                use futures::StreamExt;
                let mut entries = dir.iterdir();
                let mut n = 0;
                while let Some(e) = entries.next().await {
                    e.unwrap();
                    n += 1;
                }
                assert_eq!(n, 10_000);
            }
        }),
        twins: vec![(
            "tokio::fs / async-fs read_dir".into(),
            workload(move |raw| {
                let dir = b.dir.clone();
                async move {
                    let mut n = 0;
                    match raw {
                        Raw::Tokio => {
                            let mut rd = tokio::fs::read_dir(&dir).await.unwrap();
                            while let Some(e) = rd.next_entry().await.unwrap() {
                                std::hint::black_box(e.path());
                                n += 1;
                            }
                        }
                        Raw::Smol(_) => {
                            use futures::StreamExt;
                            let mut rd = async_fs::read_dir(&dir).await.unwrap();
                            while let Some(e) = rd.next().await {
                                std::hint::black_box(e.unwrap().path());
                                n += 1;
                            }
                        }
                    }
                    assert_eq!(n, 10_000);
                }
            }),
        )],
    }
}

fn copy(fx: &Arc<Fixture>, mib: u64) -> TwinCase {
    let (a, b) = (fx.clone(), fx.clone());
    TwinCase {
        name: format!("{mib} MiB copied through file streams (per MiB)"),
        ops: mib,
        ours: workload(move |_| {
            let (src, dst) = (a.copy_src.clone(), a.copy_dst.clone());
            async move {
                use anyio::streams::{AsyncResource, ByteReceiveStream, ByteSendStream, StreamError};
                let r = anyio::fs::FileReadStream::from_path(&src).await.unwrap();
                let w = anyio::fs::FileWriteStream::from_path(&dst, false).await.unwrap();
                let mut buf = vec![0u8; 64 << 10];
                let mut total = 0u64;
                loop {
                    match r.receive_into(&mut buf).await {
                        Ok(n) => {
                            w.send(&buf[..n]).await.unwrap();
                            total += n as u64;
                        }
                        Err(StreamError::EndOfStream) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                assert_eq!(total, mib << 20);
                w.aclose().await.unwrap();
            }
        }),
        twins: vec![(
            "tokio::fs / async-fs files".into(),
            workload(move |raw| {
                let (src, dst) = (b.copy_src.clone(), b.copy_dst.clone());
                async move {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut total = 0u64;
                    match raw {
                        Raw::Tokio => {
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            let mut r = tokio::fs::File::open(&src).await.unwrap();
                            let mut w = tokio::fs::File::create(&dst).await.unwrap();
                            loop {
                                match r.read(&mut buf).await.unwrap() {
                                    0 => break,
                                    n => {
                                        w.write_all(&buf[..n]).await.unwrap();
                                        total += n as u64;
                                    }
                                }
                            }
                            w.flush().await.unwrap();
                        }
                        Raw::Smol(_) => {
                            use futures::{AsyncReadExt, AsyncWriteExt};
                            let mut r = async_fs::File::open(&src).await.unwrap();
                            let mut w = async_fs::File::create(&dst).await.unwrap();
                            loop {
                                match r.read(&mut buf).await.unwrap() {
                                    0 => break,
                                    n => {
                                        w.write_all(&buf[..n]).await.unwrap();
                                        total += n as u64;
                                    }
                                }
                            }
                            w.flush().await.unwrap();
                        }
                    }
                    assert_eq!(total, mib << 20);
                }
            }),
        )],
    }
}

fn main() {
    let args = Args::parse();
    let copy_mib = if args.scale() > 1 { 32 } else { 256 };
    let fx = fixture(copy_mib);
    let cases =
        vec![open_read_close(&fx, 2_000 / args.scale()), sequential(&fx), iterdir(&fx), copy(&fx, copy_mib)];
    run_twin_cases(&args, &cases, Unit::NsPerOp);
}
