//! `IoCore`: one socket registered with the runtime's reactor, and the single place where a
//! socket operation becomes an anyio operation: a checkpoint that honours cancel scopes, refuses
//! a second task in the same direction (busy), and ends with `Closed` when this program closes
//! the socket, even for an operation already blocked in another task.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use socket2::{SockRef, Socket};

use crate::cancel::current::{check_current, register_current_after_check};
use crate::cancel::node::WaitRegistration;
use crate::coop;
use crate::rt::{self, Interest, IoPhase, IoSource};
use crate::sync::{InUse, ResourceGuard};

use super::error::OpError;

/// The direction an operation occupies: one task at a time per direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Receive = 0,
    Send = 1,
}

impl Dir {
    fn interest(self) -> Interest {
        match self {
            Dir::Receive => Interest::Readable,
            Dir::Send => Interest::Writable,
        }
    }
}

pub(crate) struct IoCore {
    /// `None` once closed: the source owns the descriptor, so taking it out deregisters and
    /// closes it. Operations hold the read lock only for one non-blocking system call.
    source: RwLock<Option<Box<dyn IoSource>>>,
    closed: AtomicBool,
    guards: [ResourceGuard; 2],
    /// The task blocked in each direction, woken when the socket is closed under it (the
    /// reactor would never wake it: the registration is gone). Lock-free: re-registering the
    /// same waker on every wait costs two atomic operations, a mutex about four times that.
    blocked: [AtomicWaker; 2],
    /// The source's descriptor as a socket2 socket, so that an attempt needs no call through
    /// the seam to find it. Never dropped (the source owns and closes the descriptor), and
    /// used only while the read lock shows the source still open.
    sock: ManuallyDrop<Socket>,
    /// Per direction, whether the source lets an operation try its system call before asking
    /// for readiness (`IoSource::eager`).
    eager: [bool; 2],
    /// Per direction, whether the last operation drained the socket (a short stream read): the
    /// next one then waits for readiness before its first try, which would fail.
    drained: [AtomicBool; 2],
}

impl std::fmt::Debug for IoCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoCore").field("fd", &self.raw_fd()).field("closed", &self.is_closed()).finish()
    }
}

