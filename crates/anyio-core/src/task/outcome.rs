//! How a task ended badly, shared by the group (which records failures) and the `start()`
//! handshake (which reports them to the starter): its own module so that neither of those
//! depends on the other for it.

use std::any::Any;

use crate::error::Cancelled;

/// A caught panic's payload.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

/// A task's error or panic.
pub(crate) enum Failure<E> {
    Error(E),
    Panic(Panic),
}

/// Why a task started with `TaskGroup::start` never signalled readiness.
pub(crate) enum StartFailure<E> {
    Failed(Failure<E>),
    NotStarted,
    Cancelled(Cancelled),
}
