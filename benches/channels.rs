//! Memory object stream throughput beside tokio's `mpsc`, async-channel, flume and kanal, in the
//! same run, on tokio current-thread, tokio multi-thread (2 workers) and smol.
//!
//! Run with `cargo bench --bench channels --features smol` (add `-- quick` for a short run).
//! Each case moves 1,000,000 `u64`s (100,000 with `quick`) from its producers to its
//! consumers, every one a spawned task: SPSC (1 producer, 1 consumer), MPSC (4 producers, 1
//! consumer) and MPMC (4 producers, 4 consumers; tokio's `mpsc` has one consumer, so it is only
//! a twin of the first two), through a rendezvous buffer, a buffer of 1,024 and an unbounded
//! one. The channels are built outside the timed region; the timed region spawns every
//! participant and waits for all of them. anyio's side spawns them into a task group; the
//! twins spawn them straight onto the runtime.
//!
//! tokio's `mpsc` and async-channel have no rendezvous channel: their capacity-1 channels are
//! the twins of anyio's buffer 0 (flume's `bounded(0)` and kanal's `bounded_async(0)` are true
//! rendezvous channels).
//!
//! Every case is measured in interleaved rounds (ours, twin 1, twin 2, ...) and reports the
//! median nanoseconds per message, the messages per second, and the time ratio ours/twin
//! (below 1: anyio is faster). Arguments: `quick`, a name filter matched against
//! "<case> | <twin>", `env=<name>`, `side=ours|raw` (one side alone, for profiling).
//!
//! `diag` adds a diagnostic twin: anyio's own primitive driven from tasks spawned straight onto
//! the runtime, outside any anyio task (no cancel scope to register a blocked wait with, no task
//! id, no coop budget). Its ratio is what running inside anyio's tasks adds.

use std::future::Future;
use std::hint::black_box;

use anyio::{
    streams::memory::{create_memory_object_stream, BufferSize, ReceiveError},
    Cancelled, TaskGroup,
};

mod common;

use common::{run_twin_cases, workload, Args, TwinCase, Unit, Workload};

/// A channel's buffer, as each library spells it.
#[derive(Clone, Copy)]
enum Buf {
    /// anyio's 0 and flume's `bounded(0)`; capacity 1 for tokio and async-channel.
    Rendezvous,
    Bounded(usize),
    Unbounded,
}

impl Buf {
    fn label(self) -> String {
        match self {
            Buf::Rendezvous => "buffer 0".to_owned(),
            Buf::Bounded(n) => format!("buffer {n}"),
            Buf::Unbounded => "unbounded".to_owned(),
        }
    }
}

/// One channel library: how to build a channel with `p` send handles and `c` receive handles,
/// and the producer and consumer loops.
trait Chan: 'static {
    type Tx: Send + 'static;
    type Rx: Send + 'static;
    /// The twin's label for a buffer, or `None` if this library cannot be that twin.
    fn label(buf: Buf) -> Option<String>;
    /// `p` senders and `c` receivers of one fresh channel; no other handle is left, so the
    /// stream ends when the producers finish.
    fn make(buf: Buf, p: usize, c: usize) -> (Vec<Self::Tx>, Vec<Self::Rx>);
    /// Sends `0..n`.
    fn produce(tx: Self::Tx, n: u64) -> impl Future<Output = ()> + Send + 'static;
    /// Receives until the stream ends; returns how many items it got.
    fn consume(rx: Self::Rx) -> impl Future<Output = u64> + Send + 'static;
}

/// `n` handles: `n - 1` clones and the original.
fn handles<T>(h: T, n: usize, clone: impl Fn(&T) -> T) -> Vec<T> {
    let mut v: Vec<T> = (1..n).map(|_| clone(&h)).collect();
    v.push(h);
    v
}

struct Ours;

impl Chan for Ours {
    type Tx = anyio::streams::memory::MemoryObjectSendStream<u64>;
    type Rx = anyio::streams::memory::MemoryObjectReceiveStream<u64>;
    fn label(_: Buf) -> Option<String> {
        Some("anyio".to_owned())
    }
    fn make(buf: Buf, p: usize, c: usize) -> (Vec<Self::Tx>, Vec<Self::Rx>) {
        let size = match buf {
            Buf::Rendezvous => BufferSize::Bounded(0),
            Buf::Bounded(n) => BufferSize::Bounded(n),
            Buf::Unbounded => BufferSize::Unbounded,
        };
        let (tx, rx) = create_memory_object_stream::<u64>(size);
        (handles(tx, p, Clone::clone), handles(rx, c, Clone::clone))
    }
    async fn produce(tx: Self::Tx, n: u64) {
        for i in 0..n {
            tx.send(i).await.expect("anyio send");
        }
    }
    async fn consume(rx: Self::Rx) -> u64 {
        let mut got = 0u64;
        loop {
            match rx.receive().await {
                Ok(v) => {
                    black_box(v);
                    got += 1;
                }
                Err(ReceiveError::EndOfStream) => return got,
                Err(e) => panic!("anyio receive: {e}"),
            }
        }
    }
}

