//! Subscriptions to signals: each one a pipe that its handler actions write to, and a stamp
//! per signal that records whether (and in what order) it arrived since the last look.
//!
//! signal-hook-registry installs the process's handlers, so ours coexist with other libraries'
//! (tokio's signal module uses the same registry). It never restores a signal's earlier
//! disposition, though, and trio's rule is that closing the last receiver puts it back: a
//! SIGTERM must kill the process again. So this module remembers each signal's disposition from
//! before its first subscription and puts it back, itself, when the last subscription ends,
//! and puts the registry's handler back when a new one begins.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use signal_hook_registry::SigId;

/// Arrival order across all signals, so that a receiver yields coalesced signals in the order
/// they first arrived (trio keeps them in an ordered dict).
static SEQ: AtomicU64 = AtomicU64::new(1);

/// Per signal number: how many subscriptions use it and the dispositions to switch between.
static SLOTS: Mutex<BTreeMap<libc::c_int, Slot>> = Mutex::new(BTreeMap::new());

struct Slot {
    users: usize,
    /// The disposition before anyio first subscribed to this signal.
    prior: libc::sigaction,
    /// The registry's handler, as installed by the first registration.
    ours: Option<libc::sigaction>,
    /// `prior` was put back when the last subscription ended.
    restored: bool,
}

pub(crate) fn disposition(sig: libc::c_int) -> io::Result<libc::sigaction> {
    // SAFETY: `sigaction` with a null new action only reads the current one into `old`, a
    // plain C struct that may start zeroed.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(old)
    }
}

fn set_disposition(sig: libc::c_int, action: &libc::sigaction) {
    // SAFETY: `action` was read by `sigaction` itself for this same signal, so it is a valid
    // disposition (a handler that is still installed elsewhere, SIG_DFL or SIG_IGN).
    unsafe {
        libc::sigaction(sig, action, std::ptr::null_mut());
    }
}

/// What the handler actions of one subscription share with its reader.
pub(crate) struct Shared {
    /// The pipe's write end: one byte per delivery wakes the reader (a full pipe already will).
    write: OwnedFd,
    /// Per subscribed signal: 0, or the arrival sequence number of its first pending delivery.
    stamps: Box<[(libc::c_int, AtomicU64)]>,
}

impl Shared {
    /// Runs inside a signal handler: atomics and `write(2)` only, both async-signal-safe.
    fn deliver(&self, index: usize) {
        let stamp = &self.stamps[index].1;
        if stamp.load(Ordering::Relaxed) == 0 {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let _ = stamp.compare_exchange(0, seq, Ordering::AcqRel, Ordering::Relaxed);
        }
        // SAFETY: the descriptor stays open for as long as this `Shared` lives, and the
        // registry drops an action (and its `Arc`) only after no handler runs it any more.
        // `send` with MSG_NOSIGNAL cannot raise SIGPIPE should the reading end already be
        // closed (a receiver being dropped while a signal arrives).
        #[cfg(any(target_os = "linux", target_os = "android"))]
        unsafe {
            libc::send(
                self.write.as_raw_fd(),
                [0u8].as_ptr().cast(),
                1,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            );
        }
        // SAFETY: as above; here the reading end is always closed after the action is gone
        // (see `SignalReceiver`'s field order), so no SIGPIPE either.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        unsafe {
            libc::write(self.write.as_raw_fd(), [0u8].as_ptr().cast(), 1);
        }
    }

    /// The signals delivered since the last call, each once, in the order they first arrived.
    pub(crate) fn take_pending(&self) -> Vec<libc::c_int> {
        let mut pending: Vec<(u64, libc::c_int)> = self
            .stamps
            .iter()
            .filter_map(|(sig, stamp)| match stamp.swap(0, Ordering::AcqRel) {
                0 => None,
                seq => Some((seq, *sig)),
            })
            .collect();
        pending.sort_unstable();
        pending.into_iter().map(|(_, sig)| sig).collect()
    }
}

/// Empties a non-blocking pipe's read end (the bytes carry nothing but "look again").
pub(crate) fn drain(fd: RawFd) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: `buf` is writable for its length; a bad descriptor only returns an error.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < buf.len() as isize {
            break;
        }
    }
}

/// A pipe that `signals`' handlers write to while this lives.
pub(crate) struct Subscription {
    pub(crate) shared: Arc<Shared>,
    ids: Vec<(libc::c_int, SigId)>,
    restore: bool,
}

