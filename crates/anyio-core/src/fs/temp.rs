//! Temporary files and directories (AnyIO's `anyio.TemporaryFile` and friends) over the
//! `tempfile` crate: created and removed on worker threads, removed on drop too.

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Deref;
use std::path::Path as StdPath;
use std::sync::{Arc, Mutex, PoisonError};

use super::{blocking, AsyncFile, FsError, Path};

fn builder<'a>(prefix: &'a str, suffix: &'a str) -> tempfile::Builder<'a, 'a> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix).suffix(suffix);
    b
}

/// The directory for temporary files (`TMPDIR`, else `/tmp`; AnyIO's `gettempdir`).
///
/// # Errors
///
/// Only [`FsError::Cancelled`].
///
/// # Cancel safety
///
/// Cancel safe.
///
/// ```
/// # anyio::run(async {
/// assert!(anyio::fs::gettempdir().await?.is_absolute());
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// ```
pub async fn gettempdir() -> Result<Path, FsError> {
    crate::lowlevel::checkpoint().await?;
    Ok(Path::new(std::env::temp_dir()))
}

/// Creates a new file with a unique name in `dir` (default: [`gettempdir`]) and returns it
/// open for reading and writing, with its path (AnyIO's `mkstemp`). It is not removed: that
/// is the caller's to do.
///
/// # Errors
///
/// [`FsError::Io`] naming the directory.
///
/// # Cancel safety
///
/// Waited for once started (the file exists once it returns).
///
/// ```
/// # anyio::run(async {
/// let (file, path) = anyio::fs::mkstemp("anyio-", ".txt", None).await?;
/// file.write_all(b"kept").await?;
/// assert!(path.file_name().unwrap().to_str().unwrap().starts_with("anyio-"));
/// path.unlink(false).await?;
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// ```
pub async fn mkstemp(
    prefix: &str,
    suffix: &str,
    dir: Option<&StdPath>,
) -> Result<(AsyncFile, Path), FsError> {
    let (prefix, suffix) = (prefix.to_owned(), suffix.to_owned());
    let dir = dir.map(StdPath::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let at = dir.clone();
    let (file, path) = blocking("create a temporary file in", Some(&dir), false, None, move || {
        let named = builder(&prefix, &suffix).tempfile_in(&at)?;
        let (file, path) = named.keep().map_err(|e| e.error)?;
        Ok((file, path))
    })
    .await?;
    Ok((AsyncFile::new(file, Some(path.clone())), Path::new(path)))
}

/// Creates a new directory with a unique name in `dir` (default: [`gettempdir`]); it is not
/// removed (AnyIO's `mkdtemp`).
///
/// # Errors
///
/// [`FsError::Io`] naming the directory.
///
/// # Cancel safety
///
/// Waited for once started.
///
/// ```
/// # anyio::run(async {
/// let dir = anyio::fs::mkdtemp("anyio-", "", None).await?;
/// assert!(dir.is_dir().await?);
/// dir.rmdir().await?;
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// ```
pub async fn mkdtemp(prefix: &str, suffix: &str, dir: Option<&StdPath>) -> Result<Path, FsError> {
    let (prefix, suffix) = (prefix.to_owned(), suffix.to_owned());
    let dir = dir.map(StdPath::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let at = dir.clone();
    blocking("create a temporary directory in", Some(&dir), false, None, move || {
        Ok(Path::new(builder(&prefix, &suffix).tempdir_in(&at)?.keep()))
    })
    .await
}

/// An anonymous temporary file (AnyIO's `TemporaryFile`): it has no name, and the system
/// frees it when it is closed or dropped. Dereferences to [`AsyncFile`].
///
/// ```
/// # anyio::run(async {
/// let f = anyio::fs::TemporaryFile::new().await?;
/// f.write_all(b"scratch").await?;
/// f.seek(std::io::SeekFrom::Start(0)).await?;
/// assert_eq!(f.read_to_end().await?, b"scratch");
/// f.close().await?;
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct TemporaryFile {
    file: AsyncFile,
}

impl TemporaryFile {
    /// Creates one in [`gettempdir`].
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the directory.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn new() -> Result<Self, FsError> {
        let dir = std::env::temp_dir();
        let at = dir.clone();
        let file = blocking("create a temporary file in", Some(&dir), false, None, move || {
            tempfile::tempfile_in(&at)
        })
        .await?;
        Ok(TemporaryFile { file: AsyncFile::new(file, None) })
    }
}

impl Deref for TemporaryFile {
    type Target = AsyncFile;
    fn deref(&self) -> &AsyncFile {
        &self.file
    }
}

/// A temporary file with a name (AnyIO's `NamedTemporaryFile`): removed when
/// [`close`](Self::close)d or dropped, unless [`keep`](Self::keep) was called. Dereferences to
/// [`AsyncFile`].
///
/// ```
/// # anyio::run(async {
/// let f = anyio::fs::NamedTemporaryFile::new("anyio-", ".log").await?;
/// let path = f.path().clone();
/// f.write_all(b"x").await?;
/// assert!(path.exists().await?);
/// f.close().await?;
/// assert!(!path.exists().await?);
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct NamedTemporaryFile {
    file: AsyncFile,
    path: Path,
    /// Removes the file when dropped (`None` once kept or removed).
    remove: Mutex<Option<tempfile::TempPath>>,
}

impl NamedTemporaryFile {
    /// Creates one in [`gettempdir`] named `prefix` + random + `suffix`.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the directory.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn new(prefix: &str, suffix: &str) -> Result<Self, FsError> {
        let (prefix, suffix) = (prefix.to_owned(), suffix.to_owned());
        let dir = std::env::temp_dir();
        let at = dir.clone();
        let named = blocking("create a temporary file in", Some(&dir), false, None, move || {
            builder(&prefix, &suffix).tempfile_in(&at)
        })
        .await?;
        let (file, temp_path) = named.into_parts();
        let path = Path::new(temp_path.to_path_buf());
        Ok(NamedTemporaryFile {
            file: AsyncFile::new(file, Some(temp_path.to_path_buf())),
            path,
            remove: Mutex::new(Some(temp_path)),
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the file when this is closed or dropped (AnyIO's `delete=False`).
    pub fn keep(&self) {
        if let Some(p) = self.remove.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = p.keep();
        }
    }

    /// Closes the file and removes it (unless kept), on a worker.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path if it cannot be removed.
    ///
    /// # Cancel safety
    ///
    /// As [`AsyncFile::close`]; the file is removed in any case (here, or when dropped).
    #[doc(alias = "aclose")]
    pub async fn close(&self) -> Result<(), FsError> {
        self.file.close().await?;
        let Some(p) = self.remove.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return Ok(());
        };
        blocking("remove", Some(&self.path), false, None, move || p.close()).await
    }
}

impl Deref for NamedTemporaryFile {
    type Target = AsyncFile;
    fn deref(&self) -> &AsyncFile {
        &self.file
    }
}

/// A temporary file kept in memory until it grows past `max_size` bytes, then moved to disk
/// (AnyIO's `SpooledTemporaryFile`).
///
/// ```
/// # anyio::run(async {
/// let f = anyio::fs::SpooledTemporaryFile::new(16);
/// f.write_all(b"small").await?;
/// assert!(!f.is_rolled_over());
/// f.write_all(&[0; 32]).await?;
/// assert!(f.is_rolled_over());
/// f.seek(std::io::SeekFrom::Start(0)).await?;
/// assert_eq!(&f.read_to_end().await?[..5], b"small");
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct SpooledTemporaryFile {
    // Locked by the worker for each operation (never on a runtime thread: see `rolled`).
    file: Arc<Mutex<Option<tempfile::SpooledTempFile>>>,
    /// Whether the contents are on disk, as the last operation left them.
    rolled: Arc<std::sync::atomic::AtomicBool>,
}

impl SpooledTemporaryFile {
    /// An empty one that moves to disk past `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        SpooledTemporaryFile {
            file: Arc::new(Mutex::new(Some(tempfile::spooled_tempfile(max_size)))),
            rolled: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    async fn op<T: Send + 'static>(
        &self,
        name: &'static str,
        op: impl FnOnce(&mut tempfile::SpooledTempFile) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, FsError> {
        let (file, rolled) = (self.file.clone(), self.rolled.clone());
        let r = blocking(name, None, false, None, move || {
            let mut guard = file.lock().unwrap_or_else(PoisonError::into_inner);
            match guard.as_mut() {
                Some(f) => {
                    let r = op(f).map(Some);
                    rolled.store(f.is_rolled(), std::sync::atomic::Ordering::Release);
                    r
                }
                None => Ok(None),
            }
        })
        .await?;
        r.ok_or(FsError::Closed { path: None })
    }

    /// Writes all of `data` (moving to disk if it grows past the limit).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`], [`FsError::Closed`](FsError::Closed).
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn write_all(&self, data: &[u8]) -> Result<(), FsError> {
        let data = data.to_vec();
        self.op("write", move |f| f.write_all(&data)).await
    }

    /// Reads up to `max_bytes`; empty at the end.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`], [`FsError::Closed`](FsError::Closed).
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn read(&self, max_bytes: usize) -> Result<Vec<u8>, FsError> {
        self.op("read", move |f| {
            let mut buf = Vec::new();
            f.take(max_bytes as u64).read_to_end(&mut buf)?;
            Ok(buf)
        })
        .await
    }

    /// Reads to the end.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`], [`FsError::Closed`](FsError::Closed).
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn read_to_end(&self) -> Result<Vec<u8>, FsError> {
        self.op("read", |f| {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            Ok(buf)
        })
        .await
    }

    /// Moves the position; returns the new one.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`], [`FsError::Closed`](FsError::Closed).
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn seek(&self, pos: SeekFrom) -> Result<u64, FsError> {
        self.op("seek", move |f| f.seek(pos)).await
    }

    /// Moves the contents to disk now.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`], [`FsError::Closed`](FsError::Closed).
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn rollover(&self) -> Result<(), FsError> {
        self.op("roll over", |f| f.roll()).await
    }

    /// Whether the contents are on disk.
    pub fn is_rolled_over(&self) -> bool {
        self.rolled.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Frees the file; later operations fail with [`FsError::Closed`](FsError::Closed).
    ///
    /// # Errors
    ///
    /// Only [`FsError::Cancelled`] (then nothing was closed).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    #[doc(alias = "aclose")]
    pub async fn close(&self) -> Result<(), FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        let file = self.file.clone();
        blocking("close", None, false, None, move || {
            drop(file.lock().unwrap_or_else(PoisonError::into_inner).take());
            Ok(())
        })
        .await
    }
}

/// A temporary directory (AnyIO's `TemporaryDirectory`), removed with everything in it by
/// [`cleanup`](Self::cleanup) or when dropped.
///
/// ```
/// # anyio::run(async {
/// let dir = anyio::fs::TemporaryDirectory::new().await?;
/// dir.path().join("file").write_text("x").await?;
/// let kept = dir.path().clone();
/// dir.cleanup().await?;
/// assert!(!kept.exists().await?);
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct TemporaryDirectory {
    path: Path,
    dir: Mutex<Option<tempfile::TempDir>>,
}

impl TemporaryDirectory {
    /// Creates one in [`gettempdir`].
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the directory.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn new() -> Result<Self, FsError> {
        let at = std::env::temp_dir();
        let dir =
            blocking("create a temporary directory in", Some(&at), false, None, tempfile::tempdir).await?;
        Ok(TemporaryDirectory { path: Path::new(dir.path().to_path_buf()), dir: Mutex::new(Some(dir)) })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes it and everything in it, on a worker.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn cleanup(&self) -> Result<(), FsError> {
        let Some(dir) = self.dir.lock().unwrap_or_else(PoisonError::into_inner).take() else { return Ok(()) };
        blocking("remove", Some(&self.path), false, None, move || dir.close()).await
    }
}
