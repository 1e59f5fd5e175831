//! `Path`: a path whose filesystem operations run on worker threads (AnyIO's `Path`).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::ops::Deref;
use std::path::{Path as StdPath, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{blocking, open_file, AsyncFile, FsError, OpenOptions};

/// A filesystem path (AnyIO's `anyio.Path`).
///
/// It dereferences to [`std::path::Path`] for everything that does not touch the filesystem
/// (`file_name`, `extension`, `parent`, `components`...). The filesystem operations are async
/// and run on worker threads. Queries (`exists`, `stat`, `read_bytes`, `iterdir`...) are
/// abandoned when their caller is cancelled; operations that change the filesystem
/// (`write_bytes`, `mkdir`, `rename`, `unlink`...) are waited for, so a cancelled caller never
/// leaves it half-changed without knowing (AnyIO's split).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::fs::Path;
/// let dir = Path::new(std::env::temp_dir()).join(format!("anyio-path-doc-{}", std::process::id()));
/// dir.mkdir(false, true).await?;
/// let file = dir.join("hello.txt");
/// file.write_text("hi").await?;
/// assert_eq!(file.read_text().await?, "hi");
/// assert_eq!(file.extension().unwrap(), "txt"); // std::path::Path's, through Deref
/// file.unlink(false).await?;
/// dir.rmdir().await?;
/// # Ok::<_, anyio::fs::FsError>(())
/// # }).unwrap();
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Path(PathBuf);

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.display(), f)
    }
}

impl Deref for Path {
    type Target = StdPath;
    fn deref(&self) -> &StdPath {
        &self.0
    }
}

impl AsRef<StdPath> for Path {
    fn as_ref(&self) -> &StdPath {
        &self.0
    }
}

impl From<PathBuf> for Path {
    fn from(p: PathBuf) -> Self {
        Path(p)
    }
}

impl From<&StdPath> for Path {
    fn from(p: &StdPath) -> Self {
        Path(p.to_path_buf())
    }
}

impl From<&str> for Path {
    fn from(p: &str) -> Self {
        Path(p.into())
    }
}

impl From<String> for Path {
    fn from(p: String) -> Self {
        Path(p.into())
    }
}

impl From<Path> for PathBuf {
    fn from(p: Path) -> PathBuf {
        p.0
    }
}

/// The queries: abandoned when the caller is cancelled.
macro_rules! query {
    ($self:ident, $op:literal, |$p:ident| $body:expr) => {{
        let $p = $self.0.clone();
        blocking($op, Some(&$self.0), true, None, move || $body).await
    }};
}

/// The operations that change the filesystem: always waited for.
macro_rules! change {
    ($self:ident, $op:literal, |$p:ident| $body:expr) => {{
        let $p = $self.0.clone();
        blocking($op, Some(&$self.0), false, None, move || $body).await
    }};
}

/// A kind test: `false` for a path that does not exist or cannot be read (Python's rule).
fn kind_test(
    path: &StdPath,
    follow: bool,
    test: impl FnOnce(&std::fs::FileType) -> bool,
) -> io::Result<bool> {
    let meta = if follow { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) };
    Ok(meta.map(|m| test(&m.file_type())).unwrap_or(false))
}

