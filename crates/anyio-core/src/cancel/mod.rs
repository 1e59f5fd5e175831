//! Cancel scopes and timeouts: trio's cancellation model on Rust futures.
//!
//! A [`CancelScope`] runs a body; cancelling it (by [`CancelScope::cancel`] or its deadline)
//! makes every checkpoint inside fail with [`Cancelled`] until the body returns, and the scope
//! catches that error at its boundary. [`move_on_after`] and [`fail_after`] are the timeout
//! forms. Explicit checkpoints for hand-written code are in [`lowlevel`](crate::lowlevel).

mod cancellable;
pub(crate) mod cell;
pub(crate) mod checkpoint;
pub(crate) mod current;
pub(crate) mod epoch;
#[cfg(all(test, loom))]
mod loom_tests;
pub(crate) mod node;
pub(crate) mod scope;
mod timeout;

pub use cancellable::{cancellable, Cancellable, CancellableExt};
pub use checkpoint::current_effective_deadline;
pub(crate) use scope::{catches, InScope};
pub use scope::{CancelScope, Scoped};
pub use timeout::{fail_after, fail_at, move_on_after, move_on_at, FailAfter};

#[doc(no_inline)]
pub use crate::error::{AsCancelled, CancelSource, Cancelled, TimeoutError};
