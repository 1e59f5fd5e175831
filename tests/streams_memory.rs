//! Memory object streams (AnyIO's tests/streams/test_memory.py, rules 12 and 13): rendezvous and
//! buffered hand-off, `*_nowait`, FIFO service of waiting senders and receivers, clones, the
//! `Closed`/`Broken`/`EndOfStream` taxonomy, statistics, `Stream`/`Sink`, and cancellation that
//! loses and duplicates nothing: a cancelled send returns its item and never delivers it later,
//! a cancelled receive takes nothing, a handed-over item is returned or passed on.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use anyio::{
    error::{BrokenResourceError, ClosedResourceError, EndOfStream},
    lowlevel::checkpoint,
    sleep,
    streams::memory::{
        create_memory_object_stream, BufferSize, MemoryObjectReceiveStream, MemoryObjectSendStream,
        ReceiveError, SendError, TryReceiveError, TrySendError,
    },
    task::GroupError,
    task_group, AnyError, CancelScope, Cancelled, TaskGroup,
};
use anyio_suite::{DropCounter, DropToken};
use futures::stream::FusedStream;
use futures::{FutureExt, SinkExt, StreamExt, TryStreamExt};

mod support;
use support::{count_pendings, guarded, guarded_ok, wait_for, SHORT};

/// Polls `fut` once with a no-op waker, inside whatever scope is current.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(fut).poll(&mut cx)
}

/// Waits (cancellably) until `cond` holds, polling at a short interval: the stand-in for
/// AnyIO's `wait_all_tasks_blocked`.
async fn until(mut cond: impl FnMut() -> bool) -> Result<(), Cancelled> {
    while !cond() {
        sleep(Duration::from_millis(1)).await?;
    }
    Ok(())
}

/// `(current_buffer_used, max_buffer_size, open_send_streams, open_receive_streams,
/// tasks_waiting_send, tasks_waiting_receive)`, checking that both halves report the same.
type Stats = (usize, BufferSize, usize, usize, usize, usize);

fn stats<T>(tx: &MemoryObjectSendStream<T>, rx: &MemoryObjectReceiveStream<T>) -> Stats {
    let s = tx.statistics();
    assert_eq!(s, rx.statistics(), "both halves see the same stream");
    (
        s.current_buffer_used,
        s.max_buffer_size,
        s.open_send_streams,
        s.open_receive_streams,
        s.tasks_waiting_send,
        s.tasks_waiting_receive,
    )
}

/// Receives until the end of the stream; any other error fails.
async fn drain<T>(rx: &MemoryObjectReceiveStream<T>) -> Result<Vec<T>, AnyError> {
    let mut got = Vec::new();
    loop {
        match rx.receive().await {
            Ok(v) => got.push(v),
            Err(ReceiveError::EndOfStream) => return Ok(got),
            Err(e) => return Err(e.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-off, buffering and `*_nowait` (test_receive_then_send and friends)
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn a_waiting_receiver_gets_the_items_sent_later_in_order() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(0);
    let got = guarded_ok(async move {
        let rx = Arc::new(rx);
        let r = rx.clone();
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let h = tg.spawn(async move {
                let a = r.receive().await?;
                let b = r.receive().await?;
                Ok(vec![a, b])
            });
            until(|| rx.statistics().tasks_waiting_receive == 1).await?;
            tx.send("hello").await?;
            tx.send("anyio").await?;
            Ok(h.await?)
        })
        .await?)
    })
    .await;
    assert_eq!(got, Some(vec!["hello", "anyio"]));
}

#[anyio::test]
async fn send_waits_until_a_receiver_takes_the_item_when_unbuffered() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(0);
    let sent = Arc::new(AtomicBool::new(false));
    guarded_ok(async move {
        let tx = Arc::new(tx);
        task_group(|tg: TaskGroup<AnyError>| async move {
            let (t, s) = (tx.clone(), sent.clone());
            tg.spawn(async move {
                t.send("hello").await?;
                s.store(true, SeqCst);
                Ok(())
            });
            until(|| tx.statistics().tasks_waiting_send == 1).await?;
            sleep(SHORT).await?; // a chance to misbehave; passing does not depend on it
            assert!(!sent.load(SeqCst), "a rendezvous send returned before anyone took the item");
            assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(0), 1, 1, 1, 0));
            assert_eq!(rx.try_receive(), Ok("hello"), "receive_nowait takes a waiting sender's item");
            wait_for(&sent).await?;
            assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(0), 1, 1, 0, 0));
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn send_nowait_hands_items_to_waiting_receivers() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(0);
    let mut got = guarded_ok(async move {
        let rx = Arc::new(rx);
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let a = tg.spawn({
                let r = rx.clone();
                async move { Ok(r.receive().await?) }
            });
            let b = tg.spawn({
                let r = rx.clone();
                async move { Ok(r.receive().await?) }
            });
            until(|| rx.statistics().tasks_waiting_receive == 2).await?;
            tx.try_send("hello").expect("a receiver is waiting");
            tx.try_send("anyio").expect("another receiver is waiting");
            assert_eq!(tx.try_send("more"), Err(TrySendError::WouldBlock("more")), "nobody left waiting");
            Ok(vec![a.await?, b.await?])
        })
        .await?
        .unwrap())
    })
    .await;
    got.sort();
    assert_eq!(got, ["anyio", "hello"]);
}

#[anyio::test]
async fn send_nowait_fills_the_buffer_in_fifo_order_then_would_block() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(2);
    assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock));
    tx.try_send("hello").unwrap();
    tx.try_send("anyio").unwrap();
    assert_eq!(tx.try_send("full"), Err(TrySendError::WouldBlock("full")), "the item comes back");
    assert_eq!(stats(&tx, &rx), (2, BufferSize::Bounded(2), 1, 1, 0, 0));
    assert_eq!(rx.try_receive(), Ok("hello"));
    assert_eq!(rx.try_receive(), Ok("anyio"));
    assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock));
}

/// The coop budget: a task sending into an unbounded stream in a loop never waits, yet the
/// loop yields now and then (a single-threaded runtime has no other way to get the thread
/// back), though only every few hundred sends: a channel operation spends a quarter of a
/// socket operation's share.
#[anyio::test]
async fn a_send_loop_that_never_waits_still_yields_now_and_then() {
    let (tx, rx) = create_memory_object_stream::<u32>(BufferSize::Unbounded);
    let sends = async {
        for i in 0..5_000 {
            tx.send(i).await?;
        }
        Ok::<_, AnyError>(())
    };
    let (sent, pendings) = guarded(count_pendings(sends)).await;
    sent.unwrap();
    assert!(pendings >= 5_000 / 1_024, "5,000 ready sends yielded only {pendings} times");
    assert!(pendings <= 5_000 / 256, "5,000 ready sends yielded {pendings} times");
    assert_eq!(rx.statistics().current_buffer_used, 5_000);
}

