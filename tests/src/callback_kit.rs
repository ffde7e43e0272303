//! Helpers for Easemob callback tests: signed callback bodies, echo loops.
//!
//! Callbacks are built the way Easemob sends them (docs/design.md §3 "Callback"):
//! `to`/`from` user names lower-cased, `timestamp` in milliseconds (now),
//! `callId` = `<App Key>_<msg_id>`, and `security` = MD5 of
//! `callId + secret + timestamp` with the documented local secret. Bot posts the fake Slack accepted can be turned back into
//! the message events Slack would emit for them.

use kefu_bridge::clock::{now_epoch_millis, now_epoch_secs};
use kefu_bridge::dynamo::item::{num_attr, str_attr};
use kefu_bridge::http_types::{HttpRequest, HttpResponse};
use kefu_bridge::relay;
use kefu_bridge::store::WorkspaceKey;
use serde_json::{json, Value};

use crate::app::{event_callback, TestApp, APP_ID};
use crate::signing::{
    local_easemob_app_key, sign_easemob_callback, LOCAL_EASEMOB_CALLBACK_SECRET,
    LOCAL_EASEMOB_SERVICE_NUMBER,
};

/// The agent every reply comes from unless a test says otherwise.
pub const AGENT_NAME: &str = "Alice Agent";
/// As Kefu sends it: protocol-relative.
pub const AGENT_AVATAR: &str = "//kefu.example.com/ossimages/alice.png";
/// What Slack must be given for it.
pub const AGENT_AVATAR_URL: &str = "https://kefu.example.com/ossimages/alice.png";

impl TestApp {
    /// Delivers a callback body to `easemob-callback` as Easemob POSTs it.
    pub async fn easemob_callback(&self, body: &Value) -> HttpResponse {
        let request = callback_request(body.to_string().as_bytes(), "application/json");
        relay::easemob_callback::handle(&self.bridge, &request).await
    }

    /// Ages the recall record of Kefu message `msg_id` past its 7 days, as
    /// if they had passed (DynamoDB's TTL deletes lazily; the store checks
    /// `expires_at` on read). Written to the table directly, like
    /// `make_due`, so the scenario needs no waiting.
    pub async fn expire_slack_posts(&self, workspace: &WorkspaceKey, msg_id: &str) {
        self.bridge
            .store
            .db()
            .update_item()
            .table_name(&self.table)
            .key("pk", str_attr(workspace.pk()))
            .key("sk", str_attr(format!("KEFU_MSG#{msg_id}")))
            .update_expression("SET expires_at = :past")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":past", num_attr(now_epoch_secs() - 1))
            .send()
            .await
            .expect("a recall record to expire");
    }
}

/// `POST /easemob/callback` with `body` as is.
pub fn callback_request(body: &[u8], content_type: &str) -> HttpRequest {
    let mut request = HttpRequest {
        method: "POST".into(),
        path: "/easemob/callback".into(),
        body: body.to_vec(),
        ..Default::default()
    };
    request
        .headers
        .insert("content-type", content_type.parse().unwrap());
    request
}

/// Signs `callback` as Easemob signs a genuine one, with the local
/// callback secret: `callId` = `<App Key>_<msg_id>`, and `security` over it
/// and the `timestamp` (a number or a string of digits).
pub fn sign(callback: &mut Value) {
    sign_easemob_callback(callback, LOCAL_EASEMOB_CALLBACK_SECRET);
}

/// A signed message callback from `from` to `to` (both lower-cased, as
/// Easemob stores user names).
pub fn message_callback(from: &str, to: &str, msg_id: &str, bodies: Value, ext: Value) -> Value {
    let (from, to) = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
    let mut callback = json!({
        "eventType": "chat",
        "chat_type": "chat",
        "from": from,
        "to": to,
        "msg_id": msg_id,
        "timestamp": now_epoch_millis(),
        "appkey": local_easemob_app_key(),
        "host": "msync@ebs-ali-beijing-msync42",
        "payload": { "bodies": bodies, "ext": ext, "from": from, "to": to, "type": "chat" },
    });
    sign(&mut callback);
    callback
}

/// `ext` of an agent's message: who wrote it, plus Kefu's session details.
pub fn agent_ext() -> Value {
    json!({ "weichat": {
        "agent": { "userNickname": AGENT_NAME, "avatar": AGENT_AVATAR, "userId": "7a1c-agent" },
        "msgId": "5c7e-kefu-msg",
        "service_session": { "serviceSessionId": "9f3e-session", "visitorUserId": "visitor-1" },
    } })
}

/// `agent_ext()` with Kefu's own id of the message (`ext.weichat.msgId`),
/// which Kefu's recall command names.
pub fn agent_ext_with_kefu_id(kefu_msg_id: &str) -> Value {
    let mut ext = agent_ext();
    ext["weichat"]["msgId"] = json!(kefu_msg_id);
    ext
}

/// A Kefu session event as it reaches the callback: a message from the
/// service number whose `ext.weichat.event` is `{eventName, eventObj}`
/// (shapes as `easemob/kefu-webim` `channel.js` `_handleSystemEvent` reads
/// them), with an empty text body.
pub fn session_event(visitor: &str, msg_id: &str, event_name: &str, event_obj: Value) -> Value {
    let mut ext = agent_ext_with_kefu_id(&format!("kefu-{msg_id}"));
    ext["weichat"]["event"] = json!({ "eventName": event_name, "eventObj": event_obj });
    agent_message(visitor, msg_id, json!([{ "type": "txt", "msg": "" }]), ext)
}

