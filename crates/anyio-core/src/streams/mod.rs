//! Streams of objects between tasks. For now: memory object streams, AnyIO's in-process
//! channels.

mod memory;

pub use memory::{
    create_memory_object_stream, BufferSize, MemoryObjectReceiveStream, MemoryObjectSendStream,
    MemoryObjectStreamStatistics, ReceiveError, ReceiveItem, SendError, SendItem, TryReceiveError,
    TrySendError,
};
