//! loom models of the memory object stream's wake paths: a hand-off racing a dropped or
//! re-polled waiter, and a close racing waiters, never loses an item or a wake-up.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p anyio-core --lib --release loom`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use ::loom::sync::atomic::{AtomicUsize, Ordering};
use ::loom::thread;

use super::{create_memory_object_stream, ReceiveError, SendError, TryReceiveError};

struct Flag(AtomicUsize);

impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn flag() -> (Arc<Flag>, Waker) {
    let f = Arc::new(Flag(AtomicUsize::new(0)));
    let w = Waker::from(f.clone());
    (f, w)
}

fn woken(f: &Flag) -> bool {
    f.0.load(Ordering::SeqCst) > 0
}

/// A send hands its item to a queued receive that is dropped at the same time on another
/// thread: the item ends up in the buffer (or was never handed over), never lost.
#[test]
fn loom_send_versus_dropping_a_queued_receive() {
    ::loom::model(|| {
        let (tx, rx) = create_memory_object_stream::<u32>(0);
        let rx = Arc::new(rx);
        let r = rx.clone();
        let receiver = thread::spawn(move || {
            let mut recv = r.receive();
            let mut cx = Context::from_waker(Waker::noop());
            let got = match Pin::new(&mut recv).poll(&mut cx) {
                Poll::Ready(Ok(v)) => Some(v),
                _ => None,
            };
            drop(recv);
            got
        });
        let sent = tx.try_send(7).is_ok();
        let got = receiver.join().unwrap();
        let later = rx.try_receive().ok();
        if sent {
            assert_eq!(got.or(later), Some(7), "a delivered item was lost");
            assert!(got.is_none() || later.is_none(), "an item was duplicated");
        } else {
            assert_eq!((got, later), (None, None));
        }
        assert_eq!(rx.statistics().tasks_waiting_receive, 0);
    });
}

/// A receive queues with a waker while a send runs on another thread: either the first poll
/// finds the item, or the send wakes the waker and the re-poll finds it. (The sender stays
/// open, so that only the send can be what wakes the receive.)
#[test]
fn loom_no_lost_wakeup_between_receive_and_send() {
    ::loom::model(|| {
        let (tx, rx) = create_memory_object_stream::<u32>(1);
        let sender = thread::spawn(move || {
            let sent = tx.try_send(1).is_ok();
            (tx, sent)
        });
        let (f, waker) = flag();
        let mut cx = Context::from_waker(&waker);
        let mut recv = rx.receive();
        match Pin::new(&mut recv).poll(&mut cx) {
            Poll::Ready(r) => assert_eq!(r, Ok(1)),
            Poll::Pending => {
                let (_tx, sent) = sender.join().unwrap();
                assert!(sent);
                assert!(woken(&f), "the send did not wake the queued receive");
                assert_eq!(Pin::new(&mut recv).poll(&mut cx), Poll::Ready(Ok(1)));
                return;
            }
        }
        assert!(sender.join().unwrap().1);
    });
}

/// The last receiver closes while a send waits on a full buffer: the send is woken and gets its
/// item back as `Broken`; the buffered item is dropped with the receivers.
#[test]
fn loom_close_wakes_a_waiting_send() {
    ::loom::model(|| {
        let (tx, rx) = create_memory_object_stream::<u32>(1);
        tx.try_send(1).unwrap();
        let (f, waker) = flag();
        let mut cx = Context::from_waker(&waker);
        let mut send = tx.send(2);
        let closer = thread::spawn(move || rx.close());
        match Pin::new(&mut send).poll(&mut cx) {
            Poll::Ready(r) => assert!(matches!(r, Err(SendError::Broken(2)))),
            Poll::Pending => {
                closer.join().unwrap();
                assert!(woken(&f), "closing the receivers did not wake the waiting send");
                assert!(matches!(Pin::new(&mut send).poll(&mut cx), Poll::Ready(Err(SendError::Broken(2)))));
                return;
            }
        }
        closer.join().unwrap();
    });
}

/// The last sender closes while a receive waits: the receive is woken and sees the end.
#[test]
fn loom_close_wakes_a_waiting_receive() {
    ::loom::model(|| {
        let (tx, rx) = create_memory_object_stream::<u32>(0);
        let (f, waker) = flag();
        let mut cx = Context::from_waker(&waker);
        let mut recv = rx.receive();
        let closer = thread::spawn(move || drop(tx));
        if let Poll::Ready(r) = Pin::new(&mut recv).poll(&mut cx) {
            assert_eq!(r, Err(ReceiveError::EndOfStream));
            closer.join().unwrap();
            return;
        }
        closer.join().unwrap();
        assert!(woken(&f), "closing the senders did not wake the waiting receive");
        assert_eq!(Pin::new(&mut recv).poll(&mut cx), Poll::Ready(Err(ReceiveError::EndOfStream)));
    });
}

/// Two senders race to fill a buffer of one while the receiver takes: every item that was
/// accepted is received exactly once, in the order it was accepted per sender.
#[test]
fn loom_two_senders_one_receiver_conserve_items() {
    ::loom::model(|| {
        let (tx, rx) = create_memory_object_stream::<u32>(1);
        let tx2 = tx.clone();
        let a = thread::spawn(move || tx.try_send(1).is_ok() as u32);
        let b = thread::spawn(move || tx2.try_send(2).is_ok() as u32);
        let first = rx.try_receive();
        let accepted = a.join().unwrap() + b.join().unwrap();
        let mut received = u32::from(first.is_ok());
        loop {
            match rx.try_receive() {
                Ok(_) => received += 1,
                Err(TryReceiveError::EndOfStream) => break,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(received, accepted);
    });
}

/// A send waits on a full buffer while a receive frees a slot on another thread: either the
/// send's first poll finds the room, or the receive moves its item in and wakes it. Nothing is
/// lost and the order holds. (The receiver stays open, so that only the receive can be what
/// wakes the send.)
#[test]
fn loom_no_lost_wakeup_between_send_and_receive() {
    ::loom::model(|| {
        let (tx, rx) = create_memory_object_stream::<u32>(1);
        tx.try_send(1).unwrap();
        let receiver = thread::spawn(move || {
            let first = rx.try_receive().ok();
            (rx, first)
        });
        let (f, waker) = flag();
        let mut cx = Context::from_waker(&waker);
        let mut send = tx.send(2);
        let first_poll = Pin::new(&mut send).poll(&mut cx);
        let (rx, first) = receiver.join().unwrap();
        // The buffer was full with 1, so the receive gets it whatever the interleaving.
        assert_eq!(first, Some(1));
        if first_poll.is_pending() {
            assert!(woken(&f), "the receive freed a slot and did not wake the waiting send");
            assert!(
                Pin::new(&mut send).poll(&mut cx).is_ready(),
                "woken, the send still found no room: its item was not moved in"
            );
        }
        assert_eq!(rx.try_receive(), Ok(2), "the sent item was lost");
        drop(send);
    });
}
