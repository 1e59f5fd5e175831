//! Cancellation is recognised wherever an error carries it: inside a foreign error's `source()`
//! chain (hyper wraps it as `hyper::Error(Io(io::Error(Cancelled)))`), inside a boxed error,
//! and as any anyio error's cancellation variant. A task failing with such an error while its
//! group is cancelled is cancelled, not failed, and a cancel scope catches it.

use std::error::Error;
use std::fmt;
use std::io;
use std::sync::Arc;

use anyio::{
    error::AsCancelled,
    move_on_after,
    streams::memory::{ReceiveError, SendError},
    streams::StreamError,
    sync::{CapacityLimiter, CapacityLimiterError},
    task::{GroupError, JoinError, StartError},
    time::sleep_forever,
    AnyError, CancelScope, Cancelled, TaskGroup,
};

mod support;
use support::{guarded, SHORT};

type BoxError = Box<dyn Error + Send + Sync>;

/// Builds a task's error around the cancellation that ended it.
type Wrap = fn(Cancelled) -> BoxError;

/// Like `hyper::Error`: a foreign error holding the `io::Error`, reachable through `source()`
/// only (it implements no anyio trait).
#[derive(Debug)]
struct HyperLike(io::Error);

impl fmt::Display for HyperLike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection error")
    }
}

impl Error for HyperLike {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

/// `e` as hyper reports an I/O error: `HyperLike(io::Error(e))`.
fn hyper_like(e: impl Into<BoxError>) -> HyperLike {
    HyperLike(io::Error::other(e))
}

/// What a task group returned.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    Cancelled,
    Failed(Vec<String>),
}

fn outcome<T, E: fmt::Display>(r: &Result<T, GroupError<E>>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(GroupError::Cancelled(_)) => Outcome::Cancelled,
        Err(GroupError::Failed(v)) => Outcome::Failed(v.iter().map(ToString::to_string).collect()),
    }
}

/// Runs a group, inside a host scope, whose one task waits until cancelled and then fails with
/// `wrap(cancellation)`; the host's deadline cancels it. Returns what the group returned and
/// whether the host scope caught its cancellation (`Ok(None)`) rather than an error.
async fn host_cancels_a_task_failing_with<E>(wrap: fn(Cancelled) -> E) -> (Outcome, bool)
where
    E: AsCancelled + fmt::Display + Send + 'static,
{
    let mut seen = None;
    let host = guarded(move_on_after(SHORT, async {
        let r = TaskGroup::scope(|tg: TaskGroup<E>| async move {
            tg.spawn(async move {
                let c = sleep_forever().await.expect_err("only a cancellation ends it");
                Err::<(), _>(wrap(c))
            });
            Ok(())
        })
        .await;
        seen = Some(outcome(&r));
        r.map(drop)
    }))
    .await;
    (seen.expect("the group finished"), host.is_ok())
}

#[anyio::test]
async fn a_task_failing_with_a_hyper_like_wrapped_cancellation_does_not_fail_its_group() {
    // An idle keep-alive connection of a hyper server, as an AnyError, a boxed error and an
    // io::Error: cancelling the host must give Ok (the task was cancelled, the body finished),
    // not GroupError::Failed.
    let expected = (Outcome::Ok, true);
    assert_eq!(host_cancels_a_task_failing_with(|c| AnyError::other(hyper_like(c))).await, expected);
    assert_eq!(host_cancels_a_task_failing_with(|c| BoxError::from(hyper_like(c))).await, expected);
    assert_eq!(host_cancels_a_task_failing_with(|c| io::Error::other(hyper_like(c))).await, expected);
    // Deeper: hyper's error inside AnyError inside io::Error inside a box.
    assert_eq!(
        host_cancels_a_task_failing_with(|c| {
            BoxError::from(io::Error::other(AnyError::other(hyper_like(io::Error::other(c)))))
        })
        .await,
        expected
    );
}

#[anyio::test]
async fn a_real_failure_in_a_foreign_error_still_fails_the_group() {
    // The walk must not turn every foreign error into a cancellation.
    let (outcome, caught) =
        host_cancels_a_task_failing_with(|_| AnyError::other(hyper_like(io::Error::other("reset")))).await;
    assert_eq!(outcome, Outcome::Failed(vec!["connection error".into()]));
    assert!(!caught, "the host's body returns the group's failure as an error");
}

#[anyio::test]
async fn a_capacity_limiter_cancellation_in_a_task_error_does_not_fail_its_group() {
    let expected = (Outcome::Ok, true);
    assert_eq!(
        host_cancels_a_task_failing_with(|c| BoxError::from(CapacityLimiterError::Cancelled(c))).await,
        expected
    );
    assert_eq!(
        host_cancels_a_task_failing_with(|c| AnyError::other(CapacityLimiterError::Cancelled(c))).await,
        expected
    );
    assert_eq!(
        host_cancels_a_task_failing_with(|c| BoxError::from(hyper_like(CapacityLimiterError::Cancelled(c))))
            .await,
        expected
    );

    // The real thing: a task waiting for a token when its group's host is cancelled, its
    // error converted with `?` into a boxed error and into AnyError.
    let limiter = Arc::new(CapacityLimiter::new(1));
    let held = limiter.acquire().await.unwrap();
    let (l1, l2) = (limiter.clone(), limiter.clone());
    let host = guarded(move_on_after(SHORT, async {
        TaskGroup::scope(|tg: TaskGroup<BoxError>| async move {
            tg.spawn(async move {
                let limiter = l1;
                let _t = limiter.acquire().await?;
                Ok(())
            });
            tg.spawn(async move {
                let limiter = l2;
                let _t = limiter.acquire().await.map_err(AnyError::from).map_err(BoxError::from)?;
                Ok(())
            });
            Ok(())
        })
        .await
        .map(drop)
    }))
    .await;
    assert!(matches!(host, Ok(Some(()))), "the group failed: {:?}", host.map_err(|e| e.to_string()));
    drop(held);
}

