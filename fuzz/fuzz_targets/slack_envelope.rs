//! `POST /slack/events` bodies: the envelope, then the event inside it, the
//! loop guard, the text conversion, and the signature check on arbitrary
//! header values. Nothing may panic.
#![no_main]

use std::collections::HashMap;

use kefu_bridge::loop_guard::{not_forwarded, BridgeIdentity};
use kefu_bridge::secret::Secret;
use kefu_bridge::slack::events::{is_content_subtype, Envelope, Event};
use kefu_bridge::slack::markup::{mentioned_users, to_plain_text};
use kefu_bridge::slack::signature::SlackVerifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The signature check sees the raw bytes and whatever headers came.
    let verifier = SlackVerifier::new(Secret::new("fuzz-secret"));
    let text = String::from_utf8_lossy(data);
    let (timestamp, signature) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = verifier.verify(Some(timestamp), Some(signature), data, 1_700_000_000);

    let Ok(Envelope::EventCallback(callback)) = serde_json::from_slice::<Envelope>(data) else {
        return;
    };
    let Ok(Event::Message(message)) = serde_json::from_value::<Event>(callback.event) else {
        return;
    };
    let me = BridgeIdentity {
        bot_id: "B0BOT",
        bot_user_id: "U0BOT",
        app_id: &callback.api_app_id,
    };
    let _ = not_forwarded(&message, me);
    let _ = is_content_subtype(message.subtype.as_deref());
    for file in &message.files {
        let _ = file.describe();
    }
    if let Some(text) = message.text.as_deref() {
        let users = mentioned_users(text);
        let names: HashMap<String, String> = users
            .iter()
            .map(|u| (u.clone(), format!("name of {u}")))
            .collect();
        let _ = to_plain_text(text, &names);
    }
});
