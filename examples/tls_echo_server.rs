//! A TLS echo server: `tcp_echo_server` with TLS on top (AnyIO's `TLSListener`). It sends back
//! everything each client sends until the client closes its side, then closes its own. Try
//! it with `tls_echo_client`, `openssl s_client` or Python's `ssl` module:
//!
//! ```text
//! cargo run --all-features --example tls_echo_server -- --port 1234 --write-ca /tmp/anyio-ca.pem
//! cargo run --all-features --example tls_echo_client -- --port 1234 --cafile /tmp/anyio-ca.pem
//! openssl s_client -connect 127.0.0.1:1234 -CAfile /tmp/anyio-ca.pem -verify_return_error
//! ANYIO_BACKEND=smol cargo run --all-features --example tls_echo_server -- --port 1234 --cert cert.pem --key key.pem
//! ```
//!
//! Without `--cert`, the server makes itself a self-signed certificate for `localhost`,
//! `127.0.0.1` and `::1` (with rcgen), and `--write-ca PATH` writes it to PATH so that clients
//! can trust it; the file is written before anything is printed. It listens on `localhost`
//! unless `--host` says otherwise (that certificate names no other host anyway). The first
//! line printed is always "listening on port N" (`--port 0` picks a free port). `--once`
//! serves a single client (the first whose handshake succeeds) and exits, which is how
//! `tls_echo_client --spawn-server` tests the pair unattended, misbehaving clients included.

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyio::{
    current_backend,
    net::tcp::TcpListenerOptions,
    net::{create_tcp_listener, LocalPort, RemoteAddress, TcpStream},
    streams::{AsyncResource, ByteStream, StreamError, TypedAttributeExt},
    tls::rustls::pki_types::{CertificateDer, PrivateKeyDer},
    tls::{
        read_certificates, read_private_key, server_config, CipherSuite, ServerName, TlsListener, TlsStream,
        TlsVersion,
    },
    AnyError, CancelScope,
};
use support::{Args, Report};

const USAGE: &str =
    "tls_echo_server [--host H (default localhost)] [--port N (default 1234; 0: any free port)] \
     [--cert PEM --key PEM | --write-ca PATH] [--once] [--backend NAME]";

