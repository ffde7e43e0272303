//! The Kefu visitor id: `teamId_userId_channelId` (docs/design.md §3 "Visitor ids").
//!
//! Easemob usernames are at most 64 bytes of `[a-zA-Z0-9_.-]`,
//! case-insensitive and stored lower-case, so callbacks bring
//! `t0123abc_u0456def_d0789ghi`. Slack ids are upper-case letters and digits,
//! which makes the lower-cased form decodable: upper-casing restores them.

use std::fmt;

use crate::slack::ids::is_slack_id;
use crate::slack::{ChannelId, UserId};

pub const MAX_USERNAME_BYTES: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VisitorIdError {
    #[error("visitor id must be three Slack ids joined by '_'")]
    Shape,
    #[error("visitor id part {0:?} is not a Slack id")]
    Part(String),
    #[error("visitor id is longer than Easemob's 64-byte username limit")]
    TooLong,
}

/// Who a Kefu visitor is in Slack. `workspace` is the id the installation is
/// keyed by: the team `T…`, or the enterprise `E…` for org-wide installs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisitorId {
    workspace: String,
    user: UserId,
    channel: ChannelId,
}

impl VisitorId {
    pub fn new(
        workspace: &str,
        user: &UserId,
        channel: &ChannelId,
    ) -> Result<Self, VisitorIdError> {
        if !is_slack_id(workspace) {
            return Err(VisitorIdError::Part(workspace.to_string()));
        }
        let id = Self {
            workspace: workspace.to_string(),
            user: user.clone(),
            channel: channel.clone(),
        };
        if id.to_string().len() > MAX_USERNAME_BYTES {
            return Err(VisitorIdError::TooLong);
        }
        Ok(id)
    }

    /// Parses an Easemob username in any case, restoring Slack's upper case.
    pub fn decode(username: &str) -> Result<Self, VisitorIdError> {
        if username.len() > MAX_USERNAME_BYTES {
            return Err(VisitorIdError::TooLong);
        }
        let mut parts = username.split('_');
        let (Some(workspace), Some(user), Some(channel), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VisitorIdError::Shape);
        };
        let upper = |part: &str| -> Result<String, VisitorIdError> {
            let restored = part.to_ascii_uppercase();
            if is_slack_id(&restored) {
                Ok(restored)
            } else {
                Err(VisitorIdError::Part(part.to_string()))
            }
        };
        let workspace = upper(workspace)?;
        let user = UserId::parse(&upper(user)?).ok_or(VisitorIdError::Shape)?;
        let channel = ChannelId::parse(&upper(channel)?).ok_or(VisitorIdError::Shape)?;
        Self::new(&workspace, &user, &channel)
    }

    /// The installation key id (`T…` or `E…`).
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub fn channel(&self) -> &ChannelId {
        &self.channel
    }
}

impl fmt::Display for VisitorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}_{}", self.workspace, self.user, self.channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> VisitorId {
        VisitorId::new(
            "T0123ABC",
            &UserId::parse("U0456DEF").unwrap(),
            &ChannelId::parse("D0789GHI").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn encodes_as_the_seed_format() {
        assert_eq!(id().to_string(), "T0123ABC_U0456DEF_D0789GHI");
    }

    #[test]
    fn decoding_the_lower_cased_id_restores_slack_case() {
        assert_eq!(
            VisitorId::decode("t0123abc_u0456def_d0789ghi").unwrap(),
            id()
        );
        assert_eq!(VisitorId::decode(&id().to_string()).unwrap(), id());
    }

    #[test]
    fn ids_that_are_not_three_slack_ids_are_refused() {
        assert_eq!(
            VisitorId::decode("kefuchannelimid_1"),
            Err(VisitorIdError::Shape)
        );
        assert_eq!(VisitorId::decode("a_b_c_d"), Err(VisitorIdError::Shape));
        assert!(matches!(
            VisitorId::decode("t1_u-2_c3"),
            Err(VisitorIdError::Part(_))
        ));
        assert!(matches!(
            VisitorId::decode("t1__c3"),
            Err(VisitorIdError::Part(_))
        ));
        let long = format!("T{}_U1_C1", "A".repeat(70));
        assert_eq!(VisitorId::decode(&long), Err(VisitorIdError::TooLong));
    }

    #[test]
    fn new_refuses_a_bad_workspace_and_overlong_ids() {
        let user = UserId::parse("U1").unwrap();
        let channel = ChannelId::parse("C1").unwrap();
        assert!(VisitorId::new("t1", &user, &channel).is_err());
        let user = UserId::parse(&format!("U{}", "A".repeat(31))).unwrap();
        let channel = ChannelId::parse(&format!("C{}", "B".repeat(31))).unwrap();
        assert_eq!(
            VisitorId::new("T123456789", &user, &channel),
            Err(VisitorIdError::TooLong)
        );
    }
}