/// Every anyio error variant that means cancellation, built around `c`.
fn every_cancellation_variant(c: &Cancelled) -> Vec<(&'static str, BoxError)> {
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut all: Vec<(&'static str, BoxError)> = vec![
        ("Cancelled", Box::new(c.clone())),
        ("CapacityLimiterError", Box::new(CapacityLimiterError::Cancelled(c.clone()))),
        ("StreamError", Box::new(StreamError::Cancelled(c.clone()))),
        ("ReceiveError", Box::new(ReceiveError::Cancelled(c.clone()))),
        ("SendError", Box::new(SendError::Cancelled(7u8, c.clone()))),
        ("JoinError", Box::new(JoinError::Cancelled(c.clone()))),
        ("StartError", Box::new(StartError::<AnyError>::Cancelled(c.clone()))),
        ("GroupError", Box::new(GroupError::<AnyError>::Cancelled(c.clone()))),
        ("AnyError", Box::new(AnyError::from(c.clone()))),
    ];
    #[cfg(unix)]
    all.push(("SocketError", Box::new(anyio::net::SocketError::Cancelled(c.clone()))));
    all
}

#[anyio::test]
async fn every_anyio_cancellation_variant_is_recognised_bare_and_wrapped() {
    let scope = CancelScope::new();
    scope.cancel();
    let mut c = None;
    let _ =
        scope.run(async { anyio::lowlevel::checkpoint().await.inspect_err(|e| c = Some(e.clone())) }).await;
    let c = c.unwrap();
    for (name, bare) in every_cancellation_variant(&c) {
        assert!(bare.as_cancelled().is_some(), "{name} in a Box<dyn Error> is not recognised");
        let any = AnyError::other(bare);
        assert!(any.is_cancelled(), "AnyError::other({name}) is not a cancellation");
    }
    for (name, bare) in every_cancellation_variant(&c) {
        let wrapped = io::Error::other(hyper_like(bare));
        assert!(wrapped.as_cancelled().is_some(), "{name} inside a hyper-like io::Error is not recognised");
    }
    for (name, bare) in every_cancellation_variant(&c) {
        let as_source = BoxError::from(hyper_like(bare));
        assert!(as_source.as_cancelled().is_some(), "{name} as a foreign error's source is not recognised");
    }
}

#[anyio::test]
async fn every_anyio_cancellation_variant_in_a_task_error_does_not_fail_its_group() {
    // A fn pointer per variant (no captures), each put behind a hyper-like wrapper too.
    let variants: [(&str, Wrap); 8] = [
        ("CapacityLimiterError", |c| Box::new(CapacityLimiterError::Cancelled(c))),
        ("StreamError", |c| Box::new(StreamError::Cancelled(c))),
        ("ReceiveError", |c| Box::new(ReceiveError::Cancelled(c))),
        ("SendError", |c| Box::new(SendError::Cancelled(7u8, c))),
        ("JoinError", |c| Box::new(JoinError::Cancelled(c))),
        ("StartError", |c| Box::new(StartError::<AnyError>::Cancelled(c))),
        ("GroupError", |c| Box::new(GroupError::<AnyError>::Cancelled(c))),
        ("hyper-like StreamError", |c| Box::new(hyper_like(StreamError::Cancelled(c)))),
    ];
    for (name, wrap) in variants {
        assert_eq!(host_cancels_a_task_failing_with(wrap).await, (Outcome::Ok, true), "{name}");
    }
}

#[anyio::test]
async fn a_cancel_scope_catches_a_cancellation_carried_in_a_foreign_error_chain() {
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            anyio::lowlevel::checkpoint().await.map_err(|c| io::Error::other(hyper_like(c)))?;
            Ok::<_, io::Error>("unreachable")
        })
        .await;
    assert!(matches!(r, Ok(None)), "io::Error(HyperLike(io::Error(Cancelled))) escaped: {r:?}");
    assert!(scope.cancelled_caught());

    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            anyio::lowlevel::checkpoint()
                .await
                .map_err(|c| BoxError::from(hyper_like(CapacityLimiterError::Cancelled(c))))?;
            Ok::<_, BoxError>("unreachable")
        })
        .await;
    assert!(matches!(r, Ok(None)), "a boxed chain escaped: {:?}", r.map_err(|e| e.to_string()));

    let r = guarded(move_on_after(SHORT, async {
        sleep_forever().await.map_err(|c| AnyError::other(hyper_like(c)))?;
        Ok::<_, AnyError>(())
    }))
    .await;
    assert!(matches!(r, Ok(None)), "move_on_after let it escape: {r:?}");
}

/// An error whose `source()` is itself: a walk without a bound would never end.
#[derive(Debug)]
struct Cycle;

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cycle")
    }
}

impl Error for Cycle {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self)
    }
}

#[anyio::test]
async fn a_long_chain_is_walked_and_a_cyclic_one_ends() {
    let scope = CancelScope::new();
    scope.cancel();
    let mut c = None;
    let _ =
        scope.run(async { anyio::lowlevel::checkpoint().await.inspect_err(|e| c = Some(e.clone())) }).await;
    let mut chain: BoxError = Box::new(c.unwrap());
    for _ in 0..20 {
        chain = Box::new(hyper_like(chain));
    }
    assert!(chain.as_cancelled().is_some(), "a cancellation 40 links deep was not found");
    assert!(BoxError::from(Cycle).as_cancelled().is_none());
    assert!(!AnyError::other(Cycle).is_cancelled());
}
