//! A TCP echo client, after the client in AnyIO's networking tutorial: it connects, sends a
//! message, and prints what comes back. It talks to `tcp_echo_server` or any echo server:
//!
//! ```text
//! cargo run --all-features --example tcp_echo_client -- --port 1234 --message "Hello, world"
//! cargo run --all-features --example tcp_echo_client -- --spawn-server
//! ANYIO_BACKEND=async-std cargo run --all-features --example tcp_echo_client -- --spawn-server
//! ```
//!
//! `--spawn-server` starts `tcp_echo_server --port 0 --max-connections 4` as a child process
//! on the same backend, first sends it three misbehaving clients (a reset right after
//! connecting, a reset while the server sends, a client that leaves without reading), then
//! talks to it, and fails unless the echo matches and the server exits cleanly: an end-to-end
//! test of both programs, and of a server surviving its clients.

mod support;

use std::time::Duration;

use anyio::{
    fail_after,
    net::{connect_tcp, RemoteAddress},
    streams::text::TextStream,
    streams::{
        AsyncResource, ObjectReceiveStream, ObjectSendStream, ObjectStream, StreamError, TypedAttributeExt,
    },
    AnyError,
};
use support::{Args, Report, Server};

const USAGE: &str =
    "tcp_echo_client [--host H (default localhost)] [--port N (default 1234)] [--message TEXT] [--spawn-server] [--backend NAME]";

async fn talk(host: &str, port: u16, message: &str) -> Result<String, AnyError> {
    // connect_tcp resolves the name and races IPv6 and IPv4 (Happy Eyeballs), as AnyIO's does.
    let stream = connect_tcp(host, port).await?;
    println!("connected to {}", stream.extra::<RemoteAddress>()?);
    // TextStream turns the byte stream into a stream of strings (UTF-8 is decoded correctly
    // even when a character is split between two reads).
    let client = TextStream::new(stream);
    client.send(message.to_owned()).await?;
    // Half-close: the server sees the end of our data, echoes the rest, and closes its side.
    client.send_eof().await?;
    let mut reply = String::new();
    loop {
        match client.receive().await {
            Ok(text) => reply.push_str(&text),
            Err(StreamError::EndOfStream) => break,
            Err(e) => return Err(e.into()),
        }
    }
    client.aclose().await?;
    Ok(reply)
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let host: String = args.value("--host", "localhost".into())?;
    let mut port = args.value("--port", 1234)?;
    let message: String = args.value("--message", "Hello, anyio!\n".into())?;
    let spawn_server = args.flag("--spawn-server");
    args.finish()?;
    // The server serves four connections: three clients that misbehave, then ours.
    let server = spawn_server
        .then(|| Server::spawn("tcp_echo_server", &["--port", "0", "--max-connections", "4"]))
        .transpose()?;
    if let Some(server) = &server {
        port = server.port()?;
        anyio::run(fail_after(Duration::from_secs(10), support::rude::tcp_clients(port)))?;
    }

    // A deadline around the whole conversation, so that a silent server cannot hang us.
    let reply = anyio::run(fail_after(Duration::from_secs(10), talk(&host, port, &message)))?;
    println!("received {reply:?}");
    if reply != message {
        return Err(AnyError::msg(format!("the echo differs from the message {message:?}")).into());
    }
    if let Some(server) = server {
        server.wait()?;
    }
    Ok(())
}
