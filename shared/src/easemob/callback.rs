//! Easemob message callbacks: payload model and `security` check (docs/design.md §3 "Callback").
//!
//! Easemob POSTs every message of the app to the callback URL — the agents'
//! replies, but also the messages the bridge itself sent as visitors — and
//! bans an endpoint that keeps failing. So the model is tolerant: unknown
//! body types and fields parse (as [`MessageBody::Other`] or not at all),
//! and odd shapes inside `ext` become "absent" instead of failing the whole
//! callback. Only a body whose outline is wrong (`payload` not an object,
//! `bodies` not a list…) fails to parse.

use md5::{Digest, Md5};
use serde::{de::DeserializeOwned, Deserialize, Deserializer};
use serde_json::Value;

use crate::secret::Secret;

/// How old a genuine callback may be: Easemob retries once, at once, so a
/// day is generous; it must not exceed how long a delivered `msg_id` stays
/// claimed (`store::claims::CLAIM_TTL_SECS`), or a replay could post again.
pub const MAX_AGE_MILLIS: i64 = 24 * 3_600 * 1_000;
/// How far ahead of this clock a genuine callback may be dated (clock skew).
pub const MAX_AHEAD_MILLIS: i64 = 5 * 60 * 1_000;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SecurityError {
    /// Missing or empty `security`: refused like a wrong one (docs/design.md §3).
    #[error("callback has no security field")]
    Missing,
    /// Without `callId` and a whole-number `timestamp` there is nothing to
    /// check against.
    #[error("callback lacks callId or a numeric timestamp, so it cannot be checked")]
    Unverifiable,
    #[error("callback security does not match")]
    Mismatch,
    /// This function was given no callback secret (it serves no
    /// callbacks): nothing verifies, rather than an empty key.
    #[error("no callback secret is configured for this function")]
    NoSecret,
    /// `callId` is not `<App Key>_<msg_id>` of this app and this message: a
    /// captured signature reused for another message (or another app's).
    #[error("callId is not <App Key>_<msg_id> of this app and message")]
    CallIdMismatch,
    #[error("callback timestamp is more than 24 hours old")]
    TooOld,
    #[error("callback timestamp is more than 5 minutes ahead")]
    FromTheFuture,
}

impl SecurityError {
    /// The outcome in the handler's log line.
    pub fn outcome(&self) -> &'static str {
        match self {
            SecurityError::Missing
            | SecurityError::Unverifiable
            | SecurityError::Mismatch
            | SecurityError::NoSecret => "security_rejected",
            SecurityError::CallIdMismatch => "call_id_not_for_this_message",
            SecurityError::TooOld => "callback_too_old",
            SecurityError::FromTheFuture => "callback_from_the_future",
        }
    }
}

