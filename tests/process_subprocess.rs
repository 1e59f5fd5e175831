//! Child processes on every backend: AnyIO's tests/test_subprocesses.py behaviours (shell and
//! exec, check, terminate, max_bytes, cwd, env, new session, files, inherit, cancellation,
//! closed streams, user and group, closing early and while reading, wait with stdout held open
//! elsewhere, close with a blocked child) and what the issue adds: 10 MiB on stdout and stderr
//! at once, 1 MiB through `cat`, 100 concurrent processes, no zombies, typed bad input.
//! CI runs this file twice: with pidfds, and with `ANYIO_CHILD_WATCHER=sigchld`.
#![cfg(unix)]

use std::time::{Duration, Instant};

use anyio::{
    cancel::CancelScope,
    move_on_after,
    process::{open_process, run_process, CommandLine, ProcessError, ProcessOptions, Stdio},
    sleep,
    streams::{AsyncResource, ByteReceiveStream, ByteSendStream, StreamError},
    task_group, AnyError,
};

mod support;
use support::guarded_ok;

/// Whether `pid` still exists as a process or an unreaped zombie (`kill(pid, 0)` succeeds for
/// both; ESRCH means it was reaped).
/// A path in the temporary directory that no other test (or run) uses.
fn temp_path(what: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("anyio-{what}-{}-{n}", std::process::id()))
}

fn pid_exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is delivered.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Waits (up to the hang guard) until `pid` is gone for good: reaped, not a zombie.
async fn wait_gone(pid: u32) -> Result<(), AnyError> {
    while pid_exists(pid) {
        sleep(Duration::from_millis(10)).await?;
    }
    Ok(())
}

async fn read_to_end(s: &impl ByteReceiveStream) -> Result<Vec<u8>, StreamError> {
    let mut all = Vec::new();
    loop {
        match s.receive(65536).await {
            Ok(chunk) => all.extend(chunk),
            Err(StreamError::EndOfStream) => return Ok(all),
            Err(e) => return Err(e),
        }
    }
}

