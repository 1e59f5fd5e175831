//! `ByteStreamIo`: futures-io and tokio `AsyncRead`/`AsyncWrite` over any anyio byte stream, on
//! every backend.

mod support;

use anyio::{
    net::UnixStream,
    streams::buffered::BufferedByteStream,
    streams::memory::create_memory_object_stream,
    streams::stapled::StapledByteStream,
    streams::{ByteStreamIo, ChunkReceiveStream, ChunkSendStream},
};
use futures::{AsyncReadExt, AsyncWriteExt};
use support::guarded_ok;

type MemoryByteStream = StapledByteStream<
    ChunkSendStream<anyio::streams::memory::MemoryObjectSendStream<Vec<u8>>>,
    ChunkReceiveStream<anyio::streams::memory::MemoryObjectReceiveStream<Vec<u8>>>,
>;

fn memory_pair() -> (MemoryByteStream, MemoryByteStream) {
    let (tx1, rx1) = create_memory_object_stream::<Vec<u8>>(4);
    let (tx2, rx2) = create_memory_object_stream::<Vec<u8>>(4);
    (
        StapledByteStream::new(ChunkSendStream::new(tx1), ChunkReceiveStream::new(rx2)),
        StapledByteStream::new(ChunkSendStream::new(tx2), ChunkReceiveStream::new(rx1)),
    )
}

#[anyio::test]
async fn futures_io_reads_and_writes_go_through_a_wrapped_memory_stream() {
    guarded_ok(async {
        let (a, b) = memory_pair();
        let mut a = ByteStreamIo::new(a);
        let mut b = ByteStreamIo::new(b);
        a.write_all(b"hello through futures-io").await?;
        a.flush().await?;
        let mut buf = [0u8; 24];
        b.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"hello through futures-io");
        a.close().await?; // half-closes: the reader sees end of file
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await?;
        assert!(rest.is_empty());
        Ok(())
    })
    .await;
}

#[anyio::test]
async fn a_short_read_keeps_the_rest_of_the_chunk_for_the_next_read() {
    guarded_ok(async {
        let (a, b) = UnixStream::pair()?;
        let mut b = ByteStreamIo::new(BufferedByteStream::new(b));
        a.send(b"0123456789").await?;
        let mut small = [0u8; 4];
        b.read_exact(&mut small).await?;
        assert_eq!(&small, b"0123");
        let mut rest = [0u8; 6];
        b.read_exact(&mut rest).await?;
        assert_eq!(&rest, b"456789");
        Ok(())
    })
    .await;
}

#[cfg(feature = "tokio")]
#[anyio::test]
async fn tokio_io_traits_work_on_wrapped_streams_and_on_sockets_directly() {
    guarded_ok(async {
        let (a, mut b) = UnixStream::pair()?;
        let mut a = ByteStreamIo::new(BufferedByteStream::new(a));
        tokio::io::AsyncWriteExt::write_all(&mut a, b"tokio side").await?;
        tokio::io::AsyncWriteExt::flush(&mut a).await?;
        let mut buf = [0u8; 10];
        tokio::io::AsyncReadExt::read_exact(&mut b, &mut buf).await?;
        assert_eq!(&buf, b"tokio side");
        tokio::io::AsyncWriteExt::write_all(&mut b, b"back").await?;
        let mut back = [0u8; 4];
        tokio::io::AsyncReadExt::read_exact(&mut a, &mut back).await?;
        assert_eq!(&back, b"back");
        Ok(())
    })
    .await;
}
