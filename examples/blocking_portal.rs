//! A synchronous program that uses async code through a blocking portal, after AnyIO's
//! "Working with threads" tutorial: there is no async `main`. It starts a portal (a thread that
//! runs the backend), runs a TCP echo server in it, then talks to the server from plain
//! threads with blocking `std::net` sockets, and through the portal with anyio's own client.
//!
//! ```text
//! cargo run --all-features --example blocking_portal
//! ANYIO_BACKEND=smol cargo run --all-features --example blocking_portal
//! ```
//!
//! One client resets its connection without reading its echo: the server reports that one
//! connection's error and keeps serving the others. At the end the server is cancelled through
//! its portal future and the portal is stopped, which joins its thread.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream as StdTcpStream};
use std::time::Duration;

use anyio::{
    from_thread::start_blocking_portal,
    net::{connect_tcp, create_tcp_listener, tcp::TcpListenerOptions, ListenerExt, LocalPort, TcpStream},
    streams::{StreamError, TypedAttributeExt},
    AnyError, Backend,
};

/// Echoes what a client sends until it half-closes.
async fn echo(client: TcpStream) -> Result<(), AnyError> {
    loop {
        match client.receive(65536).await {
            Ok(data) => client.send(&data).await?,
            Err(StreamError::EndOfStream) => break,
            Err(e) => return Err(e.into()),
        }
    }
    client.aclose().await?;
    Ok(())
}

/// A blocking client on a plain thread: sends `message`, half-closes, reads the echo.
fn blocking_client(port: u16, message: &str) -> std::io::Result<String> {
    let mut s = StdTcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(message.as_bytes())?;
    s.shutdown(Shutdown::Write)?;
    let mut echo = String::new();
    s.read_to_string(&mut echo)?;
    Ok(echo)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = Backend::from_env()?;
    let portal = start_blocking_portal(backend)?;
    println!("portal started on the {backend} backend");

    // The server is a task of the portal; `start_task` returns once it is listening.
    let (server, port) = portal.start_task(|status| async move {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        status.started(listener.extra::<LocalPort>()?);
        // Each connection in a task of its own; a failing one is reported and ends alone.
        listener.serve(echo).await?;
        Ok(())
    })?;
    println!("echo server listening on port {port}");

    // A misbehaving client first: it sends, then resets without reading its echo.
    {
        let s = StdTcpStream::connect(("127.0.0.1", port))?;
        (&s).write_all(b"never read")?;
        socket_reset(s);
        println!("a client reset its connection");
    }

    // Plain threads with blocking sockets, at the same time.
    let threads: Vec<_> = (1..=3)
        .map(|i| std::thread::spawn(move || blocking_client(port, &format!("hello from thread {i}"))))
        .collect();
    for t in threads {
        let echo = t.join().expect("client thread panicked")?;
        println!("echoed: {echo}");
    }

    // anyio's own client, run in the portal from this synchronous main.
    let echo = portal.call(move || async move {
        let client = connect_tcp("127.0.0.1", port).await?;
        client.send(b"hello through the portal").await?;
        client.send_eof().await?;
        let mut got = Vec::new();
        loop {
            match client.receive(65536).await {
                Ok(data) => got.extend_from_slice(&data),
                Err(StreamError::EndOfStream) => break,
                Err(e) => return Err(AnyError::from(e)),
            }
        }
        Ok(String::from_utf8_lossy(&got).into_owned())
    })??;
    println!("echoed: {echo}");

    // Stop the server (it serves until cancelled), then the portal, which joins its thread.
    server.cancel();
    match server.wait() {
        Ok(r) => r?,
        Err(anyio::from_thread::PortalError::Cancelled) => {}
        Err(e) => return Err(e.into()),
    }
    portal.stop(false);
    println!("server stopped, portal closed");
    Ok(())
}

/// Closes `s` with a reset (SO_LINGER 0), as a client that crashes does.
fn socket_reset(s: StdTcpStream) {
    let s = socket2::Socket::from(s);
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}