/// `eventObj` of an opened or transferred session, as the widget reads it.
pub fn agent_event_obj(agent_name: &str) -> Value {
    json!({
        "agentUserNiceName": agent_name, "userId": "7a1c-agent", "agentType": "Agent",
        "avatar": AGENT_AVATAR, "sessionId": "9f3e-session",
    })
}

/// Kefu's recall: a `cmd` message `KEFU_MESSAGE_RECALL` whose
/// `ext.weichat.recall_msg_id` names the recalled message.
pub fn kefu_recall(visitor: &str, msg_id: &str, recalled: &str) -> Value {
    let mut ext = agent_ext();
    ext["weichat"]["recall_msg_id"] = json!(recalled);
    agent_message(
        visitor,
        msg_id,
        json!([{ "type": "cmd", "action": "KEFU_MESSAGE_RECALL" }]),
        ext,
    )
}

/// Easemob IM's recall callback: `chat_type: "recall"`, `recall_id`, and a
/// payload with no bodies (Easemob's documented example).
pub fn im_recall(visitor: &str, msg_id: &str, recalled: &str) -> Value {
    let mut callback = agent_message(visitor, msg_id, json!([]), json!({}));
    callback["chat_type"] = json!("recall");
    callback["recall_id"] = json!(recalled);
    callback["payload"]["ack_message_id"] = json!(recalled);
    callback
}

/// An agent's text reply to `visitor` (a visitor id in any case), from the
/// IM service number, signed.
pub fn agent_reply(visitor: &str, msg_id: &str, text: &str) -> Value {
    agent_message(
        visitor,
        msg_id,
        json!([{ "type": "txt", "msg": text }]),
        agent_ext(),
    )
}

/// Any agent message to `visitor`: `bodies` and `ext` as given.
pub fn agent_message(visitor: &str, msg_id: &str, bodies: Value, ext: Value) -> Value {
    message_callback(LOCAL_EASEMOB_SERVICE_NUMBER, visitor, msg_id, bodies, ext)
}

/// The same callback delivered as `chat_offline` (or another event type).
/// `eventType` is not part of `security`, so it stays signed.
pub fn as_event_type(mut callback: Value, event_type: &str) -> Value {
    callback["eventType"] = json!(event_type);
    callback
}

/// A visitor's own message coming back, as Easemob calls back for every
/// message: `from` = the visitor lower-cased, `to` = the service number.
pub fn visitor_echo(visitor: &str, msg_id: &str, text: &str) -> Value {
    message_callback(
        visitor,
        LOCAL_EASEMOB_SERVICE_NUMBER,
        msg_id,
        json!([{ "type": "txt", "msg": text }]),
        json!({ "weichat": { "visitor": { "userNickname": "echo" } } }),
    )
}

/// The callback Easemob makes for a message the fake Easemob accepted (a
/// request body as the bridge sent it to `/messages`).
pub fn echo_of_sent(sent: &Value, msg_id: &str) -> Value {
    message_callback(
        sent["from"].as_str().expect("from"),
        sent["target"][0].as_str().expect("target"),
        msg_id,
        json!([sent["msg"].clone()]),
        sent["ext"].clone(),
    )
}

/// `channel_type` of a Slack channel id.
pub fn channel_type(channel: &str) -> &'static str {
    match channel.chars().next() {
        Some('D') => "im",
        Some('G') => "group",
        _ => "channel",
    }
}

/// The Slack events a bot post comes back as: the message event (from the
/// bot user, with `bot_id`, `app_id` and `bot_profile`), the legacy
/// `bot_message` shape (what a post with `username` looks like), and a
/// `message_changed` wrapping it (Slack edits posts when it unfurls them).
/// Each is wrapped in an `event_callback` envelope with a fresh event id.
pub fn slack_echoes_of_post(post: &Value, event_id_prefix: &str) -> Vec<Value> {
    let team = post["team_id"].as_str().expect("team_id");
    let channel = post["channel"].as_str().expect("channel");
    let ts = post["ts"].as_str().expect("ts");
    let mut message = json!({
        "type": "message",
        "channel": channel,
        "channel_type": channel_type(channel),
        "user": post["bot_user_id"],
        "bot_id": post["bot_id"],
        "app_id": APP_ID,
        "bot_profile": { "id": post["bot_id"], "app_id": APP_ID, "name": "kefu", "team_id": team },
        "text": post["text"],
        "ts": ts,
        "event_ts": ts,
    });
    if let Some(thread) = post["thread_ts"].as_str() {
        message["thread_ts"] = json!(thread);
    }
    let mut legacy = json!({
        "type": "message",
        "subtype": "bot_message",
        "channel": channel,
        "channel_type": channel_type(channel),
        "bot_id": post["bot_id"],
        "username": post["username"],
        "text": post["text"],
        "ts": ts,
    });
    if let Some(thread) = post["thread_ts"].as_str() {
        legacy["thread_ts"] = json!(thread);
    }
    let changed = json!({
        "type": "message",
        "subtype": "message_changed",
        "hidden": true,
        "channel": channel,
        "channel_type": channel_type(channel),
        "message": message.clone(),
        "previous_message": message.clone(),
        "ts": format!("{ts}1"),
        "event_ts": format!("{ts}1"),
    });
    [message, legacy, changed]
        .into_iter()
        .enumerate()
        .map(|(i, event)| event_callback(team, &format!("{event_id_prefix}-{ts}-{i}"), event))
        .collect()
}
