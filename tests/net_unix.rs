//! Unix domain sockets on every backend: streams, listeners (stale files, abstract names,
//! permissions), descriptor passing, datagrams, and the bad-input errors.

mod support;

use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyio::{
    net::unix::{create_unix_listener_with, UnixAddress, UnixListenerOptions},
    net::{
        connect_unix, create_connected_unix_datagram_socket, create_unix_datagram_socket,
        create_unix_listener, SocketError, UnixStream,
    },
    streams::{StreamError, TypedAttributeExt},
};
use support::guarded_ok;

/// A fresh directory for one test's socket files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("anyio-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[anyio::test]
async fn a_unix_client_and_server_exchange_bytes_and_half_close() {
    let dir = TempDir::new("unix-echo");
    guarded_ok(async {
        let path = dir.path("s.sock");
        let listener = create_unix_listener(&path).await?;
        let client = connect_unix(&path).await?;
        let server = listener.accept().await?;
        client.send(b"hello").await?;
        client.send_eof().await?;
        assert_eq!(server.receive(100).await?, b"hello");
        assert!(matches!(server.receive(100).await, Err(StreamError::EndOfStream)));
        server.send(b"bye").await?;
        assert_eq!(client.receive(100).await?, b"bye");
        assert_eq!(listener.local_addr()?, UnixAddress::Pathname(path.clone()));
        assert_eq!(server.local_addr()?, UnixAddress::Pathname(path.clone()));
        assert_eq!(client.peer_addr()?, UnixAddress::Pathname(path));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_stale_socket_file_is_replaced_but_a_regular_file_is_not() {
    let dir = TempDir::new("unix-stale");
    guarded_ok(async {
        let path = dir.path("s.sock");
        drop(create_unix_listener(&path).await?);
        assert!(path.exists(), "closing a listener leaves its file, as in AnyIO");
        let again = create_unix_listener(&path).await?;
        let c = connect_unix(&path).await?;
        drop((again.accept().await?, c));

        let file = dir.path("regular");
        std::fs::write(&file, b"keep me")?;
        let err = create_unix_listener(&file).await.unwrap_err();
        assert!(matches!(err, SocketError::Bind { .. }), "{err}");
        assert_eq!(std::fs::read(&file)?, b"keep me", "a non-socket file is never removed");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_path_too_long_for_a_socket_address_is_an_invalid_argument_naming_the_limit() {
    guarded_ok(async {
        let long = format!("/tmp/{}", "x".repeat(200));
        let err = create_unix_listener(&long).await.unwrap_err();
        assert!(matches!(err, SocketError::InvalidArgument(_)), "{err}");
        assert!(err.to_string().contains("limit"), "{err}");
        let err = connect_unix(&long).await.unwrap_err();
        assert!(matches!(err, SocketError::InvalidArgument(_)), "{err}");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn connecting_to_a_missing_socket_names_the_path() {
    let dir = TempDir::new("unix-missing");
    guarded_ok(async {
        let path = dir.path("nobody.sock");
        let err = connect_unix(&path).await.unwrap_err();
        assert!(err.to_string().contains("nobody.sock"), "{err}");
        Ok(())
    })
    .await;
}

#[cfg(target_os = "linux")]
#[anyio::test]
async fn abstract_namespace_sockets_need_no_file() {
    guarded_ok(async {
        let name = format!("\0anyio-test-{}-{:?}", std::process::id(), std::thread::current().id());
        let listener = create_unix_listener(&name).await?;
        let client = connect_unix(&name).await?;
        let server = listener.accept().await?;
        client.send(b"abstract").await?;
        assert_eq!(server.receive(100).await?, b"abstract");
        assert_eq!(listener.local_addr()?, UnixAddress::Abstract(name.as_bytes()[1..].to_vec()));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn the_mode_option_sets_the_socket_file_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("unix-mode");
    guarded_ok(async {
        let path = dir.path("m.sock");
        let _l = create_unix_listener_with(&path, UnixListenerOptions::new().mode(0o600)).await?;
        assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn file_descriptors_pass_between_processes_sockets_and_stay_usable() {
    guarded_ok(async {
        let (a, b) = UnixStream::pair()?;
        let mut file = tempfile_with(b"passed along")?;
        a.send_fds(b"fd", &[file.as_fd(), file.as_fd()]).await?;
        let (msg, fds) = b.receive_fds(10, 4).await?;
        assert_eq!(msg, b"fd");
        assert_eq!(fds.len(), 2);
        let mut received = std::fs::File::from(fds.into_iter().next().unwrap());
        received.rewind()?;
        let mut text = String::new();
        received.read_to_string(&mut text)?;
        assert_eq!(text, "passed along");
        file.write_all(b"!")?; // the sender's copy stays open
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn receive_fds_takes_at_most_maxfds_and_marks_them_close_on_exec() {
    guarded_ok(async {
        let (a, b) = UnixStream::pair()?;
        let file = tempfile_with(b"")?;
        a.send_fds(b"fds", &[file.as_fd(), file.as_fd(), file.as_fd()]).await?;
        let (msg, fds) = b.receive_fds(10, 1).await?;
        assert_eq!(msg, b"fds");
        assert_eq!(fds.len(), 1, "no more than maxfds descriptors");
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: F_GETFD on a descriptor this test owns reads its flags and changes nothing.
            let flags = unsafe { libc::fcntl(fds[0].as_raw_fd(), libc::F_GETFD) };
            assert!(flags >= 0 && flags & libc::FD_CLOEXEC != 0, "received descriptors are close-on-exec");
        }
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn send_fds_and_receive_fds_reject_empty_arguments() {
    guarded_ok(async {
        let (a, b) = UnixStream::pair()?;
        let file = tempfile_with(b"")?;
        assert!(matches!(a.send_fds(b"", &[file.as_fd()]).await, Err(StreamError::InvalidArgument(_))));
        assert!(matches!(a.send_fds(b"x", &[]).await, Err(StreamError::InvalidArgument(_))));
        assert!(matches!(b.receive_fds(0, 1).await, Err(StreamError::InvalidArgument(_))));
        assert!(matches!(b.receive_fds(1, 0).await, Err(StreamError::InvalidArgument(_))));
        a.aclose().await?;
        assert!(matches!(b.receive_fds(10, 1).await, Err(StreamError::EndOfStream)));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn unix_datagrams_carry_their_senders_address() {
    let dir = TempDir::new("unix-dgram");
    guarded_ok(async {
        let server_path = dir.path("server.sock");
        let client_path = dir.path("client.sock");
        let server = create_unix_datagram_socket(Some(&server_path)).await?;
        let client = create_unix_datagram_socket(Some(&client_path)).await?;
        client.send_to(b"ping", &server_path).await?;
        let (data, from) = server.receive().await?;
        assert_eq!(data, b"ping");
        assert_eq!(from, UnixAddress::Pathname(client_path.clone()));
        server.send_to(b"pong", &client_path).await?;
        assert_eq!(client.receive().await?.0, b"pong");

        let connected = create_connected_unix_datagram_socket(&server_path, None).await?;
        connected.send(b"direct").await?;
        assert_eq!(server.receive().await?.0, b"direct");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn unix_stream_attributes_report_the_family_and_the_raw_socket() {
    guarded_ok(async {
        let (a, _b) = UnixStream::pair()?;
        assert_eq!(a.extra::<anyio::net::SocketFamily>()?, anyio::net::AddressFamily::Unix);
        assert!(a.extra::<anyio::net::RawSocket>()? >= 0);
        assert_eq!(
            a.extra::<anyio::net::RemoteAddress>()?,
            anyio::net::SocketAddress::Unix(UnixAddress::Unnamed)
        );
        assert!(a.extra::<anyio::net::LocalPort>().is_err(), "a Unix socket has no port");
        Ok(())
    })
    .await;
}

fn tempfile_with(contents: &[u8]) -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!(
        "anyio-fd-{}-{:?}-{}",
        std::process::id(),
        std::thread::current().id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    std::fs::remove_file(&path)?;
    f.write_all(contents)?;
    Ok(f)
}
