//! Which address a connection comes from: the TCP peer, or — only when the peer is one of the
//! configured `trusted_proxies` — the address the proxy reports in `X-Forwarded-For`.
//!
//! Honouring the header from anyone would let a client pick the address it is rate-limited
//! under, so untrusted peers are always judged by their own address.

use std::net::IpAddr;

/// One trusted network: an address and a prefix length.
#[derive(Clone, Debug, PartialEq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(text: &str) -> Result<Net, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{text:?}: the prefix length must be 0..={max}")),
            },
        };
        Ok(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let mut left = usize::from(bits);
    for (x, y) in a.iter().zip(b) {
        if left == 0 {
            return true;
        }
        let take = left.min(8);
        let mask = (0xffu16 << (8 - take)) as u8;
        if x & mask != y & mask {
            return false;
        }
        left -= take;
    }
    true
}

/// The configured `trusted_proxies`.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

impl TrustedProxies {
    /// Parses the configured list; an entry that is neither an address nor a CIDR network is an
    /// error naming it.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        let nets = entries
            .iter()
            .enumerate()
            .map(|(i, e)| Net::parse(e).map_err(|m| format!("trusted_proxies[{i}]: {m}")))
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client's address: the peer itself unless it is a trusted proxy; then the right-most
    /// `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left were
    /// written by the client and prove nothing).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).collect();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => continue,
                Ok(ip) => return ip.to_canonical(),
                // A garbled entry ends the trusted chain: judge by the last proxy we trust.
                Err(_) => return peer,
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn untrusted_peers_are_judged_by_their_own_address() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into()]).expect("valid");
        assert_eq!(
            t.client_ip(ip("192.0.2.7"), ["1.2.3.4"].into_iter()),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn trusted_proxies_pass_on_the_rightmost_untrusted_hop() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).expect("valid");
        // The client wrote "6.6.6.6" itself; the first proxy saw 1.2.3.4.
        let got = t.client_ip(ip("10.1.2.3"), ["6.6.6.6, 1.2.3.4", "10.9.9.9"].into_iter());
        assert_eq!(got, ip("1.2.3.4"));
        assert_eq!(
            t.client_ip(ip("::1"), std::iter::empty()),
            ip("::1"),
            "no header: the proxy itself"
        );
        assert_eq!(
            t.client_ip(ip("::ffff:10.0.0.1"), ["2001:db8::1"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["garbage"].into_iter()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn networks_match_by_prefix() {
        let n = Net::parse("192.168.16.0/20").expect("valid");
        assert!(n.contains(ip("192.168.31.255")));
        assert!(!n.contains(ip("192.168.32.0")));
        assert!(Net::parse("0.0.0.0/0")
            .expect("valid")
            .contains(ip("8.8.8.8")));
        assert!(!Net::parse("::/0").expect("valid").contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "1.2.3.4/x", "::/129"] {
            assert!(Net::parse(bad).is_err(), "{bad}");
        }
    }
}