#[anyio::test]
async fn a_waiting_send_is_unblocked_by_receive_nowait() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(1);
    tx.try_send("hello").unwrap();
    guarded_ok(async move {
        let tx = Arc::new(tx);
        task_group(|tg: TaskGroup<AnyError>| async move {
            let t = tx.clone();
            let h = tg.spawn(async move { Ok(t.send("anyio").await?) });
            until(|| tx.statistics().tasks_waiting_send == 1).await?;
            assert_eq!(rx.try_receive(), Ok("hello"));
            // The waiting sender's item moved into the freed buffer slot at once.
            assert_eq!(stats(&tx, &rx), (1, BufferSize::Bounded(1), 1, 1, 0, 0));
            h.await?;
            assert_eq!(rx.try_receive(), Ok("anyio"));
            assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock));
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_send_with_room_in_the_buffer_returns_at_once() {
    let (tx, rx) = create_memory_object_stream::<u32>(3);
    guarded_ok(async {
        for i in 0..3 {
            tx.send(i).await?;
        }
        let mut fourth = tx.send(3);
        assert!(poll_once(&mut fourth).is_pending(), "the buffer is full");
        assert_eq!(tx.statistics().tasks_waiting_send, 1);
        assert_eq!(rx.receive().await?, 0);
        fourth.await?;
        Ok(())
    })
    .await;
    assert_eq!(stats(&tx, &rx), (3, BufferSize::Bounded(3), 1, 1, 0, 0));
    let got: Vec<_> = std::iter::from_fn(|| rx.try_receive().ok()).collect();
    assert_eq!(got, [1, 2, 3]);
}

#[anyio::test]
async fn an_unbounded_buffer_never_blocks_a_send() {
    let (tx, rx) = create_memory_object_stream::<u32>(BufferSize::Unbounded);
    for i in 0..10_000 {
        tx.try_send(i).unwrap();
    }
    guarded_ok(async {
        for i in 10_000..10_300 {
            tx.send(i).await?; // never waits (the coop budget may yield, which is fine)
        }
        Ok(())
    })
    .await;
    assert_eq!(stats(&tx, &rx), (10_300, BufferSize::Unbounded, 1, 1, 0, 0));
    for i in 0..10_300 {
        assert_eq!(rx.try_receive(), Ok(i));
    }
    assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock));
}

// ---------------------------------------------------------------------------------------------
// FIFO service and exactly-once delivery
// ---------------------------------------------------------------------------------------------

async fn waiting_senders_are_served_in_fifo_order(buffer: usize) {
    let (tx, rx) = create_memory_object_stream::<usize>(buffer);
    let got = guarded_ok(async move {
        let tx = Arc::new(tx);
        for i in 0..buffer {
            tx.try_send(i).unwrap();
        }
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            for (n, i) in (buffer..buffer + 5).enumerate() {
                let t = tx.clone();
                tg.spawn(async move { Ok(t.send(i).await?) });
                // Let sender i queue up before sender i + 1 is spawned.
                until(|| tx.statistics().tasks_waiting_send == n + 1).await?;
            }
            let mut got = Vec::new();
            for _ in 0..buffer + 5 {
                got.push(rx.receive().await?);
            }
            Ok(got)
        })
        .await?
        .unwrap())
    })
    .await;
    assert_eq!(got, (0..buffer + 5).collect::<Vec<_>>());
}

#[anyio::test]
async fn waiting_senders_are_served_in_fifo_order_when_unbuffered() {
    waiting_senders_are_served_in_fifo_order(0).await;
}

#[anyio::test]
async fn waiting_senders_are_served_in_fifo_order_behind_a_full_buffer() {
    waiting_senders_are_served_in_fifo_order(2).await;
}

#[anyio::test]
async fn waiting_receivers_are_served_in_fifo_order() {
    let (tx, rx) = create_memory_object_stream::<usize>(0);
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    guarded_ok(async move {
        let rx = Arc::new(rx);
        task_group(|tg: TaskGroup<AnyError>| async move {
            for i in 0..5 {
                let (r, seen) = (rx.clone(), seen.clone());
                tg.spawn(async move {
                    let v = r.receive().await?;
                    seen.lock().unwrap().push((i, v));
                    Ok(())
                });
                until(|| rx.statistics().tasks_waiting_receive == i + 1).await?;
            }
            for v in 0..5 {
                // Decided here, under the stream's lock: the oldest waiting receiver gets it.
                tx.try_send(v * 10).expect("a receiver is waiting");
            }
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
    let mut got = got.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, [(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]);
}

#[anyio::test]
async fn each_item_goes_to_exactly_one_of_several_receivers() {
    let (tx, rx) = create_memory_object_stream::<u32>(4);
    let per_receiver = guarded_ok(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let r = rx.clone();
                    tg.spawn(async move { drain(&r).await })
                })
                .collect();
            drop(rx);
            for i in 0..1000 {
                tx.send(i).await?;
            }
            drop(tx); // ends the stream
            let mut all = Vec::new();
            for h in handles {
                all.push(h.await?);
            }
            Ok(all)
        })
        .await?
        .unwrap())
    })
    .await;
    for got in &per_receiver {
        assert!(got.windows(2).all(|w| w[0] < w[1]), "each receiver sees items in send order");
    }
    let mut all: Vec<u32> = per_receiver.into_iter().flatten().collect();
    all.sort();
    assert_eq!(all, (0..1000).collect::<Vec<_>>(), "every item exactly once");
}

// ---------------------------------------------------------------------------------------------
// Iteration: `Stream`
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn iterating_the_receive_stream_yields_every_item_then_ends() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(0);
    let got = guarded_ok(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let h = tg.spawn(async move {
                let items: Vec<_> = rx.try_collect().await?;
                Ok(items)
            });
            tx.send("hello").await?;
            tx.send("anyio").await?;
            tx.close();
            Ok(h.await?)
        })
        .await?)
    })
    .await;
    assert_eq!(got, Some(vec!["hello", "anyio"]));
}

#[anyio::test]
async fn the_stream_drains_buffered_items_before_it_ends_and_stays_terminated() {
    let (tx, mut rx) = create_memory_object_stream::<u32>(3);
    for i in 0..3 {
        tx.try_send(i).unwrap();
    }
    drop(tx);
    assert!(!rx.is_terminated(), "items are still buffered");
    guarded_ok(async {
        for i in 0..3 {
            assert_eq!(rx.next().await, Some(Ok(i)));
        }
        assert_eq!(rx.next().await, None);
        assert!(rx.is_terminated());
        assert_eq!(rx.next().await, None, "it stays ended");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn the_stream_of_a_closed_handle_ends() {
    let (tx, mut rx) = create_memory_object_stream::<u32>(3);
    let rx2 = rx.clone();
    tx.try_send(1).unwrap();
    rx.close();
    assert!(rx.is_terminated());
    assert_eq!(guarded_ok(async { Ok(rx.next().await) }).await, None);
    assert_eq!(rx2.try_receive(), Ok(1), "the buffered item is still there for the open clone");
}

#[anyio::test]
async fn the_stream_yields_cancelled_in_a_cancelled_scope_and_takes_nothing() {
    let (tx, mut rx) = create_memory_object_stream::<u32>(1);
    tx.try_send(7).unwrap();
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope.run(async { Ok::<_, Cancelled>(rx.next().await) }).await;
    assert!(matches!(r, Ok(Some(Some(Err(_))))), "got {r:?}");
    assert_eq!(rx.try_receive(), Ok(7), "the buffered item was not consumed");

    // `try_next()?` propagates the cancellation to the scope that catches it.
    tx.try_send(8).unwrap();
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope.run(async { rx.try_next().await }).await;
    assert_eq!(r, Ok(None));
    assert_eq!(rx.try_receive(), Ok(8));
}

#[anyio::test]
async fn a_pending_stream_poll_cancelled_by_its_scope_leaves_the_queue() {
    let (tx, mut rx) = create_memory_object_stream::<u32>(0);
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded_ok(async {
        Ok(scope
            .run(async {
                let mut next = rx.next();
                assert!(poll_once(&mut next).is_pending());
                assert_eq!(tx.statistics().tasks_waiting_receive, 1);
                s.cancel();
                Ok::<_, Cancelled>(next.await)
            })
            .await)
    })
    .await;
    assert!(matches!(r, Ok(Some(Some(Err(_))))), "got {r:?}");
    assert_eq!(tx.statistics().tasks_waiting_receive, 0);
    assert_eq!(tx.try_send(1), Err(TrySendError::WouldBlock(1)), "nobody is waiting any more");
}

#[anyio::test]
async fn an_item_handed_to_a_pending_stream_poll_stays_with_the_stream_until_its_next_poll() {
    let (tx, mut rx) = create_memory_object_stream::<u32>(0);
    let rx2 = rx.clone();
    {
        let mut next = rx.next();
        assert!(poll_once(&mut next).is_pending());
    } // the `Next` future is gone, the stream's receive is still queued
    tx.try_send(5).expect("the stream is waiting");
    assert_eq!(rx2.try_receive(), Err(TryReceiveError::WouldBlock), "the item is the stream's");
    let got = guarded_ok(async { Ok(rx.next().await) }).await;
    assert_eq!(got, Some(Ok(5)));
}

#[anyio::test]
async fn a_stream_dropped_with_an_item_handed_to_its_pending_poll_passes_the_item_on() {
    let (tx, mut rx) = create_memory_object_stream::<u32>(0);
    let rx2 = rx.clone();
    assert!(poll_once(&mut rx.next()).is_pending());
    tx.try_send(5).expect("the stream is waiting");
    drop(rx);
    assert_eq!(rx2.try_receive(), Ok(5), "not lost with the dropped stream");
}

// ---------------------------------------------------------------------------------------------
// Closing: `Closed`, `Broken`, `EndOfStream`
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn after_the_senders_close_receive_ends_and_send_on_the_closed_handle_fails() {
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    tx.close();
    tx.close(); // idempotent
    assert!(tx.is_closed());
    assert_eq!(rx.try_receive(), Err(TryReceiveError::EndOfStream));
    guarded_ok(async {
        assert_eq!(rx.receive().await, Err(ReceiveError::EndOfStream));
        match tx.send(3).await {
            Err(SendError::Closed(item)) => assert_eq!(item, 3, "the item comes back"),
            other => panic!("expected Closed, got {other:?}"),
        }
        Ok(())
    })
    .await;
    assert_eq!(tx.try_send(4), Err(TrySendError::Closed(4)));
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(0), 0, 1, 0, 0));
}

#[anyio::test]
async fn after_the_receivers_close_receive_on_the_closed_handle_fails_and_send_is_broken() {
    let (tx, rx) = create_memory_object_stream::<u32>(1);
    rx.close();
    rx.close(); // idempotent
    assert!(rx.is_closed());
    assert_eq!(rx.try_receive(), Err(TryReceiveError::Closed));
    guarded_ok(async {
        assert_eq!(rx.receive().await, Err(ReceiveError::Closed));
        match tx.send(3).await {
            Err(SendError::Broken(item)) => assert_eq!(item, 3, "the item comes back"),
            other => panic!("expected Broken, got {other:?}"),
        }
        Ok(())
    })
    .await;
    assert_eq!(tx.try_send(4), Err(TrySendError::Broken(4)), "even with room in the buffer");
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 1, 0, 0, 0));
}

