//! Receiving Unix signals (AnyIO's `open_signal_receiver`), and turning Ctrl+C into
//! cancellation of an application's main task.
//!
//! A receiver subscribes to a set of signals for as long as it lives. Its handler only records
//! the signal and writes a byte to a pipe the runtime's reactor watches, so receiving is an
//! ordinary cancellable wait on every backend. Signals that arrive while nobody looks are
//! coalesced per signal, as trio's are: a receiver yields each pending signal once, in the order
//! they first arrived. Every open receiver sees every signal it subscribed to. When the last
//! receiver of a signal closes, the signal's earlier disposition is back in force (a SIGTERM
//! kills the process again).
//!
//! ```no_run
//! # anyio::run(async {
//! use anyio::signal::{open_signal_receiver, Signal};
//! let mut signals = open_signal_receiver(&[Signal::SIGTERM, Signal::SIGHUP])?;
//! while let Ok(sig) = signals.receive().await {
//!     if sig == Signal::SIGHUP {
//!         println!("reloading");
//!     } else {
//!         break;
//!     }
//! }
//! # Ok::<_, anyio::signal::SignalError>(())
//! # });
//! ```

mod interrupt;
pub(crate) mod registry;

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::{AnyError, AsCancelled, Cancelled};
use crate::net::error::OpError;
use crate::net::io::{Dir, IoCore, OpWait};

pub use interrupt::{interruptible, Interrupted, Interruptible};
pub(crate) use registry::drain;

/// A Unix signal number.
///
/// The constants name the common ones; [`Signal::from_raw`] takes any other valid number
/// (real-time signals included).
///
/// # Examples
///
/// ```
/// use anyio::signal::Signal;
/// assert_eq!(Signal::SIGTERM.to_string(), "SIGTERM");
/// assert_eq!(Signal::from_raw(Signal::SIGINT.as_raw()).unwrap(), Signal::SIGINT);
/// assert!(Signal::from_raw(0).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(libc::c_int);

macro_rules! signals {
    ($($name:ident: $doc:literal),* $(,)?) => {
        impl Signal {
            $(
                #[doc = $doc]
                pub const $name: Signal = Signal(libc::$name);
            )*
        }

        fn signal_name(raw: libc::c_int) -> Option<&'static str> {
            $(if raw == libc::$name { return Some(stringify!($name)); })*
            None
        }
    };
}

signals! {
    SIGHUP: "Hangup: the terminal went away, or (by convention) reload the configuration.",
    SIGINT: "Interrupt from the keyboard (Ctrl+C).",
    SIGQUIT: "Quit from the keyboard (Ctrl+\\).",
    SIGILL: "Illegal instruction (cannot be received).",
    SIGTRAP: "Trace or breakpoint trap.",
    SIGABRT: "Abort, as `abort(3)` raises.",
    SIGBUS: "Bus error (cannot be received).",
    SIGFPE: "Arithmetic error (cannot be received).",
    SIGKILL: "Kill: ends the process; cannot be caught (only sent).",
    SIGUSR1: "User-defined signal 1.",
    SIGSEGV: "Invalid memory reference (cannot be received).",
    SIGUSR2: "User-defined signal 2.",
    SIGPIPE: "Write to a pipe with no reader.",
    SIGALRM: "Timer from `alarm(2)`.",
    SIGTERM: "Termination request: the polite way to stop a process.",
    SIGCHLD: "A child process stopped or ended.",
    SIGCONT: "Continue if stopped.",
    SIGSTOP: "Stop the process; cannot be caught (only sent).",
    SIGTSTP: "Stop typed at the terminal (Ctrl+Z).",
    SIGTTIN: "Terminal input for a background process.",
    SIGTTOU: "Terminal output for a background process.",
    SIGURG: "Urgent condition on a socket.",
    SIGXCPU: "CPU time limit exceeded.",
    SIGXFSZ: "File size limit exceeded.",
    SIGVTALRM: "Virtual alarm clock.",
    SIGPROF: "Profiling timer expired.",
    SIGWINCH: "The terminal window changed size.",
    SIGIO: "I/O is possible on a descriptor.",
    SIGSYS: "Bad system call.",
}

