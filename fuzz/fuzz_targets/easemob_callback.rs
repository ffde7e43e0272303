//! `POST /easemob/callback` bodies: the security check, the typed callback,
//! the agent identity and the Slack steps planned from it (text posts,
//! Kefu's questions as Block Kit, files' lines), each post within Slack's
//! 4,000 characters and 50 blocks. Nothing may panic.
#![no_main]

use kefu_bridge::easemob::callback::{verify_callback, Callback};
use kefu_bridge::easemob::session_event::SessionEvent;
use kefu_bridge::relay::recalls;
use kefu_bridge::relay::reply_parts::{self, Destination};
use kefu_bridge::relay::to_slack::AgentIdentity;
use kefu_bridge::secret::Secret;
use kefu_bridge::slack::markup::SLACK_MESSAGE_MAX_CHARS;
use kefu_bridge::store::NoticeLanguage;
use kefu_bridge::visitor::VisitorId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // Every clock, the ends of `i64` included: the window check must not
    // overflow whatever the timestamp.
    for now in [1_700_000_000_000, 0, i64::MIN, i64::MAX] {
        let _ = verify_callback(&document, &Secret::new("fuzz-secret"), "org#app", now);
    }
    let Ok(callback) = Callback::parse(document) else {
        return;
    };
    let _ = callback.is_message();
    let _ = VisitorId::decode(&callback.to);
    let agent = AgentIdentity::from_ext(&callback.payload.ext);
    let has_content = reply_parts::has_content(&callback.payload);
    let _ = recalls::recalled_id(&callback);
    let _ = SessionEvent::of(&callback.payload.ext.weichat);
    for (customize, language) in [
        (false, NoticeLanguage::English),
        (true, NoticeLanguage::Chinese),
    ] {
        let to = Destination {
            agent: &agent,
            customize,
            channel: "C0FUZZ",
            thread_ts: Some("1.2"),
            language,
        };
        let parts = reply_parts::plan(&callback.payload, to);
        for part in &parts {
            let post = part.as_post();
            // The bold agent-name prefix counts: 80 characters at most.
            assert!(post.text.chars().count() <= SLACK_MESSAGE_MAX_CHARS + 90);
            if let Some(blocks) = &post.blocks {
                assert!(blocks.as_array().is_some_and(|b| b.len() <= 50));
            }
        }
        assert_eq!(parts.is_empty(), !has_content);
    }
});
