//! The error taxonomy shared by every part of anyio, as AnyIO's: cancellation ([`Cancelled`]),
//! timeouts ([`TimeoutError`]), resources closed by us ([`ClosedResourceError`]) or broken by
//! the peer ([`BrokenResourceError`]), the end of a stream ([`EndOfStream`]), a resource used
//! by two tasks at once ([`BusyResourceError`]), an operation that would block ([`WouldBlock`]),
//! and [`AnyError`], which every anyio error converts into with `?`.
//!
//! Errors that belong to one concern live in its module: [`StreamError`](crate::streams::StreamError),
//! [`GroupError`](crate::task::GroupError), the memory streams' send and receive errors, the
//! primitives' errors in [`sync`](crate::sync), and (on Unix) `net::SocketError`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

#[doc(no_inline)]
pub use crate::sync::BusyResourceError;

/// Why a cancel scope was cancelled.
///
/// # Examples
///
/// ```
/// use anyio::error::CancelSource;
/// assert_eq!(CancelSource::Deadline.to_string(), "deadline exceeded");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelSource {
    /// [`CancelScope::cancel`](crate::cancel::CancelScope::cancel) was called.
    Explicit,
    /// The scope's deadline passed.
    Deadline,
    /// A task in the task group failed or panicked, so its siblings are cancelled.
    GroupChildFailed,
    /// The scope's future was dropped before it finished (it lost a `select!`, say). Anything
    /// still running inside it stays cancelled for good.
    ScopeDropped,
}

impl fmt::Display for CancelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CancelSource::Explicit => "cancelled explicitly",
            CancelSource::Deadline => "deadline exceeded",
            CancelSource::GroupChildFailed => "a sibling task failed",
            CancelSource::ScopeDropped => "the scope's future was dropped",
        })
    }
}

/// What cancelled a scope, and an optional message given to
/// [`CancelScope::cancel_with_reason`](crate::cancel::CancelScope::cancel_with_reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CancelReason {
    pub(crate) source: CancelSource,
    pub(crate) message: Option<String>,
}

/// The error every checkpoint returns while its cancel scope is cancelled.
///
/// Propagate it with `?`: the cancel scope that caused it catches it when the error reaches the
/// scope's boundary (see [`CancelScope::run`](crate::cancel::CancelScope::run)). Code that swallows it
/// keeps running, but every later checkpoint in the same scope fails again (cancellation is
/// level-triggered), so async cleanup belongs in a shielded scope.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{CancelScope, Cancelled, lowlevel::checkpoint};
///
/// let scope = CancelScope::new();
/// scope.cancel();
/// let outcome = scope
///     .run(async {
///         checkpoint().await?; // fails: the scope is cancelled
///         Ok::<_, Cancelled>("unreachable")
///     })
///     .await;
/// assert_eq!(outcome, Ok(None)); // the scope caught its own cancellation
/// # });
/// ```
#[derive(Clone, PartialEq, Eq)]
#[must_use = "a Cancelled error must be propagated (with `?`) so the cancel scope can catch it"]
pub struct Cancelled {
    reason: Arc<CancelReason>,
}

impl Cancelled {
    pub(crate) fn new(reason: Arc<CancelReason>) -> Self {
        Self { reason }
    }

    /// What cancelled the scope.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{CancelScope, error::CancelSource, lowlevel::checkpoint};
    /// let scope = CancelScope::new();
    /// scope.cancel();
    /// let mut seen = None;
    /// let _ = scope.run(async { checkpoint().await.inspect_err(|e| seen = Some(e.source_kind())) }).await;
    /// assert_eq!(seen, Some(CancelSource::Explicit));
    /// # });
    /// ```
    pub fn source_kind(&self) -> CancelSource {
        self.reason.source
    }

