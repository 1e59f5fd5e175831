//! Listeners (AnyIO's `Listener`): accept connections one by one, or `serve` them, each handled
//! by its own task in a task group; and `MultiListener`, several listeners as one.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::AsCancelled;
use crate::streams::{AsyncResource, StreamError, TypedAttributeExt, TypedAttributeProvider};

use super::addr::{RemoteAddress, SocketAddress};
use crate::task::{CatchUnwind, GroupError, TaskGroup};

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
/// One connection's failure ends that connection, never the server: a handler's error or panic
/// goes to the error hook of [`ServeOptions`] with the peer's address (by default it is
/// printed to standard error) and `serve` keeps accepting. A connection the client aborted
/// before it was accepted is skipped, and running out of descriptors or memory (`EMFILE`,
/// `ENFILE`, `ENOBUFS`, `ENOMEM`, `ENOSPC`) pauses accepting with a growing delay (10 ms up to 1 s) instead of
/// ending `serve`. AnyIO's rule, where the first failing handler cancels the others and ends
/// `serve` with its error, is [`ServeOptions::fail_fast`].
///
/// # Examples
///
/// The natural echo handler: a client that resets its connection while the handler sends
/// fails `send`, `?` ends that handler, and the server goes on serving the others.
///
/// ```no_run
/// # anyio::run(async {
/// use anyio::{
///     AnyError, net::{create_tcp_listener, ListenerExt, RemoteAddress},
///     net::tcp::TcpListenerOptions, streams::TypedAttributeExt,
/// };
/// let listener = create_tcp_listener(TcpListenerOptions::new().local_port(7000)).await?;
/// listener
///     .serve(|client| async move {
///         println!("{} connected", client.extra::<RemoteAddress>()?);
///         while let Ok(data) = client.receive(65536).await {
///             client.send(&data).await?;
///         }
///         Ok::<_, AnyError>(())
///     })
///     .await?;
/// # Ok::<_, Box<dyn std::error::Error>>(()) });
/// ```
pub trait ListenerExt: Listener + Sized {
    /// Accepts connections until cancelled, running `handler(stream)` for each as a task of a
    /// task group (AnyIO's `Listener.serve`), with the default [`ServeOptions`]: a handler's
    /// error is printed to standard error with the peer's address, and only ends its own
    /// connection.
    ///
    /// Returns only with an error: cancellation (of an enclosing scope), or an accept failure
    /// that no retry can mend (the listener was closed, say). A handler's cancellation
    /// propagates as usual.
    ///
    /// # Cancel safety
    ///
    /// Cancelling stops accepting and cancels every running handler; `serve` returns when they
    /// have all finished.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     task_group, AnyError, TaskGroup,
    ///     net::{connect_tcp, create_tcp_listener, ListenerExt, LocalPort},
    ///     net::tcp::TcpListenerOptions, streams::TypedAttributeExt,
    /// };
    /// let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
    /// let port = listener.extra::<LocalPort>()?;
    /// task_group(|tg: TaskGroup<AnyError>| async move {
    ///     tg.spawn(async move {
    ///         listener.serve(|client| async move {
    ///             client.send(b"hello").await?;
    ///             Ok::<_, AnyError>(())
    ///         }).await?;
    ///         Ok(())
    ///     });
    ///     let client = connect_tcp("127.0.0.1", port).await?;
    ///     assert_eq!(client.receive(5).await?, b"hello");
    ///     tg.cancel(); // serve runs until cancelled
    ///     Ok(())
    /// })
    /// .await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    fn serve<H, Fut, E>(&self, handler: H) -> impl Future<Output = Result<(), GroupError<E>>> + Send
    where
        Self::Stream: TypedAttributeProvider,
        H: FnMut(Self::Stream) -> Fut + Send,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: From<StreamError> + AsCancelled + fmt::Display + Send + 'static,
    {
        self.serve_with(ServeOptions::new(), handler)
    }

