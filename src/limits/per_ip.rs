//! New WebSocket connections per second per client address (`new_connections_per_ip_per_second`,
//! off by default): one fixed one-second window per address.
//!
//! Windows that are over are swept away once the table grows, so a flood from many addresses
//! costs memory for one second's worth of them, not for every address ever seen.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Table size above which finished windows are swept.
const SWEEP_ABOVE: usize = 4096;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct ConnectionRateLimit {
    limit: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl ConnectionRateLimit {
    /// `limit` new connections per second per address; 0 turns the limit off.
    pub fn new(limit: u32) -> ConnectionRateLimit {
        ConnectionRateLimit {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip` at `now`; false when the address is over its limit.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        let mut windows = crate::sync::lock(&self.windows);
        if windows.len() >= SWEEP_ABOVE {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, used) = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *used = 0;
        }
        if *used < self.limit {
            *used += 1;
            true
        } else {
            false
        }
    }

    /// Addresses currently tracked (for tests of the sweep).
    pub fn tracked(&self) -> usize {
        crate::sync::lock(&self.windows).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_address_separately() {
        let l = ConnectionRateLimit::new(2);
        let t0 = Instant::now();
        let (a, b): (IpAddr, IpAddr) = (
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        );
        assert!(l.allow(a, t0) && l.allow(a, t0));
        assert!(!l.allow(a, t0 + Duration::from_millis(900)));
        assert!(l.allow(b, t0), "another address has its own budget");
        assert!(l.allow(a, t0 + Duration::from_millis(1000)), "a new window");
    }

    #[test]
    fn zero_means_off_and_old_windows_are_swept() {
        let off = ConnectionRateLimit::new(0);
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!((0..10_000).all(|_| off.allow(ip, Instant::now())));
        assert_eq!(off.tracked(), 0);
        let l = ConnectionRateLimit::new(1);
        let t0 = Instant::now();
        for i in 0..SWEEP_ABOVE as u32 {
            assert!(l.allow(IpAddr::from(i.to_be_bytes()), t0));
        }
        assert!(l.allow(ip, t0 + Duration::from_secs(2)));
        assert_eq!(l.tracked(), 1, "finished windows were swept");
    }
}
