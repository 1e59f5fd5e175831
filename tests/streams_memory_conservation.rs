//! Conservation under cancellation: many producers and consumers on every thread of the
//! runtime send and receive through one memory object stream while their operations are
//! cancelled (by their scope) or dropped (lost a race) at random points. Every item must end up
//! exactly once in one of: received, returned to its sender in `SendError::Cancelled`, or
//! dropped with a send future that was itself dropped before delivering it. Nothing vanishes,
//! nothing is duplicated.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use anyio::{
    streams::memory::{
        create_memory_object_stream, BufferSize, MemoryObjectReceiveStream, MemoryObjectSendStream,
        ReceiveError, SendError,
    },
    task_group, AnyError, CancelScope, Cancelled, TaskGroup,
};

mod support;
use support::guarded_ok;

const PRODUCERS: u64 = 4;
const CONSUMERS: u64 = 4;
const PER_PRODUCER: u64 = 400;

/// Where each item went.
#[derive(Default)]
struct Ledger {
    received: Vec<u64>,
    returned: Vec<u64>,
    dropped: Vec<u64>,
    /// Items whose send future was dropped unfinished: only these may have been dropped.
    send_abandoned: Vec<u64>,
}

/// An item that records its own drop unless it was accounted for.
struct Item {
    id: u64,
    ledger: Arc<Mutex<Ledger>>,
    armed: bool,
}

impl Item {
    fn settle(mut self, into: fn(&mut Ledger) -> &mut Vec<u64>) {
        self.armed = false;
        into(&mut self.ledger.lock().unwrap()).push(self.id);
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        if self.armed {
            self.ledger.lock().unwrap().dropped.push(self.id);
        }
    }
}

/// A tiny deterministic generator (xorshift), one per task.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// How an operation is interfered with.
#[derive(Clone, Copy)]
enum Interference {
    None,
    /// Cancel the enclosing scope after this many polls that returned `Pending`.
    CancelAfter(u32),
    /// Drop the operation after this many polls that returned `Pending`.
    DropAfter(u32),
}

impl Interference {
    fn pick(rng: &mut Rng) -> Self {
        match rng.next() % 6 {
            0 | 1 => Interference::None,
            2 | 3 => Interference::CancelAfter((rng.next() % 3) as u32),
            _ => Interference::DropAfter((rng.next() % 3) as u32),
        }
    }
}

/// Polls `fut`; once it has returned `Pending` the chosen number of times, the next poll
/// (typically the one its wake-up caused, when an item may just have been handed to it) first
/// cancels `scope` and then polls it (it must then finish at once), or drops it unpolled and
/// yields `None`.
struct Interfere<'s, F> {
    fut: Option<Pin<Box<F>>>,
    pending_polls: u32,
    how: Interference,
    scope: &'s CancelScope,
}

impl<F: Future> Future for Interfere<'_, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.how {
            Interference::CancelAfter(n) if self.pending_polls > n => self.scope.cancel(),
            Interference::DropAfter(n) if self.pending_polls > n => {
                self.fut = None;
                return Poll::Ready(None);
            }
            _ => {}
        }
        let Some(fut) = self.fut.as_mut() else { return Poll::Ready(None) };
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if matches!(self.how, Interference::CancelAfter(_)) && self.scope.cancel_called() {
            panic!("a waiting operation stayed pending in a cancelled scope");
        }
        self.pending_polls += 1;
        Poll::Pending
    }
}

async fn produce(
    tx: MemoryObjectSendStream<Item>,
    p: u64,
    ledger: Arc<Mutex<Ledger>>,
) -> Result<(), AnyError> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (p + 1));
    for i in 0..PER_PRODUCER {
        let id = p * PER_PRODUCER + i;
        let item = Item { id, ledger: ledger.clone(), armed: true };
        let how = Interference::pick(&mut rng);
        let scope = CancelScope::new();
        let outcome = scope
            .run(async {
                let op =
                    Interfere { fut: Some(Box::pin(tx.send(item))), pending_polls: 0, how, scope: &scope };
                Ok::<_, Cancelled>(op.await)
            })
            .await?;
        match outcome {
            // Caught by the scope: only possible if the send itself was cancelled, and then
            // the item came back in the error, which the body returned as a value below.
            None => unreachable!("the body never propagates a cancellation"),
            // The send future was dropped: its item was delivered, or dropped with it.
            Some(None) => ledger.lock().unwrap().send_abandoned.push(id),
            Some(Some(Ok(()))) => {}
            Some(Some(Err(SendError::Cancelled(item, _)))) => item.settle(|l| &mut l.returned),
            Some(Some(Err(e))) => panic!("unexpected send error {e}"),
        }
    }
    Ok(())
}

async fn consume(rx: MemoryObjectReceiveStream<Item>, c: u64) -> Result<(), AnyError> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (c + 1));
    loop {
        let how = Interference::pick(&mut rng);
        let scope = CancelScope::new();
        let outcome = scope
            .run(async {
                let op =
                    Interfere { fut: Some(Box::pin(rx.receive())), pending_polls: 0, how, scope: &scope };
                Ok::<_, Cancelled>(op.await)
            })
            .await?;
        match outcome {
            None => unreachable!("the body never propagates a cancellation"),
            Some(None) | Some(Some(Err(ReceiveError::Cancelled(_)))) => {}
            Some(Some(Ok(item))) => item.settle(|l| &mut l.received),
            Some(Some(Err(ReceiveError::EndOfStream))) => return Ok(()),
            Some(Some(Err(e))) => panic!("unexpected receive error {e}"),
        }
    }
}

async fn run_case(size: BufferSize) {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (tx, rx) = create_memory_object_stream::<Item>(size);
    let l = ledger.clone();
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            for p in 0..PRODUCERS {
                tg.spawn(produce(tx.clone(), p, l.clone()));
            }
            for c in 0..CONSUMERS {
                tg.spawn(consume(rx.clone(), c));
            }
            drop((tx, rx)); // the stream ends when the producers finish
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    let ledger = ledger.lock().unwrap();
    let mut all: Vec<u64> =
        ledger.received.iter().chain(&ledger.returned).chain(&ledger.dropped).copied().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (0..PRODUCERS * PER_PRODUCER).collect();
    assert_eq!(
        all.len(),
        expected.len(),
        "{size:?}: {} received + {} returned + {} dropped with their send != {} sent (lost or duplicated items)",
        ledger.received.len(),
        ledger.returned.len(),
        ledger.dropped.len(),
        expected.len()
    );
    assert_eq!(all, expected, "{size:?}: some item was lost and another duplicated");
    assert!(!ledger.received.is_empty(), "{size:?}: the interference must not stop everything");
    for id in &ledger.dropped {
        assert!(
            ledger.send_abandoned.contains(id),
            "{size:?}: item {id} was dropped by the stream, not with its own send future"
        );
    }
}

#[anyio::test]
async fn every_item_is_received_returned_or_dropped_with_its_send_exactly_once_rendezvous() {
    run_case(BufferSize::Bounded(0)).await;
}

#[anyio::test]
async fn every_item_is_received_returned_or_dropped_with_its_send_exactly_once_buffer_of_one() {
    run_case(BufferSize::Bounded(1)).await;
}

#[anyio::test]
async fn every_item_is_received_returned_or_dropped_with_its_send_exactly_once_buffer_of_sixteen() {
    run_case(BufferSize::Bounded(16)).await;
}

#[anyio::test]
async fn every_item_is_received_returned_or_dropped_with_its_send_exactly_once_unbounded() {
    run_case(BufferSize::Unbounded).await;
}
