//! trio's generic stream checks (`trio/testing/_check_streams.py`: `check_one_way_stream`,
//! `check_two_way_stream`, `check_half_closeable_stream`) ported to anyio's byte-stream traits,
//! for any stream implementation.
//!
//! Every check takes a factory, an `async` closure or `async fn` returning a fresh connected
//! pair `(A, B)` each time it is called: what is sent on `A` arrives on `B` (and, for the
//! two-way checks, the reverse). Each check makes its own pairs, so one misbehaviour does not
//! hide the others; [`check_one_way_stream`], [`check_two_way_stream`] and
//! [`check_half_closeable_stream`] run them all, as trio's functions do, and
//! [`conformance_tests!`] turns them into one `#[anyio::test]` per check.
//!
//! Adapted to anyio's semantics:
//! - the end of the stream is [`StreamError::EndOfStream`], never an empty read; trio's
//!   `ClosedResourceError`, `BrokenResourceError` and `BusyResourceError` are
//!   [`StreamError::Closed`], [`StreamError::Broken`] and [`StreamError::Busy`];
//! - `receive_some(0)` is `receive(0)` and `receive_into` of an empty buffer, both
//!   [`StreamError::InvalidArgument`]; `receive_some(None)` and the type checks have no
//!   counterpart, nor has `wait_send_all_might_not_block`;
//! - `aclose_forcefully` is an `aclose` in a cancelled scope ([`aclose_forcefully`]);
//! - trio's clogged streams are made by sending until a send blocks (the peer never receives);
//!   a second concurrent send is `Busy` only where [`Config::busy_send`] says so (memory-backed
//!   chunk streams queue concurrent senders instead, as AnyIO's memory streams do);
//! - `assert_checkpoints` is not checked beyond "an operation in a cancelled scope fails with
//!   `Cancelled` and does nothing", and `wait_all_tasks_blocked` becomes a short sleep after the
//!   other task said it started: no assertion depends on how long anything takes;
//! - `send` after `send_eof` fails with [`StreamError::Closed`], as trio's `send_all` after
//!   `send_eof` does.
//!
//! A test file reaches this module next to its `support` module:
//!
//! ```ignore
//! mod support;
//! #[macro_use]
//! #[path = "support/conformance.rs"]
//! mod conformance;
//! ```
#![allow(dead_code)] // each test binary uses its own subset

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyio::{
    fail_after,
    lowlevel::checkpoint,
    sleep,
    streams::memory::create_memory_object_stream,
    streams::{AsyncResource, ByteReceiveStream, ByteSendStream, ByteStream, StreamError},
    task::TaskHandle,
    task_group, AnyError, CancelScope, TaskGroup,
};

use crate::support::{wait_for, SHORT};

/// Where a stream under test may legitimately differ from the others.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// A send started while another task's send waits fails with [`StreamError::Busy`]
    /// (sockets). When false, concurrent sends are queued and each is delivered whole
    /// (memory-backed chunk streams).
    pub(crate) busy_send: bool,
}

impl Config {
    /// TCP and Unix stream sockets: one task at a time per direction.
    pub(crate) const SOCKET: Config = Config { busy_send: true };
    /// Stapled memory byte streams: receiving is exclusive, sending is queued.
    pub(crate) const MEMORY: Config = Config { busy_send: false };
}

/// trio's `DUPLEX_TEST_SIZE`: what each side sends in the duplex check.
pub(crate) const DUPLEX_TEST_SIZE: usize = 1 << 20;
/// trio's `CHUNK_SIZE_MAX`: the largest random send or receive size.
pub(crate) const CHUNK_SIZE_MAX: usize = 1 << 14;
/// How long an operation blocked in another task may take to notice that its stream was
/// closed before the check reports it as never woken (a hang check, well inside the 10 s guard).
const WAKE_LIMIT: Duration = Duration::from_secs(3);
/// What a sender sends at a time to clog a stream whose peer does not receive.
const CLOG_CHUNK: usize = 64 << 10;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A small deterministic generator (xorshift64*): random chunk sizes without a dependency.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

/// `len` pseudo-random bytes (trio's `random.Random(0).getrandbits`).
pub(crate) fn test_data(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| (rng.next_u64() >> 56) as u8).collect()
}

