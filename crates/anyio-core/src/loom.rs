//! The loom seam: synchronisation types come from `loom` under `--cfg loom`, from `std` otherwise,
//! so the scope tree's wake paths can be model-checked without changing the code under test.

#[cfg(loom)]
pub(crate) use ::loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use ::loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves its data
/// consistent before anything that can panic runs, so a poisoned lock holds valid data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(loom)]
    {
        m.lock().unwrap()
    }
    #[cfg(not(loom))]
    {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The data of a mutex reached through `&mut` (no other reference exists, so no locking),
/// ignoring poisoning as [`lock`] does.
#[inline]
pub(crate) fn get_mut<T>(m: &mut Mutex<T>) -> &mut T {
    #[cfg(loom)]
    {
        m.get_mut().unwrap()
    }
    #[cfg(not(loom))]
    {
        m.get_mut().unwrap_or_else(|e| e.into_inner())
    }
}

/// The value of an atomic reached through `&mut` (no other reference exists, so plain reads and
/// writes): std's `get_mut`, loom's `with_mut`.
#[inline]
pub(crate) fn with_mut_u8<R>(a: &mut AtomicU8, f: impl FnOnce(&mut u8) -> R) -> R {
    #[cfg(loom)]
    {
        a.with_mut(f)
    }
    #[cfg(not(loom))]
    {
        f(a.get_mut())
    }
}

/// [`with_mut_u8`] for an `AtomicU32`.
#[inline]
pub(crate) fn with_mut_u32<R>(a: &mut AtomicU32, f: impl FnOnce(&mut u32) -> R) -> R {
    #[cfg(loom)]
    {
        a.with_mut(f)
    }
    #[cfg(not(loom))]
    {
        f(a.get_mut())
    }
}