    /// The message passed to [`CancelScope::cancel_with_reason`](crate::cancel::CancelScope::cancel_with_reason), if any.
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{CancelScope, lowlevel::checkpoint};
    /// let scope = CancelScope::new();
    /// scope.cancel_with_reason("shutting down");
    /// let mut seen = None;
    /// let _ = scope.run(async { checkpoint().await.inspect_err(|e| seen = e.reason().map(str::to_owned)) }).await;
    /// assert_eq!(seen.as_deref(), Some("shutting down"));
    /// # });
    /// ```
    pub fn reason(&self) -> Option<&str> {
        self.reason.message.as_deref()
    }
}

impl fmt::Debug for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancelled")
            .field("source", &self.reason.source)
            .field("reason", &self.reason.message)
            .finish()
    }
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation cancelled by its cancel scope ({})", self.reason.source)?;
        if let Some(m) = &self.reason.message {
            write!(f, "; reason: {m}")?;
        }
        Ok(())
    }
}

impl StdError for Cancelled {}

/// Recognises the cancellation error inside an error type, so cancel scopes and task groups can
/// tell "this unwound because of cancellation" from real failures.
///
/// Implemented for [`Cancelled`], the crate's own error types, `std::io::Error` and boxed
/// errors. The last two look through the whole chain of wrapped errors (each `source()`, and
/// the error an `io::Error` or an [`AnyError`] wraps), so a `Cancelled` that a foreign library
/// wrapped (hyper's `Error(Io(io::Error(Cancelled)))`, say) is still recognised; see
/// [`Cancelled::find_in`]. Implement it for your own error enum by returning the `Cancelled`
/// held by its cancellation variant, and `Cancelled::find_in` for variants wrapping foreign
/// errors.
///
/// # Examples
///
/// ```
/// use anyio::{Cancelled, error::AsCancelled};
///
/// #[derive(Debug)]
/// enum MyError {
///     Cancelled(Cancelled),
///     Io(std::io::Error),
///     Parse(String),
/// }
///
/// impl AsCancelled for MyError {
///     fn as_cancelled(&self) -> Option<&Cancelled> {
///         match self {
///             MyError::Cancelled(c) => Some(c),
///             MyError::Io(e) => Cancelled::find_in(e),
///             MyError::Parse(_) => None,
///         }
///     }
/// }
///
/// assert!(MyError::Parse("x".into()).as_cancelled().is_none());
/// ```
pub trait AsCancelled {
    /// The cancellation error this error carries, if it is one.
    fn as_cancelled(&self) -> Option<&Cancelled>;
}

impl AsCancelled for Cancelled {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        Some(self)
    }
}

impl AsCancelled for std::io::Error {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        find_cancelled(self)
    }
}

impl AsCancelled for Box<dyn StdError + Send + Sync> {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        let e: &(dyn StdError + 'static) = &**self;
        find_cancelled(e)
    }
}

impl AsCancelled for Box<dyn StdError> {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        find_cancelled(&**self)
    }
}

impl Cancelled {
    /// The `Cancelled` carried anywhere in `error`'s chain: `error` itself, an anyio error's
    /// cancellation variant, or any error reached through `source()` and through the error an
    /// `io::Error` or [`AnyError`] wraps. Use it to implement [`AsCancelled`] for an error type
    /// that wraps foreign errors.
    ///
    /// ```
    /// use std::{error::Error, fmt, io};
    /// use anyio::Cancelled;
    ///
    /// // Like hyper::Error: a foreign error whose source is the io::Error.
    /// #[derive(Debug)]
    /// struct Wrapper(io::Error);
    /// impl fmt::Display for Wrapper {
    ///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("wrapper") }
    /// }
    /// impl Error for Wrapper {
    ///     fn source(&self) -> Option<&(dyn Error + 'static)> { Some(&self.0) }
    /// }
    ///
    /// assert!(Cancelled::find_in(&Wrapper(io::Error::other("no"))).is_none());
    /// ```
    pub fn find_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Cancelled> {
        find_cancelled(error)
    }
}

/// How many links of an error chain [`find_cancelled`] follows: real chains are a handful of
/// links long, and a bound keeps a cyclic or runaway `source()` from hanging the caller.
const MAX_CHAIN: usize = 64;

