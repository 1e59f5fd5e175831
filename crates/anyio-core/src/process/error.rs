//! `ProcessError`: why a process could not be started, waited for, or ran unsuccessfully.

use std::error::Error as StdError;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::error::{AnyError, AsCancelled, Cancelled};
use crate::streams::StreamError;

use super::CompletedProcess;

/// Why a process could not be started, waited for, or (with `check`) did not succeed.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::process::{run_process, ProcessError, ProcessOptions};
/// let err = run_process(["no-such-program-anywhere"], ProcessOptions::new()).await.unwrap_err();
/// assert!(matches!(err, ProcessError::NotFound { .. }));
/// assert!(err.to_string().contains("no-such-program-anywhere"));
/// # });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// The options cannot work together or an argument is malformed (an empty command, a NUL
    /// byte, input together with a stdin option); the message says which.
    InvalidArgument(String),
    /// The program does not exist (or is not in `PATH`).
    NotFound {
        /// The program asked for.
        program: OsString,
        /// The operating system's error.
        source: io::Error,
    },
    /// The working directory does not exist or is not a directory.
    Cwd {
        /// The directory asked for.
        cwd: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The process could not be started for another reason (permission denied, too many
    /// processes, a bad descriptor in `pass_fds`...).
    Spawn {
        /// The program asked for.
        program: OsString,
        /// The operating system's error.
        source: io::Error,
    },
    /// [`run_process`](super::run_process) with `check`: the process exited unsuccessfully.
    /// Carries everything it produced (AnyIO's `CalledProcessError`).
    #[doc(alias = "CalledProcessError")]
    Failed(Box<CompletedProcess>),
    /// Cancelled by a cancel scope. A process started by the call was killed and reaped.
    Cancelled(Cancelled),
    /// Reading or writing one of the child's pipes failed.
    Stream(StreamError),
    /// Waiting for or signalling the process failed.
    Io(io::Error),
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::InvalidArgument(why) => f.write_str(why),
            ProcessError::NotFound { program, source } => write!(
                f,
                "cannot run {:?}: program not found ({source}); check the name and PATH",
                program.to_string_lossy()
            ),
            ProcessError::Cwd { cwd, source } => {
                write!(f, "cannot use {} as the working directory: {source}", cwd.display())
            }
            ProcessError::Spawn { program, source } => {
                write!(f, "cannot start {:?}: {source}", program.to_string_lossy())
            }
            ProcessError::Failed(done) => {
                write!(f, "command '{}' ", done.args)?;
                match done.returncode {
                    code if code < 0 => match crate::signal::Signal::from_raw(-code) {
                        Ok(sig) => write!(f, "died by {sig}"),
                        Err(_) => write!(f, "died by signal {}", -code),
                    },
                    code => write!(f, "returned non-zero exit status {code}"),
                }
            }
            ProcessError::Cancelled(c) => fmt::Display::fmt(c, f),
            ProcessError::Stream(e) => write!(f, "process pipe failed: {e}"),
            ProcessError::Io(e) => write!(f, "process operation failed: {e}"),
        }
    }
}

impl StdError for ProcessError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ProcessError::NotFound { source, .. }
            | ProcessError::Cwd { source, .. }
            | ProcessError::Spawn { source, .. }
            | ProcessError::Io(source) => Some(source),
            ProcessError::Cancelled(c) => Some(c),
            ProcessError::Stream(e) => Some(e),
            _ => None,
        }
    }
}

impl AsCancelled for ProcessError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            ProcessError::Cancelled(c) => Some(c),
            ProcessError::Stream(e) => e.as_cancelled(),
            _ => None,
        }
    }
}

impl From<Cancelled> for ProcessError {
    fn from(c: Cancelled) -> Self {
        ProcessError::Cancelled(c)
    }
}

/// For `?` on [`Process::send_signal`](super::Process::send_signal) and friends.
impl From<io::Error> for ProcessError {
    fn from(e: io::Error) -> Self {
        ProcessError::Io(e)
    }
}

impl From<StreamError> for ProcessError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Cancelled(c) => ProcessError::Cancelled(c),
            other => ProcessError::Stream(other),
        }
    }
}

impl From<ProcessError> for AnyError {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Cancelled(c) | ProcessError::Stream(StreamError::Cancelled(c)) => AnyError::from(c),
            other => AnyError::other(other),
        }
    }
}
