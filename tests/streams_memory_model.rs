//! Property test: the memory object stream against a `VecDeque` model.
//!
//! Random sequences of operations — non-waiting sends and receives, waiting ones polled by
//! hand, dropped before they finish, handles closed — run on a real stream and on a small
//! model written from AnyIO's semantics; every outcome and every statistics snapshot must
//! agree. Futures are polled outside any task, so no coop yield or cancel scope interferes.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use anyio::streams::memory::{
    create_memory_object_stream, BufferSize, MemoryObjectReceiveStream, MemoryObjectSendStream, ReceiveError,
    ReceiveItem, SendError, SendItem, TryReceiveError, TrySendError,
};
use proptest::prelude::*;

const HANDLES: usize = 2;

#[derive(Clone, Debug)]
enum Op {
    TrySend(usize, u32),
    TryRecv(usize),
    StartSend(usize, u32),
    StartRecv(usize),
    PollSend(usize),
    PollRecv(usize),
    DropSend(usize),
    DropRecv(usize),
    CloseTx(usize),
    CloseRx(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let h = 0..HANDLES;
    prop_oneof![
        4 => (h.clone(), any::<u32>()).prop_map(|(h, v)| Op::TrySend(h, v)),
        4 => h.clone().prop_map(Op::TryRecv),
        4 => (h.clone(), any::<u32>()).prop_map(|(h, v)| Op::StartSend(h, v)),
        4 => h.clone().prop_map(Op::StartRecv),
        3 => (0..8usize).prop_map(Op::PollSend),
        3 => (0..8usize).prop_map(Op::PollRecv),
        2 => (0..8usize).prop_map(Op::DropSend),
        2 => (0..8usize).prop_map(Op::DropRecv),
        1 => h.clone().prop_map(Op::CloseTx),
        1 => h.prop_map(Op::CloseRx),
    ]
}

/// A waiting send as the model sees it.
#[derive(Clone, Debug, PartialEq)]
enum SendSt {
    Queued(u32),
    Delivered,
    Broken(u32),
    Done,
}

/// A waiting receive as the model sees it.
#[derive(Clone, Debug, PartialEq)]
enum RecvSt {
    Queued,
    Delivered(u32),
    /// Dequeued because the senders closed: it looks again when polled.
    Released,
    Done,
}

struct Model {
    buf: VecDeque<u32>,
    cap: usize,
    tx_open: [bool; HANDLES],
    rx_open: [bool; HANDLES],
    sends: Vec<SendSt>,
    recvs: Vec<RecvSt>,
    send_q: VecDeque<usize>,
    recv_q: VecDeque<usize>,
    /// The handle each send (receive) was started on: closing a handle ends its waiting ops
    /// with `Closed` when they are next polled.
    send_h: Vec<usize>,
    recv_h: Vec<usize>,
}

impl Model {
    fn senders(&self) -> usize {
        self.tx_open.iter().filter(|o| **o).count()
    }
    fn receivers(&self) -> usize {
        self.rx_open.iter().filter(|o| **o).count()
    }

    /// Delivers to a waiting receiver or the buffer; `Err` if neither is possible.
    fn offer(&mut self, v: u32) -> Result<(), u32> {
        if let Some(r) = self.recv_q.pop_front() {
            self.recvs[r] = RecvSt::Delivered(v);
            Ok(())
        } else if self.buf.len() < self.cap {
            self.buf.push_back(v);
            Ok(())
        } else {
            Err(v)
        }
    }

    fn take(&mut self) -> Option<u32> {
        if let Some(v) = self.buf.pop_front() {
            if self.buf.len() < self.cap {
                if let Some(s) = self.send_q.pop_front() {
                    let SendSt::Queued(w) = self.sends[s] else { unreachable!() };
                    self.buf.push_back(w);
                    self.sends[s] = SendSt::Delivered;
                }
            }
            return Some(v);
        }
        let s = self.send_q.pop_front()?;
        let SendSt::Queued(w) = self.sends[s] else { unreachable!() };
        self.sends[s] = SendSt::Delivered;
        Some(w)
    }

