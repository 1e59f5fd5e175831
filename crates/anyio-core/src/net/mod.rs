//! Networking (AnyIO's sockets): TCP with Happy Eyeballs, Unix stream and datagram sockets,
//! UDP, name resolution, and waiting on raw descriptors.
//!
//! Every socket lives once here, as a non-blocking socket registered with the running
//! runtime's reactor through [`Runtime::register_io`](crate::rt::Runtime::register_io); the
//! backends only supply the readiness. See `IoCore` for the protocol every operation follows.

mod addr;
mod blocking;
mod dns;
mod error;
mod io;
mod listener;
mod stream;
mod tcp;
mod udp;
mod unix;
mod wait;

pub use addr::{
    AddressFamily, LocalAddress, LocalPort, RawSocket, RemoteAddress, RemotePort, SocketAddress,
    SocketFamily, UnixAddress,
};
pub use dns::{getaddrinfo, getnameinfo, AddrInfo, AddrInfoHints, SocketKind};
pub use error::{ConnectAttempt, SocketError};
pub use listener::{Listener, ListenerExt, MultiListener, ServeError, ServeOptions};
pub use tcp::{
    connect_tcp, connect_tcp_with, create_tcp_listener, TcpConnectOptions, TcpListener, TcpListenerOptions,
    TcpStream, DEFAULT_BACKLOG, HAPPY_EYEBALLS_DELAY,
};
pub use udp::{
    create_connected_udp_socket, create_connected_unix_datagram_socket, create_udp_socket,
    create_unix_datagram_socket, ConnectedUdpSocket, ConnectedUnixDatagramSocket, UdpSocket,
    UdpSocketOptions, UnixDatagramSocket,
};
pub use unix::{
    connect_unix, create_unix_listener, create_unix_listener_with, UnixListener, UnixListenerOptions,
    UnixStream,
};
pub use wait::{notify_closing, wait_readable, wait_writable};
