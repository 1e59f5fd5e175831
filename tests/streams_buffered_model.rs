//! Property test: `BufferedByteReceiveStream` against a model that sees the whole input at
//! once.
//!
//! Random input over a small alphabet (so delimiters are frequent), cut into random chunks,
//! and random sequences of `receive_until`, `receive_exactly` and `receive_into`; each
//! outcome must be what the model computes from the remaining input, whatever the chunking.
//! The wrapped stream holds every chunk and has ended, so no operation waits: each future is
//! polled once, outside any task.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use anyio::{
    streams::buffered::BufferedByteReceiveStream,
    streams::memory::create_memory_object_stream,
    streams::{ByteReceiveStream, ChunkReceiveStream, StreamError},
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Until(Vec<u8>, usize),
    Exactly(usize),
    Into(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::collection::vec(b'a'..=b'c', 1..=3), 0..40usize).prop_map(|(d, m)| Op::Until(d, m)),
        1 => (0..30usize).prop_map(Op::Exactly),
        1 => (1..30usize).prop_map(Op::Into),
    ]
}

/// Polls a future that must not wait.
fn now<T>(f: impl Future<Output = T>) -> T {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("an operation on an ended, fully sent stream waited"),
    }
}

/// What `receive_until` must do with `rest` as the whole remaining input.
fn model_until(rest: &mut Vec<u8>, delim: &[u8], max: usize) -> Result<Vec<u8>, StreamError> {
    match rest.windows(delim.len()).position(|w| w == delim) {
        Some(i) if i <= max => {
            let line = rest[..i].to_vec();
            rest.drain(..i + delim.len());
            Ok(line)
        }
        Some(_) => Err(StreamError::DelimiterNotFound { max_bytes: max }),
        None if rest.len() >= max + delim.len() => Err(StreamError::DelimiterNotFound { max_bytes: max }),
        None => Err(StreamError::IncompleteRead),
    }
}

fn same(a: &Result<Vec<u8>, StreamError>, b: &Result<Vec<u8>, StreamError>) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (
            Err(StreamError::DelimiterNotFound { max_bytes: x }),
            Err(StreamError::DelimiterNotFound { max_bytes: y }),
        ) => x == y,
        (Err(StreamError::IncompleteRead), Err(StreamError::IncompleteRead)) => true,
        _ => false,
    }
}

fn run(input: &[u8], cuts: &[usize], ops: &[Op]) -> Result<(), TestCaseError> {
    let (tx, rx) = create_memory_object_stream::<Vec<u8>>(cuts.len() + 2);
    let mut at = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        let c = c.clamp(at, input.len());
        if c > at {
            tx.try_send(input[at..c].to_vec()).unwrap();
        }
        at = c;
    }
    drop(tx);
    let s = BufferedByteReceiveStream::new(ChunkReceiveStream::new(rx));
    let mut rest = input.to_vec();
    for op in ops {
        match op {
            Op::Until(delim, max) => {
                let got = now(s.receive_until(delim, *max));
                let want = model_until(&mut rest, delim, *max);
                prop_assert!(
                    same(&got, &want),
                    "receive_until({delim:?}, {max}): got {got:?}, want {want:?}"
                );
            }
            Op::Exactly(n) => {
                let got = now(s.receive_exactly(*n));
                if rest.len() >= *n {
                    prop_assert_eq!(got.ok(), Some(rest.drain(..*n).collect::<Vec<u8>>()));
                } else {
                    prop_assert!(matches!(got, Err(StreamError::IncompleteRead)), "{got:?}");
                }
            }
            Op::Into(k) => {
                let mut buf = vec![0; *k];
                match now(s.receive_into(&mut buf)) {
                    Ok(n) => {
                        prop_assert!(n >= 1 && n <= *k && n <= rest.len());
                        prop_assert_eq!(&buf[..n], &rest[..n]);
                        rest.drain(..n);
                    }
                    Err(StreamError::EndOfStream) => prop_assert!(rest.is_empty()),
                    Err(e) => prop_assert!(false, "receive_into: {e}"),
                }
            }
        }
        // Whatever a failed operation left is still there, in order.
        let buffered = s.buffer();
        prop_assert!(rest.starts_with(&buffered), "buffer {buffered:?} is not a prefix of {rest:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_chunking_gives_the_models_records(
        input in prop::collection::vec(b'a'..=b'd', 0..300),
        cuts in prop::collection::vec(0..300usize, 0..20),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        run(&input, &cuts, &ops)?;
    }
}

/// Records far longer than one read (64 KiB), and many short ones after them: the buffer
/// grows for the long ones and keeps every byte in order across its moves to the front.
#[test]
fn records_longer_than_a_read_and_short_ones_after_them_come_out_whole() {
    let mut input = Vec::new();
    let mut records = Vec::new();
    for (i, len) in [200_000usize, 65_535, 65_536, 65_537, 1, 0, 131_072]
        .into_iter()
        .chain((0..3000).map(|i| i % 97))
        .enumerate()
    {
        let rec: Vec<u8> = (0..len).map(|j| b'a' + ((i + j) % 25) as u8).collect();
        input.extend_from_slice(&rec);
        input.push(b'\n');
        records.push(rec);
    }
    let cuts: Vec<usize> = (1..input.len() / 40_000).map(|k| k * 40_000 + k % 7).collect();
    let ops: Vec<Op> = records.iter().map(|_| Op::Until(b"\n".to_vec(), 300_000)).collect();
    run(&input, &cuts, &ops).unwrap();
}
