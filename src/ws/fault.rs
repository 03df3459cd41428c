//! Fault injection for the test that proves a panic in one connection cannot take the server
//! down (SECURITY.md). No input makes a handler panic on purpose, so the test needs a way to
//! cause one: in debug builds only, after `enable()`, the exact text frame [`PANIC_FRAME`]
//! panics inside the connection's handler. Release builds compile none of this.

#[cfg(debug_assertions)]
use std::sync::atomic::{AtomicBool, Ordering};

/// The frame that panics once fault injection is on.
pub const PANIC_FRAME: &str = r#"{"event":"clarion:test-panic"}"#;

#[cfg(debug_assertions)]
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns fault injection on for this process (debug builds only).
#[cfg(debug_assertions)]
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Panics when fault injection is on and `text` is [`PANIC_FRAME`]. The one deliberate panic
/// in the crate, and only in debug builds after `enable()`.
#[inline]
#[allow(clippy::panic)]
pub fn check(text: &str) {
    #[cfg(debug_assertions)]
    if ENABLED.load(Ordering::Relaxed) && text == PANIC_FRAME {
        panic!("injected fault: a connection handler panicked");
    }
    #[cfg(not(debug_assertions))]
    let _ = text;
}
