//! TLS streams on every backend, beyond the generic stream checks (tests/tls_conformance.rs):
//! AnyIO's test_tls.py and trio's test_ssl.py behaviours — EOF and closing, send_eof, unwrap,
//! attributes, ALPN, certificate failures, bad input — plus cancellation that tears no record,
//! key updates under load, and tokio-rustls/futures-rustls over anyio sockets.

mod support;
mod tls_support;

use std::sync::Arc;
use std::time::Duration;

use anyio::streams::{
    AsyncResource, ByteReceiveStream, ByteSendStream, ByteStream, StreamError, TypedAttributeExt,
};
use anyio::tls::rustls::{self, ProtocolVersion};
use anyio::tls::{
    AlpnProtocol, ChannelBinding, CipherSuite, PeerCertificate, PeerCertificateChain, ServerName, ServerSide,
    StandardCompatible, TlsConfig, TlsError, TlsOptions, TlsStream, TlsVersion,
};
use anyio::{move_on_after, net::RemoteAddress, task_group, AnyError};
use support::{guarded_ok, pattern};
use tls_support::{
    client_config_versions, handshake, memory_pair, server_config_versions, tcp_pair, tls_memory_pair,
    tls_tcp_pair, try_memory_handshake, Pki,
};

async fn receive_all<S: ByteReceiveStream>(s: &S, n: usize) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.extend(s.receive(65536).await?);
    }
    Ok(out)
}

