//! Streams (AnyIO's `anyio.abc` streams and `anyio.streams`): the stream traits every socket,
//! channel and wrapper implements, their error type [`StreamError`], typed attributes, and
//! adapters to `futures-io` and tokio's I/O traits. The submodules hold the implementations:
//! [`memory`] (in-process channels), [`stapled`], [`buffered`] and [`text`].

pub(crate) mod abc;
mod attrs;
pub mod buffered;
mod chunks;
mod compat;
mod connectable;
mod error;
pub mod memory;
pub mod stapled;
pub mod text;

pub use abc::{
    aclose_forcefully, AsyncResource, ByteReceiveStream, ByteSendStream, ByteStream, ObjectReceiveStream,
    ObjectSendStream, ObjectStream,
};
pub use attrs::{
    provide_attribute, TypedAttribute, TypedAttributeExt, TypedAttributeLookupError, TypedAttributeProvider,
};
pub use chunks::{ChunkReceiveStream, ChunkSendStream};
pub use compat::ByteStreamIo;
pub use connectable::{ByteStreamConnectable, ObjectStreamConnectable};
pub use error::StreamError;
