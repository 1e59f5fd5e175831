//! Networking (AnyIO's sockets): TCP with Happy Eyeballs, Unix stream and datagram sockets,
//! UDP, name resolution, and waiting on raw descriptors.
//!
//! Every socket lives once here, as a non-blocking socket registered with the running
//! runtime's reactor through [`Runtime::register_io`](crate::rt::Runtime::register_io); the
//! backends only supply the readiness. See `IoCore` for the protocol every operation follows.

mod addr;
mod connectable;
pub mod dns;
pub(crate) mod error;
pub(crate) mod io;
mod listener;
mod stream;
pub mod tcp;
pub mod udp;
pub mod unix;
mod unix_datagram;
mod wait;

pub use addr::{
    AddressFamily, LocalAddress, LocalPort, RawSocket, RemoteAddress, RemotePort, SocketAddress, SocketFamily,
};
pub use connectable::{TcpConnectable, UnixConnectable};
pub use dns::{getaddrinfo, getnameinfo};
pub use error::{ConnectAttempt, SocketError};
pub use listener::{Listener, ListenerExt, MultiListener, ServeError, ServeOptions};
pub use stream::{ReceiveInto, SocketReceiver};
pub use tcp::{connect_tcp, create_tcp_listener, TcpListener, TcpStream};
pub use udp::{create_connected_udp_socket, create_udp_socket, ConnectedUdpSocket, UdpSocket};
pub use unix::{
    connect_unix, create_connected_unix_datagram_socket, create_unix_datagram_socket, create_unix_listener,
    ConnectedUnixDatagramSocket, UnixDatagramSocket, UnixListener, UnixStream,
};
pub use wait::{notify_closing, wait_readable, wait_writable};