    /// As [`serve`](Self::serve), with `options`: an error hook of your own, or AnyIO's
    /// fail-together rule ([`ServeOptions::fail_fast`]).
    ///
    /// # Cancel safety
    ///
    /// As [`serve`](Self::serve).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # anyio::run(async {
    /// use anyio::{
    ///     net::{create_tcp_listener, ListenerExt, ServeOptions}, net::tcp::TcpListenerOptions,
    ///     streams::StreamError,
    /// };
    /// let listener = create_tcp_listener(TcpListenerOptions::new().local_port(7000)).await?;
    /// let options = ServeOptions::new().on_error(|e| eprintln!("my server: {e}"));
    /// listener
    ///     .serve_with(options, |client| async move {
    ///         client.send(b"hello\n").await?;
    ///         Ok::<_, StreamError>(())
    ///     })
    ///     .await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) });
    /// ```
    fn serve_with<H, Fut, E>(
        &self,
        options: ServeOptions<E>,
        handler: H,
    ) -> impl Future<Output = Result<(), GroupError<E>>> + Send
    where
        Self::Stream: TypedAttributeProvider,
        H: FnMut(Self::Stream) -> Fut + Send,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: From<StreamError> + AsCancelled + Send + 'static,
    {
        async move {
            TaskGroup::scope(
                |tg: TaskGroup<E>| async move { self.serve_in_with(&tg, options, handler).await },
            )
            .await
            .map(drop)
        }
    }

    /// As [`serve`](Self::serve), with the handlers spawned into `tg` (AnyIO's `task_group`
    /// argument), so they can outlive this call's accept loop. A handler's error goes to the
    /// default hook, so it never fails `tg`.
    ///
    /// # Cancel safety
    ///
    /// Cancelling stops accepting; the handlers belong to `tg`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # anyio::run(async {
    /// use anyio::{
    ///     task_group, AnyError, TaskGroup, net::{create_tcp_listener, ListenerExt},
    ///     net::tcp::TcpListenerOptions,
    /// };
    /// let listener = create_tcp_listener(TcpListenerOptions::new().local_port(7000)).await?;
    /// task_group(|tg: TaskGroup<AnyError>| async move {
    ///     // Other tasks of `tg` run beside the connections' handlers.
    ///     listener.serve_in(&tg, |client| async move {
    ///         client.send(b"hello\n").await?;
    ///         Ok::<_, AnyError>(())
    ///     }).await
    /// })
    /// .await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) });
    /// ```
    fn serve_in<H, Fut, E>(&self, tg: &TaskGroup<E>, handler: H) -> impl Future<Output = Result<(), E>> + Send
    where
        Self::Stream: TypedAttributeProvider,
        H: FnMut(Self::Stream) -> Fut + Send,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: From<StreamError> + AsCancelled + fmt::Display + Send + 'static,
    {
        self.serve_in_with(tg, ServeOptions::new(), handler)
    }

