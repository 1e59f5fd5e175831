//! A TCP echo server, after the server in AnyIO's networking tutorial ("Working with TCP
//! sockets"): it sends back everything each client sends, until the client closes its side.
//! Try it with `nc localhost 1234`, or with `tcp_echo_client`:
//!
//! ```text
//! cargo run --example tcp_echo_server -- --port 1234
//! ANYIO_BACKEND=smol cargo run --example tcp_echo_server --features smol -- --port 1234
//! cargo run --example tcp_echo_server -- --port 0 --once --backend tokio-current-thread
//! ```
//!
//! `--port 0` picks a free port; the first line printed is always "listening on port N".
//! `--once` serves a single client and exits, which is how `tcp_echo_client --spawn-server`
//! tests the pair unattended.

mod support;

use anyio::{
    current_backend,
    net::tcp::TcpListenerOptions,
    net::{create_tcp_listener, Listener, ListenerExt, LocalPort, RemoteAddress, TcpStream},
    streams::{StreamError, TypedAttributeExt},
    AnyError,
};
use support::{Args, Report};

const USAGE: &str = "tcp_echo_server [--port N (default 1234; 0: any free port)] [--once] [--backend NAME]";

/// Serves one client: echoes what it receives until the client half-closes (or goes away).
async fn handle(client: TcpStream) -> Result<(), AnyError> {
    // Typed attributes describe a stream without knowing its type (AnyIO's `client.extra`).
    let peer = client.extra::<RemoteAddress>()?;
    println!("{peer} connected");
    loop {
        match client.receive(65536).await {
            Ok(data) => client.send(&data).await?,
            // AnyIO signals the end of a stream with an error, never with an empty read.
            Err(StreamError::EndOfStream) => break,
            // Cancellation (the server is stopping) must propagate.
            Err(e @ StreamError::Cancelled(_)) => return Err(e.into()),
            // A client that vanished (a reset) only ends its own connection: returning an
            // error here would fail the task group and stop the whole server.
            Err(e) => {
                eprintln!("{peer}: {e}");
                break;
            }
        }
    }
    // Python's `async with client:` closes the stream at the end of the block; dropping it
    // would too, but closing explicitly says when.
    client.aclose().await?;
    println!("{peer} disconnected");
    Ok(())
}

async fn serve(port: u16, once: bool) -> Result<(), AnyError> {
    // Without a local host, the listener accepts IPv6 and IPv4 clients on all interfaces.
    let listener = create_tcp_listener(TcpListenerOptions::new().local_port(port)).await?;
    println!("listening on port {}", listener.extra::<LocalPort>()?);
    println!("running on the {} backend", current_backend().unwrap_or("?"));
    if once {
        handle(listener.accept().await?).await
    } else {
        // serve() runs each connection's handler as a task of a task group, forever (stop
        // the program with Ctrl+C).
        listener.serve(handle).await?;
        Ok(())
    }
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let port = args.value("--port", 1234)?;
    let once = args.flag("--once");
    args.finish()?;
    // AnyIO's `run(main)`: the backend comes from ANYIO_BACKEND (or --backend).
    Ok(anyio::run(serve(port, once))?)
}
