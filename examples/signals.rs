//! A server that shuts down gracefully, after AnyIO's "Receiving operating system signals":
//! it echoes lines over TCP until SIGINT (Ctrl+C) or SIGTERM, reports SIGHUP as a
//! configuration reload, and on shutdown cancels its task group (every connection's task
//! unwinds) and then runs its cleanup shielded from cancellation, so it always finishes.
//!
//! ```text
//! cargo run --all-features --example signals -- --port 1234
//! kill -HUP <pid>; kill -TERM <pid>          # or Ctrl+C
//! cargo run --all-features --example signals -- --self-test
//! ```
//!
//! `--self-test` starts this program as a child process (through `anyio::process`), talks to
//! it, sends it SIGHUP and then SIGTERM (and, in a second run, SIGINT), and fails unless it
//! answered, reloaded, and stopped cleanly with exit status 0. CI runs it on every backend.

mod support;

use std::time::Duration;

use anyio::{
    cancel::CancelScope,
    fail_after,
    net::tcp::TcpListenerOptions,
    net::{connect_tcp, create_tcp_listener, ListenerExt, LocalPort, TcpStream},
    process::{open_process, ProcessOptions, Stdio},
    signal::{open_signal_receiver, Signal},
    streams::{AsyncResource, ByteReceiveStream, StreamError, TypedAttributeExt},
    task_group, AnyError,
};
use support::{Args, Report};

const USAGE: &str = "signals [--port N (default 1234; 0: any free port)] [--self-test] [--backend NAME]";

/// Echoes what a client sends until it closes its side.
async fn echo(client: TcpStream) -> Result<(), AnyError> {
    loop {
        match client.receive(65536).await {
            Ok(data) => client.send(&data).await?,
            Err(StreamError::EndOfStream) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

async fn serve(port: u16) -> Result<(), AnyError> {
    // Subscribe before announcing the port: from then on a SIGTERM is ours to handle.
    let mut signals = open_signal_receiver(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP])?;
    let listener = create_tcp_listener(TcpListenerOptions::new().local_port(port)).await?;
    println!("listening on port {}", listener.extra::<LocalPort>()?);
    // Shared by the serving task and the cleanup below.
    let listener = std::sync::Arc::new(listener);
    let serving = listener.clone();
    let stopped_by = task_group(|tg| async move {
        let stop = tg.cancel_scope();
        // The server's work: every connection in a task of its own, until cancelled.
        tg.start_soon(async move {
            let listener = serving;
            listener.serve(echo).await?;
            Ok(())
        });
        loop {
            match signals.receive().await? {
                Signal::SIGHUP => println!("SIGHUP: reloading the configuration"),
                sig => {
                    println!("{sig}: shutting down");
                    stop.cancel();
                    return Ok(sig);
                }
            }
        }
    })
    .await?;
    // Cleanup runs shielded: a second signal, or a cancelled caller, cannot cut it short.
    CancelScope::shielded()
        .run(async {
            listener.aclose().await?;
            println!(
                "listener closed after {}; stopped cleanly",
                stopped_by.map_or("?".into(), |s| s.to_string())
            );
            Ok::<_, AnyError>(())
        })
        .await?;
    Ok(())
}

/// Reads lines from the child's stdout until one starts with `prefix`; returns it.
async fn expect_line(
    out: &impl ByteReceiveStream,
    pending: &mut String,
    prefix: &str,
) -> Result<String, AnyError> {
    loop {
        while let Some(i) = pending.find('\n') {
            let line: String = pending.drain(..=i).collect();
            let line = line.trim_end().to_owned();
            println!("[server] {line}");
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
        match out.receive(4096).await {
            Ok(chunk) => pending.push_str(&String::from_utf8_lossy(&chunk)),
            Err(StreamError::EndOfStream) => {
                return Err(AnyError::msg(format!("the server exited before saying {prefix:?}")))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One self-test round: start the server, echo through it, SIGHUP, then `stop`.
async fn self_test_round(stop: Signal) -> Result<(), AnyError> {
    let exe = std::env::current_exe()?;
    let server = open_process(
        [exe.as_os_str(), "--port".as_ref(), "0".as_ref()],
        ProcessOptions::new().stdin(Stdio::Null).stderr(Stdio::Inherit),
    )
    .await?;
    let out = server.stdout().unwrap();
    let mut pending = String::new();
    let result = fail_after(Duration::from_secs(10), async {
        let line = expect_line(out, &mut pending, "listening on port ").await?;
        let port: u16 = line["listening on port ".len()..].parse().map_err(AnyError::other)?;
        let client = connect_tcp("127.0.0.1", port).await?;
        client.send(b"ping").await?;
        assert_eq!(client.receive(16).await?, b"ping", "echo");
        server.send_signal(Signal::SIGHUP)?;
        expect_line(out, &mut pending, "SIGHUP: reloading").await?;
        // The connection is still open: shutdown must end its task too.
        server.send_signal(stop)?;
        expect_line(out, &mut pending, &format!("{stop}: shutting down")).await?;
        expect_line(out, &mut pending, "listener closed").await?;
        match server.wait().await? {
            0 => Ok(()),
            code => Err(AnyError::msg(format!("the server exited with {code}, not 0"))),
        }
    })
    .await;
    if result.is_err() {
        let _ = server.kill();
        let _ = CancelScope::shielded().run(server.wait()).await;
    }
    result
}

fn main() -> Result<(), Report> {
    let mut args = Args::parse(USAGE)?;
    let port = args.value("--port", 1234)?;
    let self_test = args.flag("--self-test");
    args.finish()?;
    if self_test {
        for stop in [Signal::SIGTERM, Signal::SIGINT] {
            anyio::run(self_test_round(stop))?;
        }
        println!("self-test passed: echo, SIGHUP reload, clean stop on SIGTERM and on SIGINT");
        return Ok(());
    }
    Ok(anyio::run(serve(port))?)
}
