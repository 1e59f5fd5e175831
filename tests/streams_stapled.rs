//! Stapled streams and chunk byte streams: AnyIO's tests/streams/test_stapled.py behaviours
//! through the stream traits, on every backend.

use anyio::{
    streams::memory::create_memory_object_stream,
    streams::stapled::{StapledByteStream, StapledObjectStream},
    streams::{
        AsyncResource, ByteReceiveStream, ByteSendStream, ByteStream, ChunkReceiveStream, ChunkSendStream,
        ObjectReceiveStream, ObjectSendStream, ObjectStream, StreamError,
    },
};

#[anyio::test]
async fn a_stapled_object_stream_sends_through_one_half_and_receives_through_the_other() {
    let (tx, rx) = create_memory_object_stream::<&'static str>(4);
    let s = StapledObjectStream::new(tx, rx);
    ObjectSendStream::send(&s, "hello").await.unwrap();
    ObjectSendStream::send(&s, "world").await.unwrap();
    assert_eq!(ObjectReceiveStream::receive(&s).await.unwrap(), "hello");
    assert_eq!(ObjectReceiveStream::receive(&s).await.unwrap(), "world");
}

#[anyio::test]
async fn send_eof_closes_only_the_send_half() {
    let (tx, rx) = create_memory_object_stream::<u8>(4);
    let s = StapledObjectStream::new(tx, rx);
    ObjectSendStream::send(&s, 1).await.unwrap();
    s.send_eof().await.unwrap();
    s.send_eof().await.unwrap(); // idempotent
    assert!(matches!(ObjectSendStream::send(&s, 2).await, Err(StreamError::Closed)));
    assert_eq!(ObjectReceiveStream::receive(&s).await.unwrap(), 1, "the receive half still drains");
    assert!(matches!(ObjectReceiveStream::receive(&s).await, Err(StreamError::EndOfStream)));
}

#[anyio::test]
async fn aclose_closes_both_halves() {
    let (tx, rx) = create_memory_object_stream::<u8>(4);
    let s = StapledObjectStream::new(tx, rx);
    s.aclose().await.unwrap();
    assert!(matches!(ObjectSendStream::send(&s, 1).await, Err(StreamError::Closed)));
    assert!(matches!(ObjectReceiveStream::receive(&s).await, Err(StreamError::Closed)));
}

#[anyio::test]
async fn a_memory_stream_whose_receivers_are_gone_is_broken_through_the_trait() {
    let (tx, rx) = create_memory_object_stream::<u8>(1);
    drop(rx);
    assert!(matches!(ObjectSendStream::send(&tx, 1).await, Err(StreamError::Broken(None))));
}

#[anyio::test]
async fn a_stapled_byte_stream_round_trips_bytes_and_half_closes() {
    let (tx, rx) = create_memory_object_stream::<Vec<u8>>(8);
    let s = StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx));
    ByteSendStream::send(&s, b"abc").await.unwrap();
    ByteSendStream::send(&s, b"").await.unwrap(); // nothing to send: no empty chunk either
    ByteSendStream::send(&s, b"defg").await.unwrap();
    s.send_eof().await.unwrap();
    let mut got = Vec::new();
    loop {
        match s.receive(2).await {
            Ok(chunk) => {
                assert!(!chunk.is_empty() && chunk.len() <= 2, "1..=max_bytes bytes per receive");
                got.extend(chunk);
            }
            Err(StreamError::EndOfStream) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, b"abcdefg");
}

/// Generic code written against the traits works with trait objects too.
async fn echo_once(stream: &dyn ByteStream) -> Result<(), StreamError> {
    let data = stream.receive(1024).await?;
    stream.send(&data).await
}

#[anyio::test]
async fn the_byte_stream_traits_are_object_safe() {
    let (to_server, server_rx) = create_memory_object_stream::<Vec<u8>>(4);
    let (server_tx, from_server) = create_memory_object_stream::<Vec<u8>>(4);
    let server: Box<dyn ByteStream> =
        Box::new(StapledByteStream::new(ChunkSendStream::new(server_tx), ChunkReceiveStream::new(server_rx)));
    to_server.send(b"ping".to_vec()).await.unwrap();
    echo_once(server.as_ref()).await.unwrap();
    assert_eq!(from_server.receive().await.unwrap(), b"ping");
}
