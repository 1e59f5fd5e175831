//! loom models of the scope tree's wake paths: a cancellation (or a lifted shield) racing with
//! a blocked operation's registration must never be lost.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p anyio-core --lib --release loom`.

use std::sync::Arc;
use std::task::{Wake, Waker};

use ::loom::sync::atomic::{AtomicUsize, Ordering};
use ::loom::thread;

use super::cell::NodeArc;
use super::node::{Node, WaitRegistration};
use crate::error::CancelSource;

struct Flag(AtomicUsize);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn chain(len: usize) -> Vec<NodeArc> {
    let mut nodes: Vec<NodeArc> = Vec::new();
    for _ in 0..len {
        let n = NodeArc::new(Node::new(false));
        n.enter(nodes.last().cloned());
        nodes.push(n);
    }
    nodes
}

/// A task registering in a leaf scope while another thread cancels an ancestor: either the
/// registration sees the cancellation, or the cancellation wakes the task.
#[test]
fn loom_cancel_versus_register() {
    ::loom::model(|| {
        let nodes = chain(2);
        let flag = Arc::new(Flag(AtomicUsize::new(0)));
        let waker = Waker::from(flag.clone());
        let root = nodes[0].clone();
        let canceller = thread::spawn(move || root.cancel(CancelSource::Explicit, None));
        let mut reg = WaitRegistration::new();
        let saw_cancel = reg.register(&nodes[1], &waker).is_err();
        canceller.join().unwrap();
        assert!(saw_cancel || flag.0.load(Ordering::SeqCst) >= 1, "lost wake-up");
        assert!(nodes[1].check().is_err());
    });
}

/// A task whose waker is already resident in its scope checks, then waits without
/// registering again (`register_after_check`), while another thread cancels an ancestor or
/// lifts a shield: either the check sees it, or the task is woken.
#[test]
fn loom_check_then_resident_wait_versus_cancel_and_unshield() {
    for lift_shield in [false, true] {
        ::loom::model(move || {
            let nodes = chain(3);
            if lift_shield {
                nodes[1].set_shield(true);
                nodes[0].cancel(CancelSource::Explicit, None);
            }
            let flag = Arc::new(Flag(AtomicUsize::new(0)));
            let waker = Waker::from(flag.clone());
            // An earlier wait made the waker resident (and linked the leaf).
            let mut reg = WaitRegistration::new();
            reg.register(&nodes[2], &waker).expect("nothing is cancelled yet");
            let (root, shield) = (nodes[0].clone(), nodes[1].clone());
            let other = thread::spawn(move || {
                if lift_shield {
                    shield.set_shield(false);
                } else {
                    root.cancel(CancelSource::Explicit, None);
                }
            });
            let saw_cancel =
                nodes[2].check().is_err() || reg.register_after_check(&nodes[2], &waker).is_err();
            other.join().unwrap();
            assert!(saw_cancel || flag.0.load(Ordering::SeqCst) >= 1, "lost wake-up");
        });
    }
}

/// Lifting a shield while a task registers below it: the task either sees the outer
/// cancellation or is woken to re-register past the old shield.
#[test]
fn loom_unshield_versus_register() {
    ::loom::model(|| {
        let nodes = chain(3);
        nodes[1].set_shield(true);
        nodes[0].cancel(CancelSource::Explicit, None);
        let flag = Arc::new(Flag(AtomicUsize::new(0)));
        let waker = Waker::from(flag.clone());
        let shield = nodes[1].clone();
        let lifter = thread::spawn(move || shield.set_shield(false));
        let mut reg = WaitRegistration::new();
        let saw_cancel = reg.register(&nodes[2], &waker).is_err();
        lifter.join().unwrap();
        assert!(saw_cancel || flag.0.load(Ordering::SeqCst) >= 1, "lost wake-up after unshield");
    });
}

