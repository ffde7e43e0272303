//! The sample events in `events/`: finding them and re-signing them.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::signing::{sign_easemob_callback, slack_signature};

/// Every `*.json` under `root`, sorted.
pub fn sample_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The raw body bytes of an API Gateway v2 event (decoding base64).
pub fn body_bytes(event: &Value) -> Vec<u8> {
    let body = event["body"].as_str().unwrap_or("");
    if event["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    }
}

/// Re-signs `event` in place for the time `now` (epoch seconds): Slack
/// requests get a fresh timestamp and signature; Easemob callbacks a fresh
/// timestamp, their genuine `callId` and a `security` for
/// `easemob_secret`. Returns what was done.
pub fn resign(
    event: &mut Value,
    slack_secret: &str,
    easemob_secret: &str,
    now: i64,
) -> &'static str {
    let is_slack = event["headers"].get("x-slack-signature").is_some();
    let is_easemob = event["rawPath"]
        .as_str()
        .is_some_and(|p| p.ends_with("/easemob/callback"));
    if is_slack {
        let body = body_bytes(event);
        event["headers"]["x-slack-request-timestamp"] = Value::String(now.to_string());
        event["headers"]["x-slack-signature"] =
            Value::String(slack_signature(slack_secret, now, &body));
        return "slack signed";
    }
    if is_easemob {
        let body = body_bytes(event);
        let Ok(mut callback) = serde_json::from_slice::<Value>(&body) else {
            return "unparsable body";
        };
        // A fresh timestamp too: a callback older than 24 h is refused.
        callback["timestamp"] = Value::from(now.saturating_mul(1_000));
        sign_easemob_callback(&mut callback, easemob_secret);
        let text = callback.to_string();
        event["body"] = Value::String(if event["isBase64Encoded"].as_bool() == Some(true) {
            base64::engine::general_purpose::STANDARD.encode(text)
        } else {
            text
        });
        return "easemob signed";
    }
    "unsigned route"
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_bridge::secret::Secret;
    use kefu_bridge::slack::signature::SlackVerifier;

    /// Interactivity requests are Slack requests too: a form body, which
    /// API Gateway hands over base64-encoded, is signed over its decoded
    /// bytes and left as it was.
    #[test]
    fn base64_form_bodies_are_signed_over_their_decoded_bytes() {
        let form = b"payload=%7B%22type%22%3A%22block_actions%22%7D";
        let encoded = base64::engine::general_purpose::STANDARD.encode(form);
        let mut event = serde_json::json!({
            "rawPath": "/slack/interactivity", "isBase64Encoded": true, "body": encoded,
            "headers": { "content-type": "application/x-www-form-urlencoded",
                         "x-slack-request-timestamp": "1", "x-slack-signature": "v0=00" },
        });
        assert_eq!(
            resign(&mut event, "s3cret", "unused", 1_800_000_000),
            "slack signed"
        );
        assert_eq!(event["body"], encoded);
        let verifier = SlackVerifier::new(Secret::new("s3cret"));
        assert_eq!(
            verifier.verify(
                event["headers"]["x-slack-request-timestamp"].as_str(),
                event["headers"]["x-slack-signature"].as_str(),
                form,
                1_800_000_000
            ),
            Ok(())
        );
    }
}
