//! Virtual time on every backend (trio's test_mock_clock.py, and beyond it): `MockClock`'s
//! arithmetic and errors, autojump that skips hours in milliseconds, autojump holding off
//! while a worker-thread job runs or someone waits for idleness, a 24-hour retry loop with
//! timeouts, and a TCP server and client whose timeouts run on the mock clock.
//!
//! No assertion here depends on the machine's speed: real-time bounds are loose enough to
//! only tell virtual time (milliseconds) from real time (hours).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyio::testing::{wait_all_tasks_blocked, wait_all_tasks_blocked_for, MockClock, MockClockError};
use anyio::time::current_time;
use anyio::{fail_after, move_on_after, sleep, task_group, AnyError, Backend, RunOptions};

/// A bound on real time that virtual hours never fit in, and any machine meets.
const REAL_BOUND: Duration = Duration::from_secs(60);

type Log = Arc<Mutex<Vec<&'static str>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// Sleeps `secs` seconds of the run's time, then logs `what`.
async fn sleep_then(secs: u64, log: Log, what: &'static str) -> Result<(), AnyError> {
    sleep(Duration::from_secs(secs)).await?;
    log.lock().unwrap().push(what);
    Ok(())
}

#[test]
fn the_clock_moves_only_by_jumps_at_rate_zero() {
    let c = MockClock::new();
    assert_eq!(c.rate(), 0.0);
    assert_eq!(c.autojump_threshold(), f64::INFINITY);
    let t0 = c.current_time();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(c.current_time(), t0);
    c.jump(1.2).unwrap();
    assert_eq!(c.current_time() - t0, Duration::from_secs_f64(1.2));
    c.advance(Duration::from_millis(800));
    assert_eq!(c.current_time() - t0, Duration::from_secs(2));
    assert_eq!(c.jump(0.0), Ok(()));
    assert_eq!(c.current_time() - t0, Duration::from_secs(2));
}

#[test]
fn bad_settings_are_typed_errors_with_tries_messages() {
    let c = MockClock::new();
    let t0 = c.current_time();
    let e = c.jump(-1.0).unwrap_err();
    assert_eq!(e, MockClockError::BackwardJump(-1.0));
    assert_eq!(e.to_string(), "time can't go backwards");
    assert!(matches!(c.jump(f64::NAN), Err(MockClockError::BackwardJump(x)) if x.is_nan()));
    assert!(matches!(c.jump(f64::INFINITY), Err(MockClockError::JumpTooLarge(_))));
    assert_eq!(c.current_time(), t0, "a refused jump moves nothing");

    let e = c.set_rate(-1.0).unwrap_err();
    assert_eq!(e.to_string(), "rate must be >= 0 (got -1)");
    assert!(matches!(c.set_rate(f64::NAN), Err(MockClockError::InvalidRate(_))));
    assert_eq!(c.rate(), 0.0, "a refused rate changes nothing");

    assert!(matches!(c.set_autojump_threshold(-0.5), Err(MockClockError::InvalidThreshold(_))));
    assert!(matches!(c.set_autojump_threshold(f64::NAN), Err(MockClockError::InvalidThreshold(_))));
    assert_eq!(c.autojump_threshold(), f64::INFINITY);
    c.set_autojump_threshold(0.0).unwrap();
    assert_eq!(c.autojump_threshold(), 0.0);
    assert!(format!("{c:?}").contains("MockClock"));
}

#[test]
fn a_rate_change_keeps_the_time_passed_and_changes_the_slope() {
    let c = MockClock::new();
    c.jump(10.0).unwrap();
    let before = c.current_time();
    c.set_rate(1000.0).unwrap();
    let real = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    let virt = c.current_time() - before;
    // At least 1000 virtual seconds per real second passed, and at most as many as real
    // time allows.
    assert!(virt >= Duration::from_secs(20), "{virt:?}");
    assert!(virt <= real.elapsed() * 1000 + Duration::from_secs(1), "{virt:?}");
    c.set_rate(0.0).unwrap();
    let frozen = c.current_time();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(c.current_time(), frozen);
}

