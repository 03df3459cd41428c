//! One WebSocket connection once upgraded: the event loop, and the handlers for each message.

mod client_event;
pub(crate) mod connection;
pub mod fault;
pub(crate) mod session;
mod signin;
mod subscribe;
