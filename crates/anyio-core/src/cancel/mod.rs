//! Cancel scopes, timeouts and checkpoints: trio's cancellation model on Rust futures.

mod cancellable;
mod checkpoint;
pub(crate) mod current;
#[cfg(all(test, loom))]
mod loom_tests;
pub(crate) mod node;
mod scope;
mod timeout;

pub use cancellable::{cancellable, Cancellable, CancellableExt};
pub use checkpoint::{
    cancel_shielded_checkpoint, checkpoint, checkpoint_if_cancelled, current_effective_deadline, Checkpoint,
    YieldNow,
};
pub(crate) use scope::{catches, InScope};
pub use scope::{CancelScope, Scoped};
pub use timeout::{fail_after, fail_at, move_on_after, move_on_at, FailAfter};