    /// As [`serve_in`](Self::serve_in), with `options`. With [`ServeOptions::fail_fast`] a
    /// handler's error fails `tg` (and so cancels its other tasks).
    ///
    /// # Cancel safety
    ///
    /// Cancelling stops accepting; the handlers belong to `tg`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # anyio::run(async {
    /// use anyio::{
    ///     task_group, AnyError, TaskGroup, net::{create_tcp_listener, ListenerExt, ServeOptions},
    ///     net::tcp::TcpListenerOptions,
    /// };
    /// let listener = create_tcp_listener(TcpListenerOptions::new().local_port(7000)).await?;
    /// task_group(|tg: TaskGroup<AnyError>| async move {
    ///     let quiet = ServeOptions::new().on_error(|_| {}); // drop handler errors silently
    ///     listener.serve_in_with(&tg, quiet, |client| async move {
    ///         client.send(b"hello\n").await?;
    ///         Ok::<_, AnyError>(())
    ///     }).await
    /// })
    /// .await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(()) });
    /// ```
    fn serve_in_with<H, Fut, E>(
        &self,
        tg: &TaskGroup<E>,
        options: ServeOptions<E>,
        mut handler: H,
    ) -> impl Future<Output = Result<(), E>> + Send
    where
        Self::Stream: TypedAttributeProvider,
        H: FnMut(Self::Stream) -> Fut + Send,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: From<StreamError> + AsCancelled + Send + 'static,
    {
        let tg = tg.clone();
        async move {
            // The current pause after running out of resources; `None` while accepts succeed.
            let mut backoff: Option<Duration> = None;
            loop {
                match self.accept().await {
                    Ok(stream) => {
                        backoff = None;
                        if options.fail_fast {
                            tg.spawn(handler(stream));
                            continue;
                        }
                        // Taken now: once the handler has the stream, its address is its own.
                        let peer = stream.extra::<RemoteAddress>().ok();
                        let hook = options.on_error.clone();
                        let fut = CatchUnwind { inner: handler(stream) };
                        tg.spawn(async move {
                            match fut.await {
                                // Cancellation is not a failure of the connection: it goes on
                                // to the group, which knows whose cancellation it is.
                                Ok(Err(error)) if error.as_cancelled().is_none() => {
                                    hook(ServeError::Handler { peer, error });
                                    Ok(())
                                }
                                Ok(r) => r,
                                Err(panic) => {
                                    hook(ServeError::HandlerPanicked {
                                        peer,
                                        message: panic_message(&*panic),
                                    });
                                    Ok(())
                                }
                            }
                        });
                    }
                    Err(error) => match accept_error_action(&error) {
                        AcceptAction::Skip => {}
                        AcceptAction::Backoff => {
                            let delay =
                                backoff.map_or(ACCEPT_BACKOFF_FIRST, |d| (d * 2).min(ACCEPT_BACKOFF_MAX));
                            if backoff.is_none() {
                                (options.on_error)(ServeError::AcceptBackoff { error, retry_in: delay });
                            }
                            backoff = Some(delay);
                            crate::time::sleep(delay)
                                .await
                                .map_err(|c| E::from(StreamError::Cancelled(c)))?;
                        }
                        AcceptAction::Fatal => return Err(E::from(error)),
                    },
                }
            }
        }
    }
}

/// The message of a panic payload, for [`ServeError::HandlerPanicked`].
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a payload that is not a string".to_owned()
    }
}

/// The first pause after an accept failed for lack of resources; each further failure in a
/// row doubles it, up to [`ACCEPT_BACKOFF_MAX`] (hyper's and tokio's examples pause likewise).
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the accept loop does after `accept` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcceptAction {
    /// The failure belongs to one connection (aborted or reset before it was accepted, a
    /// network error Linux passes on from the new socket, a firewall's refusal): accept the next.
    Skip,
    /// The process or system ran out of descriptors or memory: pause, then accept again
    /// (closing a connection frees what the next needs).
    Backoff,
    /// The listener itself cannot go on (closed, busy, cancelled, a bad descriptor).
    Fatal,
}

/// Classifies an accept failure; the one place every listener's errors are judged.
pub(crate) fn accept_error_action(e: &StreamError) -> AcceptAction {
    match e {
        StreamError::Broken(None) => AcceptAction::Skip,
        StreamError::Broken(Some(e)) | StreamError::Io(e) => io_accept_error_action(e),
        _ => AcceptAction::Fatal,
    }
}

fn io_accept_error_action(e: &io::Error) -> AcceptAction {
    use io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | TimedOut) {
        return AcceptAction::Skip;
    }
    match e.raw_os_error() {
        // accept(2) on Linux: "the application should detect the network errors defined for
        // the protocol after accept() and treat them like EAGAIN"; EPERM: a firewall rule.
        Some(
            libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH,
        ) => AcceptAction::Skip,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(libc::ENONET) => AcceptAction::Skip,
        // ENOSPC: the reactor could not register the new socket (epoll's watch limit).
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::ENOSPC) => {
            AcceptAction::Backoff
        }
        _ => AcceptAction::Fatal,
    }
}