/// Locks `m`, ignoring poisoning (a panicking check fails the test anyway).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `Result` for an assertion message, cut short (received chunks can be large).
fn show<T: Debug>(r: &Result<T, StreamError>) -> String {
    let s = format!("{r:?}");
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

/// Asserts that `$e` is `Err($pat)`, naming the operation and showing what it returned.
macro_rules! expect_err {
    ($e:expr, $pat:pat, $($what:tt)+) => {{
        let r = $e;
        assert!(
            matches!(r, Err($pat)),
            "{}: expected Err({}), got {}",
            format_args!($($what)+),
            stringify!($pat),
            show(&r)
        );
    }};
}

/// A fresh pair from `make`, each side shareable with spawned tasks.
async fn pair<F, A, B>(make: &F) -> (Arc<A>, Arc<B>)
where
    F: AsyncFn() -> (A, B),
{
    let (a, b) = make().await;
    (Arc::new(a), Arc::new(b))
}

/// The factory with its pair swapped, to run the one-way checks in the other direction
/// (trio's `flipped_stream_maker`).
pub(crate) fn flipped<F, A, B>(make: F) -> impl AsyncFn() -> (B, A)
where
    F: AsyncFn() -> (A, B),
{
    async move || {
        let (a, b) = make().await;
        (b, a)
    }
}

/// Runs a task-group body; any task's failure fails the caller.
async fn group(body: impl AsyncFnOnce(TaskGroup<AnyError>) -> Result<(), AnyError>) -> Result<(), AnyError> {
    task_group(|tg: TaskGroup<AnyError>| body(tg)).await?;
    Ok(())
}

/// trio's `aclose_forcefully`: `aclose` in an already cancelled scope, which must still close.
pub(crate) async fn aclose_forcefully<T: AsyncResource + ?Sized>(resource: &T) -> Result<(), AnyError> {
    anyio::streams::aclose_forcefully(resource)
        .await
        .map_err(|e| AnyError::msg(format!("aclose in a cancelled scope failed: {e}")))
}

/// Closes both sides normally; both must succeed.
async fn close_both<A: AsyncResource + ?Sized, B: AsyncResource + ?Sized>(
    a: &A,
    b: &B,
) -> Result<(), AnyError> {
    a.aclose().await?;
    b.aclose().await?;
    Ok(())
}

/// Receives exactly `n` bytes, however the stream splits them.
pub(crate) async fn receive_exactly<R: ByteReceiveStream + ?Sized>(
    r: &R,
    n: usize,
) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let max = n - out.len();
        let chunk = r.receive(max).await?;
        assert!(!chunk.is_empty() && chunk.len() <= max, "receive({max}) returned {} bytes", chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Sends `data` in chunks of random sizes (trio's duplex `sender`).
async fn send_in_chunks<S: ByteSendStream + ?Sized>(
    s: Arc<S>,
    data: Vec<u8>,
    seed: u64,
) -> Result<(), AnyError> {
    let mut rng = Rng::new(seed);
    let mut rest = &data[..];
    while !rest.is_empty() {
        let n = rng.range(1, CHUNK_SIZE_MAX).min(rest.len());
        s.send(&rest[..n]).await?;
        rest = &rest[n..];
    }
    Ok(())
}

/// Receives `len` bytes through receives of random sizes, alternating `receive` and
/// `receive_into`; each must return at least one byte and at most what was asked for (trio's
/// duplex `receiver`).
async fn receive_in_chunks<R: ByteReceiveStream + ?Sized>(
    r: &R,
    len: usize,
    seed: u64,
) -> Result<Vec<u8>, AnyError> {
    let mut rng = Rng::new(seed);
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0u8; CHUNK_SIZE_MAX];
    while got.len() < len {
        let max = rng.range(1, CHUNK_SIZE_MAX);
        if rng.next_u64() & 1 == 0 {
            let chunk = r.receive(max).await?;
            assert!(!chunk.is_empty() && chunk.len() <= max, "receive({max}) returned {} bytes", chunk.len());
            got.extend_from_slice(&chunk);
        } else {
            let n = r.receive_into(&mut buf[..max]).await?;
            assert!((1..=max).contains(&n), "receive_into of {max} bytes returned {n}");
            got.extend_from_slice(&buf[..n]);
        }
    }
    Ok(got)
}

/// Sends `data` from a task while receiving exactly as many bytes here, which must be `data`.
async fn roundtrip<S, R>(s: &Arc<S>, r: &R, data: &[u8]) -> Result<(), AnyError>
where
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + ?Sized,
{
    let (s2, owned) = (s.clone(), data.to_vec());
    group(async move |tg| {
        tg.spawn(async move {
            s2.send(&owned).await?;
            Ok(())
        });
        let got = receive_exactly(r, data.len()).await?;
        assert_eq!(got, data, "the bytes received are not the bytes sent");
        Ok(())
    })
    .await
}

/// Sends `chunk` over and over until a send fails, and returns that failure. A send that
/// blocks for good (a clogged stream) ends with the enclosing scope's cancellation.
async fn send_until_error<S: ByteSendStream + ?Sized>(s: &S, chunk: &[u8]) -> StreamError {
    loop {
        if let Err(e) = s.send(chunk).await {
            return e;
        }
    }
}

/// Awaits `handle`, failing with a message naming `what` if it does not finish within
/// [`WAKE_LIMIT`] (the task is then cancelled with its group).
async fn woken<T: Send + 'static>(handle: TaskHandle<T>, what: &str) -> Result<T, AnyError> {
    match fail_after(WAKE_LIMIT, async { Ok::<_, AnyError>(handle.await?) }).await {
        Err(e) if e.is_timeout() => {
            Err(AnyError::msg(format!("{what} was never woken (still waiting after {WAKE_LIMIT:?})")))
        }
        r => r,
    }
}

/// Spawns `op` on `stream` in a task that first raises a flag; returns once the flag is up and
/// the task had a moment to block (trio's `wait_all_tasks_blocked`; nothing depends on it).
async fn spawn_blocked<T, Fut>(tg: &TaskGroup<AnyError>, op: Fut) -> Result<TaskHandle<T>, AnyError>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let entered = Arc::new(AtomicBool::new(false));
    let entered2 = entered.clone();
    let handle = tg.spawn(async move {
        entered2.store(true, Ordering::SeqCst);
        Ok(op.await)
    });
    wait_for(&entered).await?;
    sleep(SHORT).await?;
    Ok(handle)
}

