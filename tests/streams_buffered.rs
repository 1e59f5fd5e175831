//! `BufferedByteReceiveStream`: AnyIO's tests/streams/test_buffered.py behaviours, plus
//! cancellation that loses no byte and the limits of `receive_until`.

use std::time::Duration;

use anyio::{
    move_on_after,
    streams::buffered::BufferedByteReceiveStream,
    streams::memory::{create_memory_object_stream, MemoryObjectReceiveStream, MemoryObjectSendStream},
    streams::{AsyncResource, ByteReceiveStream, ChunkReceiveStream, StreamError},
    task_group, AnyError, TaskGroup,
};

mod support;
use support::guarded_ok;

type Buffered = BufferedByteReceiveStream<ChunkReceiveStream<MemoryObjectReceiveStream<Vec<u8>>>>;

fn pipe(chunks: &[&[u8]]) -> (MemoryObjectSendStream<Vec<u8>>, Buffered) {
    let (tx, rx) = create_memory_object_stream::<Vec<u8>>(64);
    for c in chunks {
        tx.try_send(c.to_vec()).unwrap();
    }
    (tx, BufferedByteReceiveStream::new(ChunkReceiveStream::new(rx)))
}

#[anyio::test]
async fn receive_exactly_joins_chunks_and_keeps_the_surplus() {
    let (_tx, s) = pipe(&[b"abcd", b"efgh"]);
    assert_eq!(s.receive_exactly(2).await.unwrap(), b"ab");
    assert_eq!(s.receive_exactly(4).await.unwrap(), b"cdef");
    assert_eq!(s.buffer(), b"gh");
    assert_eq!(s.receive(100).await.unwrap(), b"gh", "buffered bytes are served first");
}

#[anyio::test]
async fn receive_exactly_at_end_of_stream_is_an_incomplete_read_and_keeps_what_arrived() {
    let (tx, s) = pipe(&[b"abc"]);
    drop(tx);
    assert!(matches!(s.receive_exactly(5).await, Err(StreamError::IncompleteRead)));
    assert_eq!(s.buffer(), b"abc");
}

#[anyio::test]
async fn receive_until_strips_the_delimiter_and_keeps_what_follows() {
    let (_tx, s) = pipe(&[b"first\r", b"\nsecond\r\nthi", b"rd\r\n"]);
    assert_eq!(s.receive_until(b"\r\n", 100).await.unwrap(), b"first", "delimiter split across chunks");
    assert_eq!(s.receive_until(b"\r\n", 100).await.unwrap(), b"second");
    assert_eq!(s.receive_until(b"\r\n", 100).await.unwrap(), b"third");
    assert!(s.buffer().is_empty());
}

#[anyio::test]
async fn receive_until_at_end_of_stream_is_an_incomplete_read() {
    let (tx, s) = pipe(&[b"no delimiter here"]);
    drop(tx);
    assert!(matches!(s.receive_until(b"\n", 100).await, Err(StreamError::IncompleteRead)));
}

#[anyio::test]
async fn receive_until_fails_as_soon_as_max_bytes_pass_without_the_delimiter() {
    // The sender never ends the stream: the error must come from the limit, not a hang.
    let (_tx, s) = pipe(&[b"0123", b"4567", b"89"]);
    let err = guarded_ok(async { Ok(s.receive_until(b"\n", 6).await) }).await;
    assert!(matches!(err, Err(StreamError::DelimiterNotFound { max_bytes: 6 })), "{err:?}");
    assert_eq!(s.buffer(), b"01234567", "the bytes stay buffered");
}

#[anyio::test]
async fn receive_until_accepts_a_record_of_exactly_max_bytes_and_rejects_a_longer_one() {
    let (_tx, s) = pipe(&[b"abc\nabcd\n"]);
    assert_eq!(s.receive_until(b"\n", 3).await.unwrap(), b"abc");
    assert!(matches!(s.receive_until(b"\n", 3).await, Err(StreamError::DelimiterNotFound { max_bytes: 3 })));
}