/// Signals a handler cannot usefully catch: the kernel refuses SIGKILL and SIGSTOP, and
/// returning from a handler for a fault re-runs the faulting instruction.
const FORBIDDEN: [libc::c_int; 6] =
    [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

impl Signal {
    /// The signal with number `raw`.
    ///
    /// # Errors
    ///
    /// [`SignalError::Invalid`] if `raw` names no signal on this system (or one the C library
    /// keeps for itself).
    ///
    /// ```
    /// let usr1 = anyio::signal::Signal::from_raw(libc::SIGUSR1).unwrap();
    /// assert_eq!(usr1.as_raw(), libc::SIGUSR1);
    /// ```
    pub fn from_raw(raw: i32) -> Result<Signal, SignalError> {
        if (1..32).contains(&raw) || realtime().contains(&raw) {
            Ok(Signal(raw))
        } else {
            Err(SignalError::Invalid(raw))
        }
    }

    /// The signal's number.
    ///
    /// ```
    /// assert_eq!(anyio::signal::Signal::SIGINT.as_raw(), libc::SIGINT);
    /// ```
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// The signal's conventional name (`"SIGTERM"`), or `None` for a number without one here
    /// (a real-time signal).
    ///
    /// ```
    /// assert_eq!(anyio::signal::Signal::SIGHUP.name(), Some("SIGHUP"));
    /// ```
    pub fn name(self) -> Option<&'static str> {
        signal_name(self.0)
    }

    /// Whether a receiver may subscribe to this signal (not SIGKILL, SIGSTOP or a fault).
    ///
    /// ```
    /// use anyio::signal::Signal;
    /// assert!(Signal::SIGTERM.is_catchable());
    /// assert!(!Signal::SIGKILL.is_catchable());
    /// ```
    pub fn is_catchable(self) -> bool {
        !FORBIDDEN.contains(&self.0)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn realtime() -> std::ops::RangeInclusive<i32> {
    libc::SIGRTMIN()..=libc::SIGRTMAX()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn realtime() -> std::ops::RangeInclusive<i32> {
    #[allow(clippy::reversed_empty_ranges)]
    {
        1..=0
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl TryFrom<i32> for Signal {
    type Error = SignalError;
    fn try_from(raw: i32) -> Result<Self, SignalError> {
        Signal::from_raw(raw)
    }
}

impl From<Signal> for i32 {
    fn from(s: Signal) -> i32 {
        s.0
    }
}

/// Why a signal receiver could not be opened, or a receive failed.
///
/// # Examples
///
/// ```
/// use anyio::signal::{open_signal_receiver, Signal, SignalError};
/// # anyio::run(async {
/// let err = open_signal_receiver(&[Signal::SIGKILL]).unwrap_err();
/// assert!(matches!(err, SignalError::Forbidden(Signal::SIGKILL)));
/// # });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SignalError {
    /// The list of signals was empty.
    Empty,
    /// A number that is not a signal here.
    Invalid(i32),
    /// A signal no handler can receive (SIGKILL, SIGSTOP, or a fault such as SIGSEGV).
    Forbidden(Signal),
    /// The receive was cancelled by a cancel scope; nothing was lost (a pending signal stays
    /// pending).
    Cancelled(Cancelled),
    /// The operating system refused (out of descriptors, no reactor).
    Io(io::Error),
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::Empty => f.write_str("no signals given: open_signal_receiver needs at least one"),
            SignalError::Invalid(n) => write!(f, "{n} is not a valid signal number on this system"),
            SignalError::Forbidden(s) => write!(
                f,
                "{s} cannot be received: SIGKILL and SIGSTOP cannot be caught, and a handler for \
                 a fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE) would return into it"
            ),
            SignalError::Cancelled(c) => fmt::Display::fmt(c, f),
            SignalError::Io(e) => write!(f, "signal receiver failed: {e}"),
        }
    }
}

impl StdError for SignalError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SignalError::Cancelled(c) => Some(c),
            SignalError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl AsCancelled for SignalError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            SignalError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl From<Cancelled> for SignalError {
    fn from(c: Cancelled) -> Self {
        SignalError::Cancelled(c)
    }
}

impl From<SignalError> for AnyError {
    fn from(e: SignalError) -> Self {
        match e {
            SignalError::Cancelled(c) => AnyError::from(c),
            other => AnyError::other(other),
        }
    }
}

impl From<OpError> for SignalError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Cancelled(c) => SignalError::Cancelled(c),
            OpError::Io(e) => SignalError::Io(e),
            OpError::Closed | OpError::Busy(_) => {
                SignalError::Io(io::Error::other("the signal receiver's pipe was closed"))
            }
        }
    }
}

