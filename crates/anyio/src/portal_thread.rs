//! Blocking portals with a runtime thread of their own: [`start_blocking_portal`] and the
//! shared [`BlockingPortalProvider`]. Here rather than in anyio-core because they start a run,
//! which needs the backends.

use std::fmt;
use std::ops::Deref;
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread::JoinHandle;

use anyio_core::from_thread::BlockingPortal;

use crate::{run_on, Backend, RunError};

/// A [`BlockingPortal`] served by a thread that runs a run of its own (made by
/// [`start_blocking_portal`]). Derefs to the portal. Dropping it stops the portal, cancelling
/// the tasks still running, and joins the thread; [`stop`](Self::stop) lets them finish.
pub struct PortalThread {
    portal: BlockingPortal,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for PortalThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalThread").field("portal", &self.portal).finish_non_exhaustive()
    }
}

impl Deref for PortalThread {
    type Target = BlockingPortal;

    fn deref(&self) -> &BlockingPortal {
        &self.portal
    }
}

/// Starts a thread that runs `backend` with a portal into it, for synchronous code that needs
/// async code (AnyIO's `start_blocking_portal`).
///
/// # Errors
///
/// [`RunError::NotCompiled`] if `backend` is not compiled in; [`RunError::Io`] if the thread
/// or the runtime could not be started.
///
/// # Examples
///
/// ```
/// use anyio::from_thread::start_blocking_portal;
/// let portal = start_blocking_portal(anyio::Backend::default_backend()).unwrap();
/// let n = portal.call(|| async {
///     anyio::sleep(std::time::Duration::from_millis(1)).await.unwrap();
///     42
/// });
/// assert_eq!(n.unwrap(), 42);
/// portal.stop(false); // let running tasks finish, then join the thread
/// ```
pub fn start_blocking_portal(backend: Backend) -> Result<PortalThread, RunError> {
    if !backend.is_compiled() {
        return Err(RunError::NotCompiled(backend));
    }
    let (tx, rx) = mpsc::channel::<Result<BlockingPortal, RunError>>();
    let thread = std::thread::Builder::new()
        .name("anyio-portal".into())
        .spawn(move || {
            let ready = tx.clone();
            let r = run_on(backend, async move {
                let portal = BlockingPortal::unserved();
                let _ = ready.send(Ok(portal.clone()));
                // Its error is the cancellation of the run's own main task: nothing to report.
                let _ = portal.serve().await;
            });
            if let Err(e) = r {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(RunError::Io)?;
    match rx.recv() {
        Ok(Ok(portal)) => Ok(PortalThread { portal, thread: Some(thread) }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(RunError::Io(std::io::Error::other("the portal's thread ended before its run started")))
        }
    }
}

impl PortalThread {
    /// Stops the portal (cancelling the tasks still running if `cancel_remaining`), waits for
    /// its tasks and joins its thread.
    ///
    /// ```
    /// let portal = anyio::from_thread::start_blocking_portal(anyio::Backend::default_backend()).unwrap();
    /// portal.stop(true);
    /// ```
    pub fn stop(mut self, cancel_remaining: bool) {
        self.shut_down(cancel_remaining);
    }

    fn shut_down(&mut self, cancel_remaining: bool) {
        let Some(thread) = self.thread.take() else { return };
        if self.portal.stop_blocking(cancel_remaining).is_ok() {
            let _ = thread.join();
        }
        // On a thread that polls tasks it cannot wait: the portal is closed and its thread
        // ends on its own once the tasks have.
    }
}

impl Drop for PortalThread {
    fn drop(&mut self) {
        self.shut_down(true);
    }
}

/// A portal shared by everyone who needs one (AnyIO's `BlockingPortalProvider`): the first
/// [`lease`](Self::lease) starts a portal thread, the others share it, and it stops when the
/// last lease is dropped.
///
/// # Examples
///
/// ```
/// use anyio::from_thread::BlockingPortalProvider;
/// let provider = BlockingPortalProvider::new(anyio::Backend::default_backend());
/// let a = provider.lease().unwrap();
/// let b = provider.lease().unwrap();
/// assert_eq!(a.call_sync(|| 1).unwrap() + b.call_sync(|| 2).unwrap(), 3);
/// ```
pub struct BlockingPortalProvider {
    backend: Backend,
    state: Mutex<(usize, Option<PortalThread>)>,
}

impl fmt::Debug for BlockingPortalProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPortalProvider").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl BlockingPortalProvider {
    /// A provider whose portals run `backend`.
    pub const fn new(backend: Backend) -> Self {
        Self { backend, state: Mutex::new((0, None)) }
    }

    /// A lease on the shared portal, starting it if no lease is held.
    ///
    /// # Errors
    ///
    /// As [`start_blocking_portal`].
    pub fn lease(&self) -> Result<PortalLease<'_>, RunError> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.1.is_none() {
            st.1 = Some(start_blocking_portal(self.backend)?);
        }
        st.0 += 1;
        let portal = st.1.as_ref().map(|t| t.portal.clone()).expect("started above");
        Ok(PortalLease { provider: self, portal })
    }
}

/// A lease on a [`BlockingPortalProvider`]'s portal; derefs to it.
pub struct PortalLease<'a> {
    provider: &'a BlockingPortalProvider,
    portal: BlockingPortal,
}

impl fmt::Debug for PortalLease<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalLease").field("portal", &self.portal).finish()
    }
}

impl Deref for PortalLease<'_> {
    type Target = BlockingPortal;

    fn deref(&self) -> &BlockingPortal {
        &self.portal
    }
}

impl Drop for PortalLease<'_> {
    fn drop(&mut self) {
        let last = {
            let mut st = self.provider.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.0 -= 1;
            if st.0 == 0 {
                st.1.take()
            } else {
                None
            }
        };
        // Stopped outside the lock: a new lease meanwhile starts a new portal.
        if let Some(thread) = last {
            thread.stop(false);
        }
    }
}
