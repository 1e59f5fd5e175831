//! Exit detection: a pidfd registered with the reactor where the kernel has them, SIGCHLD
//! otherwise; and a reaper thread for children whose `Process` was dropped before they exited,
//! so that none is left a zombie.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Child;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// How this process learns that a child exited. `ANYIO_CHILD_WATCHER=sigchld` forces the
/// SIGCHLD path (so that it can be tested where pidfds exist); `pidfd` or nothing picks pidfds
/// when the kernel has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatcherKind {
    Pidfd,
    Sigchld,
}

pub(crate) fn watcher_kind() -> WatcherKind {
    static KIND: OnceLock<WatcherKind> = OnceLock::new();
    *KIND.get_or_init(|| match std::env::var("ANYIO_CHILD_WATCHER").as_deref() {
        Ok("sigchld") => WatcherKind::Sigchld,
        _ if cfg!(any(target_os = "linux", target_os = "android")) => WatcherKind::Pidfd,
        _ => WatcherKind::Sigchld,
    })
}

/// A pidfd for `pid`, or `None` where the kernel has none (before Linux 5.3) or the SIGCHLD
/// path is chosen.
pub(crate) fn pidfd(pid: u32) -> Option<OwnedFd> {
    if watcher_kind() != WatcherKind::Pidfd {
        return None;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let pid = rustix::process::Pid::from_raw(pid as i32)?;
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = pid;
        None
    }
}

/// Children still running when their `Process` was dropped, reaped by one thread as they
/// exit. The thread exists only while there are some.
struct Orphans {
    children: Vec<Child>,
    thread: bool,
}

static ORPHANS: Mutex<Orphans> = Mutex::new(Orphans { children: Vec::new(), thread: false });

/// Takes over a child that may still be running: it is reaped when it exits.
pub(crate) fn adopt(mut child: Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return; // exited and now reaped, or not ours to reap any more
    }
    let mut orphans = ORPHANS.lock().unwrap_or_else(PoisonError::into_inner);
    orphans.children.push(child);
    if !orphans.thread {
        orphans.thread = true;
        let spawned = std::thread::Builder::new().name("anyio-reaper".into()).spawn(reap_orphans);
        if spawned.is_err() {
            // No thread now: the next adoption tries again, and these stay queued meanwhile.
            orphans.thread = false;
        }
    }
}

/// The reaper thread: waits for SIGCHLD (or a second, in case a child exited before it was
/// adopted), reaps whatever exited, and ends when nothing is left.
fn reap_orphans() {
    let sub = crate::signal::registry::subscribe(&[libc::SIGCHLD], false).ok();
    loop {
        {
            let mut orphans = ORPHANS.lock().unwrap_or_else(PoisonError::into_inner);
            orphans.children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            if orphans.children.is_empty() {
                orphans.thread = false;
                return;
            }
        }
        match &sub {
            Some((_, read)) => {
                wait_readable(read, Duration::from_secs(1));
                crate::signal::drain(read.as_raw_fd());
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn wait_readable(fd: &OwnedFd, timeout: Duration) {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid `pollfd` for the length given; `poll` only writes its `revents`.
    unsafe {
        libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int);
    }
}

/// `io::Error` for a child that is no longer ours to wait for (someone else reaped it).
pub(crate) fn lost_child(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot wait for the child process: {e}"))
}