/// What `serve` reports to its error hook ([`ServeOptions::on_error`]) instead of ending.
///
/// # Examples
///
/// ```
/// use anyio::{net::{ServeError, SocketAddress}, streams::StreamError};
/// let e: ServeError<StreamError> = ServeError::Handler {
///     peer: Some(SocketAddress::Inet("127.0.0.1:5000".parse().unwrap())),
///     error: StreamError::EndOfStream,
/// };
/// assert!(e.to_string().starts_with("connection from 127.0.0.1:5000 failed: "));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError<E> {
    /// A connection's handler returned an error (not a cancellation); only that connection
    /// ended.
    Handler {
        /// The peer's address as it was when the connection was accepted, if the stream
        /// provides [`RemoteAddress`].
        peer: Option<SocketAddress>,
        /// The handler's error.
        error: E,
    },
    /// A connection's handler panicked; only that connection ended. (With
    /// [`ServeOptions::fail_fast`] a panic is re-raised by `serve`, as in any task group.)
    HandlerPanicked {
        /// The peer's address as it was when the connection was accepted, if known.
        peer: Option<SocketAddress>,
        /// The panic's message (its `&str` or `String` payload).
        message: String,
    },
    /// `accept` failed for lack of descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`,
    /// `ENOMEM`, `ENOSPC`); `serve` pauses and accepts again, pausing twice as long after each further
    /// failure (up to 1 s). Reported once per episode: at the first failure after an accept
    /// that succeeded.
    AcceptBackoff {
        /// The accept error.
        error: StreamError,
        /// The first pause.
        retry_in: Duration,
    },
}

impl<E: fmt::Display> fmt::Display for ServeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Handler { peer: Some(peer), error } => {
                write!(f, "connection from {peer} failed: {error}")
            }
            ServeError::Handler { peer: None, error } => write!(f, "connection failed: {error}"),
            ServeError::HandlerPanicked { peer: Some(peer), message } => {
                write!(f, "connection from {peer} panicked: {message}")
            }
            ServeError::HandlerPanicked { peer: None, message } => {
                write!(f, "connection panicked: {message}")
            }
            ServeError::AcceptBackoff { error, retry_in } => {
                write!(f, "accepting connections failed: {error}; retrying in {retry_in:?}")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ServeError<E> {}

impl<E> From<ServeError<E>> for crate::error::AnyError
where
    E: fmt::Debug + fmt::Display + Send + Sync + 'static,
{
    /// For a hook that forwards reports to code working in `AnyError`.
    fn from(e: ServeError<E>) -> Self {
        crate::error::AnyError::other(e)
    }
}

/// The error hook of [`ServeOptions`].
type Hook<E> = Arc<dyn Fn(ServeError<E>) + Send + Sync>;

/// How [`ListenerExt::serve_with`] treats a failing connection.
///
/// The default ([`new`](Self::new)) keeps serving and prints each [`ServeError`] to standard
/// error with `eprintln!` (anyio depends on no logging crate: install a hook that forwards to
/// yours with [`on_error`](Self::on_error)).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use anyio::{net::ServeOptions, streams::StreamError};
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// let options: ServeOptions<StreamError> =
///     ServeOptions::new().on_error(move |e| s.lock().unwrap().push(e.to_string()));
/// # drop(options);
/// ```
pub struct ServeOptions<E> {
    on_error: Hook<E>,
    fail_fast: bool,
}

impl<E: fmt::Display + 'static> ServeOptions<E> {
    /// Keep serving when a connection fails, and print its error to standard error.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = anyio::net::ServeOptions::<anyio::AnyError>::new();
    /// # drop(options);
    /// ```
    pub fn new() -> Self {
        Self { on_error: Arc::new(|e: ServeError<E>| eprintln!("anyio serve: {e}")), fail_fast: false }
    }
}

