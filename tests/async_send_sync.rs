//! Which public types are `Send`, `Sync` and `Unpin`, asserted at compile time, as tokio's
//! `tests/async_send_sync.rs` does. A change that makes a type lose one of these (a `Cell`, an
//! `Rc` or a raw pointer slipping into a field) fails to compile here instead of in a user's
//! `tokio::spawn`. Types that lack a trait on purpose are asserted to lack it, with the reason.
#![allow(dead_code)]

use std::future::Ready;

use anyio::{
    cancel::{Cancellable, FailAfter, Scoped},
    error::{
        AnyError, BrokenResourceError, BusyResourceError, CancelSource, ClosedResourceError, EndOfStream,
        TimeoutError, WouldBlock,
    },
    lowlevel::{Checkpoint, YieldNow},
    streams::{
        buffered::{BufferedByteReceiveStream, BufferedByteStream},
        memory::{
            BufferSize, MemoryObjectReceiveStream, MemoryObjectSendStream, MemoryObjectStreamStatistics,
            ReceiveError, ReceiveItem, SendError, SendItem, TryReceiveError, TrySendError,
        },
        stapled::{StapledByteStream, StapledObjectStream},
        text::{TextReceiveStream, TextSendStream, TextStream},
        ByteStreamIo, ChunkReceiveStream, ChunkSendStream, StreamError, TypedAttributeLookupError,
    },
    sync::{
        CapacityLimiter, CapacityLimiterError, CapacityLimiterStatistics, CapacityToken, Condition,
        ConditionStatistics, ConditionWait, Event, EventStatistics, EventWait, InUse, LimiterAcquire, Lock,
        LockAcquire, LockGuard, LockStatistics, ResourceGuard, Semaphore, SemaphoreAcquire, SemaphoreError,
        SemaphorePermit, SemaphoreStatistics,
    },
    task::{GroupClosed, GroupError, JoinError, StartError, TaskHandle, TaskId, TaskState, TaskStatus},
    time::{InvalidDuration, Sleep, SleepForever},
    CancelScope, Cancelled, TaskGroup,
};

fn is_send<T: Send>() {}
fn is_sync<T: Sync>() {}
fn is_unpin<T: Unpin>() {}

/// Compiles only if `$t` does NOT implement `$trait`: with the trait, the two blanket impls
/// below make `some_item` ambiguous (the static_assertions crate's technique).
macro_rules! assert_not_impl {
    ($t:ty, $trait:path) => {
        const _: fn() = || {
            trait AmbiguousIfImpl<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
            struct Invalid;
            impl<T: ?Sized + $trait> AmbiguousIfImpl<Invalid> for T {}
            let _ = <$t as AmbiguousIfImpl<_>>::some_item;
        };
    };
}

macro_rules! send_sync_unpin {
    ($($t:ty),* $(,)?) => {
        #[test]
        fn send_sync_unpin() {
            $( is_send::<$t>(); is_sync::<$t>(); is_unpin::<$t>(); )*
        }
    };
}

type Fut = Ready<Result<(), AnyError>>;
type Bytes = MemoryObjectSendStream<Vec<u8>>;
type BytesRx = MemoryObjectReceiveStream<Vec<u8>>;

// Handles, primitives, errors and plain data: shared freely between tasks and threads.
send_sync_unpin!(
    CancelScope,
    Cancelled,
    CancelSource,
    AnyError,
    TimeoutError,
    WouldBlock,
    ClosedResourceError,
    BrokenResourceError,
    EndOfStream,
    BusyResourceError,
    Checkpoint,
    YieldNow,
    StreamError,
    TypedAttributeLookupError,
    BufferSize,
    MemoryObjectSendStream<u32>,
    MemoryObjectReceiveStream<u32>,
    MemoryObjectStreamStatistics,
    ReceiveError,
    SendError<u32>,
    TrySendError<u32>,
    TryReceiveError,
    StapledObjectStream<MemoryObjectSendStream<u32>, MemoryObjectReceiveStream<u32>>,
    ChunkSendStream<Bytes>,
    ChunkReceiveStream<BytesRx>,
    StapledByteStream<ChunkSendStream<Bytes>, ChunkReceiveStream<BytesRx>>,
    TextSendStream<ChunkSendStream<Bytes>>,
    TextReceiveStream<ChunkReceiveStream<BytesRx>>,
    TextStream<StapledByteStream<ChunkSendStream<Bytes>, ChunkReceiveStream<BytesRx>>>,
    BufferedByteReceiveStream<ChunkReceiveStream<BytesRx>>,
    BufferedByteStream<StapledByteStream<ChunkSendStream<Bytes>, ChunkReceiveStream<BytesRx>>>,
    Event,
    EventStatistics,
    Lock,
    LockGuard<'static>,
    LockStatistics,
    Condition,
    ConditionStatistics,
    Semaphore,
    SemaphorePermit<'static>,
    SemaphoreError,
    SemaphoreStatistics,
    CapacityLimiter,
    CapacityToken<'static>,
    CapacityLimiterError,
    CapacityLimiterStatistics,
    ResourceGuard,
    InUse<'static>,
    TaskGroup<AnyError>,
    TaskHandle<u32>,
    TaskId,
    TaskState,
    TaskStatus<u32>,
    GroupError<AnyError>,
    GroupClosed<Fut>,
    JoinError,
    StartError<AnyError>,
    InvalidDuration,
);

