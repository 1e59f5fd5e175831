//! `StreamError`: what the stream traits return when a stream cannot do what was asked.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use crate::error::{AnyError, AsCancelled, BrokenResourceError, Cancelled, ClosedResourceError, EndOfStream};
use crate::sync::BusyResourceError;

/// Why a stream operation failed (AnyIO's stream exception taxonomy as one enum).
///
/// # Examples
///
/// ```
/// use anyio::{error::AsCancelled, streams::StreamError};
///
/// let e = StreamError::EndOfStream;
/// assert!(e.to_string().contains("end of stream"));
/// assert!(e.as_cancelled().is_none());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamError {
    /// This stream was closed by our side (AnyIO's `ClosedResourceError`), also when another
    /// task closed it while this operation was waiting.
    Closed,
    /// The other side is gone or the connection broke (`BrokenResourceError`); the OS error,
    /// if there was one, is the source.
    Broken(Option<io::Error>),
    /// The other side finished sending and everything was received (`EndOfStream`). A byte
    /// stream reports this instead of an empty read.
    EndOfStream,
    /// Another task is already receiving (or sending) on this stream (`BusyResourceError`).
    Busy(BusyResourceError),
    /// The enclosing cancel scope was cancelled; the operation did nothing.
    Cancelled(Cancelled),
    /// An argument was out of range; the message says which and what is allowed.
    InvalidArgument(&'static str),
    /// The stream ended before the requested bytes arrived (`IncompleteRead`).
    IncompleteRead,
    /// `max_bytes` bytes were buffered without the delimiter (`DelimiterNotFound`).
    DelimiterNotFound {
        /// The limit that was reached.
        max_bytes: usize,
    },
    /// Any other I/O error.
    Io(io::Error),
    /// The stream cannot do this at all, or not in its current state (for example `send_eof`
    /// on a TLS 1.2 connection); the message says what and why.
    Unsupported(&'static str),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Closed => ClosedResourceError.fmt(f),
            StreamError::Broken(None) => BrokenResourceError.fmt(f),
            StreamError::Broken(Some(e)) => write!(f, "the stream is broken: {e}"),
            StreamError::EndOfStream => EndOfStream.fmt(f),
            StreamError::Busy(b) => b.fmt(f),
            StreamError::Cancelled(c) => c.fmt(f),
            StreamError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            StreamError::IncompleteRead => {
                f.write_str("the stream ended before the requested number of bytes arrived")
            }
            StreamError::DelimiterNotFound { max_bytes } => write!(
                f,
                "no delimiter within the first {max_bytes} bytes; raise max_bytes or check the input"
            ),
            StreamError::Io(e) => e.fmt(f),
            StreamError::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl StdError for StreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            StreamError::Broken(Some(e)) | StreamError::Io(e) => Some(e),
            StreamError::Busy(b) => Some(b),
            StreamError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl AsCancelled for StreamError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            StreamError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl From<Cancelled> for StreamError {
    fn from(c: Cancelled) -> Self {
        StreamError::Cancelled(c)
    }
}

impl From<BusyResourceError> for StreamError {
    fn from(b: BusyResourceError) -> Self {
        StreamError::Busy(b)
    }
}

/// Keeps cancellation recognisable.
impl From<StreamError> for AnyError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Cancelled(c) => c.into(),
            other => AnyError::other(other),
        }
    }
}
