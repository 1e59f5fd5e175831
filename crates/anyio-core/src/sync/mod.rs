//! Synchronisation primitives for tasks on any thread: `Event`, `Lock`, `Semaphore`,
//! `CapacityLimiter`, `ResourceGuard`.
//!
//! Unlike Python AnyIO's, they are `Send + Sync` and work across the worker threads of a
//! multi-thread runtime. Every wait is a checkpoint of the waiter's cancel scope, and nothing is
//! lost to cancellation: a waiter either gets what it waited for (and keeps it, even if its
//! scope was cancelled meanwhile) or returns `Cancelled` having taken nothing; a permit handed
//! to a waiter that is cancelled or dropped goes to the next one.

mod capacity_limiter;
mod condition;
mod event;
mod lock;
#[cfg(all(test, loom))]
mod loom_tests;
mod permits;
mod resource_guard;
mod semaphore;
pub(crate) mod spin;
pub(crate) mod waitq;
pub(crate) mod waker;

pub use capacity_limiter::{
    CapacityLimiter, CapacityLimiterError, CapacityLimiterStatistics, CapacityToken, LimiterAcquire,
    OwnedCapacityToken,
};
pub use condition::{Condition, ConditionStatistics, ConditionWait};
pub use event::{Event, EventStatistics, EventWait};
pub use lock::{Lock, LockAcquire, LockGuard, LockStatistics};
pub use resource_guard::{BusyResourceError, InUse, ResourceGuard};
pub use semaphore::{Semaphore, SemaphoreAcquire, SemaphoreError, SemaphorePermit, SemaphoreStatistics};