// ---------------------------------------------------------------------------------------------
// One-way checks: `A` sends, `B` receives

/// trio: `send_all(b"x")` arrives as `receive_some(1) == b"x"`; an empty send means nothing
/// (`b""` then `b"y"` arrives as `b"y"`); bytes sent in chunks of random sizes arrive complete
/// and in order through receives of random sizes, each returning `1..=max_bytes` bytes.
pub(crate) async fn check_send_and_receive<F, S, R>(make: F, _cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    roundtrip(&s, &*r, b"x").await?;
    let s2 = s.clone();
    group(async |tg| {
        tg.spawn(async move {
            s2.send(b"").await?;
            s2.send(b"y").await?;
            Ok(())
        });
        assert_eq!(r.receive(1).await?, b"y", "an empty send must not show up as anything");
        Ok(())
    })
    .await?;
    let data = test_data(256 << 10, 1);
    group(async |tg| {
        tg.spawn(send_in_chunks(s.clone(), data.clone(), 2));
        let got = receive_in_chunks(&*r, data.len(), 3).await?;
        assert!(got == data, "bytes sent in random chunks arrived out of order or changed");
        Ok(())
    })
    .await?;
    close_both(&*s, &*r).await
}

/// trio's `max_bytes` checks: `receive(0)` and `receive_into` of an empty buffer are
/// `InvalidArgument`; a receive returns at most `max_bytes`, leaving the rest for the next
/// receives; a large `max_bytes` returns what has arrived without waiting for more.
pub(crate) async fn check_receive_arguments<F, S, R>(make: F, _cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    expect_err!(r.receive(0).await, StreamError::InvalidArgument(_), "receive(0)");
    expect_err!(r.receive_into(&mut []).await, StreamError::InvalidArgument(_), "receive_into(&mut [])");
    let s2 = s.clone();
    group(async |tg| {
        tg.spawn(async move {
            s2.send(b"0123456789").await?;
            Ok(())
        });
        let mut got = r.receive(3).await?;
        assert!((1..=3).contains(&got.len()), "receive(3) returned {} bytes", got.len());
        let mut buf = [0u8; 4];
        while got.len() < 10 {
            let n = r.receive_into(&mut buf).await?;
            assert!((1..=4).contains(&n), "receive_into of 4 bytes returned {n}");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"0123456789");
        Ok(())
    })
    .await?;
    // The sender sends three bytes and nothing more: a receive waiting to fill 1 MiB would hang.
    let s2 = s.clone();
    group(async |tg| {
        tg.spawn(async move {
            s2.send(b"abc").await?;
            Ok(())
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            let chunk = r.receive(1 << 20).await?;
            assert!(!chunk.is_empty(), "a receive returned no bytes");
            got.extend(chunk);
        }
        assert_eq!(got, b"abc");
        Ok(())
    })
    .await?;
    close_both(&*s, &*r).await
}

/// trio: two concurrent `receive_some` calls, one of them fails with `BusyResourceError`. Then
/// the stream still works.
pub(crate) async fn check_concurrent_receive_is_busy<F, S, R>(make: F, _cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    let (tx, rx) = create_memory_object_stream::<Result<Vec<u8>, StreamError>>(2);
    group(async |tg| {
        for _ in 0..2 {
            let (r, tx) = (r.clone(), tx.clone());
            tg.spawn(async move {
                match r.receive(1).await {
                    Err(StreamError::Cancelled(_)) => {}
                    other => {
                        let _ = tx.try_send(other);
                    }
                }
                Ok(())
            });
        }
        // Nothing is ever sent: one receive waits for good, the other must be refused.
        let first = rx.receive().await.map_err(StreamError::from)?;
        expect_err!(first, StreamError::Busy(_), "a receive while another task receives");
        tg.cancel();
        Ok(())
    })
    .await?;
    roundtrip(&s, &*r, b"still works").await?;
    close_both(&*s, &*r).await
}

/// trio (clogged streams): two concurrent `send_all` calls on a stream that cannot take more,
/// one of them fails with `BusyResourceError`. Streams without [`Config::busy_send`] queue the
/// second send instead: both are delivered, each whole.
pub(crate) async fn check_concurrent_send<F, S, R>(make: F, cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    if cfg.busy_send {
        let (tx, rx) = create_memory_object_stream::<StreamError>(2);
        group(async |tg| {
            for _ in 0..2 {
                let (s, tx) = (s.clone(), tx.clone());
                tg.spawn(async move {
                    // The peer never receives: the sends clog the stream, and then one of the
                    // two tasks is waiting in its send while the other starts one.
                    match send_until_error(&*s, &[0u8; CLOG_CHUNK]).await {
                        StreamError::Cancelled(_) => {}
                        e => {
                            let _ = tx.try_send(e);
                        }
                    }
                    Ok(())
                });
            }
            let first = rx.receive().await.map_err(StreamError::from)?;
            assert!(
                matches!(first, StreamError::Busy(_)),
                "a send while another task sends: expected Busy, got {first:?}"
            );
            tg.cancel();
            Ok(())
        })
        .await?;
    } else {
        group(async |tg| {
            for tag in [b'a', b'b'] {
                let s = s.clone();
                tg.spawn(async move {
                    s.send(&[tag; 1000]).await?;
                    Ok(())
                });
            }
            let got = receive_exactly(&*r, 2000).await?;
            for tag in [b'a', b'b'] {
                let n = got.iter().filter(|&&b| b == tag).count();
                assert_eq!(n, 1000, "concurrent sends: {n} of the 1000 bytes {:?} arrived", tag as char);
            }
            Ok(())
        })
        .await?;
    }
    close_both(&*s, &*r).await
}

/// One `send` of 4 MiB completes while the peer receives concurrently (a send of more than
/// the stream buffers), and the bytes arrive in order.
pub(crate) async fn check_large_send<F, S, R>(make: F, _cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    let data = test_data(4 << 20, 4);
    let (s2, sent) = (s.clone(), data.clone());
    group(async |tg| {
        tg.spawn(async move {
            s2.send(&sent).await?;
            Ok(())
        });
        let got = receive_in_chunks(&*r, data.len(), 5).await?;
        assert!(got == data, "a large send arrived out of order or changed");
        Ok(())
    })
    .await?;
    close_both(&*s, &*r).await
}

/// trio: closing the receiving side makes the sender fail with `BrokenResourceError`
/// (eventually), and it stays broken; the closed receiver fails with `ClosedResourceError`;
/// closing again is fine; after closing the sender, sends fail with `ClosedResourceError`.
pub(crate) async fn check_closing_the_receiver_breaks_the_sender<F, S, R>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    let s2 = s.clone();
    group(async |tg| {
        let sending = spawn_blocked(&tg, async move { send_until_error(&*s2, &[b'x'; 100]).await }).await?;
        r.aclose().await?;
        let e = woken(sending, "a sender whose peer closed").await?;
        assert!(
            matches!(e, StreamError::Broken(_)),
            "sending to a closed receiver: expected Broken, got {e:?}"
        );
        Ok(())
    })
    .await?;
    expect_err!(s.send(&[b'x'; 100]).await, StreamError::Broken(_), "a send after the stream broke");
    expect_err!(r.receive(4096).await, StreamError::Closed, "a receive after aclose");
    r.aclose().await?;
    r.aclose().await?;
    s.aclose().await?;
    expect_err!(s.send(&[b'x'; 100]).await, StreamError::Closed, "a send after aclose");
    s.aclose().await?;
    s.aclose().await?;
    Ok(())
}

