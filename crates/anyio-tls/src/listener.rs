//! [`TlsListener`]: a listener whose connections are TLS streams, each handshake run in its
//! connection's own task under a timeout, a failed one reported and never ending the server.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyio_core::error::AsCancelled;
use anyio_core::net::{Listener, ListenerExt, RemoteAddress, ServeOptions, SocketAddress};
use anyio_core::streams::{
    AsyncResource, ByteStream, StreamError, TypedAttributeExt, TypedAttributeProvider,
};
use anyio_core::task::{GroupError, TaskGroup};
use rustls::ServerConfig;

use crate::error::TlsError;
use crate::stream::{TlsOptions, TlsStream};

/// The default [`TlsListener::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A TLS handshake that failed on a [`TlsListener`], as its hook receives it.
#[derive(Debug)]
#[non_exhaustive]
pub struct HandshakeFailure {
    /// The client's address, when the transport has one.
    pub peer: Option<SocketAddress>,
    /// Why the handshake failed (the transport was closed).
    pub error: TlsError,
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.peer {
            Some(p) => write!(f, "TLS handshake with {p} failed: {}", self.error),
            None => write!(f, "TLS handshake failed: {}", self.error),
        }
    }
}

type Hook = Arc<dyn Fn(HandshakeFailure) + Send + Sync>;

/// One connection's task: its handshake, then the handler.
type ConnectionTask<E> = std::pin::Pin<Box<dyn Future<Output = Result<(), E>> + Send>>;

/// Listens with `L` and makes each connection a [`TlsStream`] (AnyIO's `TLSListener`).
///
/// [`serve`](Self::serve) runs each handshake in the connection's own task (a slow or silent
/// client holds up nobody), under [`handshake_timeout`](Self::handshake_timeout) (30 s by
/// default). A failed handshake closes that connection and goes to
/// [`on_handshake_error`](Self::on_handshake_error) (by default printed to stderr, as AnyIO
/// logs it); serving goes on. Handlers' errors follow [`ServeOptions`], as for any listener.
///
/// [`accept`](Listener::accept) completes one handshake at a time (a failed one goes to the
/// hook and accepting goes on): fine for a loop that serves one client at a time, but
/// `serve` is what a server wants.
///
/// # Examples
///
/// ```no_run
/// # anyio::run(async {
/// use std::sync::Arc;
/// use anyio::net::{create_tcp_listener, tcp::TcpListenerOptions};
/// use anyio::streams::{ByteReceiveStream, ByteSendStream};
/// use anyio::tls::{read_certificates, read_private_key, server_config, TlsListener};
/// let config = Arc::new(server_config(read_certificates("cert.pem")?, read_private_key("key.pem")?)?);
/// let tcp = create_tcp_listener(TcpListenerOptions::new().local_host("localhost").local_port(8443)).await?;
/// let listener = TlsListener::new(tcp, config);
/// listener
///     .serve(|client| async move {
///         let request = client.receive(65536).await?;
///         client.send(&request).await?;
///         Ok::<(), anyio::AnyError>(())
///     })
///     .await?;
/// # Ok::<_, anyio::AnyError>(())
/// # });
/// ```
pub struct TlsListener<L> {
    listener: L,
    config: Arc<ServerConfig>,
    standard_compatible: bool,
    handshake_timeout: Option<Duration>,
    on_handshake_error: Hook,
}

impl<L> fmt::Debug for TlsListener<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("standard_compatible", &self.standard_compatible)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl<L> TlsListener<L> {
    /// Serves TLS with `config` on `listener`: standard compatible, 30 s handshake timeout,
    /// failed handshakes printed to stderr.
    pub fn new(listener: L, config: Arc<ServerConfig>) -> Self {
        Self {
            listener,
            config,
            standard_compatible: true,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            on_handshake_error: Arc::new(|f: HandshakeFailure| eprintln!("anyio TLS listener: {f}")),
        }
    }

    /// The longest a client's handshake may take (`None`: no limit). A client that has not
    /// finished by then is disconnected and reported as [`TlsError::Timeout`].
    ///
    /// ```no_run
    /// # fn f(l: anyio::tls::TlsListener<anyio::net::TcpListener>) {
    /// let l = l.handshake_timeout(Some(std::time::Duration::from_secs(5)));
    /// # }
    /// ```
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The [`standard_compatible`](TlsOptions::standard_compatible) option of the streams.
    pub fn standard_compatible(mut self, yes: bool) -> Self {
        self.standard_compatible = yes;
        self
    }

    /// Where failed handshakes go (AnyIO's `TLSListener.handle_handshake_error`). It runs in
    /// the connection's task, after its transport is closed; it should not block.
    ///
    /// ```no_run
    /// # fn f(l: anyio::tls::TlsListener<anyio::net::TcpListener>) {
    /// let l = l.on_handshake_error(|failure| eprintln!("rejected: {failure}"));
    /// # }
    /// ```
    pub fn on_handshake_error(mut self, hook: impl Fn(HandshakeFailure) + Send + Sync + 'static) -> Self {
        self.on_handshake_error = Arc::new(hook);
        self
    }

    /// The listener underneath.
    pub fn get_ref(&self) -> &L {
        &self.listener
    }

