//! A TCP echo server, after the server in AnyIO's networking tutorial ("Working with TCP
//! sockets"): it sends back everything each client sends, until the client closes its side.
//! Try it with `nc -N localhost 1234`, or with `tcp_echo_client`:
//!
//! ```text
//! cargo run --all-features --example tcp_echo_server -- --port 1234
//! ANYIO_BACKEND=smol cargo run --all-features --example tcp_echo_server -- --port 1234
//! cargo run --all-features --example tcp_echo_server -- --port 0 --once --backend tokio-current-thread
//! ```
//!
//! `--port 0` picks a free port; the first line printed is always "listening on port N".
//! `--once` serves a single client and exits; `--max-connections N` serves until N
//! connections have ended, which is how `tcp_echo_client --spawn-server` tests the pair
//! unattended, misbehaving clients included.

mod support;

use anyio::{
    current_backend,
    net::tcp::TcpListenerOptions,
    net::{create_tcp_listener, Listener, LocalPort, RemoteAddress, TcpStream},
    streams::{StreamError, TypedAttributeExt},
    AnyError,
};
use support::{serve_up_to, Args, Report};

const USAGE: &str =
    "tcp_echo_server [--port N (default 1234; 0: any free port)] [--once] [--max-connections N] [--backend NAME]";

/// Serves one client: echoes what it receives until the client half-closes.
///
/// Written the natural way, with `?`: a client that resets its connection (or leaves without
/// reading its echo) makes `receive` or `send` fail, which ends this handler. `serve` reports
/// that error with the client's address and goes on serving everyone else.
async fn handle(client: TcpStream) -> Result<(), AnyError> {
    // Typed attributes describe a stream without knowing its type (AnyIO's `client.extra`).
    // The address is the one accept() returned, so it is there even after a reset.
    let peer = client.extra::<RemoteAddress>()?;
    println!("{peer} connected");
    loop {
        match client.receive(65536).await {
            Ok(data) => client.send(&data).await?,
            // AnyIO signals the end of a stream with an error, never with an empty read.
            Err(StreamError::EndOfStream) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // Python's `async with client:` closes the stream at the end of the block; dropping it
    // would too, but closing explicitly says when.
    client.aclose().await?;
    println!("{peer} disconnected");
    Ok(())
}

async fn serve(port: u16, once: bool, max_connections: Option<usize>) -> Result<(), AnyError> {
    // Without a local host, the listener accepts IPv6 and IPv4 clients on all interfaces.
    let listener = create_tcp_listener(TcpListenerOptions::new().local_port(port)).await?;
    println!("listening on port {}", listener.extra::<LocalPort>()?);
    println!("running on the {} backend", current_backend().unwrap_or("?"));
    if once {
        return handle(listener.accept().await?).await;
    }
    // serve() runs each connection's handler as a task of a task group until cancelled (stop
    // the program with Ctrl+C). A handler's error is printed with the client's address and
    // ends only that connection.
    // With `--max-connections N`, it stops cleanly once N connections have ended.
    serve_up_to(&listener, max_connections, handle).await
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let port = args.value("--port", 1234)?;
    let once = args.flag("--once");
    let max_connections = args.option("--max-connections")?;
    args.finish()?;
    // AnyIO's `run(main)`: the backend comes from ANYIO_BACKEND (or --backend).
    Ok(anyio::run(support::until_stopped(serve(port, once, max_connections)))?)
}
