//! The runtime's blocking pool (`Runtime::spawn_blocking`) and the name lookups that run on it,
//! on every backend.
//!
//! The lookup tests run under [`Instrumented`], the test's runtime wrapped so that every job
//! it hands to the pool is counted and may be held at a gate: that shows a lookup went to the
//! pool, that lookups sit there side by side, and what a cancelled one leaves behind.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyio::{
    move_on_after,
    net::dns::AddrInfoHints,
    net::{getaddrinfo, getnameinfo, SocketError},
    rt::{BlockingJob, BoxTask, IoSource, Runtime, RuntimeHandle, Timer},
    sleep, task_group, AnyError, TaskGroup,
};
use support::{guarded_ok, on_runtime};

/// How long a held job waits for its gate before giving up (and recording that it did).
const GATE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct GateState {
    /// Jobs handed to the pool so far.
    started: usize,
    /// Jobs that finished running.
    finished: usize,
    /// Whether held jobs may go on.
    open: bool,
    /// Opens the gate when this many jobs have started (all of them in the pool at once).
    open_at: Option<usize>,
    /// Jobs that gave up waiting for the gate.
    timed_out: usize,
}

#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

impl Gate {
    fn open(&self) {
        self.state.lock().unwrap().open = true;
        self.changed.notify_all();
    }

    fn snapshot(&self) -> (usize, usize, usize) {
        let s = self.state.lock().unwrap();
        (s.started, s.finished, s.timed_out)
    }

    /// Runs on the pool thread, before the job itself.
    fn pass(&self) {
        let mut s = self.state.lock().unwrap();
        s.started += 1;
        if s.open_at == Some(s.started) {
            s.open = true;
            self.changed.notify_all();
        }
        let (mut s, timeout) = self.changed.wait_timeout_while(s, GATE_TIMEOUT, |s| !s.open).unwrap();
        if timeout.timed_out() {
            s.timed_out += 1;
        }
    }

    fn finished(&self) {
        self.state.lock().unwrap().finished += 1;
    }
}

/// The test's runtime, with its blocking jobs counted and held at a gate.
#[derive(Debug)]
struct Instrumented {
    inner: RuntimeHandle,
    gate: Arc<Gate>,
}

impl Runtime for Instrumented {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn spawn(&self, task: BoxTask) {
        self.inner.spawn(task)
    }
    fn spawn_blocking(&self, job: BlockingJob) -> std::io::Result<()> {
        let gate = self.gate.clone();
        self.inner.spawn_blocking(Box::new(move || {
            gate.pass();
            job();
            gate.finished();
        }))
    }
    fn now(&self) -> Instant {
        self.inner.now()
    }
    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        self.inner.timer(deadline)
    }
    fn register_io(&self, fd: std::os::fd::OwnedFd) -> std::io::Result<Box<dyn IoSource>> {
        self.inner.register_io(fd)
    }
}

/// Runs `body` on the current runtime wrapped in [`Instrumented`] with `gate`.
fn instrumented<F: Future>(gate: &Arc<Gate>, body: F) -> impl Future<Output = F::Output> {
    let rt: RuntimeHandle = Arc::new(Instrumented { inner: anyio::rt::current(), gate: gate.clone() });
    on_runtime(rt, body)
}

/// Waits (cancellably) until `done` holds, polling at a short interval.
async fn until(mut done: impl FnMut() -> bool) -> Result<(), AnyError> {
    while !done() {
        sleep(Duration::from_millis(1)).await?;
    }
    Ok(())
}

