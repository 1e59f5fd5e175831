//! [`TlsStream`]: TLS over any anyio byte stream, with rustls's connection state machine as the
//! engine and our own stream operations as its I/O.
//!
//! How the parts fit (docs/design.md, "TLS"): one `std::sync::Mutex` holds the rustls
//! connection and the buffers, and is never held across an await. Received transport bytes
//! wait in `inbuf` and go to rustls one whole record at a time. Only the holder of the `writer`
//! lock writes to the transport. While `out` is empty it writes rustls's records straight into
//! the transport with `try_send_vectored`, which takes what it can without waiting; the rest
//! is copied into `out` and written with `send_some`, so that what went out is always known: a
//! cancelled write puts the rest back and the next writer sends it first, so the wire never
//! carries half a record followed by something else. A receive that finds output waiting (a
//! KeyUpdate answer, an alert, a cancelled send's remainder) and the writer lock free writes it
//! while it reads, never instead of reading, so neither direction waits for the other.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use anyio_core::cancel::fail_after;
use anyio_core::lowlevel::checkpoint_if_cancelled;
use anyio_core::streams::{
    aclose_forcefully, provide_attribute, AsyncResource, ByteReceiveStream, ByteSendStream, ByteStream,
    StreamError, TypedAttributeProvider,
};
use anyio_core::sync::{Lock, ResourceGuard};
use rustls::pki_types::ServerName as PkiServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ProtocolVersion, ServerConfig, ServerConnection};

use crate::attrs::{
    AlpnProtocol, ChannelBinding, CipherSuite, PeerCertificate, PeerCertificateChain, ServerName, ServerSide,
    StandardCompatible, TlsVersion,
};
use crate::config::TlsConfig;
use crate::error::{TlsError, TlsProtocolError};
use crate::record::{front, Front};

/// The receive buffer's base size: one full TLS 1.3 record (16 KiB of plaintext, 256 of
/// expansion, a 5-byte header) fits, so a read makes one system call per record at most. A
/// larger TLS 1.2 record grows it for a while.
const READ_BUFFER: usize = 16384 + 256 + 5;

/// The receive buffer's size while data streams in (a read filled a record-sized buffer, and
/// no read has emptied the transport since): room for four maximum-size records per system
/// call. Only while a partial record is pending: a read that ended exactly on a record
/// boundary may have been a burst's last, so the next one (which may wait) gets the base size.
/// It falls back to `SMALL_READ` once a read empties the transport with nothing pending.
const BULK_READ: usize = 4 * READ_BUFFER;

/// The receive buffer's size while the stream waits after a read that emptied the transport:
/// an idle stream (or one that trades small messages) then holds 4 KiB, not a record's worth;
/// a record announced larger grows it back for the rest of the record.
const SMALL_READ: usize = 4096;

/// The send buffer kept between writes when it is no larger than this: enough for small
/// messages (a request/response protocol allocates nothing per write), small enough that an
/// idle stream holding it costs little. Larger ones are freed once written.
const KEEP_OUT_BUFFER: usize = 4096;

/// How long a failed handshake keeps trying to tell the peer why (its alert), and a
/// non-standard-compatible `aclose` its close_notify, before closing the transport.
const ALERT_GRACE: Duration = Duration::from_secs(1);

/// Options of a TLS stream: AnyIO's `standard_compatible` and a handshake timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use anyio::tls::TlsOptions;
/// let options = TlsOptions::new().standard_compatible(false).handshake_timeout(Some(Duration::from_secs(5)));
/// assert!(!options.is_standard_compatible());
/// ```
#[derive(Clone, Debug)]
pub struct TlsOptions {
    standard_compatible: bool,
    handshake_timeout: Option<Duration>,
    hostname: Option<String>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsOptions {
    /// Standard compatible, no handshake timeout, the host name as given to the connecting
    /// function.
    pub fn new() -> Self {
        Self { standard_compatible: true, handshake_timeout: None, hostname: None }
    }

    /// Whether the stream insists on the TLS closing handshake (default `true`, as AnyIO's):
    /// a transport that ends without the peer's close_notify is then
    /// [`StreamError::Broken`] (a truncation attack cannot pass for a clean end), and
    /// [`aclose`](AsyncResource::aclose) waits for the peer's close_notify. `false` suits
    /// protocols that frame their own messages (HTTP/1.1 with a length, HTTP/2): such an end
    /// is then [`StreamError::EndOfStream`], and `aclose` only sends its close_notify.
    pub fn standard_compatible(mut self, yes: bool) -> Self {
        self.standard_compatible = yes;
        self
    }

    /// Whether [`standard_compatible`](Self::standard_compatible) is on.
    pub fn is_standard_compatible(&self) -> bool {
        self.standard_compatible
    }

    /// The longest the handshake may take, or `None` (the default for streams) for no limit.
    /// When it runs out the handshake fails with [`TlsError::Timeout`]; zero times out at
    /// once.
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The name to verify the server by when it is not the host connected to
    /// ([`connect_tls`](crate::connect_tls) only).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    pub(crate) fn hostname_override(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.handshake_timeout
    }
}

/// What [`TlsStream::unwrap`] hands back once both sides closed TLS.
#[derive(Debug)]
#[non_exhaustive]
pub struct Unwrapped<S> {
    /// The transport, open, positioned just after the peer's close_notify.
    pub transport: S,
    /// The bytes that arrived after the peer's close_notify, exactly: the start of whatever the
    /// peer speaks on the transport next.
    pub leftover: Vec<u8>,
    /// Application data the peer sent before its close_notify that nobody had received yet
    /// (kept, not dropped).
    pub unread: Vec<u8>,
}

/// Why a stream is broken, kept so that every later operation can say so.
#[derive(Clone, Debug)]
enum Broken {
    Tls(TlsProtocolError),
    Transport(io::ErrorKind, String),
}

impl Broken {
    fn error(&self) -> StreamError {
        match self {
            Broken::Tls(e) => e.stream_error(),
            Broken::Transport(kind, m) => StreamError::Broken(Some(io::Error::new(*kind, m.clone()))),
        }
    }
}