    fn close_tx(&mut self, h: usize) {
        if std::mem::replace(&mut self.tx_open[h], false) && self.senders() == 0 {
            for r in self.recv_q.drain(..) {
                self.recvs[r] = RecvSt::Released;
            }
        }
    }

    fn close_rx(&mut self, h: usize) {
        if std::mem::replace(&mut self.rx_open[h], false) && self.receivers() == 0 {
            for s in self.send_q.drain(..) {
                let SendSt::Queued(v) = self.sends[s] else { unreachable!() };
                self.sends[s] = SendSt::Broken(v);
            }
            self.buf.clear();
        }
    }

    /// A send's first poll. `None` = pending.
    fn start_send(&mut self, idx: usize, h: usize, v: u32) -> Option<Result<(), SendOutcome>> {
        if !self.tx_open[h] {
            return Some(Err(SendOutcome::Closed(v)));
        }
        if self.receivers() == 0 {
            return Some(Err(SendOutcome::Broken(v)));
        }
        match self.offer(v) {
            Ok(()) => Some(Ok(())),
            Err(v) => {
                self.sends[idx] = SendSt::Queued(v);
                self.send_q.push_back(idx);
                None
            }
        }
    }

    fn poll_send(&mut self, idx: usize) -> Option<Result<(), SendOutcome>> {
        match self.sends[idx].clone() {
            SendSt::Queued(v) if !self.tx_open[self.send_h[idx]] => {
                self.send_q.retain(|&s| s != idx);
                self.sends[idx] = SendSt::Done;
                Some(Err(SendOutcome::Closed(v)))
            }
            SendSt::Queued(_) => None,
            SendSt::Delivered => {
                self.sends[idx] = SendSt::Done;
                Some(Ok(()))
            }
            SendSt::Broken(v) => {
                self.sends[idx] = SendSt::Done;
                Some(Err(SendOutcome::Broken(v)))
            }
            SendSt::Done => unreachable!("finished futures are removed"),
        }
    }

    /// A receive's first poll, or a released receive looking again.
    fn look(&mut self, idx: usize, h: Option<usize>) -> Option<Result<u32, RecvOutcome>> {
        if let Some(h) = h {
            if !self.rx_open[h] {
                return Some(Err(RecvOutcome::Closed));
            }
        }
        if let Some(v) = self.take() {
            self.recvs[idx] = RecvSt::Done;
            return Some(Ok(v));
        }
        if self.senders() == 0 {
            self.recvs[idx] = RecvSt::Done;
            return Some(Err(RecvOutcome::EndOfStream));
        }
        self.recvs[idx] = RecvSt::Queued;
        self.recv_q.push_back(idx);
        None
    }

    fn poll_recv(&mut self, idx: usize) -> Option<Result<u32, RecvOutcome>> {
        let got = match self.recvs[idx].clone() {
            RecvSt::Queued => None,
            RecvSt::Delivered(v) => {
                self.recvs[idx] = RecvSt::Done;
                Some(Ok(v))
            }
            RecvSt::Released => self.look(idx, None),
            RecvSt::Done => unreachable!("finished futures are removed"),
        };
        if got.is_none() && !self.rx_open[self.recv_h[idx]] {
            self.recv_q.retain(|&r| r != idx);
            self.recvs[idx] = RecvSt::Done;
            return Some(Err(RecvOutcome::Closed));
        }
        got
    }

    fn drop_send(&mut self, idx: usize) {
        if let SendSt::Queued(_) = self.sends[idx] {
            self.send_q.retain(|&s| s != idx);
        }
        self.sends[idx] = SendSt::Done;
    }