/// Checks a list of signals: not empty, each valid and catchable. Duplicates are dropped.
fn check_signals(signals: &[Signal]) -> Result<Vec<libc::c_int>, SignalError> {
    if signals.is_empty() {
        return Err(SignalError::Empty);
    }
    let mut raw = Vec::with_capacity(signals.len());
    for &s in signals {
        // A `Signal` is valid by construction; re-checked so that nothing is registered for a
        // list with one bad entry.
        Signal::from_raw(s.0)?;
        if !s.is_catchable() {
            return Err(SignalError::Forbidden(s));
        }
        if !raw.contains(&s.0) {
            raw.push(s.0);
        }
    }
    Ok(raw)
}

/// Starts receiving `signals` (AnyIO's `open_signal_receiver`): from now until the receiver is
/// dropped, each of them is delivered to it instead of having its default effect (a handler
/// another library installed earlier still runs as well).
///
/// Not async: subscribing never waits. Use the receiver inside the run that opened it (its
/// pipe is registered with that run's reactor).
///
/// # Errors
///
/// [`SignalError::Empty`] for an empty list, [`SignalError::Forbidden`] for a signal that
/// cannot be caught; then nothing at all was registered. [`SignalError::Io`] if the pipe cannot
/// be created or registered (outside a runtime with a reactor, say).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::signal::{open_signal_receiver, Signal};
/// let mut signals = open_signal_receiver(&[Signal::SIGUSR1])?;
/// // SAFETY: raise(3) only sends this process a signal, which the receiver catches.
/// unsafe { libc::raise(libc::SIGUSR1) };
/// assert_eq!(signals.receive().await?, Signal::SIGUSR1);
/// # Ok::<_, anyio::signal::SignalError>(())
/// # }).unwrap();
/// ```
pub fn open_signal_receiver(signals: &[Signal]) -> Result<SignalReceiver, SignalError> {
    let raw = check_signals(signals)?;
    SignalReceiver::subscribe(&raw, true).map_err(SignalError::Io)
}

/// Signals as they arrive: see [`open_signal_receiver`]. Also a
/// [`Stream`](futures_core::Stream) of `Result<Signal, SignalError>`.
///
/// Dropping it unsubscribes; the last receiver of a signal to go restores the signal's earlier
/// disposition, and raises again any of its signals that arrived but were not received.
///
/// A handler that was installed before anyio's first receiver of a signal keeps running too
/// (signal-hook-registry chains it), as well as the receiver getting the signal.
pub struct SignalReceiver {
    // Declared (so dropped) first: the actions are unregistered before the reading end closes,
    // so a handler never writes to a channel nobody can read.
    sub: registry::Subscription,
    core: IoCore,
    queue: VecDeque<Signal>,
    wait: OpWait,
}

impl fmt::Debug for SignalReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalReceiver")
            .field("subscription", &self.sub)
            .field("queued", &self.queue)
            .finish()
    }
}

impl SignalReceiver {
    /// Subscribes to raw, already checked signal numbers (the core's SIGCHLD watcher too, with
    /// `restore` off: see `registry::restores`).
    pub(crate) fn subscribe(raw: &[libc::c_int], restore: bool) -> io::Result<SignalReceiver> {
        let (sub, read) = registry::subscribe(raw, restore)?;
        let core = IoCore::new_nonblocking(read, ["receiving signals from", "writing to"])?;
        Ok(SignalReceiver { core, sub, queue: VecDeque::new(), wait: OpWait::new() })
    }

