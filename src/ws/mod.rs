//! One WebSocket connection: the upgrade, the event loop, and the handlers for each message.

mod client_event;
pub mod connection;
pub mod fault;
pub mod handle;
pub mod session;
mod signin;
mod subscribe;
pub mod upgrade;
