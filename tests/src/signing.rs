//! Requests signed the way Slack and Easemob sign them. There is no switch
//! that turns signature checks off: tests, sample events and the demo sign.

use kefu_bridge::clock::now_epoch_secs;
use kefu_bridge::http_types::HttpRequest;
use kefu_bridge::secret::Secret;
use kefu_bridge::slack::signature::SlackVerifier;
use md5::{Digest, Md5};

/// The documented local secrets (README "Configuration", `.env.example`,
/// `events/`). Never used by a deployment.
pub const LOCAL_SLACK_SIGNING_SECRET: &str = "local-slack-signing-secret";
pub const LOCAL_SLACK_CLIENT_ID: &str = "1111111111.2222222222";
pub const LOCAL_SLACK_CLIENT_SECRET: &str = "local-slack-client-secret";
pub const LOCAL_EASEMOB_ORG: &str = "local-org";
pub const LOCAL_EASEMOB_APP: &str = "local-app";
pub const LOCAL_EASEMOB_CLIENT_ID: &str = "YXA6local-client-id";
pub const LOCAL_EASEMOB_CLIENT_SECRET: &str = "YXA6local-client-secret";
pub const LOCAL_EASEMOB_SERVICE_NUMBER: &str = "kefuchannelimid_local";
pub const LOCAL_EASEMOB_CALLBACK_SECRET: &str = "local-easemob-callback-secret";

/// `X-Slack-Signature` for `body` at `timestamp`.
pub fn slack_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    SlackVerifier::new(Secret::new(secret)).sign(&timestamp.to_string(), body)
}

/// A Slack Events API request as API Gateway hands it over, signed now.
pub fn signed_slack_request(
    secret: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> HttpRequest {
    signed_slack_request_at(secret, path, content_type, body, now_epoch_secs())
}

pub fn signed_slack_request_at(
    secret: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    timestamp: i64,
) -> HttpRequest {
    let mut request = HttpRequest {
        method: "POST".into(),
        path: path.into(),
        body: body.to_vec(),
        ..Default::default()
    };
    let headers = &mut request.headers;
    headers.insert("content-type", content_type.parse().unwrap());
    headers.insert(
        "x-slack-request-timestamp",
        timestamp.to_string().parse().unwrap(),
    );
    headers.insert(
        "x-slack-signature",
        slack_signature(secret, timestamp, body).parse().unwrap(),
    );
    request
}

/// Easemob's callback `security`: lower-case hex MD5 of
/// `callId + secret + timestamp`.
/// `timestamp` as the decimal text Easemob hashes.
pub fn easemob_security(call_id: &str, secret: &str, timestamp: impl std::fmt::Display) -> String {
    hex::encode(Md5::digest(
        format!("{call_id}{secret}{timestamp}").as_bytes(),
    ))
}

/// The local App Key, `org#app`.
pub fn local_easemob_app_key() -> String {
    format!("{LOCAL_EASEMOB_ORG}#{LOCAL_EASEMOB_APP}")
}

/// Signs a callback document the way Easemob sends a genuine one:
/// `callId` = `<App Key>_<msg_id>` (docs/design.md §3 "Callback"), then
/// `security` over that `callId` and the document's `timestamp` (a number,
/// or a string of digits). A document without a usable `msg_id` keeps its
/// `callId`; one without a usable timestamp is signed as if it were 0.
pub fn sign_easemob_callback(callback: &mut serde_json::Value, secret: &str) {
    use serde_json::Value;
    let msg_id = match &callback["msg_id"] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if let Some(msg_id) = msg_id {
        callback["callId"] = Value::String(format!("{}_{msg_id}", local_easemob_app_key()));
    }
    let call_id = callback["callId"].as_str().unwrap_or("").to_string();
    let timestamp = match &callback["timestamp"] {
        Value::String(s) => s.parse().unwrap_or(0),
        other => other.as_i64().unwrap_or(0),
    };
    callback["security"] = Value::String(easemob_security(&call_id, secret, timestamp));
}