struct State {
    conn: Connection,
    /// Ciphertext out of rustls not yet written to the transport: it goes first.
    out: Vec<u8>,
    /// The receive buffer (all of it initialised): transport bytes not yet given to rustls
    /// are `inbuf[in_start..in_end]`. Allocated on the first read; taken out while a read
    /// fills it.
    inbuf: Vec<u8>,
    in_start: usize,
    in_end: usize,
    transport_eof: bool,
    /// The peer's close_notify arrived.
    peer_closed: bool,
    close_notify_sent: bool,
    /// `aclose` was called.
    closed: bool,
    broken: Option<Broken>,
    /// The last read from the transport came back shorter than the room it had: the
    /// transport was drained, and the stream is likely to wait now (see `SMALL_READ`).
    last_read_short: bool,
    /// A read filled a record-sized buffer and none has emptied the transport (with nothing
    /// pending) since: reads with a partial record pending take `BULK_READ`.
    streaming: bool,
    /// rustls may hold plaintext: false only after its reader said "nothing yet" and nothing
    /// was fed to it since, so that a receive skips asking it again before reading.
    maybe_plaintext: bool,
}

impl State {
    fn new(conn: Connection) -> Self {
        State {
            conn,
            out: Vec::new(),
            inbuf: Vec::new(),
            in_start: 0,
            in_end: 0,
            transport_eof: false,
            peer_closed: false,
            close_notify_sent: false,
            closed: false,
            broken: None,
            last_read_short: false,
            streaming: false,
            maybe_plaintext: true,
        }
    }

    fn has_output(&self) -> bool {
        !self.out.is_empty() || self.conn.wants_write()
    }

    fn pending_input(&self) -> &[u8] {
        &self.inbuf[self.in_start..self.in_end]
    }

    /// Gives rustls the whole record of `len` bytes at the front of `inbuf` and processes it.
    fn feed_record(&mut self, len: usize) -> Result<(), rustls::Error> {
        let State { conn, inbuf, in_start, .. } = self;
        let mut rec = &inbuf[*in_start..*in_start + len];
        while !rec.is_empty() {
            match conn.read_tls(&mut rec) {
                // rustls takes nothing after the peer's close_notify; the bytes stay ours.
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(rustls::Error::General(e.to_string())),
            }
        }
        *in_start += len - rec.len();
        if *in_start == self.in_end {
            *in_start = 0;
            self.in_end = 0;
        }
        self.maybe_plaintext = true;
        let io = self.conn.process_new_packets()?;
        if io.peer_has_closed() {
            self.peer_closed = true;
        }
        Ok(())
    }

    /// Takes the receive buffer out for a read, with what is pending moved to its front and
    /// room behind it for at least the rest of the record that is pending.
    fn take_read_buffer(&mut self) -> ReadBuffer {
        let mut buf = std::mem::take(&mut self.inbuf);
        let pending = self.in_end - self.in_start;
        buf.copy_within(self.in_start..self.in_end, 0);
        let record = match front(&buf[..pending]) {
            Front::Partial => crate::record::announced_len(&buf[..pending]).unwrap_or(0),
            _ => 0,
        };
        let base = if self.last_read_short && pending == 0 {
            self.streaming = false;
            SMALL_READ
        } else if self.streaming && pending > 0 {
            BULK_READ
        } else {
            READ_BUFFER
        };
        let want = base.max(record).max(pending + 1);
        // Grown when short of a record; shrunk back to the base when larger than needed.
        let oversized =
            buf.len() > want && (want == SMALL_READ || (buf.len() > READ_BUFFER && want == READ_BUFFER));
        if buf.len() < want || oversized {
            buf.resize(want, 0);
            buf.shrink_to(want);
        }
        self.in_start = 0;
        self.in_end = 0;
        // Counted as short unless the read completes and says otherwise: a read that never
        // completes (cancelled: a receive under a timeout, say) was waiting, so the transport
        // was drained, and the stream should keep waiting small.
        ReadBuffer { buf, end: pending, short: true }
    }

    fn put_read_buffer(&mut self, b: ReadBuffer) {
        self.last_read_short = b.short;
        self.streaming |= !b.short && b.buf.len() >= READ_BUFFER;
        self.inbuf = b.buf;
        self.in_start = 0;
        self.in_end = b.end;
    }

    fn check_can_send(&self) -> Result<(), StreamError> {
        if self.closed || self.close_notify_sent {
            return Err(StreamError::Closed);
        }
        if let Some(b) = &self.broken {
            return Err(b.error());
        }
        Ok(())
    }

    fn break_with(&mut self, b: Broken) -> StreamError {
        let e = b.error();
        self.broken.get_or_insert(b);
        e
    }
}

/// A TLS connection over the byte stream `S` (AnyIO's `TLSStream`), both directions usable at
/// once from different tasks through `&self`, like every anyio stream.
///
/// Made by [`connect`](Self::connect) (client), [`accept`](Self::accept) (server) or
/// [`wrap`](Self::wrap) (either), each of which completes the handshake first. It is a
/// [`ByteStream`]: [`send`](ByteSendStream::send), [`receive`](ByteReceiveStream::receive),
/// [`send_eof`](ByteStream::send_eof) (TLS 1.3), [`aclose`](AsyncResource::aclose) (sends
/// close_notify), and it answers the [TLS attributes](crate#attributes) and every attribute of
/// its transport.
///
/// # Examples
///
/// A client and a server over an in-memory stream pair:
///
/// ```
/// # anyio::run(async {
/// use std::sync::Arc;
/// use anyio::streams::{memory::memory_stream_pair, ByteReceiveStream, ByteSendStream};
/// use anyio::tls::{TlsOptions, TlsStream};
/// # let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
/// # let mut roots = anyio::tls::rustls::RootCertStore::empty();
/// # roots.add(ck.cert.der().clone()).unwrap();
/// # let client_config = std::sync::Arc::new(anyio::tls::client_config_with_roots(roots).unwrap());
/// # let key = anyio::tls::rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
/// # let server_config = std::sync::Arc::new(anyio::tls::server_config(vec![ck.cert.der().clone()], key).unwrap());
/// let (a, b) = memory_stream_pair(16);
/// let (client, server) = futures::join!(
///     TlsStream::connect(a, "localhost", client_config, TlsOptions::new()),
///     TlsStream::accept(b, server_config, TlsOptions::new()),
/// );
/// let (client, server) = (client.unwrap(), server.unwrap());
/// client.send(b"hello").await.unwrap();
/// assert_eq!(server.receive(100).await.unwrap(), b"hello");
/// # });
/// ```
pub struct TlsStream<S> {
    transport: S,
    state: Mutex<State>,
    /// The right to write to the transport.
    writer: Lock,
    receiving: ResourceGuard,
    sending: ResourceGuard,
    server_side: bool,
    standard_compatible: bool,
    /// The client's server name (SNI), as it verified the server by.
    sni: Option<String>,
}

