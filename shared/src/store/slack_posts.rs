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

use serde_json::{json, Value};

use super::{Store, WorkspaceKey};
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
    /// `kefu_msg_id` (Kefu's own id of it) as another name for it. One
    /// write either way; nothing to write is no call.
    pub async fn remember_slack_posts(
        &self,
        workspace: &WorkspaceKey,
        msg_id: &str,
        kefu_msg_id: Option<&str>,
        visitor: &str,
        posts: &[SlackMessageRef],
    ) -> Result<(), DynamoError> {
        let expires_at = num_attr(now_epoch_secs() + SLACK_POSTS_TTL_SECS);
        let update = (!posts.is_empty()).then(|| {
            let set: Vec<String> = posts.iter().map(element).collect();
            json!({
                "TableName": self.table,
                "Key": Self::key(&workspace.pk(), &kefu_message_sk(msg_id)),
                "UpdateExpression": "ADD posts :posts SET visitor = :visitor, expires_at = :exp",
                "ExpressionAttributeValues": {
                    ":posts": { "SS": set },
                    ":visitor": str_attr(visitor),
                    ":exp": expires_at,
                },
            })
        });
        let alias = kefu_msg_id
            .filter(|id| !id.is_empty() && *id != msg_id)
            .map(|alias| {
                json!({
                    "TableName": self.table,
                    "Item": {
                        "pk": str_attr(workspace.pk()),
                        "sk": str_attr(kefu_message_sk(alias)),
                        "same_as": str_attr(msg_id),
                        "visitor": str_attr(visitor),
                        "expires_at": expires_at,
                    },
                })
            });
        let written = match (update, alias) {
            (Some(update), Some(alias)) => {
                self.db
                    .call(
                        "TransactWriteItems",
                        &json!({ "TransactItems": [{ "Update": update }, { "Put": alias }] }),
                    )
                    .await
            }
            (Some(update), None) => self.db.call("UpdateItem", &update).await,
            (None, Some(alias)) => self.db.call("PutItem", &alias).await,
            (None, None) => return Ok(()),
        };
        written.map(|_| ())
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
                .db
                .get_item(
                    &self.table,
                    Self::key(&workspace.pk(), &kefu_message_sk(&id)),
                )
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
        let posts = item
            .get("posts")
            .and_then(|posts| posts.get("SS"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(from_element)
            .collect();
        Ok(Some(SlackPosts {
            visitor: item.s("visitor").unwrap_or_default().to_string(),
            posts,
        }))
    }
}