/// trio: after `aclose`, sends (even of no bytes) and receives fail with
/// `ClosedResourceError`, and `aclose` can be called again.
pub(crate) async fn check_operations_after_aclose_fail_with_closed<F, S, R>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    s.aclose().await?;
    r.aclose().await?;
    expect_err!(s.send(b"123").await, StreamError::Closed, "a send after aclose");
    expect_err!(s.send(b"").await, StreamError::Closed, "an empty send after aclose");
    expect_err!(r.receive(4096).await, StreamError::Closed, "a receive after aclose");
    expect_err!(r.receive_into(&mut [0u8; 16]).await, StreamError::Closed, "a receive_into after aclose");
    s.aclose().await?;
    r.aclose().await?;
    Ok(())
}

/// trio: data sent right before a graceful close arrives, then the end of the stream (trio's
/// `b""`), even when the sender closed before the receiver read anything; the end of the
/// stream is reported again on the next receive; once the receiver is closed, `Closed`.
pub(crate) async fn check_graceful_close_delivers_data_then_end_of_stream<F, S, R>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    let s2 = s.clone();
    group(async |tg| {
        // Let the sender get as far as it can (it may have to wait for the receive).
        spawn_blocked(&tg, async move {
            s2.send(b"y").await?;
            s2.aclose().await
        })
        .await?;
        assert_eq!(r.receive(1).await?, b"y");
        expect_err!(r.receive(1).await, StreamError::EndOfStream, "a receive after the sender closed");
        expect_err!(
            r.receive(1).await,
            StreamError::EndOfStream,
            "a second receive after the end of the stream"
        );
        Ok(())
    })
    .await?;
    r.aclose().await?;
    expect_err!(r.receive(1).await, StreamError::Closed, "a receive after the receiver's own aclose");
    Ok(())
}

/// trio: after a forceful close (a cancelled `aclose`) of the receiver, sends end with
/// `BrokenResourceError` and the receiver's receives with `ClosedResourceError`.
pub(crate) async fn check_forceful_close_of_the_receiver<F, S, R>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    aclose_forcefully(&*r).await?;
    let e = send_until_error(&*s, &[b'x'; 100]).await;
    assert!(
        matches!(e, StreamError::Broken(_)),
        "sending to a forcefully closed receiver: expected Broken, got {e:?}"
    );
    expect_err!(r.receive(4096).await, StreamError::Closed, "a receive after a forceful close");
    s.aclose().await?;
    Ok(())
}