impl Subscription {
    /// The signal numbers subscribed to.
    pub(crate) fn signals(&self) -> Vec<libc::c_int> {
        self.shared.stamps.iter().map(|(s, _)| *s).collect()
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let signals: Vec<_> = self.shared.stamps.iter().map(|(s, _)| *s).collect();
        f.debug_struct("Subscription").field("signals", &signals).finish()
    }
}

/// A pipe with both ends close-on-exec and non-blocking (the wake channel where there is no
/// MSG_NOSIGNAL).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(target_os = "freebsd")]
    {
        use rustix::pipe::PipeFlags;
        Ok(rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?)
    }
    #[cfg(not(target_os = "freebsd"))]
    {
        let (r, w) = rustix::pipe::pipe()?;
        for fd in [&r, &w] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
            rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)?;
        }
        Ok((r, w))
    }
}

/// The channel a subscription's actions wake its reader through: a socket pair on Linux, so the
/// handler can write with MSG_NOSIGNAL; a pipe elsewhere. Both ends non-blocking, close-on-exec.
fn wake_channel() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
        Ok(socketpair(AddressFamily::UNIX, SocketType::STREAM, flags, None)?)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        pipe()
    }
}

/// Whether anyio puts a signal's earlier disposition back when its last subscription ends. Not
/// for signals whose default is to be ignored (nothing is gained by restoring it, and another
/// library's later registration would be silenced), and never for anyio's own SIGCHLD watchers.
fn restores(sig: libc::c_int, restore: bool) -> bool {
    restore && ![libc::SIGCHLD, libc::SIGURG, libc::SIGWINCH, libc::SIGCONT].contains(&sig)
}

/// Subscribes to `signals` (valid, catchable and distinct: the caller checked). Returns the
/// subscription and the wake channel's reading end. `restore`: see [`restores`].
pub(crate) fn subscribe(signals: &[libc::c_int], restore: bool) -> io::Result<(Subscription, OwnedFd)> {
    let (read, write) = wake_channel()?;
    let shared =
        Arc::new(Shared { write, stamps: signals.iter().map(|&s| (s, AtomicU64::new(0))).collect() });
    let mut sub = Subscription { shared, ids: Vec::with_capacity(signals.len()), restore };
    let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
    for (index, &sig) in signals.iter().enumerate() {
        let slot = match slots.entry(sig) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(Slot { users: 0, prior: disposition(sig)?, ours: None, restored: false })
            }
        };
        if slot.users == 0 && slot.restored {
            // We put the earlier disposition back; unless someone changed it since, the
            // registry's handler (which believes itself installed) goes back in.
            if let Some(ours) = &slot.ours {
                if disposition(sig)?.sa_sigaction == slot.prior.sa_sigaction {
                    set_disposition(sig, ours);
                }
            }
            slot.restored = false;
        }
        let shared = Arc::clone(&sub.shared);
        // SAFETY: the action is async-signal-safe: it touches atomics and calls `write(2)`,
        // never allocates or locks (see `Shared::deliver`).
        let id = unsafe { signal_hook_registry::register_sigaction(sig, move |_| shared.deliver(index)) };
        match id {
            Ok(id) => {
                if slot.ours.is_none() {
                    slot.ours = Some(disposition(sig)?);
                }
                slot.users += 1;
                sub.ids.push((sig, id));
            }
            Err(e) => {
                drop(slots);
                drop(sub); // releases what was registered so far
                return Err(e);
            }
        }
    }
    Ok((sub, read))
}

impl Subscription {
    /// Unregisters every action; returns the signals whose earlier disposition is back in
    /// force as a result (this was their last subscription). Idempotent.
    pub(crate) fn release(&mut self) -> Vec<libc::c_int> {
        let mut restored = Vec::new();
        let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        for (sig, id) in self.ids.drain(..) {
            if let Some(slot) = slots.get_mut(&sig) {
                slot.users -= 1;
                if slot.users == 0 && restores(sig, self.restore) {
                    if let (Some(ours), Ok(now)) = (&slot.ours, disposition(sig)) {
                        // Only if the registry's handler is still the one in force, and it was
                        // not already in force before us (another library's registry user).
                        if now.sa_sigaction == ours.sa_sigaction
                            && slot.prior.sa_sigaction != ours.sa_sigaction
                        {
                            // Before unregistering: no moment with neither in force.
                            set_disposition(sig, &slot.prior);
                            slot.restored = true;
                            restored.push(sig);
                        }
                    }
                }
            }
            signal_hook_registry::unregister(id);
        }
        restored
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.release();
    }
}
