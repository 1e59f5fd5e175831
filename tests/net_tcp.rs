//! TCP sockets on every backend: AnyIO's tests/test_sockets.py TCP behaviours, the error
//! taxonomy, Happy Eyeballs and listeners.

mod support;

use std::sync::Arc;

use anyio::{
    connect_tcp, create_tcp_listener, task_group, AnyError, Listener, LocalPort, StreamError, TcpListener,
    TcpListenerOptions, TcpStream, TypedAttributeExt,
};
use support::guarded_ok;

async fn loopback_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

async fn pair() -> (TcpStream, TcpStream) {
    let l = loopback_listener().await;
    let client = connect_tcp("127.0.0.1", l.local_addr().unwrap().port()).await.unwrap();
    let server = l.accept().await.unwrap();
    (client, server)
}

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
