//! The seed's central failure, both directions at once: a message the bridge
//! sends must never come back as a new message.
//!
//! Like the real services, the fakes here echo everything: every message the
//! fake Easemob accepts is called back to `easemob-callback` (the visitor's
//! own message, `from` = visitor lower-cased, `to` = service number; as
//! `chat` and again as `chat_offline`), and every bot post the fake Slack
//! accepts comes back to `slack-events` as message events (with `bot_id`,
//! as `bot_message`, and as `message_changed`). A fake Kefu agent answers
//! every visitor message it receives. The test pumps these until nothing new
//! appears, bounded, and counts what crossed each way.

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::*;
use bridge_tests::TestApp;
use serde_json::{json, Value};

const TEAM: &str = "T0TEAM1";
/// More rounds than a loop needs to show itself.
const MAX_ROUNDS: usize = 12;

/// What crossed the bridge once the echoes settled.
struct Settled {
    kefu_messages: Vec<Value>,
    slack_posts: Vec<Value>,
    rounds: usize,
}

/// Feeds every echo back until a round produces nothing new. The fake agent
/// answers each visitor message once (an auto-replying robot: the worst case
/// for a loop). Each echo is also delivered a second time, as retries do.
async fn pump(app: &TestApp, agent_answer: &str) -> Settled {
    let mut kefu_seen = 0;
    let mut slack_seen = 0;
    for round in 1..=MAX_ROUNDS {
        let kefu = app.easemob.messages();
        let posts = app.slack.posts();
        if kefu.len() == kefu_seen && posts.len() == slack_seen {
            return Settled {
                kefu_messages: kefu,
                slack_posts: posts,
                rounds: round,
            };
        }
        for (i, sent) in kefu.iter().enumerate().skip(kefu_seen) {
            let echo = echo_of_sent(sent, &format!("echo-{i}"));
            for event_type in ["chat", "chat_offline"] {
                let response = app
                    .easemob_callback(&as_event_type(echo.clone(), event_type))
                    .await;
                assert_eq!(response.status, 200, "echo of {sent}: {response:?}");
            }
            // The agent answers what reached Kefu from a visitor.
            let visitor = sent["from"].as_str().unwrap();
            let answer = agent_reply(visitor, &format!("agent-{i}"), agent_answer);
            for _ in 0..2 {
                assert_eq!(app.easemob_callback(&answer).await.status, 200);
            }
        }
        kefu_seen = kefu.len();
        for post in posts.iter().skip(slack_seen) {
            for event in slack_echoes_of_post(post, &format!("EvEcho{round}")) {
                for _ in 0..2 {
                    let response = app.slack_event(&event).await;
                    assert_eq!(response.status, 200, "echo of {post}: {response:?}");
                }
            }
        }
        slack_seen = posts.len();
    }
    panic!(
        "still not settled after {MAX_ROUNDS} rounds: {} Kefu messages, {} Slack posts",
        app.easemob.messages().len(),
        app.slack.posts().len()
    );
}

#[tokio::test]
async fn one_message_each_way_in_a_dm_stays_one_message_each_way() {
    let app = TestApp::start().await;
    app.install(TEAM, &["chat:write", "im:history", "users:read"])
        .await;
    app.add_user("U0ADA", "ada", "Ada Lovelace");

    let question = event_callback(
        TEAM,
        "EvQuestion",
        user_message("D0ADA", "im", "U0ADA", "Where is my order?", "1.0001"),
    );
    assert_eq!(app.slack_event(&question).await.status, 200);

    let settled = pump(&app, "It ships today.").await;
    assert!(
        settled.rounds >= 3,
        "the echoes were fed back at least once"
    );
    let texts: Vec<&Value> = settled
        .kefu_messages
        .iter()
        .map(|m| &m["msg"]["msg"])
        .collect();
    assert_eq!(texts, vec![&json!("Where is my order?")]);
    assert_eq!(settled.slack_posts.len(), 1, "{:?}", settled.slack_posts);
    assert_eq!(settled.slack_posts[0]["channel"], "D0ADA");
    assert_eq!(
        settled.slack_posts[0]["text"],
        "*Alice Agent:* It ships today."
    );
}

#[tokio::test]
async fn a_threaded_channel_conversation_with_a_customized_author_does_not_loop() {
    let app = TestApp::start().await;
    app.install(
        TEAM,
        &[
            "chat:write",
            "chat:write.customize",
            "channels:history",
            "users:read",
        ],
    )
    .await;
    app.add_user("U0ADA", "ada", "Ada Lovelace");

    let mut question = user_message("C0SUPPORT", "channel", "U0ADA", "Refund please", "2.0002");
    question["thread_ts"] = json!("2.0001");
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "EvThreadQ", question))
            .await
            .status,
        200
    );

    // The agent's answer echoes the visitor's words back: the bot's post
    // then reads exactly like the visitor's message, and still must not go
    // back to Kefu.
    let settled = pump(&app, "Refund please").await;
    assert_eq!(settled.kefu_messages.len(), 1);
    assert_eq!(settled.kefu_messages[0]["from"], "T0TEAM1_U0ADA_C0SUPPORT");
    assert_eq!(settled.slack_posts.len(), 1);
    let post = &settled.slack_posts[0];
    assert_eq!(post["channel"], "C0SUPPORT");
    assert_eq!(post["thread_ts"], "2.0001");
    assert_eq!(post["username"], AGENT_NAME);
    assert_eq!(post["text"], "Refund please");
}