impl Path {
    /// A path (nothing is checked).
    ///
    /// ```
    /// assert_eq!(anyio::fs::Path::new("/tmp").to_str(), Some("/tmp"));
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Path(path.into())
    }

    /// The `std` path.
    ///
    /// ```
    /// let p: std::path::PathBuf = anyio::fs::Path::new("a").into_path_buf();
    /// ```
    pub fn into_path_buf(self) -> PathBuf {
        self.0
    }

    /// This path with `part` appended (std's `join`, returning a `Path`).
    ///
    /// ```
    /// assert_eq!(anyio::fs::Path::new("/a").join("b").to_str(), Some("/a/b"));
    /// ```
    pub fn join(&self, part: impl AsRef<StdPath>) -> Path {
        Path(self.0.join(part))
    }

    /// The current working directory.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] if it was removed.
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(anyio::fs::Path::cwd().await?.is_absolute());
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn cwd() -> Result<Path, FsError> {
        blocking("get the working directory", None, true, None, || std::env::current_dir().map(Path)).await
    }

    /// The user's home directory (`HOME`; Python's `Path.home`).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] with `NotFound` when `HOME` is not set.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// ```
    /// # anyio::run(async {
    /// # if std::env::var_os("HOME").is_some() {
    /// assert!(anyio::fs::Path::home().await?.is_absolute());
    /// # }
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn home() -> Result<Path, FsError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        match std::env::var_os("HOME") {
            Some(h) if !h.is_empty() => Ok(Path::new(h)),
            _ => Err(FsError::io(
                "find the home directory",
                None,
                io::Error::new(io::ErrorKind::NotFound, "HOME is not set"),
            )),
        }
    }

    /// This path made absolute against the working directory, without resolving links
    /// (Python's `absolute`).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] if the working directory is gone.
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(anyio::fs::Path::new("x").absolute().await?.is_absolute());
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn absolute(&self) -> Result<Path, FsError> {
        query!(self, "make absolute", |p| std::path::absolute(&p).map(Path))
    }

    /// Whether this is a mount point (on another device than its parent, or the root).
    ///
    /// # Errors
    ///
    /// As [`exists`](Self::exists).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(anyio::fs::Path::new("/").is_mount().await?);
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[allow(clippy::wrong_self_convention)]
    pub async fn is_mount(&self) -> Result<bool, FsError> {
        use std::os::unix::fs::MetadataExt;
        query!(self, "stat", |p| {
            let Ok(me) = std::fs::symlink_metadata(&p) else { return Ok(false) };
            if !me.is_dir() {
                return Ok(false);
            }
            let parent = std::fs::symlink_metadata(p.join(".."))?;
            Ok(me.dev() != parent.dev() || me.ino() == parent.ino())
        })
    }

    /// Whether the path exists (following symbolic links).
    ///
    /// # Errors
    ///
    /// Only [`FsError::Cancelled`]: an unreadable path does not exist, as in Python.
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(anyio::fs::Path::new("/").exists().await?);
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn exists(&self) -> Result<bool, FsError> {
        query!(self, "stat", |p| Ok(std::fs::metadata(&p).is_ok()))
    }

    /// Whether it is a directory (following symbolic links).
    ///
    /// # Errors
    ///
    /// As [`exists`](Self::exists).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(anyio::fs::Path::new("/").is_dir().await?);
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[allow(clippy::wrong_self_convention)]
    pub async fn is_dir(&self) -> Result<bool, FsError> {
        query!(self, "stat", |p| kind_test(&p, true, |t| t.is_dir()))
    }

    /// Whether it is a regular file (following symbolic links).
    ///
    /// # Errors
    ///
    /// As [`exists`](Self::exists).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(!anyio::fs::Path::new("/").is_file().await?);
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[allow(clippy::wrong_self_convention)]
    pub async fn is_file(&self) -> Result<bool, FsError> {
        query!(self, "stat", |p| kind_test(&p, true, |t| t.is_file()))
    }

    /// Whether it is a symbolic link (not followed).
    ///
    /// # Errors
    ///
    /// As [`exists`](Self::exists).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(!anyio::fs::Path::new("/").is_symlink().await?);
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[allow(clippy::wrong_self_convention)]
    pub async fn is_symlink(&self) -> Result<bool, FsError> {
        query!(self, "stat", |p| kind_test(&p, false, |t| t.is_symlink()))
    }

    /// Whether it is a named pipe (following symbolic links).
    ///
    /// # Errors
    ///
    /// As [`exists`](Self::exists).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    #[allow(clippy::wrong_self_convention)]
    pub async fn is_fifo(&self) -> Result<bool, FsError> {
        use std::os::unix::fs::FileTypeExt;
        query!(self, "stat", |p| kind_test(&p, true, |t| t.is_fifo()))
    }

    /// Whether it is a Unix socket (following symbolic links).
    ///
    /// # Errors
    ///
    /// As [`exists`](Self::exists).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    #[allow(clippy::wrong_self_convention)]
    pub async fn is_socket(&self) -> Result<bool, FsError> {
        use std::os::unix::fs::FileTypeExt;
        query!(self, "stat", |p| kind_test(&p, true, |t| t.is_socket()))
    }

    /// Whether it is a block device (following symbolic links).
    ///
    /// # Errors
    ///
    /// As [`exists`](Self::exists).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    #[allow(clippy::wrong_self_convention)]
    pub async fn is_block_device(&self) -> Result<bool, FsError> {
        use std::os::unix::fs::FileTypeExt;
        query!(self, "stat", |p| kind_test(&p, true, |t| t.is_block_device()))
    }

    /// Whether it is a character device (following symbolic links).
    ///
    /// # Errors
    ///
    /// As [`exists`](Self::exists).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(anyio::fs::Path::new("/dev/null").is_char_device().await?);
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[allow(clippy::wrong_self_convention)]
    pub async fn is_char_device(&self) -> Result<bool, FsError> {
        use std::os::unix::fs::FileTypeExt;
        query!(self, "stat", |p| kind_test(&p, true, |t| t.is_char_device()))
    }

    /// Metadata, following symbolic links (Python's `stat`).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path (missing, no permission).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(anyio::fs::Path::new("/").stat().await?.is_dir());
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    #[doc(alias = "metadata")]
    pub async fn stat(&self) -> Result<std::fs::Metadata, FsError> {
        query!(self, "stat", |p| std::fs::metadata(&p))
    }

    /// Metadata of the link itself (Python's `lstat`).
    ///
    /// # Errors
    ///
    /// As [`stat`](Self::stat).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    #[doc(alias = "symlink_metadata")]
    pub async fn lstat(&self) -> Result<std::fs::Metadata, FsError> {
        query!(self, "stat", |p| std::fs::symlink_metadata(&p))
    }

    /// The whole file.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path (missing, a directory...).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    ///
    /// ```
    /// # anyio::run(async {
    /// assert!(anyio::fs::Path::new("/dev/null").read_bytes().await?.is_empty());
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn read_bytes(&self) -> Result<Vec<u8>, FsError> {
        query!(self, "read", |p| std::fs::read(&p))
    }

    /// The whole file as UTF-8 text.
    ///
    /// # Errors
    ///
    /// As [`read_bytes`](Self::read_bytes), and `InvalidData` for text that is not UTF-8.
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    pub async fn read_text(&self) -> Result<String, FsError> {
        query!(self, "read", |p| std::fs::read_to_string(&p))
    }

    /// Replaces the file's contents with `data` (creating it).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path (a missing directory, no permission, a full disk).
    ///
    /// # Cancel safety
    ///
    /// Waited for once started: the write completes even if the caller is cancelled.
    pub async fn write_bytes(&self, data: impl Into<Vec<u8>>) -> Result<(), FsError> {
        let data = data.into();
        change!(self, "write", |p| std::fs::write(&p, data))
    }

    /// Replaces the file's contents with `text` (creating it).
    ///
    /// # Errors
    ///
    /// As [`write_bytes`](Self::write_bytes).
    ///
    /// # Cancel safety
    ///
    /// As [`write_bytes`](Self::write_bytes).
    pub async fn write_text(&self, text: impl Into<String>) -> Result<(), FsError> {
        self.write_bytes(text.into().into_bytes()).await
    }

    /// Creates the directory; with `parents`, missing parents too; with `exist_ok`, an
    /// existing directory is not an error.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path (`AlreadyExists`, a missing parent, no permission).
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn mkdir(&self, parents: bool, exist_ok: bool) -> Result<(), FsError> {
        change!(self, "create directory", |p| {
            let r = if parents {
                // create_dir_all succeeds for an existing directory; Python's mkdir does not.
                if !exist_ok && std::fs::symlink_metadata(&p).is_ok() {
                    return Err(io::Error::new(io::ErrorKind::AlreadyExists, "already exists"));
                }
                std::fs::create_dir_all(&p)
            } else {
                std::fs::create_dir(&p)
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && exist_ok && p.is_dir() => Ok(()),
                other => other,
            }
        })
    }

    /// Removes the (empty) directory.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path (missing, not empty, not a directory).
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn rmdir(&self) -> Result<(), FsError> {
        change!(self, "remove directory", |p| std::fs::remove_dir(&p))
    }

    /// Removes the directory and everything in it.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn remove_tree(&self) -> Result<(), FsError> {
        change!(self, "remove tree", |p| std::fs::remove_dir_all(&p))
    }

    /// Removes the file or link; with `missing_ok`, a missing one is not an error.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path (missing, a directory, no permission).
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    ///
    /// ```
    /// # anyio::run(async {
    /// anyio::fs::Path::new("/tmp/anyio-surely-missing").unlink(true).await?;
    /// # Ok::<_, anyio::fs::FsError>(())
    /// # }).unwrap();
    /// ```
    pub async fn unlink(&self, missing_ok: bool) -> Result<(), FsError> {
        change!(self, "remove", |p| match std::fs::remove_file(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && missing_ok => Ok(()),
            other => other,
        })
    }

    /// Renames to `target` (replacing a file there, as `rename(2)`); returns the new path.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming this path.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    #[doc(alias = "replace")]
    pub async fn rename(&self, target: impl AsRef<StdPath>) -> Result<Path, FsError> {
        let target = target.as_ref().to_path_buf();
        change!(self, "rename", |p| std::fs::rename(&p, &target).map(|()| Path(target)))
    }

    /// The absolute path with symbolic links resolved (Python's `resolve(strict=True)`).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path (missing).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    #[doc(alias = "canonicalize")]
    pub async fn resolve(&self) -> Result<Path, FsError> {
        query!(self, "resolve", |p| std::fs::canonicalize(&p).map(Path))
    }

    /// Whether this and `other` are the same file (same device and inode).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] if either cannot be read.
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    pub async fn samefile(&self, other: impl AsRef<StdPath>) -> Result<bool, FsError> {
        use std::os::unix::fs::MetadataExt;
        let other = other.as_ref().to_path_buf();
        query!(self, "stat", |p| {
            let (a, b) = (std::fs::metadata(&p)?, std::fs::metadata(&other)?);
            Ok(a.dev() == b.dev() && a.ino() == b.ino())
        })
    }

    /// Makes this path a symbolic link to `target`.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming this path (`AlreadyExists`...).
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn symlink_to(&self, target: impl AsRef<StdPath>) -> Result<(), FsError> {
        let target = target.as_ref().to_path_buf();
        change!(self, "create symbolic link", |p| std::os::unix::fs::symlink(&target, &p))
    }

    /// Makes this path a hard link to `target`.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming this path.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn hardlink_to(&self, target: impl AsRef<StdPath>) -> Result<(), FsError> {
        let target = target.as_ref().to_path_buf();
        change!(self, "create hard link", |p| std::fs::hard_link(&target, &p))
    }

    /// Where the symbolic link points.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path (missing, not a link).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    pub async fn readlink(&self) -> Result<Path, FsError> {
        query!(self, "read link", |p| std::fs::read_link(&p).map(Path))
    }

    /// Sets the permission bits (`chmod`).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn chmod(&self, mode: u32) -> Result<(), FsError> {
        use std::os::unix::fs::PermissionsExt;
        change!(self, "chmod", |p| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)))
    }

    /// Creates the file if missing, or updates its modification time; with `exist_ok` false,
    /// an existing file is an error (Python's `touch`).
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming the path.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn touch(&self, exist_ok: bool) -> Result<(), FsError> {
        change!(self, "touch", |p| {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .create_new(!exist_ok)
                .open(&p)?;
            file.set_modified(std::time::SystemTime::now())
        })
    }

    /// Copies the file's contents and permissions to `target`; returns the bytes copied.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming this path.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    pub async fn copy(&self, target: impl AsRef<StdPath>) -> Result<u64, FsError> {
        let target = target.as_ref().to_path_buf();
        change!(self, "copy", |p| std::fs::copy(&p, &target))
    }

    /// Moves to `target`: a rename, or a copy and removal across file systems; returns the new
    /// path.
    ///
    /// # Errors
    ///
    /// [`FsError::Io`] naming this path.
    ///
    /// # Cancel safety
    ///
    /// Waited for once started.
    #[doc(alias = "move")]
    pub async fn move_to(&self, target: impl AsRef<StdPath>) -> Result<Path, FsError> {
        let target = target.as_ref().to_path_buf();
        change!(self, "move", |p| {
            match std::fs::rename(&p, &target) {
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    std::fs::copy(&p, &target)?;
                    std::fs::remove_file(&p)?;
                }
                other => other?,
            }
            Ok(Path(target))
        })
    }

    /// Opens the file ([`open_file`](super::open_file) on this path).
    ///
    /// # Errors
    ///
    /// As [`open_file`](super::open_file).
    ///
    /// # Cancel safety
    ///
    /// As [`open_file`](super::open_file).
    pub async fn open(&self, options: OpenOptions) -> Result<AsyncFile, FsError> {
        open_file(&self.0, options).await
    }

    /// The directory's entries, as a [`Stream`] of paths (Python's `iterdir`), read in
    /// batches on a worker.
    ///
    /// # Errors
    ///
    /// The stream's first item is [`FsError::Io`] naming the path if it is missing or not a
    /// directory.
    ///
    /// ```
    /// # anyio::run(async {
    /// use futures::StreamExt;
    /// let entries: Vec<_> = anyio::fs::Path::new("/").iterdir().collect().await;
    /// assert!(entries.iter().all(|e| e.is_ok()));
    /// # });
    /// ```
    pub fn iterdir(&self) -> ReadDir {
        let path = self.0.clone();
        ReadDir {
            inner: Box::pin(futures_util::stream::unfold(
                (None::<std::fs::ReadDir>, Some(path), Vec::<Path>::new().into_iter(), false),
                |(mut dir, path, mut batch, mut done)| async move {
                    loop {
                        if let Some(p) = batch.next() {
                            return Some((Ok(p), (dir, path, batch, done)));
                        }
                        if done {
                            return None;
                        }
                        let at = path.clone();
                        let r = blocking("list directory", path.as_deref(), true, None, move || {
                            let mut dir = match dir {
                                Some(d) => d,
                                None => std::fs::read_dir(at.as_deref().expect("a path"))?,
                            };
                            let mut out = Vec::with_capacity(READ_DIR_BATCH);
                            let mut ended = true;
                            for entry in dir.by_ref() {
                                out.push(Path(entry?.path()));
                                if out.len() == READ_DIR_BATCH {
                                    ended = false;
                                    break;
                                }
                            }
                            Ok((dir, out, ended))
                        })
                        .await;
                        match r {
                            Ok((d, out, ended)) => {
                                dir = Some(d);
                                batch = out.into_iter();
                                done = ended;
                            }
                            Err(e) => return Some((Err(e), (None, path, Vec::new().into_iter(), true))),
                        }
                    }
                },
            )),
        }
    }

    /// The paths under this one that match `pattern` (`*`, `?`, `[...]`, and `**` for any
    /// number of directories), sorted. As Python's, it does not follow symbolic links to
    /// directories (a link loop cannot make it recurse), `*` does not cross `/`, and it matches
    /// names starting with a dot. Subdirectories that cannot be read are skipped.
    ///
    /// # Errors
    ///
    /// [`FsError::InvalidArgument`] for a malformed pattern; [`FsError::Io`] if this directory
    /// cannot be read.
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    pub async fn glob(&self, pattern: &str) -> Result<Vec<Path>, FsError> {
        let compiled = glob::Pattern::new(pattern)
            .map_err(|e| FsError::InvalidArgument(format!("bad glob pattern {pattern:?}: {e}")))?;
        // How deep to look: as many levels as the pattern has components, unless `**` allows
        // any number.
        let components: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
        let depth = if components.contains(&"**") { usize::MAX } else { components.len() };
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        query!(self, "glob", |base| {
            let mut out = Vec::new();
            let mut stack = vec![(base.clone(), 0usize)];
            while let Some((dir, level)) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if dir == base => return Err(e),
                    Err(_) => continue,
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let rel = path.strip_prefix(&base).expect("listed under the base");
                    if compiled.matches_path_with(rel, options) {
                        out.push(Path(path.clone()));
                    }
                    // `file_type` does not follow links: a link to a directory is not entered.
                    if level + 1 < depth && entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push((path, level + 1));
                    }
                }
            }
            out.sort();
            Ok(out)
        })
    }

    /// [`glob`](Self::glob) at any depth: `**/` before `pattern` (Python's `rglob`).
    ///
    /// # Errors
    ///
    /// As [`glob`](Self::glob).
    ///
    /// # Cancel safety
    ///
    /// A query: abandoned when cancelled.
    pub async fn rglob(&self, pattern: &str) -> Result<Vec<Path>, FsError> {
        self.glob(&format!("**/{pattern}")).await
    }

    /// Walks the tree under this directory, top-down, as a [`Stream`] of
    /// `(directory, subdirectory names, file names)` (Python's `Path.walk`); symbolic links are
    /// not followed (they are listed with the files).
    ///
    /// # Errors
    ///
    /// An item is [`FsError::Io`] naming a directory that cannot be read; the walk goes on.
    ///
    /// ```
    /// # anyio::run(async {
    /// use futures::StreamExt;
    /// let dirs: Vec<_> = anyio::fs::Path::new("/proc/self/fdinfo").walk().collect().await;
    /// assert_eq!(dirs.len(), 1);
    /// # });
    /// ```
    pub fn walk(
        &self,
    ) -> impl Stream<Item = Result<(Path, Vec<OsString>, Vec<OsString>), FsError>> + Send + 'static {
        futures_util::stream::unfold(vec![self.0.clone()], |mut stack| async move {
            let dir = stack.pop()?;
            let at = dir.clone();
            let r = blocking("list directory", Some(&dir), true, None, move || {
                let (mut dirs, mut files) = (Vec::new(), Vec::new());
                for entry in std::fs::read_dir(&at)? {
                    let entry = entry?;
                    if entry.file_type()?.is_dir() {
                        dirs.push(entry.file_name());
                    } else {
                        files.push(entry.file_name());
                    }
                }
                dirs.sort();
                files.sort();
                Ok((dirs, files))
            })
            .await;
            match r {
                Ok((dirs, files)) => {
                    // Pushed in reverse, so that they are walked in name order.
                    stack.extend(dirs.iter().rev().map(|d| dir.join(d)));
                    Some((Ok((Path(dir), dirs, files)), stack))
                }
                Err(e) => Some((Err(e), stack)),
            }
        })
    }
}

/// Entries read per trip to a worker by [`Path::iterdir`].
const READ_DIR_BATCH: usize = 256;

/// The stream of a directory's entries: see [`Path::iterdir`].
#[must_use = "streams do nothing unless polled"]
pub struct ReadDir {
    inner: Pin<Box<dyn Stream<Item = Result<Path, FsError>> + Send>>,
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir").finish_non_exhaustive()
    }
}

impl Stream for ReadDir {
    type Item = Result<Path, FsError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}