/// Checks that a callback document is genuine and current
/// (docs/design.md §3 "Callback"): its `security`, then — because
/// `security` covers neither `msg_id` nor the payload — that `callId` is
/// `<app_key>_<msg_id>` for its own `msg_id`, and that `timestamp` lies
/// within [`MAX_AGE_MILLIS`] before and [`MAX_AHEAD_MILLIS`] after
/// `now_millis`. So a captured signature carries no other message, and a
/// genuine callback cannot be replayed once its claim may have expired.
pub fn verify_callback(
    document: &Value,
    secret: &Secret,
    app_key: &str,
    now_millis: i64,
) -> Result<(), SecurityError> {
    verify_security(document, secret)?;
    let call_id = document
        .get("callId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let msg_id = document.get("msg_id").map(value_text).unwrap_or_default();
    if !is_call_id_of(call_id, app_key, &msg_id) {
        return Err(SecurityError::CallIdMismatch);
    }
    let timestamp: i64 = document
        .get("timestamp")
        .and_then(timestamp_text)
        .and_then(|text| text.parse().ok())
        .ok_or(SecurityError::Unverifiable)?;
    // Checked: a hostile timestamp near the ends of `i64` must not wrap into
    // the window (or panic a debug build).
    match now_millis.checked_sub(timestamp) {
        Some(age) if age > MAX_AGE_MILLIS => Err(SecurityError::TooOld),
        Some(age) if age < -MAX_AHEAD_MILLIS => Err(SecurityError::FromTheFuture),
        Some(_) => Ok(()),
        None if timestamp > now_millis => Err(SecurityError::FromTheFuture),
        None => Err(SecurityError::TooOld),
    }
}

/// `call_id` is exactly `<app_key>_<msg_id>`. The App Key is compared
/// without regard to ASCII case (Easemob treats org and app names, like
/// user names, case-insensitively, and the key is no secret); `msg_id`,
/// which binds the signature to one message, exactly.
fn is_call_id_of(call_id: &str, app_key: &str, msg_id: &str) -> bool {
    let (call_id, app_key) = (call_id.as_bytes(), app_key.as_bytes());
    call_id.len() == app_key.len() + 1 + msg_id.len()
        && call_id[..app_key.len()].eq_ignore_ascii_case(app_key)
        && call_id[app_key.len()] == b'_'
        && &call_id[app_key.len() + 1..] == msg_id.as_bytes()
}

/// Easemob's `security`: lower-case hex MD5 of `callId + secret + timestamp`
/// (plain string concatenation, timestamp in decimal milliseconds).
pub fn security(call_id: &str, secret: &str, timestamp: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(call_id.as_bytes());
    md5.update(secret.as_bytes());
    md5.update(timestamp.as_bytes());
    hex::encode(md5.finalize())
}

/// Checks the `security` of a callback document (only: see
/// [`verify_callback`] for everything a genuine callback must match).
///
/// Works on the parsed JSON rather than the typed [`Callback`], so a forged
/// request is refused (401) whatever else is wrong with it, and so the
/// timestamp is hashed exactly as it arrived (number or string).
pub fn verify_security(document: &Value, secret: &Secret) -> Result<(), SecurityError> {
    if secret.expose().is_empty() {
        return Err(SecurityError::NoSecret);
    }
    let given = document
        .get("security")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SecurityError::Missing)?;
    let call_id = document
        .get("callId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(SecurityError::Unverifiable)?;
    let timestamp = document
        .get("timestamp")
        .and_then(timestamp_text)
        .ok_or(SecurityError::Unverifiable)?;
    let expected = security(call_id, secret.expose(), &timestamp);
    // Hex is case-insensitive; Easemob sends lower case.
    if constant_time_eq(expected.as_bytes(), given.to_ascii_lowercase().as_bytes()) {
        Ok(())
    } else {
        Err(SecurityError::Mismatch)
    }
}

/// The timestamp as the decimal text Easemob hashed: a JSON string as is, a
/// JSON number as an integer.
fn timestamp_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                Some(i.to_string())
            } else if let Some(i) = n.as_i64() {
                Some(i.to_string())
            } else {
                // `1.6e12` style: only whole numbers are timestamps.
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| format!("{}", f as i64))
            }
        }
        _ => None,
    }
}

/// Compares without an early exit, so the time taken does not tell a forger
/// how many leading characters were right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One Easemob message callback.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Callback {
    #[serde(rename = "callId", default, deserialize_with = "text")]
    pub call_id: String,
    /// `chat` or `chat_offline` for messages; other events are not messages.
    #[serde(rename = "eventType", default, deserialize_with = "text")]
    pub event_type: String,
    #[serde(default, deserialize_with = "text")]
    pub chat_type: String,
    /// The sender: the IM service number for agent messages.
    #[serde(default, deserialize_with = "text")]
    pub from: String,
    /// The recipient: for agent messages, the (lower-cased) visitor id.
    #[serde(default, deserialize_with = "text")]
    pub to: String,
    #[serde(default, deserialize_with = "text")]
    pub msg_id: String,
    /// Epoch milliseconds; may arrive as a number or a string.
    #[serde(default, deserialize_with = "millis")]
    pub timestamp: Option<i64>,
    #[serde(default, deserialize_with = "text")]
    pub appkey: String,
    #[serde(default, deserialize_with = "null_default")]
    pub payload: Payload,
    /// With `chat_type: "recall"`: the `msg_id` of the message taken back
    /// (docs/design.md §3 "Callback", recalls).
    #[serde(default, deserialize_with = "text")]
    pub recall_id: String,
}

impl Callback {
    /// The typed callback from an already verified document.
    pub fn parse(document: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(document)
    }

