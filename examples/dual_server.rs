//! One server, two protocols: TCP and UDP echo on the same port, each protocol served by
//! tasks of one task group. Try it with `tcp_echo_client --port 1234` and
//! `udp_echo_client --port 1234` (or `nc -N 127.0.0.1 1234` and `nc -u 127.0.0.1 1234`):
//!
//! ```text
//! cargo run --all-features --example dual_server -- --port 1234
//! cargo run --all-features --example dual_server -- --port 1234 --max-connections 3
//! ANYIO_BACKEND=smol cargo run --all-features --example dual_server -- --self-test
//! ```
//!
//! anyio has no signal handling yet (AnyIO's `open_signal_receiver` is planned), so Ctrl+C
//! kills this server rather than stopping it cleanly. To show a clean stop instead,
//! `--max-connections N` makes it stop by itself once N TCP connections have been served:
//! the accept loop ends, the group waits for the connections' handlers, and then cancels
//! the UDP task. Without it the server runs until killed.
//!
//! `--self-test` binds a free port and runs a client task beside the server, which first
//! makes three misbehaving TCP clients (a reset right after connecting, a reset while the
//! server sends, one that leaves without reading), then checks a UDP echo and N TCP echoes
//! (N defaults to 1 here); the server then stops on its own, so the program exits 0 in well
//! under a second.

mod support;

use std::time::Duration;

use anyio::{
    current_backend, fail_after,
    net::tcp::TcpListenerOptions,
    net::udp::UdpSocketOptions,
    net::{
        connect_tcp, create_connected_udp_socket, create_tcp_listener, create_udp_socket, AddressFamily,
        LocalPort, MultiListener, TcpListener, TcpStream, UdpSocket,
    },
    streams::{StreamError, TypedAttributeExt},
    task_group, AnyError, TaskGroup,
};
use support::{serve_up_to, Args, Report};

/// The connections `support::rude::tcp_clients` makes.
const RUDE_CLIENTS: usize = 3;

const USAGE: &str =
    "dual_server [--port N (default 1234)] [--max-connections N] [--self-test] [--backend NAME]";

/// Echoes one TCP connection until the client half-closes. A client that resets makes
/// `receive` or `send` fail; `serve` reports that and ends only this connection.
async fn tcp_echo(client: TcpStream) -> Result<(), AnyError> {
    loop {
        match client.receive(65536).await {
            Ok(data) => client.send(&data).await?,
            Err(StreamError::EndOfStream) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Echoes every datagram to its sender, until cancelled.
async fn udp_echo(udp: UdpSocket) -> Result<(), AnyError> {
    loop {
        let (packet, sender) = udp.receive().await?;
        udp.send_to(&packet, sender).await?;
    }
}

/// Serves TCP until `max` connections have ended (or forever), each echoed by a task of its
/// own; a failing connection is reported and ends alone.
async fn serve_tcp(listener: MultiListener<TcpListener>, max: Option<usize>) -> Result<(), AnyError> {
    serve_up_to(&listener, max, tcp_echo).await
}

/// Serves both protocols until `max` TCP connections have been served (or forever).
async fn serve(tcp: MultiListener<TcpListener>, udp: UdpSocket, max: Option<usize>) -> Result<(), AnyError> {
    task_group(|tg: TaskGroup<AnyError>| async move {
        tg.spawn(udp_echo(udp));
        // The group's body is a task too: here it serves TCP.
        serve_tcp(tcp, max).await?;
        println!("served {} TCP connection(s): stopping", max.unwrap_or_default());
        // Cancelling the group stops the UDP task; the group then returns normally.
        tg.cancel();
        Ok(())
    })
    .await?;
    Ok(())
}

/// `--self-test`: what a user would do with `nc`, as a task beside the server's.
async fn self_test(port: u16, tcp_connections: usize) -> Result<(), AnyError> {
    support::rude::tcp_clients(port).await?;
    let udp = create_connected_udp_socket("127.0.0.1", port, UdpSocketOptions::new()).await?;
    udp.send(b"ping over UDP").await?;
    check(&udp.receive().await?, b"ping over UDP")?;
    for i in 1..=tcp_connections {
        let tcp = connect_tcp("127.0.0.1", port).await?;
        let message = format!("ping over TCP, connection {i}");
        tcp.send(message.as_bytes()).await?;
        tcp.send_eof().await?;
        let mut echo = Vec::new();
        loop {
            match tcp.receive(65536).await {
                Ok(data) => echo.extend(data),
                Err(StreamError::EndOfStream) => break,
                Err(e) => return Err(e.into()),
            }
        }
        check(&echo, message.as_bytes())?;
    }
    println!("self-test: the UDP echo and {tcp_connections} TCP echo(es) matched");
    Ok(())
}

fn check(echo: &[u8], sent: &[u8]) -> Result<(), AnyError> {
    println!("self-test: received {:?}", String::from_utf8_lossy(echo));
    if echo != sent {
        return Err(AnyError::msg("the echo differs from what was sent"));
    }
    Ok(())
}

async fn run(port: u16, max_connections: Option<usize>, self_test_client: bool) -> Result<(), AnyError> {
    // TCP and UDP ports are separate name spaces: the same number needs no option. SO_REUSEPORT
    // on both sockets lets several copies of this server share the port, the kernel spreading
    // connections and datagrams among them (e.g. one process per core).
    let tcp = create_tcp_listener(
        TcpListenerOptions::new().family(AddressFamily::Ipv4).local_port(port).reuse_port(true),
    )
    .await?;
    // With port 0 the TCP listener picked a free port; UDP takes the same number.
    let port = tcp.extra::<LocalPort>()?;
    let udp = create_udp_socket(
        UdpSocketOptions::new().family(AddressFamily::Ipv4).local_port(port).reuse_port(true),
    )
    .await?;
    println!("listening on port {port} (TCP and UDP)");
    println!("running on the {} backend", current_backend().unwrap_or("?"));
    if !self_test_client {
        return serve(tcp, udp, max_connections).await;
    }
    // The self-test client runs beside the server, not inside it, as another program would:
    // each finishes on its own and the outer group waits for both (a failure in either
    // cancels the other).
    let connections = max_connections.unwrap_or(1);
    task_group(|tg: TaskGroup<AnyError>| async move {
        // The self-test's misbehaving clients make three connections more.
        tg.spawn(serve(tcp, udp, Some(connections + RUDE_CLIENTS)));
        tg.spawn(self_test(port, connections));
        Ok(())
    })
    .await?;
    Ok(())
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let self_test = args.flag("--self-test");
    let port = args.value("--port", if self_test { 0 } else { 1234 })?;
    let max_connections: Option<usize> = args.option("--max-connections")?;
    args.finish()?;
    if self_test {
        // Unattended: a deadline, so that a broken build fails CI instead of hanging it.
        anyio::run(fail_after(Duration::from_secs(10), run(port, max_connections, true)))?;
    } else {
        anyio::run(support::until_stopped(run(port, max_connections, false)))?;
    }
    Ok(())
}