#[anyio::test]
async fn an_empty_delimiter_or_receive_buffer_is_rejected() {
    let (_tx, s) = pipe(&[b"x"]);
    assert!(matches!(s.receive_until(b"", 10).await, Err(StreamError::InvalidArgument(_))));
    assert!(matches!(s.receive(0).await, Err(StreamError::InvalidArgument(_))));
}

#[anyio::test]
async fn feed_data_is_received_before_the_wrapped_stream() {
    let (_tx, s) = pipe(&[b"world"]);
    s.feed_data(b"hello ").unwrap();
    assert_eq!(s.receive_exactly(11).await.unwrap(), b"hello world");
}

#[anyio::test]
async fn receives_after_aclose_fail_with_closed() {
    let (_tx, s) = pipe(&[b"abc"]);
    s.aclose().await.unwrap();
    assert!(matches!(s.receive_exactly(1).await, Err(StreamError::Closed)));
    assert!(matches!(s.receive_until(b"b", 10).await, Err(StreamError::Closed)));
}

#[anyio::test]
async fn a_cancelled_receive_exactly_loses_no_byte() {
    let (tx, s) = pipe(&[b"abc"]);
    // Three bytes arrive, the fourth never does: the wait is cancelled.
    let out = move_on_after(Duration::from_millis(20), s.receive_exactly(4)).await.unwrap();
    assert_eq!(out, None, "cancelled by the deadline");
    assert_eq!(s.buffer(), b"abc", "what arrived before the cancellation stayed buffered");
    tx.try_send(b"d".to_vec()).unwrap();
    assert_eq!(s.receive_exactly(4).await.unwrap(), b"abcd");
}

#[anyio::test]
async fn two_tasks_receiving_at_once_get_busy_resource() {
    let (tx, s) = pipe(&[]);
    let s = std::sync::Arc::new(s);
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            let first = s.clone();
            let waiter = tg.spawn(async move { Ok(first.receive_exactly(1).await?) });
            // Wait until the first receive is waiting for data.
            while s.get_ref().get_ref().statistics().tasks_waiting_receive == 0 {
                anyio::sleep(Duration::from_millis(1)).await?;
            }
            assert!(matches!(s.receive_exactly(1).await, Err(StreamError::Busy(_))));
            tx.try_send(b"z".to_vec()).unwrap();
            assert_eq!(waiter.await?, b"z");
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn receive_until_over_many_small_chunks_finds_a_late_delimiter() {
    let (tx, s) = pipe(&[]);
    for _ in 0..1000 {
        tx.try_send(b"x".to_vec()).ok();
    }
    let s = std::sync::Arc::new(s);
    let r = s.clone();
    guarded_ok(async move {
        task_group(|tg: TaskGroup<AnyError>| async move {
            tg.spawn(async move {
                for _ in 0..2000 {
                    tx.send(b"y".to_vec()).await?;
                }
                tx.send(b"\n".to_vec()).await?;
                Ok(())
            });
            let line = r.receive_until(b"\n", 10_000).await?;
            assert_eq!(line.len(), 64 + 2000, "every byte before the delimiter, in order");
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_buffered_byte_stream_buffers_receives_and_passes_sends_and_eof_through() {
    use anyio::{
        streams::buffered::BufferedByteStream,
        streams::stapled::StapledByteStream,
        streams::{ByteSendStream, ByteStream, ChunkSendStream},
    };
    let (tx, rx) = create_memory_object_stream::<Vec<u8>>(8);
    let s = BufferedByteStream::new(StapledByteStream::new(
        ChunkSendStream::new(tx),
        ChunkReceiveStream::new(rx),
    ));
    s.send(b"HELLO 5\r\nworld").await.unwrap();
    s.send_eof().await.unwrap();
    assert_eq!(s.receive_until(b"\r\n", 64).await.unwrap(), b"HELLO 5");
    assert_eq!(s.receive_exactly(5).await.unwrap(), b"world");
    assert!(matches!(s.receive(1).await, Err(StreamError::EndOfStream)));
    assert!(matches!(s.send(b"late").await, Err(StreamError::Closed)), "send_eof closed the send side");
}
