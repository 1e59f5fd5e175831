//! The child's standard streams as anyio byte streams: a pipe registered with the reactor,
//! with the same Busy/Closed/Broken/EndOfStream rules as a socket.

use std::any::{Any, TypeId};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};

use async_trait::async_trait;

use crate::net::error::OpError;
use crate::net::io::{recv_to_vec, Dir, IoCore, MAX_RECEIVE};
use crate::streams::{AsyncResource, ByteReceiveStream, ByteSendStream, StreamError, TypedAttributeProvider};

/// `read(2)` into possibly uninitialised memory, retried if a signal interrupts it.
fn read_fd(fd: &impl AsRawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of its length; `read` writes at most that many
        // bytes and never reads them.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `write(2)`, retried if a signal interrupts it.
fn write_fd(fd: &impl AsRawFd, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `data` is valid for reads of its length.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The reading end of a pipe from a child process (its stdout or stderr).
///
/// A [`ByteReceiveStream`]: `receive` returns what the child wrote, then
/// [`StreamError::EndOfStream`] once every copy of the writing end is closed (the child and
/// any grandchild that inherited it exited).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::process::{open_process, ProcessOptions};
/// use anyio::streams::ByteReceiveStream;
/// let mut p = open_process(["echo", "hi"], ProcessOptions::new()).await?;
/// let out = p.take_stdout().unwrap();
/// assert_eq!(out.receive(100).await?, b"hi\n");
/// p.wait().await?;
/// # Ok::<_, anyio::AnyError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct PipeReceiveStream {
    core: IoCore,
}

impl PipeReceiveStream {
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Self> {
        Ok(Self { core: IoCore::new(fd, ["reading from", "writing to"])? })
    }
}

impl TypedAttributeProvider for PipeReceiveStream {
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        let _ = key;
        None
    }
}

#[async_trait]
impl AsyncResource for PipeReceiveStream {
    /// Closes this end at once; a receive blocked in another task ends with
    /// [`StreamError::Closed`]. A child that writes afterwards gets `EPIPE`/SIGPIPE.
    async fn aclose(&self) -> Result<(), StreamError> {
        self.core.close();
        Ok(())
    }
}

#[async_trait]
impl ByteReceiveStream for PipeReceiveStream {
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled receive read nothing.
    async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, StreamError> {
        if buf.is_empty() {
            return Err(StreamError::InvalidArgument("the receive buffer must hold at least 1 byte"));
        }
        let want = buf.len();
        let n = self
            .core
            .read_io(
                |s| {
                    // SAFETY: an initialised `[u8]` is a valid `[MaybeUninit<u8>]`, and
                    // `read_fd` only writes bytes into it.
                    let raw = unsafe { &mut *(&mut *buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
                    read_fd(s, raw)
                },
                move |&n| n > 0 && n < want,
            )
            .await
            .map_err(StreamError::from)?;
        if n == 0 {
            return Err(StreamError::EndOfStream);
        }
        Ok(n)
    }

    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled receive read nothing.
    async fn receive(&self, max_bytes: usize) -> Result<Vec<u8>, StreamError> {
        if max_bytes == 0 {
            return Err(StreamError::InvalidArgument("max_bytes must be at least 1"));
        }
        let cap = max_bytes.min(MAX_RECEIVE);
        let (data, ()) = self
            .core
            .read_io(
                |s| recv_to_vec(cap, |b| Ok((read_fd(s, b)?, ()))),
                |(v, ())| !v.is_empty() && v.len() < cap,
            )
            .await
            .map_err(StreamError::from)?;
        if data.is_empty() {
            return Err(StreamError::EndOfStream);
        }
        Ok(data)
    }
}

/// The writing end of a pipe to a child process (its stdin).
///
/// A [`ByteSendStream`]; [`send_eof`](Self::send_eof) closes it so the child reads end of file.
/// A child that exited (or closed its stdin) makes sends fail with
/// [`StreamError::Broken`], as long as SIGPIPE is ignored, which Rust programs do from the
/// start; in a process that restored SIGPIPE's default, such a write kills the process.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::process::{open_process, ProcessOptions};
/// use anyio::streams::{ByteReceiveStream, ByteSendStream};
/// let mut p = open_process(["cat"], ProcessOptions::new()).await?;
/// let stdin = p.take_stdin().unwrap();
/// stdin.send(b"echo").await?;
/// stdin.send_eof().await?;
/// assert_eq!(p.stdout().unwrap().receive(100).await?, b"echo");
/// assert_eq!(p.wait().await?, 0);
/// # Ok::<_, anyio::AnyError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct PipeSendStream {
    core: IoCore,
}

impl PipeSendStream {
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Self> {
        Ok(Self { core: IoCore::new(fd, ["reading from", "writing to"])? })
    }

    /// Closes the pipe, so the child reads end of file; later sends fail with
    /// [`StreamError::Closed`]. A checkpoint.
    ///
    /// # Errors
    ///
    /// [`StreamError::Cancelled`] if the enclosing scope is cancelled (then nothing closed).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it either closed the pipe or did nothing.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::process::{run_process, open_process, ProcessOptions};
    /// let mut p = open_process(["cat"], ProcessOptions::new()).await?;
    /// p.stdin().unwrap().send_eof().await?;
    /// assert_eq!(p.wait().await?, 0);
    /// # Ok::<_, anyio::AnyError>(())
    /// # }).unwrap();
    /// ```
    pub async fn send_eof(&self) -> Result<(), StreamError> {
        crate::lowlevel::checkpoint_if_cancelled()?;
        self.core.close();
        Ok(())
    }

    fn write_all<'a>(
        &'a self,
        data: &'a [u8],
    ) -> impl std::future::Future<Output = Result<(), OpError>> + 'a {
        let mut sent = 0;
        self.core.io(Dir::Send, move |s| {
            while sent < data.len() {
                sent += write_fd(s, &data[sent..])?;
            }
            Ok(())
        })
    }
}

impl TypedAttributeProvider for PipeSendStream {
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        let _ = key;
        None
    }
}

#[async_trait]
impl AsyncResource for PipeSendStream {
    /// Closes the pipe at once (the child reads end of file); a send blocked in another task
    /// ends with [`StreamError::Closed`].
    async fn aclose(&self) -> Result<(), StreamError> {
        self.core.close();
        Ok(())
    }
}

#[async_trait]
impl ByteSendStream for PipeSendStream {
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled send may have written part of `data`.
    async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        self.write_all(data).await.map_err(StreamError::from)
    }

    /// One write of what the pipe takes now. Cancel safe: a cancelled call wrote nothing.
    async fn send_some(&self, data: &[u8]) -> Result<usize, StreamError> {
        if data.is_empty() {
            crate::lowlevel::checkpoint_if_cancelled()?;
            return Ok(0);
        }
        self.core.io(Dir::Send, move |s| write_fd(s, data)).await.map_err(StreamError::from)
    }
}
