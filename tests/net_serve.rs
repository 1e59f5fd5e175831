//! Serving survives its clients (issue 12, section 1), on every backend: clients that reset
//! right after connecting, reset while the server sends, or disconnect without reading their
//! echo end their own connection and nothing else; the error hook hears of each with the
//! peer's address; accept failures are skipped or waited out; AnyIO's fail-together rule is
//! still there by name.

mod support;

use std::any::{Any, TypeId};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyio::{
    async_trait,
    net::tcp::TcpListenerOptions,
    net::{
        connect_tcp, connect_unix, create_tcp_listener, create_unix_listener, Listener, ListenerExt,
        LocalPort, RemoteAddress, ServeError, ServeOptions, SocketAddress, TcpListener, TcpStream,
        UnixStream,
    },
    sleep,
    streams::{AsyncResource, StreamError, TypedAttributeExt, TypedAttributeProvider},
    task::GroupError,
    task_group, AnyError, CancelScope, TaskGroup,
};
use support::{guarded_ok, SHORT};

async fn group(body: impl AsyncFnOnce(TaskGroup<AnyError>) -> Result<(), AnyError>) -> Result<(), AnyError> {
    task_group(|tg: TaskGroup<AnyError>| body(tg)).await.map_err(AnyError::other)?;
    Ok(())
}

/// What the error hook heard: the peer and the error's message, per failure.
type Heard = Arc<Mutex<Vec<(Option<SocketAddress>, String)>>>;

fn recording_hook<E: std::fmt::Display + 'static>(heard: &Heard) -> ServeOptions<E> {
    let heard = heard.clone();
    ServeOptions::new().on_error(move |e: ServeError<E>| match e {
        ServeError::Handler { peer, error } => heard.lock().unwrap().push((peer, error.to_string())),
        other => heard.lock().unwrap().push((None, other.to_string())),
    })
}

/// Waits until the hook has heard of a failure of `peer`'s connection.
async fn heard_from(heard: &Heard, peer: SocketAddr) -> Result<String, AnyError> {
    loop {
        if let Some((_, e)) =
            heard.lock().unwrap().iter().find(|(p, _)| *p == Some(SocketAddress::Inet(peer)))
        {
            return Ok(e.clone());
        }
        sleep(Duration::from_millis(2)).await?;
    }
}