impl<S> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("TlsStream")
            .field("server_side", &self.server_side)
            .field("version", &st.conn.protocol_version())
            .field("closed", &st.closed)
            .field("broken", &st.broken.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> TlsStream<S> {
    fn new(
        transport: S,
        conn: Connection,
        server_side: bool,
        options: &TlsOptions,
        sni: Option<String>,
    ) -> Self {
        Self {
            transport,
            state: Mutex::new(State::new(conn)),
            writer: Lock::new(),
            receiving: ResourceGuard::new("receiving from"),
            sending: ResourceGuard::new("sending to"),
            server_side,
            standard_compatible: options.standard_compatible,
            sni,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it but rustls itself; its state is then broken anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The transport, for reading its state (its attributes are also answered by the TLS
    /// stream itself). Sending or receiving on it directly corrupts the TLS stream.
    ///
    /// ```no_run
    /// # fn f(s: &anyio::tls::TlsStream<anyio::net::TcpStream>) {
    /// let _peer = s.get_ref().peer_addr();
    /// # }
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.transport
    }

    /// The negotiated TLS version.
    ///
    /// ```no_run
    /// # fn f(s: &anyio::tls::TlsStream<anyio::net::TcpStream>) {
    /// use anyio::tls::rustls::ProtocolVersion;
    /// assert!(matches!(s.protocol_version(), ProtocolVersion::TLSv1_3 | ProtocolVersion::TLSv1_2));
    /// # }
    /// ```
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.lock().conn.protocol_version().unwrap_or(ProtocolVersion::Unknown(0))
    }

    fn ragged_eof(&self) -> StreamError {
        if self.standard_compatible {
            StreamError::Broken(Some(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the transport without a TLS close_notify",
            )))
        } else {
            StreamError::EndOfStream
        }
    }

    fn attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        let st = || self.lock();
        provide_attribute::<AlpnProtocol>(key, || Some(st().conn.alpn_protocol().map(<[u8]>::to_vec)))
            .or_else(|| {
                provide_attribute::<CipherSuite>(key, || Some(st().conn.negotiated_cipher_suite()?.suite()))
            })
            .or_else(|| provide_attribute::<TlsVersion>(key, || st().conn.protocol_version()))
            .or_else(|| provide_attribute::<ServerSide>(key, || Some(self.server_side)))
            .or_else(|| provide_attribute::<StandardCompatible>(key, || Some(self.standard_compatible)))
            .or_else(|| {
                provide_attribute::<PeerCertificate>(key, || {
                    Some(st().conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()))
                })
            })
            .or_else(|| {
                provide_attribute::<PeerCertificateChain>(key, || {
                    Some(
                        st().conn
                            .peer_certificates()
                            .map(|c| c.iter().map(|c| c.to_vec()).collect())
                            .unwrap_or_default(),
                    )
                })
            })
            .or_else(|| {
                provide_attribute::<ServerName>(key, || {
                    Some(match &st().conn {
                        Connection::Server(s) => s.server_name().map(str::to_owned),
                        Connection::Client(_) => self.sni.clone(),
                    })
                })
            })
            .or_else(|| {
                provide_attribute::<ChannelBinding>(key, || {
                    st().conn
                        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
                        .ok()
                        .map(Vec::from)
                })
            })
    }
}

impl<S: ByteStream> TlsStream<S> {
    /// Connects as a TLS client over `transport`, verifying the server by `hostname` (a DNS
    /// name, or an IP address the certificate must name), and completes the handshake.
    ///
    /// # Errors
    ///
    /// [`TlsError::InvalidHostname`] (checked before anything is sent), [`TlsError::Handshake`]
    /// (an untrusted or mismatched certificate, no common version, ...),
    /// [`TlsError::Transport`] (the transport failed or ended first), [`TlsError::Timeout`],
    /// [`TlsError::Cancelled`]. On every error the transport is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancelling (or dropping) the handshake closes the transport: a half-done handshake
    /// cannot be resumed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # anyio::run(async {
    /// use std::sync::Arc;
    /// use anyio::{net::connect_tcp, streams::ByteSendStream, tls::{client_config, TlsOptions, TlsStream}};
    /// let tcp = connect_tcp("example.com", 443).await?;
    /// let config = Arc::new(client_config()?);
    /// let tls = TlsStream::connect(tcp, "example.com", config, TlsOptions::new()).await?;
    /// tls.send(b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n").await?;
    /// # Ok::<_, anyio::AnyError>(())
    /// # });
    /// ```
    pub async fn connect(
        transport: S,
        hostname: &str,
        config: Arc<ClientConfig>,
        options: TlsOptions,
    ) -> Result<Self, TlsError> {
        let name = match PkiServerName::try_from(hostname.to_owned()) {
            Ok(n) => n,
            Err(_) => {
                let _ = aclose_forcefully(&transport).await;
                return Err(TlsError::InvalidHostname { hostname: hostname.to_owned() });
            }
        };
        let sni = matches!(name, PkiServerName::DnsName(_)).then(|| hostname.to_owned());
        let conn = match ClientConnection::new(config, name) {
            Ok(c) => c,
            Err(e) => {
                let _ = aclose_forcefully(&transport).await;
                return Err(TlsError::Config(e));
            }
        };
        Self::new(transport, conn.into(), false, &options, sni).finish_handshake(options.timeout()).await
    }

    /// Accepts a TLS client over `transport` as the server and completes the handshake.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect): [`TlsError::Handshake`] (a client that speaks no TLS, a
    /// missing client certificate where one is required, ...), [`TlsError::Transport`],
    /// [`TlsError::Timeout`], [`TlsError::Cancelled`]. On every error the transport is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancelling (or dropping) the handshake closes the transport.
    ///
    /// # Examples
    ///
    /// See [`TlsStream`].
    pub async fn accept(
        transport: S,
        config: Arc<ServerConfig>,
        options: TlsOptions,
    ) -> Result<Self, TlsError> {
        let conn = match ServerConnection::new(config) {
            Ok(c) => c,
            Err(e) => {
                let _ = aclose_forcefully(&transport).await;
                return Err(TlsError::Config(e));
            }
        };
        Self::new(transport, conn.into(), true, &options, None).finish_handshake(options.timeout()).await
    }

