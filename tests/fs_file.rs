//! `AsyncFile` and the file streams on every backend: AnyIO's tests/test_fileio.py
//! (`TestAsyncFile`) and tests/streams/test_file.py, and what the issue adds: a read cancelled
//! or dropped midway loses no bytes, a limiter of 1 serialises operations, concurrent receives
//! are `Busy`, a large file copied through the streams with a bounded buffer, typed errors
//! that name the path.
#![cfg(unix)]

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use anyio::{
    fs::{
        open_file, wrap_file, FileDescriptor, FilePath, FileReadStream, FileWriteStream, FsError,
        OpenOptions, TemporaryDirectory,
    },
    move_on_after,
    streams::{AsyncResource, ByteReceiveStream, ByteSendStream, StreamError, TypedAttributeExt},
    sync::CapacityLimiter,
    task_group, AnyError, CancelScope,
};
use futures::StreamExt;

mod support;
use support::guarded_ok;

fn mode(m: &str) -> OpenOptions {
    OpenOptions::from_mode(m).unwrap()
}

#[anyio::test]
async fn open_write_read_seek_tell_and_close() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let path = dir.path().join("f");
        let f = open_file(&path, mode("w+")).await?;
        assert_eq!(f.path(), Some(&*path));
        f.write_all(b"hello world").await?;
        assert_eq!(f.tell().await?, 11);
        assert_eq!(f.seek(SeekFrom::Start(6)).await?, 6);
        assert_eq!(f.read(100).await?, b"world");
        assert_eq!(f.read(100).await?, b"", "empty at the end, as Python's read");
        f.seek(SeekFrom::Start(0)).await?;
        let mut buf = [0u8; 5];
        assert_eq!(f.read_into(&mut buf).await?, 5);
        assert_eq!(&buf, b"hello");
        assert_eq!(f.read_to_string().await?, " world");
        f.set_len(5).await?;
        assert_eq!(f.metadata().await?.len(), 5);
        f.flush().await?;
        f.sync_all().await?;
        f.sync_data().await?;
        f.close().await?;
        assert!(f.is_closed());
        f.close().await?; // idempotent
        let e = f.read(1).await.unwrap_err();
        assert!(matches!(&e, FsError::Closed { path: Some(p) } if *p == *path), "{e:?}");
        assert!(e.to_string().contains("was closed"), "{e}");
        assert!(matches!(f.write_all(b"x").await, Err(FsError::Closed { .. })));
        assert_eq!(std::fs::read(&path)?, b"hello");
        dir.cleanup().await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn append_mode_and_python_modes() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let path = dir.path().join("log");
        open_file(&path, mode("w")).await?.write_all(b"a").await?;
        let f = open_file(&path, mode("a")).await?;
        f.write_all(b"b").await?;
        f.close().await?;
        assert_eq!(std::fs::read(&path)?, b"ab");
        let e = open_file(&path, mode("x")).await.unwrap_err();
        assert_eq!(e.kind(), Some(std::io::ErrorKind::AlreadyExists));
        for bad in ["", "q", "rw", "r++", "z+"] {
            assert!(matches!(OpenOptions::from_mode(bad), Err(FsError::InvalidArgument(_))), "{bad:?}");
        }
        Ok(())
    })
    .await
}

