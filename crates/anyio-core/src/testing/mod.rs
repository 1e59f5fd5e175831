//! What tests of async code need: virtual time ([`MockClock`]), knowing when every task is
//! blocked ([`wait_all_tasks_blocked`]), forcing an order on tasks ([`Sequencer`]), and free
//! ports (AnyIO's pytest fixtures `free_tcp_port` and `free_udp_port`).
//!
//! A run gets a mock clock or blocked-task tracking from `anyio::run_with` and
//! `anyio::RunOptions`; `#[anyio::test]` tracks blocked tasks in every test, and
//! `#[anyio::test(autojump)]` or `#[anyio::test(mock_clock)]` adds a clock.

mod blocked;
mod clock;
mod monitor;
mod ports;
mod sequencer;

pub use blocked::{
    wait_all_tasks_blocked, wait_all_tasks_blocked_for, WaitAllTasksBlocked, WaitBlockedError,
};
pub use clock::{MockClock, MockClockError};
pub(crate) use monitor::count_job;
#[doc(hidden)]
pub use monitor::{Instrumentation, Monitor, Tracked};
pub use ports::{free_tcp_port, free_udp_port};
pub use sequencer::{SequencePoint, Sequencer, SequencerError};