#[anyio::test]
async fn a_closed_handle_reports_closed_even_while_clones_keep_the_stream_open() {
    let (tx, rx) = create_memory_object_stream::<u32>(2);
    let (tx2, rx2) = (tx.clone(), rx.clone());
    tx2.try_send(1).unwrap();
    tx.close();
    rx.close();
    assert_eq!(tx.try_send(2), Err(TrySendError::Closed(2)), "Closed, not Broken");
    assert_eq!(rx.try_receive(), Err(TryReceiveError::Closed), "Closed although an item is buffered");
    assert_eq!(rx2.try_receive(), Ok(1));
    tx2.try_send(3).unwrap();
    assert_eq!(rx2.try_receive(), Ok(3));
}

#[anyio::test]
async fn closing_the_last_sender_ends_a_waiting_receive() {
    let (tx, rx) = create_memory_object_stream::<u32>(1);
    let r = guarded_ok(async move {
        let rx = Arc::new(rx);
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let r = rx.clone();
            let h = tg.spawn(async move { Ok(r.receive().await) });
            until(|| rx.statistics().tasks_waiting_receive == 1).await?;
            tx.close();
            Ok(h.await?)
        })
        .await?)
    })
    .await;
    assert_eq!(r, Some(Err(ReceiveError::EndOfStream)));
}

#[anyio::test]
async fn end_of_stream_raised_in_a_task_fails_the_group_with_it() {
    let (tx, rx) = create_memory_object_stream::<u32>(1);
    let r = guarded_ok(async move {
        let rx = Arc::new(rx);
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let r = rx.clone();
            tg.spawn(async move {
                r.receive().await?;
                Ok(())
            });
            until(|| rx.statistics().tasks_waiting_receive == 1).await?;
            tx.close();
            Ok(())
        })
        .await)
    })
    .await;
    assert_group_failed_with::<EndOfStream, _>(r);
}

#[anyio::test]
async fn closing_the_last_sender_wakes_every_waiting_receiver() {
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    let tx2 = tx.clone();
    let results = guarded_ok(async move {
        let rx = Arc::new(rx);
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    let r = rx.clone();
                    tg.spawn(async move { Ok(r.receive().await) })
                })
                .collect();
            until(|| rx.statistics().tasks_waiting_receive == 3).await?;
            tx.close();
            sleep(SHORT).await?;
            assert_eq!(rx.statistics().tasks_waiting_receive, 3, "a clone is still open: keep waiting");
            drop(tx2);
            let mut out = Vec::new();
            for h in hs {
                out.push(h.await?);
            }
            Ok(out)
        })
        .await?
        .unwrap())
    })
    .await;
    assert_eq!(results, vec![Err(ReceiveError::EndOfStream); 3]);
}

#[anyio::test]
async fn closing_the_last_receiver_breaks_waiting_sends_and_returns_their_items() {
    let (tx, rx) = create_memory_object_stream::<String>(0);
    let rx2 = rx.clone();
    let results = guarded_ok(async move {
        let tx = Arc::new(tx);
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let hs: Vec<_> = ["a", "b"]
                .into_iter()
                .map(|s| {
                    let t = tx.clone();
                    tg.spawn(async move {
                        Ok(match t.send(s.to_owned()).await {
                            Ok(()) => Ok(()),
                            Err(SendError::Broken(item)) => Err(item),
                            Err(other) => panic!("expected Broken, got {other:?}"),
                        })
                    })
                })
                .collect();
            until(|| tx.statistics().tasks_waiting_send == 2).await?;
            rx.close();
            sleep(SHORT).await?;
            assert_eq!(tx.statistics().tasks_waiting_send, 2, "a clone is still open: keep waiting");
            drop(rx2);
            let mut out = Vec::new();
            for h in hs {
                out.push(h.await?);
            }
            assert_eq!(tx.statistics().tasks_waiting_send, 0);
            Ok(out)
        })
        .await?
        .unwrap())
    })
    .await;
    assert_eq!(results, [Err("a".to_owned()), Err("b".to_owned())]);
}

#[anyio::test]
async fn a_broken_send_raised_in_a_task_fails_the_group_with_broken_resource() {
    let (tx, rx) = create_memory_object_stream::<()>(0);
    let r = guarded_ok(async move {
        let tx = Arc::new(tx);
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let t = tx.clone();
            tg.spawn(async move {
                t.send(()).await?; // the item is `()`: AnyIO's regression test #731 sends `None`
                Ok(())
            });
            until(|| tx.statistics().tasks_waiting_send == 1).await?;
            rx.close();
            Ok(())
        })
        .await)
    })
    .await;
    assert_group_failed_with::<BrokenResourceError, _>(r);
}

