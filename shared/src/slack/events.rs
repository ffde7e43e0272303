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

/// Subtypes that carry something a person wrote. Everything else (joins,
/// leaves, topic changes, edits, deletes, bot messages) is not forwarded.
pub fn is_content_subtype(subtype: Option<&str>) -> bool {
    matches!(
        subtype,
        None | Some("file_share") | Some("thread_broadcast") | Some("me_message")
    )
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
