//! The limits every event obeys, whoever sends it (the HTTP API or a client): the length of its
//! name and the size of its data. One definition, so "10 KB" means the same on both paths.

/// An app's limits on one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventLimits {
    /// Characters in the event name.
    pub max_name_length: usize,
    /// Bytes of data (see [`data_size`]); 0 means unlimited.
    pub max_data_size: usize,
}

/// An event over a limit; `Display` says which and by how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitError {
    NameTooLong { length: usize, limit: usize },
    DataTooLarge { size: usize, limit: usize },
}

impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitError::NameTooLong { length, limit } => write!(
                f,
                "the event name is {length} characters; the limit is {limit}"
            ),
            LimitError::DataTooLarge { size, limit } => {
                write!(f, "data is {size} bytes; the limit is {limit} bytes")
            }
        }
    }
}

/// The size of an event's data given as raw JSON: for a string, the bytes of the string
/// itself (what the application wrote, without quotes and escapes); for any other value, its
/// JSON text.
pub fn data_size(raw_json: &str) -> usize {
    if raw_json.starts_with('"') {
        // Without escapes the string is its text between the quotes (no allocation, on the
        // path of every client event and trigger); with escapes it is decoded once.
        if let Ok(s) = serde_json::from_str::<&str>(raw_json) {
            return s.len();
        }
        if let Ok(s) = serde_json::from_str::<String>(raw_json) {
            return s.len();
        }
    }
    raw_json.len()
}

/// Checks an event's name and the [`data_size`] of its data against the limits.
pub fn check(name: &str, data_size: usize, limits: EventLimits) -> Result<(), LimitError> {
    let length = name.chars().count();
    if length > limits.max_name_length {
        return Err(LimitError::NameTooLong {
            length,
            limit: limits.max_name_length,
        });
    }
    if limits.max_data_size != 0 && data_size > limits.max_data_size {
        return Err(LimitError::DataTooLarge {
            size: data_size,
            limit: limits.max_data_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: EventLimits = EventLimits {
        max_name_length: 5,
        max_data_size: 10,
    };

    #[test]
    fn strings_count_their_own_bytes_other_values_their_json_text() {
        assert_eq!(data_size(r#""0123456789""#), 10);
        assert_eq!(data_size(r#""a\"b""#), 3);
        assert_eq!(data_size(r#""é""#), 2);
        assert_eq!(data_size(r#"{"a":1}"#), 7);
        assert_eq!(data_size("12"), 2);
    }

    #[test]
    fn limits_are_inclusive_and_zero_data_limit_means_none() {
        assert_eq!(check("abcde", 10, LIMITS), Ok(()));
        assert_eq!(
            check("abcdéf", 0, LIMITS),
            Err(LimitError::NameTooLong {
                length: 6,
                limit: 5
            })
        );
        assert_eq!(
            check("a", 11, LIMITS),
            Err(LimitError::DataTooLarge {
                size: 11,
                limit: 10
            })
        );
        let unlimited = EventLimits {
            max_data_size: 0,
            ..LIMITS
        };
        assert_eq!(check("a", usize::MAX, unlimited), Ok(()));
    }
}
