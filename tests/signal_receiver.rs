//! Signal receivers on every backend: AnyIO's tests/test_signals.py and trio's signal tests
//! (receiving, coalescing, every receiver sees every signal, a bad signal registers nothing,
//! empty and duplicate lists, the handler restored after close, no starvation), and, in child
//! processes, what cannot be tested in this one: a SIGTERM that kills once its receiver is
//! gone, and Ctrl+C handling (one SIGINT runs the shielded cleanup and exits 130; a second one
//! during a cleanup that never ends kills the process).
#![cfg(unix)]
// Each test holds the process-wide signal lock for its whole body: every test runs on a runtime
// of its own, so a guard held across awaits only makes other tests' threads wait their turn.
#![allow(clippy::await_holding_lock)]

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyio::{
    move_on_after,
    process::{open_process, ProcessOptions, Stdio},
    signal::{open_signal_receiver, Signal, SignalError},
    streams::ByteReceiveStream,
    AnyError,
};

mod support;
use support::guarded_ok;

/// Signals are process-wide: the tests of this binary take turns.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn raise(sig: Signal) {
    // raise(3), not kill(getpid()): it delivers to this thread before it returns, so the order
    // of two raises is the order of arrival (a process-directed signal may be handled later,
    // by another thread).
    // SAFETY: sends this thread a signal that a receiver (or the test's expectation) handles.
    unsafe { libc::raise(sig.as_raw()) };
}

fn handler_is_default(sig: Signal) -> bool {
    // SAFETY: reads the current disposition into a zeroed C struct; changes nothing.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig.as_raw(), std::ptr::null(), &mut old);
        old.sa_sigaction == libc::SIG_DFL
    }
}

/// A signal that arrives again while its earlier delivery still waits to be received is
/// yielded once (trio's ordered dict).
#[anyio::test]
async fn a_signal_repeated_while_queued_is_yielded_once() {
    let _serial = serial();
    guarded_ok(async {
        let mut rx = open_signal_receiver(&[Signal::SIGUSR1, Signal::SIGUSR2])?;
        raise(Signal::SIGUSR1);
        raise(Signal::SIGUSR2);
        assert_eq!(rx.receive().await?, Signal::SIGUSR1);
        raise(Signal::SIGUSR2); // SIGUSR2 is still queued
        assert_eq!(rx.receive().await?, Signal::SIGUSR2);
        assert!(nothing_pending(&mut rx).await?);
        Ok(())
    })
    .await
}

async fn nothing_pending(rx: &mut anyio::signal::SignalReceiver) -> Result<bool, AnyError> {
    let r = move_on_after(Duration::from_millis(30), async {
        rx.receive().await?;
        Ok::<_, AnyError>(())
    })
    .await?;
    Ok(r.is_none())
}

