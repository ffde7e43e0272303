//! Writes `docs/blockkit-preview.html`: a Kefu robot menu and a
//! satisfaction survey as a Slack user sees them, before and after they
//! answer, rendered from the bridge's real Block Kit builders. The README
//! picture `docs/kefu-menu-and-survey.png` is a headless-Chromium
//! screenshot of it:
//!
//! ```text
//! cargo run -q -p bridge-tests --bin blockkit-preview
//! chromium --headless --no-sandbox --disable-gpu --screenshot=docs/kefu-menu-and-survey.png \
//!   --window-size=800,760 file://$PWD/docs/blockkit-preview.html
//! ```

use std::path::Path;

use bridge_tests::blockkit_preview::{page, PreviewMessage};
use kefu_bridge::relay::prompts::{Answer, MenuItem, Prompt};
use serde_json::json;

fn main() {
    let menu = Prompt::Menu {
        title: "Hi Ada! What can I help you with?".into(),
        items: ["Where is my order?", "Refunds & returns", "Opening hours"]
            .iter()
            .enumerate()
            .map(|(i, name)| MenuItem {
                id: json!(format!("menu-{i}")),
                name: name.to_string(),
            })
            .collect(),
    };
    let survey = Prompt::Enquiry {
        text: String::new(),
        invite_id: json!(42),
        service_session_id: json!("9f3e-session"),
    };
    // Posts carry the agent as author (chat:write.customize): no byline.
    let menu_post = menu.render(None);
    let survey_post = survey.render(None);
    let menu_answered = menu.render_answered(
        None,
        &Answer::Menu {
            name: "Where is my order?".into(),
        },
    );
    let survey_answered = survey.render_answered(
        None,
        &Answer::Rating {
            score: 4,
            comment: String::new(),
        },
    );
    let messages = [
        PreviewMessage {
            author: "Ada Lovelace",
            is_app: false,
            time: "10:02 AM",
            text: Some("Hi! I ordered a latte set last week &amp; it hasn't arrived yet."),
            blocks: None,
            caption: None,
        },
        PreviewMessage {
            author: "Kefu Assistant",
            is_app: true,
            time: "10:02 AM",
            text: None,
            blocks: Some(&menu_post.blocks),
            caption: None,
        },
        PreviewMessage {
            author: "Alice Agent",
            is_app: true,
            time: "10:09 AM",
            text: None,
            blocks: Some(&survey_post.blocks),
            caption: None,
        },
        PreviewMessage {
            author: "Kefu Assistant",
            is_app: true,
            time: "10:02 AM",
            text: None,
            blocks: Some(&menu_answered.blocks),
            caption: Some("After Ada answers: the buttons give way to her answer"),
        },
        PreviewMessage {
            author: "Alice Agent",
            is_app: true,
            time: "10:09 AM",
            text: None,
            blocks: Some(&survey_answered.blocks),
            caption: None,
        },
    ];
    let html = page("Kefu Support", &messages);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/blockkit-preview.html");
    std::fs::write(&out, html).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    println!("{}", out.canonicalize().unwrap_or(out).display());
}
