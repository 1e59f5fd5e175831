//! `WaitQueue`: the FIFO of waiters under `Permits` (so `Lock`, `Semaphore`,
//! `CapacityLimiter`), `Condition` and the memory object streams.
//!
//! Entries live in a slab and form a doubly linked list by key, so pushing at the back,
//! popping the front and unlinking any entry are all O(1): a cancelled waiter leaves the queue
//! without a search. A popped entry stays in the slab, unlinked, until its owner removes it:
//! the owner holds only its key and reads the outcome (a permit, a notification, an item) from
//! the entry on its next poll. The slab reuses freed slots, so once it has grown a wait costs
//! no allocation.
//!
//! Keys are plain slab indices: an owner must remove its entry exactly once and never use the
//! key afterwards (the slot may hold another waiter by then). Every user keeps its key in an
//! `Option` that it `take`s when it removes the entry.

use std::fmt;
use std::ops::{Index, IndexMut};

use slab::Slab;

/// The end of the list (no previous or next entry).
const NIL: usize = usize::MAX;

/// A FIFO queue of waiters with O(1) removal by key. See the module documentation.
pub(crate) struct WaitQueue<T> {
    slab: Slab<Entry<T>>,
    head: usize,
    tail: usize,
    /// How many entries are linked (queued); the slab also holds popped ones.
    len: usize,
}

struct Entry<T> {
    value: T,
    prev: usize,
    next: usize,
    linked: bool,
}

impl<T> Default for WaitQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for WaitQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitQueue").field("queued", &self.len).field("entries", &self.slab.len()).finish()
    }
}

impl<T> WaitQueue<T> {
    pub(crate) const fn new() -> Self {
        Self { slab: Slab::new(), head: NIL, tail: NIL, len: 0 }
    }

    /// How many entries are queued (popped entries not yet removed do not count).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a new entry at the back of the queue and returns its key.
    #[inline]
    pub(crate) fn push_back(&mut self, value: T) -> usize {
        let tail = self.tail;
        let key = self.slab.insert(Entry { value, prev: tail, next: NIL, linked: true });
        self.attach_after_tail(tail, key);
        key
    }

    /// Queues again, at the back, an entry that was popped but not removed.
    ///
    /// # Panics
    ///
    /// Panics if `key` is not an entry, or is still queued.
    pub(crate) fn relink(&mut self, key: usize) {
        assert!(!self.slab[key].linked, "relinking a queued entry");
        self.link_back(key);
    }

    fn link_back(&mut self, key: usize) {
        let tail = self.tail;
        let e = &mut self.slab[key];
        e.prev = tail;
        e.next = NIL;
        e.linked = true;
        self.attach_after_tail(tail, key);
    }

    /// Makes `key`, whose links are already set, the new tail after `tail`.
    fn attach_after_tail(&mut self, tail: usize, key: usize) {
        if tail == NIL {
            self.head = key;
        } else {
            self.slab[tail].next = key;
        }
        self.tail = key;
        self.len += 1;
    }

    /// Unlinks the oldest queued entry, leaving it in place for its owner, and returns its key.
    pub(crate) fn pop_front(&mut self) -> Option<usize> {
        let key = self.head;
        if key == NIL {
            return None;
        }
        // The head has no previous entry: only its successor needs fixing.
        let e = &mut self.slab[key];
        let next = e.next;
        e.linked = false;
        e.next = NIL;
        self.head = next;
        if next == NIL {
            self.tail = NIL;
        } else {
            self.slab[next].prev = NIL;
        }
        self.len -= 1;
        Some(key)
    }

    /// Joins the neighbours of an entry that leaves the list.
    fn close_gap(&mut self, prev: usize, next: usize) {
        if prev == NIL {
            self.head = next;
        } else {
            self.slab[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slab[next].prev = prev;
        }
        self.len -= 1;
    }

    /// Whether the entry is queued (not popped since it was pushed or relinked).
    ///
    /// # Panics
    ///
    /// Panics if `key` is not an entry.
    pub(crate) fn is_linked(&self, key: usize) -> bool {
        self.slab[key].linked
    }

    /// Removes an entry for good, unlinking it first if it is queued, and returns its value.
    ///
    /// # Panics
    ///
    /// Panics if `key` is not an entry.
    #[inline]
    pub(crate) fn remove(&mut self, key: usize) -> T {
        let e = self.slab.remove(key);
        if e.linked {
            self.close_gap(e.prev, e.next);
        }
        e.value
    }

    /// The queued entries' values, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        let mut key = self.head;
        std::iter::from_fn(move || {
            if key == NIL {
                return None;
            }
            let e = &self.slab[key];
            key = e.next;
            Some(&e.value)
        })
    }
}