/// Walks `e`'s chain for a `Cancelled`. The first check is a single downcast, so a bare
/// `Cancelled` (the common case) costs no more than before.
pub(crate) fn find_cancelled<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a Cancelled> {
    let mut link = e;
    for _ in 0..MAX_CHAIN {
        if let Some(c) = link.downcast_ref::<Cancelled>() {
            return Some(c);
        }
        if let Some(c) = anyio_cancellation(link) {
            return Some(c);
        }
        link = next_link(link)?;
    }
    None
}

/// The cancellation variant of anyio's own (non-generic) error types. Their `source()` also
/// returns the `Cancelled`, so this is a shortcut, and a safeguard should a `source()` change;
/// the generic ones (`SendError<T>`, `GroupError<E>`, `StartError<E>`) are reached through
/// `source()` only, since a downcast needs a concrete type, and so is `JoinError`, so that this
/// module does not depend on `task` (tests/cancel_error_chain.rs covers each of them).
fn anyio_cancellation<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a Cancelled> {
    if let Some(e) = e.downcast_ref::<AnyError>() {
        return e.as_cancelled();
    }
    if let Some(e) = e.downcast_ref::<crate::sync::CapacityLimiterError>() {
        return e.as_cancelled();
    }
    if let Some(e) = e.downcast_ref::<crate::streams::StreamError>() {
        return e.as_cancelled();
    }
    if let Some(e) = e.downcast_ref::<crate::streams::memory::ReceiveError>() {
        return e.as_cancelled();
    }
    #[cfg(unix)]
    if let Some(e) = e.downcast_ref::<crate::net::SocketError>() {
        return e.as_cancelled();
    }
    None
}

/// The next error of the chain. `io::Error` and `AnyError` are transparent wrappers: their
/// `source()` is the *wrapped error's* source, skipping the wrapped error itself (which may be
/// the `Cancelled`), so the walk steps into the wrapped error instead.
fn next_link<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return io.get_ref().map(|inner| inner as &(dyn StdError + 'static));
    }
    if let Some(any) = e.downcast_ref::<AnyError>() {
        return any.wrapped();
    }
    e.source()
}

impl From<Cancelled> for std::io::Error {
    fn from(c: Cancelled) -> Self {
        std::io::Error::other(c)
    }
}

/// A non-blocking operation could not complete at once (AnyIO's `WouldBlock`): the lock is
/// held, no permit is free, the buffer is full or empty.
///
/// # Examples
///
/// ```
/// let lock = anyio::sync::Lock::new();
/// let _g = lock.try_acquire().unwrap();
/// assert_eq!(lock.try_acquire().unwrap_err(), anyio::error::WouldBlock);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WouldBlock;

impl fmt::Display for WouldBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the operation would block; use the waiting form instead")
    }
}

impl StdError for WouldBlock {}

/// Returned by [`fail_after`](crate::cancel::fail_after) and [`fail_at`](crate::cancel::fail_at) when the deadline
/// passed before the body finished (AnyIO's `TimeoutError`).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use std::time::Duration;
/// use anyio::{fail_after, AnyError, time::sleep_forever};
///
/// let r: Result<(), AnyError> = fail_after(Duration::ZERO, async {
///     sleep_forever().await?;
///     Ok(())
/// })
/// .await;
/// assert!(r.unwrap_err().is_timeout());
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutError {
    pub(crate) after: Option<std::time::Duration>,
}

impl TimeoutError {
    /// The relative timeout that ran out, when the deadline was given as one (`fail_after`);
    /// `None` for an absolute deadline (`fail_at`).
    ///
    /// ```
    /// # anyio::run(async {
    /// use std::time::Duration;
    /// use anyio::{error::TimeoutError, fail_after, time::sleep_forever, AnyError};
    /// let r: Result<(), AnyError> =
    ///     fail_after(Duration::ZERO, async { sleep_forever().await?; Ok(()) }).await;
    /// let e = r.unwrap_err();
    /// assert_eq!(e.downcast_ref::<TimeoutError>().unwrap().after(), Some(Duration::ZERO));
    /// # });
    /// ```
    pub fn after(&self) -> Option<std::time::Duration> {
        self.after
    }
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.after {
            Some(d) => write!(f, "operation timed out after {d:?}"),
            None => f.write_str("operation timed out: its deadline passed"),
        }
    }
}