#[anyio::test]
async fn run_process_runs_a_shell_line_and_an_argument_vector() {
    guarded_ok(async {
        let shell = run_process("echo $((6 * 7))", ProcessOptions::new()).await?;
        assert_eq!(shell.stdout, b"42\n");
        let exec = run_process(["echo", "$((6 * 7))"], ProcessOptions::new()).await?;
        assert_eq!(exec.stdout, b"$((6 * 7))\n", "an argument vector involves no shell");
        assert_eq!(exec.returncode, 0);
        assert_eq!(exec.args, CommandLine::argv(["echo", "$((6 * 7))"]));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn check_turns_a_failure_into_an_error_with_everything_captured() {
    guarded_ok(async {
        let cmd = "echo out; echo err >&2; exit 3";
        let err = run_process(cmd, ProcessOptions::new()).await.unwrap_err();
        let ProcessError::Failed(done) = &err else { panic!("expected Failed, got {err:?}") };
        assert_eq!((done.returncode, &done.stdout[..], &done.stderr[..]), (3, &b"out\n"[..], &b"err\n"[..]));
        assert!(err.to_string().contains("non-zero exit status 3"), "{err}");
        let done = run_process(cmd, ProcessOptions::new().check(false)).await?;
        assert_eq!(done.returncode, 3);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn run_process_feeds_input_and_closes_stdin() {
    guarded_ok(async {
        let done = run_process(["tr", "a-z", "A-Z"], ProcessOptions::new().input(b"hello".to_vec())).await?;
        assert_eq!(done.stdout, b"HELLO");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn terminate_kill_and_send_signal_end_the_child_with_a_negative_returncode() {
    guarded_ok(async {
        for (how, sig) in [(0, libc::SIGTERM), (1, libc::SIGKILL), (2, libc::SIGUSR1)] {
            let p = open_process(["sleep", "30"], ProcessOptions::new()).await?;
            assert_eq!(p.returncode(), None);
            match how {
                0 => p.terminate()?,
                1 => p.kill()?,
                _ => p.send_signal(anyio::signal::Signal::SIGUSR1)?,
            }
            assert_eq!(p.wait().await?, -sig);
            assert_eq!(p.returncode(), Some(-sig));
            // Exited and reaped: signalling it again is a no-op, never a stray signal.
            p.kill()?;
            p.terminate()?;
        }
        Ok(())
    })
    .await
}

#[anyio::test]
async fn receive_refuses_a_max_bytes_of_zero() {
    guarded_ok(async {
        let p = open_process(["true"], ProcessOptions::new()).await?;
        let err = p.stdout().unwrap().receive(0).await.unwrap_err();
        assert!(matches!(err, StreamError::InvalidArgument(_)), "{err:?}");
        p.aclose().await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn cwd_sets_the_working_directory_and_a_missing_one_is_named() {
    guarded_ok(async {
        let dir = std::env::temp_dir().canonicalize()?;
        let done = run_process(["pwd"], ProcessOptions::new().cwd(&dir)).await?;
        assert_eq!(String::from_utf8_lossy(&done.stdout).trim(), dir.to_string_lossy());
        let missing = dir.join("anyio-no-such-directory");
        let err = run_process(["pwd"], ProcessOptions::new().cwd(&missing)).await.unwrap_err();
        assert!(matches!(&err, ProcessError::Cwd { cwd, .. } if *cwd == missing), "{err:?}");
        assert!(err.to_string().contains("anyio-no-such-directory"), "{err}");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn env_extends_or_replaces_the_environment() {
    guarded_ok(async {
        let extended = run_process("echo $ANYIO_X-$HOME", ProcessOptions::new().env("ANYIO_X", "x")).await?;
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&extended.stdout).trim(), format!("x-{home}"));
        let replaced =
            run_process(["/usr/bin/env"], ProcessOptions::new().env_clear().env("ANYIO_ONLY", "1")).await?;
        assert_eq!(replaced.stdout, b"ANYIO_ONLY=1\n");
        let removed = run_process("echo \"[$HOME]\"", ProcessOptions::new().env_remove("HOME")).await?;
        assert_eq!(removed.stdout, b"[]\n");
        Ok(())
    })
    .await
}

#[cfg(target_os = "linux")]
#[anyio::test]
async fn start_new_session_makes_the_child_a_session_leader() {
    guarded_ok(async {
        // Field 6 of /proc/PID/stat is the session id; a session leader's is its own pid.
        let cmd = "echo $$; cut -d' ' -f6 /proc/$$/stat";
        let out = |d: anyio::process::CompletedProcess| {
            let s = String::from_utf8(d.stdout).unwrap();
            let v: Vec<String> = s.lines().map(str::to_owned).collect();
            (v[0].clone(), v[1].clone())
        };
        let (pid, sid) = out(run_process(cmd, ProcessOptions::new().start_new_session(true)).await?);
        assert_eq!(pid, sid);
        let (pid, sid) = out(run_process(cmd, ProcessOptions::new()).await?);
        assert_ne!(pid, sid);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn stdout_can_go_to_a_file_with_stderr_merged_into_it() {
    guarded_ok(async {
        let path = temp_path("proc");
        let file = std::fs::File::create(&path)?;
        let done = run_process(
            "echo to-out; echo to-err >&2",
            ProcessOptions::new().stdout(Stdio::File(file)).stderr(Stdio::Stdout),
        )
        .await?;
        assert!(done.stdout.is_empty() && done.stderr.is_empty());
        assert_eq!(std::fs::read(&path)?, b"to-out\nto-err\n");
        std::fs::remove_file(&path)?;
        // Merged into a pipe, too.
        let done = run_process("echo a; echo b >&2", ProcessOptions::new().stderr(Stdio::Stdout)).await?;
        assert_eq!(done.stdout, b"a\nb\n");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn inherited_and_null_streams_have_no_pipe() {
    guarded_ok(async {
        let p = open_process(
            ["true"],
            ProcessOptions::new().stdin(Stdio::Null).stdout(Stdio::Null).stderr(Stdio::Inherit),
        )
        .await?;
        assert!(p.stdin().is_none() && p.stdout().is_none() && p.stderr().is_none());
        assert_eq!(p.wait().await?, 0);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn cancelling_run_process_kills_the_child_promptly_and_leaves_no_process() {
    guarded_ok(async {
        let pidfile = temp_path("pid");
        // Written whole (renamed into place), so the file exists only with the pid in it.
        let cmd = format!("echo $$ > {0}.tmp && mv {0}.tmp {0}; exec sleep 10", pidfile.display());
        let cancelled_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
        task_group(|tg| {
            let (cancelled_at, pidfile) = (cancelled_at.clone(), pidfile.clone());
            async move {
                let scope = CancelScope::new();
                let stop = scope.clone();
                // Cancel 100 ms after the child runs, however long a loaded machine takes to
                // start it.
                tg.start_soon(async move {
                    while !pidfile.exists() {
                        sleep(Duration::from_millis(5)).await?;
                    }
                    sleep(Duration::from_millis(100)).await?;
                    *cancelled_at.lock().unwrap() = Some(Instant::now());
                    stop.cancel();
                    Ok(())
                });
                let r = scope
                    .run(async {
                        run_process(cmd.as_str(), ProcessOptions::new()).await?;
                        Ok::<_, AnyError>(())
                    })
                    .await?;
                assert_eq!(r, None, "cancelled");
                Ok(())
            }
        })
        .await?;
        let took = cancelled_at.lock().unwrap().expect("cancelled").elapsed();
        assert!(took < Duration::from_secs(5), "returned {took:?} after the cancellation");
        let pid: u32 = std::fs::read_to_string(&pidfile)?.trim().parse().unwrap();
        std::fs::remove_file(&pidfile)?;
        assert!(!pid_exists(pid), "the child was killed and reaped before run_process returned");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_dropped_run_process_future_kills_its_child() {
    guarded_ok(async {
        let pidfile = temp_path("droppid");
        let cmd = format!("echo $$ > {0}.tmp && mv {0}.tmp {0}; exec sleep 10", pidfile.display());
        {
            let fut = std::pin::pin!(run_process(cmd.as_str(), ProcessOptions::new()));
            let mut fut = fut;
            // Poll it until the child runs, then drop it unfinished (as a lost select! would).
            while !pidfile.exists() {
                let _ = futures::poll!(fut.as_mut());
                sleep(Duration::from_millis(5)).await?;
            }
        }
        let pid: u32 = std::fs::read_to_string(&pidfile)?.trim().parse().unwrap();
        std::fs::remove_file(&pidfile)?;
        wait_gone(pid).await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_cancelled_aclose_kills_the_child_and_closes_its_streams() {
    guarded_ok(async {
        let p = open_process(["sleep", "10"], ProcessOptions::new()).await?;
        let pid = p.pid();
        let r = move_on_after(Duration::from_millis(50), async {
            p.aclose().await?;
            Ok::<_, AnyError>(())
        })
        .await?;
        assert_eq!(r, None);
        assert!(!pid_exists(pid), "killed and reaped");
        assert_eq!(p.returncode(), Some(-libc::SIGKILL));
        assert!(matches!(p.stdin().unwrap().send(b"x").await, Err(StreamError::Closed)));
        assert!(matches!(p.stdout().unwrap().receive(1).await, Err(StreamError::Closed)));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn operations_after_a_stream_is_closed_fail_with_closed() {
    guarded_ok(async {
        let p = open_process(["cat"], ProcessOptions::new()).await?;
        let stdin = p.stdin().unwrap();
        stdin.send_eof().await?;
        assert!(matches!(stdin.send(b"late").await, Err(StreamError::Closed)));
        let out = p.stdout().unwrap();
        out.aclose().await?;
        assert!(matches!(out.receive(10).await, Err(StreamError::Closed)));
        assert_eq!(p.wait().await?, 0);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn user_and_group_arguments_are_applied() {
    guarded_ok(async {
        // SAFETY: getuid/getgid cannot fail and have no effects.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let done =
            run_process("id -u; id -g", ProcessOptions::new().user(uid).group(gid).umask(0o077)).await?;
        assert_eq!(String::from_utf8_lossy(&done.stdout), format!("{uid}\n{gid}\n"));
        let done = run_process("umask", ProcessOptions::new().umask(0o027)).await?;
        assert_eq!(String::from_utf8_lossy(&done.stdout).trim(), "0027");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn closing_early_and_closing_while_a_task_reads() {
    guarded_ok(async {
        // Closing at once, before the child did anything.
        let p = open_process(["cat"], ProcessOptions::new()).await?;
        assert_eq!(p.aclose().await?, 0);

        // Closing stdout while another task waits on it: the reader ends with Closed.
        let mut p = open_process(["sleep", "10"], ProcessOptions::new()).await?;
        let out = std::sync::Arc::new(p.take_stdout().unwrap());
        task_group(|tg| {
            let out = out.clone();
            async move {
                let reader = tg.spawn({
                    let out = out.clone();
                    async move { Ok(out.receive(10).await) }
                });
                sleep(Duration::from_millis(20)).await?;
                out.aclose().await?;
                assert!(matches!(reader.await.unwrap(), Err(StreamError::Closed)));
                Ok(())
            }
        })
        .await?;
        p.kill()?;
        assert_eq!(p.wait().await?, -libc::SIGKILL);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn wait_sees_the_exit_while_a_grandchild_holds_stdout_open() {
    guarded_ok(async {
        // The shell exits at once; its background `sleep` keeps the stdout pipe open.
        let p = open_process("sleep 30 & echo $!", ProcessOptions::new()).await?;
        assert_eq!(p.wait().await?, 0);
        let out = p.stdout().unwrap();
        let grandchild: i32 = String::from_utf8(out.receive(64).await?).unwrap().trim().parse().unwrap();
        // No end of file yet: the pipe is still open, and wait did not depend on it.
        let still_open = move_on_after(Duration::from_millis(50), async {
            out.receive(64).await?;
            Ok::<_, AnyError>(())
        })
        .await?;
        assert_eq!(still_open, None);
        // SAFETY: signalling the grandchild we started; `kill` has no memory effects.
        unsafe { libc::kill(grandchild, libc::SIGKILL) };
        assert!(matches!(out.receive(64).await, Err(StreamError::EndOfStream)));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn aclose_of_a_child_blocked_on_stdin_closes_it_and_waits() {
    guarded_ok(async {
        let p = open_process(["cat"], ProcessOptions::new().stdout(Stdio::Null)).await?;
        p.stdin().unwrap().send(b"partial").await?;
        // cat is blocked reading stdin; aclose closes it, so cat sees end of file and exits.
        assert_eq!(p.aclose().await?, 0);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn ten_mib_on_stdout_and_stderr_at_once_do_not_deadlock() {
    guarded_ok(async {
        let cmd = "head -c 10485760 /dev/zero & head -c 10485760 /dev/zero >&2; wait";
        let done = run_process(cmd, ProcessOptions::new()).await?;
        assert_eq!((done.stdout.len(), done.stderr.len()), (10 << 20, 10 << 20));
        assert!(done.stdout.iter().chain(&done.stderr).all(|&b| b == 0));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn one_mib_round_trips_through_cat() {
    guarded_ok(async {
        let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut p = open_process(["cat"], ProcessOptions::new()).await?;
        let stdin = p.take_stdin().unwrap();
        let stdout = p.take_stdout().unwrap();
        let sent = data.clone();
        let got = task_group(|tg| async move {
            tg.start_soon(async move {
                for chunk in sent.chunks(100_000) {
                    stdin.send(chunk).await?;
                }
                stdin.send_eof().await?;
                Ok(())
            });
            Ok(read_to_end(&stdout).await?)
        })
        .await?
        .unwrap();
        assert!(got == data, "cat returned {} bytes, not the same 1 MiB", got.len());
        assert_eq!(p.wait().await?, 0);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_hundred_concurrent_short_processes() {
    guarded_ok(async {
        let results = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        task_group(|tg| {
            let results = results.clone();
            async move {
                for i in 0..100 {
                    let results = results.clone();
                    tg.start_soon(async move {
                        let done =
                            run_process(["sh", "-c", &format!("echo {i}")], ProcessOptions::new()).await?;
                        results
                            .lock()
                            .unwrap()
                            .push(String::from_utf8(done.stdout).unwrap().trim().parse::<u32>().unwrap());
                        Ok(())
                    });
                }
                Ok(())
            }
        })
        .await?;
        let mut got = results.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, (0..100).collect::<Vec<u32>>());
        Ok(())
    })
    .await
}

#[anyio::test]
async fn several_tasks_can_wait_for_one_process() {
    guarded_ok(async {
        let p = std::sync::Arc::new(open_process(["sleep", "0.2"], ProcessOptions::new()).await?);
        task_group(|tg| {
            let p = p.clone();
            async move {
                for _ in 0..3 {
                    let p = p.clone();
                    tg.start_soon(async move {
                        assert_eq!(p.wait().await?, 0);
                        Ok(())
                    });
                }
                Ok(())
            }
        })
        .await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_cancelled_wait_keeps_the_child_and_a_later_wait_gets_its_status() {
    guarded_ok(async {
        let p = open_process("sleep 0.3; exit 5", ProcessOptions::new()).await?;
        let r = move_on_after(Duration::from_millis(20), async {
            p.wait().await?;
            Ok::<_, AnyError>(())
        })
        .await?;
        assert_eq!(r, None);
        assert_eq!(p.returncode(), None);
        assert_eq!(p.wait().await?, 5);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn a_dropped_process_is_reaped_when_it_exits() {
    guarded_ok(async {
        let p = open_process(["sleep", "0.2"], ProcessOptions::new()).await?;
        let pid = p.pid();
        drop(p);
        // Still running at first; once it exits the reaper collects it: no zombie is left.
        wait_gone(pid).await?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn bad_input_gets_typed_errors() {
    guarded_ok(async {
        let empty: [&str; 0] = [];
        let e = open_process(empty, ProcessOptions::new()).await.unwrap_err();
        assert!(matches!(&e, ProcessError::InvalidArgument(m) if m.contains("empty")), "{e:?}");
        let e = open_process(["echo", "a\0b"], ProcessOptions::new()).await.unwrap_err();
        assert!(matches!(&e, ProcessError::InvalidArgument(m) if m.contains("NUL")), "{e:?}");
        let e = run_process(["cat"], ProcessOptions::new().input(b"x".to_vec()).stdin(Stdio::Null))
            .await
            .unwrap_err();
        assert!(matches!(&e, ProcessError::InvalidArgument(m) if m.contains("input")), "{e:?}");
        let e = open_process(["cat"], ProcessOptions::new().input(b"x".to_vec())).await.unwrap_err();
        assert!(matches!(e, ProcessError::InvalidArgument(_)), "{e:?}");
        let e = open_process(["true"], ProcessOptions::new().stdout(Stdio::Stdout)).await.unwrap_err();
        assert!(matches!(e, ProcessError::InvalidArgument(_)), "{e:?}");
        let e = open_process(["anyio-missing-program"], ProcessOptions::new()).await.unwrap_err();
        assert!(matches!(&e, ProcessError::NotFound { program, .. } if program == "anyio-missing-program"));
        assert!(e.to_string().contains("anyio-missing-program"), "{e}");
        let e = open_process(["true"], ProcessOptions::new().pass_fds([9999])).await.unwrap_err();
        assert!(matches!(e, ProcessError::Spawn { .. }), "{e:?}");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn pass_fds_hands_a_descriptor_to_the_child() {
    guarded_ok(async {
        let path = temp_path("passfd");
        let file = std::fs::File::create(&path)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        run_process(format!("echo passed > /dev/fd/{fd}"), ProcessOptions::new().pass_fds([fd])).await?;
        drop(file);
        assert_eq!(std::fs::read(&path)?, b"passed\n");
        std::fs::remove_file(&path)?;
        // Without pass_fds the descriptor is closed in the child. (`/dev/fd/N`, because dash
        // redirects only descriptors 0 to 9.)
        let file = std::fs::File::create(&path)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let done =
            run_process(format!("echo leaked > /dev/fd/{fd}"), ProcessOptions::new().check(false)).await?;
        assert_ne!(done.returncode, 0);
        drop(file);
        std::fs::remove_file(&path)?;
        Ok(())
    })
    .await
}

#[anyio::test]
async fn cancelling_from_a_shielded_scope_boundary_still_reaps() {
    guarded_ok(async {
        // A cancelled scope around open_process: nothing is started at all.
        let scope = CancelScope::new();
        scope.cancel();
        let r = scope
            .run(async {
                let p = open_process(["sleep", "10"], ProcessOptions::new()).await?;
                Ok::<_, AnyError>(p.pid())
            })
            .await?;
        assert_eq!(r, None);
        Ok(())
    })
    .await
}

#[cfg(target_os = "linux")]
#[anyio::test]
async fn pipe_size_enlarges_the_pipes_and_an_impossible_size_is_refused() {
    guarded_ok(async {
        let data = vec![b'z'; 1 << 20];
        let done =
            run_process(["cat"], ProcessOptions::new().pipe_size(256 << 10).input(data.clone())).await?;
        assert!(done.stdout == data);
        let e = open_process(["true"], ProcessOptions::new().pipe_size(usize::MAX)).await.unwrap_err();
        assert!(matches!(&e, ProcessError::InvalidArgument(m) if m.contains("pipe-max-size")), "{e:?}");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn aclose_of_a_child_blocked_writing_stdout_closes_the_pipe_and_reaps_it() {
    guarded_ok(async {
        // The child writes more than a pipe holds and blocks; aclose closes our end, the
        // child dies by SIGPIPE, and aclose returns.
        let p = open_process("head -c 1048576 /dev/zero", ProcessOptions::new()).await?;
        let pid = p.pid();
        let code = p.aclose().await?;
        assert_ne!(code, 0);
        assert!(!pid_exists(pid));
        // Less than a pipe holds: the child finishes on its own and exits 0.
        let p = open_process("head -c 25600 /dev/zero", ProcessOptions::new()).await?;
        p.wait().await?;
        assert_eq!(p.aclose().await?, 0);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn the_pipes_of_an_exited_child_are_broken_then_closed() {
    guarded_ok(async {
        let p = open_process(["true"], ProcessOptions::new()).await?;
        assert_eq!(p.wait().await?, 0);
        let stdin = p.stdin().unwrap();
        // A write may still succeed for a moment: another test's child, forked but not yet
        // exec'd, can hold a copy of the pipe's read end (close-on-exec closes it only at
        // exec). So: retry, a few milliseconds apart, until the last reader is gone.
        let mut broken = false;
        for _ in 0..200 {
            match stdin.send(b"foo").await {
                Err(StreamError::Broken(_)) => {
                    broken = true;
                    break;
                }
                Ok(()) => sleep(Duration::from_millis(5)).await?,
                Err(e) => panic!("expected Broken, got {e:?}"),
            }
        }
        assert!(broken, "writing to an exited child's stdin is Broken");
        assert!(matches!(p.stdout().unwrap().receive(1).await, Err(StreamError::EndOfStream)));
        assert!(matches!(p.stderr().unwrap().receive(1).await, Err(StreamError::EndOfStream)));
        p.aclose().await?;
        assert!(matches!(stdin.send(b"x").await, Err(StreamError::Closed)));
        assert!(matches!(p.stdout().unwrap().receive(1).await, Err(StreamError::Closed)));
        assert!(matches!(p.stderr().unwrap().receive(1).await, Err(StreamError::Closed)));
        Ok(())
    })
    .await
}

#[anyio::test]
async fn all_three_streams_can_be_files_or_descriptors() {
    guarded_ok(async {
        let (input, out, err) = (temp_path("in"), temp_path("out"), temp_path("err"));
        std::fs::write(&input, "line\n")?;
        let cmd = "read l; echo \"out $l\"; echo \"err $l\" >&2";
        let p = open_process(
            cmd,
            ProcessOptions::new()
                .stdin(Stdio::File(std::fs::File::open(&input)?))
                .stdout(Stdio::File(std::fs::File::create(&out)?))
                .stderr(Stdio::File(std::fs::File::create(&err)?)),
        )
        .await?;
        assert!(p.stdin().is_none() && p.stdout().is_none() && p.stderr().is_none());
        assert_eq!(p.wait().await?, 0);
        assert_eq!(std::fs::read_to_string(&out)?, "out line\n");
        assert_eq!(std::fs::read_to_string(&err)?, "err line\n");
        // run_process with files captures nothing.
        let done = run_process(
            cmd,
            ProcessOptions::new()
                .stdin(Stdio::File(std::fs::File::open(&input)?))
                .stdout(Stdio::File(std::fs::File::create(&out)?))
                .stderr(Stdio::Null),
        )
        .await?;
        assert!(done.stdout.is_empty() && done.stderr.is_empty());
        assert_eq!(std::fs::read_to_string(&out)?, "out line\n");
        // A descriptor: one end of a socket pair.
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let p =
            open_process(["echo", "via fd"], ProcessOptions::new().stdout(Stdio::Fd(theirs.into()))).await?;
        assert_eq!(p.wait().await?, 0);
        let mut got = String::new();
        std::io::Read::read_to_string(&mut &ours, &mut got)?;
        assert_eq!(got, "via fd\n");
        for f in [input, out, err] {
            std::fs::remove_file(f)?;
        }
        Ok(())
    })
    .await
}

#[anyio::test]
async fn run_process_with_inherited_streams_captures_nothing() {
    guarded_ok(async {
        let done = run_process(
            "echo out >/dev/null; exit 0",
            ProcessOptions::new().stdout(Stdio::Inherit).stderr(Stdio::Inherit),
        )
        .await?;
        assert!(done.stdout.is_empty() && done.stderr.is_empty());
        assert_eq!(done.returncode, 0);
        Ok(())
    })
    .await
}

#[anyio::test]
async fn terminate_reaches_a_child_that_traps_sigterm() {
    guarded_ok(async {
        let p = open_process(
            "trap 'exit 2' TERM; echo ready; while :; do sleep 0.05; done",
            ProcessOptions::new(),
        )
        .await?;
        let out = p.stdout().unwrap();
        let mut seen = Vec::new();
        while !seen.ends_with(b"ready\n") {
            seen.extend(out.receive(64).await?);
        }
        p.terminate()?;
        assert_eq!(p.wait().await?, 2, "the child's own SIGTERM trap ran");
        Ok(())
    })
    .await
}

#[anyio::test]
async fn aclose_with_cancellation_already_pending_kills_and_reaps() {
    guarded_ok(async {
        let p = open_process(["sleep", "10"], ProcessOptions::new()).await?;
        let pid = p.pid();
        let scope = CancelScope::new();
        scope.cancel();
        let r = scope
            .run(async {
                p.aclose().await?;
                Ok::<_, AnyError>(())
            })
            .await?;
        assert_eq!(r, None);
        assert!(!pid_exists(pid));
        assert_eq!(p.returncode(), Some(-libc::SIGKILL));
        assert!(matches!(p.stderr().unwrap().receive(1).await, Err(StreamError::Closed)));
        Ok(())
    })
    .await
}