#[anyio::test(mock_clock)]
async fn autojump_skips_sleeps_and_takes_effect_at_once() {
    let clock = MockClock::current().expect("the test runs on a mock clock");
    assert_eq!(clock.autojump_threshold(), f64::INFINITY);
    clock.set_autojump_threshold(0.0).unwrap();
    let real_start = Instant::now();
    let mut start = current_time();
    for i in 0..10u64 {
        sleep(Duration::from_secs(10 * i)).await.unwrap();
        assert_eq!(current_time() - start, Duration::from_secs(10 * i));
        start = current_time();
    }
    assert!(real_start.elapsed() < REAL_BOUND);

    // Waiting for idleness holds the jump off.
    clock.set_autojump_threshold(0.02).unwrap();
    let t = current_time();
    wait_all_tasks_blocked().await.unwrap();
    assert_eq!(current_time(), t);
    wait_all_tasks_blocked_for(Duration::from_millis(10)).await.unwrap();
    assert_eq!(current_time(), t);

    // A threshold lowered while everything sleeps applies to that sleep.
    clock.set_autojump_threshold(10_000.0).unwrap();
    wait_all_tasks_blocked().await.unwrap();
    clock.set_autojump_threshold(0.0).unwrap();
    sleep(Duration::from_secs(100_000)).await.unwrap();
    assert_eq!(current_time() - t, Duration::from_secs(100_000));
}

#[anyio::test(mock_clock)]
async fn a_clock_not_in_the_run_does_not_change_it() {
    let clock = MockClock::current().unwrap();
    clock.set_autojump_threshold(0.02).unwrap();
    let other = MockClock::new();
    other.set_autojump_threshold(0.01).unwrap();
    wait_all_tasks_blocked_for(Duration::from_millis(15)).await.unwrap();
    let t = current_time();
    sleep(Duration::from_secs(100_000)).await.unwrap();
    assert_eq!(current_time() - t, Duration::from_secs(100_000));
    assert_eq!(clock.autojump_threshold(), 0.02);
}

#[test]
fn a_threshold_set_before_the_run_is_used() {
    for backend in Backend::compiled() {
        let clock = MockClock::new();
        clock.set_autojump_threshold(0.1).unwrap();
        clock.set_autojump_threshold(0.01).unwrap();
        let real = Instant::now();
        let virt = anyio::run_with(backend, RunOptions::new().clock(clock.clone()), async {
            let t0 = current_time();
            sleep(Duration::from_secs(10_000)).await.unwrap();
            current_time() - t0
        })
        .unwrap();
        assert_eq!(virt, Duration::from_secs(10_000), "{backend}");
        assert!(real.elapsed() < REAL_BOUND, "{backend}");
    }
}

#[anyio::test(autojump)]
async fn a_thousand_sleeps_take_an_hour_of_virtual_time_only() {
    let real = Instant::now();
    let t0 = current_time();
    for _ in 0..1000 {
        sleep(Duration::from_millis(3600)).await.unwrap();
    }
    assert_eq!(current_time() - t0, Duration::from_secs(3600));
    assert!(real.elapsed() < REAL_BOUND);
}

#[anyio::test(autojump)]
async fn a_waiter_for_idleness_wakes_before_the_clock_jumps() {
    let record = log();
    let r = record.clone();
    task_group(|tg| async move {
        tg.spawn(sleep_then(100, r.clone(), "yawn"));
        let r2 = r.clone();
        tg.spawn(async move {
            wait_all_tasks_blocked().await?;
            r2.lock().unwrap().push("waiter woke");
            sleep(Duration::from_secs(1000)).await?;
            r2.lock().unwrap().push("waiter done");
            Ok::<_, AnyError>(())
        });
        Ok::<_, AnyError>(())
    })
    .await
    .unwrap();
    assert_eq!(*record.lock().unwrap(), ["waiter woke", "yawn", "waiter done"]);
}

