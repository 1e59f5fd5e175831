//! Low-level primitives for library authors (AnyIO's `anyio.lowlevel`): explicit checkpoints
//! that let hand-written futures and loops take part in cancellation and scheduling fairness.

pub use crate::cancel::checkpoint::{
    cancel_shielded_checkpoint, checkpoint, checkpoint_if_cancelled, Checkpoint, YieldNow,
};
