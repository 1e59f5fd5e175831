//! What to run and how: the command line, the standard streams, and the child's environment.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

/// The program to run: an argument vector, or a line for the shell (AnyIO's `str` command).
///
/// `&str` and `String` convert to a shell command line, as AnyIO's `str` does; arrays, slices
/// and vectors convert to an argument vector (no shell involved).
///
/// # Examples
///
/// ```
/// use anyio::process::CommandLine;
/// assert_eq!(CommandLine::from(["echo", "hi"]), CommandLine::argv(["echo", "hi"]));
/// assert_eq!(CommandLine::from("echo hi | wc -c"), CommandLine::shell("echo hi | wc -c"));
/// assert_eq!(CommandLine::argv(["ls", "-l"]).to_string(), "ls -l");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// A program and its arguments, run directly (the program is looked up in `PATH` unless
    /// it contains a `/`).
    Argv(Vec<OsString>),
    /// A line run by `/bin/sh -c`.
    Shell(OsString),
}

impl CommandLine {
    /// An argument vector.
    ///
    /// ```
    /// let c = anyio::process::CommandLine::argv(["true"]);
    /// assert_eq!(c.program(), "true");
    /// ```
    pub fn argv<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        CommandLine::Argv(args.into_iter().map(|a| a.as_ref().to_owned()).collect())
    }

    /// A shell command line.
    ///
    /// ```
    /// let c = anyio::process::CommandLine::shell("exit 3");
    /// assert_eq!(c.program(), "/bin/sh");
    /// ```
    pub fn shell(line: impl Into<OsString>) -> Self {
        CommandLine::Shell(line.into())
    }

    /// The program that runs: the first argument, or `/bin/sh` for a shell line (empty for an
    /// empty argument vector).
    ///
    /// ```
    /// assert_eq!(anyio::process::CommandLine::argv(["cat", "-"]).program(), "cat");
    /// ```
    pub fn program(&self) -> &OsStr {
        match self {
            CommandLine::Argv(args) => args.first().map(OsString::as_os_str).unwrap_or(OsStr::new("")),
            CommandLine::Shell(_) => OsStr::new("/bin/sh"),
        }
    }

    /// The full argument vector as it is executed.
    pub(crate) fn to_argv(&self) -> Vec<OsString> {
        match self {
            CommandLine::Argv(args) => args.clone(),
            CommandLine::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
        }
    }
}

impl fmt::Debug for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandLine::Argv(args) => f.debug_tuple("Argv").field(args).finish(),
            CommandLine::Shell(line) => f.debug_tuple("Shell").field(line).finish(),
        }
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandLine::Argv(args) => {
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{}", a.to_string_lossy())?;
                }
                Ok(())
            }
            CommandLine::Shell(line) => write!(f, "{}", line.to_string_lossy()),
        }
    }
}

impl From<&str> for CommandLine {
    fn from(line: &str) -> Self {
        CommandLine::shell(line)
    }
}

impl From<String> for CommandLine {
    fn from(line: String) -> Self {
        CommandLine::shell(line)
    }
}

impl<S: AsRef<OsStr>, const N: usize> From<[S; N]> for CommandLine {
    fn from(args: [S; N]) -> Self {
        CommandLine::argv(args)
    }
}

impl<S: AsRef<OsStr>> From<&[S]> for CommandLine {
    fn from(args: &[S]) -> Self {
        CommandLine::argv(args)
    }
}

impl<S: AsRef<OsStr>> From<Vec<S>> for CommandLine {
    fn from(args: Vec<S>) -> Self {
        CommandLine::argv(args)
    }
}

/// Where one of the child's standard streams goes (AnyIO's `PIPE`, `DEVNULL`, `None`, a file,
/// a descriptor, `STDOUT`).
///
/// # Examples
///
/// ```
/// use anyio::process::{ProcessOptions, Stdio};
/// // Discard stdout, merge stderr into it.
/// let _ = ProcessOptions::new().stdout(Stdio::Null).stderr(Stdio::Stdout);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Stdio {
    /// A pipe to this process: the [`Process`](super::Process) gets its end as a stream.
    #[doc(alias = "PIPE")]
    Pipe,
    /// `/dev/null`.
    #[doc(alias = "DEVNULL")]
    Null,
    /// This process's own stream.
    Inherit,
    /// An open file.
    File(File),
    /// Any open descriptor (a socket, one end of a pipe...), given to the child.
    Fd(OwnedFd),
    /// For stderr only: wherever stdout goes.
    #[doc(alias = "STDOUT")]
    Stdout,
}

impl From<File> for Stdio {
    fn from(f: File) -> Self {
        Stdio::File(f)
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Self {
        Stdio::Fd(fd)
    }
}

/// How to start a process: standard streams, working directory, environment, session,
/// descriptors, identity; and for [`run_process`](super::run_process), input and `check`.
///
/// Built by chaining; everything not set is as the parent has it. [`open_process`] pipes all
/// three standard streams unless told otherwise; [`run_process`] pipes (and captures) stdout
/// and stderr, and gives stdin a pipe only for [`input`](Self::input).
///
/// [`open_process`]: super::open_process
/// [`run_process`]: super::run_process
///
/// # Examples
///
/// ```
/// use anyio::process::{ProcessOptions, Stdio};
/// let options = ProcessOptions::new()
///     .cwd("/tmp")
///     .env("LANG", "C")
///     .stdin(Stdio::Null)
///     .start_new_session(true);
/// # let _ = options;
/// ```
#[derive(Debug)]
pub struct ProcessOptions {
    pub(crate) stdin: Option<Stdio>,
    pub(crate) stdout: Option<Stdio>,
    pub(crate) stderr: Option<Stdio>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) env_clear: bool,
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    pub(crate) new_session: bool,
    pub(crate) pass_fds: Vec<RawFd>,
    pub(crate) user: Option<u32>,
    pub(crate) group: Option<u32>,
    pub(crate) extra_groups: Option<Vec<u32>>,
    pub(crate) umask: Option<u32>,
    pub(crate) input: Option<Vec<u8>>,
    pub(crate) check: bool,
    pub(crate) pipe_size: Option<usize>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            stdin: None,
            stdout: None,
            stderr: None,
            cwd: None,
            env_clear: false,
            env: Vec::new(),
            new_session: false,
            pass_fds: Vec::new(),
            user: None,
            group: None,
            extra_groups: None,
            umask: None,
            input: None,
            check: true,
            pipe_size: None,
        }
    }
}