#[anyio::test]
async fn jobs_on_the_blocking_pool_run_side_by_side() {
    // Each job waits until all of them have arrived: they only all meet if the pool runs them
    // at the same time, on threads of their own.
    const JOBS: usize = 4;
    let arrived = Arc::new((Mutex::new(0usize), Condvar::new()));
    let met = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    guarded_ok(async {
        for _ in 0..JOBS {
            let (arrived, met, done) = (arrived.clone(), met.clone(), done.clone());
            anyio::rt::current().spawn_blocking(Box::new(move || {
                let (count, cv) = &*arrived;
                let mut n = count.lock().unwrap();
                *n += 1;
                cv.notify_all();
                let (n, timeout) = cv.wait_timeout_while(n, GATE_TIMEOUT, |n| *n < JOBS).unwrap();
                drop(n);
                if !timeout.timed_out() {
                    met.fetch_add(1, Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
            }))?;
        }
        until(|| done.load(Ordering::SeqCst) == JOBS).await?;
        assert_eq!(met.load(Ordering::SeqCst), JOBS, "every job saw all the others running");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn name_lookups_run_on_the_runtime_blocking_pool() {
    let gate = Arc::new(Gate::default());
    gate.open();
    guarded_ok(instrumented(&gate, async {
        let found = getaddrinfo("localhost", Some(80), AddrInfoHints::new()).await?;
        assert!(found.iter().all(|i| i.address.ip().is_loopback()));
        // The job counts itself finished just after it delivered the result: wait for that.
        until(|| gate.snapshot().1 == 1).await?;
        assert_eq!(gate.snapshot(), (1, 1, 0), "getaddrinfo went through spawn_blocking");
        let (host, _) = getnameinfo("127.0.0.1:80".parse().unwrap(), NI_NUMERICHOST).await?;
        assert_eq!(host, "127.0.0.1");
        until(|| gate.snapshot().1 == 2).await?;
        assert_eq!(gate.snapshot(), (2, 2, 0), "getnameinfo went through spawn_blocking");
        // An IP literal needs no resolver, so no trip through the pool.
        getaddrinfo("127.0.0.1", Some(80), AddrInfoHints::new()).await?;
        assert_eq!(gate.snapshot(), (2, 2, 0));
        Ok(())
    }))
    .await;
}

#[anyio::test]
async fn many_concurrent_lookups_are_all_in_the_pool_at_once_and_all_complete() {
    // The gate opens only when every lookup has reached the pool: lookups that ran one after
    // another (or on the task's thread) would leave it shut until it times out.
    const LOOKUPS: usize = 16;
    let gate = Arc::new(Gate::default());
    gate.state.lock().unwrap().open_at = Some(LOOKUPS);
    let resolved = Arc::new(AtomicUsize::new(0));
    let counter = resolved.clone();
    guarded_ok(instrumented(&gate, async {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for port in 0..LOOKUPS as u16 {
                let resolved = counter.clone();
                tg.spawn(async move {
                    let found = getaddrinfo("localhost", Some(port), AddrInfoHints::new()).await?;
                    assert!(found.iter().all(|i| i.address.port() == port));
                    resolved.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                });
            }
            Ok(())
        })
        .await
        .map_err(AnyError::other)?;
        until(|| gate.snapshot().1 == LOOKUPS).await?;
        Ok(())
    }))
    .await;
    assert_eq!(resolved.load(Ordering::SeqCst), LOOKUPS);
    assert_eq!(gate.snapshot(), (LOOKUPS, LOOKUPS, 0), "no lookup waited for the gate in vain");
}

#[anyio::test]
async fn a_cancelled_lookup_returns_cancelled_promptly_and_is_abandoned_on_the_pool() {
    // The gate stays shut: the lookup is stuck in the pool when its scope times out.
    let gate = Arc::new(Gate::default());
    guarded_ok(instrumented(&gate, async {
        let started = Instant::now();
        let r = move_on_after(Duration::from_millis(50), async {
            let e = getaddrinfo("localhost", None, AddrInfoHints::new()).await.unwrap_err();
            assert!(matches!(e, SocketError::Cancelled(_)), "{e:?}");
            Err::<(), AnyError>(e.into())
        })
        .await;
        assert!(matches!(r, Ok(None)), "the scope catches its own cancellation: {r:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "returned {:?} after", started.elapsed());
        assert_eq!(gate.snapshot(), (1, 0, 0), "the lookup is still held in the pool");
        // Released, the abandoned lookup runs to its end; nobody waits for its result.
        gate.open();
        until(|| gate.snapshot().1 == 1).await?;
        Ok(())
    }))
    .await;
    assert_eq!(gate.snapshot(), (1, 1, 0));
}

/// `NI_NUMERICHOST`, as glibc defines it.
const NI_NUMERICHOST: i32 = 1;