    /// AnyIO's `TLSStream.wrap`: the client side (with `hostname`) or the server side over
    /// `transport`, with a configuration of that side.
    ///
    /// # Errors
    ///
    /// [`TlsError::ConfigMismatch`] when `config` is of the other side;
    /// [`TlsError::InvalidHostname`] when the client side has no host name; otherwise as
    /// [`connect`](Self::connect) and [`accept`](Self::accept).
    ///
    /// # Cancel safety
    ///
    /// Cancelling (or dropping) the handshake closes the transport.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::streams::memory::memory_stream_pair;
    /// use anyio::tls::{TlsError, TlsStream};
    /// # let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    /// # let mut roots = anyio::tls::rustls::RootCertStore::empty();
    /// # roots.add(ck.cert.der().clone()).unwrap();
    /// # let client_config = std::sync::Arc::new(anyio::tls::client_config_with_roots(roots).unwrap());
    /// # let key = anyio::tls::rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    /// # let server_config = std::sync::Arc::new(anyio::tls::server_config(vec![ck.cert.der().clone()], key).unwrap());
    /// let (a, _b) = memory_stream_pair(4);
    /// // A server configuration on the client side is refused before anything is sent.
    /// let r = TlsStream::wrap(a, false, Some("localhost"), server_config, true).await;
    /// assert!(matches!(r, Err(TlsError::ConfigMismatch { server_side: false })));
    /// # });
    /// ```
    pub async fn wrap(
        transport: S,
        server_side: bool,
        hostname: Option<&str>,
        config: impl Into<TlsConfig>,
        standard_compatible: bool,
    ) -> Result<Self, TlsError> {
        let options = TlsOptions::new().standard_compatible(standard_compatible);
        match (server_side, config.into()) {
            (true, TlsConfig::Server(c)) => Self::accept(transport, c, options).await,
            (false, TlsConfig::Client(c)) => match hostname {
                Some(h) => Self::connect(transport, h, c, options).await,
                None => {
                    let _ = aclose_forcefully(&transport).await;
                    Err(TlsError::InvalidHostname { hostname: String::new() })
                }
            },
            (server_side, _) => {
                let _ = aclose_forcefully(&transport).await;
                Err(TlsError::ConfigMismatch { server_side })
            }
        }
    }

    async fn finish_handshake(self, timeout: Option<Duration>) -> Result<Self, TlsError> {
        // Boxed: the handshake's state machine is large, and a caller's future (TLS over TLS,
        // a debug build) would otherwise carry it inline, through the stack, at every poll.
        let r = match timeout {
            Some(t) => Box::pin(fail_after(t, self.handshake())).await,
            None => Box::pin(self.handshake()).await,
        };
        match r {
            Ok(()) => Ok(self),
            Err(e) => {
                let _ = aclose_forcefully(&self.transport).await;
                Err(e)
            }
        }
    }

