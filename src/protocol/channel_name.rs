//! Channel names: validation and the type a prefix gives a channel.

/// What a channel's name makes it. Prefixes are matched longest first, with their dashes, so
/// `private-encrypted-cache-x` is an encrypted cache channel and not a plain private one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelKind {
    /// Needs a signature to subscribe (`private-*`, `presence-*` and their variants).
    pub private: bool,
    /// Presence channel: members are tracked.
    pub presence: bool,
    /// End-to-end encrypted: the server forwards payloads it cannot read.
    pub encrypted: bool,
    /// Cache channel: the last event is kept and replayed to new subscribers.
    pub cache: bool,
    /// `#server-to-user-{id}`: only the connection signed in as `{id}` may subscribe.
    pub server_to_user: bool,
}

/// The prefix of the per-user channel that `sendToUser` targets.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

impl ChannelKind {
    /// Classifies a channel by its prefix.
    pub fn of(name: &str) -> ChannelKind {
        let mut kind = ChannelKind {
            private: false,
            presence: false,
            encrypted: false,
            cache: false,
            server_to_user: false,
        };
        if name.starts_with(SERVER_TO_USER_PREFIX) {
            kind.server_to_user = true;
        } else if name.starts_with("private-encrypted-cache-") {
            kind.private = true;
            kind.encrypted = true;
            kind.cache = true;
        } else if name.starts_with("private-encrypted-") {
            kind.private = true;
            kind.encrypted = true;
        } else if name.starts_with("private-cache-") {
            kind.private = true;
            kind.cache = true;
        } else if name.starts_with("presence-cache-") {
            kind.private = true;
            kind.presence = true;
            kind.cache = true;
        } else if name.starts_with("cache-") {
            kind.cache = true;
        } else if name.starts_with("private-") {
            kind.private = true;
        } else if name.starts_with("presence-") {
            kind.private = true;
            kind.presence = true;
        }
        kind
    }
}

/// Why a channel name was refused; the text goes to the client or the HTTP caller as is.
#[derive(Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong { len: usize, max: usize },
    BadCharacter(char),
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => write!(f, "channel name is empty"),
            NameError::TooLong { len, max } => {
                write!(
                    f,
                    "channel name is {len} characters long; the limit is {max}"
                )
            }
            NameError::BadCharacter(c) => write!(
                f,
                "channel name contains {c:?}; allowed are A-Z a-z 0-9 _ - = @ , . ; \
                 (and a leading # only for #server-to-user-{{id}})"
            ),
        }
    }
}

/// Checks a channel name: 1..=`max_len` characters from `[A-Za-z0-9_\-=@,.;]`, with `#` allowed
/// only as the start of `#server-to-user-{id}` (and then `{id}` must be non-empty).
pub fn validate(name: &str, max_len: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let len = name.chars().count();
    if len > max_len {
        return Err(NameError::TooLong { len, max: max_len });
    }
    let rest = match name.strip_prefix(SERVER_TO_USER_PREFIX) {
        Some("") => return Err(NameError::Empty),
        Some(user) => user,
        None => name,
    };
    match rest.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(NameError::BadCharacter(c)),
        None => Ok(()),
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '@' | ',' | '.' | ';')
}

/// Whether `name` matches a configured pattern, where `*` stands for any run of characters
/// (`private-provider.*`). No other character is special.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = parts.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(i) => rest = rest.get(i + piece.len()..).unwrap_or(""),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_longest_first() {
        let k = ChannelKind::of("private-encrypted-cache-x");
        assert!(k.private && k.encrypted && k.cache && !k.presence);
        let k = ChannelKind::of("private-encrypted-x");
        assert!(k.private && k.encrypted && !k.cache);
        let k = ChannelKind::of("presence-cache-x");
        assert!(k.presence && k.cache && k.private);
        let k = ChannelKind::of("privatefoo");
        assert!(!k.private);
        let k = ChannelKind::of("cache-x");
        assert!(k.cache && !k.private);
        assert!(ChannelKind::of("#server-to-user-1").server_to_user);
    }

    #[test]
    fn names_are_validated() {
        assert!(validate("private-App.Models.User.1", 200).is_ok());
        assert!(validate("a=b@c,d;e_f-g", 200).is_ok());
        assert!(validate("#server-to-user-42", 200).is_ok());
        assert_eq!(validate("", 200), Err(NameError::Empty));
        assert_eq!(validate("#server-to-user-", 200), Err(NameError::Empty));
        assert_eq!(validate("#other", 200), Err(NameError::BadCharacter('#')));
        assert_eq!(validate("a b", 200), Err(NameError::BadCharacter(' ')));
        assert!(matches!(
            validate(&"x".repeat(201), 200),
            Err(NameError::TooLong { .. })
        ));
        assert!(validate(&"x".repeat(200), 200).is_ok());
    }

    #[test]
    fn patterns_match_with_stars() {
        assert!(matches_pattern("private-provider.*", "private-provider.42"));
        assert!(matches_pattern("private-provider.*", "private-provider."));
        assert!(!matches_pattern("private-provider.*", "private-providers"));
        assert!(matches_pattern("exact", "exact"));
        assert!(!matches_pattern("exact", "exactly"));
        assert!(matches_pattern("*.orders.*", "presence-shop.orders.9"));
        assert!(matches_pattern("a*b*c", "a-x-b-y-c"));
        assert!(!matches_pattern("a*b*c", "a-x-c"));
        assert!(matches_pattern("*", "anything"));
        assert!(!matches_pattern("ab*ba", "aba"), "pieces may not overlap");
    }
}