#[anyio::test]
async fn missing_files_and_directories_give_typed_errors_that_name_the_path() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let missing = dir.path().join("missing");
        let e = open_file(&missing, mode("r")).await.unwrap_err();
        assert_eq!(e.kind(), Some(std::io::ErrorKind::NotFound));
        assert_eq!(e.path(), Some(&*missing));
        assert!(e.to_string().contains("missing"), "{e}");
        let e = open_file(dir.path(), mode("r")).await.unwrap_err();
        assert_eq!(e.kind(), Some(std::io::ErrorKind::IsADirectory), "{e}");
        let f = wrap_file(std::fs::File::open("/dev/null")?);
        assert!(matches!(f.read(0).await, Err(FsError::InvalidArgument(_))));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn lines_are_a_stream_without_their_endings() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let path = dir.path().join("lines");
        // Longer than one 64 KiB read, so a line crosses a chunk boundary.
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str("last without newline");
        std::fs::write(&path, &text)?;
        let f = open_file(&path, mode("r")).await?;
        let lines: Vec<String> = f.lines().map(|l| l.unwrap()).collect().await;
        assert_eq!(lines.len(), 20_001);
        assert_eq!(lines[12_345], "line 12345");
        assert_eq!(lines.last().unwrap(), "last without newline");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_cancelled_read_loses_no_bytes_and_the_stream_goes_on_in_place() {
    guarded_ok(async {
        // A FIFO: the read blocks on its worker until we write, so it is surely midway when
        // the scope is cancelled.
        let dir = TemporaryDirectory::new().await?;
        let fifo = dir.path().join("fifo");
        make_fifo(&fifo);
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new().write(true).open(&writer_path).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            w.write_all(b"first").unwrap();
            std::thread::sleep(Duration::from_millis(100));
            w.write_all(b"second").unwrap();
        });
        let f = open_file(&fifo, mode("r")).await?;
        // Cancelled after 20 ms while the worker waits for "first": run_sync keeps waiting
        // (the read is not abandoned) and the value comes back; dropping the future instead
        // leaves the bytes for the next read. Both lose nothing.
        let scope = CancelScope::new();
        let canceller = scope.clone();
        let got = task_group(|tg| async move {
            tg.start_soon(async move {
                anyio::sleep(Duration::from_millis(20)).await?;
                canceller.cancel();
                Ok(())
            });
            let r = scope.run(async { Ok::<_, FsError>(f.read(5).await) }).await?;
            Ok((r, f))
        })
        .await?
        .unwrap();
        let (r, f) = got;
        let first = match r {
            Some(Ok(bytes)) => bytes,
            other => panic!("the read's bytes were lost: {other:?}"),
        };
        assert_eq!(first, b"first");
        // A dropped read: poll once (the worker starts), drop it, then read again.
        {
            let mut fut = std::pin::pin!(f.read(6));
            let _ = futures::poll!(fut.as_mut());
        }
        assert_eq!(f.read(6).await?, b"second", "the dropped read's bytes come first");
        writer.join().unwrap();
        Ok(())
    })
    .await
}

fn make_fifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string path; mkfifo has no memory effects.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[anyio::test]
async fn a_limiter_of_one_serialises_operations_across_files() {
    guarded_ok(async {
        // File A's read blocks on a FIFO until a writer sends, 150 ms later; file B's read of
        // /dev/zero would finish at once, but shares A's limiter of 1, so it finishes after.
        let dir = TemporaryDirectory::new().await?;
        let fifo = dir.path().join("slow");
        make_fifo(&fifo);
        let writer_path = fifo.clone();
        let written_at = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
        let w_at = written_at.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new().write(true).open(&writer_path).unwrap();
            std::thread::sleep(Duration::from_millis(150));
            *w_at.lock().unwrap() = Some(std::time::Instant::now());
            w.write_all(b"late").unwrap();
        });
        let limiter = Arc::new(CapacityLimiter::new(1));
        let a = open_file(&fifo, mode("r")).await?.with_limiter(limiter.clone());
        let b = wrap_file(std::fs::File::open("/dev/zero")?).with_limiter(limiter.clone());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        task_group(|tg| {
            let order = order.clone();
            async move {
                tg.start_soon(async move {
                    assert_eq!(a.read(4).await?, b"late");
                    Ok(())
                });
                // Let A's read take the token first.
                while limiter.borrowed_tokens() == 0 {
                    anyio::sleep(Duration::from_millis(1)).await?;
                }
                b.read(4).await?;
                order.lock().unwrap().push(std::time::Instant::now());
                Ok(())
            }
        })
        .await?;
        // B's read of /dev/zero needs nothing from the writer, yet it finished only after the
        // writer released A's read: it waited for A's token.
        let b_done = order.lock().unwrap()[0];
        assert!(b_done > written_at.lock().unwrap().expect("written"));
        writer.join().unwrap();
        Ok(())
    })
    .await
}