impl StdError for TimeoutError {}

impl AsCancelled for TimeoutError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        None
    }
}

/// A convenient error type for code written on anyio: it holds a cancellation, a timeout, or
/// any other error, and it implements [`AsCancelled`] so cancel scopes recognise it.
///
/// Every error of this crate converts into it with `?` (there is no blanket `From<E: Error>`:
/// it would overlap `From<AnyError> for AnyError`, so each error type has its own impl, and
/// the ones carrying a cancellation turn it into [`AnyError::is_cancelled`]).
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{AnyError, lowlevel::checkpoint};
///
/// async fn work() -> Result<u32, AnyError> {
///     checkpoint().await?;
///     let n: u32 = "42".parse().map_err(AnyError::other)?;
///     Ok(n)
/// }
/// assert_eq!(work().await.unwrap(), 42);
/// # });
/// ```
#[derive(Debug)]
pub struct AnyError {
    kind: AnyErrorKind,
}

#[derive(Debug)]
enum AnyErrorKind {
    Cancelled(Cancelled),
    Timeout(TimeoutError),
    Other(Box<dyn StdError + Send + Sync>),
}

impl AnyError {
    /// Wraps any error.
    ///
    /// ```
    /// let e = anyio::AnyError::other(std::fmt::Error);
    /// assert!(!e.is_cancelled());
    /// ```
    ///
    /// A cancellation anywhere in `e`'s chain (see [`Cancelled::find_in`]) makes this a
    /// cancellation, so cancel scopes and task groups recognise it:
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{AnyError, CancelScope, lowlevel::checkpoint};
    /// let scope = CancelScope::new();
    /// scope.cancel();
    /// let r = scope
    ///     .run(async {
    ///         // A library that reports cancellation as an io::Error inside its own error.
    ///         checkpoint().await.map_err(|c| AnyError::other(std::io::Error::other(c)))?;
    ///         Ok::<_, AnyError>(())
    ///     })
    ///     .await;
    /// assert!(matches!(r, Ok(None)), "the scope caught its cancellation");
    /// # });
    /// ```
    pub fn other(e: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        let boxed = e.into();
        // Keep cancellation recognisable even when it arrives boxed or wrapped.
        if let Some(c) = boxed.as_cancelled() {
            return Self { kind: AnyErrorKind::Cancelled(c.clone()) };
        }
        Self { kind: AnyErrorKind::Other(boxed) }
    }

    /// Wraps an error whose cancellation variant the caller has already converted: no chain
    /// walk (the conversions of the other modules' error types into this one use it).
    pub(crate) fn wrap(e: impl StdError + Send + Sync + 'static) -> Self {
        Self { kind: AnyErrorKind::Other(Box::new(e)) }
    }

    /// A plain message as an error.
    ///
    /// ```
    /// let e = anyio::AnyError::msg("bad input");
    /// assert_eq!(e.to_string(), "bad input");
    /// ```
    pub fn msg(message: impl Into<String>) -> Self {
        Self::other(message.into())
    }

