//! `anyio::testing::{free_tcp_port, free_udp_port}` on every backend (AnyIO's pytest fixtures
//! of those names): each port is bindable by anyio's sockets and never handed out twice in a
//! process, also to tests running at the same time.

use std::collections::HashSet;

use anyio::net::TcpListener;
use anyio::testing::{free_tcp_port, free_udp_port};

mod support;
use support::guarded_ok;

#[anyio::test]
async fn free_ports_are_bindable_and_never_handed_out_twice() {
    guarded_ok(async {
        let mut tcp = HashSet::new();
        let mut udp = HashSet::new();
        for _ in 0..50 {
            assert!(tcp.insert(free_tcp_port()?), "a TCP port came back twice");
            assert!(udp.insert(free_udp_port()?), "a UDP port came back twice");
        }
        let port = free_tcp_port()?;
        let listener = TcpListener::bind(([127, 0, 0, 1], port).into()).await?;
        assert_eq!(listener.local_addr()?.port(), port);
        let port = free_udp_port()?;
        let socket = std::net::UdpSocket::bind(("127.0.0.1", port))?;
        assert_eq!(socket.local_addr()?.port(), port);
        Ok(())
    })
    .await
}
