//! `ByteReceiveStream::socket_receiver` on every backend: which streams have one, and that
//! receiving through it is the stream's own `receive_into` (the end of the stream, busy,
//! closed, cancellation losing nothing, an empty buffer refused).

mod support;

use anyio::{
    move_on_after,
    net::{connect_tcp, TcpListener, TcpStream, UnixStream},
    streams::buffered::BufferedByteStream,
    streams::memory::memory_stream_pair,
    streams::stapled::StapledByteStream,
    streams::{ByteReceiveStream, StreamError},
    task_group, AnyError,
};
use support::{guarded_ok, SHORT};

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (client, server) = futures::join!(connect_tcp("127.0.0.1", port), listener.accept());
    (client.unwrap(), server.unwrap())
}

#[anyio::test]
async fn sockets_and_wrappers_that_receive_through_them_have_one() {
    guarded_ok(async {
        let (client, server) = tcp_pair().await;
        assert!(client.socket_receiver().is_some());
        let (a, _b) = UnixStream::pair()?;
        assert!(a.socket_receiver().is_some());
        // A stapled stream receives through its receive half unchanged.
        let stapled = StapledByteStream::new(client, server);
        assert!(stapled.socket_receiver().is_some());
        // A buffered stream has bytes of its own, and a memory stream no socket.
        let (c2, _s2) = tcp_pair().await;
        assert!(BufferedByteStream::new(c2).socket_receiver().is_none());
        let (m, _n) = memory_stream_pair(1);
        assert!(m.socket_receiver().is_none());
        Ok(())
    })
    .await
}

#[anyio::test]
async fn it_receives_what_was_sent_then_the_end() {
    guarded_ok(async {
        let (client, server) = tcp_pair().await;
        let receiver = server.socket_receiver().unwrap();
        client.send(b"hello").await?;
        client.send_eof().await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            match receiver.receive_into(&mut buf).await {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(StreamError::EndOfStream) => break,
                Err(e) => return Err(e.into()),
            }
        }
        assert_eq!(got, b"hello");
        assert!(matches!(receiver.receive_into(&mut [0u8; 0]).await, Err(StreamError::InvalidArgument(_))));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_second_receiver_is_busy_and_a_closed_stream_says_closed() {
    guarded_ok(async {
        let (_client, server) = tcp_pair().await;
        let server = std::sync::Arc::new(server);
        task_group(|tg| {
            let server = server.clone();
            async move {
                let s = server.clone();
                let waiting = tg.spawn(async move {
                    let mut buf = [0u8; 8];
                    // Blocks: nothing was sent. Ends when the stream is closed under it.
                    Ok::<_, AnyError>(s.socket_receiver().unwrap().receive_into(&mut buf).await)
                });
                anyio::sleep(SHORT).await?;
                let mut buf = [0u8; 8];
                assert!(matches!(server.receive_into(&mut buf).await, Err(StreamError::Busy(_))));
                server.aclose().await?;
                assert!(matches!(waiting.await?, Err(StreamError::Closed)));
                Ok::<_, AnyError>(())
            }
        })
        .await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_cancelled_receive_loses_nothing() {
    guarded_ok(async {
        let (client, server) = tcp_pair().await;
        let receiver = server.socket_receiver().unwrap();
        let mut buf = [0u8; 8];
        let cancelled = move_on_after(SHORT, receiver.receive_into(&mut buf)).await;
        assert!(cancelled?.is_none(), "nothing was sent, so the receive waits until cancelled");
        client.send(b"later").await?;
        let n = receiver.receive_into(&mut buf).await?;
        assert_eq!(&buf[..n], b"later");
        Ok(())
    })
    .await
}
