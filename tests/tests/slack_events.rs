//! `slack-events` end to end: real DynamoDB Local, fake Slack and Easemob
//! over real HTTP, assertions on what the fakes recorded.

use bridge_tests::app::{event_callback, user_message, APP_ID};
use bridge_tests::fake_server::Fault;
use bridge_tests::signing::*;
use bridge_tests::TestApp;
use kefu_bridge::relay::slack_events;
use kefu_bridge::store::{Direction, WorkspaceRecord};
use serde_json::{json, Value};

const TEAM: &str = "T0TEAM1";

async fn app() -> TestApp {
    let app = TestApp::start().await;
    app.install(
        TEAM,
        &["chat:write", "users:read", "users:read.email", "team:read"],
    )
    .await;
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    app.add_user("U0BOB", "bob", "Bob Builder");
    app
}

fn dm(event_id: &str, text: &str, ts: &str) -> Value {
    event_callback(
        TEAM,
        event_id,
        user_message("D0ADA", "im", "U0ADA", text, ts),
    )
}

#[tokio::test]
async fn a_direct_message_reaches_kefu_with_the_visitor_profile() {
    let app = app().await;
    let response = app
        .slack_event(&dm(
            "Ev001",
            "Hello &amp; <https://acme.io|our site>",
            "1.0001",
        ))
        .await;
    assert_eq!(response.status, 200, "{response:?}");

    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0],
        json!({
            "target_type": "users",
            "target": [LOCAL_EASEMOB_SERVICE_NUMBER],
            "msg": { "type": "txt", "msg": "Hello & our site (https://acme.io)" },
            "from": "T0TEAM1_U0ADA_D0ADA",
            "ext": { "weichat": { "visitor": {
                "userNickname": "ada",
                "trueName": "Ada Lovelace",
                "companyName": "Team T0TEAM1",
                "phone": "+44 20 7946 0000",
                "email": "ada@example.com",
                "description": "Slack workspace Team T0TEAM1 (t0team1.slack.com), direct message D0ADA, user U0ADA, title: Customer, time zone: Europe/London"
            } } }
        })
    );
    // The visitor was registered once, lower-cased by Easemob.
    assert!(app.easemob.users().contains("t0team1_u0ada_d0ada"));
    // Every Easemob call but the token request carried the bearer token.
    for call in app.easemob.server.requests() {
        if !call.path.ends_with("/token") {
            assert!(
                call.bearer()
                    .is_some_and(|t| t.starts_with("YWMt-fake-token")),
                "{call:?}"
            );
        }
    }
    // Slack was asked with the bot token, never with a token in the query.
    for call in app.slack.server.requests() {
        assert_eq!(call.bearer(), Some("xoxb-t0team1-token"));
        assert!(call.query.iter().all(|(k, _)| k != "token"));
    }
}

#[tokio::test]
async fn a_channel_message_reaches_kefu_and_mentions_are_readable() {
    let app = app().await;
    let event = event_callback(
        TEAM,
        "Ev002",
        user_message(
            "C0SUPPORT",
            "channel",
            "U0BOB",
            "<@U0ADA> can you check <#C0GEN|general>? <!here>",
            "2.0001",
        ),
    );
    assert_eq!(app.slack_event(&event).await.status, 200);
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["from"], "T0TEAM1_U0BOB_C0SUPPORT");
    assert_eq!(
        messages[0]["msg"]["msg"],
        "@ada can you check #general? @here"
    );
    assert!(messages[0]["ext"]["weichat"]["visitor"]["description"]
        .as_str()
        .unwrap()
        .contains("channel C0SUPPORT"));
}

#[tokio::test]
async fn private_channels_and_group_dms_are_forwarded_other_channel_types_are_not() {
    let app = app().await;
    for (i, (channel, kind)) in [("G0PRIV", "group"), ("G0MPIM", "mpim"), ("C0X", "app_home")]
        .iter()
        .enumerate()
    {
        let event = event_callback(
            TEAM,
            &format!("EvK{i}"),
            user_message(channel, kind, "U0ADA", "hi", "3.0001"),
        );
        assert_eq!(app.slack_event(&event).await.status, 200);
    }
    let froms: Vec<Value> = app
        .easemob
        .messages()
        .iter()
        .map(|m| m["from"].clone())
        .collect();
    assert_eq!(
        froms,
        vec![json!("T0TEAM1_U0ADA_G0PRIV"), json!("T0TEAM1_U0ADA_G0MPIM")]
    );
}

