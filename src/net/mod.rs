//! The transport under the protocol: the listening socket, TLS, the socket counter, the
//! client's address, the write that joins the 101 response with the first frame, and the
//! outbound HTTP client (webhooks, the command-line client). Nothing here knows Pusher.

pub mod client_ip;
pub mod coalesce_101;
pub mod http_client;
pub mod listener;
pub mod open_sockets;
pub mod tls;
