//! Writes two pages rendered from the bridge's real Block Kit builders:
//! `docs/blockkit-preview.html`, a Kefu robot menu and a satisfaction
//! survey as a Slack user sees them, before and after they answer; and
//! `docs/conversation-preview.html`, a whole Kefu conversation as the
//! customer sees it (an agent joins, replies, a hand-over, the end). The
//! README pictures are headless-Chromium screenshots of them:
//!
//! ```text
//! cargo run -q -p bridge-tests --bin blockkit-preview
//! chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=$(mktemp -d) \
//!   --screenshot=docs/kefu-menu-and-survey.png --window-size=800,600 file://$PWD/docs/blockkit-preview.html
//! chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=$(mktemp -d) \
//!   --screenshot=docs/kefu-conversation.png --window-size=800,830 file://$PWD/docs/conversation-preview.html
//! ```

use std::path::Path;

use bridge_tests::blockkit_preview::{page, PreviewMessage};
use kefu_bridge::easemob::session_event::SessionEvent;
use kefu_bridge::relay::prompts::{Answer, MenuItem, Prompt};
use kefu_bridge::relay::session_notices::notice_post;
use kefu_bridge::relay::to_slack::{build_posts, AgentIdentity};
use kefu_bridge::store::NoticeLanguage;
use serde_json::{json, Value};

fn main() {
    write("blockkit-preview.html", &menu_and_survey());
    write("conversation-preview.html", &conversation());
}

fn write(name: &str, html: &str) {
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    std::fs::write(&out, html).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    println!("{}", out.canonicalize().unwrap_or(out).display());
}

/// A robot menu and a survey, before and after Ada answers.
fn menu_and_survey() -> String {
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
    page(
        "Kefu menu and survey in Slack (preview)",
        "Kefu Support",
        &messages,
    )
}

/// What the customer reads in the DM, one step of the conversation.
enum Step<'a> {
    Customer(&'a str),
    Agent(&'a str, &'a str),
    Notice(SessionEvent),
}

/// A whole conversation: waiting, an agent joins, replies, a hand-over to
/// another agent, the end — the notices from `session_notices`, the
/// replies from `build_posts` (with `chat:write.customize`: the agent is
/// the author), as the bridge posts them.
fn conversation() -> String {
    let agent = |name: &str| Some(name.to_string());
    let steps = [
        (
            "10:02 AM",
            Step::Customer("Hi! My latte set from last week hasn't arrived yet — order #4821."),
        ),
        ("10:02 AM", Step::Notice(SessionEvent::WaitingForAgent)),
        (
            "10:03 AM",
            Step::Notice(SessionEvent::Opened {
                agent: agent("Alice Agent"),
            }),
        ),
        (
            "10:03 AM",
            Step::Agent(
                "Alice Agent",
                "Hi Ada, sorry about that! Order #4821 left our warehouse on Monday.",
            ),
        ),
        (
            "10:04 AM",
            Step::Customer("Thanks! Could it go to my office address instead?"),
        ),
        (
            "10:04 AM",
            Step::Agent(
                "Alice Agent",
                "Addresses are handled by our delivery team — I'll hand you over to them.",
            ),
        ),
        (
            "10:05 AM",
            Step::Notice(SessionEvent::Transferred {
                agent: agent("Bob Builder"),
            }),
        ),
        (
            "10:06 AM",
            Step::Agent(
                "Bob Builder",
                "Hi Ada, Bob from delivery. What's the new address?",
            ),
        ),
        ("10:06 AM", Step::Customer("12 Baker Street, 2nd floor.")),
        (
            "10:07 AM",
            Step::Agent(
                "Bob Builder",
                "Done: it arrives tomorrow before noon. Anything else?",
            ),
        ),
        ("10:07 AM", Step::Customer("That's all, thank you!")),
        ("10:08 AM", Step::Notice(SessionEvent::Closed)),
    ];
    let rendered: Vec<(&str, &str, Option<String>, Option<Value>)> = steps
        .iter()
        .map(|(time, step)| match step {
            Step::Customer(text) => ("Ada Lovelace", *time, Some(escape(text)), None),
            Step::Agent(name, text) => {
                let identity = AgentIdentity {
                    name: Some(name.to_string()),
                    avatar_url: None,
                };
                let post = build_posts(text, &identity, true, "D0ADA", None).remove(0);
                (*name, *time, Some(post.text), None)
            }
            Step::Notice(event) => {
                let post = notice_post(event, NoticeLanguage::English, "D0ADA", None)
                    .expect("a shown event");
                ("Kefu Support", *time, None, post.blocks)
            }
        })
        .collect();
    let messages: Vec<PreviewMessage<'_>> = rendered
        .iter()
        .map(|(author, time, text, blocks)| PreviewMessage {
            author,
            is_app: *author != "Ada Lovelace",
            time,
            text: text.as_deref(),
            blocks: blocks.as_ref(),
            caption: None,
        })
        .collect();
    page(
        "A Kefu conversation in Slack (preview)",
        "Kefu Support",
        &messages,
    )
}

/// A customer's words as Slack keeps them (`&`, `<`, `>` escaped).
fn escape(text: &str) -> String {
    kefu_bridge::slack::markup::escape(text)
}
