//! Text streams: AnyIO's tests/streams/test_text.py behaviours (UTF-8, strict errors).

use anyio::{
    streams::memory::create_memory_object_stream,
    streams::stapled::StapledByteStream,
    streams::text::{TextReceiveStream, TextSendStream, TextStream},
    streams::{
        ChunkReceiveStream, ChunkSendStream, ObjectReceiveStream, ObjectSendStream, ObjectStream, StreamError,
    },
};

type Text = TextReceiveStream<ChunkReceiveStream<anyio::streams::memory::MemoryObjectReceiveStream<Vec<u8>>>>;

/// A text stream fed `chunks`; the send half is returned (keeping the stream open) unless
/// `end` asks for the stream to end after them.
fn text_from(
    chunks: &[&[u8]],
    end: bool,
) -> (Option<anyio::streams::memory::MemoryObjectSendStream<Vec<u8>>>, Text) {
    let (tx, rx) = create_memory_object_stream::<Vec<u8>>(64);
    for c in chunks {
        tx.try_send(c.to_vec()).unwrap();
    }
    let tx = (!end).then_some(tx);
    (tx, TextReceiveStream::new(ChunkReceiveStream::new(rx)))
}

#[anyio::test]
async fn characters_split_across_chunks_are_decoded_whole() {
    let s = "añ€😀";
    let bytes = s.as_bytes();
    // One byte per chunk: every multi-byte character arrives in pieces.
    let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    let (_tx, text) = text_from(&chunks, true);
    let mut got = String::new();
    loop {
        match text.receive().await {
            Ok(part) => {
                assert!(!part.is_empty(), "every receive returns at least one character");
                got.push_str(&part);
            }
            Err(StreamError::EndOfStream) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, s);
}

#[anyio::test]
async fn invalid_utf8_is_an_invalid_data_error() {
    let (_tx, text) = text_from(&[b"ok\xff"], false);
    match text.receive().await {
        Err(StreamError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidData),
        other => panic!("expected InvalidData, got {other:?}"),
    }
}

#[anyio::test]
async fn a_stream_ending_inside_a_character_is_an_error_not_a_silent_truncation() {
    let euro = "€".as_bytes();
    let (_tx, text) = text_from(&[b"x", &euro[..2]], true);
    assert_eq!(text.receive().await.unwrap(), "x");
    match text.receive().await {
        Err(StreamError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidData),
        other => panic!("expected InvalidData, got {other:?}"),
    }
}

#[anyio::test]
async fn text_send_encodes_utf8_and_a_text_stream_round_trips() {
    let (tx, rx) = create_memory_object_stream::<Vec<u8>>(4);
    TextSendStream::new(ChunkSendStream::new(tx.clone())).send("héllo".to_owned()).await.unwrap();
    assert_eq!(rx.receive().await.unwrap(), "héllo".as_bytes());
    let text = TextStream::new(StapledByteStream::new(ChunkSendStream::new(tx), ChunkReceiveStream::new(rx)));
    text.send("round trip".to_owned()).await.unwrap();
    assert_eq!(text.receive().await.unwrap(), "round trip");
    text.send_eof().await.unwrap();
    assert!(matches!(text.receive().await, Err(StreamError::EndOfStream)));
}
