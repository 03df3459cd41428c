//! Clarion: a self-hosted real-time broadcast server that speaks the Pusher Channels protocol.
//!
//! The crate is a library so that integration tests (and the `clarion` binary) can start a real
//! server in-process on a free port; `main.rs` only parses the command line.
//!
//! # Layout
//!
//! Dependencies point one way, down this list; no module imports one above it (ARCHITECTURE.md
//! has the graph and the test that keeps it so).
//!
//! | module | what it is | depends on |
//! |---|---|---|
//! | [`protocol`] | the wire contract, pure: channel names, close codes ([`protocol::codes::Fatal`]), frames, inbound messages, presence and client-event rules, event limits, signatures, query strings, webhook names | — |
//! | `sync` | locks that survive a panic elsewhere | — |
//! | [`app`] | an app and its limits; the app registry | protocol |
//! | `app_store` | apps read from a PostgreSQL or MySQL table (Soketi's layout) | app |
//! | [`net`] | transport: listener, TLS, socket counter, client address, the 101 coalescer, outbound HTTP, where Redis is | sync |
//! | `limits` | every rate limit: per connection, per address, per app's API | app, sync |
//! | [`channels`] | one node's subscriptions and presence ([`channels::Namespace`]), cache channels, the per-connection outbox ([`channels::handle`]) | app, protocol, sync |
//! | `adapter` | the seam for several nodes: what a cluster must answer, the local and Redis implementations | app, channels, net, protocol, sync |
//! | [`cli`] | command-line flags and the HTTP API client behind `clarion trigger` | net, protocol |
//! | [`config`] | defaults < file < environment < flags, validated into parsed parts | app, cli, net |
//! | `webhooks` | batching, signing and delivering webhooks | app, config, net, protocol, sync |
//! | `metrics` | Prometheus metrics rendered from a plain snapshot | adapter, webhooks |
//! | [`state`] | what every connection and request shares | adapter, app, app_store, config, limits, metrics, net, protocol, sync, webhooks |
//! | [`ws`] | one upgraded connection: event loop, subscribe, sign-in, client events | adapter, app, channels, limits, metrics, protocol, state, webhooks |
//! | [`http`] | routing, health, the signed API, the upgrade, `/metrics`, the admin API | adapter, app, app_store, channels, limits, metrics, protocol, state, sync, ws |
//! | [`server`] | accept loop, start-up ([`server::StartError`]), reload, graceful drain | everything above |
//!
//! Modules are crate-private unless the binary, tests, benchmarks or fuzz targets need them.
//!
//! No input may make the server panic: outside tests, `unwrap`, `expect`, `panic!`,
//! `unreachable!` and unchecked indexing are compile errors under `cargo clippy` (SECURITY.md,
//! promise 4); the few `unreachable!` that guard compiled-in facts are allowed one by one, with
//! the reason beside them.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::indexing_slicing
    )
)]

pub mod protocol;
mod sync;

pub mod app;
pub(crate) mod app_store;
pub(crate) mod limits;
pub mod net;

pub mod channels;

pub(crate) mod adapter;

pub mod cli;
pub mod config;

pub(crate) mod metrics;
pub(crate) mod webhooks;

pub mod state;

pub mod http;
pub mod ws;

pub mod server;

pub use server::Server;
