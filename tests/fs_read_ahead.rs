//! `AsyncFile`'s read-ahead on every backend: sequential reads of a regular file are read
//! ahead by a worker, and nothing a caller can see changes — every read returns the next bytes
//! in order, `tell`, `seek` and writes use the position the caller has read to, a dropped read
//! loses nothing, the end and later appends read as without it; pipes and sockets are never
//! read ahead; a closed or dropped file stops it and gives its limiter token back.
#![cfg(target_os = "linux")]

use std::io::{SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use anyio::{
    fs::{open_file, wrap_file, AsyncFile, FsError, OpenOptions, TemporaryDirectory},
    sync::CapacityLimiter,
    AnyError,
};

mod support;
use support::guarded_ok;

/// The byte at offset `i` of the test files: not periodic in any read size used here.
fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i / 65_536) as u8
}

fn contents(len: u64) -> Vec<u8> {
    (0..len).map(byte_at).collect()
}

/// The kernel's position of descriptor `fd` of this process.
fn kernel_pos(fd: i32) -> u64 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let line = info.lines().find_map(|l| l.strip_prefix("pos:")).unwrap();
    line.trim().parse().unwrap()
}

/// Reads `n` bytes at the caller's position and checks they are the file's bytes from `at`.
async fn expect_next(f: &AsyncFile, at: u64, n: usize) -> Result<(), AnyError> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let chunk = f.read(n - got.len()).await?;
        assert!(!chunk.is_empty(), "early end at {}", at + got.len() as u64);
        got.extend_from_slice(&chunk);
    }
    let want: Vec<u8> = (at..at + n as u64).map(byte_at).collect();
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!("{n} bytes at offset {at}: byte {i} differs");
    }
    Ok(())
}

#[anyio::test]
async fn sequential_reads_are_read_ahead_and_the_caller_sees_only_its_own_position() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let path = dir.path().join("big");
        std::fs::write(&path, contents(8 << 20))?;
        let std_file = std::fs::OpenOptions::new().read(true).write(true).open(&path)?;
        let fd = std_file.as_raw_fd();
        let f = wrap_file(std_file);
        let mut buf = vec![0u8; 64 << 10];
        let mut at = 0u64;
        for _ in 0..3 {
            let n = f.read_into(&mut buf).await?;
            assert_eq!(n, buf.len());
            assert!(buf[..n] == contents(at + n as u64)[at as usize..], "bytes at {at}");
            at += n as u64;
        }
        // The proof that it reads ahead: the descriptor moves past what was returned.
        while kernel_pos(fd) <= at {
            anyio::sleep(Duration::from_millis(1)).await?;
        }
        assert_eq!(f.tell().await?, at, "tell counts only what the caller read");
        // Reads of other sizes go on in order, through a read dropped midway.
        expect_next(&f, at, 1000).await?;
        at += 1000;
        {
            // Dropped after one poll, unless the bytes were there already (then it returned them).
            let mut dropped = std::pin::pin!(f.read(70_000));
            if let std::task::Poll::Ready(r) = futures::poll!(dropped.as_mut()) {
                let got = r?;
                assert!(got == contents(at + got.len() as u64)[at as usize..], "bytes at {at}");
                at += got.len() as u64;
            }
        }
        for n in [70_000, 5, 300_000, 1 << 20] {
            expect_next(&f, at, n).await?;
            at += n as u64;
        }
        // Seeks are relative to the caller's position...
        assert_eq!(f.seek(SeekFrom::Current(-10)).await?, at - 10);
        expect_next(&f, at - 10, 10).await?;
        // ...and a write lands there too.
        for _ in 0..3 {
            f.read_into(&mut buf).await?;
            at += buf.len() as u64;
        }
        f.write_all(b"MARK").await?;
        assert_eq!(f.tell().await?, at + 4);
        expect_next(&f, at + 4, 100).await?;
        f.close().await?;
        let on_disk = std::fs::read(&path)?;
        assert_eq!(&on_disk[at as usize..at as usize + 4], b"MARK");
        assert_eq!(on_disk[at as usize + 4], byte_at(at + 4));
        assert_eq!(on_disk.len(), 8 << 20);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn read_ahead_stops_at_the_end_and_later_appends_are_read() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let path = dir.path().join("grows");
        let len = (1 << 20) + 123;
        std::fs::write(&path, contents(len))?;
        let f = open_file(&path, OpenOptions::from_mode("r").unwrap()).await?;
        let mut buf = vec![0u8; 64 << 10];
        let mut all = Vec::new();
        loop {
            match f.read_into(&mut buf).await? {
                0 => break,
                n => all.extend_from_slice(&buf[..n]),
            }
        }
        assert!(all == contents(len), "the whole file, once, in order");
        assert_eq!(f.read_into(&mut buf).await?, 0, "still at the end");
        std::fs::OpenOptions::new().append(true).open(&path)?.write_all(b"appended")?;
        assert_eq!(f.read(100).await?, b"appended", "the end met by the read-ahead is not sticky");
        assert_eq!(f.read(100).await?, b"");
        f.close().await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn streams_that_are_not_regular_files_are_never_read_ahead() {
    guarded_ok(async {
        // A socket pair: a stream like a pipe, neither regular.
        let (reader, mut writer) = std::os::unix::net::UnixStream::pair()?;
        let fd: std::os::fd::OwnedFd = reader.into();
        let limiter = Arc::new(CapacityLimiter::new(1));
        let f = wrap_file(std::fs::File::from(fd)).with_limiter(limiter.clone());
        let block = vec![5u8; 4096];
        for _ in 0..4 {
            writer.write_all(&block)?;
        }
        for _ in 0..4 {
            assert_eq!(f.read(4096).await?, block, "full reads, as sequential as they come");
        }
        // A read-ahead would now sit in read(2) on the empty socket, holding the only token and
        // the file: close would wait for it for ever.
        assert_eq!(limiter.borrowed_tokens(), 0);
        f.close().await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn close_and_drop_stop_the_read_ahead_and_give_its_token_back() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let path = dir.path().join("big");
        std::fs::write(&path, contents(16 << 20))?;
        let limiter = Arc::new(CapacityLimiter::new(4));
        for close in [true, false] {
            let f =
                open_file(&path, OpenOptions::from_mode("r").unwrap()).await?.with_limiter(limiter.clone());
            let mut buf = vec![0u8; 64 << 10];
            for _ in 0..3 {
                assert_eq!(f.read_into(&mut buf).await?, buf.len());
            }
            if close {
                f.close().await?;
                assert!(matches!(f.read(1).await, Err(FsError::Closed { .. })));
            } else {
                drop(f);
            }
            while limiter.borrowed_tokens() > 0 {
                anyio::sleep(Duration::from_millis(1)).await?;
            }
        }
        Ok(())
    })
    .await
}
