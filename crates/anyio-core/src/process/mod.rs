//! Child processes (AnyIO's `open_process`, `run_process` and `Process`), on every backend.
//!
//! The child's pipes are anyio byte streams registered with the runtime's reactor, and its exit
//! is seen through a pidfd (Linux 5.3 and later) or SIGCHLD, so waiting is an ordinary
//! cancellable wait. Nothing here uses `tokio::process` or `async-process`: the same code runs on
//! every backend, with anyio's cancellation and stream-error rules.
//!
//! ```
//! # anyio::run(async {
//! use anyio::process::{run_process, ProcessOptions};
//! let done = run_process(["echo", "hello"], ProcessOptions::new()).await?;
//! assert_eq!(done.stdout, b"hello\n");
//! assert_eq!(done.returncode, 0);
//! # Ok::<_, anyio::process::ProcessError>(())
//! # }).unwrap();
//! ```

mod child;
mod error;
mod options;
mod pipe;
mod reaper;

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;

use crate::net::io::IoCore;
use crate::streams::{ByteReceiveStream, ByteSendStream, StreamError};
use crate::task::{GroupError, TaskGroup};

pub use child::Process;
pub use error::ProcessError;
pub use options::{CommandLine, ProcessOptions, Stdio};
pub use pipe::{PipeReceiveStream, PipeSendStream};

/// What a finished [`run_process`] produced (Python's `CompletedProcess`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::process::{run_process, ProcessOptions};
/// let done = run_process("echo out; echo err >&2; exit 4", ProcessOptions::new().check(false)).await?;
/// assert_eq!((done.returncode, &done.stdout[..], &done.stderr[..]), (4, &b"out\n"[..], &b"err\n"[..]));
/// assert!(done.check_returncode().is_err());
/// # Ok::<_, anyio::process::ProcessError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedProcess {
    /// The command line that ran.
    pub args: CommandLine,
    /// Its exit code, or minus the signal that killed it.
    pub returncode: i32,
    /// Everything it wrote to stdout (empty unless stdout was a pipe).
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr (empty unless stderr was a pipe).
    pub stderr: Vec<u8>,
}

impl CompletedProcess {
    /// `Ok` if the return code is 0.
    ///
    /// # Errors
    ///
    /// [`ProcessError::Failed`] with this outcome otherwise.
    ///
    /// ```
    /// # anyio::run(async {
    /// let done = anyio::process::run_process(["true"], Default::default()).await?;
    /// assert!(done.check_returncode().is_ok());
    /// # Ok::<_, anyio::process::ProcessError>(())
    /// # }).unwrap();
    /// ```
    pub fn check_returncode(&self) -> Result<(), ProcessError> {
        if self.returncode == 0 {
            Ok(())
        } else {
            Err(ProcessError::Failed(Box::new(self.clone())))
        }
    }
}

fn invalid(why: impl Into<String>) -> ProcessError {
    ProcessError::InvalidArgument(why.into())
}

fn check_nul(what: &str, s: &OsStr) -> Result<(), ProcessError> {
    if std::os::unix::ffi::OsStrExt::as_bytes(s).contains(&0) {
        return Err(invalid(format!("{what} {:?} contains a NUL byte, which no C string can hold", s)));
    }
    Ok(())
}

/// What the child gets for one standard stream.
enum ChildIo {
    Null,
    Inherit,
    Fd(OwnedFd),
}

impl ChildIo {
    fn into_std(self) -> std::process::Stdio {
        match self {
            ChildIo::Null => std::process::Stdio::null(),
            ChildIo::Inherit => std::process::Stdio::inherit(),
            ChildIo::Fd(fd) => fd.into(),
        }
    }

    /// A second handle on the same target, for a stderr merged into stdout.
    fn duplicate(&self) -> io::Result<ChildIo> {
        Ok(match self {
            ChildIo::Null => ChildIo::Null,
            ChildIo::Fd(fd) => ChildIo::Fd(fd.try_clone()?),
            ChildIo::Inherit => ChildIo::Fd(std::io::stdout().as_fd().try_clone_to_owned()?),
        })
    }
}

/// A pipe with both ends close-on-exec (the child gets a `dup2` copy without the flag) and
/// blocking (ours is made non-blocking when registered). Atomically where the system can: a
/// child spawned by another thread between `pipe` and `fcntl` would inherit both ends and
/// hold them open for its whole life (a reader would never see end of file).
fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // macOS has no pipe2; std's own pipes have the same window there.
        let (r, w) = rustix::pipe::pipe()?;
        for fd in [&r, &w] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
        }
        Ok((r, w))
    }
}

