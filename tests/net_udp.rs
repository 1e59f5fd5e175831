//! UDP sockets and name resolution on every backend.

mod support;

use std::time::Duration;

use anyio::{
    move_on_after,
    net::dns::{AddrInfoHints, SocketKind},
    net::udp::UdpSocketOptions,
    net::{
        create_connected_udp_socket, create_udp_socket, getaddrinfo, getnameinfo, AddressFamily, SocketError,
    },
    streams::{ObjectReceiveStream, ObjectSendStream, StreamError, TypedAttributeExt},
};
use support::guarded_ok;

#[anyio::test]
async fn unconnected_udp_sockets_exchange_datagrams_with_their_addresses() {
    guarded_ok(async {
        let a = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
        let b = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
        a.send_to(b"ping", b.local_addr()?).await?;
        let (data, from) = b.receive().await?;
        assert_eq!((data.as_slice(), from), (&b"ping"[..], a.local_addr()?));
        // Through the object-stream traits: (datagram, address) packets.
        ObjectSendStream::send(&b, (b"pong".to_vec(), from)).await?;
        let (data, from) = ObjectReceiveStream::receive(&a).await?;
        assert_eq!((data.as_slice(), from), (&b"pong"[..], b.local_addr()?));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_connected_udp_socket_talks_to_its_peer_only() {
    guarded_ok(async {
        let server = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
        let port = server.local_addr()?.port();
        let client = create_connected_udp_socket("127.0.0.1", port, UdpSocketOptions::new()).await?;
        assert_eq!(client.peer_addr()?, server.local_addr()?);
        assert_eq!(client.extra::<anyio::net::RemotePort>()?, port);
        client.send(b"hello").await?;
        let (data, from) = server.receive().await?;
        server.send_to(&data, from).await?;
        assert_eq!(client.receive().await?, b"hello");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn datagrams_are_never_merged_or_split() {
    guarded_ok(async {
        let a = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
        let b = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
        let big = vec![7u8; 60_000];
        a.send_to(b"one", b.local_addr()?).await?;
        a.send_to(&big, b.local_addr()?).await?;
        a.send_to(b"", b.local_addr()?).await?;
        assert_eq!(b.receive().await?.0, b"one");
        assert_eq!(b.receive().await?.0, big);
        assert_eq!(b.receive().await?.0, b"", "an empty datagram is a datagram, not end of stream");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn receive_into_reuses_the_callers_buffer_and_cuts_a_long_datagram_to_fit() {
    guarded_ok(async {
        let local = UdpSocketOptions::new().local_host("127.0.0.1");
        let server = create_udp_socket(local.clone()).await?;
        let client = create_connected_udp_socket("127.0.0.1", server.local_addr()?.port(), local).await?;
        let to = client.local_addr()?;
        server.send_to(b"first", to).await?;
        server.send_to(b"", to).await?;
        server.send_to(b"a longer datagram", to).await?;
        server.send_to(b"last", to).await?;
        let mut buf = [0u8; 8];
        assert_eq!(client.receive_into(&mut buf).await?, 5);
        assert_eq!(&buf[..5], b"first");
        assert_eq!(client.receive_into(&mut buf).await?, 0, "an empty datagram is received as 0 bytes");
        assert_eq!(client.receive_into(&mut buf).await?, 8, "cut to the buffer");
        assert_eq!(&buf, b"a longer");
        assert_eq!(client.receive_into(&mut buf).await?, 4, "the cut part was discarded, not kept");
        assert_eq!(&buf[..4], b"last");
        assert!(matches!(client.receive_into(&mut []).await, Err(StreamError::InvalidArgument(_))));
        client.aclose().await?;
        assert!(matches!(client.receive_into(&mut buf).await, Err(StreamError::Closed)));

        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        let (a, b) = (
            anyio::net::ConnectedUnixDatagramSocket::from_std(a)?,
            anyio::net::ConnectedUnixDatagramSocket::from_std(b)?,
        );
        a.send(b"unix").await?;
        assert_eq!(b.receive_into(&mut buf).await?, 4);
        assert_eq!(&buf[..4], b"unix");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_blocked_udp_receive_is_cancelled_by_its_scope_and_closed_by_aclose() {
    guarded_ok(async {
        let s = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
        let r = move_on_after(Duration::from_millis(20), async {
            s.receive().await?;
            Ok::<_, anyio::AnyError>(())
        })
        .await?;
        assert!(r.is_none(), "the scope's deadline cancels the receive");
        s.aclose().await?;
        assert!(matches!(s.receive().await, Err(StreamError::Closed)));
        assert!(matches!(s.send_to(b"x", "127.0.0.1:9".parse().unwrap()).await, Err(StreamError::Closed)));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn udp_bad_input_gets_typed_errors() {
    guarded_ok(async {
        let err = create_udp_socket(UdpSocketOptions::new()).await.unwrap_err();
        assert!(matches!(err, SocketError::InvalidArgument(_)), "{err}");
        let err = create_connected_udp_socket("127.0.0.1", 0, UdpSocketOptions::new()).await.unwrap_err();
        assert!(matches!(err, SocketError::InvalidArgument(_)), "{err}");
        let v4 = create_udp_socket(UdpSocketOptions::new().family(AddressFamily::Ipv4)).await?;
        let err = v4.send_to(b"x", "[::1]:9".parse().unwrap()).await.unwrap_err();
        assert!(matches!(err, StreamError::InvalidArgument(_)), "family mismatch: {err}");
        let err = create_connected_udp_socket("::1", 9, UdpSocketOptions::new().local_host("127.0.0.1"))
            .await
            .unwrap_err();
        assert!(matches!(err, SocketError::InvalidArgument(_)), "family mismatch: {err}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn reuse_port_lets_two_udp_sockets_share_a_port() {
    guarded_ok(async {
        let a = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1").reuse_port(true)).await?;
        let port = a.local_addr()?.port();
        let b = create_udp_socket(
            UdpSocketOptions::new().local_host("127.0.0.1").local_port(port).reuse_port(true),
        )
        .await?;
        assert_eq!(b.local_addr()?.port(), port);
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn getaddrinfo_resolves_names_and_reports_unknown_hosts() {
    guarded_ok(async {
        let found = getaddrinfo("localhost", Some(80), AddrInfoHints::new().kind(SocketKind::Stream)).await?;
        assert!(!found.is_empty());
        assert!(found.iter().all(|i| i.address.ip().is_loopback() && i.address.port() == 80));
        let v4 = getaddrinfo("localhost", None, AddrInfoHints::new().family(AddressFamily::Ipv4)).await?;
        assert!(v4.iter().all(|i| i.family == AddressFamily::Ipv4));
        let err = getaddrinfo("no-such-host.invalid", None, AddrInfoHints::new()).await.unwrap_err();
        assert!(matches!(err, SocketError::Resolve { .. }), "{err}");
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
        let (host, port) = getnameinfo(
            "127.0.0.1:80".parse().unwrap(),
            libc_flags::NI_NUMERICHOST | libc_flags::NI_NUMERICSERV,
        )
        .await?;
        assert_eq!((host.as_str(), port.as_str()), ("127.0.0.1", "80"));
        Ok(())
    })
    .await;
}

/// `NI_*` flags, as glibc defines them.
mod libc_flags {
    pub(crate) const NI_NUMERICHOST: i32 = 1;
    pub(crate) const NI_NUMERICSERV: i32 = 2;
}

/// A UDP port nothing listens on: the operating system picked it free, and it was released.
fn closed_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[anyio::test]
async fn a_connected_udp_socket_whose_peer_is_closed_fails_its_receive_at_once() {
    // The ICMP "port unreachable" of the send is a pending error; the receive reports it as
    // connection refused on every backend (tokio used to wait for ever: see udp.rs).
    guarded_ok(async {
        let socket =
            create_connected_udp_socket("127.0.0.1", closed_udp_port(), UdpSocketOptions::new()).await?;
        socket.send(b"anyone?").await?;
        let r = anyio::fail_after(Duration::from_secs(5), async {
            Ok::<_, anyio::AnyError>(socket.receive().await)
        })
        .await?;
        match r {
            Err(StreamError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
            other => panic!("expected connection refused, got {other:?}"),
        }
        // The error was reported once; the socket works on (a receive now waits).
        let again = move_on_after(Duration::from_millis(20), socket.receive()).await?;
        assert!(again.is_none(), "{again:?}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_waiting_receive_hears_of_the_closed_peer_when_the_error_arrives() {
    // The receive is already waiting for readability when the error comes in: only a
    // readiness report can wake it.
    guarded_ok(async {
        let socket = std::sync::Arc::new(
            create_connected_udp_socket("127.0.0.1", closed_udp_port(), UdpSocketOptions::new()).await?,
        );
        let sender = socket.clone();
        let r = anyio::task_group(|tg: anyio::TaskGroup<anyio::AnyError>| async move {
            tg.spawn(async move {
                anyio::sleep(Duration::from_millis(20)).await?;
                sender.send(b"anyone?").await?;
                Ok(())
            });
            anyio::fail_after(Duration::from_secs(5), async {
                Ok::<_, anyio::AnyError>(socket.receive().await)
            })
            .await
        })
        .await
        .map_err(anyio::AnyError::other)?
        .expect("the group was not cancelled");
        match r {
            Err(StreamError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
            other => panic!("expected connection refused, got {other:?}"),
        }
        Ok(())
    })
    .await;
}

/// The coop budget for sockets: a loop of datagram sends that complete at once yields now
/// and then, and more often than a loop of ready channel operations would (a ready socket
/// operation is a system call and spends four times a channel operation's share). Linux only:
/// other kernels may refuse part of a burst of loopback datagrams (`ENOBUFS`), which would
/// fail the sends rather than test the budget.
#[cfg(target_os = "linux")]
#[anyio::test]
async fn a_send_loop_that_never_waits_yields_at_least_every_256_datagrams() {
    use support::{count_pendings, guarded};
    let (a, b) = guarded_ok(async {
        let a = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
        let b = create_udp_socket(UdpSocketOptions::new().local_host("127.0.0.1")).await?;
        Ok((a, b))
    })
    .await;
    let to = b.local_addr().unwrap();
    let sends = async {
        for _ in 0..1_024 {
            a.send_to(b"x", to).await?;
        }
        Ok::<_, SocketError>(())
    };
    let (sent, pendings) = guarded(count_pendings(sends)).await;
    sent.unwrap();
    assert!(pendings >= 1_024 / 256, "1,024 ready sends yielded only {pendings} times");
    assert!(pendings < 512, "ready sends yielded {pendings} times in 1,024");
}
