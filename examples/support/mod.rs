//! Command-line plumbing shared by the networking examples: flags, the choice of backend,
//! readable errors, and starting a server example as a child process for a client's
//! `--spawn-server` self-test, and `--max-connections`. None of it is anyio's API; the
//! examples themselves show that.
#![allow(dead_code)] // each example uses its own subset

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyio::net::ListenerExt;
use anyio::streams::TypedAttributeProvider;
use anyio::{AnyError, Backend, CancelScope};

/// Runs `serve` until it ends by itself or the process gets SIGINT (Ctrl+C) or SIGTERM: then
/// `serve` is cancelled, so its tasks unwind through their cleanup (the servers close their
/// listeners, the Unix one removes its socket file), and this returns `Ok`, so the program
/// exits with 0 instead of being killed. `examples/signals.rs` shows the same at full length.
#[cfg(unix)]
pub(crate) async fn until_stopped(serve: impl Future<Output = Result<(), AnyError>>) -> Result<(), AnyError> {
    use anyio::signal::{open_signal_receiver, Signal};
    let mut signals = open_signal_receiver(&[Signal::SIGINT, Signal::SIGTERM])?;
    let stopped = anyio::task_group(|tg| async move {
        let stop = tg.cancel_scope();
        tg.start_soon(async move {
            let sig = signals.receive().await?;
            println!("{sig}: stopping");
            stop.cancel();
            Ok(())
        });
        let r = serve.await;
        // Served to the end (--once, --max-connections): stop waiting for signals.
        tg.cancel();
        r
    })
    .await?;
    if stopped.is_none() {
        println!("stopped cleanly");
    }
    Ok(())
}

/// Serves `listener`, each connection handled by `handler` in a task of its own (a failing
/// one is reported and ends alone). With `max` (`--max-connections N`), stops cleanly once
/// `max` connections have ended, well or not; without, serves until cancelled.
pub(crate) async fn serve_up_to<L, H, Fut>(
    listener: &L,
    max: Option<usize>,
    mut handler: H,
) -> Result<(), AnyError>
where
    L: ListenerExt + Sync,
    L::Stream: TypedAttributeProvider,
    H: FnMut(L::Stream) -> Fut + Send,
    Fut: Future<Output = Result<(), AnyError>> + Send + 'static,
{
    let Some(max) = max else {
        listener.serve(handler).await?;
        return Ok(());
    };
    let stop = CancelScope::new();
    let ended = Arc::new(AtomicUsize::new(0));
    let stopper = stop.clone();
    stop.run(listener.serve(move |client| {
        let (stop, ended) = (stopper.clone(), ended.clone());
        let connection = handler(client);
        async move {
            let r = connection.await;
            if ended.fetch_add(1, Ordering::SeqCst) + 1 == max {
                println!("served {max} connection(s): stopping");
                stop.cancel();
            }
            r
        }
    }))
    .await?;
    Ok(())
}

/// The flags of one program, removed one by one as the program reads them.
pub(crate) struct Args {
    args: Vec<String>,
    usage: &'static str,
}

impl Args {
    /// Reads the command line. `--help` prints `usage` and exits. `--backend NAME` goes into
    /// `ANYIO_BACKEND`, where `anyio::run` finds it (and so do child processes); the backend
    /// is checked here so that `anyio::run` cannot fail on it later.
    pub(crate) fn parse(usage: &'static str) -> Result<Args, Report> {
        let mut args = Args { args: std::env::args().skip(1).collect(), usage };
        if args.flag("--help") || args.flag("-h") {
            println!("usage: {usage}");
            std::process::exit(0);
        }
        if let Some(name) = args.take("--backend")? {
            std::env::set_var("ANYIO_BACKEND", name);
        }
        Backend::from_env().map_err(|e| args.error(e))?;
        Ok(args)
    }

    /// Removes `name` and says whether it was given.
    pub(crate) fn flag(&mut self, name: &str) -> bool {
        let before = self.args.len();
        self.args.retain(|a| a != name);
        self.args.len() != before
    }

    /// Removes `name VALUE` (or `name=VALUE`) and parses the value.
    pub(crate) fn option<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, Report>
    where
        T::Err: fmt::Display,
    {
        match self.take(name)? {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|e| self.error(format!("{name} {v:?}: {e}"))),
        }
    }

    /// [`option`](Self::option), or `default` when absent.
    pub(crate) fn value<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, Report>
    where
        T::Err: fmt::Display,
    {
        Ok(self.option(name)?.unwrap_or(default))
    }

    /// The first argument that is not a flag (`--name`), taken out.
    pub(crate) fn positional(&mut self) -> Option<String> {
        let pos = self.args.iter().position(|a| !a.starts_with("--"))?;
        Some(self.args.remove(pos))
    }

    /// Fails on anything left over (a misspelt flag).
    pub(crate) fn finish(self) -> Result<(), Report> {
        match self.args.first() {
            None => Ok(()),
            Some(a) => Err(self.error(format!("unexpected argument {a:?}"))),
        }
    }

    fn take(&mut self, name: &str) -> Result<Option<String>, Report> {
        let prefix = format!("{name}=");
        if let Some(i) = self.args.iter().position(|a| a == name) {
            if i + 1 == self.args.len() {
                return Err(self.error(format!("{name} needs a value")));
            }
            self.args.remove(i);
            return Ok(Some(self.args.remove(i)));
        }
        Ok(self
            .args
            .iter()
            .position(|a| a.starts_with(&prefix))
            .map(|i| self.args.remove(i)[prefix.len()..].into()))
    }

    fn error(&self, message: impl fmt::Display) -> Report {
        Report(AnyError::msg(format!("{message}\nusage: {}", self.usage)))
    }
}

