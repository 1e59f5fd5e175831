//! Streams: the stream traits (`abc`), their error, memory object streams (AnyIO's in-process
//! channels) and wrappers (stapled streams, byte streams over chunk streams).

pub(crate) mod abc;
mod attrs;
mod buffered;
mod chunks;
mod compat;
mod error;
pub(crate) mod memory;
mod stapled;
mod text;

pub use abc::{
    AsyncResource, ByteReceiveStream, ByteSendStream, ByteStream, ObjectReceiveStream, ObjectSendStream,
    ObjectStream,
};
pub use attrs::{
    provide_attribute, TypedAttribute, TypedAttributeExt, TypedAttributeLookupError, TypedAttributeProvider,
};
pub use buffered::{BufferedByteReceiveStream, BufferedByteStream};
pub use chunks::{ChunkReceiveStream, ChunkSendStream};
pub use compat::ByteStreamIo;
pub use error::StreamError;
pub use memory::{
    create_memory_object_stream, BufferSize, MemoryObjectReceiveStream, MemoryObjectSendStream,
    MemoryObjectStreamStatistics, ReceiveError, ReceiveItem, SendError, SendItem, TryReceiveError,
    TrySendError,
};
pub use stapled::{StapledByteStream, StapledObjectStream};
pub use text::{TextReceiveStream, TextSendStream, TextStream};