impl<T> Index<usize> for WaitQueue<T> {
    type Output = T;

    fn index(&self, key: usize) -> &T {
        &self.slab[key].value
    }
}

impl<T> IndexMut<usize> for WaitQueue<T> {
    fn index_mut(&mut self, key: usize) -> &mut T {
        &mut self.slab[key].value
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::WaitQueue;

    #[derive(Clone, Debug)]
    enum Op {
        Push(u32),
        Pop,
        /// Removes the live entry at this index (mod the number of live entries).
        Remove(usize),
        /// Relinks the popped entry at this index (mod the number of popped entries).
        Relink(usize),
        /// Overwrites the value of the live entry at this index.
        Set(usize, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u32>().prop_map(Op::Push),
            2 => Just(Op::Pop),
            2 => any::<usize>().prop_map(Op::Remove),
            1 => any::<usize>().prop_map(Op::Relink),
            1 => (any::<usize>(), any::<u32>()).prop_map(|(i, v)| Op::Set(i, v)),
        ]
    }

    /// The queue against a model: a `VecDeque` of queued keys, a list of popped keys and a
    /// map from key to value.
    fn check(ops: Vec<Op>) {
        let mut q = WaitQueue::new();
        let mut order: VecDeque<usize> = VecDeque::new();
        let mut popped: Vec<usize> = Vec::new();
        let mut values = std::collections::HashMap::new();
        for op in ops {
            match op {
                Op::Push(v) => {
                    let key = q.push_back(v);
                    assert!(values.insert(key, v).is_none(), "a live key was handed out twice");
                    order.push_back(key);
                }
                Op::Pop => {
                    let got = q.pop_front();
                    let want = order.pop_front();
                    assert_eq!(got, want);
                    if let Some(k) = got {
                        assert!(!q.is_linked(k));
                        assert_eq!(q[k], values[&k], "a popped entry keeps its value");
                        popped.push(k);
                    }
                }
                Op::Remove(i) => {
                    if values.is_empty() {
                        continue;
                    }
                    let mut live: Vec<usize> = values.keys().copied().collect();
                    live.sort_unstable();
                    let key = live[i % live.len()];
                    assert_eq!(q.remove(key), values.remove(&key).unwrap());
                    order.retain(|&k| k != key);
                    popped.retain(|&k| k != key);
                }
                Op::Relink(i) => {
                    if popped.is_empty() {
                        continue;
                    }
                    let key = popped.remove(i % popped.len());
                    q.relink(key);
                    order.push_back(key);
                }
                Op::Set(i, v) => {
                    if values.is_empty() {
                        continue;
                    }
                    let mut live: Vec<usize> = values.keys().copied().collect();
                    live.sort_unstable();
                    let key = live[i % live.len()];
                    q[key] = v;
                    values.insert(key, v);
                }
            }
            assert_eq!(q.len(), order.len());
            assert_eq!(q.is_empty(), order.is_empty());
            let got: Vec<u32> = q.iter().copied().collect();
            let want: Vec<u32> = order.iter().map(|k| values[k]).collect();
            assert_eq!(got, want, "queued values, oldest first");
            for &k in &order {
                assert!(q.is_linked(k));
            }
        }
        // Draining pops exactly the model's order.
        while let Some(k) = q.pop_front() {
            assert_eq!(Some(k), order.pop_front());
        }
        assert!(order.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn wait_queue_matches_a_vecdeque_model(ops in proptest::collection::vec(op(), 0..200)) {
            check(ops);
        }
    }

    #[test]
    fn removing_the_middle_keeps_fifo_order() {
        let mut q = WaitQueue::new();
        let a = q.push_back('a');
        let b = q.push_back('b');
        let c = q.push_back('c');
        assert_eq!(q.remove(b), 'b');
        assert_eq!(q.iter().copied().collect::<String>(), "ac");
        assert_eq!(q.pop_front(), Some(a));
        q.relink(a);
        assert_eq!(q.iter().copied().collect::<String>(), "ca");
        assert_eq!(q.remove(c), 'c');
        assert_eq!(q.remove(a), 'a');
        assert!(q.is_empty());
        assert_eq!(q.pop_front(), None);
    }
}