/// The child's end and, for a pipe, ours (`ours_reads`: the child writes, we read).
fn child_end(
    stdio: Stdio,
    ours_reads: bool,
    pipe_size: Option<usize>,
) -> Result<(ChildIo, Option<OwnedFd>), ProcessError> {
    Ok(match stdio {
        Stdio::Pipe => {
            let (r, w) = cloexec_pipe().map_err(ProcessError::Io)?;
            if let Some(size) = pipe_size {
                set_pipe_size(&r, size)?;
            }
            if ours_reads {
                (ChildIo::Fd(w), Some(r))
            } else {
                (ChildIo::Fd(r), Some(w))
            }
        }
        Stdio::Null => (ChildIo::Null, None),
        Stdio::Inherit => (ChildIo::Inherit, None),
        Stdio::File(f) => (ChildIo::Fd(f.into()), None),
        Stdio::Fd(fd) => (ChildIo::Fd(fd), None),
        Stdio::Stdout => return Err(invalid("Stdio::Stdout is only for stderr (merging it into stdout)")),
    })
}

/// Sets a pipe's capacity (Linux; elsewhere the option does nothing).
fn set_pipe_size(fd: &OwnedFd, size: usize) -> Result<(), ProcessError> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let size_c = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ on a pipe we own changes its capacity; no memory is passed.
        let r = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(fd), libc::F_SETPIPE_SZ, size_c) };
        if r == -1 {
            let e = io::Error::last_os_error();
            return Err(invalid(format!(
                "cannot make the pipes {size} bytes large: {e} (the most an unprivileged process may ask \
                 for is in /proc/sys/fs/pipe-max-size)"
            )));
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (fd, size);
    Ok(())
}

/// Starts a process (AnyIO's `open_process`): `command` is an argument vector or a shell line
/// (see [`CommandLine`]); `options` says where its standard streams go (pipes by default) and
/// how it runs.
///
/// Not cancellable once started: the process is created at once, or not at all.
///
/// # Errors
///
/// [`ProcessError::InvalidArgument`] for an empty command, a NUL byte, [`Stdio::Stdout`] for
/// anything but stderr, or an `input` (that is [`run_process`]'s);
/// [`ProcessError::NotFound`] naming a missing program; [`ProcessError::Cwd`] naming a missing
/// working directory; [`ProcessError::Spawn`] otherwise; [`ProcessError::Cancelled`] if the
/// scope was already cancelled (nothing started).
///
/// # Cancel safety
///
/// Cancel safe: a call cancelled at its checkpoint started nothing.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::process::{open_process, ProcessOptions, Stdio};
/// use anyio::streams::ByteReceiveStream;
/// let p = open_process("printf 'a\\nb\\n' | wc -l", ProcessOptions::new().stdin(Stdio::Null)).await?;
/// let out = p.stdout().unwrap().receive(64).await?;
/// assert_eq!(String::from_utf8_lossy(&out).trim(), "2");
/// assert_eq!(p.wait().await?, 0);
/// # Ok::<_, anyio::AnyError>(())
/// # }).unwrap();
/// ```
pub async fn open_process(
    command: impl Into<CommandLine>,
    options: ProcessOptions,
) -> Result<Process, ProcessError> {
    crate::lowlevel::checkpoint_if_cancelled()?;
    if options.input.is_some() {
        return Err(invalid("input is for run_process; with open_process, write to the process's stdin"));
    }
    spawn(command.into(), options)
}

