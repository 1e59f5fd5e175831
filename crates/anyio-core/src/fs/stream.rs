//! `FileReadStream` and `FileWriteStream`: files as anyio byte streams (AnyIO's
//! `anyio.streams.file`).

use std::any::{Any, TypeId};
use std::io::SeekFrom;
use std::os::fd::RawFd;
use std::path::{Path as StdPath, PathBuf};

use async_trait::async_trait;

use super::{open_file, AsyncFile, FsError, OpenOptions};
use crate::streams::{
    provide_attribute, AsyncResource, ByteReceiveStream, ByteSendStream, StreamError, TypedAttribute,
    TypedAttributeProvider,
};
use crate::sync::ResourceGuard;

/// The path a file stream was opened with (typed attribute; AnyIO's
/// `FileStreamAttribute.path`).
///
/// ```
/// # anyio::run(async {
/// use anyio::{fs::{FilePath, FileReadStream}, streams::TypedAttributeExt};
/// let s = FileReadStream::from_path("/dev/null").await?;
/// assert_eq!(s.extra::<FilePath>()?, std::path::PathBuf::from("/dev/null"));
/// # Ok::<_, anyio::AnyError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct FilePath;
impl TypedAttribute for FilePath {
    type Value = PathBuf;
}

/// The file stream's descriptor number while open (typed attribute; AnyIO's
/// `FileStreamAttribute.fileno`).
///
/// ```
/// # anyio::run(async {
/// use anyio::{fs::{FileDescriptor, FileReadStream}, streams::TypedAttributeExt};
/// let s = FileReadStream::from_path("/dev/null").await?;
/// assert!(s.extra::<FileDescriptor>()? >= 0);
/// # Ok::<_, anyio::AnyError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct FileDescriptor;
impl TypedAttribute for FileDescriptor {
    type Value = RawFd;
}

fn stream_error(e: FsError) -> StreamError {
    match e {
        FsError::Closed { .. } => StreamError::Closed,
        FsError::Cancelled(c) => StreamError::Cancelled(c),
        FsError::Io { source, .. } => StreamError::Broken(Some(source)),
        FsError::InvalidArgument(_) => StreamError::InvalidArgument("invalid argument"),
    }
}

fn attribute(file: &AsyncFile, key: TypeId) -> Option<Box<dyn Any + Send>> {
    provide_attribute::<FilePath>(key, || file.path().map(StdPath::to_path_buf))
        .or_else(|| provide_attribute::<FileDescriptor>(key, || file.raw_fd()))
}

/// A file read as a byte stream (AnyIO's `FileReadStream`): `receive` returns its bytes in
/// order, then [`StreamError::EndOfStream`].
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{fs::FileReadStream, streams::ByteReceiveStream};
/// let s = FileReadStream::from_path("/dev/zero").await?;
/// assert_eq!(s.receive(2).await?, [0, 0]);
/// # Ok::<_, anyio::AnyError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct FileReadStream {
    file: AsyncFile,
    guard: ResourceGuard,
}

impl FileReadStream {
    /// Opens `path` for reading.
    ///
    /// # Errors
    ///
    /// As [`open_file`].
    ///
    /// # Cancel safety
    ///
    /// As [`open_file`].
    pub async fn from_path(path: impl AsRef<StdPath>) -> Result<Self, FsError> {
        Ok(Self::new(open_file(path, OpenOptions::from_mode("r")?).await?))
    }

    /// A stream over an open file, from its current position.
    ///
    /// ```
    /// let s = anyio::fs::FileReadStream::new(anyio::fs::wrap_file(std::fs::File::open("/dev/null").unwrap()));
    /// # drop(s);
    /// ```
    pub fn new(file: AsyncFile) -> Self {
        FileReadStream { file, guard: ResourceGuard::new("reading from") }
    }

    /// Moves the read position; returns the new one.
    ///
    /// # Errors
    ///
    /// As [`AsyncFile::seek`].
    ///
    /// # Cancel safety
    ///
    /// As [`AsyncFile::seek`].
    pub async fn seek(&self, pos: SeekFrom) -> Result<u64, FsError> {
        self.file.seek(pos).await
    }

    /// The read position.
    ///
    /// # Errors
    ///
    /// As [`AsyncFile::tell`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn tell(&self) -> Result<u64, FsError> {
        self.file.tell().await
    }
}