impl ProcessOptions {
    /// The defaults (see the type's documentation).
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the child's stdin comes from.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().stdin(anyio::process::Stdio::Null);
    /// ```
    pub fn stdin(mut self, stdio: Stdio) -> Self {
        self.stdin = Some(stdio);
        self
    }

    /// Where the child's stdout goes.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().stdout(anyio::process::Stdio::Inherit);
    /// ```
    pub fn stdout(mut self, stdio: Stdio) -> Self {
        self.stdout = Some(stdio);
        self
    }

    /// Where the child's stderr goes ([`Stdio::Stdout`]: merged into stdout).
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().stderr(anyio::process::Stdio::Stdout);
    /// ```
    pub fn stderr(mut self, stdio: Stdio) -> Self {
        self.stderr = Some(stdio);
        self
    }

    /// The child's working directory.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().cwd("/");
    /// ```
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets one environment variable for the child (on top of the inherited environment,
    /// unless [`env_clear`](Self::env_clear)).
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().env("RUST_LOG", "debug");
    /// ```
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Sets several environment variables.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().envs([("A", "1"), ("B", "2")]);
    /// ```
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env.extend(vars.into_iter().map(|(k, v)| (k.into(), Some(v.into()))));
        self
    }

    /// Removes one variable from the child's environment.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().env_remove("HOME");
    /// ```
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env.push((key.into(), None));
        self
    }

    /// Starts the child with an empty environment, plus what [`env`](Self::env) sets (AnyIO's
    /// `env=`, which replaces the environment).
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().env_clear().env("PATH", "/bin");
    /// ```
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Runs the child in a new session (`setsid`), away from this process's terminal and its
    /// signals.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().start_new_session(true);
    /// ```
    pub fn start_new_session(mut self, yes: bool) -> Self {
        self.new_session = yes;
        self
    }

    /// Descriptors the child inherits, under the same numbers. They must stay open until
    /// `open_process` returns. Other descriptors are closed on exec if they are close-on-exec,
    /// which everything Rust's std and anyio open is; a descriptor a C library opened without
    /// the flag is inherited too (unlike Python's `close_fds`).
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().pass_fds([3]);
    /// ```
    pub fn pass_fds(mut self, fds: impl IntoIterator<Item = RawFd>) -> Self {
        self.pass_fds.extend(fds);
        self
    }

    /// Runs the child as user id `uid` (needs the privilege to switch). As in Python, only the
    /// user changes: the group and the supplementary groups stay this process's unless
    /// [`group`](Self::group) and [`extra_groups`](Self::extra_groups) are given too (a root
    /// parent dropping privileges should give all three).
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().user(1000);
    /// ```
    pub fn user(mut self, uid: u32) -> Self {
        self.user = Some(uid);
        self
    }

    /// Runs the child with group id `gid`.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().group(1000);
    /// ```
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// The child's supplementary groups.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().extra_groups([27]);
    /// ```
    pub fn extra_groups(mut self, gids: impl IntoIterator<Item = u32>) -> Self {
        self.extra_groups = Some(gids.into_iter().collect());
        self
    }

    /// The child's file mode creation mask.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().umask(0o077);
    /// ```
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = Some(mask);
        self
    }

    /// The capacity of each pipe to the child, in bytes (Python's `pipesize`; Linux only,
    /// ignored elsewhere). The kernel's default is 64 KiB; 256 KiB moves bulk output through
    /// `cat` about 2.5 times faster (fewer context switches), at the cost of more memory
    /// held when the reader falls behind, and of the user's pipe quota: past
    /// `/proc/sys/fs/pipe-user-pages-soft` pages (64 MiB by default) in all of a user's pipes,
    /// the kernel gives that user's new pipes a single page. Hence it is not the default.
    ///
    /// A size above `/proc/sys/fs/pipe-max-size` (or over the quota) makes `open_process` fail
    /// with [`ProcessError::InvalidArgument`](super::ProcessError::InvalidArgument).
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().pipe_size(256 * 1024);
    /// ```
    pub fn pipe_size(mut self, bytes: usize) -> Self {
        self.pipe_size = Some(bytes);
        self
    }

    /// For [`run_process`](super::run_process): bytes written to the child's stdin, which is
    /// then closed. Cannot be combined with [`stdin`](Self::stdin), and
    /// [`open_process`](super::open_process) refuses it.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().input(b"hello".to_vec());
    /// ```
    pub fn input(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.input = Some(data.into());
        self
    }

    /// For [`run_process`](super::run_process): whether a non-zero exit is an error
    /// ([`ProcessError::Failed`](super::ProcessError::Failed)). On by default.
    ///
    /// ```
    /// let _ = anyio::process::ProcessOptions::new().check(false);
    /// ```
    pub fn check(mut self, yes: bool) -> Self {
        self.check = yes;
        self
    }
}