impl<E: fmt::Display + 'static> Default for ServeOptions<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> ServeOptions<E> {
    /// Calls `hook` with each failure instead of printing it. It runs in the failed handler's
    /// task (or the accept loop's, for an accept failure), so it should not block.
    ///
    /// # Examples
    ///
    /// ```
    /// use anyio::{AnyError, net::{ServeError, ServeOptions}};
    /// let options = ServeOptions::<AnyError>::new().on_error(|e| {
    ///     if let ServeError::Handler { peer, error } = e {
    ///         eprintln!("{peer:?}: {error}");
    ///     }
    /// });
    /// # drop(options);
    /// ```
    pub fn on_error(mut self, hook: impl Fn(ServeError<E>) + Send + Sync + 'static) -> Self {
        self.on_error = Arc::new(hook);
        self
    }

    /// AnyIO's rule (`fail_fast(true)`): a handler's error is not reported to the hook but
    /// fails the task group, which cancels every other handler and ends `serve` with the
    /// errors, as AnyIO's `Listener.serve` and trio's nursery do. Accept errors are treated as
    /// without it.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::{
    ///     AnyError, net::{connect_tcp, create_tcp_listener, ListenerExt, LocalPort, ServeOptions},
    ///     net::tcp::TcpListenerOptions, streams::TypedAttributeExt, task::GroupError,
    /// };
    /// let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
    /// let _client = connect_tcp("127.0.0.1", listener.extra::<LocalPort>()?).await?;
    /// let r = listener
    ///     .serve_with(ServeOptions::new().fail_fast(true), |_client| async { Err::<(), _>(AnyError::msg("no")) })
    ///     .await;
    /// assert!(matches!(r, Err(GroupError::Failed(_))));
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }
}

impl<E> Clone for ServeOptions<E> {
    fn clone(&self) -> Self {
        Self { on_error: self.on_error.clone(), fail_fast: self.fail_fast }
    }
}

impl<E> fmt::Debug for ServeOptions<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeOptions").field("fail_fast", &self.fail_fast).finish_non_exhaustive()
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

impl MultiListener<crate::net::tcp::TcpListener> {
    /// The local address of every listener, in order: what [`create_tcp_listener`] bound, one
    /// per address family or interface.
    ///
    /// [`create_tcp_listener`]: crate::net::create_tcp_listener
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::net::{create_tcp_listener, tcp::TcpListenerOptions};
    /// let multi = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
    /// let addrs = multi.local_addrs()?;
    /// assert_eq!(addrs.len(), 1);
    /// assert!(addrs[0].ip().is_loopback() && addrs[0].port() != 0);
    /// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn local_addrs(&self) -> Result<Vec<std::net::SocketAddr>, StreamError> {
        self.listeners.iter().map(|l| l.local_addr()).collect()
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn os(code: i32) -> StreamError {
        StreamError::Io(io::Error::from_raw_os_error(code))
    }

    #[test]
    fn accept_errors_of_one_connection_are_skipped() {
        for code in
            [libc::ECONNABORTED, libc::ECONNRESET, libc::EPROTO, libc::EPERM, libc::EINTR, libc::ETIMEDOUT]
        {
            assert_eq!(accept_error_action(&os(code)), AcceptAction::Skip, "os error {code}");
        }
        #[cfg(target_os = "linux")]
        for code in [libc::ENETDOWN, libc::ENOPROTOOPT, libc::EHOSTDOWN, libc::ENONET, libc::EHOSTUNREACH] {
            assert_eq!(accept_error_action(&os(code)), AcceptAction::Skip, "os error {code}");
        }
        // How the socket layer names a reset: Broken, with or without its OS error.
        let reset = StreamError::Broken(Some(io::ErrorKind::ConnectionReset.into()));
        assert_eq!(accept_error_action(&reset), AcceptAction::Skip);
        assert_eq!(accept_error_action(&StreamError::Broken(None)), AcceptAction::Skip);
    }

    #[test]
    fn running_out_of_descriptors_or_memory_backs_off() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(accept_error_action(&os(code)), AcceptAction::Backoff, "os error {code}");
        }
    }

    #[test]
    fn a_closed_busy_cancelled_or_broken_listener_ends_serve() {
        for code in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            assert_eq!(accept_error_action(&os(code)), AcceptAction::Fatal, "os error {code}");
        }
        assert_eq!(accept_error_action(&StreamError::Closed), AcceptAction::Fatal);
        let busy = crate::sync::ResourceGuard::new("accepting");
        let _in_use = busy.enter().unwrap();
        assert_eq!(accept_error_action(&StreamError::Busy(busy.enter().unwrap_err())), AcceptAction::Fatal);
        assert_eq!(
            accept_error_action(&StreamError::InvalidArgument("x")),
            AcceptAction::Fatal,
            "anything unknown ends serve rather than spinning"
        );
    }
}
