//! `Process`: a running child, its pipes, waiting for it and signalling it.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::{Mutex, PoisonError};

use crate::cancel::CancelScope;
use crate::net::error::OpError;
use crate::net::io::{Dir, IoCore};
use crate::signal::{Signal, SignalReceiver};
use crate::streams::AsyncResource;
use crate::sync::Lock;

use super::pipe::{PipeReceiveStream, PipeSendStream};
use super::reaper::{adopt, lost_child};
use super::{CommandLine, ProcessError};

/// A child process started by [`open_process`](super::open_process) (AnyIO's `Process`).
///
/// Its standard streams, when piped, are byte streams: borrow them
/// ([`stdin`](Self::stdin)...) or take them out to move into tasks
/// ([`take_stdin`](Self::take_stdin)...).
///
/// Dropping a `Process` closes its pipes and leaves the child running; it is reaped when it
/// exits, so it never stays a zombie. [`aclose`](Self::aclose) closes the pipes and waits.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::process::{open_process, ProcessOptions};
/// let p = open_process(["sh", "-c", "exit 3"], ProcessOptions::new()).await?;
/// assert_eq!(p.wait().await?, 3);
/// assert_eq!(p.returncode(), Some(3));
/// # Ok::<_, anyio::process::ProcessError>(())
/// # }).unwrap();
/// ```
pub struct Process {
    args: CommandLine,
    pid: u32,
    /// `None` only while dropping (handed to the reaper). Reaping happens only under this
    /// lock, so a signal sent under it never reaches a recycled pid.
    child: Mutex<Option<Child>>,
    /// A pidfd registered with the reactor, readable once the child exits; `None` on the
    /// SIGCHLD path.
    pidfd: Option<IoCore>,
    /// One task waits on the pidfd or SIGCHLD at a time; others queue here and find the status.
    waiting: Lock,
    stdin: Option<PipeSendStream>,
    stdout: Option<PipeReceiveStream>,
    stderr: Option<PipeReceiveStream>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("args", &self.args)
            .field("pid", &self.pid)
            .field("returncode", &self.returncode())
            .finish_non_exhaustive()
    }
}

/// Python's convention: the exit code, or minus the signal that killed the child.
pub(crate) fn returncode(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => -sig,
        (None, None) => -1,
    }
}

impl Process {
    pub(crate) fn new(
        args: CommandLine,
        child: Child,
        pidfd: Option<IoCore>,
        stdio: (Option<PipeSendStream>, Option<PipeReceiveStream>, Option<PipeReceiveStream>),
    ) -> Self {
        Self {
            args,
            pid: child.id(),
            child: Mutex::new(Some(child)),
            pidfd,
            waiting: Lock::new(),
            stdin: stdio.0,
            stdout: stdio.1,
            stderr: stdio.2,
        }
    }

    /// The child's process id.
    ///
    /// ```
    /// # anyio::run(async {
    /// let p = anyio::process::open_process(["true"], Default::default()).await?;
    /// assert!(p.pid() > 0);
    /// # p.wait().await?;
    /// # Ok::<_, anyio::process::ProcessError>(())
    /// # }).unwrap();
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line it was started with.
    ///
    /// ```
    /// # anyio::run(async {
    /// let p = anyio::process::open_process(["true"], Default::default()).await?;
    /// assert_eq!(p.args().to_string(), "true");
    /// # p.wait().await?;
    /// # Ok::<_, anyio::process::ProcessError>(())
    /// # }).unwrap();
    /// ```
    pub fn args(&self) -> &CommandLine {
        &self.args
    }

    /// The child's stdin, if it is a pipe and was not taken.
    pub fn stdin(&self) -> Option<&PipeSendStream> {
        self.stdin.as_ref()
    }

    /// The child's stdout, if it is a pipe and was not taken.
    pub fn stdout(&self) -> Option<&PipeReceiveStream> {
        self.stdout.as_ref()
    }

    /// The child's stderr, if it is a pipe and was not taken.
    pub fn stderr(&self) -> Option<&PipeReceiveStream> {
        self.stderr.as_ref()
    }

    /// Takes the stdin pipe out, to move it into another task.
    pub fn take_stdin(&mut self) -> Option<PipeSendStream> {
        self.stdin.take()
    }