/// trio: after a forceful close of the sender, its sends fail with `ClosedResourceError`, and
/// the receiver sees the end of the stream or a broken stream, never data or a hang.
pub(crate) async fn check_forceful_close_of_the_sender<F, S, R>(make: F, _cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    aclose_forcefully(&*s).await?;
    expect_err!(s.send(b"123").await, StreamError::Closed, "a send after a forceful close");
    expect_err!(
        r.receive(1).await,
        StreamError::EndOfStream | StreamError::Broken(_),
        "a receive after the sender closed forcefully"
    );
    r.aclose().await?;
    Ok(())
}

/// trio: an `aclose` in a cancelled scope still closes both sides.
pub(crate) async fn check_cancelled_aclose_still_closes<F, S, R>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    aclose_forcefully(&*r).await?;
    aclose_forcefully(&*s).await?;
    expect_err!(s.send(b"123").await, StreamError::Closed, "a send after a cancelled aclose");
    expect_err!(r.receive(4096).await, StreamError::Closed, "a receive after a cancelled aclose");
    Ok(())
}

/// trio: a send and a receive in a cancelled scope fail with `Cancelled`, and the stream can
/// still be closed gracefully afterwards. anyio adds that they did nothing: the next bytes
/// received are exactly the next bytes sent.
pub(crate) async fn check_cancelled_operations_do_nothing<F, S, R>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    let scope = CancelScope::new();
    scope.cancel();
    let out = scope
        .run(async {
            expect_err!(s.send(b"x").await, StreamError::Cancelled(_), "a send in a cancelled scope");
            expect_err!(r.receive(1).await, StreamError::Cancelled(_), "a receive in a cancelled scope");
            expect_err!(
                r.receive_into(&mut [0u8; 8]).await,
                StreamError::Cancelled(_),
                "a receive_into in a cancelled scope"
            );
            Ok::<_, StreamError>(())
        })
        .await;
    assert!(matches!(out, Ok(Some(()))), "{out:?}");
    roundtrip(&s, &*r, b"abc").await?;
    let s2 = s.clone();
    group(async |tg| {
        tg.spawn(async move {
            s2.aclose().await?;
            Ok(())
        });
        r.aclose().await?;
        Ok(())
    })
    .await
}

/// A receive cancelled while it waits loses no bytes: first one cancelled from another task
/// before anything was sent, then receives cancelled by another task at random points while
/// the sender streams 256 KiB, whose bytes must all arrive, in order.
pub(crate) async fn check_cancelled_receive_loses_no_data<F, S, R>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    let scope = CancelScope::new();
    let (r2, scope2) = (r.clone(), scope.clone());
    group(async |tg| {
        let receiving = spawn_blocked(&tg, async move { scope2.run(r2.receive(1024)).await }).await?;
        scope.cancel();
        let out = woken(receiving, "a receive whose scope was cancelled").await?;
        assert!(matches!(out, Ok(None)), "a cancelled receive with nothing sent: {}", show(&out));
        Ok(())
    })
    .await?;
    roundtrip(&s, &*r, b"hello").await?;

    // The sender paces itself with a few yields between chunks, so receives keep finding the
    // stream empty; a canceller task cancels whichever receive is running after a random
    // number of yields: receives are cancelled before they start, while they wait and (too late)
    // after they got bytes, which must then be returned.
    let data = test_data(256 << 10, 6);
    let current: Arc<Mutex<Option<CancelScope>>> = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    group(async |tg| {
        let (s2, sent) = (s.clone(), data.clone());
        tg.spawn(async move {
            let mut rng = Rng::new(7);
            let mut rest = &sent[..];
            while !rest.is_empty() {
                let n = rng.range(1, 4096).min(rest.len());
                s2.send(&rest[..n]).await?;
                rest = &rest[n..];
                for _ in 0..rng.range(0, 3) {
                    checkpoint().await?;
                }
            }
            Ok(())
        });
        let (current2, done2) = (current.clone(), done.clone());
        tg.spawn(async move {
            let mut rng = Rng::new(8);
            while !done2.load(Ordering::SeqCst) {
                for _ in 0..rng.range(1, 4) {
                    checkpoint().await?;
                }
                if let Some(scope) = lock(&current2).as_ref() {
                    scope.cancel();
                }
            }
            Ok(())
        });
        let mut rng = Rng::new(9);
        let mut got = Vec::with_capacity(data.len());
        let mut buf = vec![0u8; CHUNK_SIZE_MAX];
        while got.len() < data.len() {
            let max = rng.range(1, 4096);
            let into = rng.next_u64() & 1 == 0;
            let scope = CancelScope::new();
            *lock(&current) = Some(scope.clone());
            let buf = &mut buf;
            let r = &r;
            let out = scope
                .run(async move {
                    if into {
                        let n = r.receive_into(&mut buf[..max]).await?;
                        Ok::<_, StreamError>(buf[..n].to_vec())
                    } else {
                        r.receive(max).await
                    }
                })
                .await?;
            if let Some(chunk) = out {
                assert!(
                    !chunk.is_empty() && chunk.len() <= max,
                    "a receive of {max} returned {} bytes",
                    chunk.len()
                );
                got.extend_from_slice(&chunk);
            }
        }
        done.store(true, Ordering::SeqCst);
        assert!(got == data, "receives cancelled at random points lost, duplicated or reordered bytes");
        Ok(())
    })
    .await?;
    close_both(&*s, &*r).await
}

