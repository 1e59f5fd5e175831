//! Typed attributes (AnyIO's `TypedAttributeProvider`): facts about a stream, such as a socket's
//! addresses, looked up by a type key and passed through every wrapper, so a handler holding a
//! `TextStream<BufferedByteStream<TcpStream>>` can still ask for the peer's address.

use std::any::{Any, TypeId};
use std::fmt;

/// A key for one typed attribute: a unit type whose `Value` is what the lookup returns.
///
/// # Examples
///
/// ```
/// use anyio::streams::{TypedAttribute, TypedAttributeExt, TypedAttributeProvider};
/// use std::any::{Any, TypeId};
///
/// struct Greeting;
/// impl TypedAttribute for Greeting {
///     type Value = String;
/// }
///
/// struct Host;
/// impl TypedAttributeProvider for Host {
///     fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
///         anyio::streams::provide_attribute::<Greeting>(key, || Some("hello".to_string()))
///     }
/// }
///
/// assert_eq!(Host.extra::<Greeting>().unwrap(), "hello");
/// ```
pub trait TypedAttribute: 'static {
    /// The attribute's value type.
    type Value: Clone + Send + 'static;
}

/// Something that can answer typed-attribute lookups. Wrappers forward lookups they cannot
/// answer to the stream they wrap; the default answers nothing.
///
/// # Examples
///
/// ```
/// use anyio::{
///     net::LocalAddress, streams::TypedAttributeExt, streams::memory::create_memory_object_stream,
/// };
/// let (tx, _rx) = create_memory_object_stream::<u8>(0);
/// assert!(tx.extra::<LocalAddress>().is_err()); // a memory stream has no address
/// ```
pub trait TypedAttributeProvider {
    /// The value of the attribute whose key type has id `key`, boxed, or `None`.
    /// Implementations build answers with [`provide_attribute`].
    fn extra_attribute(&self, key: TypeId) -> Option<Box<dyn Any + Send>> {
        let _ = key;
        None
    }
}

/// Typed lookups on every [`TypedAttributeProvider`].
///
/// # Examples
///
/// ```
/// use anyio::{
///     net::RemotePort, streams::TypedAttributeExt, streams::memory::create_memory_object_stream,
/// };
/// let (_tx, rx) = create_memory_object_stream::<u8>(0);
/// assert_eq!(rx.try_extra::<RemotePort>(), None);
/// ```
pub trait TypedAttributeExt: TypedAttributeProvider {
    /// The attribute `A`, or an error naming it when this stream (and everything it wraps)
    /// does not have it.
    fn extra<A: TypedAttribute>(&self) -> Result<A::Value, TypedAttributeLookupError> {
        self.try_extra::<A>().ok_or(TypedAttributeLookupError { attribute: std::any::type_name::<A>() })
    }

    /// The attribute `A`, or `None`.
    fn try_extra<A: TypedAttribute>(&self) -> Option<A::Value> {
        self.extra_attribute(TypeId::of::<A>()).and_then(|b| b.downcast::<A::Value>().ok()).map(|b| *b)
    }
}

impl<T: TypedAttributeProvider + ?Sized> TypedAttributeExt for T {}

/// Answers a lookup for `A` with `value()` when `key` is `A`'s key (for implementing
/// [`TypedAttributeProvider::extra_attribute`]; chain several with `.or_else`).
///
/// # Examples
///
/// ```
/// use anyio::{net::LocalPort, streams::provide_attribute};
/// use std::any::TypeId;
/// let found = provide_attribute::<LocalPort>(TypeId::of::<LocalPort>(), || Some(8080));
/// assert_eq!(*found.unwrap().downcast::<u16>().unwrap(), 8080);
/// ```
pub fn provide_attribute<A: TypedAttribute>(
    key: TypeId,
    value: impl FnOnce() -> Option<A::Value>,
) -> Option<Box<dyn Any + Send>> {
    if key == TypeId::of::<A>() {
        value().map(|v| Box::new(v) as Box<dyn Any + Send>)
    } else {
        None
    }
}

/// The error of [`TypedAttributeExt::extra`]: the stream does not have the attribute.
///
/// # Examples
///
/// ```
/// use anyio::{
///     net::RawSocket, streams::TypedAttributeExt, streams::memory::create_memory_object_stream,
/// };
/// let (tx, _rx) = create_memory_object_stream::<u8>(0);
/// let err = tx.extra::<RawSocket>().unwrap_err();
/// assert!(err.to_string().contains("RawSocket"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedAttributeLookupError {
    /// The attribute's type name.
    pub attribute: &'static str,
}

impl fmt::Display for TypedAttributeLookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the stream does not provide the typed attribute {}", self.attribute)
    }
}

impl std::error::Error for TypedAttributeLookupError {}

impl From<TypedAttributeLookupError> for crate::error::AnyError {
    fn from(e: TypedAttributeLookupError) -> Self {
        crate::error::AnyError::other(e)
    }
}