/// `main`'s error: any anyio error, printed with its message rather than as a `Debug` dump.
pub(crate) struct Report(AnyError);

impl<E: Into<AnyError>> From<E> for Report {
    fn from(e: E) -> Self {
        Report(e.into())
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A server example running as a child process, for a client's `--spawn-server` self-test.
/// Its output is shown prefixed with `[server]`. Dropping it kills the process.
pub(crate) struct Server {
    child: Child,
    address: String,
    output: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts the example program `name` with `args` and waits for its first line, which
    /// names the address it listens on: "listening on port 40123" or "listening on PATH". Started through
    /// `cargo run`, it first builds that example with this one's features and profile, so the
    /// server is never stale; otherwise it must already be built (`cargo build --examples`).
    pub(crate) fn spawn(name: &str, args: &[&str]) -> Result<Server, Report> {
        let exe: PathBuf = std::env::current_exe()?.with_file_name(name);
        if let Some(cargo) = std::env::var_os("CARGO") {
            let features: Vec<&str> = [
                ("default", cfg!(feature = "default")),
                ("tokio", cfg!(feature = "tokio")),
                ("smol", cfg!(feature = "smol")),
                ("async-std", cfg!(feature = "async-std")),
            ]
            .into_iter()
            .filter_map(|(f, on)| on.then_some(f))
            .collect();
            // `cargo run` gives us the variables cargo sets for a crate (CARGO_PKG_NAME,
            // CARGO_MANIFEST_DIR, ...). Some build scripts watch them (ring's, through
            // rerun-if-env-changed): passed on to the nested cargo, they would make those rerun,
            // and the next plain `cargo run` would rebuild everything above them once more.
            let mut command = Command::new(cargo);
            for (key, _) in std::env::vars_os() {
                let k = key.to_string_lossy();
                let set_for_crates = k.starts_with("CARGO_PKG_")
                    || k.starts_with("CARGO_MANIFEST_")
                    || ["CARGO_CRATE_NAME", "CARGO_BIN_NAME", "CARGO_PRIMARY_PACKAGE"].contains(&&*k);
                if set_for_crates {
                    command.env_remove(&key);
                }
            }
            let status = command
                .args(["build", "-q", "--example", name, "--no-default-features", "--features"])
                .arg(features.join(","))
                .args(["--manifest-path", concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")])
                .args(cfg!(not(debug_assertions)).then_some("--release"))
                .status()?;
            if !status.success() {
                return Err(AnyError::msg(format!("could not build the {name} example ({status})")).into());
            }
        } else if !exe.exists() {
            return Err(AnyError::msg(format!(
                "{} does not exist: build the examples first (cargo build --examples)",
                exe.display()
            ))
            .into());
        }
        let mut child = Command::new(&exe).args(args).stdout(Stdio::piped()).spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let Some(first) = lines.next().transpose()? else {
            let status = child.wait()?;
            return Err(
                AnyError::msg(format!("the {name} example exited ({status}) before listening")).into()
            );
        };
        println!("[server] {first}");
        let Some(address) = first.strip_prefix("listening on ").map(str::to_owned) else {
            return Err(AnyError::msg(format!(
                "the {name} example said {first:?}, not \"listening on ...\""
            ))
            .into());
        };
        let output =
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| println!("[server] {l}")));
        Ok(Server { child, address, output: Some(output) })
    }

    /// What the server announced it listens on: "port N", or a Unix socket's path.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The port the server announced ("listening on port N").
    pub(crate) fn port(&self) -> Result<u16, Report> {
        let port = self.address.strip_prefix("port ").and_then(|p| p.split(' ').next()?.parse().ok());
        port.ok_or_else(|| AnyError::msg(format!("the server announced no port: {:?}", self.address)).into())
    }

    /// Waits up to 10 s for the server to exit, and fails unless it exited successfully.
    pub(crate) fn wait(mut self) -> Result<(), Report> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match self.child.try_wait()? {
                Some(status) => break status,
                None if Instant::now() > deadline => {
                    return Err(AnyError::msg("the server did not exit within 10 s").into())
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        if let Some(output) = self.output.take() {
            let _ = output.join();
        }
        if !status.success() {
            return Err(AnyError::msg(format!("the server failed ({status})")).into());
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Misbehaving clients for the self-tests: the ways real clients leave that used to stop a
/// server. Each makes one connection; the server must end that connection and nothing else.
pub(crate) mod rude {
    use std::time::Duration;

    use anyio::{
        move_on_after,
        net::{connect_tcp, TcpStream},
        sleep, AnyError,
    };

    /// A connected client whose close sends a reset (`SO_LINGER` 0), as a crashed or
    /// impatient client's does.
    fn resetting(port: u16) -> Result<std::net::TcpStream, AnyError> {
        let c = std::net::TcpStream::connect(("127.0.0.1", port))?;
        socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO))?;
        Ok(c)
    }

    /// Connects to `127.0.0.1:port` three times and misbehaves each time: resets at once,
    /// resets while the server is sending (after sending far more than it reads), and leaves
    /// without reading its echo. Returns how many connections it made.
    pub(crate) async fn tcp_clients(port: u16) -> Result<usize, AnyError> {
        drop(resetting(port)?);
        println!("self-test: a client reset its connection right after connecting");
        let c = TcpStream::from_std(resetting(port)?)?;
        // Sends until both directions are full (the server blocks sending its echo), then resets.
        let _ = move_on_after(Duration::from_millis(100), c.send(&vec![b'x'; 16 << 20])).await?;
        c.aclose().await?;
        println!("self-test: a client reset its connection while the server was sending");
        let c = connect_tcp("127.0.0.1", port).await?;
        c.send(&vec![b'y'; 64 << 10]).await?;
        sleep(Duration::from_millis(50)).await?;
        // Unread data makes the kernel answer with a reset.
        c.aclose().await?;
        println!("self-test: a client left without reading its echo");
        Ok(3)
    }

    /// Connects to the TLS server at `127.0.0.1:port` four times and fails the handshake each
    /// time, in the ways a TLS server meets most: a client that leaves right after connecting,
    /// one that resets, one that speaks plain HTTP to it, and a TLS client that does not trust
    /// its certificate. Each must end that connection only, reported by the server's handshake
    /// hook. Returns how many connections it made.
    pub(crate) async fn tls_clients(port: u16) -> Result<usize, AnyError> {
        use std::sync::Arc;

        use anyio::streams::StreamError;
        use anyio::tls::{client_config_with_roots, connect_tls, rustls::RootCertStore, TlsError};

        connect_tcp("127.0.0.1", port).await?.aclose().await?;
        println!("self-test: a client left right after connecting");
        drop(resetting(port)?);
        println!("self-test: a client reset its connection right after connecting");

        let c = connect_tcp("127.0.0.1", port).await?;
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
        // The server must hang up on it at once (not wait for its handshake timeout): read
        // until it does. Whatever it sends first can only be a TLS alert.
        loop {
            match c.receive(4096).await {
                Ok(data) if data[0] == 0x15 => continue,
                Ok(data) => {
                    return Err(AnyError::msg(format!("the server answered plain HTTP with {data:?}")))
                }
                Err(StreamError::EndOfStream | StreamError::Broken(_)) => break,
                Err(e) => return Err(e.into()),
            }
        }
        c.aclose().await?;
        println!("self-test: a client sent plain HTTP and was disconnected");

        // A certificate of its own (named apart from the server's) as its only root: the
        // server's certificate is signed by nothing it trusts.
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(AnyError::other)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "a CA the server does not use");
        let key = rcgen::KeyPair::generate().map_err(AnyError::other)?;
        let other = params.self_signed(&key).map_err(AnyError::other)?;
        let mut roots = RootCertStore::empty();
        roots.add(other.der().clone()).map_err(AnyError::other)?;
        let config = Arc::new(client_config_with_roots(roots)?);
        match connect_tls("127.0.0.1", port, config).await {
            Err(TlsError::Handshake(e)) => println!("self-test: a client distrusted the certificate: {e}"),
            Err(e) => return Err(e.into()),
            Ok(_) => return Err(AnyError::msg("a client that trusts another certificate connected")),
        }
        Ok(4)
    }

    /// Connects to the Unix socket at `path` twice: leaves at once, and sends far more than
    /// it reads and leaves while the server is sending. Returns how many connections it made.
    pub(crate) async fn unix_clients(path: &std::path::Path) -> Result<usize, AnyError> {
        anyio::net::connect_unix(path).await?.aclose().await?;
        println!("self-test: a client left right after connecting");
        let c = anyio::net::connect_unix(path).await?;
        let lines = b"a line that nobody reads\n".repeat(1 << 16);
        let _ = move_on_after(Duration::from_millis(100), c.send(&lines)).await?;
        c.aclose().await?;
        println!("self-test: a client left while the server was sending");
        Ok(2)
    }
}
