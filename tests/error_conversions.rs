//! Every public error type of the `anyio` crate converts into `AnyError` with `?`, keeping its
//! message, and a cancellation stays a cancellation. The last test keeps the list complete: a
//! new error type re-exported by the facade must be added here.

use std::fmt::Display;
use std::rc::Rc;
use std::time::Duration;

use anyio::{
    error::{
        BrokenResourceError, BusyResourceError, ClosedResourceError, EndOfStream, TimeoutError, WouldBlock,
    },
    fail_after,
    lowlevel::checkpoint,
    streams::memory::{ReceiveError, SendError, TryReceiveError, TrySendError},
    streams::{StreamError, TypedAttributeLookupError},
    sync::{CapacityLimiterError, ResourceGuard, Semaphore, SemaphoreError},
    task::{GroupClosed, GroupError, JoinError, StartError},
    time::{seconds, sleep_forever, InvalidDuration},
    AnyError, Backend, CancelScope, Cancelled, RunError,
};

/// Converts `e` exactly as application code does: `?` in a function returning `AnyError`.
fn question_mark<E>(e: E) -> AnyError
where
    AnyError: From<E>,
{
    fn fails<E>(e: E) -> Result<(), AnyError>
    where
        AnyError: From<E>,
    {
        Err(e)?;
        Ok(())
    }
    fails(e).expect_err("an Err stays an Err")
}

/// `e` converts with its message intact and is not mistaken for a cancellation.
#[track_caller]
fn converts<E: Display>(e: E)
where
    AnyError: From<E>,
{
    let message = e.to_string();
    let any = question_mark(e);
    assert_eq!(any.to_string(), message);
    assert!(!any.is_cancelled(), "{message:?} became a cancellation");
}

/// `e` converts into the AnyIO error `T` (with `T`'s message), as the memory streams' errors
/// do by design: AnyIO code catches `WouldBlock`, `ClosedResourceError`...
#[track_caller]
fn converts_to<E, T>(e: E, to: T)
where
    AnyError: From<E>,
    T: std::error::Error + PartialEq + 'static,
{
    let any = question_mark(e);
    assert_eq!(any.downcast_ref::<T>(), Some(&to));
    assert_eq!(any.to_string(), to.to_string());
}

/// `e` carries `c`: it converts into a cancellation with `c`'s message.
#[track_caller]
fn converts_cancelled<E>(e: E, c: &Cancelled)
where
    AnyError: From<E>,
{
    let any = question_mark(e);
    assert!(any.is_cancelled(), "the cancellation was lost: {any}");
    assert_eq!(any.to_string(), c.to_string());
}

/// A real cancellation, as a checkpoint in a cancelled scope returns it.
async fn a_cancellation() -> Cancelled {
    let scope = CancelScope::new();
    scope.cancel_with_reason("test");
    let mut seen = None;
    let _ = scope.run(async { checkpoint().await.inspect_err(|c| seen = Some(c.clone())) }).await;
    seen.expect("a cancelled scope's checkpoint fails")
}

