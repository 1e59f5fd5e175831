//! TCP sockets on every backend: AnyIO's tests/test_sockets.py TCP behaviours, the error
//! taxonomy, Happy Eyeballs and listeners.

mod support;

use std::collections::HashSet;
use std::error::Error as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyio::{
    move_on_after,
    net::tcp::{connect_tcp_with, TcpConnectOptions, TcpListenerOptions},
    net::{
        connect_tcp, create_tcp_listener, AddressFamily, Listener, ListenerExt, LocalAddress, LocalPort,
        RawSocket, RemoteAddress, RemotePort, SocketAddress, SocketError, SocketFamily, TcpListener,
        TcpStream,
    },
    sleep,
    streams::buffered::BufferedByteStream,
    streams::memory::create_memory_object_stream,
    streams::stapled::StapledByteStream,
    streams::text::TextStream,
    streams::{
        AsyncResource, ChunkReceiveStream, ChunkSendStream, ObjectReceiveStream, ObjectSendStream,
        StreamError, TypedAttributeExt,
    },
    task::GroupError,
    task_group, AnyError, CancelScope, Cancelled, TaskGroup,
};
use support::{guarded_ok, pattern, wait_for, SHORT};

async fn loopback_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

async fn pair() -> (TcpStream, TcpStream) {
    let l = loopback_listener().await;
    let client = connect_tcp("127.0.0.1", l.local_addr().unwrap().port()).await.unwrap();
    let server = l.accept().await.unwrap();
    (client, server)
}

/// Whether this machine can use IPv6 loopback at all.
fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// A port nothing listens on: the operating system picked it free, and it was released.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Connects to `host:port` from a free local port of `local_ip`'s family (bound to `local_ip`
/// itself when `bind_host`), returning the stream and that port. Between picking a free port
/// and binding it, another socket of this busy test process may take it: that attempt is
/// retried with another port.
async fn connect_from_free_port(
    host: &str,
    port: u16,
    local_ip: IpAddr,
    bind_host: bool,
) -> Result<(TcpStream, u16), SocketError> {
    let mut last = None;
    for _ in 0..20 {
        let local_port = std::net::TcpListener::bind((local_ip, 0)).unwrap().local_addr().unwrap().port();
        let mut opts = TcpConnectOptions::new().local_port(local_port);
        if bind_host {
            opts = opts.local_host(local_ip);
        }
        match connect_tcp_with(host, port, opts).await {
            Err(SocketError::Connect { attempts, .. })
                if attempts.iter().all(|a| a.error.kind() == io::ErrorKind::AddrInUse) =>
            {
                last = Some(attempts);
            }
            r => return r.map(|s| (s, local_port)),
        }
    }
    panic!("every free port was taken before it could be bound: {last:?}");
}

/// The distinct addresses `host:port` resolves to for a stream socket, as std sees them.
fn resolved(host: &str, port: u16) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in (host, port).to_socket_addrs().unwrap() {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Runs `f` on the socket behind a `RawSocket` attribute.
fn with_raw<R>(fd: RawFd, f: impl FnOnce(socket2::SockRef<'_>) -> R) -> R {
    // SAFETY: every caller passes the descriptor of a stream or listener it holds open for the
    // whole call, so the descriptor stays valid while it is borrowed here.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    f(socket2::SockRef::from(&fd))
}

/// `getsockname` of a raw socket, as the operating system reports it.
fn raw_local_addr(fd: RawFd) -> SocketAddr {
    with_raw(fd, |s| s.local_addr().unwrap().as_socket().unwrap())
}

/// Receives exactly `n` bytes, however the stream splits them.
async fn receive_n(s: &TcpStream, n: usize) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.extend(s.receive(n - out.len()).await?);
    }
    Ok(out)
}

