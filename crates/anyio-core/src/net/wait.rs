//! Waiting for a raw descriptor to become readable or writable (AnyIO's `wait_readable` and
//! `wait_writable`).

use std::os::fd::AsFd;

use super::error::SocketError;
use super::io::{Dir, IoCore};

const ACTIONS: [&str; 2] = ["waiting for readability of", "waiting for writability of"];

/// Waits until `fd` (a socket, pipe, terminal, ...) is readable: data or end of file can be
/// read without blocking.
///
/// The descriptor is registered for the wait through a duplicate, so it stays as it is
/// (blocking mode included) and may be registered elsewhere too.
///
/// # Errors
///
/// [`SocketError::Io`] when the descriptor cannot be watched (a regular file, a closed
/// descriptor).
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Examples
///
/// ```
/// # anyio_core::__doc_block_on(async {
/// use std::io::Write;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
/// b.write_all(b"x")?;
/// anyio_core::wait_readable(&a).await?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn wait_readable(fd: impl AsFd) -> Result<(), SocketError> {
    wait(fd, Dir::Receive).await
}

/// Waits until `fd` is writable without blocking. See [`wait_readable`].
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Examples
///
/// ```
/// # anyio_core::__doc_block_on(async {
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// anyio_core::wait_writable(&a).await?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub async fn wait_writable(fd: impl AsFd) -> Result<(), SocketError> {
    wait(fd, Dir::Send).await
}

async fn wait(fd: impl AsFd, dir: Dir) -> Result<(), SocketError> {
    crate::checkpoint_if_cancelled()?;
    // A duplicate: registering must not change the caller's descriptor (O_NONBLOCK is shared
    // by duplicates, so the duplicate is left in whatever mode it is).
    let dup = fd.as_fd().try_clone_to_owned()?;
    let core = IoCore::new_nonblocking(dup, ACTIONS)?;
    core.ready(dir).await?;
    Ok(())
}