/// Two concurrent cancellations of the same node wake a registered waiter, and the node
/// reports exactly one reason.
#[test]
fn loom_concurrent_cancels_wake_once_registered() {
    ::loom::model(|| {
        let nodes = chain(1);
        let flag = Arc::new(Flag(AtomicUsize::new(0)));
        let waker = Waker::from(flag.clone());
        let mut reg = WaitRegistration::new();
        reg.register(&nodes[0], &waker).unwrap();
        let a = nodes[0].clone();
        let b = nodes[0].clone();
        let t1 = thread::spawn(move || a.cancel(CancelSource::Explicit, None));
        let t2 = thread::spawn(move || b.cancel(CancelSource::Deadline, None));
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(flag.0.load(Ordering::SeqCst), 1, "only the first cancel wakes");
        reg.clear();
    });
}

/// Lifting a shield and *then* cancelling the outer scope, while a task registers below the
/// shield: the task must still be woken (it re-registers past the lifted shield).
#[test]
fn loom_unshield_then_cancel_versus_register() {
    ::loom::model(|| {
        let nodes = chain(3);
        nodes[1].set_shield(true);
        let flag = Arc::new(Flag(AtomicUsize::new(0)));
        let waker = Waker::from(flag.clone());
        let (shield, outer) = (nodes[1].clone(), nodes[0].clone());
        let other = thread::spawn(move || {
            shield.set_shield(false);
            outer.cancel(CancelSource::Explicit, None);
        });
        // Model the executor: a wake that arrives after a poll started causes another poll.
        let mut reg = WaitRegistration::new();
        let mut polled_at = flag.0.load(Ordering::SeqCst);
        let mut saw_cancel = reg.register(&nodes[2], &waker).is_err();
        while !saw_cancel && flag.0.load(Ordering::SeqCst) > polled_at {
            polled_at = flag.0.load(Ordering::SeqCst);
            saw_cancel = reg.register(&nodes[2], &waker).is_err();
        }
        other.join().unwrap();
        // Either the last poll saw the cancellation, or a wake after it will poll again.
        let woken_after = flag.0.load(Ordering::SeqCst) > polled_at;
        assert!(saw_cancel || woken_after, "lost wake-up: shield lifted, then outer cancelled");
        reg.clear();
    });
}

/// Two tasks wait for the first time in sibling leaves of one parent while a third thread
/// cancels the root: the first waiter links the shared parent, the other may find it linked
/// already. Neither may miss the cancellation.
#[test]
fn loom_cancel_versus_concurrent_first_links() {
    // Three threads: bound preemptions so the model finishes in CI time.
    let mut builder = ::loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let nodes = chain(2);
        let sibling = NodeArc::new(Node::new(false));
        sibling.enter(Some(nodes[1].clone()));
        let leaf = NodeArc::new(Node::new(false));
        leaf.enter(Some(nodes[1].clone()));
        let root = nodes[0].clone();
        let other = thread::spawn(move || {
            let flag = Arc::new(Flag(AtomicUsize::new(0)));
            let waker = Waker::from(flag.clone());
            let mut reg = WaitRegistration::new();
            let saw = reg.register(&sibling, &waker).is_err();
            // Still registered, in a live scope: a pending operation keeps both.
            (saw, flag, reg, sibling)
        });
        let canceller = thread::spawn(move || root.cancel(CancelSource::Explicit, None));
        let flag = Arc::new(Flag(AtomicUsize::new(0)));
        let waker = Waker::from(flag.clone());
        let mut reg = WaitRegistration::new();
        let saw = reg.register(&leaf, &waker).is_err();
        canceller.join().unwrap();
        let (other_saw, other_flag, _other_reg, _sibling) = other.join().unwrap();
        assert!(saw || flag.0.load(Ordering::SeqCst) >= 1, "lost wake-up in the leaf");
        assert!(other_saw || other_flag.0.load(Ordering::SeqCst) >= 1, "lost wake-up in the sibling");
    });
}
