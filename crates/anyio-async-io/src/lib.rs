//! anyio's seam ([`anyio_core::rt`]) over the `async-io` reactor, shared by the backends
//! whose runtimes run their I/O and timers on it: smol and async-std. It lives in a crate of
//! its own so that anyio-core depends on no runtime.
//!
//! Users do not call this crate directly; backend crates call [`register_async_io`] from
//! `Runtime::register_io` and [`IoTimer::at`] from `Runtime::timer`.
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use anyio_core::rt::{BlockingJob, Interest, IoPhase, IoSource, Timer};

/// An `async-io` timer as an anyio [`Timer`].
///
/// # Examples
///
/// ```
/// let timer = anyio_async_io::IoTimer::at(std::time::Instant::now());
/// # drop(timer);
/// ```
#[derive(Debug)]
pub struct IoTimer(async_io::Timer);

impl IoTimer {
    /// A timer that fires at `deadline`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use anyio::rt::Timer;
    /// use anyio_async_io::IoTimer;
    /// let deadline = Instant::now() + Duration::from_millis(20);
    /// let mut timer = Box::pin(IoTimer::at(deadline));
    /// // async-io's reactor runs anywhere, so its own block_on is enough here.
    /// async_io::block_on(std::future::poll_fn(|cx| timer.as_mut().poll_expired(cx)));
    /// assert!(Instant::now() >= deadline);
    /// ```
    pub fn at(deadline: Instant) -> Self {
        IoTimer(async_io::Timer::at(deadline))
    }
}

impl Timer for IoTimer {
    fn poll_expired(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }

    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.set_at(deadline);
    }
}

/// Registers `fd` with the `async-io` reactor (the body of `Runtime::register_io` for smol and
/// async-std).
///
/// # Examples
///
/// ```
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// a.set_nonblocking(true).unwrap();
/// let source = anyio_async_io::register_async_io(a.into()).unwrap();
/// # drop(source);
/// ```
pub fn register_async_io(fd: OwnedFd) -> io::Result<Box<dyn IoSource>> {
    Ok(Box::new(AsyncIoSource(async_io::Async::new_nonblocking(fd)?)))
}

/// Runs `job` on smol-rs's blocking pool (the body of `Runtime::spawn_blocking` for smol and
/// async-std, whose own `unblock` uses the same pool). The pool grows and shrinks with demand,
/// and a thread it cannot start leaves the job queued for a busy thread rather than
/// panicking, so this never fails. Detached: the job reports its own outcome.
///
/// # Examples
///
/// ```
/// let (tx, rx) = std::sync::mpsc::channel();
/// anyio_async_io::spawn_blocking(Box::new(move || tx.send(6 * 7).unwrap())).unwrap();
/// assert_eq!(rx.recv().unwrap(), 42);
/// ```
pub fn spawn_blocking(job: BlockingJob) -> io::Result<()> {
    blocking::unblock(job).detach();
    Ok(())
}

#[derive(Debug)]
struct AsyncIoSource(async_io::Async<OwnedFd>);

impl IoSource for AsyncIoSource {
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        phase: IoPhase,
        op: &mut dyn FnMut() -> io::Result<bool>,
    ) -> Poll<io::Result<()>> {
        // An operation that waited consumes its event first. Otherwise the event would stay
        // recorded and make the next operation's wait return at once, after a try that fails,
        // for a second try that fails too: three system calls where two do (as async-io's own
        // `read_with` does, whose `Readable` future is new per wait). One that the core has
        // just tried goes straight to waiting: registering reports readiness that is already
        // there, so nothing is lost. A phase this adapter does not know assumes nothing.
        match phase {
            IoPhase::Tried => ready!(self.poll_ready(cx, interest))?,
            // Woken, but not necessarily by this descriptor: a task polls every operation it
            // waits in when any of them wakes it (two sockets under one `join!`), and the
            // peer may have made this one ready in the same poll, before the reactor could
            // say so. Waiting for the event would cost a reactor turn for data that is
            // already there, so try once; the wait stays registered if that fails.
            IoPhase::Resumed if self.poll_ready(cx, interest)?.is_pending() => {
                return attempt(op).map_or(Poll::Pending, Poll::Ready);
            }
            _ => {}
        }
        // Otherwise try first: async-io reports an event only after a registration, so waiting
        // first would cost a reactor round trip for every operation that could have gone
        // through. At most two tries per poll, then yield: never a loop that holds the thread.
        for _ in 0..2 {
            // Drained or not, the next operation hears of it through its phase (the core
            // skips the try that would fail): async-io caches no readiness to clear.
            if let Some(done) = attempt(op) {
                return Poll::Ready(done);
            }
            ready!(self.poll_ready(cx, interest))?;
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn eager(&self, _interest: Interest) -> bool {
        // `poll_io` tries first anyway; trying in the core saves the call through the seam.
        true
    }

    fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
        match interest {
            Interest::Readable => self.0.poll_readable(cx),
            Interest::Writable => self.0.poll_writable(cx),
            other => Poll::Ready(Err(unsupported(other))),
        }
    }
}

/// Runs `op` once: `None` if it would block.
fn attempt(op: &mut dyn FnMut() -> io::Result<bool>) -> Option<io::Result<()>> {
    match op() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        done => Some(done.map(drop)),
    }
}

/// The error for a readiness kind newer than this adapter (`Interest` is non-exhaustive).
fn unsupported(interest: Interest) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("async-io cannot wait for {interest:?} readiness"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::task::Waker;

    /// The first operation of a task that two sockets share: it waits (nothing has arrived);
    /// then the peer writes and the operation is polled again before any reactor turn (the
    /// task was woken by its other socket). It must find the data now, not wait for the
    /// reactor to report what is already there (nothing here turns the reactor: waiting would
    /// be for ever).
    #[test]
    fn a_resumed_operation_finds_data_the_reactor_has_not_reported_yet() {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut reader = ours.try_clone().unwrap();
        let source = register_async_io(ours.into()).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut buf = [0u8; 8];
        let mut got = 0;
        let mut op = || -> io::Result<bool> {
            got = reader.read(&mut buf)?;
            Ok(true)
        };
        let waited = source.poll_io(&mut cx, Interest::Readable, IoPhase::Fresh, &mut op);
        assert!(waited.is_pending(), "nothing to read yet");
        peer.write_all(b"ping").unwrap();
        let resumed = source.poll_io(&mut cx, Interest::Readable, IoPhase::Resumed, &mut op);
        assert!(matches!(resumed, Poll::Ready(Ok(()))), "{resumed:?}");
        assert_eq!(got, 4);
    }

    /// A resumed operation that still finds nothing stays registered and pending.
    #[test]
    fn a_resumed_operation_with_nothing_to_do_keeps_waiting() {
        let (ours, _peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut reader = ours.try_clone().unwrap();
        let source = register_async_io(ours.into()).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut op = || -> io::Result<bool> { reader.read(&mut [0u8; 8]).map(|_| true) };
        assert!(source.poll_io(&mut cx, Interest::Readable, IoPhase::Fresh, &mut op).is_pending());
        assert!(source.poll_io(&mut cx, Interest::Readable, IoPhase::Resumed, &mut op).is_pending());
    }
}
