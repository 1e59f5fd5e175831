//! A lock for critical sections of a few dozen instructions that never block and never run user
//! code: a waiter backs off (see below), yields the thread after 16 tries, and never parks.
//!
//! Why not `std::sync::Mutex`: when two workers of a multi-thread runtime send and receive on
//! one memory object stream, its lock is contended for every message, and std's mutex parks
//! the loser in the kernel after a short spin. Measured on tokio multi-thread(2), buffered SPSC
//! (`cargo bench --bench channels --features smol`): 21,761 futex calls per run and 78–80 ns
//! per message; with this lock 38 futex calls (the runtime's own) and 35–51 ns. kanal guards its
//! channels with a spin lock for the same reason (flume offers one behind its `spin` feature).
//!
//! A waiter that finds the lock taken backs off for a long, randomised run of pause hints
//! before each try (about 1.3–2.5 µs where a pause takes 10 ns), as kanal's lock does (its runs
//! are 64–191 pauses). Retrying soon after a short spin, as this lock first did, handed the
//! lock's cache line (and the state it guards) from one core to the other for nearly every
//! section, so producers and consumers of one channel on two workers ran at the speed of the
//! line's round trips; backing off leaves the holder's core a run of uncontended sections
//! (MPMC 4/4 on tokio multi-thread(2): 168–172 → 24–26 ns per message; the other rows are in
//! `docs/benchmarks.md`, fifth session). The price is a waiter's latency under contention: a
//! microsecond or two, about what parking it in the kernel and waking it again would cost.
//!
//! A holder preempted by the OS is the risk of any spin lock; after 16 tries a waiter also
//! yields its thread before each try, so the holder gets a CPU back. Until then a waiter burns
//! its 16 backoffs (20–40 µs here) where the lock's first version yielded after about 0.6 µs:
//! the price of the throughput above when a holder is preempted, which the sections' length
//! makes rare.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::loom::{AtomicBool, Ordering};

/// A waiter pauses `BACKOFF_MIN..2 * BACKOFF_MIN` times (a CPU's pause hint: 9.7 ns on the
/// Xeon VM of `docs/benchmarks.md`'s fifth session) before each try.
const BACKOFF_MIN: u32 = 128;
/// Tries before each further one also yields the thread (the holder may have been preempted).
/// Under loom, every try yields, so that the model runs the holder.
const BACKOFF_TRIES: u32 = if cfg!(loom) { 0 } else { 16 };

/// The lock that guards memory object streams, `Event`'s waiters, the permit pool under
/// `Lock` and `Semaphore`, and a task's outcome slot: [`Spin`], except in loom builds, where loom's
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

impl<T: Default> Default for SpinMutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

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

    /// The value, through an exclusive borrow of the lock: nobody can hold it. (Loom builds
    /// guard `TaskSlot`, its one user, with loom's mutex instead.)
    #[cfg(not(loom))]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Takes the lock: one compare-and-swap when it is free. A strong one: a spurious failure
    /// (possible on LL/SC machines) would cost a whole backoff. On x86 the two are the same.
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        if self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
        Guard { lock: self, _data: PhantomData }
    }

    #[cold]
    fn lock_contended(&self) {
        // A long, randomised pause before each try, the first one included. The holder's core
        // keeps the lock's cache line (and the data it guards) for a run of sections instead
        // of handing it to this core and back for every one (see the module docs).
        let mut tries = 0u32;
        loop {
            for _ in 0..BACKOFF_MIN + (next_random() % BACKOFF_MIN) {
                std::hint::spin_loop();
            }
            if self.try_take() {
                return;
            }
            tries = tries.saturating_add(1);
            if tries >= BACKOFF_TRIES {
                yield_thread();
            }
        }
    }

    /// One test-and-test-and-set: a shared read first, so that waiting costs no writes.
    #[inline]
    fn try_take(&self) -> bool {
        !self.locked.load(Ordering::Relaxed)
            && self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }
}

/// A thread's pseudo-random numbers for the backoff, so that two waiters do not retry in step.
fn next_random() -> u32 {
    #[cfg(not(loom))]
    {
        thread_local! {
            static STATE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        }
        STATE
            .try_with(|s| {
                let mut x = s.get();
                if x == 0 {
                    // Seeded from the thread's stack address: usually distinct per thread
                    // (a collision only makes two waiters back off in step).
                    x = (std::ptr::addr_of!(x) as usize as u32) | 1;
                }
                // xorshift32
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                s.set(x);
                x
            })
            .unwrap_or(1)
    }
    #[cfg(loom)]
    {
        1
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
