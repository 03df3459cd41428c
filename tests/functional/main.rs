//! The functional black-box tests, in one test binary: each is a module named after what it
//! tests (`cargo test --test functional security::` runs one). One binary instead of one per
//! file because every test binary compiles `tests/common` again and links the whole crate, which
//! is most of the cost of building the tests. The heavy and timing-sensitive tests (`floods`,
//! `slow_consumer`, `load_generator`, `redis_cluster`) and `panic_isolation` (it turns on a
//! process-wide fault injection) stay binaries of their own.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod admin_api;
mod api_limits;
mod app_store;
mod cli;
mod cli_client;
mod client_events;
mod connection_rate;
mod direct_writes;
mod docs;
mod examples;
mod grafana;
mod http_api;
mod laravel_env;
mod layout;
mod lifecycle;
mod metrics;
mod openapi;
mod recovery;
mod security;
mod smoke;
mod soketi_env;
mod subscription_count;
mod tls;
mod watchlist;
mod webhooks;
mod ws_protocol;
