//! Low-level primitives for library authors (AnyIO's `anyio.lowlevel`): explicit checkpoints
//! that let hand-written futures and loops take part in cancellation and scheduling fairness.

pub use crate::cancel::checkpoint::{
    cancel_shielded_checkpoint, checkpoint, checkpoint_if_cancelled, Checkpoint, YieldNow,
};

mod run_var;

pub use crate::rt::run_state::{current_token, EventLoopToken, RunFinishedError};
pub(crate) use run_var::forget_run;
pub use run_var::{RunVar, RunVarError, RunVarToken};
