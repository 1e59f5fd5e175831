//! TLS interop with peers we did not write, on loopback, on every backend: `openssl s_server`
//! and `openssl s_client` (TLS 1.2 and 1.3, ALPN), and Python's `ssl` module as client (with
//! `unwrap`) and as server (with the ragged-EOF cases). A test whose tool is missing prints why
//! and passes without checking anything.

mod support;
mod tls_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyio::net::{connect_tcp, TcpListener};
use anyio::streams::{AsyncResource, ByteReceiveStream, StreamError, TypedAttributeExt};
use anyio::tls::rustls::ProtocolVersion;
use anyio::tls::{AlpnProtocol, TlsOptions, TlsStream, TlsVersion};
use anyio::{sleep, AnyError};
use support::guarded_ok;
use tls_support::Pki;

fn have(tool: &str, args: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: `{tool}` is not available here");
    }
    ok
}

/// Waits (without blocking the runtime) for what a helper thread sends.
async fn recv_from_thread<T>(rx: &mpsc::Receiver<T>) -> Result<T, AnyError> {
    loop {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(mpsc::TryRecvError::Empty) => sleep(Duration::from_millis(2)).await?,
            Err(mpsc::TryRecvError::Disconnected) => return Err(AnyError::msg("the helper thread died")),
        }
    }
}

async fn receive_line<S: ByteReceiveStream>(s: &S) -> Result<Vec<u8>, StreamError> {
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        got.extend(s.receive(1024).await?);
    }
    Ok(got)
}