    async fn handshake(&self) -> Result<(), TlsError> {
        loop {
            let (handshaking, failed) = {
                let mut st = self.lock();
                let mut failed = None;
                while st.conn.is_handshaking() {
                    match front(st.pending_input()) {
                        Front::Record(n) => {
                            if let Err(e) = st.feed_record(n) {
                                failed = Some(TlsError::Handshake(e));
                                break;
                            }
                        }
                        Front::Partial => break,
                        Front::Invalid(m) => {
                            failed = Some(TlsError::NotTls(m));
                            break;
                        }
                    }
                }
                (st.conn.is_handshaking(), failed)
            };
            if let Some(e) = failed {
                // Tell the peer why (rustls queued an alert), briefly, then give up.
                let _ = anyio_core::cancel::move_on_after(ALERT_GRACE, self.flush()).await;
                return Err(e);
            }
            self.flush().await?;
            if !handshaking {
                return Ok(());
            }
            if self.lock().transport_eof {
                return Err(TlsError::Transport(StreamError::Broken(Some(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the transport during the TLS handshake",
                )))));
            }
            self.read_transport().await?;
        }
    }

    /// When nothing waits in `out`, writes rustls's records straight into the transport while
    /// it takes them without waiting, and copies what it does not take into `out` to wait for
    /// it. The caller holds the writer lock (or has the stream to itself).
    fn write_out_locked(&self, st: &mut State) -> Result<(), StreamError> {
        if !st.out.is_empty() {
            return Ok(());
        }
        let State { conn, out, broken, .. } = st;
        let mut direct = Direct { transport: &self.transport, failed: None };
        while conn.wants_write() {
            match conn.write_tls(&mut direct) {
                Ok(_) => {}
                Err(_) if direct.failed.is_some() => {
                    let e = direct.failed.take().expect("checked");
                    let b = Broken::Transport(
                        io::ErrorKind::BrokenPipe,
                        format!("sending on the transport failed: {e}"),
                    );
                    broken.get_or_insert(b);
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        while conn.wants_write() {
            if let Err(e) = conn.write_tls(out) {
                return Err(StreamError::Broken(Some(e)));
            }
        }
        Ok(())
    }

    /// Writes all ciphertext waiting (in `out`, then in rustls) to the transport. The caller
    /// holds the writer lock (or has the stream to itself, during the handshake).
    async fn flush(&self) -> Result<(), StreamError> {
        loop {
            let out = {
                let mut st = self.lock();
                self.write_out_locked(&mut st)?;
                if st.out.is_empty() {
                    return Ok(());
                }
                std::mem::take(&mut st.out)
            };
            let mut unsent = Unsent { state: &self.state, out, sent: 0 };
            while unsent.sent < unsent.out.len() {
                match self.transport.send_some(&unsent.out[unsent.sent..]).await {
                    Ok(n) => unsent.sent += n,
                    Err(e @ StreamError::Cancelled(_)) => return Err(e),
                    Err(e) => {
                        let b = Broken::Transport(
                            io::ErrorKind::BrokenPipe,
                            format!("sending on the transport failed: {e}"),
                        );
                        self.lock().broken.get_or_insert(b);
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Reads once from the transport into `inbuf` (or notes its end). If output is waiting
    /// and nobody is writing, writes it meanwhile (see the module's comment).
    async fn read_transport(&self) -> Result<(), StreamError> {
        let (has_output, buf) = {
            let mut st = self.lock();
            (st.has_output(), st.take_read_buffer())
        };
        let mut lent = Lent { state: &self.state, buf: Some(buf) };
        let eof = self.read_lent(&mut lent, has_output).await?;
        let buf = lent.buf.take().expect("lent until dropped");
        let mut st = self.lock();
        st.put_read_buffer(buf);
        st.transport_eof |= eof;
        Ok(())
    }

    /// Reads once from the transport into the lent receive buffer; `true` for the transport's
    /// end. The buffer stays in `lent`: the caller puts it back (with the end, if so) under
    /// the lock it takes next, and a cancelled or failed read puts it back as `lent` drops.
    async fn read_lent(&self, lent: &mut Lent<'_>, has_output: bool) -> Result<bool, StreamError> {
        let role = if has_output { self.writer.try_acquire().ok() } else { None };
        let b = lent.buf.as_mut().expect("lent until dropped");
        let got = {
            // A socket transport is read through its named future: no boxed future per read.
            let room = &mut b.buf[b.end..];
            let mut read = match self.transport.socket_receiver() {
                Some(socket) => TransportRead::Socket(socket.receive_into(room)),
                None => TransportRead::Boxed(self.transport.receive_into(room)),
            };
            match role {
                None => read.await,
                Some(role) => {
                    let mut role = Some(role);
                    let mut flush = Some(Box::pin(self.flush()));
                    poll_fn(|cx| {
                        if let Poll::Ready(r) = std::pin::Pin::new(&mut read).poll(cx) {
                            return Poll::Ready(r);
                        }
                        if let Some(f) = flush.as_mut() {
                            if let Poll::Ready(r) = f.as_mut().poll(cx) {
                                flush = None;
                                role = None;
                                if let Err(e) = r {
                                    return Poll::Ready(Err(e));
                                }
                            }
                        }
                        Poll::Pending
                    })
                    .await
                }
            }
        };
        match got {
            Ok(n) => {
                b.short = n < b.buf.len() - b.end;
                b.end += n;
                Ok(false)
            }
            Err(StreamError::EndOfStream) => Ok(true),
            Err(e) => {
                if !matches!(e, StreamError::Cancelled(_) | StreamError::Busy(_)) {
                    let b = Broken::Transport(
                        io::ErrorKind::ConnectionAborted,
                        format!("receiving on the transport failed: {e}"),
                    );
                    self.lock().broken.get_or_insert(b);
                }
                Err(e)
            }
        }
    }

    /// Takes received plaintext with `take`, reading the transport as needed: the body of every
    /// receive. Each turn of its loop takes the state lock once: the buffer a read filled goes
    /// back, whole records go to rustls, and plaintext comes out (or the buffer is lent to the
    /// next read) under that one lock.
    async fn receive_with<T>(
        &self,
        closing: bool,
        mut take: impl FnMut(rustls::Reader<'_>) -> io::Result<Option<T>>,
    ) -> Result<T, StreamError> {
        let mut filled: Option<(ReadBuffer, bool)> = None;
        loop {
            let (has_output, buf) = {
                let mut st = self.lock();
                if let Some((buf, eof)) = filled.take() {
                    st.put_read_buffer(buf);
                    st.transport_eof |= eof;
                }
                if let Some(v) = self.take_plaintext_locked(&mut st, closing, &mut take)? {
                    return Ok(v);
                }
                (st.has_output(), st.take_read_buffer())
            };
            let mut lent = Lent { state: &self.state, buf: Some(buf) };
            let eof = self.read_lent(&mut lent, has_output).await?;
            filled = Some((lent.buf.take().expect("lent until dropped"), eof));
        }
    }

    /// Takes plaintext with `take` (which reports `None` for the peer's clean end and
    /// `WouldBlock` for nothing yet), giving rustls whole records as needed; `None` when the
    /// transport must be read first.
    fn take_plaintext_locked<T>(
        &self,
        st: &mut State,
        closing: bool,
        take: &mut impl FnMut(rustls::Reader<'_>) -> io::Result<Option<T>>,
    ) -> Result<Option<T>, StreamError> {
        if st.closed && !closing {
            return Err(StreamError::Closed);
        }
        loop {
            // After "nothing yet", rustls has nothing until it is fed again (its clean end
            // included, which `peer_closed` tracks): asking again would cost a call.
            if st.maybe_plaintext || st.peer_closed {
                match take(st.conn.reader()) {
                    Ok(None) => return Err(StreamError::EndOfStream),
                    Ok(Some(v)) => return Ok(Some(v)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => st.maybe_plaintext = false,
                    Err(e) => return Err(StreamError::Broken(Some(e))),
                }
            }
            if let Some(b) = &st.broken {
                return Err(b.error());
            }
            match front(st.pending_input()) {
                Front::Record(n) => {
                    if let Err(e) = st.feed_record(n) {
                        return Err(st.break_with(Broken::Tls(TlsProtocolError(e.to_string()))));
                    }
                }
                Front::Partial if st.transport_eof => {
                    if st.pending_input().is_empty() {
                        return Err(self.ragged_eof());
                    }
                    let b = Broken::Tls(TlsProtocolError("the transport ended inside a TLS record".into()));
                    return Err(st.break_with(b));
                }
                Front::Partial => return Ok(None),
                Front::Invalid(m) => return Err(st.break_with(Broken::Tls(TlsProtocolError(m)))),
            }
        }
    }

    /// Asks the peer for new traffic keys and changes ours (a TLS 1.3 KeyUpdate): what is sent
    /// from now on uses new keys. rustls does this by itself before a key wears out.
    ///
    /// # Errors
    ///
    /// [`StreamError::Unsupported`] on TLS 1.2; [`StreamError::Closed`] after `send_eof` or
    /// `aclose`; the transport's errors.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the KeyUpdate is queued at once and goes out before anything sent later.
    ///
    /// ```no_run
    /// # async fn f(s: anyio::tls::TlsStream<anyio::net::TcpStream>) -> Result<(), anyio::streams::StreamError> {
    /// s.refresh_traffic_keys().await?;
    /// # Ok(()) }
    /// ```
    pub async fn refresh_traffic_keys(&self) -> Result<(), StreamError> {
        let _role = self.writer.acquire().await?;
        {
            let mut st = self.lock();
            st.check_can_send()?;
            if st.conn.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
                return Err(StreamError::Unsupported("key updates need TLS 1.3"));
            }
            if let Err(e) = st.conn.refresh_traffic_keys() {
                return Err(st.break_with(Broken::Tls(TlsProtocolError(e.to_string()))));
            }
        }
        self.flush().await
    }

    /// The writer lock: taken at once when free and nobody waits (the cancellation check
    /// was made by the caller), else waited for in turn.
    async fn acquire_writer(&self) -> Result<anyio_core::sync::LockGuard<'_>, StreamError> {
        match self.writer.try_acquire() {
            Ok(role) => Ok(role),
            Err(_) => Ok(self.writer.acquire().await?),
        }
    }

    fn encrypt(&self, data: &[u8]) -> Result<usize, StreamError> {
        Self::encrypt_locked(&mut self.lock(), data)
    }

    /// Gives rustls a prefix of `data` to encrypt and returns its length.
    fn encrypt_locked(st: &mut State, data: &[u8]) -> Result<usize, StreamError> {
        st.check_can_send()?;
        match io::Write::write(&mut st.conn.writer(), data) {
            Ok(0) => {
                Err(StreamError::Broken(Some(io::Error::other("rustls took no plaintext after a flush"))))
            }
            Ok(n) => Ok(n),
            Err(e) => Err(StreamError::Broken(Some(e))),
        }
    }

    /// Sends close_notify (once) and writes everything waiting.
    async fn send_close_notify(&self) -> Result<(), StreamError> {
        {
            let mut st = self.lock();
            if st.broken.is_some() {
                return Ok(());
            }
            if !st.close_notify_sent {
                st.conn.send_close_notify();
                st.close_notify_sent = true;
            }
        }
        self.flush().await
    }

    /// Receives until the peer's close_notify (or the transport's end), keeping or
    /// dropping what arrives before it.
    async fn await_close_notify(&self, mut keep: Option<&mut Vec<u8>>) -> Result<(), StreamError> {
        // On the heap: a buffer in the future would be copied through the stack each time a
        // layer of TLS over TLS boxes its future.
        let mut chunk = vec![0u8; 4096];
        loop {
            match self.receive_with(true, read_into(&mut chunk)).await {
                Ok(n) => {
                    if let Some(k) = keep.as_deref_mut() {
                        k.extend_from_slice(&chunk[..n]);
                    }
                }
                Err(StreamError::EndOfStream) if self.lock().peer_closed => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Ends TLS on this connection and hands back the transport (AnyIO's `unwrap`): sends
    /// close_notify, waits for the peer's, and returns the transport with the bytes that
    /// followed the peer's close_notify (a protocol such as STARTTLS's reverse goes on in
    /// plain text from there). Application data that arrived before the peer's close_notify
    /// and was not received is returned too, never dropped.
    ///
    /// Taking the stream by value means no other task can be using it.
    ///
    /// # Errors
    ///
    /// [`StreamError::Closed`] after `aclose`; [`StreamError::Broken`] if the transport ends
    /// without the peer's close_notify (or [`StreamError::EndOfStream`] when not standard
    /// compatible); the transport's errors. The transport is dropped on error.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the stream is consumed, so a cancelled unwrap drops it and closes the
    /// transport.
    ///
    /// # Examples
    ///
    /// ```
    /// # anyio::run(async {
    /// use anyio::streams::{memory::memory_stream_pair, ByteReceiveStream, ByteSendStream};
    /// use anyio::tls::{TlsOptions, TlsStream};
    /// # let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    /// # let mut roots = anyio::tls::rustls::RootCertStore::empty();
    /// # roots.add(ck.cert.der().clone()).unwrap();
    /// # let client_config = std::sync::Arc::new(anyio::tls::client_config_with_roots(roots).unwrap());
    /// # let key = anyio::tls::rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    /// # let server_config = std::sync::Arc::new(anyio::tls::server_config(vec![ck.cert.der().clone()], key).unwrap());
    /// let (a, b) = memory_stream_pair(16);
    /// let (client, server) = futures::join!(
    ///     TlsStream::connect(a, "localhost", client_config, TlsOptions::new()),
    ///     TlsStream::accept(b, server_config, TlsOptions::new()),
    /// );
    /// let (client, server) = (client.unwrap(), server.unwrap());
    /// let (c, s) = futures::join!(client.unwrap(), server.unwrap());
    /// let (c, s) = (c.unwrap(), s.unwrap());
    /// c.transport.send(b"plain again").await.unwrap();
    /// assert_eq!(s.transport.receive(100).await.unwrap(), b"plain again");
    /// # });
    /// ```
    pub async fn unwrap(self) -> Result<Unwrapped<S>, StreamError> {
        if self.lock().closed {
            return Err(StreamError::Closed);
        }
        {
            let _role = self.writer.acquire().await?;
            self.send_close_notify().await?;
        }
        let mut unread = Vec::new();
        self.await_close_notify(Some(&mut unread)).await?;
        let TlsStream { transport, state, .. } = self;
        let st = state.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(Unwrapped { transport, leftover: st.pending_input().to_vec(), unread })
    }
}

/// rustls's output written straight into the transport with
/// [`try_send_vectored`](ByteSendStream::try_send_vectored): `WouldBlock` when it would have to
/// wait (or cannot send without waiting), and the transport's failure kept in `failed`.
struct Direct<'a, S> {
    transport: &'a S,
    failed: Option<StreamError>,
}

impl<S: ByteSendStream> io::Write for Direct<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self.transport.try_send_vectored(bufs) {
            Ok(Some(n)) if n > 0 => Ok(n),
            // Zero is "nothing taken", never progress: wait as for `None`.
            Ok(_) => Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => {
                self.failed = Some(e);
                Err(io::Error::other("the transport failed"))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// rustls's plaintext into `buf`: `None` for the peer's clean end, `WouldBlock` for nothing yet.
fn read_into(buf: &mut [u8]) -> impl FnMut(rustls::Reader<'_>) -> io::Result<Option<usize>> + '_ {
    move |mut r| match r.read(buf) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(e) => Err(e),
    }
}

/// rustls's plaintext into a new `Vec` of exactly what is ready: at most `max` bytes, at most
/// one record's worth.
fn take_vec(max: usize) -> impl FnMut(rustls::Reader<'_>) -> io::Result<Option<Vec<u8>>> {
    move |mut r| {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(None);
        }
        let n = chunk.len().min(max);
        let v = chunk[..n].to_vec();
        r.consume(n);
        Ok(Some(v))
    }
}

/// The receive buffer while a read fills it.
struct ReadBuffer {
    buf: Vec<u8>,
    /// Bytes `..end` are pending input.
    end: usize,
    /// The read came back shorter than the room it had (see `State::last_read_short`).
    short: bool,
}

/// One read from the transport: a socket's named future, or the trait's boxed one.
enum TransportRead<'a, B> {
    Socket(anyio_core::net::ReceiveInto<'a>),
    Boxed(B),
}

impl<B: Future<Output = Result<usize, StreamError>> + Unpin> Future for TransportRead<'_, B> {
    type Output = Result<usize, StreamError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            TransportRead::Socket(f) => std::pin::Pin::new(f).poll(cx),
            TransportRead::Boxed(f) => std::pin::Pin::new(f).poll(cx),
        }
    }
}

/// The receive buffer lent to a read. A read that completes hands it back to its caller, who
/// puts it back under the lock it takes next; a failed or cancelled read leaves it here, and
/// the drop puts it back.
struct Lent<'a> {
    state: &'a Mutex<State>,
    buf: Option<ReadBuffer>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.state.lock().unwrap_or_else(|p| p.into_inner()).put_read_buffer(b);
        }
    }
}

/// Ciphertext being written by `flush`: whatever is not written when this drops (a cancelled
/// or failed write) goes back to the front of the queue; an emptied buffer of up to a record's
/// size is kept for the next write.
struct Unsent<'a> {
    state: &'a Mutex<State>,
    out: Vec<u8>,
    sent: usize,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if self.sent < self.out.len() {
            let mut rest = std::mem::take(&mut self.out);
            rest.drain(..self.sent);
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            // Only the writer takes from `out`, and it puts back before anyone else writes.
            debug_assert!(st.out.is_empty());
            rest.append(&mut st.out);
            st.out = rest;
        } else if self.out.capacity() <= KEEP_OUT_BUFFER {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.out.is_empty() {
                self.out.clear();
                st.out = std::mem::take(&mut self.out);
            }
        }
    }
}

/// The stream operations as inherent methods: called on a `TlsStream` itself (not through
/// `dyn` or a generic bound on the traits), they return plain futures, not boxed ones.
impl<S: ByteStream> TlsStream<S> {
    /// Receives decrypted bytes: as many as are ready, up to `buf.len()`, waiting for at least
    /// one (the same as [`ByteReceiveStream::receive_into`], without boxing its future).
    ///
    /// # Errors
    ///
    /// [`StreamError::EndOfStream`] after the peer's close_notify (and after a transport end
    /// without it when not standard compatible); [`StreamError::Broken`] for a TLS failure or,
    /// when standard compatible, a transport end without close_notify;
    /// [`StreamError::Busy`] if another task is receiving; [`StreamError::Closed`] after
    /// `aclose`; [`StreamError::InvalidArgument`] for an empty `buf`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing received is lost; it is returned by the next receive.
    ///
    /// ```no_run
    /// # async fn f(s: anyio::tls::TlsStream<anyio::net::TcpStream>) -> Result<(), anyio::streams::StreamError> {
    /// let mut buf = [0u8; 1024];
    /// let n = s.receive_into(&mut buf).await?;
    /// println!("{:?}", &buf[..n]);
    /// # Ok(()) }
    /// ```
    pub async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, StreamError> {
        if buf.is_empty() {
            return Err(StreamError::InvalidArgument("the receive buffer must hold at least 1 byte"));
        }
        let _busy = self.receiving.enter()?;
        checkpoint_if_cancelled()?;
        self.receive_with(false, read_into(buf)).await
    }

    /// Receives up to `max_bytes` decrypted bytes into a new `Vec` of exactly the size that
    /// arrived (at most one record's worth, 16 KiB): nothing is allocated while it waits (the
    /// same as [`ByteReceiveStream::receive`], without boxing its future).
    ///
    /// # Errors
    ///
    /// As [`receive_into`](Self::receive_into); `max_bytes` 0 is
    /// [`StreamError::InvalidArgument`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing received is lost.
    ///
    /// ```no_run
    /// # async fn f(s: anyio::tls::TlsStream<anyio::net::TcpStream>) -> Result<(), anyio::streams::StreamError> {
    /// let data = s.receive(65536).await?;
    /// # Ok(()) }
    /// ```
    pub async fn receive(&self, max_bytes: usize) -> Result<Vec<u8>, StreamError> {
        if max_bytes == 0 {
            return Err(StreamError::InvalidArgument("max_bytes must be at least 1"));
        }
        let _busy = self.receiving.enter()?;
        checkpoint_if_cancelled()?;
        self.receive_with(false, take_vec(max_bytes)).await
    }

    /// Encrypts and sends all of `data`, in records of up to 16 KiB; an empty `data` sends no
    /// record (the same as [`ByteSendStream::send`], without boxing its future).
    ///
    /// # Errors
    ///
    /// [`StreamError::Closed`] after `send_eof` or `aclose`; [`StreamError::Busy`] if another
    /// task is sending; [`StreamError::Broken`] once the stream failed; the transport's errors.
    ///
    /// # Cancel safety
    ///
    /// A cancelled send sent a prefix of `data`, and never part of a record: the record being
    /// written when it was cancelled is finished, before anything else, by the stream's next
    /// write (a later send, a receive, or `aclose`). The stream stays usable.
    ///
    /// ```no_run
    /// # async fn f(s: anyio::tls::TlsStream<anyio::net::TcpStream>) -> Result<(), anyio::streams::StreamError> {
    /// s.send(b"hello").await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        let _busy = self.sending.enter()?;
        self.lock().check_can_send()?;
        checkpoint_if_cancelled()?;
        if data.is_empty() {
            return Ok(());
        }
        let _role = self.acquire_writer().await?;
        let mut pos = 0;
        while pos < data.len() {
            // Encrypted and, when the transport takes it at once, written under one lock.
            let waiting = {
                let mut st = self.lock();
                pos += Self::encrypt_locked(&mut st, &data[pos..])?;
                self.write_out_locked(&mut st)?;
                !st.out.is_empty()
            };
            if waiting {
                self.flush().await?;
            }
        }
        Ok(())
    }
}

impl<S: TypedAttributeProvider> TypedAttributeProvider for TlsStream<S> {
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        self.attribute(key).or_else(|| self.transport.extra_attribute(key))
    }
}

#[async_trait::async_trait]
impl<S: ByteStream> AsyncResource for TlsStream<S> {
    /// Closes the stream: sends close_notify, and (when
    /// [standard compatible](TlsOptions::standard_compatible)) waits for the peer's, then
    /// closes the transport. When not standard compatible, close_notify is a courtesy: if the
    /// peer has stopped reading it is given up after a second. Operations in other tasks then fail with
    /// [`StreamError::Closed`]. If another task is sending at that moment, close_notify is
    /// skipped and the transport closed at once. Closing twice is fine.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: cancelled, it stops waiting and closes the transport at once.
    async fn aclose(&self) -> Result<(), StreamError> {
        if std::mem::replace(&mut self.lock().closed, true) {
            return Ok(());
        }
        let exchange = async {
            let Ok(_role) = self.writer.try_acquire() else {
                return Ok(());
            };
            if self.standard_compatible {
                self.send_close_notify().await?;
            } else {
                // A courtesy the peer may not wait for: never held up by a peer that stopped
                // reading (AnyIO sends none at all here).
                let _ = anyio_core::cancel::move_on_after(ALERT_GRACE, self.send_close_notify()).await?;
            }
            drop(_role);
            let peer_closed = self.lock().peer_closed;
            if self.standard_compatible && !peer_closed {
                if let Ok(_busy) = self.receiving.enter() {
                    match self.await_close_notify(None).await {
                        // As AnyIO: a peer that vanished without its close_notify is no
                        // failure of ours to close.
                        Err(StreamError::Broken(_) | StreamError::EndOfStream) => {}
                        r => r?,
                    }
                }
            }
            Ok::<(), StreamError>(())
        };
        match exchange.await {
            Err(e @ StreamError::Cancelled(_)) => {
                let _ = aclose_forcefully(&self.transport).await;
                Err(e)
            }
            _ => self.transport.aclose().await,
        }
    }
}

#[async_trait::async_trait]
impl<S: ByteStream> ByteReceiveStream for TlsStream<S> {
    /// [`TlsStream::receive_into`], boxed: the same errors and cancel safety.
    async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, StreamError> {
        TlsStream::receive_into(self, buf).await
    }

    /// [`TlsStream::receive`], boxed: the same errors and cancel safety.
    async fn receive(&self, max_bytes: usize) -> Result<Vec<u8>, StreamError> {
        TlsStream::receive(self, max_bytes).await
    }
}

#[async_trait::async_trait]
impl<S: ByteStream> ByteSendStream for TlsStream<S> {
    /// [`TlsStream::send`], boxed: the same errors and cancel safety.
    async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        TlsStream::send(self, data).await
    }

    /// Encrypts a prefix of `data` (up to rustls's 64 KiB buffer) and returns its length once
    /// it is committed to go out.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe for anyio cancellation: cancelled before the bytes are committed, it
    /// returns the cancellation and sent nothing; cancelled while writing them out, it returns
    /// their count (they go out with the stream's next write). Dropped while writing, the
    /// count is lost but the bytes still go out.
    async fn send_some(&self, data: &[u8]) -> Result<usize, StreamError> {
        let _busy = self.sending.enter()?;
        self.lock().check_can_send()?;
        checkpoint_if_cancelled()?;
        if data.is_empty() {
            return Ok(0);
        }
        let _role = self.acquire_writer().await?;
        self.flush().await?;
        let n = self.encrypt(data)?;
        match self.flush().await {
            Ok(()) | Err(StreamError::Cancelled(_)) => Ok(n),
            Err(e) => Err(e),
        }
    }
}

#[async_trait::async_trait]
impl<S: ByteStream> ByteStream for TlsStream<S> {
    /// Sends close_notify and keeps receiving: a half-close, which TLS 1.3 allows (RFC 8446
    /// section 6.1) and AnyIO does not offer. Later sends fail with [`StreamError::Closed`].
    ///
    /// # Errors
    ///
    /// [`StreamError::Unsupported`] on TLS 1.2, where close_notify closes both directions;
    /// [`StreamError::Busy`] if another task is sending; the transport's errors.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the close_notify is queued at once and goes out with the next write.
    async fn send_eof(&self) -> Result<(), StreamError> {
        let _busy = self.sending.enter()?;
        {
            let st = self.lock();
            if st.closed {
                return Err(StreamError::Closed);
            }
            if st.conn.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
                return Err(StreamError::Unsupported(
                    "send_eof needs TLS 1.3: in TLS 1.2 a close_notify closes both directions",
                ));
            }
        }
        let _role = self.writer.acquire().await?;
        self.send_close_notify().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_standard_compatible_without_timeout() {
        let o = TlsOptions::default();
        assert!(o.is_standard_compatible());
        assert_eq!(o.timeout(), None);
        assert_eq!(o.hostname_override(), None);
    }

    fn client_state() -> State {
        let config = rustls::ClientConfig::builder_with_provider(crate::config::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        State::new(Connection::Client(rustls::ClientConnection::new(Arc::new(config), name).unwrap()))
    }

    /// Hands back a buffer as a read left it, all of what it read consumed: `full` if the read
    /// filled all the room it had.
    fn read_back(st: &mut State, buf: ReadBuffer, full: bool) {
        st.put_read_buffer(ReadBuffer { buf: buf.buf, end: 0, short: !full });
    }

    /// The header of an application-data record of 16,401 bytes: a partial record.
    const PARTIAL: [u8; 5] = [23, 3, 3, 0x40, 0x11];

    /// As [`read_back`], with the start of a record left pending.
    fn read_back_partial(st: &mut State, mut buf: ReadBuffer, full: bool) {
        buf.buf[..PARTIAL.len()].copy_from_slice(&PARTIAL);
        st.put_read_buffer(ReadBuffer { buf: buf.buf, end: PARTIAL.len(), short: !full });
    }

    #[test]
    fn receive_buffer_takes_four_records_while_data_streams_and_4_kib_once_drained() {
        let mut st = client_state();
        let b = st.take_read_buffer();
        assert_eq!(b.buf.len(), READ_BUFFER, "the first read has room for one record");
        read_back_partial(&mut st, b, true);
        let b = st.take_read_buffer();
        assert_eq!(b.buf.len(), BULK_READ, "a full record-sized read: data streams, four records per read");
        assert_eq!(&b.buf[..PARTIAL.len()], &PARTIAL, "pending bytes move with the buffer");
        read_back_partial(&mut st, b, false);
        let b = st.take_read_buffer();
        assert_eq!(b.buf.len(), BULK_READ, "a short read inside a record keeps streaming");
        read_back(&mut st, b, false);
        let b = st.take_read_buffer();
        assert_eq!(b.buf.len(), SMALL_READ, "a read that drained the transport: the stream waits small");
        read_back_partial(&mut st, b, true);
        let b = st.take_read_buffer();
        assert_eq!(b.buf.len(), READ_BUFFER, "a full 4 KiB read is not yet streaming");
    }

    #[test]
    fn cancelled_reads_leave_an_idle_stream_waiting_with_4_kib() {
        // A receive under a timeout: each read is lent the buffer, waits, and is cancelled,
        // which puts the buffer back as it was lent (what `Lent`'s drop does).
        let mut st = client_state();
        let b = st.take_read_buffer();
        read_back(&mut st, b, false);
        for _ in 0..3 {
            let b = st.take_read_buffer();
            assert_eq!(
                b.buf.len(),
                SMALL_READ,
                "a cancelled read must not count as one that filled its buffer"
            );
            st.put_read_buffer(b);
        }
    }

    #[test]
    fn a_full_read_ending_on_a_record_boundary_gets_the_base_size_not_four_records() {
        let mut st = client_state();
        let b = st.take_read_buffer();
        read_back_partial(&mut st, b, true);
        let b = st.take_read_buffer();
        assert_eq!(b.buf.len(), BULK_READ);
        // It filled its buffer but ended exactly on a record boundary: a burst's last read,
        // maybe, so the next one (which may wait) does not hold four records' room.
        read_back(&mut st, b, true);
        let b = st.take_read_buffer();
        assert_eq!(b.buf.len(), READ_BUFFER);
        read_back_partial(&mut st, b, true);
        let b = st.take_read_buffer();
        assert_eq!(b.buf.len(), BULK_READ, "still streaming once a record is pending again");
    }
}