impl TypedAttributeProvider for FileReadStream {
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        attribute(&self.file, key)
    }
}

#[async_trait]
impl AsyncResource for FileReadStream {
    /// Closes the file; later receives fail with [`StreamError::Closed`].
    async fn aclose(&self) -> Result<(), StreamError> {
        self.file.close().await.map_err(stream_error)
    }
}

#[async_trait]
impl ByteReceiveStream for FileReadStream {
    /// # Cancel safety
    ///
    /// Cancel safe: bytes a cancelled receive's worker read are returned by the next receive.
    async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, StreamError> {
        if buf.is_empty() {
            return Err(StreamError::InvalidArgument("the receive buffer must hold at least 1 byte"));
        }
        let _busy = self.guard.enter().map_err(StreamError::Busy)?;
        match self.file.read_into(buf).await.map_err(stream_error)? {
            0 => Err(StreamError::EndOfStream),
            n => Ok(n),
        }
    }

    /// # Cancel safety
    ///
    /// As [`receive_into`](Self::receive_into).
    async fn receive(&self, max_bytes: usize) -> Result<Vec<u8>, StreamError> {
        if max_bytes == 0 {
            return Err(StreamError::InvalidArgument("max_bytes must be at least 1"));
        }
        let _busy = self.guard.enter().map_err(StreamError::Busy)?;
        let data = self.file.read(max_bytes.min(65536)).await.map_err(stream_error)?;
        if data.is_empty() {
            return Err(StreamError::EndOfStream);
        }
        Ok(data)
    }
}

/// A file written as a byte stream (AnyIO's `FileWriteStream`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{fs::FileWriteStream, streams::{AsyncResource, ByteSendStream}};
/// let path = std::env::temp_dir().join(format!("anyio-fws-doc-{}", std::process::id()));
/// let s = FileWriteStream::from_path(&path, false).await?;
/// s.send(b"abc").await?;
/// s.aclose().await?;
/// assert_eq!(std::fs::read(&path)?, b"abc");
/// # std::fs::remove_file(&path)?;
/// # Ok::<_, anyio::AnyError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct FileWriteStream {
    file: AsyncFile,
    guard: ResourceGuard,
}

impl FileWriteStream {
    /// Opens `path` for writing: created if missing; emptied first, or with `append`, added to.
    ///
    /// # Errors
    ///
    /// As [`open_file`].
    ///
    /// # Cancel safety
    ///
    /// As [`open_file`].
    pub async fn from_path(path: impl AsRef<StdPath>, append: bool) -> Result<Self, FsError> {
        let mode = if append { "a" } else { "w" };
        Ok(Self::new(open_file(path, OpenOptions::from_mode(mode)?).await?))
    }

    /// A stream over an open file, from its current position.
    ///
    /// ```
    /// let f = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
    /// let s = anyio::fs::FileWriteStream::new(anyio::fs::wrap_file(f));
    /// # drop(s);
    /// ```
    pub fn new(file: AsyncFile) -> Self {
        FileWriteStream { file, guard: ResourceGuard::new("writing to") }
    }

    /// Moves the write position; returns the new one.
    ///
    /// # Errors
    ///
    /// As [`AsyncFile::seek`].
    ///
    /// # Cancel safety
    ///
    /// As [`AsyncFile::seek`].
    pub async fn seek(&self, pos: SeekFrom) -> Result<u64, FsError> {
        self.file.seek(pos).await
    }

    /// The write position.
    ///
    /// # Errors
    ///
    /// As [`AsyncFile::tell`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn tell(&self) -> Result<u64, FsError> {
        self.file.tell().await
    }
}

impl TypedAttributeProvider for FileWriteStream {
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        attribute(&self.file, key)
    }
}

#[async_trait]
impl AsyncResource for FileWriteStream {
    /// Closes the file; later sends fail with [`StreamError::Closed`].
    async fn aclose(&self) -> Result<(), StreamError> {
        self.file.close().await.map_err(stream_error)
    }
}

#[async_trait]
impl ByteSendStream for FileWriteStream {
    /// # Cancel safety
    ///
    /// Not abandoned once started: a cancelled send still writes everything.
    async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        let _busy = self.guard.enter().map_err(StreamError::Busy)?;
        self.file.write_all(data).await.map_err(stream_error)
    }
}