#[test]
fn every_error_without_a_cancellation_converts_with_its_message() {
    converts(WouldBlock);
    converts(ClosedResourceError);
    converts(BrokenResourceError);
    converts(EndOfStream);
    let guard = ResourceGuard::new("using");
    let _in_use = guard.enter().unwrap();
    let busy: BusyResourceError = guard.enter().unwrap_err();
    converts(busy);
    let invalid: InvalidDuration = seconds(-1.0).unwrap_err();
    converts(invalid);
    let sem: SemaphoreError = Semaphore::with_max(3, 1).unwrap_err();
    converts(sem);
    converts(CapacityLimiterError::AlreadyBorrowing);
    converts(TypedAttributeLookupError { attribute: "Example" });
    // The future handed back need not be Send or Sync: it is dropped.
    converts(GroupClosed(Rc::new(())));
    for e in [JoinError::Failed, JoinError::Panicked, JoinError::TaskCancelled, JoinError::AlreadyJoined] {
        converts(e);
    }
    converts(GroupError::Failed(vec![AnyError::msg("boom")]));
    converts(anyio::task::PromiseError::NotFinished);
    let clock_error: anyio::testing::MockClockError =
        anyio::testing::MockClock::new().jump(-1.0).unwrap_err();
    converts(clock_error);
    converts(anyio::testing::WaitBlockedError::NotTracking);
    converts(anyio::testing::SequencerError::Reused(0));
    converts(anyio::testing::SequencerError::Broken);
    converts(anyio::task::TrackingOff);
    converts(anyio::task::PromiseError::AlreadyFinished);
    converts(anyio::task::PromiseError::Cancelled(Some("why".into())));
    converts(anyio::task::PromiseError::Failed(std::sync::Arc::new(AnyError::msg("boom"))));
    #[cfg(unix)]
    converts(anyio::net::ServeError::Handler {
        peer: Some(anyio::net::SocketAddress::Inet("127.0.0.1:5000".parse().unwrap())),
        error: anyio::streams::StreamError::EndOfStream,
    });
    converts(StartError::Failed(AnyError::msg("boom")));
    converts(StartError::<AnyError>::NotStarted);
    converts(StartError::<AnyError>::GroupClosed);
    converts(StreamError::EndOfStream);
    converts(StreamError::Closed);
    converts(StreamError::Io(std::io::Error::other("disk on fire")));
    converts(std::io::Error::other("disk on fire"));
    let run: RunError = "no-such-backend".parse::<Backend>().unwrap_err();
    converts(run);
    #[cfg(unix)]
    converts(anyio::net::SocketError::InvalidArgument("port 0".into()));
    converts(AnyError::msg("already one"));
    converts(anyio::lowlevel::RunFinishedError);
    converts(anyio::lowlevel::RunVarError::NotSet { name: "v" });
    converts(anyio::lowlevel::RunVarError::WrongToken { name: "v" });
    converts(anyio::to_thread::RunSyncError::NoThread(std::io::Error::other("no threads left")));
    converts(anyio::from_thread::FromThreadError::NotInWorker);
    converts(anyio::from_thread::FromThreadError::WouldBlockRuntime);
    converts(anyio::from_thread::FromThreadError::RunFinished(anyio::lowlevel::RunFinishedError));
    #[cfg(unix)]
    {
        use anyio::fs::FsError;
        use anyio::process::ProcessError;
        converts(FsError::Closed { path: Some("/x".into()) });
        converts(FsError::InvalidArgument("bad mode".into()));
        converts(FsError::Io {
            op: "open",
            path: Some("/x".into()),
            source: std::io::ErrorKind::NotFound.into(),
        });
        use anyio::signal::{Interrupted, Signal, SignalError};
        converts(SignalError::Empty);
        converts(SignalError::Invalid(0));
        converts(SignalError::Forbidden(Signal::SIGKILL));
        converts(SignalError::Io(std::io::Error::other("no pipe")));
        converts(Interrupted::new());
        converts(ProcessError::InvalidArgument("empty".into()));
        converts(ProcessError::NotFound { program: "x".into(), source: std::io::ErrorKind::NotFound.into() });
        converts(ProcessError::Cwd { cwd: "/nope".into(), source: std::io::ErrorKind::NotFound.into() });
        converts(ProcessError::Spawn { program: "x".into(), source: std::io::Error::other("EAGAIN") });
        converts(ProcessError::Stream(StreamError::Closed));
        converts(ProcessError::Io(std::io::Error::other("ECHILD")));
        converts(ProcessError::Failed(Box::new(anyio::process::CompletedProcess {
            args: anyio::process::CommandLine::shell("exit 3"),
            returncode: 3,
            stdout: Vec::new(),
            stderr: Vec::new(),
        })));
    }
    for e in [
        anyio::from_thread::PortalError::Stopped,
        anyio::from_thread::PortalError::WouldBlockRuntime,
        anyio::from_thread::PortalError::Cancelled,
        anyio::from_thread::PortalError::NotStarted,
        anyio::from_thread::PortalError::Failed(AnyError::msg("boom")),
    ] {
        converts(e);
    }
}

#[test]
fn memory_stream_errors_convert_into_anyio_s_resource_errors() {
    // The unsent item is dropped: it need not be Send or Sync.
    converts_to(SendError::Closed(Rc::new(1)), ClosedResourceError);
    converts_to(SendError::Broken(Rc::new(1)), BrokenResourceError);
    converts_to(TrySendError::WouldBlock(Rc::new(1)), WouldBlock);
    converts_to(TrySendError::Closed(1), ClosedResourceError);
    converts_to(TrySendError::Broken(1), BrokenResourceError);
    converts_to(ReceiveError::Closed, ClosedResourceError);
    converts_to(ReceiveError::EndOfStream, EndOfStream);
    converts_to(TryReceiveError::WouldBlock, WouldBlock);
    converts_to(TryReceiveError::Closed, ClosedResourceError);
    converts_to(TryReceiveError::EndOfStream, EndOfStream);
}

