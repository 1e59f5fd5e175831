//! Task groups, task handles and the `start()` handshake.

mod children;
mod concurrency;
mod group;
mod handle;
pub(crate) mod id;
mod info;
mod outcome;
mod promise;
pub(crate) mod registry;
pub(crate) mod slot;
mod start;

pub use concurrency::{amap, amap_limited, as_completed, gather, gather_all, Completed, Gather};
pub(crate) use group::CatchUnwind;
pub use group::{task_group, GroupClosed, GroupError, TaskGroup};
pub use handle::{JoinError, TaskHandle, TaskState};
pub use id::{current_task_id, TaskId};
pub use info::{current_task, is_tracking_tasks, running_tasks, track_tasks, TaskInfo, TrackingOff};
pub use promise::{Promise, PromiseError, PromiseStatus};
pub use start::{StartError, TaskStatus};
