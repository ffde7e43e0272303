//! Helpers for rich-conversation tests: signed interactivity requests
//! (form bodies with a `payload` field, as Slack sends them), clicks built
//! from the very blocks the bridge posted, the comment modal's submission,
//! and `file_share` events.

use kefu_bridge::http_types::{HttpRequest, HttpResponse};
use kefu_bridge::relay;
use serde_json::{json, Value};

use crate::app::TestApp;
use crate::signing::{signed_slack_request, LOCAL_SLACK_SIGNING_SECRET};

pub const INTERACTIVITY_PATH: &str = "/slack/interactivity";

/// `payload=<json>`, form-encoded.
pub fn form_body(payload: &Value) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
        .into_bytes()
}

/// `POST /slack/interactivity`, signed now with the local secret.
pub fn interaction_request(payload: &Value) -> HttpRequest {
    signed_slack_request(
        LOCAL_SLACK_SIGNING_SECRET,
        INTERACTIVITY_PATH,
        "application/x-www-form-urlencoded",
        &form_body(payload),
    )
}

impl TestApp {
    /// Delivers an interactivity payload to `slack-events`' interactivity
    /// route, signed as Slack signs it.
    pub async fn interaction(&self, payload: &Value) -> HttpResponse {
        relay::interactivity::handle(&self.bridge, &interaction_request(payload)).await
    }
}

/// The button with `action_id` in a posted message, and its block's id.
pub fn find_button(message: &Value, action_id: &str) -> Option<(Value, String)> {
    message["blocks"].as_array()?.iter().find_map(|block| {
        let button = block["elements"]
            .as_array()?
            .iter()
            .find(|e| e["action_id"] == action_id)?;
        Some((
            button.clone(),
            block["block_id"].as_str().unwrap_or("").to_string(),
        ))
    })
}

/// The `block_actions` payload Slack sends when `user` of `team` clicks
/// the button `action_id` of `message` (a post the fake Slack recorded,
/// with its `channel`, `ts` and `blocks`).
pub fn click(team: &str, user: &str, message: &Value, action_id: &str) -> Value {
    let (button, block_id) = find_button(message, action_id)
        .unwrap_or_else(|| panic!("no button {action_id} in {message}"));
    let channel = message["channel"].as_str().expect("channel");
    let ts = message["ts"].as_str().expect("ts");
    let mut container = json!({
        "type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false
    });
    let mut in_message = json!({
        "type": "message", "subtype": "bot_message", "text": message["text"], "ts": ts,
        "bot_id": message["bot_id"], "blocks": message["blocks"],
    });
    if let Some(thread) = message["thread_ts"].as_str() {
        container["thread_ts"] = json!(thread);
        in_message["thread_ts"] = json!(thread);
    }
    json!({
        "type": "block_actions",
        "user": { "id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": team },
        "api_app_id": crate::app::APP_ID,
        "token": "legacy-verification-token",
        "container": container,
        "trigger_id": format!("1337.42.{}", ts.replace('.', "")),
        "team": { "id": team, "domain": team.to_lowercase() },
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": { "id": channel, "name": if channel.starts_with('D') { "directmessage" } else { "support" } },
        "message": in_message,
        "state": { "values": {} },
        "response_url": format!("https://hooks.slack.com/actions/{team}/1/x"),
        "actions": [{
            "type": "button",
            "action_id": action_id,
            "block_id": block_id,
            "text": button["text"],
            "value": button["value"],
            "action_ts": "1700000099.000100",
        }],
    })
}

/// The `view_submission` Slack sends when `user` submits the modal `view`
/// (as the bridge opened it) with a rating and a comment.
pub fn submit_rating(team: &str, user: &str, view: &Value, score: u8, comment: &str) -> Value {
    let rating_block = view["blocks"][0]["block_id"].as_str().unwrap_or("");
    let rating_action = view["blocks"][0]["element"]["action_id"]
        .as_str()
        .unwrap_or("");
    let comment_block = view["blocks"][1]["block_id"].as_str().unwrap_or("");
    let comment_action = view["blocks"][1]["element"]["action_id"]
        .as_str()
        .unwrap_or("");
    let wanted = score.to_string();
    let option = view["blocks"][0]["element"]["options"]
        .as_array()
        .and_then(|options| {
            options
                .iter()
                .find(|o| o["value"] == wanted.as_str())
                .cloned()
        })
        .unwrap_or(json!({ "value": wanted }));
    json!({
        "type": "view_submission",
        "team": { "id": team, "domain": team.to_lowercase() },
        "user": { "id": user, "username": user.to_lowercase(), "team_id": team },
        "api_app_id": crate::app::APP_ID,
        "trigger_id": "1337.42.view",
        "view": {
            "id": "V0VIEW1", "team_id": team, "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "blocks": view["blocks"],
            "state": { "values": {
                rating_block: { rating_action: { "type": "radio_buttons", "selected_option": option } },
                comment_block: { comment_action: { "type": "plain_text_input", "value": comment } },
            } },
        },
    })
}

/// A `file_share` message event carrying `files` (file objects as the fake
/// Slack's `add_file` returns them).
pub fn file_share(
    channel: &str,
    channel_type: &str,
    user: &str,
    text: &str,
    ts: &str,
    files: Vec<Value>,
) -> Value {
    json!({
        "type": "message", "subtype": "file_share", "channel": channel, "user": user,
        "text": text, "ts": ts, "event_ts": ts, "channel_type": channel_type,
        "upload": false, "display_as_bot": false, "files": files,
    })
}

/// Bytes that look like a PNG (the signature), then `len` more, varied.
pub fn png_bytes(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..len).map(|i| (i * 31 % 251) as u8));
    bytes
}