fn spawn(args: CommandLine, mut options: ProcessOptions) -> Result<Process, ProcessError> {
    let argv = args.to_argv();
    let Some(program) = argv.first() else {
        return Err(invalid("the command is empty: give at least the program to run"));
    };
    if program.is_empty() {
        return Err(invalid("the program name is empty"));
    }
    for a in &argv {
        check_nul("argument", a)?;
    }
    for (k, v) in &options.env {
        check_nul("environment variable name", k)?;
        if k.is_empty() || std::os::unix::ffi::OsStrExt::as_bytes(k.as_os_str()).contains(&b'=') {
            return Err(invalid(format!("environment variable name {k:?} is empty or contains '='")));
        }
        if let Some(v) = v {
            check_nul("environment variable value", v)?;
        }
    }
    if let Some(cwd) = &options.cwd {
        check_nul("working directory", cwd.as_os_str())?;
    }

    let mut cmd = std::process::Command::new(program);
    cmd.args(&argv[1..]);
    let size = options.pipe_size;
    let (stdin, ours_in) = child_end(options.stdin.take().unwrap_or(Stdio::Pipe), false, size)?;
    let (stdout, ours_out) = child_end(options.stdout.take().unwrap_or(Stdio::Pipe), true, size)?;
    let (stderr, ours_err) = match options.stderr.take().unwrap_or(Stdio::Pipe) {
        Stdio::Stdout => (stdout.duplicate().map_err(ProcessError::Io)?, None),
        other => child_end(other, true, size)?,
    };
    cmd.stdin(stdin.into_std()).stdout(stdout.into_std()).stderr(stderr.into_std());
    if let Some(cwd) = &options.cwd {
        cmd.current_dir(cwd);
    }
    if options.env_clear {
        cmd.env_clear();
    }
    for (k, v) in &options.env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    install_pre_exec(&mut cmd, &options);

    let child = cmd.spawn().map_err(|e| spawn_error(e, program, &options))?;
    drop(cmd); // closes the child's ends of the pipes here
    let pid = child.id();
    // From here the child is killed and handed to the reaper unless `Process` takes it, even
    // if registering below panics (tokio's `AsyncFd` does, on a runtime without I/O).
    let mut child = ChildGuard(Some(child));
    // From here on the child exists: failures below must not leave it unreaped.
    let registered = (|| -> io::Result<_> {
        let pidfd =
            reaper::pidfd(pid).map(|fd| IoCore::new(fd, ["waiting for", "signalling"])).transpose()?;
        let stdin = ours_in.map(PipeSendStream::new).transpose()?;
        let stdout = ours_out.map(PipeReceiveStream::new).transpose()?;
        let stderr = ours_err.map(PipeReceiveStream::new).transpose()?;
        Ok((pidfd, (stdin, stdout, stderr)))
    })();
    let (pidfd, stdio) = registered.map_err(ProcessError::Io)?;
    Ok(Process::new(args, child.0.take().expect("still guarded"), pidfd, stdio))
}

/// A child not yet owned by a `Process`: killed and handed to the reaper if dropped.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            reaper::adopt(child);
        }
    }
}

/// Kills the process when dropped unless disarmed: a `run_process` future dropped before it
/// finished (it lost a `select!`) must not leave its child running unseen. The `Process`
/// dropped after it hands the killed child to the reaper.
struct KillOnDrop<'a>(&'a Process, bool);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if self.1 {
            let _ = self.0.kill();
        }
    }
}

fn spawn_error(e: io::Error, program: &OsStr, options: &ProcessOptions) -> ProcessError {
    if let Some(cwd) = &options.cwd {
        match std::fs::metadata(cwd) {
            Err(source) => return ProcessError::Cwd { cwd: cwd.clone(), source },
            Ok(m) if !m.is_dir() => {
                return ProcessError::Cwd {
                    cwd: cwd.clone(),
                    source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                }
            }
            Ok(_) => {}
        }
    }
    if e.kind() == io::ErrorKind::NotFound {
        ProcessError::NotFound { program: program.to_owned(), source: e }
    } else {
        ProcessError::Spawn { program: program.to_owned(), source: e }
    }
}

