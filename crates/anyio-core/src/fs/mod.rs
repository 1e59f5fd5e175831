//! Files and paths (AnyIO's `open_file`, `AsyncFile`, `Path`, file streams and temporary
//! files), the same on every backend.
//!
//! Operating systems offer no portable non-blocking file I/O, so every operation runs on
//! anyio's worker threads ([`to_thread`](crate::to_thread)), under the run's default
//! [`CapacityLimiter`] or one of your own. Each call hands the file and an owned buffer to a
//! worker and gets them back, so:
//!
//! - a write returns only once it has happened (no write-behind whose error surfaces later);
//! - a read whose caller was cancelled or went away loses no bytes: the next read returns
//!   them first;
//! - operations on one file run one at a time, in the order they were called.
//!
//! ```
//! # anyio::run(async {
//! use anyio::fs::{open_file, OpenOptions};
//! let path = std::env::temp_dir().join(format!("anyio-fs-doc-{}", std::process::id()));
//! let f = open_file(&path, OpenOptions::from_mode("w")?).await?;
//! f.write_all(b"hello\n").await?;
//! f.close().await?;
//! let f = open_file(&path, OpenOptions::from_mode("r")?).await?;
//! assert_eq!(f.read_to_end().await?, b"hello\n");
//! # f.close().await?;
//! # std::fs::remove_file(&path).unwrap();
//! # Ok::<_, anyio::fs::FsError>(())
//! # }).unwrap();
//! ```

mod file;
mod path;
mod stream;
mod temp;

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path as StdPath, PathBuf};
use std::sync::Arc;

use crate::error::{AnyError, AsCancelled, Cancelled};
use crate::sync::CapacityLimiter;
use crate::to_thread::{run_sync_with, RunSyncError, RunSyncOptions};

pub use file::{open_file, wrap_file, AsyncFile, OpenOptions};
pub use path::{Path, ReadDir};
pub use stream::{FileDescriptor, FilePath, FileReadStream, FileWriteStream};
pub use temp::{
    gettempdir, mkdtemp, mkstemp, NamedTemporaryFile, SpooledTemporaryFile, TemporaryDirectory, TemporaryFile,
};

/// Why a file or path operation failed.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::fs::{FsError, Path};
/// let err = Path::new("/no/such/file").read_bytes().await.unwrap_err();
/// assert_eq!(err.kind(), Some(std::io::ErrorKind::NotFound));
/// assert!(err.to_string().contains("/no/such/file"));
/// # });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum FsError {
    /// The operating system refused: which operation, on which path, and why.
    Io {
        /// What was being done ("open", "read", "rename"...).
        op: &'static str,
        /// The path it was done to, when known.
        path: Option<PathBuf>,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file was closed (by [`AsyncFile::close`] or a stream's `aclose`).
    Closed {
        /// The path it was opened with, when known.
        path: Option<PathBuf>,
    },
    /// Cancelled by a cancel scope before the operation started, or (for queries, which may be
    /// abandoned) while it ran.
    Cancelled(Cancelled),
    /// An argument that cannot work (an unknown open mode, a `max_bytes` of 0).
    InvalidArgument(String),
}

impl FsError {
    /// The kind of the operating system's error, for [`FsError::Io`].
    ///
    /// ```
    /// let e = anyio::fs::FsError::Closed { path: None };
    /// assert_eq!(e.kind(), None);
    /// ```
    pub fn kind(&self) -> Option<io::ErrorKind> {
        match self {
            FsError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// The path the failed operation was about, when known.
    ///
    /// ```
    /// let e = anyio::fs::FsError::Closed { path: Some("/tmp/f".into()) };
    /// assert_eq!(e.path(), Some(std::path::Path::new("/tmp/f")));
    /// ```
    pub fn path(&self) -> Option<&StdPath> {
        match self {
            FsError::Io { path, .. } | FsError::Closed { path } => path.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: Option<&StdPath>, source: io::Error) -> Self {
        FsError::Io { op, path: path.map(StdPath::to_path_buf), source }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::Io { op, path: Some(path), source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
            FsError::Io { op, path: None, source } => write!(f, "cannot {op}: {source}"),
            FsError::Closed { path: Some(path) } => {
                write!(f, "{} was closed: open it again to use it", path.display())
            }
            FsError::Closed { path: None } => f.write_str("the file was closed: open it again to use it"),
            FsError::Cancelled(c) => fmt::Display::fmt(c, f),
            FsError::InvalidArgument(why) => f.write_str(why),
        }
    }
}

impl StdError for FsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            FsError::Io { source, .. } => Some(source),
            FsError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl AsCancelled for FsError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            FsError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl From<Cancelled> for FsError {
    fn from(c: Cancelled) -> Self {
        FsError::Cancelled(c)
    }
}

impl From<FsError> for AnyError {
    fn from(e: FsError) -> Self {
        match e {
            FsError::Cancelled(c) => AnyError::from(c),
            other => AnyError::other(other),
        }
    }
}

/// Runs the blocking `f` on a worker thread as the file operation `op` on `path`.
/// `abandon`: a query whose caller is cancelled returns at once (AnyIO's split: queries may be
/// abandoned, operations that change the filesystem are waited for).
pub(crate) async fn blocking<T: Send + 'static>(
    op: &'static str,
    path: Option<&StdPath>,
    abandon: bool,
    limiter: Option<Arc<CapacityLimiter>>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, FsError> {
    let mut options = RunSyncOptions::new().abandon_on_cancel(abandon);
    if let Some(l) = limiter {
        options = options.limiter(l);
    }
    match run_sync_with(options, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(FsError::io(op, path, e)),
        Err(RunSyncError::Cancelled(c)) => Err(FsError::Cancelled(c)),
        Err(RunSyncError::NoThread(e)) => Err(FsError::io(op, path, e)),
    }
}