    fn options(&self) -> TlsOptions {
        TlsOptions::new()
            .standard_compatible(self.standard_compatible)
            .handshake_timeout(self.handshake_timeout)
    }
}

/// Runs the server side of one handshake; a failure goes to `hook` (`Ok(None)`), a
/// cancellation comes back as the error.
async fn handshake<S>(
    raw: S,
    config: Arc<ServerConfig>,
    options: TlsOptions,
    hook: &Hook,
) -> Result<Option<TlsStream<S>>, StreamError>
where
    S: ByteStream + TypedAttributeProvider,
{
    let peer = raw.extra::<RemoteAddress>().ok();
    match TlsStream::accept(raw, config, options).await {
        Ok(s) => Ok(Some(s)),
        Err(TlsError::Cancelled(c)) => Err(StreamError::Cancelled(c)),
        Err(error) => {
            hook(HandshakeFailure { peer, error });
            Ok(None)
        }
    }
}

impl<L> TlsListener<L>
where
    L: Listener,
    L::Stream: ByteStream + TypedAttributeProvider,
{
    /// Serves every connection with `handler` in a task of its own, after its handshake, with
    /// the default [`ServeOptions`], until cancelled (AnyIO's `TLSListener.serve`).
    ///
    /// Unlike [`ListenerExt::serve`], `handler` is `Fn + Sync`: it is called in the
    /// connection's task, once the handshake there succeeded.
    ///
    /// # Errors
    ///
    /// As [`ListenerExt::serve`]; failed handshakes never end it.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it cancels every connection's handshake and handler, and waits for them.
    pub fn serve<H, Fut, E>(&self, handler: H) -> impl Future<Output = Result<(), GroupError<E>>> + Send + '_
    where
        H: Fn(TlsStream<L::Stream>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: From<StreamError> + AsCancelled + fmt::Display + Send + 'static,
    {
        self.serve_with(ServeOptions::new(), handler)
    }

    /// [`serve`](Self::serve) with [`ServeOptions`] of your own.
    ///
    /// # Errors
    ///
    /// As [`ListenerExt::serve_with`].
    ///
    /// # Cancel safety
    ///
    /// As [`serve`](Self::serve).
    pub fn serve_with<H, Fut, E>(
        &self,
        options: ServeOptions<E>,
        handler: H,
    ) -> impl Future<Output = Result<(), GroupError<E>>> + Send + '_
    where
        H: Fn(TlsStream<L::Stream>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: From<StreamError> + AsCancelled + Send + 'static,
    {
        self.listener.serve_with(options, self.per_connection(handler))
    }

    /// [`serve`](Self::serve) with the connections' tasks in `tg`, a group of yours.
    ///
    /// # Errors
    ///
    /// As [`ListenerExt::serve_in`].
    ///
    /// # Cancel safety
    ///
    /// Cancelling it stops accepting; the connections' tasks belong to `tg`.
    pub fn serve_in<'a, H, Fut, E>(
        &'a self,
        tg: &'a TaskGroup<E>,
        handler: H,
    ) -> impl Future<Output = Result<(), E>> + Send + 'a
    where
        H: Fn(TlsStream<L::Stream>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: From<StreamError> + AsCancelled + fmt::Display + Send + 'static,
    {
        self.listener.serve_in_with(tg, ServeOptions::new(), self.per_connection(handler))
    }

    /// What each accepted transport's task runs: the handshake, then the handler.
    fn per_connection<H, Fut, E>(&self, handler: H) -> impl FnMut(L::Stream) -> ConnectionTask<E> + Send
    where
        H: Fn(TlsStream<L::Stream>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: From<StreamError> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let config = self.config.clone();
        let options = self.options();
        let hook = self.on_handshake_error.clone();
        move |raw| {
            let (handler, config, options, hook) =
                (handler.clone(), config.clone(), options.clone(), hook.clone());
            Box::pin(async move {
                match handshake(raw, config, options, &hook).await? {
                    Some(tls) => handler(tls).await,
                    None => Ok(()),
                }
            })
        }
    }
}

#[async_trait::async_trait]
impl<L> Listener for TlsListener<L>
where
    L: Listener,
    L::Stream: ByteStream + TypedAttributeProvider,
{
    type Stream = TlsStream<L::Stream>;

    /// Accepts the next client whose handshake succeeds; failed ones go to the hook.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as the listener's accept; a handshake under way when cancelled is
    /// abandoned and its connection closed.
    async fn accept(&self) -> Result<Self::Stream, StreamError> {
        loop {
            let raw = self.listener.accept().await?;
            if let Some(s) =
                handshake(raw, self.config.clone(), self.options(), &self.on_handshake_error).await?
            {
                return Ok(s);
            }
        }
    }
}

#[async_trait::async_trait]
impl<L: AsyncResource> AsyncResource for TlsListener<L> {
    /// Closes the listener underneath.
    async fn aclose(&self) -> Result<(), StreamError> {
        self.listener.aclose().await
    }
}

impl<L: TypedAttributeProvider> TypedAttributeProvider for TlsListener<L> {
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        self.listener.extra_attribute(key)
    }
}
