//! A UDP echo client, after AnyIO's tutorial: a "connected" UDP socket sends every datagram
//! to one peer (no address on each send) and only receives datagrams from it:
//!
//! ```text
//! cargo run --all-features --example udp_echo_client -- --port 1234 --message "Hi there!"
//! cargo run --all-features --example udp_echo_client -- --spawn-server
//! ANYIO_BACKEND=smol cargo run --all-features --example udp_echo_client -- --spawn-server
//! ```
//!
//! `--spawn-server` starts `udp_echo_server --port 0 --once` as a child process on the same
//! backend, and fails unless the echo matches and the server exits cleanly.

mod support;

use std::time::Duration;

use anyio::{move_on_after, net::create_connected_udp_socket, net::udp::UdpSocketOptions, AnyError};
use support::{Args, Report, Server};

const USAGE: &str =
    "udp_echo_client [--host H (default 127.0.0.1)] [--port N (default 1234)] [--message TEXT] [--spawn-server] [--backend NAME]";

async fn talk(host: &str, port: u16, message: &str) -> Result<Vec<u8>, AnyError> {
    let udp = create_connected_udp_socket(host, port, UdpSocketOptions::new()).await?;
    println!("sending from {} to {}", udp.local_addr()?, udp.peer_addr()?);
    // UDP gives no delivery guarantee: a datagram (ours or the echo) may be lost, so we wait
    // a while for the answer and send again if none comes.
    for _ in 0..3 {
        udp.send(message.as_bytes()).await?;
        if let Some(echo) = move_on_after(Duration::from_secs(2), udp.receive()).await? {
            return Ok(echo);
        }
        println!("no answer within 2 s; sending again");
    }
    Err(AnyError::msg("no answer after 3 tries"))
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let host: String = args.value("--host", "127.0.0.1".into())?;
    let mut port = args.value("--port", 1234)?;
    let message: String = args.value("--message", "Hi there!".into())?;
    let spawn_server = args.flag("--spawn-server");
    args.finish()?;
    let server =
        spawn_server.then(|| Server::spawn("udp_echo_server", &["--port", "0", "--once"])).transpose()?;
    if let Some(server) = &server {
        port = server.port()?;
    }

    let echo = anyio::run(talk(&host, port, &message))?;
    println!("received {:?}", String::from_utf8_lossy(&echo));
    if echo != message.as_bytes() {
        return Err(AnyError::msg(format!("the echo differs from the message {message:?}")).into());
    }
    if let Some(server) = server {
        server.wait()?;
    }
    Ok(())
}
