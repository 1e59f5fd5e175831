//! A Unix socket echo client, after AnyIO's tutorial: the TCP client with a path instead of
//! a host and port. It sends a few lines one at a time and reads each echo back:
//!
//! ```text
//! cargo run --all-features --example unix_echo_client -- --path /tmp/anyio-echo.sock
//! cargo run --all-features --example unix_echo_client -- --spawn-server
//! ANYIO_BACKEND=smol cargo run --all-features --example unix_echo_client -- --spawn-server
//! ```
//!
//! `--spawn-server` starts `unix_echo_server --max-connections 3` on a fresh path as a child
//! process on the same backend, first sends it two clients that leave early (one while the
//! server is sending), then talks to it, and fails unless every echo matches and the server
//! exits cleanly.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyio::{
    fail_after,
    net::connect_unix,
    streams::buffered::BufferedByteStream,
    streams::{ByteReceiveStream, ByteSendStream, ByteStream, StreamError},
    AnyError,
};
use support::{Args, Report, Server};

const USAGE: &str =
    "unix_echo_client [--path PATH (default /tmp/anyio-echo.sock)] [--spawn-server] [--backend NAME]";

const LINES: [&str; 3] = ["Hello, anyio!", "Unix sockets are file system paths", "bye"];

async fn talk(path: &Path) -> Result<(), AnyError> {
    let client = BufferedByteStream::new(connect_unix(path).await?);
    println!("connected to {}", path.display());
    for line in LINES {
        client.send(format!("{line}\n").as_bytes()).await?;
        // Each echo arrives as one line, however the socket happens to split it.
        let echo = client.receive_until(b"\n", 65536).await?;
        println!("received {:?}", String::from_utf8_lossy(&echo));
        if echo != line.as_bytes() {
            return Err(AnyError::msg(format!("the echo differs from {line:?}")));
        }
    }
    // Say we are done; the server closes its side in turn, which we see as end of stream.
    client.send_eof().await?;
    match client.receive(1).await {
        Err(StreamError::EndOfStream) => Ok(()),
        Ok(extra) => Err(AnyError::msg(format!("unexpected data after the last echo: {extra:?}"))),
        Err(e) => Err(e.into()),
    }
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let mut path: PathBuf = args.value("--path", "/tmp/anyio-echo.sock".into())?;
    let spawn_server = args.flag("--spawn-server");
    args.finish()?;
    let server = if spawn_server {
        // A path of our own, so that concurrent runs do not collide.
        let path = std::env::temp_dir().join(format!("anyio-echo-{}.sock", std::process::id()));
        // Three connections: two clients that misbehave, then ours.
        let args = ["--path", &path.to_string_lossy(), "--max-connections", "3"];
        Some(Server::spawn("unix_echo_server", &args)?)
    } else {
        None
    };
    if let Some(server) = &server {
        path = server.address().into();
        anyio::run(fail_after(Duration::from_secs(10), support::rude::unix_clients(&path)))?;
    }

    anyio::run(fail_after(Duration::from_secs(10), talk(&path)))?;
    if let Some(server) = server {
        server.wait()?;
    }
    Ok(())
}