impl IoCore {
    /// Registers `socket` (switched to non-blocking here) with the current runtime's reactor.
    pub(crate) fn new(socket: impl Into<OwnedFd>, actions: [&'static str; 2]) -> io::Result<Self> {
        let fd: OwnedFd = socket.into();
        SockRef::from(&fd).set_nonblocking(true)?;
        Self::new_nonblocking(fd, actions)
    }

    /// As [`new`](Self::new) for a socket created non-blocking (saves a system call per
    /// accepted connection).
    pub(crate) fn new_nonblocking(
        socket: impl Into<OwnedFd>,
        actions: [&'static str; 2],
    ) -> io::Result<Self> {
        let fd: OwnedFd = socket.into();
        // SAFETY: `fd` is open now and stays open for as long as the source that takes it
        // lives; the `ManuallyDrop` never closes it, and `sock` is only used while the source
        // is in place (under its read lock), so it never names a closed or reused descriptor.
        let sock = ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd.as_raw_fd()) });
        let source = rt::with_current(|rt| rt.register_io(fd))?;
        let eager = [source.eager(Interest::Readable), source.eager(Interest::Writable)];
        Ok(Self {
            eager,
            source: RwLock::new(Some(source)),
            closed: AtomicBool::new(false),
            guards: [ResourceGuard::new(actions[0]), ResourceGuard::new(actions[1])],
            blocked: [AtomicWaker::new(), AtomicWaker::new()],
            drained: [AtomicBool::new(false), AtomicBool::new(false)],
            sock,
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The descriptor number (meaningful only while open).
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Runs `f` on the socket now, without waiting (for options and addresses).
    pub(crate) fn with_socket<R>(&self, f: impl FnOnce(&Socket) -> io::Result<R>) -> Result<R, OpError> {
        let guard = self.source.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(OpError::Closed);
        }
        f(&self.sock).map_err(OpError::Io)
    }

    /// Runs the non-blocking system call `f` once, now, as an operation in direction `dir`
    /// (refused with `Busy` while another task's operation in that direction is in progress):
    /// `Ok(None)` when it would block. The reactor is not told: a readiness it still reports
    /// costs the next waiting operation one extra try, nothing more.
    pub(crate) fn try_io<R>(
        &self,
        dir: Dir,
        f: impl FnOnce(&Socket) -> io::Result<R>,
    ) -> Result<Option<R>, OpError> {
        let _in_use = self.guards[dir as usize].enter().map_err(OpError::Busy)?;
        match self.with_socket(f) {
            Ok(r) => Ok(Some(r)),
            Err(OpError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Closes the socket: later operations fail with `Closed`, and so do operations blocked
    /// in other tasks right now, which are woken. Idempotent.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let source = self.source.write().unwrap_or_else(PoisonError::into_inner).take();
        drop(source);
        // `closed` is set before the wake, and a waiter registers before it reads `closed`:
        // either it sees the flag or its waker is here to be woken.
        for w in &self.blocked {
            w.wake();
        }
    }

    /// Runs the non-blocking system call `f` until it does not return `WouldBlock`, waiting for
    /// readiness in direction `dir` between attempts.
    pub(crate) fn io<R, F>(&self, dir: Dir, f: F) -> IoOp<'_, IoAttempt<F, NeverDrains<R>>>
    where
        F: FnMut(&Socket) -> io::Result<R> + Unpin,
    {
        IoOp::new(self, dir, IoAttempt(f, |_| false))
    }

    /// As [`io`](Self::io) for a stream read: `drained` tells from its result whether it
    /// emptied the socket (returned less than its buffer), so that the next read waits first.
    pub(crate) fn read_io<R, F, D>(&self, f: F, drained: D) -> IoOp<'_, IoAttempt<F, D>>
    where
        F: FnMut(&Socket) -> io::Result<R> + Unpin,
        D: Fn(&R) -> bool + Unpin,
    {
        IoOp::new(self, Dir::Receive, IoAttempt(f, drained))
    }

    /// Waits until the reactor reports readiness in direction `dir` (the first wait after
    /// registering reflects the descriptor's current state).
    pub(crate) fn ready(&self, dir: Dir) -> IoOp<'_, ReadyAttempt> {
        IoOp::new(self, dir, ReadyAttempt)
    }

    /// One poll of an operation: cancelled? closed? try it; if it must wait, arrange to be
    /// woken by the reactor, by a close, or by a cancellation. `budgeted`: this poll spent a
    /// socket operation's share of the task's coop budget, which then bounds an eager first try
    /// (see `IoSource::eager`) as the runtime's own budget would have. Inlined into each
    /// operation's poll, as for `poll_op`.
    #[inline(always)]
    pub(crate) fn poll_attempt<A: Attempt>(
        &self,
        dir: Dir,
        cx: &mut Context<'_>,
        wait: &mut OpWait,
        attempt: &mut A,
        budgeted: bool,
    ) -> Poll<Result<A::Output, OpError>> {
        if let Err(c) = check_current() {
            return Poll::Ready(Err(OpError::Cancelled(c)));
        }
        {
            let guard = self.source.read().unwrap_or_else(PoisonError::into_inner);
            let Some(src) = guard.as_deref() else {
                return Poll::Ready(Err(OpError::Closed));
            };
            let (phase, try_first) = if wait.waiting {
                (IoPhase::Resumed, false)
            } else if self.drained[dir as usize].swap(false, Ordering::Relaxed) {
                // The last read emptied the socket: a try now would fail, as if made. Wait.
                (IoPhase::Tried, false)
            } else if budgeted && self.eager[dir as usize] {
                (IoPhase::Tried, true)
            } else {
                (IoPhase::Fresh, false)
            };
            if let Poll::Ready(done) = attempt.poll_once(src, &self.sock, cx, dir, phase, try_first) {
                wait.reg.clear();
                wait.waiting = false;
                let done = done.map(|(r, drained)| {
                    if drained {
                        self.drained[dir as usize].store(true, Ordering::Relaxed);
                    }
                    r
                });
                return Poll::Ready(done.map_err(OpError::Io));
            }
        }
        wait.waiting = true;
        self.blocked[dir as usize].register(cx.waker());
        if self.is_closed() {
            return Poll::Ready(Err(OpError::Closed));
        }
        if let Err(c) = register_current_after_check(&mut wait.reg, cx.waker()) {
            return Poll::Ready(Err(OpError::Cancelled(c)));
        }
        Poll::Pending
    }

    /// A poll-style operation for the `AsyncRead`/`AsyncWrite` adapters: the same protocol
    /// without the busy guard (`&mut self` already makes those exclusive) and without the
    /// budget.
    pub(crate) fn poll_io<R>(
        &self,
        dir: Dir,
        cx: &mut Context<'_>,
        wait: &mut OpWait,
        mut f: impl FnMut(&Socket) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<Result<R, OpError>> {
        self.poll_attempt(dir, cx, wait, &mut IoAttempt(&mut f, drained), false)
    }
}

impl Drop for IoCore {
    fn drop(&mut self) {
        // Deregister before the descriptor closes: the source drops its registration first.
        drop(self.source.get_mut().unwrap_or_else(PoisonError::into_inner).take());
    }
}

/// What an operation keeps between its polls.
#[derive(Debug)]
pub(crate) struct OpWait {
    reg: WaitRegistration,
    /// The previous poll waited for readiness, so this one resumes that wait (see
    /// [`IoSource::poll_io`]'s `resumed`).
    waiting: bool,
}

impl OpWait {
    pub(crate) fn new() -> Self {
        Self { reg: WaitRegistration::new(), waiting: false }
    }
}

/// What one poll of an operation tries on the registered source.
pub(crate) trait Attempt {
    type Output;
    /// `try_first`: the attempt may try its system call once before asking the source
    /// (`IoSource::eager`), which then hears `phase` (`Tried`) only if that try would block.
    /// The result comes with whether the operation drained the socket (a short stream read).
    fn poll_once(
        &mut self,
        src: &dyn IoSource,
        sock: &Socket,
        cx: &mut Context<'_>,
        dir: Dir,
        phase: IoPhase,
        try_first: bool,
    ) -> Poll<io::Result<(Self::Output, bool)>>;
}

/// The drain test of an operation that never drains a socket (anything but a stream read).
pub(crate) type NeverDrains<R> = fn(&R) -> bool;

/// A non-blocking system call, run through the source's readiness loop, and the test of its
/// result for a drained socket.
pub(crate) struct IoAttempt<F, D>(pub(crate) F, pub(crate) D);

impl<R, F: FnMut(&Socket) -> io::Result<R>, D: Fn(&R) -> bool> Attempt for IoAttempt<F, D> {
    type Output = R;

    #[inline(always)]
    fn poll_once(
        &mut self,
        src: &dyn IoSource,
        sock: &Socket,
        cx: &mut Context<'_>,
        dir: Dir,
        phase: IoPhase,
        try_first: bool,
    ) -> Poll<io::Result<(R, bool)>> {
        let IoAttempt(f, drained) = self;
        if try_first {
            match f(sock) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => {
                    return Poll::Ready(done.map(|r| {
                        let d = drained(&r);
                        (r, d)
                    }))
                }
            }
        }
        let mut out = None;
        let mut op = || {
            let r = f(sock)?;
            let d = drained(&r);
            out = Some((r, d));
            Ok(d)
        };
        match src.poll_io(cx, dir.interest(), phase, &mut op) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(out.take().expect("set by a successful op"))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Readiness alone, with no system call.
pub(crate) struct ReadyAttempt;

impl Attempt for ReadyAttempt {
    type Output = ();

    fn poll_once(
        &mut self,
        src: &dyn IoSource,
        _sock: &Socket,
        cx: &mut Context<'_>,
        dir: Dir,
        _phase: IoPhase,
        _try_first: bool,
    ) -> Poll<io::Result<((), bool)>> {
        src.poll_ready(cx, dir.interest()).map(|r| r.map(|()| ((), false)))
    }
}

/// One operation as a single hand-written future: the busy guard, the budget and
/// [`IoCore::poll_attempt`] in one state machine. Nesting async fns for the same steps cost
/// about a quarter more instructions per operation (measured with callgrind on ping-pong).
#[must_use = "futures do nothing unless polled"]
pub(crate) struct IoOp<'a, A> {
    core: &'a IoCore,
    dir: Dir,
    attempt: A,
    /// Held from the first poll until the operation ends.
    in_use: Option<InUse<'a>>,
    wait: OpWait,
}

impl<'a, A> IoOp<'a, A> {
    fn new(core: &'a IoCore, dir: Dir, attempt: A) -> Self {
        Self { core, dir, attempt, in_use: None, wait: OpWait::new() }
    }
}

impl<A: Attempt + Unpin> Future for IoOp<'_, A> {
    type Output = Result<A::Output, OpError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.core.poll_op(this.dir, cx, &mut this.in_use, &mut this.wait, &mut this.attempt)
    }
}

impl IoCore {
    /// One poll of an operation whose state (`in_use`, `wait`) its caller keeps: the busy
    /// guard, the budget, then [`poll_attempt`](Self::poll_attempt). What [`IoOp`] does, and
    /// the receive future that builds its attempt afresh on every poll (`ReceiveInto`).
    /// Inlined into both, as `IoOp::poll`'s body was (a call here measured ~40 instructions
    /// more per operation on ping-pong).
    #[inline(always)]
    pub(crate) fn poll_op<'a, A: Attempt>(
        &'a self,
        dir: Dir,
        cx: &mut Context<'_>,
        in_use: &mut Option<InUse<'a>>,
        wait: &mut OpWait,
        attempt: &mut A,
    ) -> Poll<Result<A::Output, OpError>> {
        let mut budgeted = false;
        if in_use.is_none() {
            match self.guards[dir as usize].enter() {
                Ok(guard) => *in_use = Some(guard),
                Err(busy) => return Poll::Ready(Err(OpError::Busy(busy))),
            }
            // An operation that completes at once spends the task's budget (see coop).
            match coop::poll_proceed(cx) {
                Poll::Ready(limited) => budgeted = limited,
                Poll::Pending => return Poll::Pending,
            }
        }
        let done = self.poll_attempt(dir, cx, wait, attempt, budgeted);
        if done.is_ready() {
            *in_use = None;
        }
        done
    }
}

