//! The runtime-independent core of [anyio](https://docs.rs/anyio): trio's structured
//! concurrency for Rust futures.
//!
//! This crate holds every piece of semantics — cancel scopes, level-triggered cancellation,
//! checkpoints, timeouts, task groups — built on `Waker`s only, plus the small backend seam
//! ([`rt`]) that a runtime adapter implements. Applications and libraries depend on the `anyio`
//! facade, which re-exports this crate's API flat and picks a backend (tokio, smol, async-std).
//!
//! The examples in this crate's documentation run on a tiny thread-per-task runtime used only
//! for documentation; with the facade they run unchanged on every backend.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "async-io")]
pub mod adapters;
mod cancel;
mod context;
mod coop;
mod doc_rt;
mod error;
mod loom;
#[cfg(unix)]
mod net;
pub mod rt;
mod streams;
mod sync;
mod task;
mod time;

pub use cancel::{
    cancel_shielded_checkpoint, cancellable, checkpoint, checkpoint_if_cancelled, current_effective_deadline,
    fail_after, fail_at, move_on_after, move_on_at, CancelScope, Cancellable, CancellableExt, Checkpoint,
    FailAfter, Scoped, YieldNow,
};
pub use error::{
    AnyError, AsCancelled, BrokenResourceError, CancelSource, Cancelled, ClosedResourceError, EndOfStream,
    TimeoutError, WouldBlock,
};
#[cfg(unix)]
pub use net::{
    connect_tcp, connect_tcp_with, create_tcp_listener, getaddrinfo, getnameinfo, AddrInfo, AddrInfoHints,
    AddressFamily, ConnectAttempt, Listener, ListenerExt, LocalAddress, LocalPort, MultiListener, RawSocket,
    RemoteAddress, RemotePort, ServeError, ServeOptions, SocketAddress, SocketError, SocketFamily,
    SocketKind, TcpConnectOptions, TcpListener, TcpListenerOptions, TcpStream, UnixAddress, DEFAULT_BACKLOG,
    HAPPY_EYEBALLS_DELAY,
};
#[cfg(unix)]
pub use net::{
    connect_unix, create_connected_udp_socket, create_connected_unix_datagram_socket, create_udp_socket,
    create_unix_datagram_socket, create_unix_listener, create_unix_listener_with, notify_closing,
    wait_readable, wait_writable, ConnectedUdpSocket, ConnectedUnixDatagramSocket, UdpSocket,
    UdpSocketOptions, UnixDatagramSocket, UnixListener, UnixListenerOptions, UnixStream,
};
pub use streams::{
    create_memory_object_stream, BufferSize, MemoryObjectReceiveStream, MemoryObjectSendStream,
    MemoryObjectStreamStatistics, ReceiveError, ReceiveItem, SendError, SendItem, TryReceiveError,
    TrySendError,
};
pub use streams::{
    provide_attribute, ByteStreamIo, TypedAttribute, TypedAttributeExt, TypedAttributeLookupError,
    TypedAttributeProvider,
};
pub use streams::{
    AsyncResource, BufferedByteReceiveStream, BufferedByteStream, ByteReceiveStream, ByteSendStream,
    ByteStream, ChunkReceiveStream, ChunkSendStream, ObjectReceiveStream, ObjectSendStream, ObjectStream,
    StapledByteStream, StapledObjectStream, StreamError, TextReceiveStream, TextSendStream, TextStream,
};
pub use sync::{
    BusyResourceError, CapacityLimiter, CapacityLimiterError, CapacityLimiterStatistics, CapacityToken,
    Condition, ConditionStatistics, ConditionWait, Event, EventStatistics, EventWait, InUse, LimiterAcquire,
    Lock, LockAcquire, LockGuard, LockStatistics, ResourceGuard, Semaphore, SemaphoreAcquire, SemaphoreError,
    SemaphorePermit, SemaphoreStatistics,
};
pub use task::{
    current_task_id, task_group, GroupClosed, GroupError, JoinError, StartError, TaskGroup, TaskHandle,
    TaskId, TaskState, TaskStatus,
};
pub use time::{
    current_time, seconds, sleep, sleep_forever, sleep_until, InvalidDuration, Sleep, SleepForever,
};

#[doc(hidden)]
pub use doc_rt::__doc_block_on;

/// Internals for the backend crates and the facade; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::cancel::current::run_in_root;
    pub use crate::task::id::{main_task, MainTask};
}
