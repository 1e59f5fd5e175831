//! Running a blocking call (a name lookup) on its own thread while the task waits, cancellably.
//! A cancelled wait abandons the thread, which finishes its call and drops the result: what
//! AnyIO does for `getaddrinfo` with `abandon_on_cancel`.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

use crate::cancel::current::{check_current, current_arc};
use crate::cancel::node::WaitRegistration;
use crate::error::Cancelled;

struct Slot<T> {
    result: Option<T>,
    waker: Option<Waker>,
}

pub(crate) async fn run_blocking<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Cancelled> {
    check_current()?;
    let slot = Arc::new(Mutex::new(Slot { result: None, waker: None }));
    let theirs = slot.clone();
    let spawned = std::thread::Builder::new().name(name.to_string()).spawn(move || {
        let out = f();
        let waker = {
            let mut s = theirs.lock().unwrap_or_else(PoisonError::into_inner);
            s.result = Some(out);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    });
    if let Err(e) = spawned {
        panic!("anyio: could not start a thread for a blocking call: {e}");
    }
    let mut reg = WaitRegistration::new();
    poll_fn(|cx| {
        {
            let mut s = slot.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(out) = s.result.take() {
                return Poll::Ready(Ok(out));
            }
            s.waker = Some(cx.waker().clone());
        }
        if let Some(node) = current_arc() {
            reg.register(&node, cx.waker())?;
        }
        Poll::Pending
    })
    .await
}