/// What must run in the child between fork and exec: only when asked, because any `pre_exec`
/// makes std fork instead of using the faster `posix_spawn`.
fn install_pre_exec(cmd: &mut std::process::Command, options: &ProcessOptions) {
    let new_session = options.new_session;
    let umask = options.umask;
    let pass_fds = options.pass_fds.clone();
    let groups: Option<Vec<libc::gid_t>> = options.extra_groups.clone();
    let gid = options.group;
    let uid = options.user;
    if !new_session
        && umask.is_none()
        && pass_fds.is_empty()
        && groups.is_none()
        && gid.is_none()
        && uid.is_none()
    {
        return;
    }
    let step = |r: libc::c_int| if r == -1 { Err(io::Error::last_os_error()) } else { Ok(()) };
    let hook = move || -> io::Result<()> {
        // SAFETY: every call below is an async-signal-safe system call on plain values prepared
        // before the fork (`last_os_error` only reads errno); nothing allocates or locks.
        unsafe {
            if new_session {
                step(libc::setsid())?;
            }
            if let Some(mask) = umask {
                libc::umask(mask as libc::mode_t);
            }
            for &fd in &pass_fds {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                step(flags)?;
                step(libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC))?;
            }
            // Groups first, then the group, then the user: afterwards we may lack the right.
            if let Some(groups) = &groups {
                step(libc::setgroups(groups.len() as _, groups.as_ptr()))?;
            }
            if let Some(gid) = gid {
                step(libc::setgid(gid))?;
            }
            if let Some(uid) = uid {
                step(libc::setuid(uid))?;
            }
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe system calls (see inside), as `pre_exec`
    // requires of code that runs between fork and exec.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Runs a process to completion (AnyIO's `run_process`): writes `options`' input to its stdin,
/// captures stdout and stderr (drained concurrently, so neither can fill up and stall the
/// child), and waits for it.
///
/// # Errors
///
/// Those of [`open_process`]; [`ProcessError::InvalidArgument`] for an input together with a
/// stdin option; [`ProcessError::Failed`] (with everything captured) if `check` is on and the
/// return code is not 0; [`ProcessError::Cancelled`] if cancelled, after the child was killed
/// and reaped.
///
/// # Cancel safety
///
/// Cancellation kills the child, reaps it (shielded) and returns promptly. A future dropped
/// before it finished kills the child too, which is then reaped in the background.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::process::{run_process, ProcessOptions};
/// let done = run_process(["tr", "a-z", "A-Z"], ProcessOptions::new().input(b"shout".to_vec())).await?;
/// assert_eq!(done.stdout, b"SHOUT");
/// # Ok::<_, anyio::process::ProcessError>(())
/// # }).unwrap();
/// ```
pub async fn run_process(
    command: impl Into<CommandLine>,
    mut options: ProcessOptions,
) -> Result<CompletedProcess, ProcessError> {
    crate::lowlevel::checkpoint_if_cancelled()?;
    let input = options.input.take();
    if input.is_some() && options.stdin.is_some() {
        return Err(invalid("input cannot be combined with a stdin option: give one or the other"));
    }
    if input.is_some() {
        options.stdin = Some(Stdio::Pipe);
    } else if options.stdin.is_none() {
        options.stdin = Some(Stdio::Inherit);
    }
    let check = options.check;
    let mut process = spawn(command.into(), options)?;
    let stdin = process.take_stdin();
    let stdout = process.take_stdout();
    let stderr = process.take_stderr();
    let mut armed = KillOnDrop(&process, true);
    let captured = TaskGroup::scope(|tg: TaskGroup<ProcessError>| async move {
        let out = tg.spawn(read_all(stdout));
        let err = tg.spawn(read_all(stderr));
        if let (Some(stdin), Some(input)) = (stdin, input) {
            match stdin.send(&input).await {
                // A child that exits without reading all its input is not our failure.
                Ok(()) | Err(StreamError::Broken(_)) => {}
                Err(e) => return Err(ProcessError::from(e)),
            }
            drop(stdin); // end of file for the child
        }
        // A task that failed fails the group, which reports its error instead of these.
        Ok((out.await.unwrap_or_default(), err.await.unwrap_or_default()))
    })
    .await;
    let (stdout, stderr) = match captured {
        Ok(Some(both)) => both,
        // The group's own scope is never cancelled here, so this is not reached; were it, the
        // output would be incomplete: fail rather than return it.
        Ok(None) => {
            process.kill_and_reap().await;
            return Err(ProcessError::Io(io::Error::other("capturing the process's output was cancelled")));
        }
        Err(e) => {
            process.kill_and_reap().await;
            return Err(match e {
                GroupError::Cancelled(c) => ProcessError::Cancelled(c),
                GroupError::Failed(errors) => errors
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| ProcessError::Io(io::Error::other("the process's pipes failed"))),
            });
        }
    };
    let returncode = match process.wait().await {
        Ok(code) => code,
        Err(e) => {
            process.kill_and_reap().await;
            return Err(e);
        }
    };
    armed.1 = false;
    let done = CompletedProcess { args: process.args().clone(), returncode, stdout, stderr };
    if check {
        done.check_returncode()?;
    }
    Ok(done)
}

async fn read_all(stream: Option<PipeReceiveStream>) -> Result<Vec<u8>, ProcessError> {
    let mut data = Vec::new();
    let Some(stream) = stream else { return Ok(data) };
    loop {
        match stream.receive(65536).await {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(StreamError::EndOfStream) => return Ok(data),
            Err(e) => return Err(e.into()),
        }
    }
}