/// Each loop rule of docs/design.md §2 on its own: none of these reach Kefu.
#[tokio::test]
async fn the_bridges_own_messages_never_reach_kefu() {
    let app = app().await;
    let base = user_message("D0ADA", "im", "U0ADA", "agent reply echoed", "4.0001");
    let with = |patch: Value| {
        let mut event = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            event[k] = v.clone();
        }
        event
    };
    let echoes = vec![
        ("bot_id", with(json!({ "bot_id": "BT0TEAM1" }))),
        ("bot user", with(json!({ "user": "UT0TEAM1BOT" }))),
        ("app_id", with(json!({ "app_id": APP_ID }))),
        (
            "bot_profile.app_id",
            with(json!({ "bot_profile": { "id": "B9", "app_id": APP_ID } })),
        ),
        (
            "bot_message",
            with(json!({ "subtype": "bot_message", "bot_id": "B0OTHER" })),
        ),
        (
            "message_changed",
            json!({
                "type": "message", "subtype": "message_changed", "channel": "D0ADA", "channel_type": "im",
                "hidden": true, "ts": "4.0002",
                "message": { "type": "message", "text": "edited", "user": "UT0TEAM1BOT", "bot_id": "BT0TEAM1", "ts": "4.0001" }
            }),
        ),
        (
            "message_changed by a person",
            json!({
                "type": "message", "subtype": "message_changed", "channel": "D0ADA", "channel_type": "im",
                "ts": "4.0003", "message": { "type": "message", "text": "edited", "user": "U0ADA", "ts": "4.0001" }
            }),
        ),
    ];
    for (i, (rule, event)) in echoes.into_iter().enumerate() {
        let response = app
            .slack_event(&event_callback(TEAM, &format!("EvLoop{i}"), event))
            .await;
        assert_eq!(response.status, 200, "{rule}");
        assert_eq!(app.easemob.messages().len(), 0, "{rule} was forwarded");
    }
}

#[tokio::test]
async fn non_content_subtypes_are_not_forwarded() {
    let app = app().await;
    for (i, subtype) in [
        "channel_join",
        "message_deleted",
        "channel_topic",
        "channel_leave",
    ]
    .iter()
    .enumerate()
    {
        let mut event = user_message("C0SUPPORT", "channel", "U0ADA", "x", "5.0001");
        event["subtype"] = json!(subtype);
        let response = app
            .slack_event(&event_callback(TEAM, &format!("EvSub{i}"), event))
            .await;
        assert_eq!(response.status, 200);
    }
    assert!(app.easemob.messages().is_empty());
}

#[tokio::test]
async fn a_duplicate_event_id_is_delivered_once() {
    let app = app().await;
    let event = dm("Ev003", "only once", "6.0001");
    for _ in 0..3 {
        assert_eq!(app.slack_event(&event).await.status, 200);
    }
    assert_eq!(app.easemob.texts(), vec!["only once"]);
}

#[tokio::test]
async fn the_same_event_ten_times_at_once_is_delivered_once() {
    let app = app().await;
    let event = dm("Ev004", "racing retries", "7.0001");
    let attempts = (0..10).map(|_| app.slack_event(&event));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&200));
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    // Retries that found the claim in progress come back later and find it done.
    for _ in 0..2 {
        assert_eq!(app.slack_event(&event).await.status, 200);
    }
    assert_eq!(app.easemob.texts(), vec!["racing retries"]);
}

#[tokio::test]
async fn kefu_failure_is_stored_answered_200_and_the_drain_delivers_exactly_once() {
    let app = app().await;
    app.easemob.fail_once("messages", Fault::Status(500));
    let event = dm("Ev005", "survives a 500", "8.0001");
    let first = app.slack_event(&event).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert!(app.easemob.messages().is_empty());
    assert_eq!(app.waiting(Direction::ToKefu).await.len(), 1);

    // Slack's retry (X-Slack-Retry-Num: 1) finds it accepted already.
    let mut retry = app.signed_slack_request(event.to_string().as_bytes());
    retry
        .headers
        .insert("x-slack-retry-num", "1".parse().unwrap());
    retry
        .headers
        .insert("x-slack-retry-reason", "http_error".parse().unwrap());
    assert_eq!(slack_events::handle(&app.bridge, &retry).await.status, 200);
    assert_eq!(app.slack_event(&event).await.status, 200);
    assert!(app.easemob.messages().is_empty());
    app.make_due().await;
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 1);
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 0);
    assert_eq!(app.easemob.texts(), vec!["survives a 500"]);
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_and_the_message_resent() {
    let app = app().await;
    assert_eq!(
        app.slack_event(&dm("Ev006", "first", "9.0001"))
            .await
            .status,
        200
    );
    assert_eq!(app.easemob.token_requests(), 1);
    app.easemob.expire_tokens();
    assert_eq!(
        app.slack_event(&dm("Ev007", "second", "9.0002"))
            .await
            .status,
        200
    );
    assert_eq!(app.easemob.token_requests(), 2);
    assert_eq!(app.easemob.texts(), vec!["first", "second"]);
    let sends = app.easemob.calls("messages");
    assert_eq!(
        sends.len(),
        3,
        "one rejected send, one resend, one first message"
    );
}