#[anyio::test]
async fn data_flows_both_ways_over_memory_and_tcp() {
    guarded_ok(async {
        let (c, s) = tls_memory_pair().await;
        c.send(b"hello").await?;
        assert_eq!(s.receive(100).await?, b"hello");
        s.send(b"world").await?;
        assert_eq!(c.receive(100).await?, b"world");
        let (c, s) = tls_tcp_pair().await;
        c.send(b"over tcp").await?;
        assert_eq!(s.receive(100).await?, b"over tcp");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn full_duplex_with_key_updates_loses_and_reorders_nothing() {
    // 64 MiB each way at once, a KeyUpdate from each side every MiB.
    const TOTAL: usize = 64 << 20;
    // The long guard: 128 MiB of debug-build crypto takes seconds, more on a loaded machine.
    support::guarded_long_ok(async {
        let (c, s) = tls_tcp_pair().await;
        let (c, s) = (Arc::new(c), Arc::new(s));
        let a = pattern(TOTAL, 1);
        let b = pattern(TOTAL, 2);
        let (got_at_s, got_at_c) =
            (Arc::new(std::sync::Mutex::new(Vec::new())), Arc::new(std::sync::Mutex::new(Vec::new())));
        task_group(|tg| {
            let (c, s, a, b, gs, gc) =
                (c.clone(), s.clone(), a.clone(), b.clone(), got_at_s.clone(), got_at_c.clone());
            async move {
                for (tx, data) in [(c.clone(), a), (s.clone(), b)] {
                    tg.start_soon(async move {
                        for (i, chunk) in data.chunks(16 << 10).enumerate() {
                            if i % 64 == 63 {
                                tx.refresh_traffic_keys().await?;
                            }
                            tx.send(chunk).await?;
                        }
                        Ok(())
                    });
                }
                for (rx, sink) in [(s, gs), (c, gc)] {
                    tg.start_soon(async move {
                        let got = receive_all(&*rx, TOTAL).await?;
                        *sink.lock().unwrap() = got;
                        Ok(())
                    });
                }
                Ok(())
            }
        })
        .await?;
        assert!(*got_at_s.lock().unwrap() == a, "client-to-server bytes changed");
        assert!(*got_at_c.lock().unwrap() == b, "server-to-client bytes changed");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_cancelled_send_tears_no_record_and_later_sends_continue_the_stream() {
    guarded_ok(async {
        let (c, s) = tls_tcp_pair().await;
        let big = pattern(8 << 20, 3);
        // The server does not read: the send clogs and is cancelled part-way.
        let r = move_on_after(Duration::from_millis(100), c.send(&big)).await;
        assert!(matches!(r, Ok(None)), "the 8 MiB send should have been cut off by the deadline");
        // The server reads a clean prefix of `big`, then exactly "AFTER". It reads while the
        // client sends: what the cancelled send left to write (up to a TLS buffer's worth)
        // may not fit in the kernel's buffers, which the cancelled send has filled.
        let mut got = Vec::new();
        let read = async {
            while !got.ends_with(b"AFTER") {
                got.extend(s.receive(65536).await?);
            }
            Ok::<_, StreamError>(())
        };
        let (sent, read) = futures::join!(c.send(b"AFTER"), read);
        sent?;
        read?;
        let prefix = &got[..got.len() - 5];
        assert!(prefix.len() < big.len(), "not all of the cancelled send went out");
        assert!(prefix == &big[..prefix.len()], "what arrived of the cancelled send is not a clean prefix");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_cancelled_receive_loses_nothing() {
    guarded_ok(async {
        let (c, s) = tls_memory_pair().await;
        let r = move_on_after(Duration::from_millis(20), s.receive(10)).await;
        assert!(matches!(r, Ok(None)));
        c.send(b"kept").await?;
        assert_eq!(s.receive(10).await?, b"kept");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn bad_arguments_are_refused_and_an_empty_send_sends_nothing() {
    guarded_ok(async {
        let (c, s) = tls_memory_pair().await;
        assert!(matches!(s.receive(0).await, Err(StreamError::InvalidArgument(_))));
        assert!(matches!(s.receive_into(&mut []).await, Err(StreamError::InvalidArgument(_))));
        c.send(b"").await?;
        c.send(b"x").await?;
        assert_eq!(s.receive(10).await?, b"x");
        Ok(())
    })
    .await;
}

/// The ragged-EOF matrix: a transport that ends without close_notify.
#[anyio::test]
async fn a_transport_end_without_close_notify_is_broken_only_when_standard_compatible() {
    guarded_ok(async {
        for standard in [true, false] {
            let pki = Pki::new();
            let (a, b) = tcp_pair().await;
            let options = TlsOptions::new().standard_compatible(standard);
            let (c, s) = handshake(a, b, pki.client_config(), pki.server_config(), options).await;
            c.send(b"last words").await?;
            // The transport's end only (a FIN, no close_notify). Not a close: the client has
            // unread session tickets, and closing would make the kernel send a reset.
            c.get_ref().send_eof().await?;
            assert_eq!(s.receive(100).await?, b"last words");
            let end = s.receive(100).await;
            if standard {
                assert!(matches!(end, Err(StreamError::Broken(_))), "standard compatible: {end:?}");
            } else {
                assert!(matches!(end, Err(StreamError::EndOfStream)), "not standard compatible: {end:?}");
                assert!(matches!(s.receive(100).await, Err(StreamError::EndOfStream)), "stays at the end");
            }
        }
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn close_notify_ends_the_stream_cleanly_and_aclose_waits_for_the_peers() {
    guarded_ok(async {
        let (c, s) = tls_tcp_pair().await;
        c.send(b"bye").await?;
        task_group(|tg| async move {
            let s = Arc::new(s);
            let s2 = s.clone();
            tg.start_soon(async move {
                assert_eq!(s2.receive(100).await?, b"bye");
                assert!(matches!(s2.receive(100).await, Err(StreamError::EndOfStream)));
                s2.aclose().await?;
                Ok(())
            });
            // Standard compatible: returns once the server answered with its close_notify.
            c.aclose().await?;
            assert!(matches!(c.send(b"x").await, Err(StreamError::Closed)));
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn send_eof_half_closes_on_tls13_and_is_unsupported_on_tls12() {
    guarded_ok(async {
        let (c, s) = tls_tcp_pair().await;
        c.send_eof().await?;
        assert!(matches!(c.send(b"x").await, Err(StreamError::Closed)), "send after send_eof");
        assert!(matches!(s.receive(10).await, Err(StreamError::EndOfStream)));
        s.send(b"still open").await?;
        assert_eq!(c.receive(100).await?, b"still open");

        let pki = Pki::new();
        let (a, b) = memory_pair();
        let v12 = [&rustls::version::TLS12];
        let (c, _s) = handshake(
            a,
            b,
            client_config_versions(&pki, &v12),
            server_config_versions(&pki, &v12),
            TlsOptions::new(),
        )
        .await;
        assert_eq!(c.extra::<TlsVersion>()?, ProtocolVersion::TLSv1_2);
        assert!(matches!(c.send_eof().await, Err(StreamError::Unsupported(_))));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn unwrap_returns_the_transport_and_the_exact_bytes_after_close_notify() {
    guarded_ok(async {
        let (c, s) = tls_tcp_pair().await;
        c.send(b"unread by the server").await?;
        let (cu, su) = futures::join!(
            async {
                let u = c.unwrap().await?;
                // Plain text right behind the close_notify, before the server unwrapped.
                u.transport.send(b"PLAIN").await?;
                Ok::<_, StreamError>(u)
            },
            s.unwrap()
        );
        let (cu, su) = (cu?, su?);
        assert_eq!(su.unread, b"unread by the server");
        let mut after = su.leftover.clone();
        while after.len() < 5 {
            after.extend(su.transport.receive(100).await?);
        }
        assert_eq!(after, b"PLAIN");
        assert!(cu.leftover.is_empty());
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn attributes_describe_the_connection_and_forward_the_transports() {
    guarded_ok(async {
        let pki = Pki::new();
        let mut client = pki.client_config_with_cert("client.example");
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut server = pki.server_config_requiring_client_cert();
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let (a, b) = tcp_pair().await;
        let peer = b.extra::<RemoteAddress>()?;
        let (c, s) = handshake(a, b, client, server, TlsOptions::new()).await;
        assert_eq!(c.extra::<AlpnProtocol>()?, Some(b"http/1.1".to_vec()));
        assert_eq!(s.extra::<AlpnProtocol>()?, Some(b"http/1.1".to_vec()));
        assert_eq!(c.extra::<TlsVersion>()?, ProtocolVersion::TLSv1_3);
        assert_eq!(c.extra::<CipherSuite>()?, s.extra::<CipherSuite>()?);
        assert!(!c.extra::<ServerSide>()? && s.extra::<ServerSide>()?);
        assert!(c.extra::<StandardCompatible>()?);
        assert!(c.extra::<PeerCertificate>()?.is_some(), "the client saw the server's certificate");
        assert!(s.extra::<PeerCertificate>()?.is_some(), "mutual TLS: the server saw the client's");
        assert_eq!(c.extra::<PeerCertificateChain>()?.len(), 1);
        assert_eq!(c.extra::<ServerName>()?.as_deref(), Some("localhost"));
        assert_eq!(s.extra::<ServerName>()?.as_deref(), Some("localhost"));
        let binding = c.extra::<ChannelBinding>()?;
        assert_eq!(binding.len(), 32);
        assert_eq!(binding, s.extra::<ChannelBinding>()?, "both ends export the same binding");
        assert_eq!(s.extra::<RemoteAddress>()?, peer, "a transport attribute passes through");

        // No ALPN configured: none negotiated.
        let (c, _s) = tls_memory_pair().await;
        assert_eq!(c.extra::<AlpnProtocol>()?, None);
        Ok(())
    })
    .await;
}

async fn client_error(pki: &Pki, hostname: &str, server: rustls::ServerConfig) -> TlsError {
    let (c, _s) = try_memory_handshake(hostname, pki.client_config(), server).await;
    c.expect_err("the client must refuse this server")
}

#[anyio::test]
async fn certificate_failures_are_handshake_errors() {
    guarded_ok(async {
        let pki = Pki::new();
        let stranger = Pki::new();
        // Untrusted CA.
        let e = client_error(&pki, "localhost", stranger.server_config()).await;
        assert!(matches!(e, TlsError::Handshake(rustls::Error::InvalidCertificate(_))), "{e}");
        // Host name mismatch.
        let e = client_error(&pki, "other.example", pki.server_config()).await;
        assert!(matches!(e, TlsError::Handshake(rustls::Error::InvalidCertificate(_))), "{e}");
        // Expired.
        let (chain, key) = pki.leaf_with(&["localhost"], |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        });
        let e = client_error(&pki, "localhost", anyio::tls::server_config(chain, key)?).await;
        assert!(matches!(e, TlsError::Handshake(rustls::Error::InvalidCertificate(_))), "{e}");
        // An IP-address certificate verifies by IP address.
        let (c, s) = try_memory_handshake("127.0.0.1", pki.client_config(), pki.server_config()).await;
        let (c, _s) = (c?, s?);
        assert_eq!(c.extra::<ServerName>()?, None, "an IP address is not sent as SNI");
        // A server that requires a client certificate, and a client without one.
        let (_c, s) =
            try_memory_handshake("localhost", pki.client_config(), pki.server_config_requiring_client_cert())
                .await;
        assert!(matches!(s, Err(TlsError::Handshake(_))), "{s:?}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn tls12_only_and_tls13_only_peers() {
    guarded_ok(async {
        let pki = Pki::new();
        for (version, expected) in [
            (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
            (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
        ] {
            let (a, b) = memory_pair();
            let (c, s) = handshake(
                a,
                b,
                pki.client_config(),
                server_config_versions(&pki, &[version]),
                TlsOptions::new(),
            )
            .await;
            assert_eq!(c.extra::<TlsVersion>()?, expected);
            c.send(b"v").await?;
            assert_eq!(s.receive(10).await?, b"v");
        }
        // No version in common.
        let (c, s) = try_memory_handshake(
            "localhost",
            client_config_versions(&pki, &[&rustls::version::TLS13]),
            server_config_versions(&pki, &[&rustls::version::TLS12]),
        )
        .await;
        assert!(c.is_err() && s.is_err());
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn bad_setup_gets_typed_errors_and_closes_the_transport() {
    guarded_ok(async {
        let pki = Pki::new();
        // A U-label host name and an empty one.
        for name in ["bücher.example", "", "bad name"] {
            let (a, b) = memory_pair();
            let e = TlsStream::connect(a, name, Arc::new(pki.client_config()), TlsOptions::new())
                .await
                .unwrap_err();
            assert!(matches!(e, TlsError::InvalidHostname { .. }), "{name:?}: {e}");
            assert!(b.receive(10).await.is_err(), "the transport was closed");
        }
        // An A-label (IDNA) name is taken as given.
        let (chain, key) = pki.leaf(&["xn--bcher-kva.example"]);
        let server = anyio::tls::server_config(chain, key)?;
        let (c, s) = try_memory_handshake("xn--bcher-kva.example", pki.client_config(), server).await;
        assert!(c.is_ok() && s.is_ok());
        // The wrong side's configuration.
        let (a, _b) = memory_pair();
        let e = TlsStream::wrap(a, true, None, TlsConfig::from(pki.client_config()), true).await.unwrap_err();
        assert!(matches!(e, TlsError::ConfigMismatch { server_side: true }));
        // A zero handshake timeout times out at once.
        let (a, _b) = memory_pair();
        let e = TlsStream::accept(
            a,
            Arc::new(pki.server_config()),
            TlsOptions::new().handshake_timeout(Some(Duration::ZERO)),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, TlsError::Timeout(_)), "{e}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_peer_that_speaks_no_tls_or_ends_during_the_handshake_fails_it_at_once() {
    guarded_ok(async {
        let pki = Pki::new();
        // Plain text where a ClientHello belongs: refused at the first byte, no waiting.
        let (a, b) = memory_pair();
        a.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let e = TlsStream::accept(b, Arc::new(pki.server_config()), TlsOptions::new()).await.unwrap_err();
        assert!(matches!(e, TlsError::NotTls(_)), "{e}");
        // An oversized record header.
        let (a, b) = memory_pair();
        a.send(&[22, 3, 1, 0xff, 0xff]).await?;
        let e = TlsStream::accept(b, Arc::new(pki.server_config()), TlsOptions::new()).await.unwrap_err();
        assert!(matches!(e, TlsError::NotTls(ref m) if m.contains("oversized")), "{e}");
        // The peer ends during the handshake: always broken.
        let (a, b) = memory_pair();
        a.aclose().await?;
        let e = TlsStream::accept(b, Arc::new(pki.server_config()), TlsOptions::new()).await.unwrap_err();
        assert!(matches!(e, TlsError::Transport(StreamError::Broken(_))), "{e}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_cancelled_handshake_closes_the_transport() {
    guarded_ok(async {
        let pki = Pki::new();
        let (a, b) = memory_pair();
        let r = move_on_after(Duration::from_millis(20), async {
            TlsStream::accept(b, Arc::new(pki.server_config()), TlsOptions::new()).await.map(drop)
        })
        .await;
        assert!(matches!(r, Ok(None)), "{r:?}");
        assert!(a.send(b"anyone?").await.is_err(), "the server's transport was closed");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn futures_rustls_works_over_anyio_sockets() {
    guarded_ok(async {
        let pki = Pki::new();
        // futures-rustls client (futures-io AsyncRead/AsyncWrite of anyio's TcpStream) against
        // an anyio TLS server.
        let (a, b) = tcp_pair().await;
        let connector = futures_rustls::TlsConnector::from(Arc::new(pki.client_config()));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let (c, s) = futures::join!(
            connector.connect(name.clone(), a),
            TlsStream::accept(b, Arc::new(pki.server_config()), TlsOptions::new()),
        );
        let (mut c, s) = (c?, s?);
        use futures::{AsyncReadExt, AsyncWriteExt};
        c.write_all(b"from futures-rustls").await?;
        c.flush().await?;
        assert_eq!(s.receive(100).await?, b"from futures-rustls");
        s.send(b"from anyio").await?;
        let mut buf = [0u8; 10];
        c.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"from anyio");

        Ok::<_, AnyError>(())
    })
    .await;
}

/// tokio-rustls over anyio's TCP stream through its tokio `AsyncRead`/`AsyncWrite`, on every
/// backend (the traits, not tokio's runtime).
#[cfg(feature = "tokio")]
#[anyio::test]
async fn tokio_rustls_works_over_anyio_sockets() {
    guarded_ok(async {
        let pki = Pki::new();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let (a, b) = tcp_pair().await;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(pki.client_config()));
        let (c, s) = futures::join!(
            connector.connect(name, a),
            TlsStream::accept(b, Arc::new(pki.server_config()), TlsOptions::new()),
        );
        let (mut c, s) = (c?, s?);
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        c.write_all(b"from tokio-rustls").await?;
        c.flush().await?;
        assert_eq!(s.receive(100).await?, b"from tokio-rustls");
        s.send(b"from anyio").await?;
        let mut buf = [0u8; 10];
        c.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"from anyio");
        Ok::<_, AnyError>(())
    })
    .await;
}

/// A transport that counts its closes (trio's "closes the transport once").
struct CountingClose<S> {
    inner: S,
    closes: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: anyio::streams::TypedAttributeProvider> anyio::streams::TypedAttributeProvider for CountingClose<S> {}

#[anyio::async_trait]
impl<S: ByteStream> AsyncResource for CountingClose<S> {
    async fn aclose(&self) -> Result<(), StreamError> {
        self.closes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.aclose().await
    }
}

#[anyio::async_trait]
impl<S: ByteStream> ByteReceiveStream for CountingClose<S> {
    async fn receive_into(&self, buf: &mut [u8]) -> Result<usize, StreamError> {
        self.inner.receive_into(buf).await
    }
}

#[anyio::async_trait]
impl<S: ByteStream> ByteSendStream for CountingClose<S> {
    async fn send(&self, data: &[u8]) -> Result<(), StreamError> {
        self.inner.send(data).await
    }
}

#[anyio::async_trait]
impl<S: ByteStream> ByteStream for CountingClose<S> {
    async fn send_eof(&self) -> Result<(), StreamError> {
        self.inner.send_eof().await
    }
}

#[anyio::test]
async fn aclose_closes_the_transport_exactly_once_however_often_it_is_called() {
    guarded_ok(async {
        let pki = Pki::new();
        let (a, b) = memory_pair();
        let closes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let a = CountingClose { inner: a, closes: closes.clone() };
        let (c, s) = handshake(
            a,
            b,
            pki.client_config(),
            pki.server_config(),
            TlsOptions::new().standard_compatible(false),
        )
        .await;
        c.aclose().await?;
        c.aclose().await?;
        assert_eq!(closes.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(matches!(c.send(b"x").await, Err(StreamError::Closed)));
        assert!(matches!(c.receive(1).await, Err(StreamError::Closed)));
        assert!(matches!(s.receive(10).await, Err(StreamError::EndOfStream)), "the peer saw close_notify");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_transport_that_fails_midway_through_a_send_breaks_the_stream_for_good() {
    guarded_ok(async {
        let (c, s) = tls_tcp_pair().await;
        let (c, s) = (Arc::new(c), Arc::new(s));
        let big = pattern(16 << 20, 4);
        let r = task_group(|tg| {
            let (c, s) = (c.clone(), s.clone());
            async move {
                tg.start_soon(async move {
                    // The peer reads a little, then its transport goes away mid-transfer.
                    s.receive(1024).await?;
                    s.get_ref().aclose().await?;
                    Ok(())
                });
                Ok(c.send(&big).await)
            }
        })
        .await?;
        let first = r.expect("the body finished");
        assert!(first.is_err(), "a send whose peer vanished cannot succeed");
        let again = c.send(b"more").await;
        assert!(
            matches!(again, Err(StreamError::Broken(_))),
            "later sends report the broken stream: {again:?}"
        );
        Ok(())
    })
    .await;
}