/// `tokio::sync::mpsc::channel`; capacity 1 stands in for a rendezvous.
struct TokioBounded;

impl Chan for TokioBounded {
    type Tx = tokio::sync::mpsc::Sender<u64>;
    type Rx = tokio::sync::mpsc::Receiver<u64>;
    fn label(buf: Buf) -> Option<String> {
        match buf {
            Buf::Rendezvous => Some("tokio mpsc channel(1)".to_owned()),
            Buf::Bounded(n) => Some(format!("tokio mpsc channel({n})")),
            Buf::Unbounded => None,
        }
    }
    fn make(buf: Buf, p: usize, c: usize) -> (Vec<Self::Tx>, Vec<Self::Rx>) {
        assert_eq!(c, 1, "tokio mpsc has one consumer");
        let cap = match buf {
            Buf::Rendezvous => 1,
            Buf::Bounded(n) => n,
            Buf::Unbounded => unreachable!(),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(cap);
        (handles(tx, p, Clone::clone), vec![rx])
    }
    async fn produce(tx: Self::Tx, n: u64) {
        for i in 0..n {
            tx.send(i).await.expect("tokio send");
        }
    }
    async fn consume(mut rx: Self::Rx) -> u64 {
        let mut got = 0u64;
        while let Some(v) = rx.recv().await {
            black_box(v);
            got += 1;
        }
        got
    }
}

/// `tokio::sync::mpsc::unbounded_channel`.
struct TokioUnbounded;

impl Chan for TokioUnbounded {
    type Tx = tokio::sync::mpsc::UnboundedSender<u64>;
    type Rx = tokio::sync::mpsc::UnboundedReceiver<u64>;
    fn label(buf: Buf) -> Option<String> {
        matches!(buf, Buf::Unbounded).then(|| "tokio mpsc unbounded_channel".to_owned())
    }
    fn make(_: Buf, p: usize, c: usize) -> (Vec<Self::Tx>, Vec<Self::Rx>) {
        assert_eq!(c, 1, "tokio mpsc has one consumer");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (handles(tx, p, Clone::clone), vec![rx])
    }
    async fn produce(tx: Self::Tx, n: u64) {
        for i in 0..n {
            tx.send(i).expect("tokio send");
        }
    }
    async fn consume(mut rx: Self::Rx) -> u64 {
        let mut got = 0u64;
        while let Some(v) = rx.recv().await {
            black_box(v);
            got += 1;
        }
        got
    }
}

/// async-channel; capacity 1 stands in for a rendezvous.
struct AsyncChannel;

impl Chan for AsyncChannel {
    type Tx = async_channel::Sender<u64>;
    type Rx = async_channel::Receiver<u64>;
    fn label(buf: Buf) -> Option<String> {
        Some(match buf {
            Buf::Rendezvous => "async-channel bounded(1)".to_owned(),
            Buf::Bounded(n) => format!("async-channel bounded({n})"),
            Buf::Unbounded => "async-channel unbounded".to_owned(),
        })
    }
    fn make(buf: Buf, p: usize, c: usize) -> (Vec<Self::Tx>, Vec<Self::Rx>) {
        let (tx, rx) = match buf {
            Buf::Rendezvous => async_channel::bounded(1),
            Buf::Bounded(n) => async_channel::bounded(n),
            Buf::Unbounded => async_channel::unbounded(),
        };
        (handles(tx, p, Clone::clone), handles(rx, c, Clone::clone))
    }
    async fn produce(tx: Self::Tx, n: u64) {
        for i in 0..n {
            tx.send(i).await.expect("async-channel send");
        }
    }
    async fn consume(rx: Self::Rx) -> u64 {
        let mut got = 0u64;
        while let Ok(v) = rx.recv().await {
            black_box(v);
            got += 1;
        }
        got
    }
}

/// flume, with its true rendezvous `bounded(0)`.
struct Flume;

impl Chan for Flume {
    type Tx = flume::Sender<u64>;
    type Rx = flume::Receiver<u64>;
    fn label(buf: Buf) -> Option<String> {
        Some(match buf {
            Buf::Rendezvous => "flume bounded(0)".to_owned(),
            Buf::Bounded(n) => format!("flume bounded({n})"),
            Buf::Unbounded => "flume unbounded".to_owned(),
        })
    }
    fn make(buf: Buf, p: usize, c: usize) -> (Vec<Self::Tx>, Vec<Self::Rx>) {
        let (tx, rx) = match buf {
            Buf::Rendezvous => flume::bounded(0),
            Buf::Bounded(n) => flume::bounded(n),
            Buf::Unbounded => flume::unbounded(),
        };
        (handles(tx, p, Clone::clone), handles(rx, c, Clone::clone))
    }
    async fn produce(tx: Self::Tx, n: u64) {
        for i in 0..n {
            tx.send_async(i).await.expect("flume send");
        }
    }
    async fn consume(rx: Self::Rx) -> u64 {
        let mut got = 0u64;
        while let Ok(v) = rx.recv_async().await {
            black_box(v);
            got += 1;
        }
        got
    }
}

/// kanal, with its rendezvous `bounded_async(0)`: the fastest channel measured for issue 18.
struct Kanal;

impl Chan for Kanal {
    type Tx = kanal::AsyncSender<u64>;
    type Rx = kanal::AsyncReceiver<u64>;
    fn label(buf: Buf) -> Option<String> {
        Some(match buf {
            Buf::Rendezvous => "kanal bounded(0)".to_owned(),
            Buf::Bounded(n) => format!("kanal bounded({n})"),
            Buf::Unbounded => "kanal unbounded".to_owned(),
        })
    }
    fn make(buf: Buf, p: usize, c: usize) -> (Vec<Self::Tx>, Vec<Self::Rx>) {
        let (tx, rx) = match buf {
            Buf::Rendezvous => kanal::bounded_async(0),
            Buf::Bounded(n) => kanal::bounded_async(n),
            Buf::Unbounded => kanal::unbounded_async(),
        };
        (handles(tx, p, Clone::clone), handles(rx, c, Clone::clone))
    }
    async fn produce(tx: Self::Tx, n: u64) {
        for i in 0..n {
            tx.send(i).await.expect("kanal send");
        }
    }
    async fn consume(rx: Self::Rx) -> u64 {
        let mut got = 0u64;
        while let Ok(v) = rx.recv().await {
            black_box(v);
            got += 1;
        }
        got
    }
}

/// anyio's side: every participant a task of one task group (consumers spawned first).
fn ours(buf: Buf, p: usize, c: usize, per: u64) -> Workload {
    workload(move |_raw| {
        let (txs, rxs) = Ours::make(buf, p, c);
        async move {
            let got = TaskGroup::scope(|tg: TaskGroup<Cancelled>| async move {
                let consumers: Vec<_> =
                    rxs.into_iter().map(|rx| tg.spawn(async move { Ok(Ours::consume(rx).await) })).collect();
                for tx in txs {
                    tg.spawn(async move {
                        Ours::produce(tx, per).await;
                        Ok(())
                    });
                }
                let mut got = 0;
                for h in consumers {
                    got += h.await.expect("consumer");
                }
                Ok::<_, Cancelled>(got)
            })
            .await
            .expect("task group")
            .expect("not cancelled");
            assert_eq!(got, p as u64 * per);
        }
    })
}

/// A twin's side: every participant spawned straight onto the runtime (consumers first), then
/// all of them awaited.
fn twin<C: Chan>(buf: Buf, p: usize, c: usize, per: u64) -> Workload {
    workload(move |raw| {
        let (txs, rxs) = C::make(buf, p, c);
        async move {
            let consumers: Vec<_> = rxs.into_iter().map(|rx| raw.spawn(C::consume(rx))).collect();
            let producers: Vec<_> = txs.into_iter().map(|tx| raw.spawn(C::produce(tx, per))).collect();
            for h in producers {
                h.join().await;
            }
            let mut got = 0;
            for h in consumers {
                got += h.join().await;
            }
            assert_eq!(got, p as u64 * per);
        }
    })
}

fn add_twin<C: Chan>(twins: &mut Vec<(String, Workload)>, buf: Buf, p: usize, c: usize, per: u64) {
    if let Some(label) = C::label(buf) {
        twins.push((label, twin::<C>(buf, p, c, per)));
    }
}

fn main() {
    let args = Args::parse();
    let messages = 1_000_000 / args.scale();
    let shapes = [("SPSC 1p/1c", 1, 1), ("MPSC 4p/1c", 4, 1), ("MPMC 4p/4c", 4, 4)];
    let bufs = [Buf::Rendezvous, Buf::Bounded(1024), Buf::Unbounded];
    let mut cases = Vec::new();
    for (shape, p, c) in shapes {
        for buf in bufs {
            let per = messages / p as u64;
            let mut twins = Vec::new();
            if c == 1 {
                add_twin::<TokioBounded>(&mut twins, buf, p, c, per);
                add_twin::<TokioUnbounded>(&mut twins, buf, p, c, per);
            }
            add_twin::<AsyncChannel>(&mut twins, buf, p, c, per);
            add_twin::<Flume>(&mut twins, buf, p, c, per);
            add_twin::<Kanal>(&mut twins, buf, p, c, per);
            if args.diag {
                twins.push(("anyio in raw tasks (diag)".to_owned(), twin::<Ours>(buf, p, c, per)));
            }
            cases.push(TwinCase {
                name: format!("{shape}, {}", buf.label()),
                ops: per * p as u64,
                ours: ours(buf, p, c, per),
                twins,
            });
        }
    }
    run_twin_cases(&args, &cases, Unit::Messages);
}
