//! TlsListener on every backend: handshakes run in each connection's task, so a silent client
//! or one that stops half-way through its ClientHello holds up nobody; failed handshakes go to
//! the hook (with the peer's address) and serving goes on; the handshake timeout ends a
//! silent client; `accept` skips failed handshakes.

mod support;
mod tls_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyio::net::{connect_tcp, Listener, TcpListener};
use anyio::streams::StreamError;
use anyio::tls::{TlsListener, TlsOptions, TlsStream};
use anyio::{sleep, task_group, AnyError};
use support::guarded_ok;
use tls_support::Pki;

type Heard = Arc<Mutex<Vec<String>>>;

fn listener(
    pki: &Pki,
    tcp: TcpListener,
    heard: &Heard,
    timeout: Option<Duration>,
) -> TlsListener<TcpListener> {
    let heard = heard.clone();
    TlsListener::new(tcp, Arc::new(pki.server_config()))
        .handshake_timeout(timeout)
        .on_handshake_error(move |f| heard.lock().unwrap().push(format!("{f}")))
}

async fn echo_client(pki: &Pki, port: u16, msg: &[u8]) -> Result<Vec<u8>, AnyError> {
    let tcp = connect_tcp("127.0.0.1", port).await?;
    let c = TlsStream::connect(tcp, "localhost", Arc::new(pki.client_config()), TlsOptions::new()).await?;
    c.send(msg).await?;
    Ok(c.receive(100).await?)
}

#[anyio::test]
async fn silent_half_hello_and_plain_text_clients_do_not_stop_the_next_one() {
    guarded_ok(async {
        let pki = Arc::new(Pki::new());
        let heard = Heard::default();
        let tcp = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await?;
        let port = tcp.local_addr()?.port();
        let server = listener(&pki, tcp, &heard, Some(Duration::from_millis(300)));
        task_group(|tg| async move {
            let server = Arc::new(server);
            let s = server.clone();
            tg.start_soon(async move {
                s.serve(|c: TlsStream<anyio::net::TcpStream>| async move {
                    let got = c.receive(100).await?;
                    c.send(&got).await?;
                    Ok::<(), AnyError>(())
                })
                .await
                .map_err(AnyError::other)
            });
            // A silent client, and one that sends half a ClientHello header.
            let silent = connect_tcp("127.0.0.1", port).await?;
            let half = connect_tcp("127.0.0.1", port).await?;
            half.send(&[22, 3, 1]).await?;
            // Plain text.
            let plain = connect_tcp("127.0.0.1", port).await?;
            plain.send(b"GET / HTTP/1.1\r\n\r\n").await?;
            assert!(plain.receive(10).await.is_err(), "the plain-text client is hung up on");
            // Served while the others hang.
            assert_eq!(echo_client(&pki, port, b"next").await?, b"next");
            // The timeout ends the silent ones.
            assert!(matches!(
                silent.receive(10).await,
                Err(StreamError::EndOfStream | StreamError::Broken(_))
            ));
            assert!(half.receive(10).await.is_err());
            while heard.lock().unwrap().len() < 3 {
                sleep(Duration::from_millis(5)).await?;
            }
            let heard = heard.lock().unwrap().clone();
            assert!(heard.iter().any(|h| h.contains("not TLS")), "{heard:?}");
            assert_eq!(heard.iter().filter(|h| h.contains("did not finish")).count(), 2, "{heard:?}");
            assert!(heard.iter().all(|h| h.contains("127.0.0.1")), "the hook hears the peer: {heard:?}");
            // And still serving.
            assert_eq!(echo_client(&pki, port, b"again").await?, b"again");
            tg.cancel();
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn accept_skips_failed_handshakes() {
    guarded_ok(async {
        let pki = Arc::new(Pki::new());
        let heard = Heard::default();
        let tcp = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await?;
        let port = tcp.local_addr()?.port();
        let server = listener(&pki, tcp, &heard, None);
        let plain = connect_tcp("127.0.0.1", port).await?;
        plain.send(b"hello?").await?;
        let client = async {
            let tcp = connect_tcp("127.0.0.1", port).await?;
            let c = TlsStream::connect(tcp, "localhost", Arc::new(pki.client_config()), TlsOptions::new())
                .await?;
            c.send(b"tls").await?;
            Ok::<_, AnyError>(c)
        };
        let (accepted, client) = futures::join!(server.accept(), client);
        let (accepted, client) = (accepted?, client?);
        assert_eq!(accepted.receive(100).await?, b"tls");
        accepted.send(b"ok").await?;
        assert_eq!(client.receive(100).await?, b"ok");
        assert_eq!(heard.lock().unwrap().len(), 1, "the plain-text client went to the hook");
        Ok(())
    })
    .await;
}
