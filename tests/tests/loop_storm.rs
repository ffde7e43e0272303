//! The seed's loop, at scale and through the outbox: 20 conversations, a few
//! messages each, both fakes echoing everything like the real services, an
//! outage on both sides for the first rounds (so some messages travel
//! through the outbox and the drains), and a fake agent answering every
//! visitor message with the visitor's own words (the worst case: a bot
//! post that reads exactly like a visitor message).
//!
//! Echoes, as in tests/tests/loop_both_ways.rs: every message the fake
//! Easemob accepts is called back (as `chat` and as `chat_offline`); every
//! bot post the fake Slack accepts comes back as a message event with
//! `bot_id`, as a legacy `bot_message`, and as `message_changed`, each
//! delivered twice. Outbound counts must equal the input count exactly.

use std::collections::HashMap;

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::*;
use bridge_tests::fake_server::Fault;
use bridge_tests::TestApp;
use kefu_bridge::store::Direction;
use serde_json::{json, Value};

const TEAM: &str = "T0STORM";
const CONVERSATIONS: usize = 20;
const MESSAGES_EACH: usize = 3;
/// Easemob is down until this round, Slack until this one: replies to the
/// first messages through Kefu wait in the outbox for Slack.
const EASEMOB_BACK: usize = 2;
const SLACK_BACK: usize = 4;
const MAX_ROUNDS: usize = 30;

/// Conversation `i`: DMs for the first half, a shared channel (threaded for
/// some) for the rest.
fn conversation(i: usize) -> (String, String, &'static str) {
    let user = format!("U0S{i:02}");
    if i < CONVERSATIONS / 2 {
        (user, format!("D0S{i:02}"), "im")
    } else {
        (user, "C0STORM".to_string(), "channel")
    }
}

struct Storm {
    kefu_messages: Vec<Value>,
    slack_posts: Vec<Value>,
    rounds: usize,
    echoes_fed: usize,
    /// Replies that went through the outbox (Slack was down).
    replies_queued: usize,
    /// Visitor messages that went through the outbox (Easemob was down).
    messages_queued: usize,
}

