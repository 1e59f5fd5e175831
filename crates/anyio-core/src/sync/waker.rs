//! Keeping a waiter's waker current across polls.

use std::task::Waker;

/// Stores `waker` in `slot` unless the stored one already wakes the same task, and returns the
/// waker it replaced, for the caller to drop after releasing its lock (a waker's drop is not
/// our code, and may reach back into the structure the lock guards).
#[inline]
pub(crate) fn replace_waker(slot: &mut Option<Waker>, waker: &Waker) -> Option<Waker> {
    if slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        None
    } else {
        slot.replace(waker.clone())
    }
}