#[anyio::test]
async fn concurrent_operations_on_one_file_run_in_turn() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let path = dir.path().join("shared");
        let f = Arc::new(open_file(&path, mode("w+")).await?);
        task_group(|tg| {
            let f = f.clone();
            async move {
                for i in 0..50u8 {
                    let f = f.clone();
                    tg.start_soon(async move {
                        f.write_all(&[i; 100]).await?;
                        Ok(())
                    });
                }
                Ok(())
            }
        })
        .await?;
        let data = std::fs::read(&path)?;
        assert_eq!(data.len(), 5000);
        // Each 100-byte write landed whole: no interleaving inside one.
        for chunk in data.chunks(100) {
            assert!(chunk.iter().all(|&b| b == chunk[0]));
        }
        Ok(())
    })
    .await
}

#[anyio::test]
async fn file_streams_read_to_end_of_stream_and_write() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let path = dir.path().join("stream");
        let w = FileWriteStream::from_path(&path, false).await?;
        w.send(b"abc").await?;
        w.aclose().await?;
        assert!(matches!(w.send(b"x").await, Err(StreamError::Closed)));
        let a = FileWriteStream::from_path(&path, true).await?;
        a.send(b"def").await?;
        assert_eq!(a.tell().await?, 6);
        a.aclose().await?;
        let r = FileReadStream::from_path(&path).await?;
        assert_eq!(r.extra::<FilePath>()?, path.to_path_buf());
        assert!(r.extra::<FileDescriptor>()? >= 0);
        assert_eq!(r.receive(4).await?, b"abcd");
        assert_eq!(r.tell().await?, 4);
        r.seek(SeekFrom::Start(1)).await?;
        assert_eq!(r.receive(100).await?, b"bcdef");
        assert!(matches!(r.receive(1).await, Err(StreamError::EndOfStream)));
        assert!(matches!(r.receive(0).await, Err(StreamError::InvalidArgument(_))));
        r.aclose().await?;
        assert!(matches!(r.receive(1).await, Err(StreamError::Closed)));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn concurrent_receives_on_one_file_stream_are_busy() {
    guarded_ok(async {
        // The first receive blocks on a FIFO until we write, so the second surely overlaps it.
        let dir = TemporaryDirectory::new().await?;
        let fifo = dir.path().join("busy");
        make_fifo(&fifo);
        let writer_path = fifo.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new().write(true).open(&writer_path).unwrap();
            rx.recv().unwrap();
            w.write_all(b"data").unwrap();
        });
        let r = Arc::new(FileReadStream::from_path(&fifo).await?);
        let second = task_group(|tg| {
            let r = r.clone();
            async move {
                let first = tg.spawn({
                    let r = r.clone();
                    async move { Ok(r.receive(4).await?) }
                });
                // Give the first receive time to take the stream (its worker then blocks on the
                // FIFO); a second receive taking it first would block instead, and the hang
                // guard would fail the test.
                anyio::sleep(Duration::from_millis(20)).await?;
                let second = match r.receive(1).await {
                    Err(StreamError::Busy(b)) => b,
                    other => panic!("expected Busy while the first receive runs, got {other:?}"),
                };
                tx.send(()).unwrap();
                assert_eq!(first.await.unwrap(), b"data");
                Ok(second)
            }
        })
        .await?
        .unwrap();
        assert!(second.to_string().contains("reading from"), "{second}");
        writer.join().unwrap();
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_1_gib_file_copies_through_the_streams_with_a_bounded_buffer() {
    use std::io::{Read, Seek, Write};
    // The source is sparse (reading its holes costs no disk), with marked blocks at its start,
    // middle and end that must arrive in place; the copy is written for real.
    const SIZE: u64 = 1 << 30;
    let dir = TemporaryDirectory::new().await.unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    let marks = [0u64, SIZE / 2 + 12345, SIZE - 4096];
    {
        let mut f = std::fs::File::create(&src).unwrap();
        f.set_len(SIZE).unwrap();
        for (i, &at) in marks.iter().enumerate() {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&[i as u8 + 1; 4096]).unwrap();
        }
    }
    // Its own generous deadline instead of the usual hang guard: a gibibyte may take a loaded
    // machine tens of seconds, and this test is about correctness, not speed.
    anyio::fail_after(Duration::from_secs(300), async {
        let r = FileReadStream::from_path(&src).await?;
        let w = FileWriteStream::from_path(&dst, false).await?;
        let mut buf = vec![0u8; 64 << 10]; // the only buffer: memory stays bounded
        loop {
            match r.receive_into(&mut buf).await {
                Ok(n) => w.send(&buf[..n]).await?,
                Err(StreamError::EndOfStream) => break,
                Err(e) => return Err(e.into()),
            }
        }
        w.aclose().await?;
        Ok::<_, AnyError>(())
    })
    .await
    .unwrap();
    let mut copy = std::fs::File::open(&dst).unwrap();
    assert_eq!(copy.metadata().unwrap().len(), SIZE);
    for (i, &at) in marks.iter().enumerate() {
        let mut block = [0u8; 4096];
        copy.seek(SeekFrom::Start(at)).unwrap();
        copy.read_exact(&mut block).unwrap();
        assert!(block.iter().all(|&b| b == i as u8 + 1), "mark {i} is not in place");
        if at > 0 {
            copy.seek(SeekFrom::Start(at - 1)).unwrap();
            let mut before = [9u8; 1];
            copy.read_exact(&mut before).unwrap();
            assert_eq!(before[0], 0, "the hole before mark {i} stayed zero");
        }
    }
    drop(copy);
    dir.cleanup().await.unwrap();
}

