//! Socket ids: `<digits>.<digits>`, the format the Pusher server SDKs validate with `^\d+\.\d+$`.

use std::fmt;
use std::str::FromStr;

/// A connection's id. Stored as two integers (cheap to copy and hash) and printed as `a.b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64, pub u64);

impl SocketId {
    /// A fresh random id. Both halves are random so ids cannot be guessed from a counter.
    pub fn random() -> Self {
        use rand::Rng;
        let mut rng = rand::rng();
        SocketId(
            rng.random_range(1..1_000_000_000),
            rng.random_range(1..1_000_000_000),
        )
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl FromStr for SocketId {
    type Err = ();

    /// Parses `a.b` where both parts are non-empty ASCII digits; anything else is an error.
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, b) = s.split_once('.').ok_or(())?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(());
        }
        Ok(SocketId(
            a.parse().map_err(|_| ())?,
            b.parse().map_err(|_| ())?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let id = SocketId::random();
        assert_eq!(id.to_string().parse::<SocketId>(), Ok(id));
        assert!("12.".parse::<SocketId>().is_err());
        assert!("a.1".parse::<SocketId>().is_err());
        assert!("1.2.3".parse::<SocketId>().is_err());
        assert!("-1.2".parse::<SocketId>().is_err());
        assert!("99999999999999999999999.1".parse::<SocketId>().is_err());
    }
}
