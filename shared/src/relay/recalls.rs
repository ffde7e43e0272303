//! An agent's recall takes the message back in Slack too (issue "The Kefu
//! conversation in Slack"; docs/design.md §3 "Callback", recalls): the
//! posts that carried it are deleted with `chat.delete`, found through the
//! record written when they were posted (store/slack_posts.rs, 7 days).
//!
//! Two shapes name the message: Kefu's `cmd` body `KEFU_MESSAGE_RECALL`
//! with `ext.weichat.recall_msg_id` (the widget hides the message with
//! that id, `channel.js`), and Easemob IM's `chat_type: "recall"` with
//! `recall_id`. A message the bridge never posted, or posted too long ago,
//! is only a log line.

use crate::bridge::Bridge;
use crate::easemob::callback::{Callback, MessageBody};
use crate::slack::web::SlackApiError;
use crate::store::Installation;
use crate::visitor::VisitorId;

/// Kefu's recall command (`cmd` action).
pub const KEFU_RECALL_ACTION: &str = "KEFU_MESSAGE_RECALL";

/// What a recall did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecallOutcome {
    /// Every post that carried the message is gone (`already_gone` of them
    /// were deleted before); `refused` posts Slack would not delete.
    Deleted {
        deleted: usize,
        already_gone: usize,
        refused: usize,
    },
    /// No record: never posted to Slack, or past the recall window.
    Unknown,
    /// The id names a message of another visitor: nothing is touched.
    OtherVisitor,
    /// The table or Slack could not be reached; worth trying again.
    Unavailable(String),
}

/// The id of the message a callback takes back, when it is a recall
/// (possibly empty: the caller checks it like any id that names a record).
pub fn recalled_id(callback: &Callback) -> Option<&str> {
    if callback.chat_type.eq_ignore_ascii_case("recall") {
        return Some(callback.recall_id.trim());
    }
    let is_kefu_recall = callback.payload.bodies.iter().any(
        |body| matches!(body, MessageBody::Command { action } if action == KEFU_RECALL_ACTION),
    );
    is_kefu_recall.then(|| callback.payload.ext.weichat.recall_msg_id.trim())
}

/// Deletes the posts that carried message `id` of `visitor`.
pub async fn recall(
    bridge: &Bridge,
    installation: &Installation,
    visitor: &VisitorId,
    id: &str,
) -> RecallOutcome {
    let record = match bridge.store.slack_posts(&installation.key, id).await {
        Ok(Some(record)) => record,
        Ok(None) => return RecallOutcome::Unknown,
        Err(error) => return RecallOutcome::Unavailable(error.to_string()),
    };
    if record.visitor != visitor.to_string() {
        return RecallOutcome::OtherVisitor;
    }
    let (mut deleted, mut already_gone, mut refused) = (0, 0, 0);
    // One token for the whole recall: a stale one is replaced once.
    let token = bridge.bot_token(installation);
    for post in &record.posts {
        match bridge.slack.chat_delete(&token, post).await {
            Ok(_) => deleted += 1,
            Err(SlackApiError::Api(code)) if code == "message_not_found" => already_gone += 1,
            Err(error) if error.is_transient() || matches!(error, SlackApiError::Malformed(_)) => {
                return RecallOutcome::Unavailable(error.to_string())
            }
            Err(error) => {
                refused += 1;
                tracing::warn!(
                    channel = %post.channel,
                    ts = %post.ts,
                    %error,
                    "recalled_post_not_deleted"
                );
            }
        }
    }
    RecallOutcome::Deleted {
        deleted,
        already_gone,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn callback(value: serde_json::Value) -> Callback {
        Callback::parse(value).unwrap()
    }

    #[test]
    fn both_recall_shapes_name_the_message() {
        let kefu = callback(json!({ "payload": {
            "bodies": [{ "type": "cmd", "action": "KEFU_MESSAGE_RECALL" }],
            "ext": { "weichat": { "recall_msg_id": " 5c7e-kefu-msg " } } } }));
        assert_eq!(recalled_id(&kefu), Some("5c7e-kefu-msg"));
        let im = callback(
            json!({ "chat_type": "recall", "recall_id": "966475220900644860",
            "payload": { "ext": {}, "ack_message_id": "966475220900644860", "bodies": [] } }),
        );
        assert_eq!(recalled_id(&im), Some("966475220900644860"));
        let without_id = callback(json!({ "payload": {
            "bodies": [{ "type": "cmd", "action": "KEFU_MESSAGE_RECALL" }] } }));
        assert_eq!(recalled_id(&without_id), Some(""));
    }

    #[test]
    fn other_messages_are_not_recalls() {
        let ack = callback(json!({ "chat_type": "chat", "payload": {
            "bodies": [{ "type": "cmd", "action": "KF-ACK" }],
            "ext": { "weichat": { "recall_msg_id": "x" } } } }));
        assert_eq!(recalled_id(&ack), None);
        let text = callback(
            json!({ "payload": { "bodies": [{ "type": "txt", "msg": "KEFU_MESSAGE_RECALL" }] } }),
        );
        assert_eq!(recalled_id(&text), None);
    }
}