    /// `chat` and `chat_offline` both carry a message (the same one may come
    /// as both: deduplicate on `msg_id`).
    pub fn is_message(&self) -> bool {
        matches!(self.event_type.as_str(), "chat" | "chat_offline")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Payload {
    #[serde(default, deserialize_with = "null_default")]
    pub bodies: Vec<MessageBody>,
    #[serde(default, deserialize_with = "object")]
    pub ext: Ext,
}

/// One body of a message. Unknown types are kept by name, never an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    Text {
        msg: String,
    },
    Image(FileBody),
    File(FileBody),
    Audio(FileBody),
    Video(FileBody),
    Location {
        addr: String,
    },
    /// `KF-ACK`, recalls, transfers…: control messages, never shown.
    Command {
        action: String,
    },
    Other {
        kind: String,
    },
}

/// `img`, `file`, `audio` and `video` bodies (docs/design.md §3 "Files").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileBody {
    pub url: String,
    pub filename: String,
    /// The file's `share-secret`: lets anyone holding it download the file.
    pub secret: Option<Secret>,
    pub file_length: Option<u64>,
}

impl<'de> Deserialize<'de> for MessageBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let field = |name: &str| value.get(name).map(value_text).unwrap_or_default();
        let file = || FileBody {
            url: field("url"),
            filename: field("filename"),
            secret: Some(field("secret"))
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            file_length: value.get("file_length").and_then(Value::as_u64),
        };
        Ok(match field("type").as_str() {
            "txt" => MessageBody::Text { msg: field("msg") },
            "img" => MessageBody::Image(file()),
            "file" => MessageBody::File(file()),
            "audio" => MessageBody::Audio(file()),
            "video" => MessageBody::Video(file()),
            "loc" => MessageBody::Location {
                addr: field("addr"),
            },
            "cmd" => MessageBody::Command {
                action: field("action"),
            },
            kind => MessageBody::Other {
                kind: kind.to_string(),
            },
        })
    }
}

/// The parts of `payload.ext` Kefu uses (shapes as `easemob/kefu-webim`
/// reads them). Every field is optional and tolerant of odd types.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Ext {
    #[serde(default, deserialize_with = "object")]
    pub weichat: Weichat,
    #[serde(default, deserialize_with = "object")]
    pub msgtype: MsgType,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Weichat {
    #[serde(default, deserialize_with = "object")]
    pub agent: Option<Agent>,
    /// `inviteEnquiry`, `TransferToKfHint`, `enquiry`…
    #[serde(rename = "ctrlType", default, deserialize_with = "text")]
    pub ctrl_type: String,
    #[serde(rename = "ctrlArgs", default)]
    pub ctrl_args: Value,
    /// A session event (`ServiceSessionOpenedEvent`…), see
    /// [`SessionEvent`](super::session_event::SessionEvent).
    #[serde(default, deserialize_with = "object")]
    pub event: Option<EventExt>,
    /// Kefu's own id of this message; the widget names a message by it when
    /// an agent recalls it (`KEFU_MESSAGE_RECALL`).
    #[serde(rename = "msgId", default, deserialize_with = "text")]
    pub msg_id: String,
    /// With a `KEFU_MESSAGE_RECALL` command: the message taken back.
    #[serde(default, deserialize_with = "text")]
    pub recall_msg_id: String,
}

/// `ext.weichat.event`: `{eventName, eventObj}`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct EventExt {
    #[serde(rename = "eventName", default, deserialize_with = "text")]
    pub event_name: String,
    #[serde(rename = "eventObj", default, deserialize_with = "object")]
    pub event_obj: EventObj,
}

/// The parts of `eventObj` the bridge shows: the agent who took (or was
/// handed) the conversation. Kefu's widget reads `agentUserNiceName`;
/// `userNickname` is the name `ext.weichat.agent` uses.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct EventObj {
    #[serde(rename = "agentUserNiceName", default, deserialize_with = "text")]
    pub agent_user_nice_name: String,
    #[serde(rename = "userNickname", default, deserialize_with = "text")]
    pub user_nickname: String,
}

/// The agent who wrote the message (`ext.weichat.agent`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Agent {
    #[serde(rename = "userNickname", default, deserialize_with = "text")]
    pub user_nickname: String,
    /// May be protocol-relative (`//host/…`).
    #[serde(default, deserialize_with = "text")]
    pub avatar: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MsgType {
    #[serde(default, deserialize_with = "object")]
    pub choice: Option<Choice>,
}

/// A robot menu (`ext.msgtype.choice`): a menu only when `mode` is absent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Choice {
    #[serde(default, deserialize_with = "text")]
    pub title: String,
    #[serde(default, deserialize_with = "lenient")]
    pub items: Vec<ChoiceItem>,
    #[serde(default)]
    pub mode: Option<Value>,
}

