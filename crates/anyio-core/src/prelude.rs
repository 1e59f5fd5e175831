//! The traits a first program needs in scope, and the names it uses most: `use anyio::prelude::*;`.
//!
//! Stream methods (`send`, `receive`, `aclose`), `accept` and `serve` on listeners, typed
//! attributes (`extra`) and `.cancellable()` on foreign futures are trait methods; this brings
//! those traits in, so code such as `listener.accept().await?` compiles without hunting for
//! the trait.
//!
//! # Examples
//!
//! ```
//! use anyio::prelude::*;
//!
//! # anyio::run(async {
//! let (tx, rx) = anyio::streams::memory::create_memory_object_stream::<u32>(1);
//! tx.send(7).await?; // ObjectSendStream::send
//! assert_eq!(rx.receive().await?, 7);
//! tx.aclose().await?; // AsyncResource::aclose
//! # Ok::<_, AnyError>(()) }).unwrap();
//! ```

pub use crate::cancel::{CancelScope, CancellableExt};
pub use crate::error::{AnyError, AsCancelled, Cancelled};
#[cfg(unix)]
pub use crate::net::{Listener, ListenerExt};
pub use crate::streams::{
    AsyncResource, ByteReceiveStream, ByteSendStream, ByteStream, ObjectReceiveStream, ObjectSendStream,
    ObjectStream, TypedAttributeExt, TypedAttributeProvider,
};
pub use crate::task::{task_group, TaskGroup};
