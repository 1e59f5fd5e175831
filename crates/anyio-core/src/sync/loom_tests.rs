//! loom models of the permit hand-off: a permit released to a queued waiter that is then
//! dropped (or keeps waiting) is never lost or duplicated.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p anyio-core --lib --release loom`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use ::loom::thread;

use super::permits::Permits;

/// A holder releases while a queued waiter is dropped on another thread: the permit ends up
/// back in the pool exactly once.
#[test]
fn loom_release_versus_dropping_a_queued_waiter() {
    ::loom::model(|| {
        let permits = Arc::new(Permits::new(1));
        assert!(permits.try_acquire());
        let p = permits.clone();
        let waiter = thread::spawn(move || {
            let mut acquire = p.acquire();
            let mut cx = Context::from_waker(Waker::noop());
            let got = matches!(Pin::new(&mut acquire).poll(&mut cx), Poll::Ready(Ok(())));
            drop(acquire);
            if got {
                p.release();
            }
        });
        permits.release();
        waiter.join().unwrap();
        assert_eq!(permits.available(), 1, "the permit was lost or duplicated");
        assert_eq!(permits.waiting(), 0);
    });
}

/// Two releases race with one queued waiter that completes: one permit goes to the waiter, one
/// to the pool.
#[test]
fn loom_two_releases_one_waiter() {
    ::loom::model(|| {
        let permits = Arc::new(Permits::new(0));
        let mut acquire = permits.acquire();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut acquire).poll(&mut cx).is_pending());
        let (a, b) = (permits.clone(), permits.clone());
        let t1 = thread::spawn(move || a.release());
        let t2 = thread::spawn(move || b.release());
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(matches!(Pin::new(&mut acquire).poll(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(permits.available(), 1);
    });
}
