//! Events API payloads (docs/design.md §2 "Events API", "Message events").
//!
//! Envelopes and events are `#[serde(tag = "type")]` enums with a catch-all
//! variant, so a type Slack adds tomorrow parses as `Unknown` and gets 200.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Envelope {
    UrlVerification {
        challenge: String,
    },
    EventCallback(EventCallback),
    AppRateLimited {
        #[serde(default)]
        team_id: Option<String>,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
pub struct EventCallback {
    pub team_id: String,
    #[serde(default)]
    pub api_app_id: String,
    pub event_id: String,
    #[serde(default)]
    pub event_time: i64,
    #[serde(default)]
    pub enterprise_id: Option<String>,
    #[serde(default)]
    pub is_enterprise_install: bool,
    /// Kept raw: the envelope must parse even when an event's fields are odd,
    /// so the handler can answer each event deliberately.
    pub event: Value,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Message(Box<MessageEvent>),
    AppUninstalled,
    TokensRevoked {
        #[serde(default)]
        tokens: RevokedTokens,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
pub struct RevokedTokens {
    #[serde(default)]
    pub oauth: Vec<String>,
    #[serde(default)]
    pub bot: Vec<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct MessageEvent {
    #[serde(default)]
    pub subtype: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub thread_ts: Option<String>,
    #[serde(default)]
    pub channel_type: Option<String>,
    #[serde(default)]
    pub files: Vec<SlackFile>,
    #[serde(default)]
    pub bot_id: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub bot_profile: Option<BotProfile>,
    /// The edited message, for `subtype = message_changed`.
    #[serde(default)]
    pub message: Option<Box<MessageEvent>>,
    /// The message as it was, for `message_changed` and `message_deleted`.
    #[serde(default)]
    pub previous_message: Option<Box<MessageEvent>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct BotProfile {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct SlackFile {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub mimetype: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub permalink: Option<String>,
    #[serde(default)]
    pub url_private: Option<String>,
    /// Same bytes as `url_private`, served as an attachment.
    #[serde(default)]
    pub url_private_download: Option<String>,
    /// Pixel size of an image's original.
    #[serde(default)]
    pub original_w: Option<u64>,
    #[serde(default)]
    pub original_h: Option<u64>,
    /// `hosted`, `external`, `snippet`, `post`; `tombstone` (deleted) and
    /// `hidden_by_limit` (free plan) files have no bytes to fetch.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub is_external: bool,
}

impl SlackFile {
    /// What the agent reads for a file until files are relayed as files.
    pub fn describe(&self) -> String {
        let name = self
            .name
            .as_deref()
            .or(self.title.as_deref())
            .unwrap_or("file");
        match self.permalink.as_deref().or(self.url_private.as_deref()) {
            Some(link) => format!("[file] {name}: {link}"),
            None => format!("[file] {name}"),
        }
    }
}

/// The conversation kinds the bridge serves (`message.im`, `.channels`,
/// `.groups`, `.mpim` subscriptions).
pub fn is_supported_channel_type(channel_type: &str) -> bool {
    matches!(channel_type, "im" | "channel" | "group" | "mpim")
}

/// Subtypes that carry something a person wrote. Edits and deletions are
/// sorted out by [`message_change`]; everything else (joins, leaves, topic
/// changes, bot messages) is not forwarded.
pub fn is_content_subtype(subtype: Option<&str>) -> bool {
    matches!(
        subtype,
        None | Some("file_share") | Some("thread_broadcast") | Some("me_message")
    )
}

/// What a message event is, as far as the agent is concerned.
#[derive(Debug, Clone, Copy)]
pub enum MessageChange<'a> {
    /// Something written: the message itself.
    Wrote(&'a MessageEvent),
    /// A message whose text was edited: its new version.
    Edited(&'a MessageEvent),
    /// A deleted message (or a thread parent replaced by a tombstone): the
    /// message as it was.
    Deleted(&'a MessageEvent),
    /// Joins, topic changes, bot posts, and `message_changed` events that
    /// change no text (Slack sends those for link previews and reply counts).
    Other,
}

/// Sorts a message event by what it means for the agent (docs/design.md §2
/// "Message events": `message_changed` carries `message` and
/// `previous_message`, `message_deleted` carries `previous_message`).
pub fn message_change(event: &MessageEvent) -> MessageChange<'_> {
    let previous = event.previous_message.as_deref();
    match event.subtype.as_deref() {
        subtype if is_content_subtype(subtype) => MessageChange::Wrote(event),
        Some("message_changed") => {
            let Some(now) = event.message.as_deref() else {
                return MessageChange::Other;
            };
            match (now.subtype.as_deref(), previous) {
                (Some("tombstone"), Some(previous)) => MessageChange::Deleted(previous),
                (subtype, Some(previous))
                    if is_content_subtype(subtype) && now.text != previous.text =>
                {
                    MessageChange::Edited(now)
                }
                _ => MessageChange::Other,
            }
        }
        Some("message_deleted") => previous.map_or(MessageChange::Other, MessageChange::Deleted),
        _ => MessageChange::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_envelope_and_event_types_parse() {
        let env: Envelope = serde_json::from_str(r#"{"type":"brand_new","x":1}"#).unwrap();
        assert!(matches!(env, Envelope::Unknown));
        let event: Event = serde_json::from_str(r#"{"type":"reaction_added"}"#).unwrap();
        assert!(matches!(event, Event::Other));
    }

    fn message(value: serde_json::Value) -> MessageEvent {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn edits_and_deletes_are_told_apart_from_previews() {
        let edited = message(serde_json::json!({
            "type": "message", "subtype": "message_changed", "channel": "D1", "hidden": true,
            "message": { "type": "message", "user": "U1", "text": "new", "ts": "1.1",
                         "edited": { "user": "U1", "ts": "1.3" } },
            "previous_message": { "type": "message", "user": "U1", "text": "old", "ts": "1.1" }
        }));
        assert!(
            matches!(message_change(&edited), MessageChange::Edited(m) if m.text.as_deref() == Some("new"))
        );
        let preview = message(serde_json::json!({
            "type": "message", "subtype": "message_changed", "channel": "D1",
            "message": { "user": "U1", "text": "see https://x.io", "attachments": [{}] },
            "previous_message": { "user": "U1", "text": "see https://x.io" }
        }));
        assert!(matches!(message_change(&preview), MessageChange::Other));
        let deleted = message(serde_json::json!({
            "type": "message", "subtype": "message_deleted", "channel": "D1", "deleted_ts": "1.1",
            "previous_message": { "user": "U1", "text": "oops", "ts": "1.1" }
        }));
        assert!(
            matches!(message_change(&deleted), MessageChange::Deleted(m) if m.text.as_deref() == Some("oops"))
        );
        let tombstone = message(serde_json::json!({
            "type": "message", "subtype": "message_changed", "channel": "C1",
            "message": { "subtype": "tombstone", "user": "USLACKBOT", "text": "This message was deleted." },
            "previous_message": { "user": "U1", "text": "parent" }
        }));
        assert!(
            matches!(message_change(&tombstone), MessageChange::Deleted(m) if m.user.as_deref() == Some("U1"))
        );
        let join = message(
            serde_json::json!({ "type": "message", "subtype": "channel_join", "user": "U1" }),
        );
        assert!(matches!(message_change(&join), MessageChange::Other));
        let bare = message(serde_json::json!({ "type": "message", "subtype": "message_deleted" }));
        assert!(matches!(message_change(&bare), MessageChange::Other));
    }

    #[test]
    fn message_event_parses_with_files_and_thread() {
        let event: Event = serde_json::from_value(serde_json::json!({
            "type": "message", "subtype": "file_share", "channel": "C1", "user": "U1",
            "text": "see", "ts": "1.2", "thread_ts": "1.0", "channel_type": "channel",
            "files": [{"id": "F1", "name": "a.png", "permalink": "https://x/a"}]
        }))
        .unwrap();
        let Event::Message(message) = event else {
            panic!("not a message")
        };
        assert_eq!(message.thread_ts.as_deref(), Some("1.0"));
        assert_eq!(message.files[0].describe(), "[file] a.png: https://x/a");
    }
}
