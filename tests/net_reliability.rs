//! TCP reliability on every backend: the R1, R2, R3, R7 and R9 rows of the reliability plan
//! (shared/reference/practices-benchmarks-reliability.md, C4): a peer reset mid-stream, half
//! close, a slow reader's backpressure, a thousand (and, ignored, ten thousand) concurrent
//! connections, and `receive_until` giving up on an oversized record.
//!
//! Nothing here asserts how fast anything is; the hang guards only catch hangs.

mod support;

use std::error::Error as _;
use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyio::{
    net::tcp::TcpListenerOptions,
    net::{connect_tcp, create_tcp_listener, ListenerExt, LocalPort, RawSocket, TcpListener, TcpStream},
    sleep,
    streams::buffered::BufferedByteReceiveStream,
    streams::{StreamError, TypedAttributeExt},
    task::GroupError,
    task_group, AnyError, CancelScope, TaskGroup,
};
use support::{guarded_long_ok, guarded_ok, pattern, SHORT};

const MIB: usize = 1 << 20;

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = connect_tcp("127.0.0.1", l.local_addr().unwrap().port()).await.unwrap();
    let server = l.accept().await.unwrap();
    (client, server)
}

/// Receives exactly `n` bytes, however the stream splits them.
async fn receive_n(s: &TcpStream, n: usize) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.extend(s.receive(n - out.len()).await?);
    }
    Ok(out)
}

/// Sets `SO_LINGER` to 0 on a stream, so that closing it sends a reset instead of a FIN.
fn set_linger_zero(stream: &TcpStream) {
    let fd: RawFd = stream.extra::<RawSocket>().unwrap();
    // SAFETY: `stream` is open and outlives this call, so its descriptor stays valid while
    // borrowed here.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO)).unwrap();
}

/// The OS error behind a stream error, if it carries one as its source.
fn os_error(e: &StreamError) -> Option<&io::Error> {
    e.source().and_then(|s| s.downcast_ref::<io::Error>())
}

/// Polls until `counter` is non-zero (cancellably).
async fn wait_nonzero(counter: &AtomicUsize) -> Result<(), AnyError> {
    while counter.load(Ordering::SeqCst) == 0 {
        sleep(Duration::from_millis(1)).await?;
    }
    Ok(())
}