// The runtime layer: what a program picks and what a backend author implements.
mod runtime {
    use super::*;
    use anyio::rt::{Detector, EnterRuntime, Interest, IoPhase, RuntimeHandle};
    use anyio::{Backend, RunError};

    send_sync_unpin!(Backend, RunError, Detector, Interest, IoPhase, RuntimeHandle);

    // The guard that makes a runtime current belongs to the thread that entered it: moving it
    // to another thread would restore the wrong thread's runtime on drop.
    #[test]
    fn the_enter_guard_stays_on_its_thread() {
        is_unpin::<EnterRuntime>();
    }
    assert_not_impl!(EnterRuntime, Send);
    assert_not_impl!(EnterRuntime, Sync);
}

// anyio's own futures keep their waiter nodes and timers on the heap, so they are `Unpin`:
// they can be polled through `&mut` and moved between polls. The wrappers of a user's future
// are `Unpin` exactly when that future is.
mod futures {
    use super::*;

    send_sync_unpin!(
        Scoped<Fut>,
        FailAfter<Fut>,
        Cancellable<Fut>,
        Sleep,
        SleepForever,
        EventWait<'static>,
        LockAcquire<'static>,
        SemaphoreAcquire<'static>,
        LimiterAcquire<'static>,
        SendItem<'static, u32>,
        ReceiveItem<'static, u32>,
    );

    /// A future that is not `Unpin`, as an `async` block that borrows across an await is.
    struct Pinned(std::marker::PhantomPinned);
    impl std::future::Future for Pinned {
        type Output = Result<(), AnyError>;
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            std::task::Poll::Ready(Ok(()))
        }
    }
    assert_not_impl!(Scoped<Pinned>, Unpin);
    assert_not_impl!(FailAfter<Pinned>, Unpin);
    assert_not_impl!(Cancellable<Pinned>, Unpin);
}

// Owned by one task at a time (they hold a boxed in-flight operation of a `Send` but not
// `Sync` future): `Send` and `Unpin`, deliberately not `Sync`.
mod single_task {
    use super::*;

    #[test]
    fn send_and_unpin_but_not_sync() {
        is_send::<ConditionWait<'static>>();
        is_unpin::<ConditionWait<'static>>();
        is_send::<ByteStreamIo<Loopback>>();
        is_unpin::<ByteStreamIo<Loopback>>();
    }
    type Loopback = StapledByteStream<ChunkSendStream<Bytes>, ChunkReceiveStream<BytesRx>>;
    assert_not_impl!(ConditionWait<'static>, Sync);
    assert_not_impl!(ByteStreamIo<Loopback>, Sync);
}

#[cfg(unix)]
mod net {
    use super::*;
    use anyio::net::{
        dns::{AddrInfo, AddrInfoHints, SocketKind},
        tcp::{TcpConnectOptions, TcpListenerOptions},
        udp::UdpSocketOptions,
        unix::{UnixAddress, UnixListenerOptions},
        AddressFamily, ConnectAttempt, ConnectedUdpSocket, ConnectedUnixDatagramSocket, LocalAddress,
        LocalPort, MultiListener, RawSocket, RemoteAddress, RemotePort, ServeError, ServeOptions,
        SocketAddress, SocketError, SocketFamily, TcpListener, TcpStream, UdpSocket, UnixDatagramSocket,
        UnixListener, UnixStream,
    };

    // Sockets are shared between a reading and a writing task by reference (`&self` methods).
    send_sync_unpin!(
        TcpStream,
        TcpListener,
        UnixStream,
        UnixListener,
        UdpSocket,
        ConnectedUdpSocket,
        UnixDatagramSocket,
        ConnectedUnixDatagramSocket,
        MultiListener<TcpListener>,
        SocketAddress,
        UnixAddress,
        SocketError,
        ConnectAttempt,
        SocketFamily,
        AddressFamily,
        AddrInfo,
        AddrInfoHints,
        SocketKind,
        TcpConnectOptions,
        TcpListenerOptions,
        UdpSocketOptions,
        UnixListenerOptions,
        BufferedByteStream<TcpStream>,
        TextStream<TcpStream>,
        ServeOptions<AnyError>,
        ServeError<AnyError>,
        LocalAddress,
        LocalPort,
        RemoteAddress,
        RemotePort,
        RawSocket,
    );
}
