//! Helpers shared by the integration tests: hang guards and waiting on flags.
#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyio::{fail_after, sleep, AnyError, Cancelled};

/// Hang guard: generous, only fires if the behaviour under test is broken.
pub(crate) const GUARD: Duration = Duration::from_secs(10);

/// [`GUARD`], unless `ANYIO_TEST_GUARD_SECS` sets another: CI runs tests under valgrind, which
/// is some 50 times slower and runs one thread at a time, so a test that spins through
/// checkpoints there can take seconds without having lost a wake-up.
pub(crate) fn guard_time() -> Duration {
    std::env::var("ANYIO_TEST_GUARD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(GUARD, Duration::from_secs)
}
/// A deadline that is expected to fire; nothing asserts how precisely.
pub(crate) const SHORT: Duration = Duration::from_millis(20);
/// A deadline that must never fire during a test.
pub(crate) const NEVER: Duration = Duration::from_secs(3600);

/// Runs `fut` under a hang guard of [`guard_time`] (an enclosing `fail_after` scope).
///
/// The guard's timer wakes the task when it fires, and a scope polls its body before its own
/// timer, so a test whose wake-up was lost could still complete normally at that moment: a
/// test that only finishes after half the guard's time is failed as a lost wake-up. Normal
/// runs take milliseconds, so this is a hang check, not a timing assertion.
pub(crate) async fn guarded<T>(fut: impl Future<Output = T>) -> T {
    let guard = guard_time();
    let start = std::time::Instant::now();
    let out = fail_after(guard, async { Ok::<_, AnyError>(fut.await) })
        .await
        .unwrap_or_else(|_| panic!("hang guard: the test did not finish within {guard:?}"));
    let took = start.elapsed();
    assert!(
        took < guard / 2,
        "finished only after {took:?}, when the hang guard woke it: a wake-up was lost"
    );
    out
}

/// [`guarded`] for a body that returns a `Result`: a failed body fails the test.
pub(crate) async fn guarded_ok<T>(body: impl Future<Output = Result<T, AnyError>>) -> T {
    match guarded(body).await {
        Ok(v) => v,
        Err(e) => panic!("the test body failed: {e}"),
    }
}

/// Waits (cancellably) until `flag` is set, polling at a short interval.
pub(crate) async fn wait_for(flag: &AtomicBool) -> Result<(), Cancelled> {
    while !flag.load(Ordering::SeqCst) {
        sleep(Duration::from_millis(1)).await?;
    }
    Ok(())
}

/// Polls `fut` as an anyio task of its own (a fresh task id) from inside this task, so one test
/// body can play several tasks deterministically: a lock's holder and the task queueing for it.
pub(crate) fn as_other_task<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    anyio::__private::main_task(fut)
}

/// Polls `fut` with `rt` as the current runtime (as a task group polls its children), so the
/// task groups and operations it starts use `rt`: a test's own `Runtime` wrapper.
pub(crate) fn on_runtime<F: Future>(rt: anyio::rt::RuntimeHandle, fut: F) -> impl Future<Output = F::Output> {
    let mut fut = Box::pin(fut);
    std::future::poll_fn(move |cx| {
        let _rt = anyio::rt::enter(rt.clone());
        fut.as_mut().poll(cx)
    })
}

/// The message of a panic payload (`panic!` with a literal or a formatted string).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| String::from("<non-string panic payload>"))
}

/// Hang guard for the heavy reliability tests (tens of MiB, a thousand connections), which
/// share two cores with the rest of the suite: only a hang trips it.
pub(crate) const LONG_GUARD: Duration = Duration::from_secs(120);

/// [`guarded_ok`] with [`LONG_GUARD`]: fails the test if `body` fails or does not finish.
pub(crate) async fn guarded_long_ok<T>(body: impl Future<Output = Result<T, AnyError>>) -> T {
    match fail_after(LONG_GUARD, body).await {
        Ok(v) => v,
        Err(e) if e.is_timeout() => panic!("hang guard: the test did not finish within {LONG_GUARD:?}"),
        Err(e) => panic!("the test body failed: {e}"),
    }
}

/// Deterministic, non-repeating-looking test bytes (xorshift), so a misplaced or lost chunk
/// shows up as a mismatch.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs `fut` and counts the times it returned `Pending` on the way: how often a loop of
/// operations that never wait yielded to the coop budget.
pub(crate) async fn count_pendings<F: Future>(fut: F) -> (F::Output, usize) {
    let mut fut = std::pin::pin!(fut);
    let mut pendings = 0;
    let out = std::future::poll_fn(|cx| {
        let poll = fut.as_mut().poll(cx);
        pendings += usize::from(poll.is_pending());
        poll
    })
    .await;
    (out, pendings)
}