    /// Whether this is a cancellation.
    ///
    /// ```
    /// assert!(!anyio::AnyError::msg("x").is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, AnyErrorKind::Cancelled(_))
    }

    /// Whether this is a [`TimeoutError`].
    ///
    /// ```
    /// assert!(!anyio::AnyError::msg("x").is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, AnyErrorKind::Timeout(_))
    }

    /// The error this wraps, for the chain walk of [`find_cancelled`].
    fn wrapped(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            AnyErrorKind::Cancelled(c) => Some(c),
            AnyErrorKind::Timeout(t) => Some(t),
            AnyErrorKind::Other(o) => Some(&**o),
        }
    }

    /// The wrapped error of type `E`, if that is what this holds.
    ///
    /// ```
    /// let e = anyio::AnyError::other(std::fmt::Error);
    /// assert!(e.downcast_ref::<std::fmt::Error>().is_some());
    /// ```
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        match &self.kind {
            AnyErrorKind::Cancelled(c) => (c as &dyn StdError).downcast_ref(),
            AnyErrorKind::Timeout(t) => (t as &dyn StdError).downcast_ref(),
            AnyErrorKind::Other(o) => o.downcast_ref(),
        }
    }
}

impl fmt::Display for AnyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AnyErrorKind::Cancelled(c) => c.fmt(f),
            AnyErrorKind::Timeout(t) => t.fmt(f),
            AnyErrorKind::Other(o) => o.fmt(f),
        }
    }
}

impl StdError for AnyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            AnyErrorKind::Other(o) => o.source(),
            _ => None,
        }
    }
}

impl AsCancelled for AnyError {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match &self.kind {
            AnyErrorKind::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

impl From<Cancelled> for AnyError {
    fn from(c: Cancelled) -> Self {
        Self { kind: AnyErrorKind::Cancelled(c) }
    }
}

impl From<TimeoutError> for AnyError {
    fn from(t: TimeoutError) -> Self {
        Self { kind: AnyErrorKind::Timeout(t) }
    }
}

impl From<std::io::Error> for AnyError {
    fn from(e: std::io::Error) -> Self {
        match e.as_cancelled() {
            Some(c) => Self::from(c.clone()),
            None => Self { kind: AnyErrorKind::Other(Box::new(e)) },
        }
    }
}

/// Impls for the error types that carry no cancellation: boxed, message kept.
macro_rules! any_error_from {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for AnyError {
            fn from(e: $t) -> Self {
                Self { kind: AnyErrorKind::Other(Box::new(e)) }
            }
        }
    )*};
}

any_error_from!(
    WouldBlock,
    ClosedResourceError,
    BrokenResourceError,
    EndOfStream,
    crate::error::BusyResourceError,
    crate::sync::SemaphoreError,
    crate::time::InvalidDuration,
    crate::lowlevel::RunFinishedError,
    crate::lowlevel::RunVarError,
    crate::from_thread::PortalError,
);

impl From<crate::sync::CapacityLimiterError> for AnyError {
    fn from(e: crate::sync::CapacityLimiterError) -> Self {
        match e {
            crate::sync::CapacityLimiterError::Cancelled(c) => Self::from(c),
            other => Self { kind: AnyErrorKind::Other(Box::new(other)) },
        }
    }
}

/// A resource was used after it was closed through this handle (AnyIO's `ClosedResourceError`).
///
/// # Examples
///
/// ```
/// use anyio::error::ClosedResourceError;
/// assert!(ClosedResourceError.to_string().contains("closed"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClosedResourceError;

impl fmt::Display for ClosedResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the resource was closed through this handle and cannot be used any more")
    }
}

impl StdError for ClosedResourceError {}

/// The other end of a resource is gone, so it cannot be used (AnyIO's `BrokenResourceError`):
/// for a memory object stream, every receiver was closed.
///
/// # Examples
///
/// ```
/// use anyio::error::BrokenResourceError;
/// assert!(BrokenResourceError.to_string().contains("other end"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokenResourceError;

impl fmt::Display for BrokenResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the other end of the resource is closed, so nothing can be sent through it")
    }
}

impl StdError for BrokenResourceError {}

/// The stream ended: every sender is closed and nothing is left to receive (AnyIO's
/// `EndOfStream`).
///
/// # Examples
///
/// ```
/// use anyio::error::EndOfStream;
/// assert!(EndOfStream.to_string().contains("end"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndOfStream;

impl fmt::Display for EndOfStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("end of stream: every sender is closed and nothing is left to receive")
    }
}

impl StdError for EndOfStream {}
