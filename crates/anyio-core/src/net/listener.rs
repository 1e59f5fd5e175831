//! Listeners (AnyIO's `Listener`): accept connections one by one, or `serve` them, each handled
//! by its own task in a task group; and `MultiListener`, several listeners as one.

use std::any::{Any, TypeId};
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use async_trait::async_trait;

use crate::error::AsCancelled;
use crate::streams::{AsyncResource, StreamError, TypedAttributeProvider};
use crate::task::{task_group, GroupError, TaskGroup};

/// Something that accepts incoming connections.
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{
///     net::{connect_tcp, create_tcp_listener, Listener, LocalPort}, net::tcp::TcpListenerOptions,
///     streams::TypedAttributeExt,
/// };
/// let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
/// let port = listener.extra::<LocalPort>()?;
/// let client = connect_tcp("127.0.0.1", port).await?;
/// let server_side = listener.accept().await?;
/// # drop((client, server_side));
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[async_trait]
pub trait Listener: AsyncResource {
    /// The stream of one accepted connection.
    type Stream: Send + 'static;

    /// Waits for the next connection and returns its stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe for anyio's listeners: a connection is only taken from the operating system
    /// when it is returned.
    async fn accept(&self) -> Result<Self::Stream, StreamError>;
}

/// `serve` on every [`Listener`].
///
/// # Examples
///
/// ```no_run
/// # anyio::run(async {
/// use anyio::{
///     net::{create_tcp_listener, ListenerExt}, net::tcp::TcpListenerOptions,
///     streams::{ByteReceiveStream, ByteSendStream, StreamError},
/// };
/// let listener = create_tcp_listener(TcpListenerOptions::new().local_port(7000)).await?;
/// listener
///     .serve(|client| async move {
///         while let Ok(data) = client.receive(65536).await {
///             client.send(&data).await?;
///         }
///         Ok::<_, StreamError>(())
///     })
///     .await?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) });
/// ```
pub trait ListenerExt: Listener + Sized {
    /// Accepts connections forever, running `handler(stream)` for each as a task of a task
    /// group, as AnyIO's `Listener.serve`. Returns only with an error: an accept failure, a
    /// handler's failure (which cancels the other handlers, as in any task group), or
    /// cancellation.
    ///
    /// # Cancel safety
    ///
    /// Cancelling stops accepting and cancels every running handler; `serve` returns when they
    /// have all finished.
    fn serve<H, Fut, E>(&self, handler: H) -> impl Future<Output = Result<(), GroupError<E>>> + Send
    where
        H: FnMut(Self::Stream) -> Fut + Send,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: From<StreamError> + AsCancelled + Send + 'static,
    {
        async move {
            task_group(|tg: TaskGroup<E>| async move { self.serve_in(&tg, handler).await }).await.map(drop)
        }
    }

    /// As [`serve`](Self::serve), with the handlers spawned into `tg` (AnyIO's `task_group`
    /// argument), so they can outlive this call's accept loop.
    ///
    /// # Cancel safety
    ///
    /// Cancelling stops accepting; the handlers belong to `tg`.
    fn serve_in<H, Fut, E>(
        &self,
        tg: &TaskGroup<E>,
        mut handler: H,
    ) -> impl Future<Output = Result<(), E>> + Send
    where
        H: FnMut(Self::Stream) -> Fut + Send,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: From<StreamError> + AsCancelled + Send + 'static,
    {
        let tg = tg.clone();
        async move {
            loop {
                match self.accept().await {
                    Ok(stream) => {
                        tg.spawn(handler(stream));
                    }
                    Err(e) => return Err(E::from(e)),
                }
            }
        }
    }
}

impl<L: Listener> ListenerExt for L {}

/// Several listeners as one (AnyIO's `MultiListener`): `accept` takes a connection from
/// whichever listener has one first, so `serve` serves them all. [`create_tcp_listener`]
/// returns one, with a socket per local address.
///
/// [`create_tcp_listener`]: crate::net::create_tcp_listener
///
/// # Examples
///
/// ```
/// # anyio::run(async {
/// use anyio::{net::{create_tcp_listener, MultiListener}, net::tcp::TcpListenerOptions};
/// let a = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
/// let b = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
/// let both = MultiListener::new(a.into_listeners().into_iter().chain(b.into_listeners()).collect());
/// assert_eq!(both.listeners().len(), 2);
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct MultiListener<L> {
    listeners: Vec<L>,
    next: AtomicUsize,
}

impl<L: Listener> MultiListener<L> {
    /// Combines `listeners`.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::net::{connect_tcp, Listener, MultiListener, TcpListener};
    /// let a = TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let b = TcpListener::bind("127.0.0.1:0".parse()?).await?;
    /// let port_b = b.local_addr()?.port();
    /// let both = MultiListener::new(vec![a, b]);
    /// let client = connect_tcp("127.0.0.1", port_b).await?;
    /// let server = both.accept().await?; // taken from `b`
    /// assert_eq!(server.peer_addr()?, client.local_addr()?);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn new(listeners: Vec<L>) -> Self {
        Self { listeners, next: AtomicUsize::new(0) }
    }

    /// The listeners combined.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::create_tcp_listener, net::tcp::TcpListenerOptions};
    /// let multi = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
    /// for listener in multi.listeners() {
    ///     assert!(listener.local_addr()?.ip().is_loopback());
    /// }
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn listeners(&self) -> &[L] {
        &self.listeners
    }

    /// The listeners combined, by value.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{net::{create_tcp_listener, TcpListener}, net::tcp::TcpListenerOptions};
    /// let multi = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
    /// let single: TcpListener = multi.into_listeners().remove(0);
    /// assert!(single.local_addr()?.ip().is_loopback());
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn into_listeners(self) -> Vec<L> {
        self.listeners
    }
}

impl<L: Listener> TypedAttributeProvider for MultiListener<L> {
    /// The first listener's answer that exists (AnyIO merges the attributes of all).
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        self.listeners.iter().find_map(|l| l.extra_attribute(key))
    }
}

#[async_trait]
impl<L: Listener> AsyncResource for MultiListener<L> {
    /// Closes every listener.
    async fn aclose(&self) -> Result<(), StreamError> {
        let mut first_err = None;
        for l in &self.listeners {
            if let Err(e) = l.aclose().await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl<L: Listener> Listener for MultiListener<L> {
    type Stream = L::Stream;

    /// The first connection any listener has. Cancel safe when each listener's accept is.
    async fn accept(&self) -> Result<L::Stream, StreamError> {
        match self.listeners.len() {
            0 => Err(StreamError::InvalidArgument("a MultiListener needs at least one listener")),
            1 => self.listeners[0].accept().await,
            n => {
                // Start at a rotating index so that a busy listener cannot starve the others.
                let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
                let mut accepts: Vec<_> = (0..n).map(|i| self.listeners[(start + i) % n].accept()).collect();
                poll_fn(|cx| {
                    for a in accepts.iter_mut() {
                        if let Poll::Ready(r) = a.as_mut().poll(cx) {
                            return Poll::Ready(r);
                        }
                    }
                    Poll::Pending
                })
                .await
            }
        }
    }
}