/// Runs a task-group body that fails the test on any task failure.
async fn group(body: impl AsyncFnOnce(TaskGroup<AnyError>) -> Result<(), AnyError>) -> Result<(), AnyError> {
    task_group(|tg: TaskGroup<AnyError>| body(tg)).await.map_err(AnyError::other)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sending and receiving

#[anyio::test]
async fn a_client_and_server_exchange_bytes_both_ways() {
    guarded_ok(async {
        let (c, s) = pair().await;
        c.send(b"hello").await?;
        assert_eq!(s.receive(100).await?, b"hello");
        s.send(b"world").await?;
        assert_eq!(c.receive(100).await?, b"world");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn send_eof_gives_the_peer_end_of_stream_while_it_can_still_reply() {
    guarded_ok(async {
        let (c, s) = pair().await;
        c.send(b"request").await?;
        c.send_eof().await?;
        assert_eq!(s.receive(100).await?, b"request");
        assert!(matches!(s.receive(100).await, Err(StreamError::EndOfStream)));
        s.send(b"reply").await?;
        assert_eq!(c.receive(100).await?, b"reply");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn receive_returns_at_most_max_bytes_and_leaves_the_rest_for_the_next_receive() {
    guarded_ok(async {
        let (c, s) = pair().await;
        s.send(b"abcdefgh").await?;
        let mut got = Vec::new();
        while got.len() < 8 {
            let chunk = c.receive(3).await?;
            assert!(!chunk.is_empty() && chunk.len() <= 3, "{chunk:?}");
            got.extend(chunk);
        }
        assert_eq!(got, b"abcdefgh");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn receive_with_max_bytes_zero_or_an_empty_buffer_is_an_invalid_argument() {
    guarded_ok(async {
        let (c, s) = pair().await;
        assert!(matches!(c.receive(0).await, Err(StreamError::InvalidArgument(_))));
        assert!(matches!(c.receive_into(&mut []).await, Err(StreamError::InvalidArgument(_))));
        // The refused call changed nothing: the stream still works.
        s.send(b"x").await?;
        assert_eq!(c.receive(1).await?, b"x");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_4_mib_send_arrives_intact_while_the_peer_reads_concurrently() {
    guarded_ok(async {
        let (c, s) = pair().await;
        // Far more than the socket buffers hold: the single send must wait for the reader.
        let data = Arc::new(pattern(4 << 20, 1));
        let expected = data.clone();
        group(async move |tg| {
            let reader = tg.spawn(async move { Ok(receive_n(&s, expected.len()).await?) });
            c.send(&data).await?;
            let got = reader.await?;
            assert!(got == *data, "the received bytes differ from the sent ones");
            Ok(())
        })
        .await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Extra attributes

#[anyio::test]
async fn a_connected_stream_reports_its_addresses_ports_family_and_raw_socket() {
    guarded_ok(async {
        let l = loopback_listener().await;
        let server_addr = l.local_addr()?;
        let c = connect_tcp("127.0.0.1", server_addr.port()).await?;
        let s = l.accept().await?;

        let local = raw_local_addr(c.extra::<RawSocket>()?);
        assert_eq!(c.extra::<SocketFamily>()?, AddressFamily::Ipv4);
        assert_eq!(c.extra::<LocalAddress>()?, SocketAddress::Inet(local));
        assert_eq!(c.extra::<LocalPort>()?, local.port());
        assert_eq!(c.extra::<RemoteAddress>()?, SocketAddress::Inet(server_addr));
        assert_eq!(c.extra::<RemotePort>()?, server_addr.port());
        assert_eq!((c.local_addr()?, c.peer_addr()?), (local, server_addr));

        // The accepted side sees the same connection from the other end.
        assert_eq!(s.extra::<LocalAddress>()?, SocketAddress::Inet(server_addr));
        assert_eq!(s.extra::<RemoteAddress>()?, SocketAddress::Inet(local));
        assert_eq!(s.extra::<RemotePort>()?, local.port());
        assert_eq!(raw_local_addr(s.extra::<RawSocket>()?), server_addr);
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn connected_and_accepted_streams_have_tcp_nodelay_on() {
    guarded_ok(async {
        let (c, s) = pair().await;
        for stream in [&c, &s] {
            assert!(stream.nodelay()?);
            assert!(with_raw(stream.extra::<RawSocket>()?, |r| r.tcp_nodelay().unwrap()));
        }
        c.set_nodelay(false)?;
        assert!(!c.nodelay()?);
        assert!(!with_raw(c.extra::<RawSocket>()?, |r| r.tcp_nodelay().unwrap()));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_closed_stream_no_longer_offers_its_raw_socket() {
    guarded_ok(async {
        let (c, _s) = pair().await;
        assert!(c.try_extra::<RawSocket>().is_some());
        c.aclose().await?;
        assert!(c.try_extra::<RawSocket>().is_none(), "a closed descriptor must not be handed out");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_listener_reports_its_local_address_port_and_family_but_no_remote_ones() {
    guarded_ok(async {
        let multi = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        assert_eq!(multi.extra::<SocketFamily>()?, AddressFamily::Ipv4);
        assert_eq!(multi.listeners().len(), 1);
        for l in multi.listeners() {
            let fd = l.extra::<RawSocket>()?;
            let addr = raw_local_addr(fd);
            assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert_eq!(l.extra::<SocketFamily>()?, AddressFamily::Ipv4);
            assert_eq!(l.extra::<LocalAddress>()?, SocketAddress::Inet(addr));
            assert_eq!(l.extra::<LocalPort>()?, addr.port());
            assert!(l.extra::<RemoteAddress>().is_err());
            assert!(l.extra::<RemotePort>().is_err());
            // AnyIO's test_socket_options: listeners are created with SO_REUSEADDR.
            assert!(with_raw(fd, |r| r.reuse_address().unwrap()));
        }
        assert!(multi.extra::<RemoteAddress>().is_err());
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn socket_attributes_pass_through_buffered_text_and_stapled_wrappers() {
    guarded_ok(async {
        let (c, s) = pair().await;
        let (local, remote) = (c.local_addr()?, c.peer_addr()?);
        let fd = c.extra::<RawSocket>()?;

        let text = TextStream::new(BufferedByteStream::new(c));
        assert_eq!(text.extra::<LocalAddress>()?, SocketAddress::Inet(local));
        assert_eq!(text.extra::<LocalPort>()?, local.port());
        assert_eq!(text.extra::<RemoteAddress>()?, SocketAddress::Inet(remote));
        assert_eq!(text.extra::<RemotePort>()?, remote.port());
        assert_eq!(text.extra::<SocketFamily>()?, AddressFamily::Ipv4);
        assert_eq!(text.extra::<RawSocket>()?, fd);
        // The wrapped socket still carries the data both ways.
        ObjectSendStream::send(&text, "héllo".to_owned()).await?;
        assert_eq!(s.receive(100).await?, "héllo".as_bytes());
        s.send("wörld".as_bytes()).await?;
        assert_eq!(ObjectReceiveStream::receive(&text).await?, "wörld");

        // A stapled stream answers from its send half first, then from its receive half.
        let server_local = s.local_addr()?;
        let (tx, rx) = create_memory_object_stream::<Vec<u8>>(1);
        let tcp_receives = StapledByteStream::new(ChunkSendStream::new(tx), s);
        assert_eq!(tcp_receives.extra::<LocalAddress>()?, SocketAddress::Inet(server_local));
        assert_eq!(tcp_receives.extra::<RemotePort>()?, local.port());
        let (c2, _s2) = pair().await;
        let c2_local = c2.local_addr()?;
        let tcp_sends = StapledByteStream::new(c2, ChunkReceiveStream::new(rx));
        assert_eq!(tcp_sends.extra::<LocalAddress>()?, SocketAddress::Inet(c2_local));
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Busy, closed, broken

#[anyio::test]
async fn a_second_concurrent_receive_fails_with_busy() {
    guarded_ok(async {
        let (c, _s) = pair().await;
        let c = Arc::new(c);
        let entered = Arc::new(AtomicBool::new(false));
        group(async move |tg| {
            let (c2, entered2) = (c.clone(), entered.clone());
            tg.spawn(async move {
                entered2.store(true, Ordering::SeqCst);
                c2.receive(10).await?;
                Ok(())
            });
            wait_for(&entered).await?;
            sleep(SHORT).await?; // let the other task block in its receive
            let err = c.receive(10).await.unwrap_err();
            assert!(matches!(err, StreamError::Busy(_)), "{err:?}");
            assert!(err.to_string().contains("already reading from"), "{err}");
            tg.cancel();
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn a_second_concurrent_send_fails_with_busy() {
    guarded_ok(async {
        let (c, _s) = pair().await; // the peer never reads
        let c = Arc::new(c);
        let entered = Arc::new(AtomicBool::new(false));
        group(async move |tg| {
            let (c2, entered2) = (c.clone(), entered.clone());
            tg.spawn(async move {
                let big = vec![0u8; 32 << 20]; // more than the socket buffers: blocks for good
                entered2.store(true, Ordering::SeqCst);
                c2.send(&big).await?;
                Ok(())
            });
            wait_for(&entered).await?;
            sleep(SHORT).await?;
            let err = c.send(b"foo").await.unwrap_err();
            assert!(matches!(err, StreamError::Busy(_)), "{err:?}");
            assert!(err.to_string().contains("already writing to"), "{err}");
            tg.cancel();
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn receive_send_and_send_eof_after_aclose_fail_with_closed() {
    guarded_ok(async {
        let (c, _s) = pair().await;
        c.aclose().await?;
        c.aclose().await?; // idempotent
        assert!(matches!(c.receive(10).await, Err(StreamError::Closed)));
        assert!(matches!(c.send(b"foo").await, Err(StreamError::Closed)));
        assert!(matches!(c.send_eof().await, Err(StreamError::Closed)));
        assert!(c.local_addr().is_err());
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn closing_a_stream_fails_a_receive_blocked_in_another_task_with_closed() {
    guarded_ok(async {
        let (c, _s) = pair().await;
        let c = Arc::new(c);
        task_group(|tg| async move {
            let c2 = c.clone();
            let h = tg.spawn(async move { Ok::<_, AnyError>(c2.receive(10).await) });
            anyio::sleep(std::time::Duration::from_millis(20)).await?;
            c.aclose().await?;
            assert!(matches!(h.await?, Err(StreamError::Closed)));
            Ok::<_, AnyError>(())
        })
        .await
        .map_err(AnyError::other)?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn closing_a_stream_fails_a_send_blocked_in_another_task_with_closed() {
    guarded_ok(async {
        let (c, _s) = pair().await; // the peer never reads
        let c = Arc::new(c);
        let entered = Arc::new(AtomicBool::new(false));
        group(async move |tg| {
            let (c2, entered2) = (c.clone(), entered.clone());
            let h = tg.spawn(async move {
                let big = vec![0u8; 32 << 20];
                entered2.store(true, Ordering::SeqCst);
                Ok(c2.send(&big).await)
            });
            wait_for(&entered).await?;
            sleep(SHORT).await?;
            c.aclose().await?;
            let r = h.await?;
            assert!(matches!(r, Err(StreamError::Closed)), "{r:?}");
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn receive_after_the_peer_closed_is_end_of_stream_and_after_aclose_closed() {
    guarded_ok(async {
        let (c, s) = pair().await;
        s.aclose().await?;
        assert!(matches!(c.receive(1).await, Err(StreamError::EndOfStream)));
        assert!(matches!(c.receive(1).await, Err(StreamError::EndOfStream)), "end of stream is sticky");
        c.aclose().await?;
        assert!(matches!(c.receive(1).await, Err(StreamError::Closed)));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn sending_to_a_peer_that_closed_fails_with_broken_and_after_aclose_closed() {
    guarded_ok(async {
        let (c, s) = pair().await;
        s.aclose().await?;
        drop(s);
        // The first sends may still be accepted by the kernel; the peer's reset ends them.
        let mut err = None;
        for _ in 0..5000 {
            match c.send(b"foo").await {
                Ok(()) => sleep(Duration::from_millis(1)).await?,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let err = err.expect("sending to a closed peer never failed");
        assert!(matches!(err, StreamError::Broken(Some(_))), "{err:?}");
        let again = c.send(b"foo").await;
        assert!(matches!(again, Err(StreamError::Broken(_))), "broken is sticky: {again:?}");
        c.aclose().await?;
        assert!(matches!(c.send(b"foo").await, Err(StreamError::Closed)));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn sending_to_a_peer_that_reset_fails_with_broken_carrying_the_os_error() {
    guarded_ok(async {
        let (c, s) = pair().await;
        with_raw(s.extra::<RawSocket>()?, |r| r.set_linger(Some(Duration::ZERO)))?;
        s.aclose().await?; // SO_LINGER 0: the close sends a reset
        let mut err = None;
        for _ in 0..5000 {
            match c.send(b"foo").await {
                Ok(()) => sleep(Duration::from_millis(1)).await?,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let err = err.expect("sending to a reset peer never failed");
        let Some(source) = err.source().and_then(|s| s.downcast_ref::<io::Error>()) else {
            panic!("the OS error is not the source: {err:?}");
        };
        assert!(
            matches!(source.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe),
            "{source:?}"
        );
        assert!(matches!(err, StreamError::Broken(Some(_))), "{err:?}");
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Connecting: errors, local binding, Happy Eyeballs

#[anyio::test]
async fn connecting_to_a_port_nobody_listens_on_fails_with_connect_naming_the_address() {
    guarded_ok(async {
        let port = free_port();
        let err = connect_tcp("127.0.0.1", port).await.unwrap_err();
        let target: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        match &err {
            SocketError::Connect { host, port: p, attempts } => {
                assert_eq!((host.as_str(), *p), ("127.0.0.1", port));
                assert_eq!(attempts.len(), 1, "{attempts:?}");
                assert_eq!(attempts[0].address, target);
                assert_eq!(attempts[0].error.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected SocketError::Connect, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("all connection attempts") && msg.contains(&target.to_string()), "{msg}");
        let source = err.source().and_then(|s| s.downcast_ref::<io::Error>()).expect("an io::Error source");
        assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn when_every_address_of_a_name_refuses_the_error_lists_each_attempt() {
    guarded_ok(async {
        let port = free_port();
        let expected = resolved("localhost", port);
        let err = connect_tcp("localhost", port).await.unwrap_err();
        let SocketError::Connect { attempts, .. } = &err else {
            panic!("expected SocketError::Connect, got {err:?}");
        };
        let tried: HashSet<SocketAddr> = attempts.iter().map(|a| a.address).collect();
        assert_eq!(attempts.len(), expected.len(), "one attempt per address: {attempts:?}");
        assert_eq!(tried, expected.iter().copied().collect(), "{attempts:?}");
        let msg = err.to_string();
        for a in attempts {
            assert!(msg.contains(&a.address.to_string()), "{msg}");
            if a.address.is_ipv4() || ipv6_available() {
                assert_eq!(a.error.kind(), io::ErrorKind::ConnectionRefused, "{a}");
            }
        }
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn an_unresolvable_host_fails_with_resolve_naming_the_host() {
    guarded_ok(async {
        let err = connect_tcp("nonexistent.invalid", 80).await.unwrap_err();
        match &err {
            SocketError::Resolve { host, .. } => assert_eq!(host, "nonexistent.invalid"),
            other => panic!("expected SocketError::Resolve, got {other:?}"),
        }
        assert!(err.to_string().contains("nonexistent.invalid"), "{err}");
        assert!(err.source().is_some());
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn connecting_to_port_zero_is_an_invalid_argument() {
    guarded_ok(async {
        let err = connect_tcp("127.0.0.1", 0).await.unwrap_err();
        assert!(matches!(err, SocketError::InvalidArgument(_)), "{err:?}");
        let opts = TcpConnectOptions::new().local_host(Ipv4Addr::LOCALHOST.into());
        let err = connect_tcp_with("127.0.0.1", 0, opts).await.unwrap_err();
        assert!(matches!(err, SocketError::InvalidArgument(_)), "{err:?}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn connect_binds_the_local_host_and_port_it_is_given() {
    guarded_ok(async {
        let l = loopback_listener().await;
        let (c, local_port) =
            connect_from_free_port("127.0.0.1", l.local_addr()?.port(), Ipv4Addr::LOCALHOST.into(), true)
                .await?;
        assert_eq!(c.local_addr()?, SocketAddr::from((Ipv4Addr::LOCALHOST, local_port)));
        assert_eq!(c.extra::<LocalPort>()?, local_port);
        let s = l.accept().await?;
        assert_eq!(s.extra::<RemotePort>()?, local_port);
        c.send(b"bound").await?;
        assert_eq!(s.receive(10).await?, b"bound");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_local_port_without_a_local_host_binds_that_port_in_the_targets_family() {
    guarded_ok(async {
        let l = loopback_listener().await;
        let (c, local_port) =
            connect_from_free_port("127.0.0.1", l.local_addr()?.port(), Ipv4Addr::UNSPECIFIED.into(), false)
                .await?;
        assert_eq!(c.extra::<LocalPort>()?, local_port);
        assert_eq!(c.extra::<SocketFamily>()?, AddressFamily::Ipv4);

        if !ipv6_available() {
            eprintln!("skipping the IPv6 half: IPv6 loopback is unavailable");
            return Ok(());
        }
        let l6 = TcpListener::bind("[::1]:0".parse().unwrap()).await?;
        let (c6, port6) =
            connect_from_free_port("::1", l6.local_addr()?.port(), Ipv6Addr::UNSPECIFIED.into(), false)
                .await?;
        assert_eq!(c6.local_addr()?, SocketAddr::from((Ipv6Addr::LOCALHOST, port6)));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_local_host_of_another_family_than_every_target_is_an_invalid_argument() {
    guarded_ok(async {
        let opts = TcpConnectOptions::new().local_host(Ipv4Addr::LOCALHOST.into());
        let err = connect_tcp_with("::1", 80, opts).await.unwrap_err();
        assert!(matches!(err, SocketError::InvalidArgument(_)), "{err:?}");
        assert!(err.to_string().contains("family"), "{err}");

        let opts = TcpConnectOptions::new().local_host(Ipv6Addr::LOCALHOST.into());
        let err = connect_tcp_with("127.0.0.1", 80, opts).await.unwrap_err();
        assert!(matches!(err, SocketError::InvalidArgument(_)), "{err:?}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn connecting_to_localhost_reaches_a_listener_on_127_0_0_1_only() {
    // Where localhost resolves to ::1 first, that attempt is refused and the IPv4 one wins.
    guarded_ok(async {
        let l = loopback_listener().await;
        let c = connect_tcp("localhost", l.local_addr()?.port()).await?;
        assert_eq!(c.peer_addr()?.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let s = l.accept().await?;
        c.send(b"v4").await?;
        assert_eq!(s.receive(10).await?, b"v4");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn connecting_to_localhost_reaches_a_listener_on_ipv6_loopback_only() {
    guarded_ok(async {
        if !ipv6_available() || !resolved("localhost", 1).iter().any(|a| a.is_ipv6()) {
            eprintln!("skipped: localhost has no IPv6 address here");
            return Ok(());
        }
        let l = TcpListener::bind("[::1]:0".parse().unwrap()).await?;
        let c = connect_tcp("localhost", l.local_addr()?.port()).await?;
        assert_eq!(c.peer_addr()?.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
        let _s = l.accept().await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn connecting_to_localhost_tries_ipv6_first_when_a_dual_stack_listener_accepts_both() {
    // AnyIO's test_happy_eyeballs[dualstack]: the IPv6 attempt starts first and wins.
    guarded_ok(async {
        if !ipv6_available() || !resolved("localhost", 1).iter().any(|a| a.is_ipv6()) {
            eprintln!("skipped: localhost has no IPv6 address here");
            return Ok(());
        }
        let multi = create_tcp_listener(TcpListenerOptions::new()).await?;
        let c = connect_tcp("localhost", multi.extra::<LocalPort>()?).await?;
        assert_eq!(c.peer_addr()?.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
        let _s = multi.accept().await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_connect_cancelled_by_its_scope_returns_cancelled() {
    guarded_ok(async {
        let l = loopback_listener().await;
        let scope = CancelScope::new();
        scope.cancel();
        let r = scope
            .run(async {
                let e = connect_tcp("127.0.0.1", l.local_addr()?.port()).await.unwrap_err();
                assert!(matches!(e, SocketError::Cancelled(_)), "{e:?}");
                Err::<(), AnyError>(e.into())
            })
            .await;
        assert!(matches!(r, Ok(None)), "the scope catches its own cancellation: {r:?}");
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Listeners

#[anyio::test]
async fn the_listener_serves_clients_on_its_ephemeral_port() {
    guarded_ok(async {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = listener.extra::<LocalPort>()?;
        let c = connect_tcp("localhost", port).await?;
        let s = listener.accept().await?;
        c.send(b"x").await?;
        assert_eq!(s.receive(1).await?, b"x");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_listener_without_a_host_accepts_ipv4_and_ipv6_clients_on_one_socket() {
    guarded_ok(async {
        let multi = create_tcp_listener(TcpListenerOptions::new()).await?;
        assert_eq!(multi.listeners().len(), 1, "one dual-stack socket");
        let port = multi.extra::<LocalPort>()?;

        let v4 = connect_tcp("127.0.0.1", port).await?;
        let s4 = multi.accept().await?;
        v4.send(b"over v4").await?;
        assert_eq!(receive_n(&s4, 7).await?, b"over v4");

        if !ipv6_available() {
            eprintln!("skipping the IPv6 client: IPv6 loopback is unavailable");
            return Ok(());
        }
        let v6 = connect_tcp("::1", port).await?;
        let s6 = multi.accept().await?;
        assert_eq!(s6.peer_addr()?.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
        s6.send(b"over v6").await?;
        assert_eq!(receive_n(&v6, 7).await?, b"over v6");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_listener_on_localhost_puts_every_socket_on_one_port_and_each_accepts() {
    guarded_ok(async {
        let multi = create_tcp_listener(TcpListenerOptions::new().local_host("localhost")).await?;
        assert_eq!(multi.listeners().len(), resolved("localhost", 0).len(), "a socket per address");
        let ports: HashSet<u16> = multi.listeners().iter().map(|l| l.extra::<LocalPort>().unwrap()).collect();
        assert_eq!(ports.len(), 1, "{ports:?}");
        for l in multi.listeners() {
            let addr = l.local_addr()?;
            let c = connect_tcp(&addr.ip().to_string(), addr.port()).await?;
            let s = l.accept().await?;
            c.send(b"blah").await?;
            let request = receive_n(&s, 4).await?;
            s.send(&request.iter().rev().copied().collect::<Vec<u8>>()).await?;
            assert_eq!(receive_n(&c, 4).await?, b"halb");
        }

        // With an explicit port, every socket is on that port. (Another socket of this busy
        // process may take a free port before it is bound: then try another.)
        let (multi, port) = {
            let mut tries = 0;
            loop {
                let port = free_port();
                let opts = TcpListenerOptions::new().local_host("localhost").local_port(port);
                match create_tcp_listener(opts).await {
                    Err(SocketError::Bind { source, .. })
                        if source.kind() == io::ErrorKind::AddrInUse && tries < 20 =>
                    {
                        tries += 1
                    }
                    r => break (r?, port),
                }
            }
        };
        for l in multi.listeners() {
            assert_eq!(l.extra::<LocalPort>()?, port);
        }
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_listener_family_filter_keeps_only_that_familys_sockets() {
    guarded_ok(async {
        let v4 = create_tcp_listener(
            TcpListenerOptions::new().local_host("localhost").family(AddressFamily::Ipv4),
        )
        .await?;
        assert_eq!(v4.listeners().len(), 1);
        assert_eq!(v4.extra::<SocketFamily>()?, AddressFamily::Ipv4);
        let any_v4 = create_tcp_listener(TcpListenerOptions::new().family(AddressFamily::Ipv4)).await?;
        assert_eq!(any_v4.extra::<SocketFamily>()?, AddressFamily::Ipv4);
        let unix = create_tcp_listener(TcpListenerOptions::new().family(AddressFamily::Unix)).await;
        assert!(matches!(unix, Err(SocketError::InvalidArgument(_))), "{unix:?}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn reuse_port_lets_two_listeners_share_one_port() {
    guarded_ok(async {
        let opts = TcpListenerOptions::new().local_host("127.0.0.1").reuse_port(true);
        let a = create_tcp_listener(opts.clone()).await?;
        assert_eq!(a.listeners().len(), 1);
        let port = a.extra::<LocalPort>()?;
        let b = create_tcp_listener(opts.local_port(port)).await?;
        assert_eq!(b.listeners().len(), 1);
        assert_eq!(a.extra::<LocalAddress>()?, b.extra::<LocalAddress>()?);
        a.aclose().await?;
        b.aclose().await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn binding_a_port_in_use_fails_with_bind_naming_the_address() {
    guarded_ok(async {
        let a = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = a.extra::<LocalPort>()?;
        let err = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1").local_port(port))
            .await
            .unwrap_err();
        let target = SocketAddress::Inet((Ipv4Addr::LOCALHOST, port).into());
        match &err {
            SocketError::Bind { address, source } => {
                assert_eq!(*address, target);
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
            }
            other => panic!("expected SocketError::Bind, got {other:?}"),
        }
        assert!(err.to_string().contains(&target.to_string()), "{err}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn accept_after_the_listener_is_closed_fails_with_closed() {
    guarded_ok(async {
        let multi = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        for l in multi.listeners() {
            l.aclose().await?;
            assert!(matches!(l.accept().await, Err(StreamError::Closed)));
        }
        assert!(matches!(multi.accept().await, Err(StreamError::Closed)));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn closing_a_listener_fails_an_accept_blocked_in_another_task_with_closed() {
    guarded_ok(async {
        let l = Arc::new(loopback_listener().await);
        group(async move |tg| {
            let l2 = l.clone();
            let h = tg.spawn(async move { Ok(l2.accept().await.map(drop)) });
            sleep(SHORT).await?;
            l.aclose().await?;
            let r = h.await?;
            assert!(matches!(r, Err(StreamError::Closed)), "{r:?}");
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn from_std_adopts_a_listening_socket_and_a_connected_stream() {
    guarded_ok(async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = std_listener.local_addr()?;
        let l = TcpListener::from_std(std_listener)?;
        assert_eq!(l.local_addr()?, addr);
        assert_eq!(l.extra::<LocalAddress>()?, SocketAddress::Inet(addr));

        // A blocking connect to loopback completes from the backlog, before any accept.
        let c = TcpStream::from_std(std::net::TcpStream::connect(addr)?)?;
        assert!(!c.nodelay()?, "an adopted socket keeps its options (std leaves Nagle on)");
        assert_eq!(c.extra::<SocketFamily>()?, AddressFamily::Ipv4);
        assert_eq!(c.extra::<RemoteAddress>()?, SocketAddress::Inet(addr));
        let s = l.accept().await?;
        c.send(b"adopted").await?;
        assert_eq!(receive_n(&s, 7).await?, b"adopted");
        s.send(b"ok").await?;
        assert_eq!(receive_n(&c, 2).await?, b"ok");
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// serve

/// Counts handler exits, whether they returned or were cancelled.
struct Exit(Arc<AtomicUsize>);
impl Drop for Exit {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[anyio::test]
async fn serve_runs_a_handler_per_client_and_stops_when_its_scope_is_cancelled() {
    guarded_ok(async {
        const CLIENTS: usize = 5;
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = listener.extra::<LocalPort>()?;
        let exits = Arc::new(AtomicUsize::new(0));
        let scope = CancelScope::new();
        let (exits2, scope2) = (exits.clone(), scope.clone());
        group(async move |tg| {
            let server = tg.spawn(async move {
                let handler = move |stream: TcpStream| {
                    let exit = Exit(exits2.clone());
                    async move {
                        let _exit = exit;
                        let data = stream.receive(100).await?;
                        stream.send(&data).await?;
                        // Stay connected until the client hangs up or serve is cancelled.
                        let _ = stream.receive(1).await?;
                        Ok::<_, AnyError>(())
                    }
                };
                Ok(scope2.run(listener.serve(handler)).await)
            });
            let clients: Vec<TcpStream> = {
                let mut v = Vec::new();
                for i in 0..CLIENTS {
                    let c = connect_tcp("127.0.0.1", port).await?;
                    let msg = format!("client {i}");
                    c.send(msg.as_bytes()).await?;
                    assert_eq!(receive_n(&c, msg.len()).await?, msg.as_bytes());
                    v.push(c);
                }
                v
            };
            assert_eq!(exits.load(Ordering::SeqCst), 0, "every handler is still waiting on its client");
            scope.cancel();
            let r = server.await?;
            assert!(matches!(r, Ok(None)), "serve ends with its scope's cancellation: {r:?}");
            assert_eq!(exits.load(Ordering::SeqCst), CLIENTS, "serve returned before its handlers ended");
            drop(clients);
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn a_served_handler_reads_the_clients_data_then_end_of_stream_and_can_still_reply() {
    // AnyIO's TestTCPListener test_eof_after_send and test_send_after_eof.
    guarded_ok(async {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = listener.extra::<LocalPort>()?;
        let scope = CancelScope::new();
        let scope2 = scope.clone();
        group(async move |tg| {
            let server = tg.spawn(async move {
                let handler = |stream: TcpStream| async move {
                    assert_eq!(receive_n(&stream, 5).await?, b"Hello");
                    let end = stream.receive(100).await;
                    assert!(matches!(end, Err(StreamError::EndOfStream)), "{end:?}");
                    stream.send(b"Hello\n").await?;
                    stream.aclose().await?;
                    Ok::<_, AnyError>(())
                };
                Ok(scope2.run(listener.serve(handler)).await)
            });
            let c = connect_tcp("127.0.0.1", port).await?;
            c.send(b"Hello").await?;
            c.send_eof().await?;
            assert_eq!(receive_n(&c, 6).await?, b"Hello\n");
            assert!(matches!(c.receive(100).await, Err(StreamError::EndOfStream)));
            scope.cancel();
            let r = server.await?;
            assert!(matches!(r, Ok(None)), "{r:?}");
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn serve_stops_at_its_move_on_after_deadline() {
    guarded_ok(async {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let r = move_on_after(SHORT, listener.serve(|_s: TcpStream| async { Ok::<_, AnyError>(()) })).await;
        assert!(matches!(r, Ok(None)), "{r:?}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn with_fail_fast_a_failing_handler_ends_serve_with_its_error() {
    // AnyIO's rule, now by name: plain `serve` reports the error and keeps serving
    // (tests/net_serve.rs).
    guarded_ok(async {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = listener.extra::<LocalPort>()?;
        let _client = connect_tcp("127.0.0.1", port).await?;
        let r = listener
            .serve_with(anyio::net::ServeOptions::new().fail_fast(true), |_s: TcpStream| async {
                Err::<(), _>(AnyError::msg("handler failed"))
            })
            .await;
        match r {
            Err(GroupError::Failed(errors)) => {
                assert_eq!(errors.len(), 1);
                assert_eq!(errors[0].to_string(), "handler failed");
            }
            other => panic!("expected the handler's failure, got {other:?}"),
        }
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn closing_the_listener_from_another_task_ends_serve_with_closed() {
    guarded_ok(async {
        let listener =
            Arc::new(create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?);
        group(async move |tg| {
            let l2 = listener.clone();
            let server = tg
                .spawn(async move { Ok(l2.serve(|_s: TcpStream| async { Ok::<_, StreamError>(()) }).await) });
            sleep(SHORT).await?;
            listener.aclose().await?;
            match server.await? {
                Err(GroupError::Failed(errors)) => {
                    assert_eq!(errors.len(), 1);
                    assert!(matches!(errors[0], StreamError::Closed), "{errors:?}");
                }
                other => panic!("expected serve to fail with Closed, got {other:?}"),
            }
            Ok(())
        })
        .await
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Cancellation loses nothing

#[anyio::test]
async fn a_receive_cancelled_by_its_scope_returns_cancelled_and_loses_no_byte() {
    guarded_ok(async {
        let (c, s) = pair().await;
        let r = CancelScope::with_timeout(SHORT)
            .run(async {
                let e = c.receive(100).await.unwrap_err();
                assert!(matches!(e, StreamError::Cancelled(_)), "{e:?}");
                Err::<(), _>(e)
            })
            .await;
        assert!(matches!(r, Ok(None)), "the scope catches its own cancellation: {r:?}");
        s.send(b"after").await?;
        assert_eq!(receive_n(&c, 5).await?, b"after");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_receive_in_an_already_cancelled_scope_takes_nothing_from_the_socket() {
    guarded_ok(async {
        let (c, s) = pair().await;
        s.send(b"kept").await?;
        sleep(SHORT).await?; // let the bytes reach the receive buffer
        let scope = CancelScope::new();
        scope.cancel();
        let r = scope.run(async { c.receive(100).await }).await;
        assert!(matches!(r, Ok(None)), "{r:?}");
        assert_eq!(receive_n(&c, 4).await?, b"kept");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_blocked_send_cancelled_by_its_scope_returns_cancelled() {
    guarded_ok(async {
        let (c, _s) = pair().await; // the peer never reads
        let big = vec![0u8; 32 << 20];
        let r = CancelScope::with_timeout(SHORT)
            .run(async {
                let e = c.send(&big).await.unwrap_err();
                assert!(matches!(e, StreamError::Cancelled(_)), "{e:?}");
                Err::<(), _>(e)
            })
            .await;
        assert!(matches!(r, Ok(None)), "{r:?}");
        Ok(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// futures-io and tokio interop

#[anyio::test]
async fn futures_io_write_all_read_exact_and_close_work_on_tcp_streams() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    guarded_ok(async {
        let (mut c, mut s) = pair().await;
        let data = Arc::new(pattern(1 << 20, 7));
        let sent = data.clone();
        group(async move |tg| {
            let writer = tg.spawn(async move {
                c.write_all(&sent).await?;
                c.flush().await?;
                c.close().await?; // half-closes: the peer reads end of stream
                let mut reply = Vec::new();
                c.read_to_end(&mut reply).await?;
                Ok(reply)
            });
            let mut buf = vec![0u8; data.len()];
            s.read_exact(&mut buf).await?;
            assert!(buf == *data, "the received bytes differ from the sent ones");
            assert_eq!(s.read(&mut [0u8; 16]).await?, 0, "end of stream after close");
            s.write_all(b"thanks").await?;
            s.close().await?;
            assert_eq!(writer.await?, b"thanks");
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn a_futures_io_read_cancelled_by_its_scope_fails_with_the_cancellation_and_loses_nothing() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    guarded_ok(async {
        let (mut c, mut s) = pair().await;
        let r = CancelScope::with_timeout(SHORT)
            .run(async { Ok::<_, Cancelled>(c.read(&mut [0u8; 16]).await) })
            .await;
        let Ok(Some(Err(e))) = r else { panic!("expected a failed read, got {r:?}") };
        assert!(e.get_ref().is_some_and(|inner| inner.is::<Cancelled>()), "{e:?}");
        s.write_all(b"after").await?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"after");
        Ok(())
    })
    .await;
}

#[cfg(feature = "tokio")]
#[anyio::test]
async fn tokio_io_write_all_read_exact_and_shutdown_work_on_tcp_streams() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    guarded_ok(async {
        let (mut c, mut s) = pair().await;
        let data = Arc::new(pattern(1 << 20, 9));
        let sent = data.clone();
        group(async move |tg| {
            let writer = tg.spawn(async move {
                c.write_all(&sent).await?;
                c.flush().await?;
                c.shutdown().await?;
                let mut reply = Vec::new();
                c.read_to_end(&mut reply).await?;
                Ok(reply)
            });
            let mut buf = vec![0u8; data.len()];
            s.read_exact(&mut buf).await?;
            assert!(buf == *data, "the received bytes differ from the sent ones");
            assert_eq!(s.read(&mut [0u8; 16]).await?, 0, "end of stream after shutdown");
            s.write_all(b"thanks").await?;
            s.shutdown().await?;
            assert_eq!(writer.await?, b"thanks");
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn try_send_vectored_sends_at_once_until_the_socket_buffer_is_full_then_returns_none() {
    use anyio::streams::ByteSendStream as _;
    guarded_ok(async {
        let (c, s) = pair().await;
        let sent = c.try_send_vectored(&[io::IoSlice::new(b"ab"), io::IoSlice::new(b"cde")])?;
        assert_eq!(sent, Some(5), "an empty socket buffer takes a small write whole");
        let mut buf = [0u8; 5];
        let mut got = 0;
        while got < 5 {
            got += s.receive_into(&mut buf[got..]).await?;
        }
        assert_eq!(&buf, b"abcde");
        // With nobody reading, the buffers fill up, and then the socket takes nothing.
        let chunk = vec![7u8; 1 << 16];
        let mut total = 0usize;
        while let Some(n) = c.try_send_vectored(&[io::IoSlice::new(&chunk)])? {
            total += n;
            assert!(total < 1 << 30, "a socket that never fills up");
        }
        assert!(total > 0);
        // Everything it reported sent arrives, in order.
        let mut seen = 0usize;
        let mut rbuf = vec![0u8; 1 << 16];
        while seen < total {
            let n = s.receive_into(&mut rbuf).await?;
            assert!(rbuf[..n].iter().all(|&b| b == 7));
            seen += n;
        }
        assert_eq!(seen, total);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn try_send_vectored_after_send_eof_is_closed() {
    use anyio::streams::ByteSendStream as _;
    guarded_ok(async {
        let (c, _s) = pair().await;
        c.send_eof().await?;
        assert!(matches!(c.try_send_vectored(&[io::IoSlice::new(b"x")]), Err(StreamError::Closed)));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_receive_after_a_short_read_waits_for_data_that_arrives_later() {
    // A read shorter than its buffer marks the socket drained, and the next read waits for
    // readiness before it tries: data that comes later must still wake it, each time.
    guarded_ok(async {
        let (c, s) = pair().await;
        let mut buf = [0u8; 64];
        for round in 0..20u8 {
            c.send(&[round; 3]).await?;
            let n = s.receive_into(&mut buf).await?;
            assert_eq!(&buf[..n], &[round; 3][..n]);
            let mut got = n;
            while got < 3 {
                got += s.receive_into(&mut buf[got..]).await?;
            }
            // The peer writes only after the receiver is already waiting.
            let (r, ()) = futures::join!(s.receive_into(&mut buf), async {
                sleep(Duration::from_millis(2)).await.unwrap();
                c.send(&[round + 100]).await.unwrap();
            });
            assert_eq!(r?, 1);
            assert_eq!(buf[0], round + 100);
        }
        Ok(())
    })
    .await
}
