//! One node's subscriptions: who is connected, who listens on which channel, who is present,
//! what each cache channel last carried. The adapter layer builds cluster behaviour on top.

pub mod cache;
pub mod direct;
pub mod handle;
pub(crate) mod history;
pub mod namespace;
mod ordered;
mod pace;
mod recorded;
mod signins;
mod spread;
mod watchers;

pub use namespace::Namespace;