#[anyio::test]
async fn buffered_items_are_received_before_end_of_stream() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(3);
    guarded_ok(async {
        tx.send("hello").await?;
        tx.send("anyio").await?;
        tx.close();
        assert_eq!(rx.receive().await?, "hello");
        assert_eq!(rx.try_receive(), Ok("anyio"));
        assert_eq!(rx.receive().await, Err(ReceiveError::EndOfStream));
        assert_eq!(rx.try_receive(), Err(TryReceiveError::EndOfStream));
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_send_already_waiting_when_its_handle_closes_is_still_delivered() {
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    let mut send = tx.send(9);
    assert!(poll_once(&mut send).is_pending());
    tx.close(); // the last sender: but its queued item is still part of the stream
    assert_eq!(rx.try_receive(), Ok(9));
    assert_eq!(rx.try_receive(), Err(TryReceiveError::EndOfStream));
    let r = guarded_ok(async { Ok(send.await.is_ok()) }).await;
    assert!(r, "the send reports the delivery");
}

#[anyio::test]
async fn dropping_the_handles_closes_them() {
    let (tx, rx) = create_memory_object_stream::<u32>(1);
    let tx2 = tx.clone();
    drop(tx);
    assert_eq!(rx.statistics().open_send_streams, 1);
    tx2.close();
    drop(tx2); // already closed: counted once
    assert_eq!(rx.statistics().open_send_streams, 0);
    assert_eq!(rx.try_receive(), Err(TryReceiveError::EndOfStream));

    let (tx, rx) = create_memory_object_stream::<u32>(1);
    let rx2 = rx.clone();
    rx.close();
    drop(rx);
    assert_eq!(tx.statistics().open_receive_streams, 1);
    drop(rx2);
    assert_eq!(tx.statistics().open_receive_streams, 0);
    assert_eq!(tx.try_send(1), Err(TrySendError::Broken(1)));
}

#[anyio::test]
async fn dropping_the_last_sender_wakes_a_waiting_receiver_with_end_of_stream() {
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    let r = guarded_ok(async move {
        let rx = Arc::new(rx);
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let r = rx.clone();
            let h = tg.spawn(async move { Ok(r.receive().await) });
            until(|| rx.statistics().tasks_waiting_receive == 1).await?;
            drop(tx);
            Ok(h.await?)
        })
        .await?)
    })
    .await;
    assert_eq!(r, Some(Err(ReceiveError::EndOfStream)));
}

#[anyio::test]
async fn closing_the_last_receiver_drops_the_buffered_items() {
    let counter = DropCounter::new();
    let (tx, rx) = create_memory_object_stream::<DropToken>(4);
    for _ in 0..3 {
        tx.try_send(counter.token()).unwrap();
    }
    let rx2 = rx.clone();
    rx.close();
    assert_eq!(counter.dropped(), 0, "another receiver can still take them");
    assert_eq!(tx.statistics().current_buffer_used, 3);
    drop(rx2);
    assert_eq!(counter.dropped(), 3, "nobody can receive them any more");
    assert_eq!(tx.statistics().current_buffer_used, 0);
    // A send now fails and hands the item back instead of dropping it.
    let err = tx.try_send(counter.token()).unwrap_err();
    assert!(matches!(err, TrySendError::Broken(_)));
    assert_eq!(counter.dropped(), 3);
    drop(err);
    assert_eq!(counter.dropped(), 4);
}

#[anyio::test]
async fn closing_the_last_sender_keeps_the_buffered_items_and_dropping_everything_frees_them() {
    let counter = DropCounter::new();
    let (tx, rx) = create_memory_object_stream::<DropToken>(4);
    for _ in 0..3 {
        tx.try_send(counter.token()).unwrap();
    }
    drop(tx);
    assert_eq!(counter.dropped(), 0);
    drop(rx.try_receive().expect("still buffered"));
    assert_eq!(counter.dropped(), 1);
    drop(rx);
    assert_eq!(counter.dropped(), 3, "no item outlives the stream");
}

// ---------------------------------------------------------------------------------------------
// Clones
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn clones_keep_each_end_open_until_every_clone_is_closed() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(1);
    let tx2 = tx.try_clone().unwrap();
    let rx2 = rx.try_clone().unwrap();
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 2, 2, 0, 0));
    tx.close();
    rx.close();
    assert_eq!(stats(&tx2, &rx2), (0, BufferSize::Bounded(1), 1, 1, 0, 0));
    tx2.try_send("hello").unwrap();
    assert_eq!(rx2.try_receive(), Ok("hello"));
    // `Clone` of an open handle is another open handle.
    let tx3 = tx2.clone();
    assert!(!tx3.is_closed());
    assert_eq!(tx3.statistics().open_send_streams, 2);
}

#[anyio::test]
async fn cloning_a_closed_handle_fails_and_clone_gives_a_closed_handle() {
    let (tx, rx) = create_memory_object_stream::<u32>(1);
    tx.close();
    rx.close();
    assert_eq!(tx.try_clone().unwrap_err(), ClosedResourceError);
    assert_eq!(rx.try_clone().unwrap_err(), ClosedResourceError);
    let (tx2, rx2) = (tx.clone(), rx.clone());
    assert!(tx2.is_closed() && rx2.is_closed());
    assert_eq!(stats(&tx2, &rx2), (0, BufferSize::Bounded(1), 0, 0, 0, 0), "closed clones count nothing");
    assert_eq!(tx2.try_send(1), Err(TrySendError::Closed(1)));
    assert_eq!(rx2.try_receive(), Err(TryReceiveError::Closed));
    drop((tx2, rx2));
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 0, 0, 0, 0), "dropping them counts nothing");
}

#[anyio::test]
async fn an_open_handle_cannot_be_cloned_back_to_life_once_its_end_is_closed() {
    // Only an open handle can be cloned, and an open handle keeps its end open: so an end whose
    // last handle closed stays closed.
    let (tx, rx) = create_memory_object_stream::<u32>(1);
    let tx2 = tx.clone();
    drop(tx);
    let tx3 = tx2.try_clone().unwrap();
    drop(tx2);
    tx3.try_send(1).unwrap();
    drop(tx3);
    assert_eq!(rx.try_receive(), Ok(1));
    assert_eq!(rx.try_receive(), Err(TryReceiveError::EndOfStream));
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn statistics_report_the_buffer_the_open_handles_and_the_waiting_tasks() {
    let (tx, rx) = create_memory_object_stream::<()>(1);
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 1, 1, 0, 0));
    guarded_ok(async move {
        let (tx, rx) = (Arc::new(tx), Arc::new(rx));
        let (tx1, rx1) = (tx.clone(), rx.clone());
        task_group(|tg: TaskGroup<AnyError>| async move {
            let (tx, rx) = (tx1, rx1);
            // tasks_waiting_send
            tx.try_send(()).unwrap();
            assert_eq!(stats(&tx, &rx), (1, BufferSize::Bounded(1), 1, 1, 0, 0));
            let t = tx.clone();
            tg.spawn(async move { Ok(t.send(()).await?) });
            until(|| tx.statistics().tasks_waiting_send == 1).await?;
            assert_eq!(stats(&tx, &rx), (1, BufferSize::Bounded(1), 1, 1, 1, 0));
            rx.try_receive().unwrap();
            assert_eq!(stats(&tx, &rx), (1, BufferSize::Bounded(1), 1, 1, 0, 0), "the waiter refilled it");
            rx.try_receive().unwrap();
            assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 1, 1, 0, 0));
            // tasks_waiting_receive
            let r = rx.clone();
            tg.spawn(async move { Ok(r.receive().await?) });
            until(|| rx.statistics().tasks_waiting_receive == 1).await?;
            assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 1, 1, 0, 1));
            tx.try_send(()).unwrap();
            assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 1, 1, 0, 0), "handed over, not buffered");
            Ok(())
        })
        .await?;
        let (tx1, rx1) = (tx.clone(), rx.clone());
        task_group(|tg: TaskGroup<AnyError>| async move {
            let (tx, rx) = (tx1, rx1);
            tx.try_send(()).unwrap();
            for _ in 0..3 {
                let t = tx.clone();
                tg.spawn(async move { Ok(t.send(()).await?) });
            }
            until(|| tx.statistics().tasks_waiting_send == 3).await?;
            assert_eq!(stats(&tx, &rx), (1, BufferSize::Bounded(1), 1, 1, 3, 0));
            for i in (0..3).rev() {
                rx.try_receive().unwrap();
                assert_eq!(stats(&tx, &rx), (1, BufferSize::Bounded(1), 1, 1, i, 0));
            }
            rx.try_receive().unwrap();
            Ok(())
        })
        .await?;
        assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 1, 1, 0, 0));

        // Two waiting receivers, then the end of the stream releases both.
        let (tx1, rx1) = (tx.clone(), rx.clone());
        task_group(|tg: TaskGroup<AnyError>| async move {
            let (tx, rx) = (tx1, rx1);
            for _ in 0..2 {
                let r = rx.clone();
                tg.spawn(async move { Ok(r.receive().await) });
            }
            until(|| rx.statistics().tasks_waiting_receive == 2).await?;
            assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 1, 1, 0, 2));
            tx.close();
            assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 0, 1, 0, 0));
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;

    let (tx, rx) = create_memory_object_stream::<()>(BufferSize::Unbounded);
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Unbounded, 1, 1, 0, 0));
    let (tx2, rx2, rx3) = (tx.clone(), rx.clone(), rx.try_clone().unwrap());
    assert_eq!(stats(&tx2, &rx3), (0, BufferSize::Unbounded, 2, 3, 0, 0));
    drop((tx2, rx2));
    rx3.close();
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Unbounded, 1, 1, 0, 0));
    assert_eq!(
        create_memory_object_stream::<()>(BufferSize::default()).0.statistics().max_buffer_size,
        BufferSize::Bounded(0)
    );
}

