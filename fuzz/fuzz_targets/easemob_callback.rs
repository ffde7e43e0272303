//! `POST /easemob/callback` bodies: the security check, the typed callback,
//! the text shown in Slack, the agent identity and the posts built from it
//! (each within Slack's 4,000 characters). Nothing may panic.
#![no_main]

use kefu_bridge::easemob::callback::{verify_security, Callback};
use kefu_bridge::relay::to_slack::{build_posts, reply_text, AgentIdentity};
use kefu_bridge::secret::Secret;
use kefu_bridge::slack::markup::SLACK_MESSAGE_MAX_CHARS;
use kefu_bridge::visitor::VisitorId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = verify_security(&document, &Secret::new("fuzz-secret"));
    let Ok(callback) = Callback::parse(document) else {
        return;
    };
    let _ = callback.is_message();
    let _ = VisitorId::decode(&callback.to);
    let text = reply_text(&callback.payload);
    let agent = AgentIdentity::from_ext(&callback.payload.ext);
    for customize in [false, true] {
        let posts = build_posts(&text, &agent, customize, "C0FUZZ", Some("1.2"));
        for post in &posts {
            // The bold agent-name prefix counts: 80 characters at most.
            assert!(post.text.chars().count() <= SLACK_MESSAGE_MAX_CHARS + 90);
        }
        if text.trim().is_empty() {
            assert!(posts.is_empty());
        }
    }
});