#[tokio::test]
async fn twenty_messages_and_a_cold_instance_need_one_token_request() {
    let app = app().await;
    for i in 0..20 {
        let response = app
            .slack_event(&dm(
                &format!("Ev1{i:02}"),
                &format!("message {i}"),
                &format!("10.{i:04}"),
            ))
            .await;
        assert_eq!(response.status, 200);
    }
    assert_eq!(app.easemob.token_requests(), 1);
    assert_eq!(app.easemob.messages().len(), 20);
    // The user was registered once and looked up in Slack once.
    assert_eq!(app.easemob.calls("users").len(), 1);
    assert_eq!(app.slack.calls("users.info").len(), 1);

    // Another (cold) instance reuses the token, registration and profile from DynamoDB.
    let cold = app.another_instance();
    let event = dm("Ev200", "from a cold instance", "11.0001");
    let request = app.signed_slack_request(event.to_string().as_bytes());
    assert_eq!(slack_events::handle(&cold, &request).await.status, 200);
    assert_eq!(app.easemob.token_requests(), 1);
    assert_eq!(app.easemob.calls("users").len(), 1);
    assert_eq!(app.slack.calls("users.info").len(), 1);
    assert_eq!(app.easemob.messages().len(), 21);
}

#[tokio::test]
async fn bad_missing_and_stale_signatures_are_401_with_no_outbound_request() {
    let app = app().await;
    let body = dm("Ev008", "forged", "12.0001").to_string();
    let now = kefu_bridge::clock::now_epoch_secs();

    let wrong_secret = signed_slack_request(
        "not-the-secret",
        "/slack/events",
        "application/json",
        body.as_bytes(),
    );
    let stale = signed_slack_request_at(
        LOCAL_SLACK_SIGNING_SECRET,
        "/slack/events",
        "application/json",
        body.as_bytes(),
        now - 301,
    );
    let mut missing = app.signed_slack_request(body.as_bytes());
    missing.headers.remove("x-slack-signature");
    let mut no_timestamp = app.signed_slack_request(body.as_bytes());
    no_timestamp.headers.remove("x-slack-request-timestamp");
    let mut tampered = app.signed_slack_request(body.as_bytes());
    tampered.body = body.replace("forged", "forgeD").into_bytes();

    for (case, request) in [
        ("wrong secret", wrong_secret),
        ("stale", stale),
        ("missing", missing),
        ("no timestamp", no_timestamp),
        ("tampered", tampered),
    ] {
        let response = slack_events::handle(&app.bridge, &request).await;
        assert_eq!(response.status, 401, "{case}");
        assert!(!response.body.is_empty(), "{case}: a short reason");
    }
    assert!(app.easemob.server.requests().is_empty());
    assert!(app.slack.server.requests().is_empty());
}

#[tokio::test]
async fn malformed_bodies_get_4xx() {
    let app = app().await;
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("empty", "application/json", Vec::new()),
        (
            "not json",
            "application/json",
            b"{\"type\": \"event_callback\",".to_vec(),
        ),
        (
            "wrong content type",
            "text/plain",
            dm("Ev009", "x", "1.1").to_string().into_bytes(),
        ),
        ("invalid utf-8", "application/json", vec![0xff, 0xfe, 0x7b]),
        (
            "event of wrong types",
            "application/json",
            event_callback(TEAM, "Ev010", json!({"type": "message", "text": 5}))
                .to_string()
                .into_bytes(),
        ),
    ];
    for (case, content_type, body) in cases {
        let request = signed_slack_request(
            LOCAL_SLACK_SIGNING_SECRET,
            "/slack/events",
            content_type,
            &body,
        );
        let response = slack_events::handle(&app.bridge, &request).await;
        assert!(
            (400..500).contains(&response.status),
            "{case}: {response:?}"
        );
    }
    assert!(app.easemob.messages().is_empty());
}

