//! Sleeping, the runtime clock and timeout arguments: sleeps are checkpoints, the clock is
//! monotonic, and bad timeout values give a typed error instead of a hang or a silent default.

use std::time::Duration;

use anyio::{
    move_on_after, sleep,
    time::{current_time, seconds, sleep_until, InvalidDuration},
    AnyError, CancelScope, Cancelled,
};

#[anyio::test]
async fn sleep_waits_at_least_its_duration_on_the_runtime_clock() {
    let t0 = current_time();
    sleep(Duration::from_millis(20)).await.unwrap();
    assert!(current_time() - t0 >= Duration::from_millis(20));
}

#[anyio::test]
async fn sleep_until_a_past_instant_is_a_checkpoint_that_succeeds() {
    let past = current_time();
    sleep(Duration::from_millis(1)).await.unwrap();
    sleep_until(past).await.unwrap();
}

#[anyio::test]
async fn sleep_until_returns_once_the_instant_has_passed() {
    let at = current_time() + Duration::from_millis(15);
    sleep_until(at).await.unwrap();
    assert!(current_time() >= at);
}

#[anyio::test]
async fn zero_sleep_in_a_cancelled_scope_fails_like_a_checkpoint() {
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            let e = sleep(Duration::ZERO).await.unwrap_err();
            Err::<(), Cancelled>(e)
        })
        .await;
    assert_eq!(r, Ok(None));
    assert!(scope.cancelled_caught());
}

#[anyio::test]
async fn sleep_of_duration_max_sleeps_until_cancelled_instead_of_overflowing() {
    let r = move_on_after(Duration::from_millis(10), async {
        sleep(Duration::MAX).await?;
        Ok::<_, Cancelled>("woke")
    })
    .await;
    assert_eq!(r, Ok(None));
}

#[anyio::test]
async fn infinite_seconds_mean_no_deadline() {
    let scope = CancelScope::with_timeout(seconds(f64::INFINITY).unwrap());
    let s = scope.clone();
    let r = scope
        .run(async move {
            sleep(Duration::from_millis(1)).await?;
            Ok::<_, AnyError>(s.deadline())
        })
        .await
        .unwrap();
    assert_eq!(r, Some(None), "an infinite timeout sets no deadline");
}

#[test]
fn negative_and_nan_seconds_are_rejected_with_a_clear_message() {
    for bad in [-1.0, -f64::MIN_POSITIVE, f64::NAN, f64::NEG_INFINITY] {
        let err: InvalidDuration = seconds(bad).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("must be zero or more seconds"), "{msg}");
    }
    assert_eq!(seconds(0.0).unwrap(), Duration::ZERO);
    assert_eq!(seconds(0.25).unwrap(), Duration::from_millis(250));
}

// With smol or async-std compiled in, their global executors stand in for a runtime, so there
// is no "no runtime" case to test.
#[cfg(not(any(feature = "smol", feature = "async-std")))]
#[test]
fn calling_sleep_outside_any_runtime_panics_with_the_fix() {
    use std::future::Future;
    let err = std::panic::catch_unwind(|| {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(sleep(Duration::from_millis(1)));
        let _ = fut.as_mut().poll(&mut cx);
    })
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("anyio::run"), "the panic names the fix: {msg}");
}
