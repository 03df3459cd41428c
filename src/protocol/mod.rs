//! The wire contract: message shapes, channel names, close codes and signatures.
//!
//! Nothing in here does I/O; every function is pure so it can be unit-tested and fuzzed.

pub mod channel_name;
pub mod client_event;
pub mod codes;
pub mod event;
pub mod frames;
pub mod inbound;
pub mod origin;
pub mod presence;
pub mod query;
pub mod recovery;
pub mod signature;
pub mod socket_id;
pub mod watchlist;
pub mod webhook;
