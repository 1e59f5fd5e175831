//! A lock for critical sections of a few dozen instructions that never block and never run user
//! code: spin briefly, then yield the thread; never park.
//!
//! Why not `std::sync::Mutex`: when two workers of a multi-thread runtime send and receive on
//! one memory object stream, its lock is contended for every message, and std's mutex parks
//! the loser in the kernel after a short spin. Measured on tokio multi-thread(2), buffered SPSC
//! (`cargo bench --bench channels --features smol`): 21,761 futex calls per run and 78–80 ns
//! per message; with this lock 38 futex calls (the runtime's own) and 35–51 ns. kanal guards its
//! channels with a spin lock for the same reason (flume offers one behind its `spin` feature).
//!
//! A holder preempted by the OS is the risk of any spin lock; waiters spin for at most a few
//! hundred cycles before they start yielding their thread, so the holder gets a CPU back.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::loom::{AtomicBool, Ordering};

/// Doublings of the spin before a waiter yields its thread instead (1 + 2 + ... + 32 pauses).
const SPIN_ROUNDS: u32 = 6;

/// The lock that guards memory object streams, `Event`'s waiters and the permit pool under
/// `Lock` and `Semaphore`: [`Spin`], except in loom builds, where loom's
/// own mutex stands in so that the models of the structures it guards stay small (loom
/// explores every spin as a branch; `Spin` itself has its own model).
#[cfg(not(loom))]
pub(crate) type SpinMutex<T> = Spin<T>;
/// The guard of a [`SpinMutex`].
#[cfg(not(loom))]
pub(crate) type SpinGuard<'a, T> = Guard<'a, T>;

#[cfg(loom)]
pub(crate) struct SpinMutex<T>(crate::loom::Mutex<T>);
#[cfg(loom)]
pub(crate) type SpinGuard<'a, T> = crate::loom::MutexGuard<'a, T>;

#[cfg(loom)]
impl<T> SpinMutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(crate::loom::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        crate::loom::lock(&self.0)
    }
}

/// A mutual-exclusion lock that spins, then yields (see the module docs). No poisoning: the
/// critical sections it guards leave their data consistent before anything can panic.
pub(crate) struct Spin<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one guard at a time (the `locked` flag is
// taken with an Acquire compare-and-swap and released with a Release store, so each holder's
// accesses happen-before the next holder's). Moving a `T` between threads through the lock
// therefore needs `T: Send`, and nothing more: no two threads ever hold a `&T` at once.
unsafe impl<T: Send> Send for Spin<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Spin<T> {}

impl<T> Spin<T> {
    pub(crate) fn new(value: T) -> Self {
        Self { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Takes the lock: one compare-and-swap when it is free.
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
        Guard { lock: self, _data: PhantomData }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut round = 0;
        loop {
            // Test before test-and-set: spin on a shared read, not on a write.
            while self.locked.load(Ordering::Relaxed) {
                if round < SPIN_ROUNDS {
                    for _ in 0..1u32 << round {
                        std::hint::spin_loop();
                    }
                    round += 1;
                } else {
                    yield_thread();
                }
            }
            if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }
}

#[cfg(not(loom))]
fn yield_thread() {
    std::thread::yield_now();
}

#[cfg(loom)]
fn yield_thread() {
    ::loom::thread::yield_now();
}

/// Access to a [`Spin`]'s data; releases the lock when dropped.
pub(crate) struct Guard<'a, T> {
    lock: &'a Spin<T>,
    // Send and Sync exactly when `&mut T` is: sharing the guard shares `&T` (needs `T: Sync`).
    _data: PhantomData<&'a mut T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its holder owns the lock (see `Spin`'s
        // `Sync`), so no other reference to the value exists for the borrow's duration.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the guard's only live borrow.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_concurrent_holders() {
        // Non-atomic read-modify-write under the lock: any overlap would lose increments.
        let m = Arc::new(Spin::new((0u64, false)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let mut g = m.lock();
                        assert!(!g.1, "two holders at once");
                        g.1 = true;
                        let v = g.0;
                        std::hint::black_box(&mut *g);
                        g.0 = v + 1;
                        g.1 = false;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(m.lock().0, 80_000);
    }

    #[test]
    fn a_guard_releases_on_drop() {
        let m = Spin::new(1);
        *m.lock() += 1;
        *m.lock() += 1;
        assert_eq!(*m.lock(), 3);
    }
}
