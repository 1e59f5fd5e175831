//! `ResourceGuard`: detects two tasks using one resource at once.

use std::error::Error as StdError;
use std::fmt;

use crate::loom::{AtomicU8, Ordering};

/// Asserts exclusive use of a resource (AnyIO's `ResourceGuard`): stream implementations hold
/// one while receiving (or sending) so that a second concurrent receiver gets
/// [`BusyResourceError`] instead of interleaved data. Not a lock: it never waits.
///
/// # Examples
///
/// ```
/// let guard = anyio::sync::ResourceGuard::new("reading from");
/// let using = guard.enter().unwrap();
/// let err = guard.enter().unwrap_err();
/// assert_eq!(err.to_string(), "Another task is already reading from this resource");
/// drop(using);
/// assert!(guard.enter().is_ok());
/// ```
pub struct ResourceGuard {
    action: &'static str,
    busy: AtomicU8,
}

impl fmt::Debug for ResourceGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceGuard")
            .field("action", &self.action)
            .field("busy", &(self.busy.load(Ordering::Relaxed) != 0))
            .finish()
    }
}

impl ResourceGuard {
    /// A guard whose error names `action` ("using", "reading from", "sending to"...).
    ///
    /// ```
    /// let _ = anyio::sync::ResourceGuard::new("using");
    /// ```
    pub fn new(action: &'static str) -> Self {
        Self { action, busy: AtomicU8::new(0) }
    }

    /// Marks the resource in use until the returned token drops.
    ///
    /// # Errors
    ///
    /// [`BusyResourceError`] if it is already in use.
    ///
    /// ```
    /// let g = anyio::sync::ResourceGuard::new("using");
    /// let _t = g.enter().unwrap();
    /// assert!(g.enter().is_err());
    /// ```
    pub fn enter(&self) -> Result<InUse<'_>, BusyResourceError> {
        if self.busy.swap(1, Ordering::AcqRel) != 0 {
            return Err(BusyResourceError { action: self.action });
        }
        Ok(InUse { guard: self })
    }
}

/// Proof that a [`ResourceGuard`]'s resource is in use; releases it when dropped.
#[must_use = "the resource is released as soon as this is dropped"]
pub struct InUse<'a> {
    guard: &'a ResourceGuard,
}

impl fmt::Debug for InUse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InUse").field("action", &self.guard.action).finish()
    }
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.guard.busy.store(0, Ordering::Release);
    }
}

/// Two tasks tried to use one resource at once (AnyIO's `BusyResourceError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyResourceError {
    action: &'static str,
}

impl BusyResourceError {
    /// The error for a resource whose own state tracks its use (no `ResourceGuard`).
    pub(crate) const fn new(action: &'static str) -> Self {
        Self { action }
    }
}

impl fmt::Display for BusyResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Another task is already {} this resource", self.action)
    }
}

impl StdError for BusyResourceError {}
