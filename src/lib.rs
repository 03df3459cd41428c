//! Clarion: a self-hosted real-time broadcast server that speaks the Pusher Channels protocol.
//!
//! The crate is a library so that integration tests (and the `clarion` binary) can start a real
//! server in-process on a free port; `main.rs` only parses the command line.
//!
//! No input may make the server panic: outside tests, `unwrap`, `expect`, `panic!` and unchecked
//! indexing are compile errors under `cargo clippy` (SECURITY.md, promise 4).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod adapter;
pub mod app;
pub mod channels;
pub mod cli;
pub mod config;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod server;
pub mod state;
mod sync;
pub mod webhooks;
pub mod ws;

pub use server::Server;
