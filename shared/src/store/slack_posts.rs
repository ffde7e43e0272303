//! Which Slack messages carried a Kefu message, so an agent's recall can
//! delete them (docs/design.md §3 "Callback", recalls; §4 "The table").
//!
//! Written when a reply is posted — by the callback and by the outbox
//! drain — and kept for the recall window ([`SLACK_POSTS_TTL_SECS`]). A
//! reply posted in parts (some now, the rest by a drain) adds to the same
//! record: the posts are a string set, so writing one twice is harmless.
//! Kefu names a message by its own id (`ext.weichat.msgId`) as well as by
//! Easemob's `msg_id`; the first is kept as a second name pointing at the
//! record, so a recall finds it by either.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::{built, ClaimKey, Store, WorkspaceKey};
use crate::clock::now_epoch_secs;
use crate::dynamo::item::{num_attr, str_attr};
use crate::dynamo::{DynamoError, ItemExt};
use crate::slack::web::SlackMessageRef;

/// How long a posted reply can be recalled.
pub const SLACK_POSTS_TTL_SECS: i64 = 7 * 24 * 3_600;

/// A Kefu message as it was posted to Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackPosts {
    /// The visitor id it was posted for.
    pub visitor: String,
    pub posts: Vec<SlackMessageRef>,
}

fn kefu_message_sk(id: &str) -> String {
    format!("KEFU_MSG#{id}")
}

/// A post as a set element: channel ids and `ts` never hold a space.
fn element(post: &SlackMessageRef) -> String {
    format!("{} {}", post.channel, post.ts)
}

fn from_element(element: &str) -> Option<SlackMessageRef> {
    let (channel, ts) = element.split_once(' ')?;
    Some(SlackMessageRef {
        channel: channel.to_string(),
        ts: ts.to_string(),
    })
}

impl Store {
    /// Records `posts` as carrying Kefu message `msg_id` of `visitor`, and
    /// `kefu_msg_id` (Kefu's own id of it) as another name for it; with
    /// `completing`, also completes that claim with its parts count (the
    /// warm path's second and last round trip, docs/design.md §4 "Delivery
    /// pipeline"). One write either way; nothing to write is no call.
    pub async fn remember_slack_posts(
        &self,
        workspace: &WorkspaceKey,
        msg_id: &str,
        kefu_msg_id: Option<&str>,
        visitor: &str,
        posts: &[SlackMessageRef],
        completing: Option<(&ClaimKey, u32)>,
    ) -> Result<(), DynamoError> {
        let expires_at = num_attr(now_epoch_secs() + SLACK_POSTS_TTL_SECS);
        let update = (!posts.is_empty())
            .then(|| {
                let set: Vec<String> = posts.iter().map(element).collect();
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::key(workspace.pk(), kefu_message_sk(msg_id))))
                    .update_expression("ADD posts :posts SET visitor = :visitor, expires_at = :exp")
                    .expression_attribute_values(":posts", AttributeValue::Ss(set))
                    .expression_attribute_values(":visitor", str_attr(visitor))
                    .expression_attribute_values(":exp", expires_at.clone())
                    .build()
                    .map_err(built)
            })
            .transpose()?;
        let alias = kefu_msg_id
            .filter(|id| !id.is_empty() && *id != msg_id)
            .map(|alias| {
                let mut item = Self::key(workspace.pk(), kefu_message_sk(alias));
                item.extend([
                    ("same_as".to_string(), str_attr(msg_id)),
                    ("visitor".to_string(), str_attr(visitor)),
                    ("expires_at".to_string(), expires_at.clone()),
                ]);
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build()
                    .map_err(built)
            })
            .transpose()?;
        let completion = completing
            .map(|(claim, parts)| self.claim_status_update(claim, "completed", parts))
            .transpose()?;
        let items: Vec<TransactWriteItem> = update
            .into_iter()
            .chain(completion)
            .map(|update| TransactWriteItem::builder().update(update).build())
            .chain(alias.map(|put| TransactWriteItem::builder().put(put).build()))
            .collect();
        match items.len() {
            0 => Ok(()),
            // One item: a plain write costs half a transaction's capacity.
            1 => match items.into_iter().next() {
                Some(TransactWriteItem {
                    update: Some(update),
                    ..
                }) => self.update(update).await,
                Some(TransactWriteItem { put: Some(put), .. }) => self.put(put.item).await,
                _ => Ok(()),
            },
            _ => self.transact(items).await,
        }
    }

    /// The Slack posts of the Kefu message named `id` (Easemob's `msg_id`
    /// or Kefu's own id), or `None` when unknown or past the recall window.
    pub async fn slack_posts(
        &self,
        workspace: &WorkspaceKey,
        id: &str,
    ) -> Result<Option<SlackPosts>, DynamoError> {
        let read = |id: String| async move {
            let item = self
                .get(Self::key(workspace.pk(), kefu_message_sk(&id)))
                .await?;
            Ok::<_, DynamoError>(
                item.filter(|item| item.n("expires_at").is_none_or(|at| at > now_epoch_secs())),
            )
        };
        let Some(mut item) = read(id.to_string()).await? else {
            return Ok(None);
        };
        if let Some(same_as) = item.s("same_as").map(str::to_string) {
            match read(same_as).await? {
                Some(named) => item = named,
                None => return Ok(None),
            }
        }
        let posts = match item.get("posts") {
            Some(AttributeValue::Ss(set)) => set.iter().filter_map(|e| from_element(e)).collect(),
            _ => Vec::new(),
        };
        Ok(Some(SlackPosts {
            visitor: item.s("visitor").unwrap_or_default().to_string(),
            posts,
        }))
    }
}