/// An echo handler that reports every failure but the end of the stream, as a careful server
/// would, so that the hook hears of each.
async fn echo(client: TcpStream) -> Result<(), AnyError> {
    let _peer = client.extra::<RemoteAddress>()?;
    loop {
        match client.receive(65536).await {
            Ok(data) => client.send(&data).await?,
            Err(StreamError::EndOfStream) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A well-behaved client: its message comes back whole.
async fn echo_ok(client: &TcpStream, message: &[u8]) -> Result<(), AnyError> {
    client.send(message).await?;
    let mut got = Vec::new();
    while got.len() < message.len() {
        got.extend(client.receive(65536).await?);
    }
    assert_eq!(got, message);
    Ok(())
}

/// A std client whose close resets the connection (`SO_LINGER` 0): the RST a crashed or
/// impatient client sends.
fn resetting_client(port: u16) -> io::Result<std::net::TcpStream> {
    let c = std::net::TcpStream::connect(("127.0.0.1", port))?;
    socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO))?;
    Ok(c)
}

/// Resets right after connecting; returns its address.
fn reset_right_after_connecting(port: u16) -> io::Result<SocketAddr> {
    let c = resetting_client(port)?;
    let address = c.local_addr()?;
    drop(c);
    Ok(address)
}

/// Sends far more than it reads (nothing), until the server is blocked sending its echo,
/// then resets.
async fn reset_while_the_server_sends(tg: &TaskGroup<AnyError>, port: u16) -> Result<SocketAddr, AnyError> {
    let c = Arc::new(TcpStream::from_std(resetting_client(port)?)?);
    let address = c.local_addr()?;
    let sender = c.clone();
    tg.spawn(async move {
        // Ends with Closed when the stream is closed under it.
        let _ = sender.send(&vec![7u8; 16 << 20]).await;
        Ok(())
    });
    sleep(SHORT * 10).await?;
    c.aclose().await?;
    Ok(address)
}

/// Sends a message, lets the echo arrive, and closes without reading it (the kernel answers
/// unread data with a reset).
async fn disconnect_without_reading(port: u16) -> Result<SocketAddr, AnyError> {
    let c = connect_tcp("127.0.0.1", port).await?;
    let address = c.local_addr()?;
    c.send(&vec![1u8; 64 << 10]).await?;
    sleep(SHORT * 5).await?;
    c.aclose().await?;
    Ok(address)
}

#[anyio::test]
async fn clients_that_reset_or_leave_end_only_their_own_connection_and_the_hook_hears_each() {
    guarded_ok(async {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = listener.extra::<LocalPort>()?;
        let heard: Heard = Arc::default();
        let scope = CancelScope::new();
        let (scope2, options) = (scope.clone(), recording_hook(&heard));
        group(async move |tg| {
            let server = tg.spawn(async move { Ok(scope2.run(listener.serve_with(options, echo)).await) });
            // A client that stays connected through all of it.
            let steady = connect_tcp("127.0.0.1", port).await?;
            echo_ok(&steady, b"before").await?;

            let a = reset_right_after_connecting(port)?;
            let b = reset_while_the_server_sends(&tg, port).await?;
            let c = disconnect_without_reading(port).await?;
            for (what, peer) in
                [("reset after connecting", a), ("reset while sending", b), ("left unread", c)]
            {
                let e = heard_from(&heard, peer).await?;
                assert!(!e.is_empty(), "{what}: {e}");
                echo_ok(&steady, what.as_bytes()).await?;
            }
            // A new client is served too.
            let late = connect_tcp("127.0.0.1", port).await?;
            echo_ok(&late, b"after").await?;
            echo_ok(&steady, b"still here").await?;
            assert!(
                heard.lock().unwrap().iter().all(|(peer, _)| peer.is_some()),
                "every failure names its peer: {:?}",
                heard.lock().unwrap()
            );
            scope.cancel();
            let r = server.await?;
            assert!(matches!(r, Ok(None)), "serve ends only with its scope's cancellation: {r:?}");
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn the_natural_handler_of_serves_documentation_survives_every_kind_of_reset() {
    // `serve`'s own example, with the default hook (which prints to stderr).
    guarded_ok(async {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = listener.extra::<LocalPort>()?;
        let scope = CancelScope::new();
        let scope2 = scope.clone();
        group(async move |tg| {
            let server = tg.spawn(async move {
                Ok(scope2
                    .run(listener.serve(|client| async move {
                        println!("{} connected", client.extra::<RemoteAddress>()?);
                        while let Ok(data) = client.receive(65536).await {
                            client.send(&data).await?;
                        }
                        Ok::<_, AnyError>(())
                    }))
                    .await)
            });
            for round in 0..3 {
                reset_right_after_connecting(port)?;
                reset_while_the_server_sends(&tg, port).await?;
                disconnect_without_reading(port).await?;
                let c = connect_tcp("127.0.0.1", port).await?;
                echo_ok(&c, format!("round {round}").as_bytes()).await?;
            }
            scope.cancel();
            let r = server.await?;
            assert!(matches!(r, Ok(None)), "serve ends only with its scope's cancellation: {r:?}");
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn an_accepted_connection_knows_its_peer_even_after_the_peer_reset_it() {
    guarded_ok(async {
        let listener = TcpListener::bind(loopback()).await?;
        let peer = reset_right_after_connecting(listener.local_addr()?.port())?;
        // Let the reset arrive before the connection is accepted: getpeername then fails.
        sleep(SHORT).await?;
        let server = listener.accept().await?;
        assert_eq!(server.peer_addr()?, peer);
        assert_eq!(server.extra::<RemoteAddress>()?, SocketAddress::Inet(peer));
        assert!(matches!(server.receive(10).await, Err(StreamError::Broken(_))));
        server.aclose().await?;
        assert!(matches!(server.peer_addr(), Err(StreamError::Closed)), "closed is still closed");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_panicking_handler_ends_only_its_connection_and_the_hook_hears_it() {
    guarded_ok(async {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = listener.extra::<LocalPort>()?;
        let panics: Heard = Arc::default();
        let p2 = panics.clone();
        let options = ServeOptions::new().on_error(move |e: ServeError<AnyError>| {
            if let ServeError::HandlerPanicked { peer, message } = e {
                p2.lock().unwrap().push((peer, message));
            }
        });
        group(async move |tg| {
            tg.spawn(async move {
                listener
                    .serve_with(options, |client: TcpStream| async move {
                        let first = client.receive(1).await?;
                        if first == b"p" {
                            panic!("handler bug");
                        }
                        echo(client).await
                    })
                    .await?;
                Ok(())
            });
            let crasher = connect_tcp("127.0.0.1", port).await?;
            let crasher_addr = crasher.local_addr()?;
            crasher.send(b"p").await?;
            loop {
                if let Some((peer, message)) = panics.lock().unwrap().first() {
                    assert_eq!(*peer, Some(SocketAddress::Inet(crasher_addr)));
                    assert_eq!(message, "handler bug");
                    break;
                }
                sleep(Duration::from_millis(2)).await?;
            }
            // The server still serves.
            let ok = connect_tcp("127.0.0.1", port).await?;
            ok.send(b"e").await?;
            echo_ok(&ok, b"still here").await?;
            tg.cancel();
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn fail_fast_keeps_anyios_rule_a_failing_handler_cancels_the_others_and_ends_serve() {
    guarded_ok(async {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = listener.extra::<LocalPort>()?;
        let cancelled = Arc::new(AtomicUsize::new(0));
        let c2 = cancelled.clone();
        let heard: Heard = Arc::default();
        let options = recording_hook(&heard).fail_fast(true);
        group(async move |tg| {
            let server = tg.spawn(async move {
                Ok(listener
                    .serve_with(options, move |client: TcpStream| {
                        let cancelled = c2.clone();
                        async move {
                            match client.receive(1).await {
                                Err(StreamError::Cancelled(c)) => {
                                    cancelled.fetch_add(1, Ordering::SeqCst);
                                    Err(StreamError::Cancelled(c).into())
                                }
                                Ok(_) => Err(AnyError::msg("this client said something")),
                                Err(e) => Err(e.into()),
                            }
                        }
                    })
                    .await)
            });
            let quiet = connect_tcp("127.0.0.1", port).await?;
            sleep(SHORT).await?;
            let talker = connect_tcp("127.0.0.1", port).await?;
            talker.send(b"x").await?;
            match server.await? {
                Err(GroupError::Failed(errors)) => {
                    assert_eq!(errors.len(), 1);
                    assert_eq!(errors[0].to_string(), "this client said something");
                }
                other => panic!("expected the handler's failure, got {other:?}"),
            }
            assert_eq!(cancelled.load(Ordering::SeqCst), 1, "the quiet client's handler was cancelled");
            assert!(heard.lock().unwrap().is_empty(), "fail-fast reports nothing to the hook");
            drop((quiet, talker));
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn serve_in_reports_a_handlers_error_to_the_hook_and_leaves_the_group_running() {
    guarded_ok(async {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = listener.extra::<LocalPort>()?;
        let heard: Heard = Arc::default();
        let options = recording_hook(&heard);
        let h2 = heard.clone();
        let r = task_group(|tg: TaskGroup<AnyError>| async move {
            let tg2 = tg.clone();
            tg.spawn(async move {
                listener
                    .serve_in_with(&tg2, options, |_client: TcpStream| async {
                        Err::<(), _>(AnyError::msg("handler failed"))
                    })
                    .await
            });
            let c = connect_tcp("127.0.0.1", port).await?;
            let peer = c.local_addr()?;
            assert_eq!(heard_from(&h2, peer).await?, "handler failed");
            // A second connection: the group was not cancelled by the first failure.
            let c2 = connect_tcp("127.0.0.1", port).await?;
            heard_from(&h2, c2.local_addr()?).await?;
            tg.cancel();
            Ok(())
        })
        .await;
        assert!(r.is_ok(), "the group did not fail: {r:?}");
        assert_eq!(heard.lock().unwrap().len(), 2);
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn cancelling_serve_is_no_failure_of_its_handlers() {
    guarded_ok(async {
        let listener = create_tcp_listener(TcpListenerOptions::new().local_host("127.0.0.1")).await?;
        let port = listener.extra::<LocalPort>()?;
        let heard: Heard = Arc::default();
        let scope = CancelScope::new();
        let (scope2, options) = (scope.clone(), recording_hook(&heard));
        group(async move |tg| {
            let server = tg.spawn(async move { Ok(scope2.run(listener.serve_with(options, echo)).await) });
            let clients = [connect_tcp("127.0.0.1", port).await?, connect_tcp("127.0.0.1", port).await?];
            for c in &clients {
                echo_ok(c, b"hi").await?;
            }
            scope.cancel();
            assert!(matches!(server.await?, Ok(None)));
            assert!(heard.lock().unwrap().is_empty(), "{:?}", heard.lock().unwrap());
            Ok(())
        })
        .await
    })
    .await;
}

/// A listener whose accept fails as scripted before it accepts for real.
struct Scripted {
    inner: TcpListener,
    failures: Mutex<Vec<i32>>,
    accept_calls: AtomicUsize,
}

impl TypedAttributeProvider for Scripted {
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        self.inner.extra_attribute(key)
    }
}

#[async_trait]
impl AsyncResource for Scripted {
    async fn aclose(&self) -> Result<(), StreamError> {
        self.inner.aclose().await
    }
}

#[async_trait]
impl Listener for Scripted {
    type Stream = TcpStream;
    async fn accept(&self) -> Result<TcpStream, StreamError> {
        self.accept_calls.fetch_add(1, Ordering::SeqCst);
        let next = self.failures.lock().unwrap().pop();
        match next {
            Some(code) => Err(StreamError::Io(io::Error::from_raw_os_error(code))),
            None => self.inner.accept().await,
        }
    }
}

#[anyio::test]
async fn accept_skips_a_connections_own_failure_and_waits_out_running_out_of_descriptors() {
    guarded_ok(async {
        let inner = TcpListener::bind(loopback()).await?;
        let port = inner.local_addr()?.port();
        // Popped from the end: an aborted connection (skipped), three EMFILEs in a row (10 + 20
        // + 40 ms of pauses), a reset (skipped) and ENFILE (80 ms): one episode, since no
        // accept succeeded in between, so one report.
        let failures = vec![
            libc::ENFILE,
            libc::ECONNRESET,
            libc::EMFILE,
            libc::EMFILE,
            libc::EMFILE,
            libc::ECONNABORTED,
        ];
        let listener = Scripted { inner, failures: Mutex::new(failures), accept_calls: AtomicUsize::new(0) };
        let heard: Heard = Arc::default();
        let options = recording_hook(&heard);
        let started = std::time::Instant::now();
        let scope = CancelScope::new();
        let scope2 = scope.clone();
        let listener = Arc::new(listener);
        let l2 = listener.clone();
        group(async move |tg| {
            let server = tg.spawn(async move { Ok(scope2.run(l2.serve_with(options, echo)).await) });
            let c = connect_tcp("127.0.0.1", port).await?;
            echo_ok(&c, b"served after the failures").await?;
            assert!(started.elapsed() >= Duration::from_millis(150), "the pauses grew: 10 + 20 + 40 + 80 ms");
            // Seven to get here, and perhaps the next one already waiting.
            assert!(listener.accept_calls.load(Ordering::SeqCst) >= 7);
            scope.cancel();
            assert!(matches!(server.await?, Ok(None)));
            let heard = heard.lock().unwrap();
            assert_eq!(heard.len(), 1, "one report for the run of EMFILEs, none for the skipped: {heard:?}");
            assert!(heard[0].1.contains("retrying in 10ms"), "{heard:?}");
            Ok(())
        })
        .await
    })
    .await;
}

#[anyio::test]
async fn a_closed_listener_still_ends_serve_with_closed() {
    guarded_ok(async {
        let listener = Arc::new(TcpListener::bind(loopback()).await?);
        listener.aclose().await?;
        let r = listener.serve(|_c: TcpStream| async { Ok::<_, StreamError>(()) }).await;
        assert!(matches!(&r, Err(GroupError::Failed(e)) if matches!(e[..], [StreamError::Closed])), "{r:?}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_unix_server_survives_clients_that_leave_without_reading() {
    guarded_ok(async {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "anyio-serve-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let listener = create_unix_listener(&path).await?;
        let failures = Arc::new(Mutex::new(Vec::new()));
        let f2 = failures.clone();
        let options = ServeOptions::new().on_error(move |e: ServeError<AnyError>| {
            if let ServeError::Handler { peer, .. } = e {
                f2.lock().unwrap().push(peer);
            }
        });
        let scope = CancelScope::new();
        let scope2 = scope.clone();
        let p2 = path.clone();
        group(async move |tg| {
            let server = tg.spawn(async move {
                Ok(scope2
                    .run(listener.serve_with(options, |client: UnixStream| async move {
                        client.extra::<RemoteAddress>()?;
                        while let Ok(data) = client.receive(65536).await {
                            client.send(&data).await?;
                        }
                        Ok::<_, AnyError>(())
                    }))
                    .await)
            });
            let steady = connect_unix(&p2).await?;
            for round in 0..3 {
                // Sends much more than fits in the socket buffers and closes unread: the
                // server's send fails with a broken pipe or a reset.
                let rude = connect_unix(&p2).await?;
                let _ = anyio::move_on_after(SHORT * 5, rude.send(&vec![3u8; 4 << 20])).await;
                rude.aclose().await?;
                let message = format!("round {round}");
                steady.send(message.as_bytes()).await?;
                let mut got = Vec::new();
                while got.len() < message.len() {
                    got.extend(steady.receive(100).await?);
                }
                assert_eq!(got, message.as_bytes());
            }
            while failures.lock().unwrap().len() < 3 {
                sleep(Duration::from_millis(2)).await?;
            }
            assert!(failures.lock().unwrap().iter().all(Option::is_some), "the Unix peer is named (unnamed)");
            scope.cancel();
            assert!(matches!(server.await?, Ok(None)));
            Ok(())
        })
        .await?;
        let _ = std::fs::remove_file(&path);
        Ok(())
    })
    .await;
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