#[anyio::test]
async fn statistics_count_a_waiting_send_as_gone_once_the_last_receiver_closes() {
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    let mut send = tx.send(1);
    assert!(poll_once(&mut send).is_pending());
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(0), 1, 1, 1, 0));
    rx.close();
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(0), 1, 0, 0, 0));
    let r = guarded_ok(async { Ok(send.await) }).await;
    assert!(matches!(r, Err(SendError::Broken(1))), "got {r:?}");
}

// ---------------------------------------------------------------------------------------------
// Cancellation: nothing lost, nothing duplicated
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn cancelling_a_waiting_receive_takes_nothing() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(0);
    let rx = Arc::new(rx);
    let outcome = Arc::new(Mutex::new(None));
    let seen = outcome.clone();
    guarded_ok(async {
        let (r, watch) = (rx.clone(), rx.clone());
        task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                let res = r.receive().await;
                *seen.lock().unwrap() = Some(res.clone());
                res?;
                Ok(())
            });
            until(|| watch.statistics().tasks_waiting_receive == 1).await?;
            tg.cancel();
            Ok(())
        })
        .await?;
        assert_eq!(rx.statistics().tasks_waiting_receive, 0, "the cancelled receiver left the queue");
        Ok(())
    })
    .await;
    assert!(matches!(*outcome.lock().unwrap(), Some(Err(ReceiveError::Cancelled(_)))));
    assert_eq!(tx.try_send("hello"), Err(TrySendError::WouldBlock("hello")));
}

#[anyio::test]
async fn cancelling_a_waiting_send_returns_the_item_and_never_delivers_it() {
    let (tx, rx) = create_memory_object_stream::<String>(0);
    let tx = Arc::new(tx);
    let outcome = Arc::new(Mutex::new(None));
    let seen = outcome.clone();
    guarded_ok(async {
        let (t, watch) = (tx.clone(), tx.clone());
        task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                match t.send("hello".to_owned()).await {
                    Err(SendError::Cancelled(item, c)) => {
                        *seen.lock().unwrap() = Some(item);
                        Err::<(), AnyError>(c.into()) // a cancellation: not a failure
                    }
                    other => panic!("expected SendError::Cancelled, got {other:?}"),
                }
            });
            until(|| watch.statistics().tasks_waiting_send == 1).await?;
            tg.cancel();
            Ok(())
        })
        .await?;
        assert_eq!(tx.statistics().tasks_waiting_send, 0, "the cancelled sender left the queue");
        Ok(())
    })
    .await;
    assert_eq!(outcome.lock().unwrap().as_deref(), Some("hello"), "the item came back");
    assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock), "and was not sent");
}

#[anyio::test]
async fn a_waiting_send_cancelled_by_its_scope_returns_the_item_and_leaves_the_queue() {
    let (tx, rx) = create_memory_object_stream::<String>(0);
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded_ok(async {
        Ok(scope
            .run(async {
                let mut send = tx.send("hello".to_owned());
                assert!(poll_once(&mut send).is_pending());
                assert_eq!(tx.statistics().tasks_waiting_send, 1);
                s.cancel();
                Ok::<_, Cancelled>(send.await)
            })
            .await)
    })
    .await;
    match r {
        Ok(Some(Err(SendError::Cancelled(item, c)))) => {
            assert_eq!(item, "hello");
            assert_eq!(c.source_kind(), anyio::error::CancelSource::Explicit);
        }
        other => panic!("expected SendError::Cancelled, got {other:?}"),
    }
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(0), 1, 1, 0, 0));
    assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock), "never delivered later");
}

#[anyio::test]
async fn a_send_whose_item_was_taken_reports_success_although_its_scope_was_cancelled_afterwards() {
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded_ok(async {
        Ok(scope
            .run(async {
                let mut send = tx.send(7);
                assert!(poll_once(&mut send).is_pending());
                assert_eq!(rx.try_receive(), Ok(7), "delivered...");
                s.cancel(); // ...and only then cancelled
                Ok::<_, Cancelled>(send.await)
            })
            .await)
    })
    .await;
    assert!(matches!(r, Ok(Some(Ok(())))), "a delivered item must not be reported unsent: {r:?}");
    assert_eq!(tx.statistics().tasks_waiting_send, 0);
}

#[anyio::test]
async fn a_waiting_send_whose_scope_is_cancelled_is_delivered_or_returned_never_both() {
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded_ok(async {
        Ok(scope
            .run(async {
                let mut send = tx.send(7);
                assert!(poll_once(&mut send).is_pending());
                s.cancel(); // cancelled, but the sender has not run since
                let taken = rx.try_receive();
                Ok::<_, Cancelled>((taken, send.await))
            })
            .await)
    })
    .await;
    match r {
        // trio: the cancelled sender left the queue at once.
        Ok(Some((Err(TryReceiveError::WouldBlock), Err(SendError::Cancelled(7, _))))) => {}
        // committed beats cancellation: it was taken, so the send succeeded.
        Ok(Some((Ok(7), Ok(())))) => {}
        Ok(Some((taken, sent))) => panic!("lost or duplicated: received {taken:?}, send returned {sent:?}"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock));
}

#[anyio::test]
async fn send_in_an_already_cancelled_scope_fails_without_sending() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(0);
    let received = guarded_ok(async move {
        let rx = Arc::new(rx);
        let r = rx.clone();
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let h = tg.spawn(async move { Ok(r.receive().await?) });
            until(|| rx.statistics().tasks_waiting_receive == 1).await?;
            let scope = CancelScope::new();
            scope.cancel();
            // A receiver is waiting, yet the send is a checkpoint first.
            let out = scope.run(async { Ok::<_, Cancelled>(tx.send("hello").await) }).await?;
            assert!(matches!(out, Some(Err(SendError::Cancelled("hello", _)))), "got {out:?}");
            assert_eq!(rx.statistics().tasks_waiting_receive, 1, "the receiver got nothing");
            tx.send("world").await?;
            Ok(h.await?)
        })
        .await?)
    })
    .await;
    assert_eq!(received, Some("world"));

    // Also when the buffer has room.
    let (tx, rx) = create_memory_object_stream::<u32>(1);
    let scope = CancelScope::new();
    scope.cancel();
    let out = scope.run(async { Ok::<_, Cancelled>(tx.send(1).await) }).await;
    assert!(matches!(out, Ok(Some(Err(SendError::Cancelled(1, _))))), "got {out:?}");
    assert_eq!(stats(&tx, &rx), (0, BufferSize::Bounded(1), 1, 1, 0, 0));
}

