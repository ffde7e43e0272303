//! What an admin sets per workspace (docs/design.md §4 "The table"): the
//! Kefu skill group its visitors are routed to — for the whole workspace
//! or one channel (`ext.weichat.queueName`, docs/design.md §3 "Send a text
//! as the visitor") — and the language of the session notices the bridge
//! posts. Both live in the workspace's partition, so uninstalling removes
//! them with the rest.

use super::{Store, WorkspaceKey};
use crate::dynamo::item::str_attr;
use crate::dynamo::{DynamoError, ItemExt};
use crate::slack::ChannelId;

/// The route of a whole workspace is stored under this "channel".
const ANY_CHANNEL: &str = "*";
const ROUTE_PREFIX: &str = "ROUTE#";
const SETTINGS_SK: &str = "SETTINGS";

/// One routing rule: visitors writing in `channel` (every channel when
/// `None`) go to Kefu skill group `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub channel: Option<String>,
    pub queue: String,
}

/// The language of the notices the bridge itself writes to customers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NoticeLanguage {
    #[default]
    English,
    Chinese,
}

impl NoticeLanguage {
    /// As stored and as an admin types it.
    pub fn tag(self) -> &'static str {
        match self {
            NoticeLanguage::English => "en",
            NoticeLanguage::Chinese => "zh",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Self> {
        match tag.trim().to_ascii_lowercase().as_str() {
            "en" => Some(NoticeLanguage::English),
            "zh" => Some(NoticeLanguage::Chinese),
            _ => None,
        }
    }
}

fn route_sk(channel: Option<&ChannelId>) -> String {
    format!(
        "{ROUTE_PREFIX}{}",
        channel.map_or(ANY_CHANNEL, ChannelId::as_str)
    )
}

impl Store {
    /// Routes the workspace's visitors (in `channel`, or everywhere) to
    /// Kefu skill group `queue`; replaces an earlier route for the same place.
    pub async fn put_route(
        &self,
        workspace: &WorkspaceKey,
        channel: Option<&ChannelId>,
        queue: &str,
    ) -> Result<(), DynamoError> {
        let mut item = Self::key(workspace.pk(), route_sk(channel));
        item.insert("queue_name".into(), str_attr(queue));
        self.put(item).await
    }

    pub async fn delete_route(
        &self,
        workspace: &WorkspaceKey,
        channel: Option<&ChannelId>,
    ) -> Result<(), DynamoError> {
        self.db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(workspace.pk(), route_sk(channel))))
            .send()
            .await?;
        Ok(())
    }

    /// Every route of the workspace, in one query.
    pub async fn routes(&self, workspace: &WorkspaceKey) -> Result<Vec<Route>, DynamoError> {
        let query = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", str_attr(workspace.pk()))
            .expression_attribute_values(":prefix", str_attr(ROUTE_PREFIX))
            .consistent_read(true);
        let items = self.query_all(query).await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let place = item.s("sk")?.strip_prefix(ROUTE_PREFIX)?;
                Some(Route {
                    channel: (place != ANY_CHANNEL).then(|| place.to_string()),
                    queue: item.s("queue_name")?.to_string(),
                })
            })
            .collect())
    }

    /// The workspace's notice language (English unless set).
    pub async fn notice_language(
        &self,
        workspace: &WorkspaceKey,
    ) -> Result<NoticeLanguage, DynamoError> {
        let item = self.get(Self::key(workspace.pk(), SETTINGS_SK)).await?;
        Ok(item
            .as_ref()
            .and_then(|item| item.s("notice_language"))
            .and_then(NoticeLanguage::from_tag)
            .unwrap_or_default())
    }

    pub async fn put_notice_language(
        &self,
        workspace: &WorkspaceKey,
        language: NoticeLanguage,
    ) -> Result<(), DynamoError> {
        self.db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(workspace.pk(), SETTINGS_SK)))
            .update_expression("SET notice_language = :language")
            .expression_attribute_values(":language", str_attr(language.tag()))
            .send()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_by_tag() {
        for language in [NoticeLanguage::English, NoticeLanguage::Chinese] {
            assert_eq!(NoticeLanguage::from_tag(language.tag()), Some(language));
        }
        assert_eq!(
            NoticeLanguage::from_tag(" ZH "),
            Some(NoticeLanguage::Chinese)
        );
        assert_eq!(NoticeLanguage::from_tag("fr"), None);
    }

    #[test]
    fn a_channel_route_and_the_workspace_route_have_their_own_keys() {
        let channel = ChannelId::parse("C0SUPPORT").unwrap();
        assert_eq!(route_sk(Some(&channel)), "ROUTE#C0SUPPORT");
        assert_eq!(route_sk(None), "ROUTE#*");
    }
}
