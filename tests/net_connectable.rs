//! Connectables on every backend (AnyIO's `TCPConnectable`, `UNIXConnectable`,
//! `BufferedConnectable`, `TextConnectable` and `TLSConnectable`): each connects to its server,
//! again on every call, wraps what it connects as its type says, and fails with a typed error
//! that says why (port 0, nothing listening, a missing socket path, an invalid TLS name).
#![cfg(unix)]

mod support;
mod tls_support;

use std::sync::Arc;

use anyio::net::{create_unix_listener, SocketError, TcpConnectable, TcpListener, UnixConnectable};
use anyio::streams::{
    buffered::BufferedConnectable, text::TextConnectable, ByteSendStream, ByteStreamConnectable,
    ObjectReceiveStream, ObjectSendStream, ObjectStreamConnectable,
};
use anyio::tls::{TlsConnectable, TlsError, TlsOptions, TlsStream};
use anyio::{task_group, AnyError};
use support::guarded_ok;
use tls_support::Pki;

#[anyio::test]
async fn tcp_connectables_connect_every_time_and_wrap_as_buffered_or_text() {
    guarded_ok(async {
        let listener = TcpListener::bind(([127, 0, 0, 1], 0).into()).await?;
        let port = listener.local_addr()?.port();
        let server = TcpConnectable::new("127.0.0.1", port)?;
        assert_eq!((server.host(), server.port()), ("127.0.0.1", port));
        task_group(|tg| async move {
            // Echoes three connections, each until its end.
            tg.start_soon(async move {
                for _ in 0..3 {
                    let s = listener.accept().await?;
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.receive_into(&mut buf).await {
                        s.send(&buf[..n]).await?;
                    }
                }
                Ok(())
            });
            let plain = server.connect().await?;
            plain.send(b"one").await?;
            assert_eq!(plain.receive(64).await?, b"one");
            drop(plain);
            let buffered = BufferedConnectable::new(server.clone()).connect().await?;
            buffered.send(b"two\n").await?;
            assert_eq!(buffered.receive_until(b"\n", 64).await?, b"two");
            drop(buffered);
            let text = TextConnectable::new(server.clone()).connect().await?;
            text.send("three".to_owned()).await?;
            assert_eq!(text.receive().await?, "three");
            Ok::<_, AnyError>(())
        })
        .await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn bad_tcp_targets_are_typed_errors() {
    guarded_ok(async {
        assert!(matches!(TcpConnectable::new("localhost", 0), Err(SocketError::InvalidArgument(_))));
        assert!(matches!(TcpConnectable::new("", 80), Err(SocketError::InvalidArgument(_))));
        // Nothing listens on a port that was just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let err = TcpConnectable::new("127.0.0.1", port)?.connect().await.unwrap_err();
        assert!(matches!(err, SocketError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains(&port.to_string()), "{err}");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn unix_connectables_connect_to_the_socket_path() {
    guarded_ok(async {
        let dir = anyio::fs::TemporaryDirectory::new().await?;
        let path = dir.path().join("sock").to_path_buf();
        let listener = create_unix_listener(&path).await?;
        let server = UnixConnectable::new(&path);
        assert_eq!(server.path(), path);
        task_group(|tg| async move {
            tg.start_soon(async move {
                let s = listener.accept().await?;
                s.send(b"hi").await?;
                Ok(())
            });
            let c = server.connect().await?;
            assert_eq!(c.receive(8).await?, b"hi");
            Ok::<_, AnyError>(())
        })
        .await?;
        let missing = UnixConnectable::new(dir.path().join("missing")).connect().await.unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn tls_connectables_handshake_over_what_they_connect() {
    guarded_ok(async {
        let pki = Pki::new();
        let server_config = Arc::new(pki.server_config());
        let client_config = Arc::new(pki.client_config());
        let listener = TcpListener::bind(([127, 0, 0, 1], 0).into()).await?;
        let port = listener.local_addr()?.port();
        let tcp = TcpConnectable::new("localhost", port)?;
        let server = TlsConnectable::tcp(tcp.clone(), client_config.clone(), TlsOptions::new());
        assert_eq!(server.hostname(), "localhost");
        task_group(|tg| async move {
            tg.start_soon(async move {
                let s = TlsStream::accept(listener.accept().await?, server_config, TlsOptions::new()).await?;
                s.send(b"secret").await?;
                Ok(())
            });
            let c = server.connect().await?;
            assert_eq!(c.receive(64).await?, b"secret");
            Ok::<_, AnyError>(())
        })
        .await?;
        // A name that cannot be a server name fails before connecting.
        let bad = TlsConnectable::new(tcp, "bad name!", client_config, TlsOptions::new());
        assert!(matches!(bad.connect().await, Err(TlsError::InvalidHostname { .. })));
        Ok(())
    })
    .await
}
