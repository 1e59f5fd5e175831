//! A UDP echo server, after the UDP "hello" service of AnyIO's tutorial ("Working with UDP
//! sockets"): it reads a datagram and sends it back to whoever sent it. There is no
//! connection: each datagram carries its sender's address. Try it with `nc -u 127.0.0.1 1234`,
//! or with `udp_echo_client`:
//!
//! ```text
//! cargo run --all-features --example udp_echo_server -- --port 1234
//! ANYIO_BACKEND=smol cargo run --all-features --example udp_echo_server -- --port 0 --once
//! ```
//!
//! The first line printed is always "listening on port N". `--once` answers a single
//! datagram and exits, which is how `udp_echo_client --spawn-server` tests the pair.

mod support;

use anyio::{
    current_backend,
    net::udp::UdpSocketOptions,
    net::{create_udp_socket, AddressFamily},
    AnyError,
};
use support::{Args, Report};

const USAGE: &str = "udp_echo_server [--port N (default 1234; 0: any free port)] [--once] [--backend NAME]";

async fn serve(port: u16, once: bool) -> Result<(), AnyError> {
    // IPv4 on all interfaces, as the tutorial's `family=socket.AF_INET, local_port=1234`.
    let udp = create_udp_socket(UdpSocketOptions::new().family(AddressFamily::Ipv4).local_port(port)).await?;
    println!("listening on port {}", udp.local_addr()?.port());
    println!("running on the {} backend", current_backend().unwrap_or("?"));
    loop {
        // One receive is one whole datagram, with its sender's address.
        let (packet, sender) = udp.receive().await?;
        println!("{} bytes from {sender}", packet.len());
        // (The tutorial's service answers b'Hello, ' + packet; an echo sends it back as is.)
        udp.send_to(&packet, sender).await?;
        if once {
            return Ok(());
        }
    }
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let port = args.value("--port", 1234)?;
    let once = args.flag("--once");
    args.finish()?;
    Ok(anyio::run(support::until_stopped(serve(port, once)))?)
}