#[anyio::test]
async fn every_cancellation_variant_converts_into_a_cancellation() {
    let c = a_cancellation().await;
    converts_cancelled(c.clone(), &c);
    converts_cancelled(CapacityLimiterError::Cancelled(c.clone()), &c);
    converts_cancelled(JoinError::Cancelled(c.clone()), &c);
    converts_cancelled(anyio::task::PromiseError::WaitCancelled(c.clone()), &c);
    converts_cancelled(anyio::testing::WaitBlockedError::Cancelled(c.clone()), &c);
    converts_cancelled(anyio::testing::SequencerError::Cancelled(c.clone()), &c);
    converts_cancelled(GroupError::<AnyError>::Cancelled(c.clone()), &c);
    converts_cancelled(StartError::<AnyError>::Cancelled(c.clone()), &c);
    converts_cancelled(StreamError::Cancelled(c.clone()), &c);
    converts_cancelled(ReceiveError::Cancelled(c.clone()), &c);
    converts_cancelled(SendError::Cancelled(Rc::new(1), c.clone()), &c);
    converts_cancelled(std::io::Error::other(c.clone()), &c);
    converts_cancelled(anyio::to_thread::RunSyncError::Cancelled(c.clone()), &c);
    converts_cancelled(anyio::from_thread::FromThreadError::Cancelled(c.clone()), &c);
    #[cfg(unix)]
    converts_cancelled(anyio::net::SocketError::Cancelled(c.clone()), &c);
    #[cfg(unix)]
    converts_cancelled(anyio::signal::SignalError::Cancelled(c.clone()), &c);
    #[cfg(unix)]
    converts_cancelled(anyio::fs::FsError::Cancelled(c.clone()), &c);
    #[cfg(unix)]
    converts_cancelled(anyio::process::ProcessError::Cancelled(c.clone()), &c);
    #[cfg(unix)]
    converts_cancelled(anyio::process::ProcessError::Stream(StreamError::Cancelled(c.clone())), &c);
}

#[anyio::test]
async fn a_timeout_converts_into_a_timeout() {
    let r: Result<(), AnyError> = fail_after(Duration::ZERO, async {
        sleep_forever().await?;
        Ok(())
    })
    .await;
    let t: TimeoutError = r.unwrap_err().downcast_ref::<TimeoutError>().cloned().expect("a TimeoutError");
    let message = t.to_string();
    let any = question_mark(t);
    assert!(any.is_timeout());
    assert_eq!(any.to_string(), message);
}

#[test]
fn this_file_names_every_error_type_the_facade_exports() {
    // Error types the library defines: every public struct or enum whose name ends in `Error`
    // in anyio-core and the facade, and the AnyIO exception names that do not.
    fn collect(dir: &std::path::Path, names: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect(&path, names);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for line in text.lines().map(str::trim_start) {
                    let rest = line.strip_prefix("pub struct ").or_else(|| line.strip_prefix("pub enum "));
                    if let Some(rest) = rest {
                        let name: String =
                            rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        names.push(name);
                    }
                }
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut exported = Vec::new();
    collect(&root.join("crates/anyio-core/src"), &mut exported);
    collect(&root.join("crates/anyio/src"), &mut exported);
    let exported = exported.iter().map(String::as_str);
    let others = ["Cancelled", "WouldBlock", "EndOfStream", "InvalidDuration", "GroupClosed"];
    // The tests above, without the `use` list and this test.
    let this_file = include_str!("error_conversions.rs");
    let start = this_file.find("fn question_mark").unwrap();
    let end = this_file.find("fn this_file_names_every_error_type").unwrap();
    let tests = &this_file[start..end];
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mentions = |name: &str| {
        tests
            .match_indices(name)
            .any(|(i, _)| !tests[..i].ends_with(is_ident) && !tests[i + name.len()..].starts_with(is_ident))
    };
    let mut checked = 0;
    for name in exported.filter(|n| n.ends_with("Error") || others.contains(n)) {
        assert!(mentions(name), "{name} is a public error type, but no test here converts it into AnyError");
        checked += 1;
    }
    assert!(checked >= 20, "the crates' sources were not parsed: only {checked} error types found");
}
