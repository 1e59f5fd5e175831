//! Shared helpers for the anyio workspace's integration tests, examples and benchmarks.
//!
//! This package is never published; it exists so that `tests/`, `examples/` and `benches/` at the
//! workspace root run against the `anyio` facade with the backend features chosen on the command
//! line (`--features smol`, `--no-default-features --features async-std`, ...).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts how many times a value was dropped; tests use it to prove that a future or a task was
/// dropped (or not) at a given point.
///
/// # Examples
///
/// ```
/// let counter = anyio_suite::DropCounter::new();
/// let token = counter.token();
/// assert_eq!(counter.dropped(), 0);
/// drop(token);
/// assert_eq!(counter.dropped(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token that increments the counter when dropped.
    pub fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }

    /// How many tokens have been dropped so far.
    pub fn dropped(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Increments its [`DropCounter`] when dropped.
#[derive(Debug)]
pub struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