async fn storm(app: &TestApp) -> Storm {
    app.easemob.fail_always("messages", Fault::Status(503));
    app.slack
        .fail_always("chat.postMessage", Fault::Status(500));
    let mut input = 0;
    let mut kefu_seen = 0;
    let mut slack_seen = 0;
    let mut echoes_fed = 0;
    let mut replies_queued = 0;
    let mut messages_queued = 0;
    let mut answered: HashMap<String, ()> = HashMap::new();
    for round in 1..=MAX_ROUNDS {
        // The input: message m of every conversation in round m + 1, so the
        // first waits in the outbox, the second queues behind it, and the
        // third goes straight through.
        if round <= MESSAGES_EACH {
            input += send_input(app, round - 1).await;
        }
        if round == EASEMOB_BACK {
            app.easemob.heal();
        }
        if round == SLACK_BACK {
            app.slack.heal();
        }
        // Drains run between rounds, as EventBridge would.
        app.make_due().await;
        messages_queued += app.drain(Direction::ToKefu).await.delivered;
        replies_queued += app.drain(Direction::ToSlack).await.delivered;

        let kefu = app.easemob.messages();
        let posts = app.slack.posts();
        let waiting = app.waiting(Direction::ToKefu).await.len()
            + app.waiting(Direction::ToSlack).await.len();
        if round > SLACK_BACK.max(MESSAGES_EACH)
            && kefu.len() == kefu_seen
            && posts.len() == slack_seen
            && waiting == 0
        {
            assert_eq!(input, CONVERSATIONS * MESSAGES_EACH);
            return Storm {
                kefu_messages: kefu,
                slack_posts: posts,
                rounds: round,
                echoes_fed,
                replies_queued,
                messages_queued,
            };
        }
        for (i, sent) in kefu.iter().enumerate().skip(kefu_seen) {
            let echo = echo_of_sent(sent, &format!("storm-echo-{i}"));
            for event_type in ["chat", "chat_offline"] {
                let response = app
                    .easemob_callback(&as_event_type(echo.clone(), event_type))
                    .await;
                assert_eq!(response.status, 200, "echo of {sent}: {response:?}");
                echoes_fed += 1;
            }
            // The agent answers each visitor message once, with its words.
            let text = sent["msg"]["msg"].as_str().unwrap().to_string();
            if answered.insert(text.clone(), ()).is_none() {
                let visitor = sent["from"].as_str().unwrap();
                let answer = agent_reply(visitor, &format!("storm-agent-{i}"), &text);
                for event_type in ["chat", "chat_offline"] {
                    let response = app
                        .easemob_callback(&as_event_type(answer.clone(), event_type))
                        .await;
                    assert_eq!(response.status, 200);
                }
            }
        }
        kefu_seen = kefu.len();
        for post in posts.iter().skip(slack_seen) {
            for event in slack_echoes_of_post(post, &format!("EvStormEcho{round}")) {
                for _ in 0..2 {
                    let response = app.slack_event(&event).await;
                    assert_eq!(response.status, 200, "echo of {post}: {response:?}");
                    echoes_fed += 1;
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

/// Message `m` of every conversation, each delivered twice (Slack retries).
async fn send_input(app: &TestApp, m: usize) -> usize {
    for i in 0..CONVERSATIONS {
        let (user, channel, kind) = conversation(i);
        let ts = format!("{}.{:06}", 1_700_000_100 + m, i);
        let mut event = user_message(&channel, kind, &user, &format!("c{i} m{m}"), &ts);
        if kind == "channel" && i % 2 == 0 {
            event["thread_ts"] = json!(format!("1700000000.{i:06}"));
        }
        let event = event_callback(TEAM, &format!("EvStorm{i}-{m}"), event);
        for _ in 0..2 {
            assert_eq!(app.slack_event(&event).await.status, 200);
        }
    }
    CONVERSATIONS
}

#[tokio::test]
async fn twenty_conversations_echoing_both_ways_through_an_outage_never_loop() {
    let app = TestApp::start().await;
    app.install(
        TEAM,
        &[
            "chat:write",
            "chat:write.customize",
            "im:history",
            "channels:history",
            "users:read",
        ],
    )
    .await;
    for i in 0..CONVERSATIONS {
        let (user, _, _) = conversation(i);
        app.add_user(&user, &user.to_lowercase(), &format!("Visitor {i}"));
    }

    let storm = storm(&app).await;
    let input = CONVERSATIONS * MESSAGES_EACH;
    println!(
        "loop storm: {input} visitor messages in {CONVERSATIONS} conversations → {} Kefu messages \
         ({} through the outbox), {} Slack posts ({} through the outbox); {} echoes fed back; settled after {} rounds",
        storm.kefu_messages.len(),
        storm.messages_queued,
        storm.slack_posts.len(),
        storm.replies_queued,
        storm.echoes_fed,
        storm.rounds
    );
    assert!(
        storm.replies_queued > 0,
        "the outage sent replies through the outbox"
    );
    assert_eq!(
        storm.kefu_messages.len(),
        input,
        "Kefu got each visitor message once"
    );
    assert_eq!(
        storm.slack_posts.len(),
        input,
        "Slack got each agent answer once"
    );

    // Exactly the input, per conversation, in order, both ways.
    for i in 0..CONVERSATIONS {
        let (user, channel, _) = conversation(i);
        let visitor = format!("{TEAM}_{user}_{channel}");
        let expected: Vec<String> = (0..MESSAGES_EACH).map(|m| format!("c{i} m{m}")).collect();
        let to_kefu: Vec<String> = storm
            .kefu_messages
            .iter()
            .filter(|m| m["from"] == visitor.as_str())
            .map(|m| m["msg"]["msg"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(to_kefu, expected, "{visitor} → Kefu");
        let to_slack: Vec<String> = storm
            .slack_posts
            .iter()
            .filter(|p| p["channel"] == channel.as_str())
            .map(|p| p["text"].as_str().unwrap().to_string())
            .filter(|t| t.starts_with(&format!("c{i} ")))
            .collect();
        assert_eq!(to_slack, expected, "agent → {visitor}");
    }
    // A thread the visitor wrote in is where the answers went.
    let threaded = storm
        .slack_posts
        .iter()
        .filter(|p| p["channel"] == "C0STORM" && p.get("thread_ts").is_some())
        .count();
    assert_eq!(threaded, (CONVERSATIONS / 4) * MESSAGES_EACH);
    assert!(app.dead_letters().await.is_empty());
}