/// `send` flags: never raise SIGPIPE for a peer that went away (the error says so instead).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// The most one `receive` returns (AnyIO's default `max_bytes`, and the UDP maximum).
pub(crate) const MAX_RECEIVE: usize = 65536;

thread_local! {
    /// Where `receive` reads before it knows how much arrived: one buffer per thread instead
    /// of one per waiting socket.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `recv` on this thread's scratch buffer (at most `cap` bytes, never zero-filled) and
/// returns the bytes it received in a `Vec` of their exact size, with `recv`'s extra result.
/// The buffer is allocated once per thread, so a socket that waits holds no buffer at all.
pub(crate) fn recv_to_vec<A>(
    cap: usize,
    recv: impl FnOnce(&mut [MaybeUninit<u8>]) -> io::Result<(usize, A)>,
) -> io::Result<(Vec<u8>, A)> {
    let cap = cap.min(MAX_RECEIVE);
    let copy_out = |scratch: &mut Vec<u8>| {
        scratch.clear();
        scratch.reserve(cap);
        let (n, extra) = recv(&mut scratch.spare_capacity_mut()[..cap])?;
        let n = n.min(cap);
        // SAFETY: `recv` initialised the first `n` bytes of the spare capacity (a system call
        // reports at most what it wrote, and never more than the slice it was given).
        unsafe { scratch.set_len(n) };
        Ok((scratch[..n].to_vec(), extra))
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => copy_out(&mut scratch),
        // Never nested in practice (`recv` is one system call); a fresh buffer keeps it sound.
        Err(_) => copy_out(&mut Vec::new()),
    })
}