#[tokio::test]
async fn url_verification_rate_limits_and_unknown_types() {
    let app = app().await;
    let response = app
        .slack_event(&json!({ "token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification" }))
        .await;
    assert_eq!(response.status, 200);
    let body: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(
        body["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let limited = json!({ "token": "t", "team_id": TEAM, "minute_rate_limited": 1518467820, "api_app_id": APP_ID, "type": "app_rate_limited" });
    assert_eq!(app.slack_event(&limited).await.status, 200);
    assert_eq!(
        app.slack_event(&json!({ "type": "something_new" }))
            .await
            .status,
        200
    );
    let reaction = event_callback(
        TEAM,
        "Ev011",
        json!({ "type": "reaction_added", "user": "U0ADA", "reaction": "+1" }),
    );
    assert_eq!(app.slack_event(&reaction).await.status, 200);
    assert!(app.easemob.server.requests().is_empty());
}

#[tokio::test]
async fn a_workspace_without_installation_sends_nothing() {
    let app = app().await;
    let event = event_callback(
        "T0STRANGER",
        "Ev012",
        user_message("D0X", "im", "U0X", "hello?", "13.0001"),
    );
    assert_eq!(app.slack_event(&event).await.status, 200);
    assert!(app.easemob.server.requests().is_empty());
    assert!(app.slack.server.requests().is_empty());
}

#[tokio::test]
async fn a_long_message_arrives_as_ordered_parts_within_5kb() {
    let app = app().await;
    let text: String =
        (0..1500).map(|i| format!("w{i} ")).collect::<String>() + "你好世界".repeat(300).as_str();
    assert_eq!(
        app.slack_event(&dm("Ev013", &text, "14.0001")).await.status,
        200
    );
    let calls = app.easemob.calls("messages");
    assert!(calls.len() >= 3, "{} parts", calls.len());
    assert!(calls.iter().all(|c| c.body.len() <= 5_120));
    let joined = app.easemob.texts().join(" ");
    let words: Vec<&str> = joined.split_whitespace().collect();
    let expected_words: Vec<&str> = text.split_whitespace().collect();
    // Parts cut inside the CJK run join without whitespace.
    assert_eq!(words.concat(), expected_words.concat());
}

#[tokio::test]
async fn a_failure_midway_stores_the_remaining_parts_and_the_drain_sends_them() {
    let app = app().await;
    let text = "x".repeat(4_000) + " " + &"y".repeat(4_000) + " " + &"z".repeat(4_000);
    assert_eq!(
        app.slack_event(&dm("Ev014", "warm up", "15.0001"))
            .await
            .status,
        200
    );
    let calls_before = app.easemob.calls("messages").len();
    let event = dm("Ev015", &text, "15.0002");
    // The first part of this event goes through, the second fails.
    app.easemob.fail_once("messages", Fault::Pass);
    app.easemob.fail_once("messages", Fault::Status(503));
    assert_eq!(app.slack_event(&event).await.status, 200);
    assert_eq!(app.easemob.calls("messages").len() - calls_before, 2);
    let waiting = app.waiting(Direction::ToKefu).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].parts.len(), 2, "only what was not sent");
    assert_eq!(app.slack_event(&event).await.status, 200);
    app.make_due().await;
    app.drain(Direction::ToKefu).await;
    let texts = app.easemob.texts();
    assert_eq!(texts.len(), 4, "warm up + three parts, none twice");
    assert!(texts[1].starts_with('x') && texts[2].starts_with('y') && texts[3].starts_with('z'));
}

#[tokio::test]
async fn files_slack_holds_no_bytes_for_are_named_after_the_text() {
    // Files themselves travel as files (tests/tests/rich_conversations.rs);
    // these have no URL to fetch, so the agent gets their names.
    let app = app().await;
    let mut event = user_message("D0ADA", "im", "U0ADA", "see attached", "16.0001");
    event["subtype"] = json!("file_share");
    event["files"] = json!([
        { "id": "F1", "name": "screenshot.png", "mimetype": "image/png", "size": 52_311, "permalink": "https://acme.slack.com/files/U0ADA/F1/screenshot.png" },
        { "id": "F2", "name": "invoice.pdf", "mode": "tombstone" }
    ]);
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "Ev016", event))
            .await
            .status,
        200
    );
    assert_eq!(
        app.easemob.texts(),
        vec![
            "see attached",
            "[file] screenshot.png (52 KB) — could not be forwarded",
            "[file] invoice.pdf — could not be forwarded"
        ]
    );
}

