//! The transport under the protocol: the listening socket, TLS, the socket counter, the
//! client's address, the write that joins the 101 response with the first frame, and the
//! outbound HTTP client (webhooks, the command-line client), where Redis is. Nothing here knows
//! Pusher.

pub(crate) mod client_ip;
pub(crate) mod coalesce_101;
pub mod http_client;
pub(crate) mod listener;
pub(crate) mod open_sockets;
pub mod redis_servers;
pub mod tls;
pub(crate) mod tls_stream;