#[anyio::test(autojump)]
async fn a_waiter_with_a_cushion_holds_the_jump_off_until_it_wakes() {
    let record = log();
    let r = record.clone();
    task_group(|tg| async move {
        tg.spawn(sleep_then(100, r.clone(), "yawn"));
        let r2 = r.clone();
        tg.spawn(async move {
            wait_all_tasks_blocked_for(Duration::from_millis(200)).await?;
            r2.lock().unwrap().push("waiter done");
            Ok::<_, AnyError>(())
        });
        Ok::<_, AnyError>(())
    })
    .await
    .unwrap();
    assert_eq!(*record.lock().unwrap(), ["waiter done", "yawn"]);
}

#[anyio::test(mock_clock)]
async fn a_jump_fires_the_timers_it_passes() {
    let clock = MockClock::current().unwrap();
    let record = log();
    let r = record.clone();
    task_group(|tg| async move {
        let r1 = r.clone();
        tg.spawn(async move {
            r1.lock().unwrap().push("tt start");
            sleep(Duration::from_secs(5)).await?;
            r1.lock().unwrap().push("tt finished");
            Ok::<_, AnyError>(())
        });
        wait_all_tasks_blocked().await?;
        assert_eq!(*r.lock().unwrap(), ["tt start"]);
        clock.jump(10.0)?;
        wait_all_tasks_blocked().await?;
        assert_eq!(*r.lock().unwrap(), ["tt start", "tt finished"]);
        Ok::<_, AnyError>(())
    })
    .await
    .unwrap();
}

#[anyio::test(autojump)]
async fn a_worker_thread_job_in_flight_is_not_idle() {
    let record = log();
    let r = record.clone();
    task_group(|tg| async move {
        let r1 = r.clone();
        tg.spawn(async move {
            anyio::to_thread::run_sync(|| std::thread::sleep(Duration::from_millis(100))).await?;
            r1.lock().unwrap().push("thread done");
            Ok::<_, AnyError>(())
        });
        tg.spawn(sleep_then(1, r.clone(), "slept"));
        Ok::<_, AnyError>(())
    })
    .await
    .unwrap();
    // Had the clock jumped while the job ran, the sleeper would have finished first.
    assert_eq!(*record.lock().unwrap(), ["thread done", "slept"]);
}

#[anyio::test(mock_clock)]
async fn a_positive_rate_runs_timers_on_real_time_scaled() {
    let clock = MockClock::current().unwrap();
    clock.set_rate(1000.0).unwrap();
    let real = Instant::now();
    let t0 = current_time();
    sleep(Duration::from_secs(20)).await.unwrap();
    assert!(current_time() - t0 >= Duration::from_secs(20));
    // 20 virtual seconds at 1000x are 20 ms of real time; far less than 20 s on any machine.
    assert!(real.elapsed() < Duration::from_secs(20));
    // A deadline scope on the scaled clock.
    let r = move_on_after(Duration::from_secs(5), sleep(Duration::from_secs(3600))).await;
    assert!(matches!(r, Ok(None)), "{r:?}");
}

/// A retry loop with a timeout per attempt and capped exponential backoff, against a
/// service that never answers, for 24 hours of virtual time.
#[anyio::test(autojump)]
async fn a_day_long_retry_loop_runs_in_virtual_time() {
    let real = Instant::now();
    let start = current_time();
    let day = Duration::from_secs(24 * 3600);
    let mut attempts = 0u32;
    let mut backoff = Duration::from_secs(1);
    let mut expected = Duration::ZERO;
    while current_time() - start < day {
        attempts += 1;
        // The attempt: a request that never gets an answer, bounded at 30 s.
        let r = move_on_after(Duration::from_secs(30), anyio::time::sleep_forever()).await;
        assert!(matches!(r, Ok(None)));
        // A fail_after scope around the same wait reports the timeout as an error.
        let e = fail_after(Duration::from_secs(1), async {
            anyio::time::sleep_forever().await?;
            Ok::<(), AnyError>(())
        })
        .await;
        assert!(e.is_err());
        sleep(backoff).await.unwrap();
        expected += Duration::from_secs(31) + backoff;
        backoff = (backoff * 2).min(Duration::from_secs(600));
    }
    assert_eq!(current_time() - start, expected, "every deadline was hit exactly");
    // 10 attempts with backoffs 1+2+...+512 s (1,333 s), then 631 s per attempt, to pass
    // 86,400 s: 135 more.
    assert_eq!(attempts, 145);
    assert!(real.elapsed() < REAL_BOUND);
}