/// trio: closing a stream wakes a receive blocked on it in another task, which then fails with
/// `ClosedResourceError`.
pub(crate) async fn check_closing_wakes_a_blocked_receive<F, S, R>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await;
    let r2 = r.clone();
    group(async |tg| {
        let receiving = spawn_blocked(&tg, async move { r2.receive(10).await }).await?;
        r.aclose().await?;
        let out = woken(receiving, "a receive blocked in another task when its stream was closed").await?;
        expect_err!(out, StreamError::Closed, "a receive blocked when its stream was closed");
        Ok(())
    })
    .await?;
    s.aclose().await?;
    Ok(())
}

/// trio (clogged streams): closing a stream wakes a send blocked on it in another task, which
/// then fails with `ClosedResourceError`.
pub(crate) async fn check_closing_wakes_a_blocked_send<F, S, R>(make: F, _cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    let (s, r) = pair(&make).await; // `r` never receives, and stays open until the end
    let s2 = s.clone();
    group(async |tg| {
        let sending =
            spawn_blocked(&tg, async move { send_until_error(&*s2, &[0u8; CLOG_CHUNK]).await }).await?;
        s.aclose().await?;
        let e = woken(sending, "a send blocked in another task when its stream was closed").await?;
        assert!(
            matches!(e, StreamError::Closed),
            "a send blocked when its stream was closed: expected Closed, got {e:?}"
        );
        Ok(())
    })
    .await?;
    r.aclose().await?;
    Ok(())
}