    fn drop_recv(&mut self, idx: usize) {
        match self.recvs[idx].clone() {
            RecvSt::Queued => self.recv_q.retain(|&r| r != idx),
            RecvSt::Delivered(v) if self.receivers() > 0 => {
                // Re-homed: to the next waiting receive, else the front of the buffer.
                if let Some(r) = self.recv_q.pop_front() {
                    self.recvs[r] = RecvSt::Delivered(v);
                } else {
                    self.buf.push_front(v);
                }
            }
            _ => {}
        }
        self.recvs[idx] = RecvSt::Done;
    }
}

#[derive(Debug, PartialEq)]
enum SendOutcome {
    Closed(u32),
    Broken(u32),
    WouldBlock(u32),
}

#[derive(Debug, PartialEq)]
enum RecvOutcome {
    Closed,
    EndOfStream,
    WouldBlock,
}

fn send_outcome(r: Result<(), SendError<u32>>) -> Result<(), SendOutcome> {
    r.map_err(|e| match e {
        SendError::Closed(v) => SendOutcome::Closed(v),
        SendError::Broken(v) => SendOutcome::Broken(v),
        other => panic!("unexpected {other:?}"),
    })
}

fn try_send_outcome(r: Result<(), TrySendError<u32>>) -> Result<(), SendOutcome> {
    r.map_err(|e| match e {
        TrySendError::Closed(v) => SendOutcome::Closed(v),
        TrySendError::Broken(v) => SendOutcome::Broken(v),
        TrySendError::WouldBlock(v) => SendOutcome::WouldBlock(v),
        other => panic!("unexpected {other:?}"),
    })
}

fn recv_outcome(r: Result<u32, ReceiveError>) -> Result<u32, RecvOutcome> {
    r.map_err(|e| match e {
        ReceiveError::Closed => RecvOutcome::Closed,
        ReceiveError::EndOfStream => RecvOutcome::EndOfStream,
        other => panic!("unexpected {other:?}"),
    })
}

fn try_recv_outcome(r: Result<u32, TryReceiveError>) -> Result<u32, RecvOutcome> {
    r.map_err(|e| match e {
        TryReceiveError::Closed => RecvOutcome::Closed,
        TryReceiveError::EndOfStream => RecvOutcome::EndOfStream,
        TryReceiveError::WouldBlock => RecvOutcome::WouldBlock,
        other => panic!("unexpected {other:?}"),
    })
}

fn poll<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
    match Pin::new(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

fn run(cap: BufferSize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (tx0, rx0) = create_memory_object_stream::<u32>(cap);
    let txs: [MemoryObjectSendStream<u32>; HANDLES] = [tx0.clone(), tx0];
    let rxs: [MemoryObjectReceiveStream<u32>; HANDLES] = [rx0.clone(), rx0];
    let mut model = Model {
        buf: VecDeque::new(),
        cap: match cap {
            BufferSize::Bounded(n) => n,
            _ => usize::MAX,
        },
        tx_open: [true; HANDLES],
        rx_open: [true; HANDLES],
        sends: Vec::new(),
        recvs: Vec::new(),
        send_q: VecDeque::new(),
        recv_q: VecDeque::new(),
        send_h: Vec::new(),
        recv_h: Vec::new(),
    };
    // Pending futures: (model index, future).
    let mut sends: Vec<(usize, SendItem<'_, u32>)> = Vec::new();
    let mut recvs: Vec<(usize, ReceiveItem<'_, u32>)> = Vec::new();

    for op in ops {
        match op {
            Op::TrySend(h, v) => {
                let expect = if !model.tx_open[h] {
                    Err(SendOutcome::Closed(v))
                } else if model.receivers() == 0 {
                    Err(SendOutcome::Broken(v))
                } else {
                    model.offer(v).map_err(SendOutcome::WouldBlock)
                };
                prop_assert_eq!(try_send_outcome(txs[h].try_send(v)), expect, "{:?}", op);
            }
            Op::TryRecv(h) => {
                let expect = if !model.rx_open[h] {
                    Err(RecvOutcome::Closed)
                } else if let Some(v) = model.take() {
                    Ok(v)
                } else if model.senders() == 0 {
                    Err(RecvOutcome::EndOfStream)
                } else {
                    Err(RecvOutcome::WouldBlock)
                };
                prop_assert_eq!(try_recv_outcome(rxs[h].try_receive()), expect, "{:?}", op);
            }
            Op::StartSend(h, v) => {
                let idx = model.sends.len();
                model.sends.push(SendSt::Done);
                model.send_h.push(h);
                let expect = model.start_send(idx, h, v);
                let mut fut = txs[h].send(v);
                let got = poll(&mut fut).map(send_outcome);
                prop_assert_eq!(&got, &expect, "{:?}", op);
                if got.is_none() {
                    sends.push((idx, fut));
                }
            }
            Op::StartRecv(h) => {
                let idx = model.recvs.len();
                model.recvs.push(RecvSt::Done);
                model.recv_h.push(h);
                let expect = model.look(idx, Some(h));
                let mut fut = rxs[h].receive();
                let got = poll(&mut fut).map(recv_outcome);
                prop_assert_eq!(&got, &expect, "{:?}", op);
                if got.is_none() {
                    recvs.push((idx, fut));
                }
            }
            Op::PollSend(i) if i < sends.len() => {
                let expect = model.poll_send(sends[i].0);
                let got = poll(&mut sends[i].1).map(send_outcome);
                prop_assert_eq!(&got, &expect, "{:?}", op);
                if got.is_some() {
                    drop(sends.remove(i));
                }
            }
            Op::PollRecv(i) if i < recvs.len() => {
                let expect = model.poll_recv(recvs[i].0);
                let got = poll(&mut recvs[i].1).map(recv_outcome);
                prop_assert_eq!(&got, &expect, "{:?}", op);
                if got.is_some() {
                    drop(recvs.remove(i));
                }
            }
            Op::DropSend(i) if i < sends.len() => {
                model.drop_send(sends.remove(i).0);
            }
            Op::DropRecv(i) if i < recvs.len() => {
                model.drop_recv(recvs.remove(i).0);
            }
            Op::CloseTx(h) => {
                model.close_tx(h);
                txs[h].close();
            }
            Op::CloseRx(h) => {
                model.close_rx(h);
                rxs[h].close();
            }
            _ => continue, // an index past the pending futures: nothing to do
        }
        let stats = txs[0].statistics();
        prop_assert_eq!(stats.current_buffer_used, model.buf.len(), "buffer after {:?}", op);
        prop_assert_eq!(stats.tasks_waiting_send, model.send_q.len(), "waiting senders after {:?}", op);
        prop_assert_eq!(stats.tasks_waiting_receive, model.recv_q.len(), "waiting receivers after {:?}", op);
        prop_assert_eq!(stats.open_send_streams, model.senders());
        prop_assert_eq!(stats.open_receive_streams, model.receivers());
    }
    // Drain: whatever the model still buffers, the stream hands out in the same order.
    for (idx, fut) in sends.drain(..) {
        model.drop_send(idx);
        drop(fut);
    }
    for (idx, fut) in recvs.drain(..) {
        model.drop_recv(idx);
        drop(fut);
    }
    if let Some(h) = (0..HANDLES).find(|&h| model.rx_open[h]) {
        while let Some(v) = model.take() {
            prop_assert_eq!(rxs[h].try_receive(), Ok(v));
        }
    }
    Ok(())
}

fn buffer_size() -> impl Strategy<Value = BufferSize> {
    prop_oneof![
        Just(BufferSize::Bounded(0)),
        (1..4usize).prop_map(BufferSize::Bounded),
        Just(BufferSize::Unbounded),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn memory_stream_agrees_with_a_vecdeque_model(cap in buffer_size(), ops in prop::collection::vec(op(), 1..80)) {
        run(cap, ops)?;
    }
}
