//! Waiting for a raw descriptor to become readable or writable (AnyIO's `wait_readable`,
//! `wait_writable` and `notify_closing`).

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use atomic_waker::AtomicWaker;

use super::error::SocketError;
use super::io::{Dir, IoCore};
use crate::sync::BusyResourceError;

const ACTIONS: [&str; 2] = ["waiting for readability of", "waiting for writability of"];

/// One wait in progress: set `closing` and wake `waker` to end it with `Closed`.
#[derive(Default)]
struct Waiting {
    closing: AtomicBool,
    waker: AtomicWaker,
}

/// The waits in progress, by the caller's descriptor number and direction: at most one per
/// direction (AnyIO's rule; a second is `Busy`), found by `notify_closing`.
type Waits = HashMap<RawFd, [Option<Arc<Waiting>>; 2]>;

fn waits() -> std::sync::MutexGuard<'static, Waits> {
    static WAITS: OnceLock<Mutex<Waits>> = OnceLock::new();
    WAITS.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner)
}

/// A direction of a descriptor claimed for one wait; released when dropped.
struct Claim {
    fd: RawFd,
    dir: Dir,
    waiting: Arc<Waiting>,
}

impl Claim {
    fn new(fd: RawFd, dir: Dir) -> Result<Self, SocketError> {
        let mut waits = waits();
        let slot = &mut waits.entry(fd).or_default()[dir as usize];
        if slot.is_some() {
            return Err(SocketError::Busy(BusyResourceError::new(ACTIONS[dir as usize])));
        }
        let waiting = Arc::new(Waiting::default());
        *slot = Some(waiting.clone());
        Ok(Self { fd, dir, waiting })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut waits = waits();
        if let Some(slots) = waits.get_mut(&self.fd) {
            slots[self.dir as usize] = None;
            if slots.iter().all(Option::is_none) {
                waits.remove(&self.fd);
            }
        }
    }
}

/// Waits until `fd` (a socket, pipe, terminal, ...) is readable: data or end of file can be
/// read without blocking.
///
/// The descriptor is registered for the wait through a duplicate, so it stays as it is
/// (blocking mode included) and may be registered elsewhere too.
///
/// # Errors
///
/// - [`SocketError::Busy`] when another task is already waiting for the same descriptor (by
///   number) in the same direction;
/// - [`SocketError::Closed`] when [`notify_closing`] was called for it during the wait;
/// - [`SocketError::Io`] when the descriptor cannot be watched (a regular file, a closed
///   descriptor);
/// - [`SocketError::Cancelled`] when the enclosing cancel scope is cancelled.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::io::Write;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
/// b.write_all(b"x")?;
/// anyio::net::wait_readable(&a).await?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn wait_readable(fd: impl AsFd) -> Result<(), SocketError> {
    wait(fd, Dir::Receive).await
}

/// Waits until `fd` is writable without blocking. See [`wait_readable`], also for the errors.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// anyio::net::wait_writable(&a).await?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn wait_writable(fd: impl AsFd) -> Result<(), SocketError> {
    wait(fd, Dir::Send).await
}

/// Ends the [`wait_readable`] and [`wait_writable`] calls waiting for `fd` right now (in any
/// task): they return [`SocketError::Closed`]. Call it before closing a descriptor that
/// another task may be waiting for (AnyIO's `notify_closing`); waits that start later are not
/// affected. To close an anyio socket, call its `aclose` instead: operations blocked on it end
/// with `Closed` by themselves.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use anyio::{sleep, task_group, AnyError, net::{notify_closing, wait_readable, SocketError}};
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let (a, ended) = (Arc::new(a), Arc::new(AtomicBool::new(false)));
/// task_group(|tg| async move {
///     let (waiter, done) = (a.clone(), ended.clone());
///     tg.spawn(async move {
///         let r = wait_readable(&*waiter).await; // nothing to read: waits
///         assert!(matches!(r, Err(SocketError::Closed)));
///         done.store(true, Ordering::SeqCst);
///         Ok::<_, AnyError>(())
///     });
///     // Only a wait in progress hears it, so repeat until the waiter has.
///     while !ended.load(Ordering::SeqCst) {
///         notify_closing(&*a);
///         sleep(std::time::Duration::from_millis(1)).await?;
///     }
///     Ok::<_, AnyError>(())
/// })
/// .await?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub fn notify_closing(fd: impl AsFd) {
    let fd = fd.as_fd().as_raw_fd();
    let waiting: Vec<Arc<Waiting>> =
        waits().get(&fd).map(|slots| slots.iter().flatten().cloned().collect()).unwrap_or_default();
    // Woken after the registry's lock is released: a waker may run anything.
    for w in waiting {
        w.closing.store(true, Ordering::Release);
        w.waker.wake();
    }
}

async fn wait(fd: impl AsFd, dir: Dir) -> Result<(), SocketError> {
    crate::lowlevel::checkpoint_if_cancelled()?;
    let claim = Claim::new(fd.as_fd().as_raw_fd(), dir)?;
    // A duplicate: registering must not change the caller's descriptor (O_NONBLOCK is shared
    // by duplicates, so the duplicate is left in whatever mode it is).
    let dup = fd.as_fd().try_clone_to_owned()?;
    let core = IoCore::new_nonblocking(dup, ACTIONS)?;
    let mut ready = core.ready(dir);
    poll_fn(|cx| {
        // Registered before the flag is read, and `notify_closing` sets the flag before it
        // wakes: either this poll sees the flag or the wake reaches this waker.
        claim.waiting.waker.register(cx.waker());
        if claim.waiting.closing.load(Ordering::Acquire) {
            return std::task::Poll::Ready(Err(SocketError::Closed));
        }
        Pin::new(&mut ready).poll(cx).map_err(SocketError::from)
    })
    .await
}