#[tokio::test]
async fn slack_profile_outage_still_forwards_with_the_user_id_as_name() {
    let app = app().await;
    app.slack.fail_always("users.info", Fault::Status(500));
    assert_eq!(
        app.slack_event(&dm("Ev017", "profile down", "17.0001"))
            .await
            .status,
        200
    );
    let messages = app.easemob.messages();
    assert_eq!(
        messages[0]["ext"]["weichat"]["visitor"]["userNickname"],
        "U0ADA"
    );
    // Nothing degraded was cached: once Slack is back, the name is right.
    app.slack.heal();
    let fresh = app.another_instance();
    let event = dm("Ev018", "profile back", "17.0002");
    let request = app.signed_slack_request(event.to_string().as_bytes());
    assert_eq!(slack_events::handle(&fresh, &request).await.status, 200);
    assert_eq!(
        app.easemob.messages()[1]["ext"]["weichat"]["visitor"]["userNickname"],
        "ada"
    );
}

#[tokio::test]
async fn threads_in_channels_are_remembered_for_replies() {
    let app = app().await;
    let mut threaded = user_message("C0SUPPORT", "channel", "U0ADA", "in a thread", "18.0002");
    threaded["thread_ts"] = json!("18.0001");
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "Ev019", threaded))
            .await
            .status,
        200
    );
    let workspace = kefu_bridge::store::WorkspaceKey::Team(TEAM.into());
    let stored = app
        .bridge
        .store
        .get_conversation_thread(&workspace, "T0TEAM1_U0ADA_C0SUPPORT")
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some("18.0001"));

    let top = user_message(
        "C0SUPPORT",
        "channel",
        "U0ADA",
        "top level again",
        "18.0003",
    );
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "Ev020", top))
            .await
            .status,
        200
    );
    let stored = app
        .bridge
        .store
        .get_conversation_thread(&workspace, "T0TEAM1_U0ADA_C0SUPPORT")
        .await
        .unwrap();
    assert_eq!(stored, None);
}

#[tokio::test]
async fn uninstall_deletes_the_workspace_and_later_messages_are_dropped() {
    let app = app().await;
    assert_eq!(
        app.slack_event(&dm("Ev021", "before", "19.0001"))
            .await
            .status,
        200
    );
    let uninstall = event_callback(TEAM, "Ev022", json!({ "type": "app_uninstalled" }));
    assert_eq!(app.slack_event(&uninstall).await.status, 200);
    // Idempotent.
    assert_eq!(app.slack_event(&uninstall).await.status, 200);
    let workspace = kefu_bridge::store::WorkspaceKey::Team(TEAM.into());
    assert!(app
        .bridge
        .store
        .get_installation(&workspace)
        .await
        .unwrap()
        .is_none());
    assert!(app
        .bridge
        .store
        .get_cached(&workspace, WorkspaceRecord::Profile("U0ADA"))
        .await
        .unwrap()
        .is_none());

    assert_eq!(
        app.slack_event(&dm("Ev023", "after", "19.0002"))
            .await
            .status,
        200
    );
    assert_eq!(app.easemob.texts(), vec!["before"]);
}

#[tokio::test]
async fn bot_tokens_revoked_uninstalls_user_tokens_revoked_does_not() {
    let app = app().await;
    let user_only = event_callback(
        TEAM,
        "Ev024",
        json!({ "type": "tokens_revoked", "tokens": { "oauth": ["U0ADA"], "bot": [] } }),
    );
    assert_eq!(app.slack_event(&user_only).await.status, 200);
    let workspace = kefu_bridge::store::WorkspaceKey::Team(TEAM.into());
    assert!(app
        .bridge
        .store
        .get_installation(&workspace)
        .await
        .unwrap()
        .is_some());
    let bot = event_callback(
        TEAM,
        "Ev025",
        json!({ "type": "tokens_revoked", "tokens": { "bot": ["UT0TEAM1BOT"] } }),
    );
    assert_eq!(app.slack_event(&bot).await.status, 200);
    assert!(app
        .bridge
        .store
        .get_installation(&workspace)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn dynamodb_unreachable_sends_nothing_and_answers_5xx() {
    let app = app().await;
    // A bridge whose table endpoint refuses connections.
    let http = kefu_bridge::bridge::http_client();
    let port = bridge_tests::dynamodb_local::free_port().unwrap();
    let db = bridge_tests::app::local_dynamodb(&format!("http://127.0.0.1:{port}"));
    let broken = kefu_bridge::Bridge::new(app.bridge.config.clone(), db, http);
    let event = dm("Ev026", "no table", "20.0001");
    let request = app.signed_slack_request(event.to_string().as_bytes());
    let response = slack_events::handle(&broken, &request).await;
    assert!(response.status >= 500, "{response:?}");
    assert!(app.easemob.server.requests().is_empty());
}