/// A server that answers each request after 5 virtual seconds, and a client whose 60 s
/// timeout must not fire; then a request the server never answers, which must time out at
/// exactly 60 s. Loopback I/O in flight must not count as idle.
#[anyio::test(autojump)]
async fn a_tcp_client_and_server_run_on_the_mock_clock() {
    use anyio::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let real = Instant::now();
    task_group(|tg| async move {
        tg.spawn(async move {
            let conn = listener.accept().await?;
            let mut buf = [0u8; 1];
            loop {
                match conn.receive_into(&mut buf).await {
                    Ok(_) if buf[0] == b'q' => continue, // never answered
                    Ok(_) => {
                        sleep(Duration::from_secs(5)).await?;
                        conn.send(&buf).await?;
                    }
                    Err(_) => return Ok::<_, AnyError>(()),
                }
            }
        });
        let client = anyio::net::connect_tcp("127.0.0.1", addr.port()).await?;
        let t0 = current_time();
        for i in 0..20u8 {
            let byte = b'A' + i;
            fail_after(Duration::from_secs(60), async {
                client.send(&[byte]).await?;
                let mut buf = [0u8; 1];
                client.receive_into(&mut buf).await?;
                assert_eq!(buf[0], byte);
                Ok::<_, AnyError>(())
            })
            .await?;
        }
        assert_eq!(current_time() - t0, Duration::from_secs(100));
        let t1 = current_time();
        let r = move_on_after(Duration::from_secs(60), async {
            client.send(b"q").await?;
            let mut buf = [0u8; 1];
            client.receive_into(&mut buf).await?;
            Ok::<_, AnyError>(())
        })
        .await?;
        assert!(r.is_none(), "the unanswered request timed out");
        assert_eq!(current_time() - t1, Duration::from_secs(60));
        drop(client);
        Ok::<_, AnyError>(())
    })
    .await
    .unwrap();
    assert!(real.elapsed() < REAL_BOUND);
}

#[test]
fn a_plain_run_has_no_clock_and_real_time() {
    anyio::run(async {
        assert!(MockClock::current().is_none());
        let t0 = current_time();
        let real = Instant::now();
        sleep(Duration::from_millis(5)).await.unwrap();
        assert!(current_time() - t0 >= Duration::from_millis(5));
        assert!(real.elapsed() >= Duration::from_millis(5));
    });
}

/// tokio's own paused clock (`start_paused`) still drives anyio's time in a runtime the
/// application built: its auto-advance skips the hour.
#[cfg(feature = "tokio")]
#[test]
fn tokios_paused_clock_still_drives_anyio_time() {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    let real = Instant::now();
    let virt = runtime.block_on(async {
        let handle = Arc::new(anyio::backends::tokio::TokioRuntime::new(tokio::runtime::Handle::current()));
        let _entered = anyio::rt::enter(handle);
        let t0 = current_time();
        sleep(Duration::from_secs(3600)).await.unwrap();
        current_time() - t0
    });
    assert!(virt >= Duration::from_secs(3600), "{virt:?}");
    assert!(real.elapsed() < REAL_BOUND);
}

/// `backends(...)` keeps only the named cases: were a tokio case generated, it would fail here.
#[anyio::test(backends(smol, async_std), autojump)]
async fn backends_restricts_the_cases_and_combines_with_a_clock() {
    let name = anyio::current_backend().unwrap();
    assert!(name == "smol" || name == "async-std", "{name}");
    assert!(MockClock::current().is_some());
}

/// `autojump = <seconds>` sets the threshold.
#[anyio::test(autojump = 0.005, backends(tokio_current_thread))]
async fn an_autojump_threshold_is_taken_from_the_attribute() {
    assert_eq!(anyio::current_backend(), Some("tokio"));
    assert_eq!(MockClock::current().unwrap().autojump_threshold(), 0.005);
    let t0 = current_time();
    sleep(Duration::from_secs(60)).await.unwrap();
    assert_eq!(current_time() - t0, Duration::from_secs(60));
}