/// Serves one client, after its handshake: echoes what it receives until the client closes
/// its side, then closes ours.
///
/// As in `tcp_echo_server`, `?` is the right way to leave: a client that goes away mid-echo
/// fails this handler, and `serve` reports that with the client's address and goes on serving
/// the others.
async fn echo(client: TlsStream<TcpStream>) -> Result<(), AnyError> {
    // The TLS attributes, and the TCP ones (the peer's address) through the TLS stream.
    let peer = client.extra::<RemoteAddress>()?;
    let version = client.extra::<TlsVersion>()?;
    let suite = client.extra::<CipherSuite>()?;
    let sni = client.extra::<ServerName>()?.unwrap_or_else(|| "(none)".into());
    println!("{peer} connected: {version:?}, {suite:?}, server name {sni}");
    loop {
        match client.receive(65536).await {
            Ok(data) => client.send(&data).await?,
            // The client's close_notify: it has nothing more to send.
            Err(StreamError::EndOfStream) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // TLS 1.3 closes each direction separately (RFC 8446, 6.1): say we are done too. In TLS
    // 1.2 the client's close_notify already closed both directions, so there is no half-close
    // to do; `aclose` below answers with our close_notify.
    match client.send_eof().await {
        Ok(()) | Err(StreamError::Unsupported(_)) => {}
        Err(e) => return Err(e.into()),
    }
    client.aclose().await?;
    println!("{peer} disconnected");
    Ok(())
}

/// Where the certificate comes from.
enum Identity {
    /// PEM files: the chain (server certificate first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// A fresh self-signed certificate, written as PEM to the path if there is one.
    SelfSigned { write_ca: Option<PathBuf> },
}

/// The server's certificate chain and key.
fn load(identity: Identity) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), AnyError> {
    match identity {
        Identity::Files { cert, key } => Ok((read_certificates(cert)?, read_private_key(key)?)),
        Identity::SelfSigned { write_ca } => {
            // rcgen reads "127.0.0.1" and "::1" as IP addresses (IP subject alternative
            // names), so clients can connect by address as well as by name.
            let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
            let mut params = rcgen::CertificateParams::new(names).map_err(AnyError::other)?;
            params.distinguished_name.push(rcgen::DnType::CommonName, "anyio tls_echo_server");
            let key = rcgen::KeyPair::generate().map_err(AnyError::other)?;
            let cert = params.self_signed(&key).map_err(AnyError::other)?;
            if let Some(path) = write_ca {
                // Written before "listening on" is printed: a client that waits for that line
                // finds the whole file.
                std::fs::write(&path, cert.pem())?;
            }
            Ok((vec![cert.der().clone()], PrivateKeyDer::Pkcs8(key.serialize_der().into())))
        }
    }
}

async fn serve(host: String, port: u16, identity: Identity, once: bool) -> Result<(), AnyError> {
    let (chain, key) = load(identity)?;
    let config = Arc::new(server_config(chain, key)?);
    let tcp = create_tcp_listener(TcpListenerOptions::new().local_host(host).local_port(port)).await?;
    println!("listening on port {}", tcp.extra::<LocalPort>()?);
    println!("running on the {} backend", current_backend().unwrap_or("?"));
    // Each connection's handshake runs in its own task under a timeout: a client that
    // connects and says nothing holds up nobody. A failed handshake (a client that speaks no
    // TLS, distrusts our certificate, or leaves halfway) closes that connection and goes to
    // the hook; serving goes on.
    let listener = TlsListener::new(tcp, config)
        .handshake_timeout(Some(Duration::from_secs(10)))
        .on_handshake_error(|failure| eprintln!("rejected: {failure}"));
    if !once {
        // Until Ctrl+C. A handler's error is printed with the client's address and ends only
        // its own connection.
        listener.serve(echo).await?;
        return Ok(());
    }

    // `--once` counts only connections whose handler ran, that is whose handshake succeeded:
    // `serve` calls the handler only then. A client that sends garbage or leaves before the
    // handshake ends is reported by the hook above and does not count, so a self-test that
    // sends such clients first still gets its real client served, and proves the server
    // survived them. The served connection's result becomes the program's: a failed echo
    // makes the server exit with an error, as `tcp_echo_server --once` does.
    let stop = CancelScope::new();
    let outcome: Arc<Mutex<Option<Result<(), AnyError>>>> = Arc::default();
    let (stopper, slot) = (stop.clone(), outcome.clone());
    stop.run(listener.serve(move |client| {
        let (stop, slot) = (stopper.clone(), slot.clone());
        async move {
            let r = echo(client).await;
            // Only the first result counts (a second client may have been accepted meanwhile;
            // the cancellation below ends it).
            slot.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(r);
            stop.cancel();
            Ok::<(), AnyError>(())
        }
    }))
    .await?;
    let outcome = outcome.lock().unwrap_or_else(|p| p.into_inner()).take();
    outcome.unwrap_or_else(|| Err(AnyError::msg("stopped before serving a client")))
}

fn usage(message: &str) -> Report {
    AnyError::msg(format!("{message}\nusage: {USAGE}")).into()
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let host: String = args.value("--host", "localhost".into())?;
    let port = args.value("--port", 1234)?;
    let cert: Option<PathBuf> = args.option("--cert")?;
    let key: Option<PathBuf> = args.option("--key")?;
    let write_ca: Option<PathBuf> = args.option("--write-ca")?;
    let once = args.flag("--once");
    args.finish()?;
    let identity = match (cert, key) {
        (Some(cert), Some(key)) if write_ca.is_none() => Identity::Files { cert, key },
        (None, None) => Identity::SelfSigned { write_ca },
        (Some(_), Some(_)) => return Err(usage("--write-ca writes the generated certificate, not --cert")),
        _ => return Err(usage("--cert and --key go together")),
    };
    // AnyIO's `run(main)`: the backend comes from ANYIO_BACKEND (or --backend).
    Ok(anyio::run(support::until_stopped(serve(host, port, identity, once)))?)
}
