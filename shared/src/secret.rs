//! A string that must never reach a log line.

use std::fmt;

/// Tokens, client secrets and signing secrets. `Debug` and `Display` print
/// a placeholder so a stray `?secret` in a tracing macro leaks nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that has to send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("xoxb-123-secret");
        assert!(!format!("{secret:?}").contains("xoxb"));
        assert!(!format!("{secret}").contains("xoxb"));
        assert_eq!(secret.expose(), "xoxb-123-secret");
    }
}