    /// Takes the stdout pipe out, to move it into another task.
    pub fn take_stdout(&mut self) -> Option<PipeReceiveStream> {
        self.stdout.take()
    }

    /// Takes the stderr pipe out, to move it into another task.
    pub fn take_stderr(&mut self) -> Option<PipeReceiveStream> {
        self.stderr.take()
    }

    fn try_reap(&self) -> Result<Option<ExitStatus>, ProcessError> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        match child.as_mut() {
            Some(c) => c.try_wait().map_err(|e| ProcessError::Io(lost_child(e))),
            None => Err(ProcessError::Io(io::Error::other("the process was handed to the reaper"))),
        }
    }

    /// The exit status if the child has exited (reaping it then), else `None`. Never waits.
    ///
    /// ```
    /// # anyio::run(async {
    /// let p = anyio::process::open_process(["true"], Default::default()).await?;
    /// p.wait().await?;
    /// assert!(p.exit_status().unwrap().success());
    /// # Ok::<_, anyio::process::ProcessError>(())
    /// # }).unwrap();
    /// ```
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.try_reap().ok().flatten()
    }

    /// The return code if the child has exited: its exit code, or minus the number of the
    /// signal that killed it (Python's convention). `None` while it runs. Never waits.
    ///
    /// ```
    /// # anyio::run(async {
    /// let p = anyio::process::open_process(["sleep", "10"], Default::default()).await?;
    /// assert_eq!(p.returncode(), None);
    /// p.kill()?;
    /// assert_eq!(p.wait().await?, -9);
    /// # Ok::<_, anyio::process::ProcessError>(())
    /// # }).unwrap();
    /// ```
    pub fn returncode(&self) -> Option<i32> {
        self.exit_status().map(returncode)
    }

    /// Waits for the child to exit and returns its [`returncode`](Self::returncode). A
    /// checkpoint, even when the child already exited. Several tasks may wait at once.
    ///
    /// Exit is seen through a pidfd (or SIGCHLD), not through the pipes, so it is seen even
    /// while a grandchild keeps the child's stdout open.
    ///
    /// # Errors
    ///
    /// [`ProcessError::Cancelled`] if the enclosing scope is cancelled (the child keeps running);
    /// [`ProcessError::Io`] if the child was reaped by someone else (a `waitpid(-1)` elsewhere in
    /// the program).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the status is kept, and the next wait returns it.
    ///
    /// ```
    /// # anyio::run(async {
    /// let p = anyio::process::open_process(["true"], Default::default()).await?;
    /// assert_eq!(p.wait().await?, 0);
    /// assert_eq!(p.wait().await?, 0);
    /// # Ok::<_, anyio::process::ProcessError>(())
    /// # }).unwrap();
    /// ```
    pub async fn wait(&self) -> Result<i32, ProcessError> {
        crate::lowlevel::checkpoint().await?;
        if let Some(status) = self.try_reap()? {
            return Ok(returncode(status));
        }
        let _turn = self.waiting.acquire().await?;
        let status = match &self.pidfd {
            Some(core) => {
                let child = &self.child;
                // Tried as an operation, so that a backend that caches readiness clears it when
                // the child has not exited yet (no spinning on a stale event).
                core.io(Dir::Receive, move |_| {
                    let mut child = child.lock().unwrap_or_else(PoisonError::into_inner);
                    match child.as_mut().map(Child::try_wait) {
                        Some(Ok(Some(status))) => Ok(status),
                        Some(Ok(None)) => Err(io::ErrorKind::WouldBlock.into()),
                        Some(Err(e)) => Err(lost_child(e)),
                        None => Err(io::Error::other("the process was handed to the reaper")),
                    }
                })
                .await
                .map_err(|e| match e {
                    OpError::Cancelled(c) => ProcessError::Cancelled(c),
                    OpError::Io(e) => ProcessError::Io(e),
                    OpError::Closed | OpError::Busy(_) => {
                        ProcessError::Io(io::Error::other("the process's pidfd was closed"))
                    }
                })?
            }
            None => {
                let mut sigchld =
                    SignalReceiver::subscribe(&[libc::SIGCHLD], false).map_err(ProcessError::Io)?;
                loop {
                    // After subscribing: an exit before it is seen here, one after it wakes us.
                    if let Some(status) = self.try_reap()? {
                        break status;
                    }
                    sigchld.receive().await.map_err(|e| match e {
                        crate::signal::SignalError::Cancelled(c) => ProcessError::Cancelled(c),
                        other => ProcessError::Io(io::Error::other(other)),
                    })?;
                }
            }
        };
        Ok(returncode(status))
    }

    /// Sends `signal` to the child. A no-op once the child has exited and was reaped: its pid
    /// may belong to another process by then, so it is never signalled.
    ///
    /// # Errors
    ///
    /// The operating system's error (`EPERM` for a child that changed user).
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::signal::Signal;
    /// let p = anyio::process::open_process(["sleep", "10"], Default::default()).await?;
    /// p.send_signal(Signal::SIGTERM)?;
    /// assert_eq!(p.wait().await?, -libc::SIGTERM);
    /// p.send_signal(Signal::SIGTERM)?; // exited: nothing happens
    /// # Ok::<_, anyio::process::ProcessError>(())
    /// # }).unwrap();
    /// ```
    pub fn send_signal(&self, signal: Signal) -> io::Result<()> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(c) = child.as_mut() else { return Ok(()) };
        if !matches!(c.try_wait(), Ok(None)) {
            return Ok(());
        }
        // SAFETY: `kill` has no memory effects. The pid is not reaped (checked above, under
        // the lock that every reaping takes), so it still names our child, or its zombie.
        let r = unsafe { libc::kill(self.pid as libc::pid_t, signal.as_raw()) };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Asks the child to exit: SIGTERM.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    ///
    /// ```
    /// # anyio::run(async {
    /// let p = anyio::process::open_process(["sleep", "10"], Default::default()).await?;
    /// p.terminate()?;
    /// assert_eq!(p.wait().await?, -libc::SIGTERM);
    /// # Ok::<_, anyio::process::ProcessError>(())
    /// # }).unwrap();
    /// ```
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(Signal::SIGTERM)
    }

    /// Kills the child: SIGKILL.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Self::send_signal).
    ///
    /// ```
    /// # anyio::run(async {
    /// let p = anyio::process::open_process(["sleep", "10"], Default::default()).await?;
    /// p.kill()?;
    /// assert_eq!(p.wait().await?, -libc::SIGKILL);
    /// # Ok::<_, anyio::process::ProcessError>(())
    /// # }).unwrap();
    /// ```
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(Signal::SIGKILL)
    }

    /// Closes the pipes, then waits for the child (AnyIO's `aclose`). If that wait is
    /// cancelled, the child is killed and reaped (shielded) and the cancellation returned.
    ///
    /// # Errors
    ///
    /// [`ProcessError::Cancelled`] after killing the child, as above.
    ///
    /// # Cancel safety
    ///
    /// Cancellation is the designed exit: the child is killed and reaped before it returns.
    ///
    /// ```
    /// # anyio::run(async {
    /// let p = anyio::process::open_process(["cat"], Default::default()).await?;
    /// // cat reads end of file from its closed stdin and exits.
    /// assert_eq!(p.aclose().await?, 0);
    /// # Ok::<_, anyio::process::ProcessError>(())
    /// # }).unwrap();
    /// ```
    pub async fn aclose(&self) -> Result<i32, ProcessError> {
        if let Some(s) = &self.stdin {
            let _ = s.aclose().await;
        }
        if let Some(s) = &self.stdout {
            let _ = s.aclose().await;
        }
        if let Some(s) = &self.stderr {
            let _ = s.aclose().await;
        }
        match self.wait().await {
            Err(ProcessError::Cancelled(c)) => {
                self.kill_and_reap().await;
                Err(ProcessError::Cancelled(c))
            }
            other => other,
        }
    }

    /// Kills the child and waits for it, shielded from cancellation.
    pub(crate) async fn kill_and_reap(&self) {
        let _ = self.kill();
        let _ = CancelScope::shielded().run(self.wait()).await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // The pipes close as their fields drop; a child still running is reaped when it exits.
        if let Some(child) = self.child.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            adopt(child);
        }
    }
}