#[anyio::test]
async fn our_client_against_openssl_s_server_tls13_tls12_and_alpn() {
    if !have("openssl", &["version"]) {
        return;
    }
    guarded_ok(async {
        let pki = Pki::new();
        let (_ca, cert, key) = pki.write_pem_files("s_server");
        for (flag, version) in [(None, ProtocolVersion::TLSv1_3), (Some("-tls1_2"), ProtocolVersion::TLSv1_2)]
        {
            // Port 0, and the port read from the server's "ACCEPT host:port" line, printed once
            // it listens: a port picked in advance can be taken meanwhile by a server of a test
            // running in parallel, whose one accepted connection then is ours.
            let (tx, rx) = mpsc::channel();
            let (cert, key) = (cert.clone(), key.clone());
            std::thread::spawn(move || {
                let mut child = Command::new("openssl")
                    .args(["s_server", "-accept", "127.0.0.1:0", "-rev", "-naccept", "1"])
                    .args(["-alpn", "h2", "-cert"])
                    .arg(&cert)
                    .arg("-key")
                    .arg(&key)
                    .args(flag)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let mut out = BufReader::new(child.stdout.take().unwrap());
                let mut line = String::new();
                while out.read_line(&mut line).unwrap_or(0) > 0 {
                    if let Some(addr) = line.trim().strip_prefix("ACCEPT ") {
                        let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                        let _ = tx.send(port);
                        break;
                    }
                    line.clear();
                }
                // Drained to the end, so that the server never blocks on a full pipe; it exits
                // after its one connection (`-naccept 1`).
                let _ = std::io::copy(&mut out, &mut std::io::sink());
                let _ = child.wait();
            });
            let port =
                recv_from_thread(&rx).await?.ok_or_else(|| AnyError::msg("s_server printed no port"))?;
            let tcp = connect_tcp("127.0.0.1", port).await?;
            let mut config = pki.client_config();
            config.alpn_protocols = vec![b"h2".to_vec()];
            let c = TlsStream::connect(
                tcp,
                "localhost",
                Arc::new(config),
                TlsOptions::new().standard_compatible(false),
            )
            .await?;
            assert_eq!(c.extra::<TlsVersion>()?, version);
            assert_eq!(c.extra::<AlpnProtocol>()?, Some(b"h2".to_vec()));
            c.send(b"hello anyio\n").await?;
            let line = receive_line(&c).await?;
            assert_eq!(
                String::from_utf8_lossy(&line).trim_end(),
                "oiyna olleh",
                "s_server -rev reverses the line"
            );
            c.aclose().await?;
        }
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn openssl_s_client_against_our_server_tls13_tls12_and_alpn() {
    if !have("openssl", &["version"]) {
        return;
    }
    guarded_ok(async {
        let pki = Pki::new();
        let (ca, _, _) = pki.write_pem_files("s_client");
        for flag in [None, Some("-tls1_2")] {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await?;
            let port = listener.local_addr()?.port();
            let (tx, rx) = mpsc::channel();
            let ca = ca.clone();
            std::thread::spawn(move || {
                let mut child = Command::new("openssl")
                    .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost"])
                    .args(["-quiet", "-alpn", "h2", "-CAfile"])
                    .arg(&ca)
                    .args(flag)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                child.stdin.as_mut().unwrap().write_all(b"from s_client\n").unwrap();
                let out = child.wait_with_output().unwrap();
                tx.send(out.stdout).unwrap();
            });
            let mut config = pki.server_config();
            config.alpn_protocols = vec![b"h2".to_vec()];
            let tcp = listener.accept().await?;
            let s = TlsStream::accept(tcp, Arc::new(config), TlsOptions::new().standard_compatible(false))
                .await?;
            assert_eq!(s.extra::<AlpnProtocol>()?, Some(b"h2".to_vec()));
            let line = receive_line(&s).await?;
            assert_eq!(line, b"from s_client\n");
            s.send(b"echo: from s_client\n").await?;
            s.aclose().await?; // close_notify ends s_client
            let out = recv_from_thread(&rx).await?;
            assert_eq!(String::from_utf8_lossy(&out), "echo: from s_client\n");
        }
        Ok(())
    })
    .await;
}

const PY_CLIENT: &str = r#"
import socket, ssl, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
raw = socket.create_connection(("127.0.0.1", port))
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(b"hello from python\n")
data = b""
while not data.endswith(b"\n"):
    data += s.recv(1024)
plain = s.unwrap()
plain.sendall(b"PLAIN AFTER TLS")
plain.close()
sys.stdout.write(data.decode())
"#;

#[anyio::test]
async fn python_ssl_client_then_unwrap_to_plain_text() {
    if !have("python3", &["-c", "import ssl"]) {
        return;
    }
    guarded_ok(async {
        let pki = Pki::new();
        let (ca, _, _) = pki.write_pem_files("py_client");
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await?;
        let port = listener.local_addr()?.port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let out = Command::new("python3")
                .args(["-c", PY_CLIENT, &port.to_string()])
                .arg(&ca)
                .stderr(Stdio::inherit())
                .output()
                .unwrap();
            tx.send(out).unwrap();
        });
        let tcp = listener.accept().await?;
        let s = TlsStream::accept(tcp, Arc::new(pki.server_config()), TlsOptions::new()).await?;
        let line = receive_line(&s).await?;
        assert_eq!(line, b"hello from python\n");
        s.send(b"hello from anyio\n").await?;
        let u = s.unwrap().await?;
        let mut plain = u.leftover.clone();
        while plain.len() < 15 {
            match u.transport.receive(100).await {
                Ok(b) => plain.extend(b),
                Err(StreamError::EndOfStream) => break,
                Err(e) => return Err(e.into()),
            }
        }
        assert_eq!(plain, b"PLAIN AFTER TLS");
        let out = recv_from_thread(&rx).await?;
        assert!(out.status.success(), "the Python client failed");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from anyio\n");
        Ok(())
    })
    .await;
}

const PY_SERVER: &str = r#"
import socket, ssl, sys
cert, key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
raw, _ = ls.accept()
s = ctx.wrap_socket(raw, server_side=True)
s.sendall(b"bye")
if mode == "clean":
    s.unwrap().close()
else:
    # SSLSocket.shutdown drops the TLS state without a close_notify: a bare TCP FIN.
    s.shutdown(socket.SHUT_WR)
    s.close()
"#;

#[anyio::test]
async fn python_ssl_server_clean_and_ragged_ends() {
    if !have("python3", &["-c", "import ssl"]) {
        return;
    }
    guarded_ok(async {
        let pki = Pki::new();
        let (_, cert, key) = pki.write_pem_files("py_server");
        for (mode, standard, expect_broken) in
            [("clean", true, false), ("ragged", true, true), ("ragged", false, false)]
        {
            let (tx, rx) = mpsc::channel();
            let (cert, key) = (cert.clone(), key.clone());
            std::thread::spawn(move || {
                let mut child = Command::new("python3")
                    .args(["-c", PY_SERVER])
                    .arg(&cert)
                    .arg(&key)
                    .arg(mode)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap();
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
                tx.send(line.trim().parse::<u16>().unwrap()).unwrap();
                let _ = child.wait();
            });
            let port = recv_from_thread(&rx).await?;
            let tcp = connect_tcp("127.0.0.1", port).await?;
            let options = TlsOptions::new().standard_compatible(standard);
            let c = TlsStream::connect(tcp, "localhost", Arc::new(pki.client_config()), options).await?;
            let mut got = Vec::new();
            let end = loop {
                match c.receive(100).await {
                    Ok(b) => got.extend(b),
                    Err(e) => break e,
                }
            };
            assert_eq!(got, b"bye", "{mode}");
            if expect_broken {
                assert!(matches!(end, StreamError::Broken(_)), "{mode}, standard {standard}: {end:?}");
            } else {
                assert!(matches!(end, StreamError::EndOfStream), "{mode}, standard {standard}: {end:?}");
            }
            // Answers the clean close_notify, which Python's unwrap waits for.
            c.aclose().await?;
        }
        Ok(())
    })
    .await;
}