#[anyio::test]
async fn a_receiver_gets_the_signal_sent_to_the_process() {
    let _serial = serial();
    guarded_ok(async {
        let mut rx = open_signal_receiver(&[Signal::SIGUSR1, Signal::SIGUSR2])?;
        raise(Signal::SIGUSR2);
        assert_eq!(rx.receive().await?, Signal::SIGUSR2);
        raise(Signal::SIGUSR1);
        assert_eq!(rx.receive().await?, Signal::SIGUSR1);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn pending_signals_are_coalesced_per_signal_in_arrival_order() {
    let _serial = serial();
    guarded_ok(async {
        let mut rx = open_signal_receiver(&[Signal::SIGUSR1, Signal::SIGUSR2])?;
        raise(Signal::SIGUSR2);
        raise(Signal::SIGUSR1);
        raise(Signal::SIGUSR2);
        raise(Signal::SIGUSR1);
        assert_eq!(rx.receive().await?, Signal::SIGUSR2);
        assert_eq!(rx.receive().await?, Signal::SIGUSR1);
        assert!(nothing_pending(&mut rx).await?, "each signal is yielded once");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn every_open_receiver_sees_every_signal() {
    let _serial = serial();
    guarded_ok(async {
        let mut a = open_signal_receiver(&[Signal::SIGUSR1])?;
        let mut b = open_signal_receiver(&[Signal::SIGUSR1, Signal::SIGHUP])?;
        raise(Signal::SIGUSR1);
        assert_eq!(a.receive().await?, Signal::SIGUSR1);
        assert_eq!(b.receive().await?, Signal::SIGUSR1);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_bad_signal_in_the_list_registers_nothing() {
    let _serial = serial();
    guarded_ok(async {
        assert!(handler_is_default(Signal::SIGWINCH));
        for bad in [
            Signal::SIGKILL,
            Signal::SIGSTOP,
            Signal::SIGSEGV,
            Signal::SIGBUS,
            Signal::SIGILL,
            Signal::SIGFPE,
        ] {
            let err = open_signal_receiver(&[Signal::SIGWINCH, bad]).unwrap_err();
            assert!(matches!(err, SignalError::Forbidden(s) if s == bad), "{err:?}");
            assert!(err.to_string().contains(&bad.to_string()), "{err}");
        }
        assert!(handler_is_default(Signal::SIGWINCH), "nothing was registered for the good one");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn an_empty_list_and_invalid_numbers_are_typed_errors() {
    let _serial = serial();
    guarded_ok(async {
        assert!(matches!(open_signal_receiver(&[]), Err(SignalError::Empty)));
        for n in [0, -1, 1000] {
            assert!(matches!(Signal::from_raw(n), Err(SignalError::Invalid(m)) if m == n));
        }
        assert_eq!(Signal::try_from(libc::SIGTERM).unwrap(), Signal::SIGTERM);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn duplicates_in_the_list_subscribe_once() {
    let _serial = serial();
    guarded_ok(async {
        let mut rx = open_signal_receiver(&[Signal::SIGUSR1, Signal::SIGUSR1])?;
        assert_eq!(rx.signals(), vec![Signal::SIGUSR1]);
        raise(Signal::SIGUSR1);
        assert_eq!(rx.receive().await?, Signal::SIGUSR1);
        assert!(nothing_pending(&mut rx).await?);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn the_earlier_disposition_is_back_after_the_last_receiver_closes() {
    let _serial = serial();
    guarded_ok(async {
        // SIGXFSZ: its default ends the process, so restoring it matters.
        let sig = Signal::SIGXFSZ;
        assert!(handler_is_default(sig));
        let a = open_signal_receiver(&[sig])?;
        let b = open_signal_receiver(&[sig])?;
        assert!(!handler_is_default(sig));
        drop(a);
        assert!(!handler_is_default(sig), "b still receives");
        drop(b);
        assert!(handler_is_default(sig));
        // And a new receiver after that works again.
        let mut c = open_signal_receiver(&[sig])?;
        raise(sig);
        assert_eq!(c.receive().await?, sig);
        drop(c);
        assert!(handler_is_default(sig));
        // A signal whose default is to be ignored keeps the handler installed (restoring it
        // gains nothing and would silence another library's later registration).
        drop(open_signal_receiver(&[Signal::SIGURG])?);
        assert!(!handler_is_default(Signal::SIGURG));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn signals_sent_to_the_process_from_another_thread_arrive() {
    let _serial = serial();
    guarded_ok(async {
        let mut rx = open_signal_receiver(&[Signal::SIGUSR1, Signal::SIGUSR2])?;
        // Process-directed (kill, not raise), from a worker thread: any thread may run the
        // handler.
        anyio::to_thread::run_sync(|| {
            // SAFETY: signals this process, whose receiver is open.
            unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
        })
        .await?;
        assert_eq!(rx.receive().await?, Signal::SIGUSR1);
        anyio::to_thread::run_sync(|| {
            // SAFETY: as above.
            unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
        })
        .await?;
        assert_eq!(rx.receive().await?, Signal::SIGUSR2);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn the_disposition_is_restored_after_a_duplicate_list() {
    let _serial = serial();
    guarded_ok(async {
        assert!(handler_is_default(Signal::SIGXCPU));
        drop(open_signal_receiver(&[Signal::SIGXCPU, Signal::SIGXCPU])?);
        assert!(handler_is_default(Signal::SIGXCPU));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_cancelled_receive_loses_no_signal() {
    let _serial = serial();
    guarded_ok(async {
        let mut rx = open_signal_receiver(&[Signal::SIGUSR2])?;
        assert!(nothing_pending(&mut rx).await?, "cancelled while waiting");
        raise(Signal::SIGUSR2);
        assert_eq!(rx.receive().await?, Signal::SIGUSR2);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_steady_stream_of_one_signal_does_not_starve_another() {
    let _serial = serial();
    guarded_ok(async {
        let mut rx = open_signal_receiver(&[Signal::SIGUSR1, Signal::SIGUSR2])?;
        raise(Signal::SIGUSR1);
        raise(Signal::SIGUSR2);
        let mut seen_usr2 = false;
        for _ in 0..10 {
            // SIGUSR1 arrives again before every receive; SIGUSR2 must still come through.
            raise(Signal::SIGUSR1);
            if rx.receive().await? == Signal::SIGUSR2 {
                seen_usr2 = true;
                break;
            }
        }
        assert!(seen_usr2);
        // A SIGUSR1 may still be pending: receive it, or dropping the receiver would raise it
        // again (trio's rule), and its default action ends the process.
        while !nothing_pending(&mut rx).await? {}
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_receiver_is_a_stream_too() {
    let _serial = serial();
    guarded_ok(async {
        use futures::StreamExt;
        let mut rx = open_signal_receiver(&[Signal::SIGHUP])?;
        raise(Signal::SIGHUP);
        assert_eq!(rx.next().await.unwrap()?, Signal::SIGHUP);
        Ok(())
    })
    .await
}

// ---- child processes: this test binary re-run with ANYIO_SIGNAL_CHILD naming a scenario ----

/// The child side. As a test of its own it does nothing; the parent runs this binary with
/// `--exact child_scenario` and the scenario in `ANYIO_SIGNAL_CHILD`.
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var("ANYIO_SIGNAL_CHILD") else { return };
    // A process started from a shell's background job inherits SIGINT ignored, and anyio then
    // rightly leaves it alone; these scenarios are about a process started as usual, with
    // SIGINT at its default, so that is where they start, whoever launched the tests.
    // SAFETY: resetting a disposition to the default, before any thread of this scenario or
    // handler of anyio's exists.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
    let marker = std::env::var("ANYIO_SIGNAL_MARKER").unwrap_or_default();
    let say = |line: &str| {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    match scenario.as_str() {
        "sigterm-pending-at-drop" => {
            // A SIGTERM that arrives but is never received is raised again when the last
            // receiver goes: the process dies by it.
            anyio::run(async {
                let rx = open_signal_receiver(&[Signal::SIGTERM]).unwrap();
                raise(Signal::SIGTERM);
                drop(rx);
            });
            std::thread::sleep(Duration::from_secs(5));
            std::process::exit(0);
        }
        "sigterm-after-drop" => {
            anyio::run(async {
                drop(open_signal_receiver(&[Signal::SIGTERM]).unwrap());
            });
            raise(Signal::SIGTERM);
            std::thread::sleep(Duration::from_secs(5));
            std::process::exit(0); // not reached if SIGTERM killed us, as it must
        }
        "one-sigint" | "two-sigints" => {
            let hang = scenario == "two-sigints";
            // What `#[anyio::main]` runs.
            anyio::__private::run_main(async move {
                say("ready");
                let r = anyio::sleep(Duration::from_secs(3600)).await;
                say("cleaning");
                anyio::CancelScope::shielded()
                    .run(async {
                        let wait = if hang { Duration::from_secs(3600) } else { Duration::from_millis(200) };
                        anyio::sleep(wait).await?;
                        std::fs::write(&marker, b"cleaned").unwrap();
                        Ok::<_, anyio::Cancelled>(())
                    })
                    .await
                    .unwrap();
                r
            })
            .unwrap();
            std::process::exit(0); // not interrupted: the parent's check fails
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// Runs `scenario` in a child (this binary) on the current backend, calling `drive` with its
/// stdout lines as they arrive and the child's pid; returns the exit status.
async fn run_child(
    scenario: &str,
    marker: &std::path::Path,
    mut drive: impl FnMut(&str, u32),
) -> Result<std::process::ExitStatus, AnyError> {
    let exe = std::env::current_exe()?;
    let backend = std::env::var("ANYIO_TEST_CHILD_BACKEND").unwrap_or_else(|_| current_backend_name());
    let p = open_process(
        [
            exe.as_os_str(),
            "--exact".as_ref(),
            "child_scenario".as_ref(),
            "--nocapture".as_ref(),
            "-q".as_ref(),
        ],
        ProcessOptions::new()
            .env("ANYIO_SIGNAL_CHILD", scenario)
            .env("ANYIO_SIGNAL_MARKER", marker.as_os_str())
            .env("ANYIO_BACKEND", backend)
            .stdin(Stdio::Null)
            .stderr(Stdio::Null),
    )
    .await?;
    let out = p.stdout().unwrap();
    let mut pending = String::new();
    // Until end of file (the child exited) or an error.
    while let Ok(chunk) = out.receive(4096).await {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = pending.find('\n') {
            let line: String = pending.drain(..=i).collect();
            drive(line.trim(), p.pid());
        }
    }
    p.wait().await?;
    Ok(p.exit_status().unwrap())
}

/// The `ANYIO_BACKEND` name of the backend (and tokio flavour) this test runs on.
fn current_backend_name() -> String {
    match anyio::current_backend() {
        #[cfg(feature = "tokio")]
        Some("tokio") => match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => "tokio-current-thread".into(),
            _ => "tokio".into(),
        },
        Some(other) => other.into(),
        None => "tokio".into(),
    }
}

fn send(pid: u32, sig: libc::c_int) {
    // SAFETY: signals the child this test started and has not reaped (it is still writing).
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

fn marker_path(what: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("anyio-sig-{what}-{}-{n}", std::process::id()))
}

#[anyio::test]
async fn a_sigterm_kills_again_once_its_last_receiver_is_dropped() {
    use std::os::unix::process::ExitStatusExt;
    guarded_ok(async {
        let status = run_child("sigterm-after-drop", &marker_path("term"), |_, _| {}).await?;
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_signal_pending_when_its_last_receiver_closes_is_not_lost() {
    use std::os::unix::process::ExitStatusExt;
    guarded_ok(async {
        let status = run_child("sigterm-pending-at-drop", &marker_path("pending"), |_, _| {}).await?;
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn one_sigint_cancels_main_runs_the_shielded_cleanup_and_exits_130() {
    guarded_ok(async {
        let marker = marker_path("one");
        let status = run_child("one-sigint", &marker, |line, pid| {
            if line == "ready" {
                send(pid, libc::SIGINT);
            }
        })
        .await?;
        assert_eq!(status.code(), Some(130), "{status:?}");
        assert_eq!(std::fs::read(&marker)?, b"cleaned", "the shielded cleanup ran to its end");
        std::fs::remove_file(&marker)?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_second_sigint_during_a_hanging_cleanup_ends_the_process() {
    use std::os::unix::process::ExitStatusExt;
    guarded_ok(async {
        let marker = marker_path("two");
        let status = run_child("two-sigints", &marker, |line, pid| match line {
            "ready" => send(pid, libc::SIGINT),
            "cleaning" => send(pid, libc::SIGINT),
            _ => {}
        })
        .await?;
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
        assert!(!marker.exists());
        Ok(())
    })
    .await
}