#[anyio::test]
async fn receive_in_an_already_cancelled_scope_takes_nothing() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(0);
    guarded_ok(async move {
        let tx = Arc::new(tx);
        task_group(|tg: TaskGroup<AnyError>| async move {
            for (n, item) in ["hello", "world"].into_iter().enumerate() {
                let t = tx.clone();
                tg.spawn(async move { Ok(t.send(item).await?) });
                until(|| tx.statistics().tasks_waiting_send == n + 1).await?;
            }
            let scope = CancelScope::new();
            scope.cancel();
            let out = scope.run(async { Ok::<_, Cancelled>(rx.receive().await) }).await?;
            assert!(matches!(out, Some(Err(ReceiveError::Cancelled(_)))), "got {out:?}");
            assert_eq!(tx.statistics().tasks_waiting_send, 2, "no sender was served");
            assert_eq!(rx.receive().await?, "hello");
            assert_eq!(rx.receive().await?, "world");
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;

    // Also with an item in the buffer.
    let (tx, rx) = create_memory_object_stream::<u32>(1);
    tx.try_send(1).unwrap();
    let scope = CancelScope::new();
    scope.cancel();
    let out = scope.run(async { rx.receive().await }).await;
    assert_eq!(out, Ok(None), "the scope caught the receive's cancellation");
    assert_eq!(rx.try_receive(), Ok(1));
}

#[anyio::test]
async fn an_item_handed_to_a_waiting_receiver_whose_scope_is_cancelled_right_after_is_still_returned() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(0);
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded_ok(async {
        Ok(scope
            .run(async {
                let mut receive = rx.receive();
                assert!(poll_once(&mut receive).is_pending());
                tx.try_send("hello").expect("handed to the queued receive");
                s.cancel(); // before the receiver runs again
                receive.await
            })
            .await)
    })
    .await;
    assert_eq!(r, Ok(Some("hello")), "the handed-over item beats the cancellation");
    assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock), "and was not duplicated");
}

#[anyio::test]
async fn an_item_handed_to_a_receiver_task_whose_scope_is_then_cancelled_is_still_received() {
    // AnyIO's test_cancel_during_receive, with a real task.
    let (tx, rx) = create_memory_object_stream::<&'static str>(0);
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded_ok(async move {
        let rx = Arc::new(rx);
        let r = rx.clone();
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let h = tg.spawn(async move { Ok(s.run(async { r.receive().await }).await) });
            until(|| rx.statistics().tasks_waiting_receive == 1).await?;
            tx.try_send("hello").expect("handed to the waiting receiver");
            scope.cancel(); // on one thread: before the receiver runs again
            Ok(h.await?)
        })
        .await?)
    })
    .await;
    assert_eq!(r, Some(Ok(Some("hello"))));
}

#[anyio::test]
async fn an_item_sent_after_the_waiting_receivers_scope_was_cancelled_is_not_handed_to_it() {
    // AnyIO's test_cancel_during_receive_buffered (and trio: a cancelled waiter leaves the queue
    // at once): a receiver with a pending cancellation is skipped, so the item stays in the
    // stream instead of going to a receive that is being cancelled.
    let (tx, rx) = create_memory_object_stream::<&'static str>(1);
    let scope = CancelScope::new();
    let s = scope.clone();
    let r = guarded_ok(async {
        Ok(scope
            .run(async {
                let mut receive = rx.receive();
                assert!(poll_once(&mut receive).is_pending());
                s.cancel(); // the receive is being cancelled, but has not run since
                let sent = tx.try_send("item");
                Ok::<_, Cancelled>((sent, receive.await))
            })
            .await)
    })
    .await;
    let (sent, received) = r.expect("no outer cancellation").expect("the body returned Ok");
    assert_eq!(sent, Ok(()));
    assert!(
        matches!(received, Err(ReceiveError::Cancelled(_))),
        "the cancelled receive must not be handed the item, got {received:?}"
    );
    assert_eq!(rx.try_receive(), Ok("item"), "the item is available to the next receiver");
}

#[anyio::test]
async fn an_item_sent_after_the_oldest_waiting_receivers_scope_was_cancelled_goes_to_the_next_receiver() {
    // The same rule with a live receiver queued behind the cancelled one: AnyIO hands the item
    // to the live receiver; it must not go to a receive that is being cancelled, whose caller
    // would typically drop it at its next checkpoint.
    let (tx, rx) = create_memory_object_stream::<&'static str>(0);
    let rx = Arc::new(rx);
    let scope = CancelScope::new();
    let s = scope.clone();
    let (first, second) = guarded_ok(async {
        let (r, r2, watch) = (rx.clone(), rx.clone(), rx.clone());
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let (sent, first, h) = s
                .run(async {
                    let mut receive = r.receive();
                    assert!(poll_once(&mut receive).is_pending());
                    // A live receiver (outside the scope) queues up behind it.
                    let h = tg.spawn(async move { Ok(r2.receive().await) });
                    until(|| watch.statistics().tasks_waiting_receive == 2).await?;
                    s.cancel(); // the first receive is being cancelled, but has not run since
                    let sent = tx.try_send("item");
                    Ok::<_, Cancelled>((sent, receive.await, h))
                })
                .await?
                .expect("the body returned Ok");
            assert_eq!(sent, Ok(()));
            tx.close(); // lets the second receiver finish whoever got the item
            Ok((first, h.await?))
        })
        .await?
        .unwrap())
    })
    .await;
    assert_eq!(second, Ok("item"), "the live receiver gets the item (the cancelled one got {first:?})");
    assert!(matches!(first, Err(ReceiveError::Cancelled(_))), "got {first:?}");
}

#[anyio::test]
async fn a_receive_cancelled_while_waiting_leaves_the_item_for_another_receiver() {
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    let (cancelled_out, other_out) = guarded_ok(async move {
        let rx = Arc::new(rx);
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let scope = CancelScope::new();
            let (s, r) = (scope.clone(), rx.clone());
            let first = tg.spawn(async move { Ok(s.run(async { r.receive().await }).await) });
            until(|| rx.statistics().tasks_waiting_receive == 1).await?;
            let r = rx.clone();
            let second = tg.spawn(async move { Ok(r.receive().await?) });
            until(|| rx.statistics().tasks_waiting_receive == 2).await?;
            scope.cancel();
            until(|| first.is_finished()).await?;
            assert_eq!(rx.statistics().tasks_waiting_receive, 1);
            tx.try_send(42).expect("the second receiver is waiting");
            Ok((first.await?, second.await?))
        })
        .await?
        .unwrap())
    })
    .await;
    assert_eq!(cancelled_out, Ok(None), "the cancelled receive took nothing");
    assert_eq!(other_out, 42);
}

#[anyio::test]
async fn dropping_a_pending_receive_that_was_handed_an_item_passes_the_item_on() {
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    let mut receive = rx.receive();
    assert!(poll_once(&mut receive).is_pending());
    tx.try_send(7).expect("handed to the queued receive");
    drop(receive); // it never looked at the item
    assert_eq!(rx.try_receive(), Ok(7), "the item went back to the front of the stream");
    assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock), "exactly once");
}

