//! Other bots and apps in a conversation (docs/design.md §2 "Loops"): a
//! stand-up bot, a Workflow or an auto-responder is never a visitor. A
//! message carrying `bot_id`, `app_id` or `bot_profile` — also inside a
//! `message_changed` — reaches Kefu never, and a person's message next to
//! them still reaches it once.
//!
//! The loop test puts an auto-responder in the channel (it answers every
//! post, the bridge's included) next to a Kefu robot (it answers every
//! visitor message), with both fakes echoing everything as the real
//! services do (as in tests/tests/loop_both_ways.rs): the two bots would
//! answer each other forever if the auto-responder's posts were forwarded.

use std::collections::HashSet;

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::*;
use bridge_tests::oauth_kit::LogRecorder;
use bridge_tests::TestApp;
use serde_json::{json, Value};

const TEAM: &str = "T0BOTS";
const CHANNEL: &str = "C0SUPPORT";
/// The auto-responder: another app's bot in the same channel.
const RESPONDER_USER: &str = "U0AUTORESP";
const RESPONDER_BOT: &str = "B0AUTORESP";
const RESPONDER_APP: &str = "A0AUTORESP";
/// More rounds than a loop needs to show itself.
const MAX_ROUNDS: usize = 12;

async fn app() -> TestApp {
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
    app.add_user(RESPONDER_USER, "autoresp", "Out-of-office bot");
    app
}

/// A message event in the support channel with `fields` set over a
/// person's message (so each shape has a `user`, as bot posts do).
fn in_channel(ts: &str, text: &str, fields: Value) -> Value {
    let mut event = user_message(CHANNEL, "channel", "U0STANDUP", text, ts);
    for (key, value) in fields.as_object().unwrap() {
        event[key] = value.clone();
    }
    event
}

/// Every shape another bot's or app's post takes: none is a visitor's.
fn other_bot_posts() -> Vec<(&'static str, Value)> {
    let modern = json!({
        "bot_id": "B0STANDUP", "app_id": "A0STANDUP",
        "bot_profile": { "id": "B0STANDUP", "app_id": "A0STANDUP", "name": "standup", "team_id": TEAM },
    });
    vec![
        (
            "bot_id only",
            in_channel("7.0001", "stand-up time", json!({ "bot_id": "B0STANDUP" })),
        ),
        (
            "app_id only",
            in_channel("7.0002", "stand-up time", json!({ "app_id": "A0STANDUP" })),
        ),
        (
            "bot_profile only",
            in_channel(
                "7.0003",
                "stand-up time",
                json!({ "bot_profile": { "id": "B0STANDUP", "name": "standup" } }),
            ),
        ),
        (
            "a Workflow post",
            in_channel(
                "7.0004",
                "Welcome! Please read the channel guidelines.",
                json!({
                    "user": "U0WORKFLOW", "bot_id": "B0WORKFLOW", "app_id": "A0WORKFLOWBUILDER",
                    "bot_profile": { "id": "B0WORKFLOW", "app_id": "A0WORKFLOWBUILDER", "name": "Workflow Builder", "team_id": TEAM },
                    "blocks": [{ "type": "rich_text", "elements": [] }],
                }),
            ),
        ),
        (
            "a modern bot post (bot user, no subtype)",
            in_channel("7.0005", "What did you do yesterday?", modern.clone()),
        ),
        (
            "another bot's post edited (message_changed)",
            json!({
                "type": "message", "subtype": "message_changed", "channel": CHANNEL,
                "channel_type": "channel", "hidden": true, "ts": "7.0006",
                "message": in_channel("7.0005", "What did you do today?", modern),
            }),
        ),
    ]
}

/// Each shape alone in the channel → nothing reaches Kefu; a person's
/// message right after → it reaches Kefu once. The log line names the
/// reason apart from the bridge's own posts.
#[tokio::test]
async fn other_bots_posts_never_reach_kefu_and_a_person_right_after_does() {
    let app = app().await;
    // Register the handler's log callsite before recording (tracing caches
    // each callsite's interest when it is first hit).
    let warm_up = in_channel("6.0001", "warm-up", json!({ "bot_id": "B0STANDUP" }));
    app.slack_event(&event_callback(TEAM, "EvWarmUp", warm_up))
        .await;
    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());

    for (i, (shape, event)) in other_bot_posts().into_iter().enumerate() {
        let event_id = format!("EvOtherBot{i}");
        for _ in 0..2 {
            let response = app
                .slack_event(&event_callback(TEAM, &event_id, event.clone()))
                .await;
            assert_eq!(response.status, 200, "{shape}: {response:?}");
        }
        assert!(
            app.easemob.messages().is_empty(),
            "{shape} was forwarded: {:?}",
            app.easemob.messages()
        );
        let logged = recorder.lines();
        assert!(
            logged
                .iter()
                .any(|l| l.contains(&format!("event_id={event_id}"))
                    && l.contains("outcome=other_bot_not_forwarded")),
            "{shape}: {logged:#?}"
        );
    }

    // The bridge's own post keeps its own reason.
    let own = in_channel(
        "7.0007",
        "agent reply",
        json!({ "user": "UT0BOTSBOT", "bot_id": "BT0BOTS" }),
    );
    app.slack_event(&event_callback(TEAM, "EvOwn", own)).await;
    assert!(recorder
        .lines()
        .iter()
        .any(|l| l.contains("event_id=EvOwn") && l.contains("outcome=own_message_not_forwarded")));

    let person = user_message(CHANNEL, "channel", "U0ADA", "Is anyone there?", "7.0008");
    for _ in 0..2 {
        let response = app
            .slack_event(&event_callback(TEAM, "EvPerson", person.clone()))
            .await;
        assert_eq!(response.status, 200);
    }
    let kefu = app.easemob.messages();
    assert_eq!(kefu.len(), 1, "{kefu:?}");
    assert_eq!(kefu[0]["from"], format!("{TEAM}_U0ADA_{CHANNEL}"));
    assert_eq!(kefu[0]["msg"]["msg"], "Is anyone there?");
}

