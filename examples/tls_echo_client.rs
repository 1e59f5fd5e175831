//! A TLS echo client: `tcp_echo_client` with TLS on top (AnyIO's `connect_tcp(..., tls=True)`).
//! It connects, verifies the server's certificate against a CA file, sends a message, closes
//! its side, and prints what comes back. It talks to `tls_echo_server` or any TLS echo server:
//!
//! ```text
//! cargo run --all-features --example tls_echo_server -- --port 1234 --write-ca /tmp/anyio-ca.pem
//! cargo run --all-features --example tls_echo_client -- --port 1234 --cafile /tmp/anyio-ca.pem --message "Hello"
//! cargo run --all-features --example tls_echo_client -- --spawn-server
//! ANYIO_BACKEND=async-std cargo run --all-features --example tls_echo_client -- --spawn-server
//! ```
//!
//! `--spawn-server` starts `tls_echo_server --host 127.0.0.1 --port 0 --once --write-ca FILE`
//! as a child process on the same backend, first sends it a client that connects and stays
//! silent throughout, and four clients whose handshakes fail (one leaves at once, one resets,
//! one speaks plain HTTP, one distrusts the certificate), then talks to it with FILE as the CA
//! file, and fails unless the echo matches and the server exits cleanly. `--once` counts only
//! connections whose handshake succeeded, so the server's clean exit proves that it served
//! ours after surviving the others, with the silent one's handshake still pending.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyio::{
    fail_after,
    net::RemoteAddress,
    streams::{AsyncResource, ByteStream, StreamError, TypedAttributeExt},
    tls::rustls::RootCertStore,
    tls::{client_config_with_roots, connect_tls, read_certificates, CipherSuite, TlsVersion},
    AnyError,
};
use support::{Args, Report, Server};

const USAGE: &str = "tls_echo_client [--host H (default localhost)] [--port N (default 1234)] \
     (--cafile PEM | --spawn-server) [--message TEXT] [--backend NAME]";

async fn talk(host: &str, port: u16, cafile: &Path, message: &str) -> Result<Vec<u8>, AnyError> {
    // Trust exactly the certificates in the CA file (a self-signed server certificate is its
    // own CA). `client_config()` would trust the usual public roots instead, with the
    // `tls-webpki-roots` or `tls-platform-verifier` feature.
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(read_certificates(cafile)?);
    let config = Arc::new(client_config_with_roots(roots)?);
    // TCP with Happy Eyeballs, then the handshake, verifying the server as `host`: its
    // certificate must name it.
    let stream = connect_tls(host, port, config).await?;
    let (version, suite) = (stream.extra::<TlsVersion>()?, stream.extra::<CipherSuite>()?);
    println!("connected to {} with {version:?}, {suite:?}", stream.extra::<RemoteAddress>()?);
    stream.send(message.as_bytes()).await?;
    // Half-close: our close_notify tells the server we are done; it echoes the rest and sends
    // its own, which we receive as the end of the stream. Only TLS 1.3 can close one
    // direction; over TLS 1.2 we read as many bytes as we sent and close both.
    let half_closed = match stream.send_eof().await {
        Ok(()) => true,
        Err(StreamError::Unsupported(_)) => false,
        Err(e) => return Err(e.into()),
    };
    let mut reply = Vec::new();
    while half_closed || reply.len() < message.len() {
        match stream.receive(65536).await {
            Ok(data) => reply.extend_from_slice(&data),
            // The server's close_notify. A server that closed the connection without one
            // would be an error here (`StreamError::Broken`): a truncation is never mistaken
            // for the end.
            Err(StreamError::EndOfStream) => break,
            Err(e) => return Err(e.into()),
        }
    }
    stream.aclose().await?;
    Ok(reply)
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let host: String = args.value("--host", "localhost".into())?;
    let mut port = args.value("--port", 1234)?;
    let cafile: Option<PathBuf> = args.option("--cafile")?;
    let message: String = args.value("--message", "Hello, anyio!\n".into())?;
    let spawn_server = args.flag("--spawn-server");
    args.finish()?;
    let mut ca_file = None;
    let server = if spawn_server {
        // The server writes its self-signed certificate here before it says "listening on".
        let path = std::env::temp_dir().join(format!("anyio-tls-echo-ca-{}.pem", std::process::id()));
        let ca = ca_file.insert(TempFile(path));
        let args = ["--host", "127.0.0.1", "--port", "0", "--once", "--write-ca", &ca.0.to_string_lossy()];
        Some(Server::spawn("tls_echo_server", &args)?)
    } else {
        None
    };
    let cafile = match (&ca_file, cafile) {
        (Some(ca), _) => ca.0.clone(),
        (None, Some(path)) => path,
        (None, None) => {
            return Err(
                AnyError::msg(format!("--cafile is needed (or --spawn-server)\nusage: {USAGE}")).into()
            )
        }
    };
    let mut silent = None;
    if let Some(server) = &server {
        port = server.port()?;
        // A client that connects and says nothing, open until the end: its handshake waits in
        // a task of its own (for up to the server's 10 s handshake timeout) and must hold up
        // nobody, so ours below is served at once.
        silent = Some(std::net::TcpStream::connect(("127.0.0.1", port))?);
        println!("self-test: a client connected and says nothing");
        anyio::run(fail_after(Duration::from_secs(10), support::rude::tls_clients(port)))?;
    }

    // A deadline around the whole conversation, so that a silent server cannot hang us.
    let reply = anyio::run(fail_after(Duration::from_secs(10), talk(&host, port, &cafile, &message)))?;
    println!("received {:?}", String::from_utf8_lossy(&reply));
    if reply != message.as_bytes() {
        return Err(AnyError::msg(format!("the echo differs from the message {message:?}")).into());
    }
    if let Some(server) = server {
        // Once it served us, the server stops, cancelling the silent client's handshake.
        server.wait()?;
    }
    drop(silent);
    Ok(())
}