#[anyio::test]
async fn dropping_a_pending_receive_that_was_handed_an_item_passes_it_to_the_next_waiting_receiver() {
    let (tx, rx) = create_memory_object_stream::<u32>(1);
    tx.try_send(1).unwrap();
    let got = guarded_ok(async move {
        let rx = Arc::new(rx);
        assert_eq!(rx.try_receive(), Ok(1)); // empty again
        let mut receive = rx.receive();
        assert!(poll_once(&mut receive).is_pending());
        let watch = rx.clone();
        let r = rx.clone();
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            // First with nobody left waiting: the item goes back to the front of the buffer.
            let h = tg.spawn(async move { Ok(r.receive().await?) });
            until(|| watch.statistics().tasks_waiting_receive == 2).await?;
            tx.try_send(7).expect("handed to `receive`, the oldest waiter");
            tx.try_send(8).expect("handed to the task");
            drop(receive); // 7 goes back to the buffer
            let from_task = h.await?;
            assert_eq!(from_task, 8);
            assert_eq!(watch.try_receive(), Ok(7));
            // Then with a task waiting: it must be *woken* by the pass-on.
            let mut receive = watch.receive();
            assert!(poll_once(&mut receive).is_pending());
            let r = watch.clone();
            let h = tg.spawn(async move { Ok(r.receive().await?) });
            until(|| watch.statistics().tasks_waiting_receive == 2).await?;
            tx.try_send(9).expect("handed to `receive`, the oldest waiter");
            drop(receive); // 9 goes on to the waiting task
            Ok(h.await?)
        })
        .await?)
    })
    .await;
    assert_eq!(got, Some(9));
}

#[anyio::test]
async fn dropping_a_pending_send_withdraws_and_drops_its_item() {
    let counter = DropCounter::new();
    let (tx, rx) = create_memory_object_stream::<DropToken>(0);
    let mut send = tx.send(counter.token());
    assert!(poll_once(&mut send).is_pending());
    assert_eq!(tx.statistics().tasks_waiting_send, 1);
    drop(send);
    assert_eq!(tx.statistics().tasks_waiting_send, 0);
    assert_eq!(counter.dropped(), 1, "the caller gave the item up");
    assert!(matches!(rx.try_receive(), Err(TryReceiveError::WouldBlock)), "and it was not sent");
}

#[anyio::test]
async fn dropping_a_send_never_polled_drops_its_item_and_sends_nothing() {
    let counter = DropCounter::new();
    let (tx, rx) = create_memory_object_stream::<DropToken>(4);
    drop(tx.send(counter.token()));
    assert_eq!(counter.dropped(), 1, "the item went with the future");
    assert!(matches!(rx.try_receive(), Err(TryReceiveError::WouldBlock)), "and it was not sent");
    let receive = rx.receive();
    drop(receive);
    assert!(tx.try_send(counter.token()).is_ok());
    assert_eq!(counter.dropped(), 1, "a dropped receive took nothing");
    assert!(rx.try_receive().is_ok());
}

#[anyio::test]
async fn send_errors_convert_to_any_error_keeping_cancellation_recognisable() {
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            tx.send(1).await?;
            Ok::<_, AnyError>(())
        })
        .await;
    assert!(matches!(r, Ok(None)), "the scope caught the send's cancellation: {r:?}");
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            rx.receive().await?;
            Ok::<_, AnyError>(())
        })
        .await;
    assert!(matches!(r, Ok(None)), "the scope caught the receive's cancellation: {r:?}");

    rx.close();
    let e = AnyError::from(tx.try_send(2).unwrap_err());
    assert!(e.downcast_ref::<BrokenResourceError>().is_some());
    let e = AnyError::from(rx.try_receive().unwrap_err());
    assert!(e.downcast_ref::<ClosedResourceError>().is_some());
    tx.close();
    let e = AnyError::from(guarded_ok(async { Ok(tx.send(3).await) }).await.unwrap_err());
    assert!(e.downcast_ref::<ClosedResourceError>().is_some());
    let (tx, rx) = create_memory_object_stream::<u32>(0);
    drop(tx);
    let e = AnyError::from(guarded_ok(async { Ok(rx.receive().await) }).await.unwrap_err());
    assert!(e.downcast_ref::<EndOfStream>().is_some());
}

// ---------------------------------------------------------------------------------------------
// `Sink`
// ---------------------------------------------------------------------------------------------

#[anyio::test]
async fn sink_send_feed_flush_send_all_and_close_deliver_every_item_and_close_the_handle() {
    let (mut tx, rx) = create_memory_object_stream::<u32>(1);
    let got = guarded_ok(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let h = tg.spawn(async move { drain(&rx).await });
            SinkExt::send(&mut tx, 1).await?;
            tx.feed(2).await?;
            tx.feed(3).await?;
            tx.flush().await?;
            tx.send_all(&mut futures::stream::iter((4..=10).map(Ok))).await?;
            SinkExt::close(&mut tx).await?;
            assert!(tx.is_closed(), "Sink::close closes the handle");
            Ok(h.await?)
        })
        .await?)
    })
    .await;
    assert_eq!(got, Some((1..=10).collect::<Vec<_>>()));
}

#[anyio::test]
async fn a_fed_item_waits_in_the_sink_until_flushed_and_is_delivered_exactly_once() {
    let (mut tx, rx) = create_memory_object_stream::<u32>(0);
    guarded_ok(async {
        tx.feed(1).await?; // nobody receiving: the sink keeps it
        assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock));
        let mut flush = tx.flush();
        assert!(poll_once(&mut flush).is_pending());
        drop(flush);
        assert_eq!(rx.statistics().tasks_waiting_send, 1, "the flush queued it");
        assert_eq!(rx.try_receive(), Ok(1));
        tx.flush().await?;
        assert_eq!(rx.statistics().tasks_waiting_send, 0);
        assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock), "exactly once");
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn sink_errors_return_the_item() {
    // Broken: every receiver closed.
    let (mut tx, rx) = create_memory_object_stream::<String>(0);
    drop(rx);
    let r = guarded_ok(async { Ok(SinkExt::send(&mut tx, "a".to_owned()).await) }).await;
    match r {
        Err(SendError::Broken(item)) => assert_eq!(item, "a"),
        other => panic!("expected Broken, got {other:?}"),
    }

    // Broken while the item waits in the sink.
    let (mut tx, rx) = create_memory_object_stream::<String>(0);
    guarded_ok(async {
        tx.feed("b".to_owned()).await?;
        Ok(())
    })
    .await;
    rx.close();
    let r = guarded_ok(async { Ok(tx.flush().await) }).await;
    assert_eq!(r.map_err(SendError::into_inner), Err("b".to_owned()));

    // Closed: this handle was closed.
    let (mut tx, _rx) = create_memory_object_stream::<String>(1);
    tx.close();
    let r = guarded_ok(async { Ok(tx.feed("c".to_owned()).await) }).await;
    match r {
        Err(SendError::Closed(item)) => assert_eq!(item, "c"),
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[anyio::test]
async fn a_sink_send_that_has_to_wait_in_a_cancelled_scope_returns_the_item_unsent() {
    let (mut tx, rx) = create_memory_object_stream::<String>(0);
    let scope = CancelScope::new();
    scope.cancel();
    let r = guarded_ok(async {
        Ok(scope.run(async { Ok::<_, Cancelled>(SinkExt::send(&mut tx, "x".to_owned()).await) }).await)
    })
    .await;
    match r {
        Ok(Some(Err(SendError::Cancelled(item, _)))) => assert_eq!(item, "x"),
        other => panic!("expected SendError::Cancelled, got {other:?}"),
    }
    assert_eq!(rx.try_receive(), Err(TryReceiveError::WouldBlock), "not sent");
    assert_eq!(rx.statistics().tasks_waiting_send, 0);
    // The sink is usable again.
    let got = guarded_ok(async move {
        let rx = Arc::new(rx);
        let r = rx.clone();
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let h = tg.spawn(async move { Ok(r.receive().await?) });
            SinkExt::send(&mut tx, "y".to_owned()).await?;
            Ok(h.await?)
        })
        .await?)
    })
    .await;
    assert_eq!(got.as_deref(), Some("y"));
}