/// The auto-responder's answer to a post at `ts`, as Slack delivers it: a
/// modern bot post from another app, no subtype.
fn auto_response(answer_ts: &str, thread_ts: Option<&str>) -> Value {
    let mut event = json!({
        "type": "message", "channel": CHANNEL, "channel_type": "channel",
        "user": RESPONDER_USER, "bot_id": RESPONDER_BOT, "app_id": RESPONDER_APP,
        "bot_profile": { "id": RESPONDER_BOT, "app_id": RESPONDER_APP, "name": "autoresp", "team_id": TEAM },
        "text": "Thanks for your message! We will get back to you soon.",
        "ts": answer_ts, "event_ts": answer_ts,
    });
    if let Some(thread) = thread_ts {
        event["thread_ts"] = json!(thread);
    }
    event
}

/// What crossed the bridge once the echoes settled.
struct Settled {
    kefu_messages: Vec<Value>,
    slack_posts: Vec<Value>,
    auto_responses: usize,
}

/// Delivers Slack events (each twice, as retries do) and lets the three
/// parties answer until a round adds nothing: the auto-responder answers
/// every post it has not answered yet (except its own), the Kefu robot
/// answers every visitor message, and both fakes echo what they accepted.
async fn pump(app: &TestApp, mut slack_events: Vec<Value>) -> Settled {
    let mut answered: HashSet<String> = HashSet::new();
    let mut kefu_seen = 0;
    let mut slack_seen = 0;
    let mut auto_responses = 0;
    for round in 1..=MAX_ROUNDS {
        let mut next = Vec::new();
        for (i, event) in slack_events.iter().enumerate() {
            for _ in 0..2 {
                let body = event_callback(TEAM, &format!("EvPump{round}-{i}"), event.clone());
                let response = app.slack_event(&body).await;
                assert_eq!(response.status, 200, "{event}: {response:?}");
            }
            let post = if event["subtype"] == "message_changed" {
                &event["message"]
            } else {
                event
            };
            let ts = post["ts"].as_str().unwrap_or_default().to_string();
            if post["user"] != RESPONDER_USER && answered.insert(ts.clone()) {
                auto_responses += 1;
                let answer_ts = format!("9{round:02}.{auto_responses:06}");
                next.push(auto_response(&answer_ts, post["thread_ts"].as_str()));
            }
        }
        let kefu = app.easemob.messages();
        for (i, sent) in kefu.iter().enumerate().skip(kefu_seen) {
            let echo = echo_of_sent(sent, &format!("bots-echo-{i}"));
            for event_type in ["chat", "chat_offline"] {
                let response = app
                    .easemob_callback(&as_event_type(echo.clone(), event_type))
                    .await;
                assert_eq!(response.status, 200, "echo of {sent}: {response:?}");
            }
            let visitor = sent["from"].as_str().unwrap();
            let answer = agent_reply(
                visitor,
                &format!("bots-robot-{i}"),
                "Robot: how can I help?",
            );
            for _ in 0..2 {
                assert_eq!(app.easemob_callback(&answer).await.status, 200);
            }
        }
        kefu_seen = kefu.len();
        let posts = app.slack.posts();
        for post in posts.iter().skip(slack_seen) {
            for echo in slack_echoes_of_post(post, &format!("EvBotsEcho{round}")) {
                next.push(echo["event"].clone());
            }
        }
        slack_seen = posts.len();
        if next.is_empty() {
            return Settled {
                kefu_messages: app.easemob.messages(),
                slack_posts: app.slack.posts(),
                auto_responses,
            };
        }
        slack_events = next;
    }
    panic!(
        "still not settled after {MAX_ROUNDS} rounds: {} Kefu messages, {} Slack posts",
        app.easemob.messages().len(),
        app.slack.posts().len()
    );
}

#[tokio::test]
async fn an_auto_responder_and_a_kefu_robot_do_not_answer_each_other_forever() {
    let app = app().await;
    let people = vec![
        user_message(CHANNEL, "channel", "U0ADA", "My order is late", "8.0001"),
        user_message(CHANNEL, "channel", "U0ADA", "Order 42", "8.0002"),
    ];
    let settled = pump(&app, people).await;
    let texts: Vec<&Value> = settled
        .kefu_messages
        .iter()
        .map(|m| &m["msg"]["msg"])
        .collect();
    assert_eq!(
        texts,
        vec![&json!("My order is late"), &json!("Order 42")],
        "exactly the person's messages reach Kefu"
    );
    assert!(settled
        .kefu_messages
        .iter()
        .all(|m| m["from"] == format!("{TEAM}_U0ADA_{CHANNEL}")));
    // The robot's answer to each, posted once; the auto-responder answered
    // the person and the bridge, and nobody answered it.
    assert_eq!(settled.slack_posts.len(), 2, "{:?}", settled.slack_posts);
    assert!(settled
        .slack_posts
        .iter()
        .all(|p| p["text"] == "Robot: how can I help?"));
    assert_eq!(settled.auto_responses, 4);
}