    /// Waits for the next signal. Signals that arrived since the last receive come first, in
    /// the order they first arrived, each once however often it was delivered.
    ///
    /// # Errors
    ///
    /// [`SignalError::Cancelled`] if the enclosing scope is cancelled.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled receive takes no signal, which the next receive yields.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::signal::{open_signal_receiver, Signal};
    /// let mut signals = open_signal_receiver(&[Signal::SIGUSR2])?;
    /// // SAFETY: raise(3) only sends this process a signal, which the receiver catches.
    /// unsafe { libc::raise(libc::SIGUSR2) };
    /// // SAFETY: as above.
    /// unsafe { libc::raise(libc::SIGUSR2) };
    /// // Coalesced: one SIGUSR2, however many arrived before the receive.
    /// assert_eq!(signals.receive().await?, Signal::SIGUSR2);
    /// # Ok::<_, anyio::signal::SignalError>(())
    /// # }).unwrap();
    /// ```
    pub fn receive(&mut self) -> impl Future<Output = Result<Signal, SignalError>> + Send + '_ {
        std::future::poll_fn(move |cx| self.poll_receive(cx))
    }

    /// The poll form of [`receive`](Self::receive).
    pub fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Result<Signal, SignalError>> {
        crate::cancel::current::check_current()?;
        if !self.queue.is_empty() {
            // Signals that arrived again while an earlier delivery still waits in the queue
            // are that delivery (trio's ordered dict holds each signal once); new ones queue.
            for sig in self.sub.shared.take_pending() {
                if !self.queue.contains(&Signal(sig)) {
                    self.queue.push_back(Signal(sig));
                }
            }
            return Poll::Ready(Ok(self.queue.pop_front().expect("not empty")));
        }
        let shared = &self.sub.shared;
        let got = self.core.poll_io(
            Dir::Receive,
            cx,
            &mut self.wait,
            |s| {
                // Drain first, then look: a delivery after the look writes a fresh byte.
                registry::drain(std::os::fd::AsRawFd::as_raw_fd(s));
                let pending = shared.take_pending();
                if pending.is_empty() {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(pending)
                }
            },
            |_| false,
        );
        match got {
            Poll::Ready(Ok(pending)) => {
                self.queue.extend(pending.into_iter().map(Signal));
                Poll::Ready(Ok(self.queue.pop_front().expect("at least one pending signal")))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The signals this receiver subscribed to (duplicates removed).
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::signal::{open_signal_receiver, Signal};
    /// let r = open_signal_receiver(&[Signal::SIGUSR1, Signal::SIGUSR1])?;
    /// assert_eq!(r.signals(), vec![Signal::SIGUSR1]);
    /// # Ok::<_, anyio::signal::SignalError>(())
    /// # }).unwrap();
    /// ```
    pub fn signals(&self) -> Vec<Signal> {
        self.sub.signals().into_iter().map(Signal).collect()
    }
}

impl Drop for SignalReceiver {
    /// Unsubscribes. Signals that arrived but were never received are not lost (trio's rule):
    /// where this was the signal's last receiver, its earlier disposition is back and the
    /// signal is raised again, so a pending SIGTERM still ends the process.
    fn drop(&mut self) {
        let restored = self.sub.release();
        if restored.is_empty() {
            return;
        }
        // After `release`: no handler adds to the stamps any more.
        let mut pending: Vec<libc::c_int> = self.queue.iter().map(|s| s.0).collect();
        for sig in self.sub.shared.take_pending() {
            if !pending.contains(&sig) {
                pending.push(sig);
            }
        }
        for sig in pending.into_iter().filter(|s| restored.contains(s)) {
            // SAFETY: raise(3) delivers the signal to this thread under the disposition that
            // was in force before anyio's receivers, as if they had never caught it.
            unsafe {
                libc::raise(sig);
            }
        }
    }
}

impl futures_core::Stream for SignalReceiver {
    type Item = Result<Signal, SignalError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_receive(cx).map(Some)
    }
}
