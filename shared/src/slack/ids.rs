//! Newtypes for Slack ids so a team id can't be passed where a channel id
//! belongs. Slack ids are upper-case letters and digits (docs/design.md §2 "IDs").

use std::fmt;

use serde::{Deserialize, Serialize};

/// True for a well-formed Slack id: 2–32 upper-case ASCII letters or digits.
pub fn is_slack_id(value: &str) -> bool {
    (2..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

macro_rules! slack_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// `None` unless `value` is a well-formed Slack id.
            pub fn parse(value: &str) -> Option<Self> {
                is_slack_id(value).then(|| Self(value.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slack_id!(
    /// A workspace, `T…`.
    TeamId
);
slack_id!(
    /// An Enterprise Grid organisation, `E…`.
    EnterpriseId
);
slack_id!(
    /// A person or bot user, `U…` or `W…`.
    UserId
);
slack_id!(
    /// A conversation: `C…` public, `G…` private or group DM, `D…` DM.
    ChannelId
);

impl ChannelId {
    /// Direct messages never thread replies onto the visitor's thread.
    pub fn is_direct_message(&self) -> bool {
        self.0.starts_with('D')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_ids_are_upper_case_alphanumerics() {
        assert!(TeamId::parse("T0123ABC").is_some());
        assert!(TeamId::parse("t0123abc").is_none());
        assert!(UserId::parse("U1_2").is_none());
        assert!(ChannelId::parse("").is_none());
        assert!(ChannelId::parse("D0123").unwrap().is_direct_message());
        assert!(!ChannelId::parse("C0123").unwrap().is_direct_message());
    }
}