#[anyio::test]
async fn a_full_disk_during_a_write_is_a_typed_error_naming_the_path() {
    guarded_ok(async {
        // /dev/full: every write fails with ENOSPC.
        let f = open_file("/dev/full", mode("w")).await?;
        let e = f.write_all(b"no room").await.unwrap_err();
        assert_eq!(e.kind(), Some(std::io::ErrorKind::StorageFull), "{e}");
        assert!(e.to_string().contains("/dev/full"), "{e}");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_cancelled_scope_starts_no_operation() {
    guarded_ok(async {
        let f = wrap_file(std::fs::File::open("/dev/zero")?);
        let r = move_on_after(Duration::ZERO, async {
            anyio::lowlevel::checkpoint().await?;
            f.read(10).await?;
            Ok::<_, AnyError>(())
        })
        .await?;
        assert_eq!(r, None);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn wrapped_files_and_streams_over_them() {
    guarded_ok(async {
        let dir = TemporaryDirectory::new().await?;
        let path = dir.path().join("wrapped");
        let f = wrap_file(std::fs::File::create(&path)?);
        f.write_all(b"Hello").await?;
        f.close().await?;
        assert_eq!(std::fs::read(&path)?, b"Hello");
        let r = FileReadStream::new(wrap_file(std::fs::File::open(&path)?));
        assert_eq!(r.receive(3).await?, b"Hel");
        assert_eq!(r.receive(3).await?, b"lo");
        assert!(matches!(r.receive(3).await, Err(StreamError::EndOfStream)));
        let w = FileWriteStream::from_path(&path, true).await?;
        assert_eq!(w.extra::<FilePath>()?, path.to_path_buf());
        assert!(w.extra::<FileDescriptor>()? > 2);
        w.aclose().await?;
        assert!(w.extra::<FileDescriptor>().is_err(), "no descriptor once closed");
        Ok(())
    })
    .await
}
