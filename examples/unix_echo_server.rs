//! A Unix socket echo server, after AnyIO's tutorial ("Working with UNIX sockets"): the TCP
//! server with a file system path instead of a host and port. This one echoes line by line,
//! reading through a `BufferedByteStream`. Try it with `nc -U /tmp/anyio-echo.sock`, or with
//! `unix_echo_client`:
//!
//! ```text
//! cargo run --all-features --example unix_echo_server -- --path /tmp/anyio-echo.sock
//! ANYIO_BACKEND=smol cargo run --all-features --example unix_echo_server -- --once
//! ```
//!
//! The first line printed is always "listening on PATH". `--once` serves a single client and
//! exits; `--max-connections N` serves until N connections have ended, which is how
//! `unix_echo_client --spawn-server` tests the pair unattended, misbehaving clients included.

mod support;

use std::path::{Path, PathBuf};

use anyio::{
    current_backend,
    net::{create_unix_listener, UnixStream},
    streams::buffered::BufferedByteStream,
    streams::{ByteSendStream, ByteStream, StreamError},
    AnyError,
};
use support::{serve_up_to, Args, Report};

const USAGE: &str =
    "unix_echo_server [--path PATH (default /tmp/anyio-echo.sock)] [--once] [--max-connections N] [--backend NAME]";

/// Serves one client: sends each line back as soon as it is complete.
async fn handle(client: UnixStream) -> Result<(), AnyError> {
    println!("client connected");
    // The buffered wrapper reads as much as it gets and keeps what follows the delimiter for
    // the next call (AnyIO's `BufferedByteStream`).
    let client = BufferedByteStream::new(client);
    loop {
        match client.receive_until(b"\n", 65536).await {
            Ok(mut line) => {
                line.push(b'\n');
                client.send(&line).await?;
            }
            // The client closed its side before a newline: echo the unterminated tail (still
            // buffered) below, then stop.
            Err(StreamError::IncompleteRead) => break,
            // A client that went away (or a line over 64 KiB): `serve` reports the error and
            // ends only this connection.
            Err(e) => return Err(e.into()),
        }
    }
    let tail = client.receiver().buffer();
    if !tail.is_empty() {
        client.send(&tail).await?;
    }
    client.send_eof().await?;
    println!("client disconnected");
    Ok(())
}

async fn serve(path: &Path, once: bool, max_connections: Option<usize>) -> Result<(), AnyError> {
    // A leftover socket file from an earlier run is replaced.
    let listener = create_unix_listener(path).await?;
    println!("listening on {}", path.display());
    println!("running on the {} backend", current_backend().unwrap_or("?"));
    if once {
        return handle(listener.accept().await?).await;
    }
    // A handler's error is printed and ends only its own connection; with
    // `--max-connections N`, serving stops cleanly once N connections have ended.
    serve_up_to(&listener, max_connections, handle).await
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let path: PathBuf = args.value("--path", "/tmp/anyio-echo.sock".into())?;
    let once = args.flag("--once");
    let max_connections = args.option("--max-connections")?;
    args.finish()?;
    let result = anyio::run(support::until_stopped(serve(&path, once, max_connections)));
    // As AnyIO notes, the listener does not remove its socket file: we do.
    let _ = std::fs::remove_file(&path);
    Ok(result?)
}