#[anyio::test]
async fn dropping_a_sender_with_an_item_in_its_sink_drops_the_item_unsent() {
    let counter = DropCounter::new();
    let (mut tx, rx) = create_memory_object_stream::<DropToken>(0);
    guarded_ok(async {
        tx.feed(counter.token()).await.map_err(AnyError::from)?;
        let mut flush = tx.flush();
        assert!(poll_once(&mut flush).is_pending());
        Ok(())
    })
    .await;
    assert_eq!(rx.statistics().tasks_waiting_send, 1);
    drop(tx);
    assert_eq!(counter.dropped(), 1);
    assert!(matches!(rx.try_receive(), Err(TryReceiveError::EndOfStream)));
}

// ---------------------------------------------------------------------------------------------
// Across threads
// ---------------------------------------------------------------------------------------------

const PRODUCERS: u32 = 4;
const PER_PRODUCER: u32 = 200;
const CONSUMERS: usize = 3;

async fn every_item_is_received_exactly_once_across_threads(size: BufferSize) {
    let (tx, rx) = create_memory_object_stream::<u32>(size);
    let per_consumer = guarded_ok(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            for p in 0..PRODUCERS {
                let t = tx.clone();
                tg.spawn(async move {
                    for i in 0..PER_PRODUCER {
                        t.send(p * PER_PRODUCER + i).await?;
                        if i % 16 == 0 {
                            checkpoint().await?;
                        }
                    }
                    Ok(())
                });
            }
            drop(tx);
            let hs: Vec<_> = (0..CONSUMERS)
                .map(|_| {
                    let r = rx.clone();
                    tg.spawn(async move { drain(&r).await })
                })
                .collect();
            drop(rx);
            let mut out = Vec::new();
            for h in hs {
                out.push(h.await?);
            }
            Ok(out)
        })
        .await?
        .unwrap())
    })
    .await;
    for got in &per_consumer {
        for p in 0..PRODUCERS {
            let from_p: Vec<_> = got.iter().filter(|&&v| v / PER_PRODUCER == p).collect();
            assert!(from_p.windows(2).all(|w| w[0] < w[1]), "each producer's items arrive in order");
        }
    }
    let mut all: Vec<u32> = per_consumer.into_iter().flatten().collect();
    all.sort();
    assert_eq!(all, (0..PRODUCERS * PER_PRODUCER).collect::<Vec<_>>(), "every item exactly once");
}

#[anyio::test]
async fn many_producers_and_consumers_receive_every_item_exactly_once_when_unbuffered() {
    every_item_is_received_exactly_once_across_threads(BufferSize::Bounded(0)).await;
}

#[anyio::test]
async fn many_producers_and_consumers_receive_every_item_exactly_once_with_a_buffer() {
    every_item_is_received_exactly_once_across_threads(BufferSize::Bounded(8)).await;
}

#[anyio::test]
async fn many_producers_and_consumers_receive_every_item_exactly_once_when_unbounded() {
    every_item_is_received_exactly_once_across_threads(BufferSize::Unbounded).await;
}

/// Per producer: what it sent and what came back from cancelled sends.
type ProducerLog = (Vec<u32>, Vec<u32>);

async fn cancellations_across_threads_lose_and_duplicate_nothing(size: usize) {
    let (tx, rx) = create_memory_object_stream::<u32>(size);
    let (logs, received) = guarded_ok(async move {
        Ok(task_group(|tg: TaskGroup<AnyError>| async move {
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let t = tx.clone();
                    tg.spawn(async move {
                        let mut log: ProducerLog = (Vec::new(), Vec::new());
                        for i in 0..PER_PRODUCER {
                            if i % 10 == 5 {
                                sleep(Duration::from_millis(1)).await?; // let receives wait, and time out
                            }
                            let item = p * PER_PRODUCER + i;
                            let timeout = match i % 4 {
                                0 => Duration::ZERO,
                                1 => Duration::from_micros(100),
                                2 => Duration::from_millis(1),
                                _ => Duration::from_secs(3600),
                            };
                            let scope = CancelScope::with_timeout(timeout);
                            match scope.run(async { Ok::<_, Cancelled>(t.send(item).await) }).await? {
                                Some(Ok(())) => log.0.push(item),
                                Some(Err(SendError::Cancelled(back, _))) => {
                                    assert_eq!(back, item, "the cancelled send returned its own item");
                                    log.1.push(back);
                                }
                                other => panic!("unexpected send outcome {other:?}"),
                            }
                        }
                        Ok(log)
                    })
                })
                .collect();
            drop(tx);
            let consumers: Vec<_> = (0..CONSUMERS)
                .map(|c| {
                    let r = rx.clone();
                    tg.spawn(async move {
                        let mut got = Vec::new();
                        for n in 0u32.. {
                            if n % 7 == 3 {
                                sleep(Duration::from_millis(1)).await?; // let sends wait, and time out
                            }
                            let outcome = match (n + c as u32) % 4 {
                                // A receive dropped after one poll: an item handed to it in
                                // between must be passed on, not lost.
                                0 => match r.receive().now_or_never() {
                                    Some(res) => Some(res),
                                    None => {
                                        checkpoint().await?;
                                        None
                                    }
                                },
                                1 => {
                                    CancelScope::with_timeout(Duration::ZERO)
                                        .run(async { Ok::<_, Cancelled>(r.receive().await) })
                                        .await?
                                }
                                2 => {
                                    CancelScope::with_timeout(Duration::from_micros(200))
                                        .run(async { Ok::<_, Cancelled>(r.receive().await) })
                                        .await?
                                }
                                _ => Some(r.receive().await),
                            };
                            match outcome {
                                None | Some(Err(ReceiveError::Cancelled(_))) => {}
                                Some(Ok(v)) => got.push(v),
                                Some(Err(ReceiveError::EndOfStream)) => break,
                                Some(Err(e)) => panic!("unexpected receive error {e:?}"),
                            }
                        }
                        Ok(got)
                    })
                })
                .collect();
            drop(rx);
            let mut logs = Vec::new();
            for h in producers {
                logs.push(h.await?);
            }
            let mut received = Vec::new();
            for h in consumers {
                received.extend(h.await?);
            }
            Ok((logs, received))
        })
        .await?
        .unwrap())
    })
    .await;
    let sent: Vec<u32> = logs.iter().flat_map(|l| l.0.iter().copied()).collect();
    let returned: HashSet<u32> = logs.iter().flat_map(|l| l.1.iter().copied()).collect();
    let mut received_sorted = received.clone();
    received_sorted.sort();
    let unique: HashSet<u32> = received.iter().copied().collect();
    assert_eq!(unique.len(), received.len(), "an item was received twice");
    let mut sent_sorted = sent.clone();
    sent_sorted.sort();
    assert_eq!(received_sorted, sent_sorted, "received exactly what the sends reported as sent");
    assert!(unique.is_disjoint(&returned), "an item was both received and returned by a cancelled send");
    assert_eq!(sent.len() + returned.len(), (PRODUCERS * PER_PRODUCER) as usize, "every item accounted for");
}

#[anyio::test]
async fn cancelled_sends_and_receives_across_threads_lose_and_duplicate_nothing_when_unbuffered() {
    cancellations_across_threads_lose_and_duplicate_nothing(0).await;
}

#[anyio::test]
async fn cancelled_sends_and_receives_across_threads_lose_and_duplicate_nothing_with_a_buffer() {
    cancellations_across_threads_lose_and_duplicate_nothing(4).await;
}

/// Asserts that a task group failed with exactly one error, of type `E`.
fn assert_group_failed_with<E: std::error::Error + 'static, T: std::fmt::Debug>(
    r: Result<T, GroupError<AnyError>>,
) {
    match r {
        Err(GroupError::Failed(errors)) => {
            assert_eq!(errors.len(), 1);
            assert!(errors[0].downcast_ref::<E>().is_some(), "got {}", errors[0]);
        }
        other => panic!("expected the group to fail with {}, got {other:?}", std::any::type_name::<E>()),
    }
}
