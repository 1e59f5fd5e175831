//! Task groups, task handles and the `start()` handshake.

mod group;
mod handle;
mod start;

pub use group::{task_group, GroupClosed, GroupError, TaskGroup};
pub use handle::{JoinError, TaskHandle, TaskState};
pub use start::{StartError, TaskStatus};