impl Choice {
    pub fn is_menu(&self) -> bool {
        self.mode.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChoiceItem {
    /// The id as text (for Slack button values).
    pub id: String,
    pub name: String,
    /// The id exactly as Kefu sent it (string or number): the answer's
    /// `menuid` echoes it unchanged.
    pub raw_id: Value,
}

impl<'de> Deserialize<'de> for ChoiceItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let field = |name: &str| value.get(name).map(value_text).unwrap_or_default();
        Ok(ChoiceItem {
            id: field("id"),
            name: field("name"),
            raw_id: value.get("id").cloned().unwrap_or(Value::Null),
        })
    }
}

/// Strings, numbers and booleans as text; anything else as empty.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(value_text(&Value::deserialize(deserializer)?))
}

fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// `null` as the default; any other shape must be right.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An object that does not fit `T`, or anything but an object, becomes the
/// default (serde would otherwise read a struct from a JSON array).
fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(match Value::deserialize(deserializer)? {
        value @ Value::Object(_) => serde_json::from_value(value).unwrap_or_default(),
        _ => T::default(),
    })
}

/// Whatever does not fit `T` becomes its default: Kefu extras are optional
/// decoration and must never cost the message itself.
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Hand-computed with Python:
    /// `hashlib.md5(b"easemob-demo#chatdemoui_1094483487342741948" + b"my-callback-secret" + b"1600060847294").hexdigest()`
    const EXPECTED: &str = "0c440f012221163c4c446efa72e60b83";

    fn document(timestamp: Value, security: Value) -> Value {
        json!({
            "callId": "easemob-demo#chatdemoui_1094483487342741948",
            "eventType": "chat",
            "chat_type": "chat",
            "timestamp": timestamp,
            "security": security,
            "from": "kefuchannelimid_1",
            "to": "t0123abc_u0456def_d0789ghi",
            "msg_id": "1094483487342741948",
            "appkey": "easemob-demo#chatdemoui",
            "payload": { "bodies": [{ "type": "txt", "msg": "hello" }], "ext": {} }
        })
    }

    fn secret() -> Secret {
        Secret::new("my-callback-secret")
    }

    #[test]
    fn security_matches_a_hand_computed_md5() {
        assert_eq!(
            security(
                "easemob-demo#chatdemoui_1094483487342741948",
                "my-callback-secret",
                "1600060847294"
            ),
            EXPECTED
        );
    }

    #[test]
    fn timestamp_may_arrive_as_number_or_string() {
        let as_number = document(json!(1_600_060_847_294_u64), json!(EXPECTED));
        let as_string = document(json!("1600060847294"), json!(EXPECTED));
        assert_eq!(verify_security(&as_number, &secret()), Ok(()));
        assert_eq!(verify_security(&as_string, &secret()), Ok(()));
        assert_eq!(
            Callback::parse(as_number).unwrap().timestamp,
            Some(1_600_060_847_294)
        );
        assert_eq!(
            Callback::parse(as_string).unwrap().timestamp,
            Some(1_600_060_847_294)
        );
    }

    #[test]
    fn upper_case_hex_is_the_same_digest() {
        let doc = document(json!(1_600_060_847_294_u64), json!(EXPECTED.to_uppercase()));
        assert_eq!(verify_security(&doc, &secret()), Ok(()));
    }

    #[test]
    fn wrong_missing_and_empty_security_are_refused() {
        let ts = json!(1_600_060_847_294_u64);
        let wrong = document(ts.clone(), json!("0c440f012221163c4c446efa72e60b84"));
        assert_eq!(
            verify_security(&wrong, &secret()),
            Err(SecurityError::Mismatch)
        );
        assert_eq!(
            verify_security(
                &document(ts.clone(), json!(EXPECTED)),
                &Secret::new("other")
            ),
            Err(SecurityError::Mismatch)
        );
        assert_eq!(
            verify_security(&document(ts.clone(), json!("")), &secret()),
            Err(SecurityError::Missing)
        );
        assert_eq!(
            verify_security(&document(ts.clone(), Value::Null), &secret()),
            Err(SecurityError::Missing)
        );
        let mut no_call_id = document(ts.clone(), json!(EXPECTED));
        no_call_id.as_object_mut().unwrap().remove("callId");
        assert_eq!(
            verify_security(&no_call_id, &secret()),
            Err(SecurityError::Unverifiable)
        );
        // A changed timestamp changes the digest.
        let later = document(json!(1_600_060_847_295_u64), json!(EXPECTED));
        assert_eq!(
            verify_security(&later, &secret()),
            Err(SecurityError::Mismatch)
        );
    }

    const APP_KEY: &str = "easemob-demo#chatdemoui";
    /// `document`'s timestamp, so the window is centred on it.
    const NOW: i64 = 1_600_060_847_294;

    #[test]
    fn a_genuine_callback_verifies_within_its_window() {
        let doc = document(json!(NOW), json!(EXPECTED));
        for now in [NOW, NOW + MAX_AGE_MILLIS, NOW - MAX_AHEAD_MILLIS] {
            assert_eq!(verify_callback(&doc, &secret(), APP_KEY, now), Ok(()));
        }
        assert_eq!(
            verify_callback(&doc, &secret(), "EASEMOB-DEMO#ChatDemoUI", NOW),
            Ok(())
        );
    }

    #[test]
    fn a_captured_signature_on_another_message_or_app_is_refused() {
        let mut other_msg = document(json!(NOW), json!(EXPECTED));
        other_msg["msg_id"] = json!("1094483487342749999");
        assert_eq!(
            verify_callback(&other_msg, &secret(), APP_KEY, NOW),
            Err(SecurityError::CallIdMismatch)
        );
        let mut as_number = document(json!(NOW), json!(EXPECTED));
        as_number["msg_id"] = json!(1_094_483_487_342_741_948_u64);
        assert_eq!(verify_callback(&as_number, &secret(), APP_KEY, NOW), Ok(()));
        let doc = document(json!(NOW), json!(EXPECTED));
        for app_key in ["easemob-demo#other", "easemob-demo#chatdemou", ""] {
            assert_eq!(
                verify_callback(&doc, &secret(), app_key, NOW),
                Err(SecurityError::CallIdMismatch),
                "{app_key}"
            );
        }
        let mut no_msg_id = document(json!(NOW), json!(EXPECTED));
        no_msg_id.as_object_mut().unwrap().remove("msg_id");
        assert_eq!(
            verify_callback(&no_msg_id, &secret(), APP_KEY, NOW),
            Err(SecurityError::CallIdMismatch)
        );
    }

    #[test]
    fn stale_future_and_extreme_timestamps_are_refused_without_overflow() {
        let doc = document(json!(NOW), json!(EXPECTED));
        assert_eq!(
            verify_callback(&doc, &secret(), APP_KEY, NOW + MAX_AGE_MILLIS + 1),
            Err(SecurityError::TooOld)
        );
        assert_eq!(
            verify_callback(&doc, &secret(), APP_KEY, NOW - MAX_AHEAD_MILLIS - 1),
            Err(SecurityError::FromTheFuture)
        );
        let signed_at = |timestamp: Value, text: &str| {
            let call_id = "easemob-demo#chatdemoui_1094483487342741948";
            document(
                timestamp,
                json!(security(call_id, "my-callback-secret", text)),
            )
        };
        for (timestamp, text, now, expected) in [
            (
                json!(i64::MIN),
                i64::MIN.to_string(),
                NOW,
                SecurityError::TooOld,
            ),
            (
                json!(i64::MAX),
                i64::MAX.to_string(),
                NOW,
                SecurityError::FromTheFuture,
            ),
            (
                json!(i64::MIN),
                i64::MIN.to_string(),
                i64::MAX,
                SecurityError::TooOld,
            ),
            (
                json!(i64::MAX),
                i64::MAX.to_string(),
                i64::MIN,
                SecurityError::FromTheFuture,
            ),
            (
                json!(u64::MAX),
                u64::MAX.to_string(),
                NOW,
                SecurityError::Unverifiable,
            ),
            (json!("-1"), "-1".to_string(), NOW, SecurityError::TooOld),
        ] {
            let doc = signed_at(timestamp, &text);
            assert_eq!(
                verify_callback(&doc, &secret(), APP_KEY, now),
                Err(expected),
                "{text} at {now}"
            );
        }
    }

    #[test]
    fn an_empty_callback_secret_verifies_nothing() {
        let call_id = "easemob-demo#chatdemoui_1094483487342741948";
        let doc = document(json!(NOW), json!(security(call_id, "", &NOW.to_string())));
        assert_eq!(
            verify_callback(&doc, &Secret::new(""), APP_KEY, NOW),
            Err(SecurityError::NoSecret)
        );
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn an_agent_reply_parses_with_its_kefu_extras() {
        let callback = Callback::parse(json!({
            "callId": "org#app_1", "eventType": "chat_offline", "chat_type": "chat",
            "from": "kefuchannelimid_1", "to": "t1_u1_d1", "msg_id": 1094483487342741948_u64,
            "timestamp": "1600060847294", "appkey": "org#app", "host": "msync@ebs",
            "payload": {
                "bodies": [
                    { "type": "txt", "msg": "Pick one" },
                    { "type": "img", "url": "https://a1.easemob.com/org/app/chatfiles/u1", "filename": "photo.jpg", "secret": "s3cr3t", "size": { "width": 10, "height": 10 }, "file_length": 2048 },
                    { "type": "cmd", "action": "KF-ACK" },
                    { "type": "brand_new", "whatever": [1, 2] }
                ],
                "ext": { "weichat": {
                    "agent": { "userNickname": "Alice", "avatar": "//kefu.easemob.com/a.png", "userId": "x" },
                    "ctrlType": "inviteEnquiry", "ctrlArgs": { "inviteId": 7 },
                    "msgId": "m1"
                }, "msgtype": { "choice": { "title": "Menu", "items": [{ "id": 1, "name": "Orders" }, { "id": "2", "name": "Refunds" }] } } }
            }
        }))
        .unwrap();
        assert!(callback.is_message());
        assert_eq!(callback.msg_id, "1094483487342741948");
        assert_eq!(callback.timestamp, Some(1_600_060_847_294));
        let bodies = &callback.payload.bodies;
        assert_eq!(
            bodies[0],
            MessageBody::Text {
                msg: "Pick one".into()
            }
        );
        let MessageBody::Image(image) = &bodies[1] else {
            panic!("not an image: {:?}", bodies[1])
        };
        assert_eq!(image.filename, "photo.jpg");
        assert_eq!(image.file_length, Some(2048));
        assert_eq!(image.secret.as_ref().map(Secret::expose), Some("s3cr3t"));
        assert_eq!(
            bodies[2],
            MessageBody::Command {
                action: "KF-ACK".into()
            }
        );
        assert_eq!(
            bodies[3],
            MessageBody::Other {
                kind: "brand_new".into()
            }
        );
        let ext = &callback.payload.ext;
        assert_eq!(
            ext.weichat.agent,
            Some(Agent {
                user_nickname: "Alice".into(),
                avatar: "//kefu.easemob.com/a.png".into()
            })
        );
        assert_eq!(ext.weichat.ctrl_type, "inviteEnquiry");
        let choice = ext.msgtype.choice.as_ref().unwrap();
        assert!(choice.is_menu());
        assert_eq!(choice.title, "Menu");
        assert_eq!(
            choice.items[0],
            ChoiceItem {
                id: "1".into(),
                name: "Orders".into(),
                raw_id: json!(1),
            }
        );
    }

    #[test]
    fn odd_ext_shapes_are_dropped_not_fatal() {
        let callback = Callback::parse(json!({
            "eventType": "chat", "from": "a", "to": "b", "msg_id": "1",
            "payload": { "bodies": [{ "type": "txt", "msg": "hi" }],
                         "ext": { "weichat": "not an object", "msgtype": { "choice": [1] } } }
        }))
        .unwrap();
        assert!(callback.payload.ext.weichat.agent.is_none());
        assert!(callback.payload.ext.msgtype.choice.is_none());
        let no_ext = Callback::parse(
            json!({ "eventType": "chat", "payload": { "bodies": [], "ext": null } }),
        );
        assert!(no_ext.is_ok());
        let mode = Callback::parse(json!({ "payload": { "ext": { "msgtype": { "choice": { "mode": "transferManualGuide", "title": "t" } } } } }))
            .unwrap();
        assert!(!mode.payload.ext.msgtype.choice.unwrap().is_menu());
    }

    #[test]
    fn a_wrong_outline_is_an_error() {
        assert!(Callback::parse(json!({ "payload": "text" })).is_err());
        assert!(Callback::parse(json!({ "payload": { "bodies": "x" } })).is_err());
        assert!(!Callback::parse(json!({ "eventType": "user_status" }))
            .unwrap()
            .is_message());
    }
}