/// Polls until `counter` reaches `n` (cancellably).
async fn wait_count(counter: &AtomicUsize, n: usize) -> Result<(), AnyError> {
    while counter.load(Ordering::SeqCst) < n {
        sleep(Duration::from_millis(1)).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// R1: peer resets the connection mid-stream

#[anyio::test]
async fn r1_a_peer_reset_mid_stream_fails_the_blocked_sender_with_broken_and_keeps_failing() {
    guarded_ok(async {
        let (client, server) = pair().await;
        let server = Arc::new(server);
        let data = Arc::new(pattern(16 * MIB, 11));
        let (server2, data2) = (server.clone(), data.clone());
        // The sender's failure is the group's only failure.
        let r = TaskGroup::scope(|tg: TaskGroup<StreamError>| async move {
            tg.spawn(async move { server2.send(&data2).await });
            let got = receive_n(&client, MIB).await?;
            assert!(got == data[..MIB], "the received bytes are not a prefix of the sent ones");
            set_linger_zero(&client);
            client.aclose().await?;
            Ok(())
        })
        .await;
        let errors = match r {
            Err(GroupError::Failed(errors)) => errors,
            other => panic!("expected the sender's failure, got {other:?}"),
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        let err = &errors[0];
        assert!(matches!(err, StreamError::Broken(Some(_))), "{err:?}");
        let kind = os_error(err).expect("the OS error is the source").kind();
        assert!(matches!(kind, io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe), "{kind:?}");

        // Sticky: every later send fails too.
        for _ in 0..3 {
            let again = server.send(b"more").await;
            assert!(matches!(again, Err(StreamError::Broken(_))), "{again:?}");
        }
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn r1_a_peer_reset_while_blocked_in_receive_fails_the_receiver_with_broken_connection_reset() {
    guarded_ok(async {
        let (client, server) = pair().await;
        let server = Arc::new(server);
        let server2 = server.clone();
        let r = task_group(|tg: TaskGroup<AnyError>| async move {
            let receiver = tg.spawn(async move { Ok(server2.receive(100).await) });
            sleep(SHORT).await?; // let the receiver block
            set_linger_zero(&client);
            client.aclose().await?;
            Ok(receiver.await?)
        })
        .await;
        let first = match r {
            Ok(Some(first)) => first,
            other => panic!("the group failed: {other:?}"),
        };
        let err = first.expect_err("a reset connection delivered data");
        assert!(matches!(err, StreamError::Broken(Some(_))), "{err:?}");
        let source = os_error(&err).expect("the OS error is the source");
        assert_eq!(source.kind(), io::ErrorKind::ConnectionReset);
        // Never an empty read: after the reset the stream reports an error or end of stream.
        let next = server.receive(100).await;
        assert!(matches!(next, Err(StreamError::Broken(_) | StreamError::EndOfStream)), "{next:?}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn r1_bytes_received_before_a_reset_are_a_prefix_of_those_sent_then_an_error() {
    guarded_ok(async {
        let (client, server) = pair().await;
        let data = pattern(256 * 1024, 13);
        client.send(&data).await?;
        set_linger_zero(&client);
        client.aclose().await?;
        let mut got = Vec::new();
        let end = loop {
            match server.receive(65536).await {
                Ok(chunk) => {
                    assert!(!chunk.is_empty());
                    got.extend(chunk);
                }
                Err(e) => break e,
            }
        };
        assert!(data.starts_with(&got), "the received bytes are not a prefix of the sent ones");
        assert!(matches!(end, StreamError::Broken(_) | StreamError::EndOfStream), "{end:?}");
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// R2: half-close

#[anyio::test]
async fn r2_after_send_eof_the_server_reads_everything_then_its_full_reply_arrives() {
    guarded_ok(async {
        let (client, server) = pair().await;
        let request = Arc::new(pattern(MIB, 21));
        let reply = Arc::new(pattern(MIB, 22));
        let (request2, reply2) = (request.clone(), reply.clone());
        task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                let got = receive_n(&server, MIB).await?;
                assert!(got == *request2, "the request differs from what was sent");
                let end = server.receive(100).await;
                assert!(matches!(end, Err(StreamError::EndOfStream)), "{end:?}");
                server.send(&reply2).await?; // the half-closed direction does not stop replies
                server.aclose().await?;
                Ok(())
            });
            client.send(&request).await?;
            client.send_eof().await?;
            client.send_eof().await?; // twice is fine
            let got = receive_n(&client, MIB).await?;
            assert!(got == *reply, "the reply differs from what was sent");
            assert!(matches!(client.receive(100).await, Err(StreamError::EndOfStream)));
            Ok(())
        })
        .await
        .map_err(AnyError::other)?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn r2_send_after_send_eof_fails_with_closed() {
    // This side shut its sending direction, so the error is `Closed` (the reliability plan's
    // R2, trio's ClosedResourceError), not the kernel's EPIPE reported as `Broken`.
    guarded_ok(async {
        let (client, server) = pair().await;
        client.send_eof().await?;
        let r = client.send(b"late").await;
        assert!(matches!(r, Err(StreamError::Closed)), "expected Closed, got {r:?}");
        // The receive direction is untouched.
        server.send(b"still open").await?;
        assert_eq!(receive_n(&client, 10).await?, b"still open");
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// R3: slow reader backpressure

/// Counts the times the wrapped future returned `Pending`.
struct CountPending<'a, F> {
    inner: Pin<Box<F>>,
    pending: &'a AtomicUsize,
}

impl<F: Future> Future for CountPending<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let r = self.inner.as_mut().poll(cx);
        if r.is_pending() {
            self.pending.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
}

#[anyio::test]
async fn r3_a_sender_to_a_slow_reader_blocks_within_the_socket_buffers_and_every_byte_arrives() {
    const TOTAL: usize = 64 * MIB;
    const CHUNK: usize = 64 * 1024;
    // The kernel's send and receive buffers together; the sender may never get further ahead.
    const BOUND: usize = 16 * MIB;
    // A cycle longer than any chunk, of a length that is no multiple of the chunk size, so a
    // lost, repeated or reordered chunk shows as a mismatch.
    const CYCLE: usize = MIB + 13;
    guarded_long_ok(async {
        let (client, server) = pair().await;
        let cycle = {
            let mut c = pattern(CYCLE, 31);
            c.extend_from_within(..CHUNK);
            Arc::new(c) // the cycle plus its first chunk, so any window of CHUNK bytes is a slice
        };
        let sent = Arc::new(AtomicUsize::new(0));
        let blocked = Arc::new(AtomicUsize::new(0));
        let (cycle2, sent2, blocked2) = (cycle.clone(), sent.clone(), blocked.clone());
        task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                let mut off = 0;
                while off < TOTAL {
                    let n = CHUNK.min(TOTAL - off);
                    let start = off % CYCLE;
                    let chunk = &cycle2[start..start + n];
                    CountPending { inner: Box::pin(client.send(chunk)), pending: &blocked2 }.await?;
                    off += n;
                    sent2.store(off, Ordering::SeqCst);
                }
                client.send_eof().await?;
                Ok(())
            });

            // Read nothing until the sender has blocked: the buffers are full.
            wait_nonzero(&blocked).await?;
            let ahead_when_blocked = sent.load(Ordering::SeqCst);
            assert!(ahead_when_blocked < BOUND, "the sender got {ahead_when_blocked} bytes ahead before blocking");

            let mut received = 0;
            let mut max_ahead = 0;
            let mut next_pause = 256 * 1024;
            loop {
                let chunk = match server.receive(CHUNK).await {
                    Ok(c) => c,
                    Err(StreamError::EndOfStream) => break,
                    Err(e) => return Err(e.into()),
                };
                let start = received % CYCLE;
                assert!(chunk == cycle[start..start + chunk.len()], "bytes lost or reordered at offset {received}");
                received += chunk.len();
                let ahead = sent.load(Ordering::SeqCst).saturating_sub(received);
                max_ahead = max_ahead.max(ahead);
                assert!(ahead < BOUND, "the sender got {ahead} bytes ahead of the reader");
                if received >= next_pause {
                    next_pause += 256 * 1024;
                    sleep(Duration::from_millis(1)).await?; // the slow reader
                }
            }
            assert_eq!(received, TOTAL);
            eprintln!(
                "r3: blocked after {ahead_when_blocked} bytes; at most {max_ahead} bytes in flight; {} blocked polls",
                blocked.load(Ordering::SeqCst)
            );
            Ok(())
        })
        .await
        .map_err(AnyError::other)?;
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// R7: many concurrent connections

/// Counts live handlers: one more while a handler exists.
struct Alive(Arc<AtomicUsize>);
impl Alive {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}
impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `n` clients at once against one `serve`d echo listener: each connects, sends 1 KiB of its
/// own bytes, reads the echo back, compares and closes.
async fn echo_storm(n: usize) -> Result<(), AnyError> {
    let listener =
        create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1").backlog(4096)).await?;
    let port = listener.extra::<LocalPort>()?;
    let alive = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let succeeded = Arc::new(AtomicUsize::new(0));
    let scope = CancelScope::new();
    let (alive2, finished2, succeeded2, scope2) =
        (alive.clone(), finished.clone(), succeeded.clone(), scope.clone());
    let finished_seen = finished.clone();
    task_group(|tg: TaskGroup<AnyError>| async move {
        let server = tg.spawn(async move {
            let handler = move |stream: TcpStream| {
                let (live, finished) = (Alive::new(&alive2), finished2.clone());
                async move {
                    let _live = live;
                    loop {
                        match stream.receive(65536).await {
                            Ok(data) => stream.send(&data).await?,
                            Err(StreamError::EndOfStream) => break,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, AnyError>(())
                }
            };
            scope2.run(listener.serve(handler)).await.map_err(AnyError::other)?;
            Ok(())
        });
        for i in 0..n {
            let succeeded = succeeded2.clone();
            tg.spawn(async move {
                let c = connect_tcp("127.0.0.1", port).await?;
                let msg = pattern(1024, i as u64 + 1);
                c.send(&msg).await?;
                let echo = receive_n(&c, msg.len()).await?;
                if echo != msg {
                    return Err(AnyError::msg(format!("client {i}: the echo differs from what it sent")));
                }
                c.aclose().await?;
                succeeded.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        }
        wait_count(&succeeded2, n).await?;
        // Every handler sees its client's end of stream and returns on its own.
        wait_count(&finished_seen, n).await?;
        scope.cancel();
        server.await?;
        Ok(())
    })
    .await
    .map_err(AnyError::other)?;
    assert_eq!(succeeded.load(Ordering::SeqCst), n);
    assert_eq!(finished.load(Ordering::SeqCst), n);
    assert_eq!(alive.load(Ordering::SeqCst), 0, "handlers outlived serve");
    Ok(())
}

#[anyio::test]
async fn r7_a_thousand_concurrent_connections_are_all_accepted_served_and_echoed() {
    guarded_long_ok(echo_storm(1000)).await;
}

/// Raises the soft limit on open files to at least `want` (and the hard limit, where allowed).
fn raise_nofile(want: libc::rlim_t) -> Result<(), String> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the rlimit it is given, which lives on this stack frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!("getrlimit failed: {}", io::Error::last_os_error()));
    }
    if lim.rlim_cur >= want {
        return Ok(());
    }
    let new = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max.max(want) };
    // SAFETY: setrlimit only reads the rlimit it is given, which lives on this stack frame.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
        return Err(format!(
            "RLIMIT_NOFILE is {}/{} (soft/hard) and cannot be raised to {want}: {}",
            lim.rlim_cur,
            lim.rlim_max,
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The 10k variants of the backends take turns: each needs 20,000 descriptors of its own.
static TEN_K: async_lock::Mutex<()> = async_lock::Mutex::new(());

#[anyio::test]
#[ignore = "R7 at full size: 10,000 connections, needs RLIMIT_NOFILE >= 25,000 (run on the device/nightly)"]
async fn r7_ten_thousand_concurrent_connections_are_all_accepted_served_and_echoed() {
    if let Err(why) = raise_nofile(25_000) {
        eprintln!("skipped: {why}");
        return;
    }
    let _turn = TEN_K.lock().await;
    guarded_long_ok(echo_storm(10_000)).await;
}

// ---------------------------------------------------------------------------------------------
// R9: oversized receive_until

#[anyio::test]
async fn r9_receive_until_gives_up_at_max_bytes_without_buffering_the_rest_of_the_stream() {
    const MAX: usize = 65536;
    guarded_ok(async {
        let (client, server) = pair().await;
        let reader = BufferedByteReceiveStream::new(server);
        task_group(|tg: TaskGroup<AnyError>| async move {
            // 1 MiB without a newline, in chunks of 1 B to 64 KiB, and the connection stays open.
            tg.spawn(async move {
                let sizes = [1, 7, 100, 4096, 65536, 333, 1500, 20000];
                let mut sent = 0;
                for size in sizes.iter().cycle() {
                    let n = (*size).min(MIB - sent);
                    client.send(&vec![b'x'; n]).await?;
                    sent += n;
                    if sent == MIB {
                        break;
                    }
                }
                anyio::time::sleep_forever().await?;
                Ok(())
            });
            let r = reader.receive_until(b"\n", MAX).await;
            assert!(matches!(r, Err(StreamError::DelimiterNotFound { max_bytes: MAX })), "{r:?}");
            let buffered = reader.buffer().len();
            // Enough to know the delimiter is not within max_bytes, and at most one read more.
            assert!(buffered >= MAX, "gave up after only {buffered} bytes");
            assert!(buffered <= MAX + 1 + 65536, "buffered {buffered} bytes for a {MAX}-byte limit");
            tg.cancel();
            Ok(())
        })
        .await
        .map_err(AnyError::other)?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn r9_a_delimiter_split_across_two_sends_is_found_and_what_follows_stays_buffered() {
    guarded_ok(async {
        let (client, server) = pair().await;
        let reader = BufferedByteReceiveStream::new(server);
        client.send(b"abc\r").await?;
        sleep(SHORT).await?; // usually a separate segment, so the delimiter arrives in two reads
        client.send(b"\nnext\r\ntail").await?;
        assert_eq!(reader.receive_until(b"\r\n", 100).await?, b"abc");
        assert_eq!(reader.receive_until(b"\r\n", 100).await?, b"next");
        assert_eq!(reader.receive_exactly(4).await?, b"tail");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn r9_end_of_stream_before_the_delimiter_is_an_incomplete_read_that_keeps_the_bytes() {
    guarded_ok(async {
        let (client, server) = pair().await;
        let reader = BufferedByteReceiveStream::new(server);
        client.send(b"no newline").await?;
        client.send_eof().await?;
        let r = reader.receive_until(b"\n", 100).await;
        assert!(matches!(r, Err(StreamError::IncompleteRead)), "{r:?}");
        assert_eq!(reader.buffer(), b"no newline");
        Ok(())
    })
    .await;
}
