//! The runtime-independent core of [anyio](https://docs.rs/anyio): trio's structured
//! concurrency for Rust futures.
//!
//! This crate holds every piece of semantics — cancel scopes, level-triggered cancellation,
//! checkpoints, timeouts, task groups — built on `Waker`s only, plus the small backend seam
//! ([`rt`]) that a runtime adapter implements. Applications and libraries depend on the `anyio`
//! facade, which re-exports these modules and picks a backend (tokio, smol, async-std).
//!
//! The examples in this crate's documentation are written against the facade (`anyio::`), as
//! users read them, and run on its default backend.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cancel;
mod context;
mod coop;
#[cfg(test)]
mod doc_rt;
pub mod error;
pub mod from_thread;
#[cfg(unix)]
pub mod fs;
mod loom;
pub mod lowlevel;
#[cfg(unix)]
pub mod net;
pub mod prelude;
#[cfg(unix)]
pub mod process;
pub mod rt;
#[cfg(unix)]
pub mod signal;
pub mod streams;
pub mod sync;
pub mod task;
pub mod testing;
mod thread;
pub mod time;
pub mod to_thread;

#[cfg(test)]
use doc_rt::__doc_block_on;

/// Internals for the backend crates and the facade; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::cancel::current::run_in_root;
    pub use crate::task::id::{main_task, MainTask};
}