/// Every one-way check (trio's `check_one_way_stream`), stopping at the first failure.
pub(crate) async fn check_one_way_stream<F, S, R>(make: F, cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (S, R),
    S: ByteSendStream + 'static,
    R: ByteReceiveStream + 'static,
{
    check_send_and_receive(&make, cfg).await?;
    check_receive_arguments(&make, cfg).await?;
    check_concurrent_receive_is_busy(&make, cfg).await?;
    check_concurrent_send(&make, cfg).await?;
    check_large_send(&make, cfg).await?;
    check_closing_the_receiver_breaks_the_sender(&make, cfg).await?;
    check_operations_after_aclose_fail_with_closed(&make, cfg).await?;
    check_graceful_close_delivers_data_then_end_of_stream(&make, cfg).await?;
    check_forceful_close_of_the_receiver(&make, cfg).await?;
    check_forceful_close_of_the_sender(&make, cfg).await?;
    check_cancelled_aclose_still_closes(&make, cfg).await?;
    check_cancelled_operations_do_nothing(&make, cfg).await?;
    check_cancelled_receive_loses_no_data(&make, cfg).await?;
    check_closing_wakes_a_blocked_receive(&make, cfg).await?;
    check_closing_wakes_a_blocked_send(&make, cfg).await
}

// ---------------------------------------------------------------------------------------------
// Two-way checks

/// trio's duplex check: each side sends 1 MiB in random chunks while receiving the other's
/// 1 MiB through receives of random sizes, all four at once; then closing one side gives the
/// other the end of the stream.
pub(crate) async fn check_duplex<F, A, B>(make: F, _cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (A, B),
    A: ByteStream + 'static,
    B: ByteStream + 'static,
{
    let (s1, s2) = pair(&make).await;
    let data = test_data(DUPLEX_TEST_SIZE, 0);
    let reversed: Vec<u8> = data.iter().rev().copied().collect();
    group(async |tg| {
        tg.spawn(send_in_chunks(s1.clone(), data.clone(), 0));
        tg.spawn(send_in_chunks(s2.clone(), reversed.clone(), 1));
        let (r1, expected) = (s1.clone(), reversed.clone());
        tg.spawn(async move {
            let got = receive_in_chunks(&*r1, expected.len(), 2).await?;
            assert!(got == expected, "the first side received the other's bytes out of order or changed");
            Ok(())
        });
        let got = receive_in_chunks(&*s2, data.len(), 3).await?;
        assert!(got == data, "the second side received the other's bytes out of order or changed");
        Ok(())
    })
    .await?;
    let closer = s1.clone();
    group(async |tg| {
        tg.spawn(async move {
            closer.aclose().await?;
            Ok(())
        });
        expect_err!(s2.receive(10).await, StreamError::EndOfStream, "a receive while the peer closes");
        s2.aclose().await?;
        Ok(())
    })
    .await
}

/// Both sides send 1 MiB in a single `send` at the same time, each receiving concurrently:
/// neither send may wait for the other to finish (no deadlock on full buffers).
pub(crate) async fn check_large_sends_both_ways_at_once<F, A, B>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (A, B),
    A: ByteStream + 'static,
    B: ByteStream + 'static,
{
    let (s1, s2) = pair(&make).await;
    let one = test_data(DUPLEX_TEST_SIZE, 9);
    let two = test_data(DUPLEX_TEST_SIZE, 10);
    group(async |tg| {
        let (a, d) = (s1.clone(), one.clone());
        tg.spawn(async move {
            a.send(&d).await?;
            Ok(())
        });
        let (b, d) = (s2.clone(), two.clone());
        tg.spawn(async move {
            b.send(&d).await?;
            Ok(())
        });
        let (a, expected) = (s1.clone(), two.clone());
        tg.spawn(async move {
            let got = receive_exactly(&*a, expected.len()).await?;
            assert!(got == expected, "the first side received the other's bytes out of order or changed");
            Ok(())
        });
        let got = receive_exactly(&*s2, one.len()).await?;
        assert!(got == one, "the second side received the other's bytes out of order or changed");
        Ok(())
    })
    .await?;
    close_both(&*s1, &*s2).await
}

/// Closing one side: the peer's receives see the end of the stream (again on the next call),
/// and its sends eventually fail with `Broken`.
pub(crate) async fn check_closing_one_side_ends_the_other<F, A, B>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (A, B),
    A: ByteStream + 'static,
    B: ByteStream + 'static,
{
    let (s1, s2) = pair(&make).await;
    s1.aclose().await?;
    expect_err!(s2.receive(10).await, StreamError::EndOfStream, "a receive after the peer closed");
    expect_err!(s2.receive(10).await, StreamError::EndOfStream, "a second receive after the peer closed");
    let e = send_until_error(&*s2, &[b'x'; 100]).await;
    assert!(matches!(e, StreamError::Broken(_)), "sending to a closed peer: expected Broken, got {e:?}");
    s2.aclose().await?;
    Ok(())
}

/// Every two-way check (trio's `check_two_way_stream`): the one-way checks in both
/// directions, then the duplex ones.
pub(crate) async fn check_two_way_stream<F, A, B>(make: F, cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (A, B),
    A: ByteStream + 'static,
    B: ByteStream + 'static,
{
    check_one_way_stream(&make, cfg).await?;
    check_one_way_stream(flipped(&make), cfg).await?;
    check_duplex(&make, cfg).await?;
    check_large_sends_both_ways_at_once(&make, cfg).await?;
    check_closing_one_side_ends_the_other(&make, cfg).await
}

// ---------------------------------------------------------------------------------------------
// Half-close checks

/// trio's half-close check: after `send(b"x")` and `send_eof`, the peer receives `b"x"` and
/// then the end of the stream (again on the next call); `send_eof` can be called again; the
/// other direction keeps working (256 KiB in random chunks, then its own `send_eof`); both
/// sides then close normally, and `send_eof` after `aclose` does not succeed at half-closing
/// anything: `Closed` (sockets) or a no-op `Ok` (stapled streams close their send half again).
pub(crate) async fn check_half_close<F, A, B>(make: F, _cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (A, B),
    A: ByteStream + 'static,
    B: ByteStream + 'static,
{
    let (s1, s2) = pair(&make).await;
    let sender = s1.clone();
    group(async |tg| {
        spawn_blocked(&tg, async move {
            sender.send(b"x").await?;
            sender.send_eof().await
        })
        .await?;
        assert_eq!(s2.receive(10).await?, b"x");
        expect_err!(s2.receive(10).await, StreamError::EndOfStream, "a receive after the peer's send_eof");
        expect_err!(
            s2.receive(10).await,
            StreamError::EndOfStream,
            "a second receive after the peer's send_eof"
        );
        Ok(())
    })
    .await?;
    s1.send_eof().await?; // idempotent

    let data = test_data(256 << 10, 11);
    let sender = s2.clone();
    let sent = data.clone();
    group(async |tg| {
        tg.spawn(async move {
            send_in_chunks(sender.clone(), sent, 12).await?;
            sender.send_eof().await?;
            Ok(())
        });
        let got = receive_in_chunks(&*s1, data.len(), 13).await?;
        assert!(got == data, "the direction still open after send_eof lost or reordered bytes");
        expect_err!(s1.receive(10).await, StreamError::EndOfStream, "a receive after the peer's send_eof");
        Ok(())
    })
    .await?;
    close_both(&*s1, &*s2).await?;
    let again = s1.send_eof().await;
    assert!(matches!(again, Ok(()) | Err(StreamError::Closed)), "send_eof after aclose: {}", show(&again));
    Ok(())
}

/// trio: "now sending is disallowed": a send after `send_eof` fails with `Closed`.
pub(crate) async fn check_send_after_send_eof_is_closed<F, A, B>(
    make: F,
    _cfg: Config,
) -> Result<(), AnyError>
where
    F: AsyncFn() -> (A, B),
    A: ByteStream + 'static,
    B: ByteStream + 'static,
{
    let (s1, s2) = pair(&make).await;
    s1.send_eof().await?;
    expect_err!(s2.receive(10).await, StreamError::EndOfStream, "a receive after the peer's send_eof");
    expect_err!(s1.send(b"y").await, StreamError::Closed, "a send after send_eof");
    close_both(&*s1, &*s2).await
}

/// Every half-close check (trio's `check_half_closeable_stream`): the two-way checks, then
/// the half-close ones.
pub(crate) async fn check_half_closeable_stream<F, A, B>(make: F, cfg: Config) -> Result<(), AnyError>
where
    F: AsyncFn() -> (A, B),
    A: ByteStream + 'static,
    B: ByteStream + 'static,
{
    check_two_way_stream(&make, cfg).await?;
    check_half_close(&make, cfg).await?;
    check_send_after_send_eof_is_closed(&make, cfg).await
}

// ---------------------------------------------------------------------------------------------
// Test generation

/// One `#[anyio::test]` per one-way check, for the pair factory `$make` (an expression, used
/// once per test) and a [`Config`].
macro_rules! one_way_conformance_tests {
    ($make:expr, $cfg:expr) => {
        #[anyio::test]
        async fn sends_and_receives_bytes_in_order() {
            $crate::support::guarded_ok($crate::conformance::check_send_and_receive($make, $cfg)).await;
        }
        #[anyio::test]
        async fn receive_honours_max_bytes_and_refuses_zero() {
            $crate::support::guarded_ok($crate::conformance::check_receive_arguments($make, $cfg)).await;
        }
        #[anyio::test]
        async fn a_second_concurrent_receive_is_busy() {
            $crate::support::guarded_ok($crate::conformance::check_concurrent_receive_is_busy($make, $cfg))
                .await;
        }
        #[anyio::test]
        async fn a_second_concurrent_send_is_busy_or_queued() {
            $crate::support::guarded_ok($crate::conformance::check_concurrent_send($make, $cfg)).await;
        }
        #[anyio::test]
        async fn a_large_send_completes_while_the_peer_receives() {
            $crate::support::guarded_ok($crate::conformance::check_large_send($make, $cfg)).await;
        }
        #[anyio::test]
        async fn closing_the_receiver_breaks_the_sender() {
            $crate::support::guarded_ok($crate::conformance::check_closing_the_receiver_breaks_the_sender(
                $make, $cfg,
            ))
            .await;
        }
        #[anyio::test]
        async fn operations_after_aclose_fail_with_closed() {
            $crate::support::guarded_ok($crate::conformance::check_operations_after_aclose_fail_with_closed(
                $make, $cfg,
            ))
            .await;
        }
        #[anyio::test]
        async fn a_graceful_close_delivers_the_data_then_end_of_stream() {
            $crate::support::guarded_ok(
                $crate::conformance::check_graceful_close_delivers_data_then_end_of_stream($make, $cfg),
            )
            .await;
        }
        #[anyio::test]
        async fn a_forceful_close_of_the_receiver_breaks_the_sender() {
            $crate::support::guarded_ok($crate::conformance::check_forceful_close_of_the_receiver(
                $make, $cfg,
            ))
            .await;
        }
        #[anyio::test]
        async fn a_forceful_close_of_the_sender_ends_the_receiver() {
            $crate::support::guarded_ok($crate::conformance::check_forceful_close_of_the_sender($make, $cfg))
                .await;
        }
        #[anyio::test]
        async fn a_cancelled_aclose_still_closes() {
            $crate::support::guarded_ok($crate::conformance::check_cancelled_aclose_still_closes(
                $make, $cfg,
            ))
            .await;
        }
        #[anyio::test]
        async fn cancelled_operations_do_nothing() {
            $crate::support::guarded_ok($crate::conformance::check_cancelled_operations_do_nothing(
                $make, $cfg,
            ))
            .await;
        }
        #[anyio::test]
        async fn a_cancelled_receive_loses_no_data() {
            $crate::support::guarded_ok($crate::conformance::check_cancelled_receive_loses_no_data(
                $make, $cfg,
            ))
            .await;
        }
        #[anyio::test]
        async fn closing_wakes_a_blocked_receive_with_closed() {
            $crate::support::guarded_ok($crate::conformance::check_closing_wakes_a_blocked_receive(
                $make, $cfg,
            ))
            .await;
        }
        #[anyio::test]
        async fn closing_wakes_a_blocked_send_with_closed() {
            $crate::support::guarded_ok($crate::conformance::check_closing_wakes_a_blocked_send($make, $cfg))
                .await;
        }
    };
}

/// A module `$name` of tests for a half-closeable byte stream: the one-way checks in both
/// directions (`a_to_b`, `b_to_a`), the two-way and the half-close checks, each its own
/// `#[anyio::test]` (so on every backend). `$make` is a path to the pair factory.
macro_rules! conformance_tests {
    (mod $name:ident, make = $make:path, config = $cfg:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            mod a_to_b {
                #[allow(unused_imports)]
                use super::*;
                one_way_conformance_tests!($make, $cfg);
            }

            mod b_to_a {
                #[allow(unused_imports)]
                use super::*;
                one_way_conformance_tests!($crate::conformance::flipped($make), $cfg);
            }

            #[anyio::test]
            async fn duplex_one_mib_each_way_in_random_chunks() {
                $crate::support::guarded_ok($crate::conformance::check_duplex($make, $cfg)).await;
            }
            #[anyio::test]
            async fn large_sends_both_ways_at_once_do_not_deadlock() {
                $crate::support::guarded_ok($crate::conformance::check_large_sends_both_ways_at_once(
                    $make, $cfg,
                ))
                .await;
            }
            #[anyio::test]
            async fn closing_one_side_ends_the_other() {
                $crate::support::guarded_ok($crate::conformance::check_closing_one_side_ends_the_other(
                    $make, $cfg,
                ))
                .await;
            }
            #[anyio::test]
            async fn send_eof_ends_one_direction_while_the_other_keeps_working() {
                $crate::support::guarded_ok($crate::conformance::check_half_close($make, $cfg)).await;
            }
            #[anyio::test]
            async fn a_send_after_send_eof_fails_with_closed() {
                $crate::support::guarded_ok($crate::conformance::check_send_after_send_eof_is_closed(
                    $make, $cfg,
                ))
                .await;
            }
        }
    };
}
