//! `easemob-callback` end to end: real DynamoDB Local, fake Slack and Easemob
//! over real HTTP, assertions on what the fakes recorded.

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::*;
use bridge_tests::fake_server::Fault;
use bridge_tests::TestApp;
use kefu_bridge::relay::easemob_callback;
use kefu_bridge::store::{Claim, ClaimKey, Direction, WorkspaceKey};
use serde_json::{json, Value};

const TEAM: &str = "T0TEAM1";
/// Ada's direct message with the app, and Ada in the #support channel.
const DM_VISITOR: &str = "T0TEAM1_U0ADA_D0ADA";
const CHANNEL_VISITOR: &str = "T0TEAM1_U0ADA_C0SUPPORT";
const TOKEN: &str = "xoxb-t0team1-token";
const SCOPES: &[&str] = &["chat:write", "im:history", "channels:history", "users:read"];

async fn app() -> TestApp {
    let app = TestApp::start().await;
    app.install(TEAM, SCOPES).await;
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    app
}

async fn app_with_customize() -> TestApp {
    let app = TestApp::start().await;
    let scopes: Vec<&str> = SCOPES
        .iter()
        .copied()
        .chain(["chat:write.customize"])
        .collect();
    app.install(TEAM, &scopes).await;
    app
}

/// `chat.postMessage` bodies exactly as the bridge sent them.
fn sent_posts(app: &TestApp) -> Vec<Value> {
    app.slack
        .calls("chat.postMessage")
        .iter()
        .map(|c| c.json())
        .collect()
}

fn posted_texts(app: &TestApp) -> Vec<String> {
    app.slack
        .posts()
        .iter()
        .map(|p| p["text"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn an_agent_reply_reaches_the_visitors_dm_with_the_bot_token() {
    let app = app().await;
    let callback = agent_reply(DM_VISITOR, "1094483487342741948", "Hello & welcome <3");
    let response = app.easemob_callback(&callback).await;
    assert_eq!(response.status, 200, "{response:?}");

    let calls = app.slack.calls("chat.postMessage");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].bearer(), Some(TOKEN));
    assert!(calls[0].query.iter().all(|(k, _)| k != "token"));
    assert_eq!(
        calls[0].json(),
        json!({
            "channel": "D0ADA",
            "text": "*Alice Agent:* Hello &amp; welcome &lt;3",
            "unfurl_links": false
        })
    );
    // Nothing went to Easemob: the reply only travels to Slack.
    assert!(app.easemob.server.requests().is_empty());
}

#[tokio::test]
async fn with_chat_write_customize_the_agent_is_the_posts_author() {
    let app = app_with_customize().await;
    let response = app
        .easemob_callback(&agent_reply(DM_VISITOR, "m-custom-1", "Hello"))
        .await;
    assert_eq!(response.status, 200);
    // An agent without a name or avatar: the bot's own identity, no prefix.
    let anonymous = agent_message(
        DM_VISITOR,
        "m-custom-2",
        json!([{ "type": "txt", "msg": "Anyone there?" }]),
        json!({ "weichat": { "agent": { "userNickname": "", "avatar": "" } } }),
    );
    assert_eq!(app.easemob_callback(&anonymous).await.status, 200);
    assert_eq!(
        sent_posts(&app),
        vec![
            json!({
                "channel": "D0ADA",
                "text": "Hello",
                "username": AGENT_NAME,
                "icon_url": AGENT_AVATAR_URL,
                "unfurl_links": false
            }),
            json!({ "channel": "D0ADA", "text": "Anyone there?", "unfurl_links": false }),
        ]
    );
}

#[tokio::test]
async fn without_customize_the_agent_name_is_a_bold_prefix_and_no_avatar() {
    let app = app().await;
    let callback = agent_message(
        DM_VISITOR,
        "m-prefix-1",
        json!([{ "type": "txt", "msg": "Hi" }]),
        json!({ "weichat": { "agent": { "userNickname": "Bob <Support>", "avatar": "//kefu.example.com/b.png" } } }),
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert_eq!(
        sent_posts(&app),
        vec![
            json!({ "channel": "D0ADA", "text": "*Bob &lt;Support&gt;:* Hi", "unfurl_links": false })
        ]
    );
}

#[tokio::test]
async fn the_lower_cased_visitor_id_is_restored_to_slack_ids() {
    let app = app().await;
    let callback = agent_reply(CHANNEL_VISITOR, "m-case-1", "restored");
    assert_eq!(callback["to"], "t0team1_u0ada_c0support");
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    let posts = sent_posts(&app);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["channel"], "C0SUPPORT");
    assert_eq!(app.slack.calls("chat.postMessage")[0].bearer(), Some(TOKEN));
}

#[tokio::test]
async fn the_visitors_own_message_echoed_back_is_not_posted() {
    let app = app().await;
    let echo = visitor_echo(DM_VISITOR, "m-echo-1", "my own question");
    assert_eq!(echo["from"], "t0team1_u0ada_d0ada");
    for event_type in ["chat", "chat_offline"] {
        let response = app
            .easemob_callback(&as_event_type(echo.clone(), event_type))
            .await;
        assert_eq!(response.status, 200);
    }
    assert!(app.slack.server.requests().is_empty());
}

#[tokio::test]
async fn a_duplicate_msg_id_is_posted_once_also_as_chat_offline() {
    let app = app().await;
    let callback = agent_reply(DM_VISITOR, "m-dup-1", "only once");
    for _ in 0..3 {
        assert_eq!(app.easemob_callback(&callback).await.status, 200);
    }
    let offline = as_event_type(callback.clone(), "chat_offline");
    assert_eq!(app.easemob_callback(&offline).await.status, 200);
    // A cold instance finds the claim in the table.
    let cold = app.another_instance();
    let request = callback_request(callback.to_string().as_bytes(), "application/json");
    assert_eq!(easemob_callback::handle(&cold, &request).await.status, 200);
    assert_eq!(posted_texts(&app), vec!["*Alice Agent:* only once"]);
    assert_eq!(app.slack.calls("chat.postMessage").len(), 1);
}

#[tokio::test]
async fn a_chat_offline_callback_alone_is_delivered() {
    let app = app().await;
    let offline = as_event_type(
        agent_reply(DM_VISITOR, "m-off-1", "while you were away"),
        "chat_offline",
    );
    assert_eq!(app.easemob_callback(&offline).await.status, 200);
    assert_eq!(
        posted_texts(&app),
        vec!["*Alice Agent:* while you were away"]
    );
}

#[tokio::test]
async fn the_same_callback_ten_times_at_once_is_posted_once() {
    let app = app().await;
    let callback = agent_reply(DM_VISITOR, "m-race-1", "racing retries");
    let attempts = (0..10).map(|_| app.easemob_callback(&callback));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert_eq!(posted_texts(&app), vec!["*Alice Agent:* racing retries"]);
}

#[tokio::test]
async fn bad_missing_and_empty_security_are_401_and_nothing_is_done() {
    let app = app().await;
    let good = agent_reply(DM_VISITOR, "m-forged-1", "forged");
    let mut wrong = good.clone();
    wrong["security"] = json!(bridge_tests::signing::easemob_security(
        good["callId"].as_str().unwrap(),
        "not-the-secret",
        good["timestamp"].as_i64().unwrap()
    ));
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("security");
    let mut empty = good.clone();
    empty["security"] = json!("");
    let mut null = good.clone();
    null["security"] = Value::Null;
    let mut other_time = good.clone();
    other_time["timestamp"] = json!(good["timestamp"].as_i64().unwrap() + 1);
    let mut other_call = good.clone();
    other_call["callId"] = json!("local-org#local-app_other");
    let mut no_call_id = good.clone();
    no_call_id.as_object_mut().unwrap().remove("callId");
    for (case, body) in [
        ("wrong secret", wrong),
        ("missing", missing),
        ("empty", empty),
        ("null", null),
        ("changed timestamp", other_time),
        ("changed callId", other_call),
        ("no callId", no_call_id),
    ] {
        let response = app.easemob_callback(&body).await;
        assert_eq!(response.status, 401, "{case}: {response:?}");
        assert!(!response.body.is_empty(), "{case}: a short reason");
    }
    assert!(app.slack.server.requests().is_empty());
    // No claim was taken: the message id is still free.
    let claim = app
        .bridge
        .store
        .claim(&ClaimKey::EasemobMessage("m-forged-1".into()), 30)
        .await
        .unwrap();
    assert_eq!(claim, Claim::Acquired { parts_done: 0 });
}

/// `security` covers neither `msg_id` nor the payload, so a captured
/// (callId, timestamp, security) must not carry another message, and a
/// genuine callback must not be replayed after its claim may have expired
/// (docs/design.md §3 "Callback"). Each is 401 with nothing done; the
/// genuine callback is then posted once.
#[tokio::test]
async fn forged_and_replayed_callbacks_are_401_and_the_genuine_one_is_posted_once() {
    let app = app().await;
    let now = kefu_bridge::clock::now_epoch_millis();
    let genuine = agent_reply(
        DM_VISITOR,
        "1094483487342741948",
        "Your refund is on its way",
    );
    // The captured triple on a new message: another msg_id, another
    // recipient, phishing text.
    let mut forged = agent_reply(
        CHANNEL_VISITOR,
        "1094483487342749999",
        "Please verify your account at https://phish.example",
    );
    for field in ["callId", "timestamp", "security"] {
        forged[field] = genuine[field].clone();
    }
    // A genuine callback from three days ago, correctly signed.
    let mut three_days_old = agent_reply(DM_VISITOR, "1094483487342740001", "old news");
    three_days_old["timestamp"] = json!(now - 3 * 86_400_000);
    sign(&mut three_days_old);
    // Dated six minutes ahead, correctly signed.
    let mut ahead = agent_reply(DM_VISITOR, "1094483487342740002", "from the future");
    ahead["timestamp"] = json!(now + 6 * 60_000);
    sign(&mut ahead);
    // Correctly signed, but for another app's key.
    let mut other_app = agent_reply(DM_VISITOR, "1094483487342740003", "other app");
    other_app["callId"] = json!("other-org#other-app_1094483487342740003");
    other_app["security"] = json!(bridge_tests::signing::easemob_security(
        "other-org#other-app_1094483487342740003",
        bridge_tests::signing::LOCAL_EASEMOB_CALLBACK_SECRET,
        other_app["timestamp"].as_i64().unwrap()
    ));
    // Hostile timestamps, correctly signed: refused, no overflow.
    let mut hostile = Vec::new();
    for (i, timestamp) in [
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!("-1"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut callback = agent_reply(DM_VISITOR, &format!("10944834873427401{i:02}"), "x");
        callback["timestamp"] = timestamp;
        let call_id = callback["callId"].as_str().unwrap().to_string();
        let digits = match &callback["timestamp"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        callback["security"] = json!(bridge_tests::signing::easemob_security(
            &call_id,
            bridge_tests::signing::LOCAL_EASEMOB_CALLBACK_SECRET,
            &digits
        ));
        hostile.push((format!("timestamp {digits}"), callback));
    }
    let mut cases = vec![
        ("captured signature on another msg_id".to_string(), forged),
        ("three days old".to_string(), three_days_old),
        ("six minutes ahead".to_string(), ahead),
        ("another app's callId".to_string(), other_app),
    ];
    cases.extend(hostile);
    for (case, body) in &cases {
        for event_type in ["chat", "chat_offline"] {
            let response = app
                .easemob_callback(&as_event_type(body.clone(), event_type))
                .await;
            assert_eq!(response.status, 401, "{case}: {response:?}");
            assert!(!response.body.is_empty(), "{case}: a short reason");
        }
    }
    assert!(app.slack.server.requests().is_empty());
    assert!(app.dead_letters().await.is_empty());

    for event_type in ["chat", "chat_offline", "chat"] {
        let response = app
            .easemob_callback(&as_event_type(genuine.clone(), event_type))
            .await;
        assert_eq!(response.status, 200, "{response:?}");
    }
    assert_eq!(
        posted_texts(&app),
        vec!["*Alice Agent:* Your refund is on its way"]
    );
    // The forged message id was never claimed.
    let claim = app
        .bridge
        .store
        .claim(&ClaimKey::EasemobMessage("1094483487342749999".into()), 30)
        .await
        .unwrap();
    assert_eq!(claim, Claim::Acquired { parts_done: 0 });
}

/// The App Key in `callId` is compared without regard to case: Easemob
/// treats app keys and user names case-insensitively; `msg_id` binds the
/// message exactly. The edges of the window are inside it.
#[tokio::test]
async fn the_app_key_is_case_insensitive_and_the_window_edges_are_accepted() {
    let app = app().await;
    let now = kefu_bridge::clock::now_epoch_millis();
    let mut upper = agent_reply(DM_VISITOR, "1094483487342742001", "upper-case app key");
    let call_id = format!(
        "{}_1094483487342742001",
        bridge_tests::signing::local_easemob_app_key().to_uppercase()
    );
    upper["callId"] = json!(call_id);
    upper["security"] = json!(bridge_tests::signing::easemob_security(
        &call_id,
        bridge_tests::signing::LOCAL_EASEMOB_CALLBACK_SECRET,
        upper["timestamp"].as_i64().unwrap()
    ));
    assert_eq!(app.easemob_callback(&upper).await.status, 200);
    // Almost 24 h old (Easemob's retry of a message from yesterday) and a
    // few minutes ahead (clock skew) are still genuine.
    let mut day_old = agent_reply(DM_VISITOR, "1094483487342742002", "from yesterday");
    day_old["timestamp"] = json!(now - 86_400_000 + 60_000);
    sign(&mut day_old);
    assert_eq!(app.easemob_callback(&day_old).await.status, 200);
    let mut skewed = agent_reply(DM_VISITOR, "1094483487342742003", "clock skew");
    skewed["timestamp"] = json!(now + 4 * 60_000);
    sign(&mut skewed);
    assert_eq!(app.easemob_callback(&skewed).await.status, 200);
    assert_eq!(
        posted_texts(&app),
        vec![
            "*Alice Agent:* upper-case app key",
            "*Alice Agent:* from yesterday",
            "*Alice Agent:* clock skew"
        ]
    );
}

#[tokio::test]
async fn a_timestamp_sent_as_a_string_verifies_too() {
    let app = app().await;
    let mut callback = agent_reply(DM_VISITOR, "m-ts-1", "string timestamp");
    callback["timestamp"] = json!(callback["timestamp"].as_i64().unwrap().to_string());
    sign(&mut callback);
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert_eq!(posted_texts(&app), vec!["*Alice Agent:* string timestamp"]);
}

#[tokio::test]
async fn callbacks_not_for_us_get_200_and_nothing_is_posted() {
    let app = app().await;
    let cases = vec![
        (
            "unknown team",
            agent_reply("T0STRANGER_U0X_D0X", "m-skip-1", "hello?"),
        ),
        (
            "to is not a visitor id",
            agent_reply("kefuchannelimid_other", "m-skip-2", "hello?"),
        ),
        (
            "to has four parts",
            agent_reply("t0team1_u0ada_d0ada_x", "m-skip-3", "hello?"),
        ),
        (
            "from another user",
            message_callback(
                "some_other_user",
                DM_VISITOR,
                "m-skip-4",
                json!([{ "type": "txt", "msg": "hi" }]),
                json!({}),
            ),
        ),
        (
            "not a message event",
            as_event_type(agent_reply(DM_VISITOR, "m-skip-5", "x"), "user_status"),
        ),
    ];
    for (case, body) in cases {
        let response = app.easemob_callback(&body).await;
        assert_eq!(response.status, 200, "{case}: {response:?}");
    }
    assert!(app.slack.calls("chat.postMessage").is_empty());
}

#[tokio::test]
async fn the_service_number_is_matched_case_insensitively() {
    let app = app().await;
    let mut callback = agent_reply(DM_VISITOR, "m-upper-1", "from KEFU");
    callback["from"] = json!(bridge_tests::signing::LOCAL_EASEMOB_SERVICE_NUMBER.to_uppercase());
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert_eq!(posted_texts(&app), vec!["*Alice Agent:* from KEFU"]);
}

#[tokio::test]
async fn slack_429_is_waited_out_once_and_the_reply_posted() {
    let app = app().await;
    app.slack
        .fail_once("chat.postMessage", Fault::RateLimited(1));
    let started = std::time::Instant::now();
    let response = app
        .easemob_callback(&agent_reply(DM_VISITOR, "m-429-1", "after a pause"))
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(app.slack.calls("chat.postMessage").len(), 2);
    assert_eq!(posted_texts(&app), vec!["*Alice Agent:* after a pause"]);
}

#[tokio::test]
async fn slack_429_beyond_the_budget_is_stored_answered_200_and_the_drain_posts_once() {
    let app = app().await;
    app.slack
        .fail_once("chat.postMessage", Fault::RateLimited(30));
    let callback = agent_reply(DM_VISITOR, "m-429-2", "later");
    let first = app.easemob_callback(&callback).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert!(app.slack.posts().is_empty());
    // Durably accepted: the outbox holds it, due no sooner than Retry-After.
    let waiting = app.waiting(Direction::ToSlack).await;
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0].next_attempt_at >= kefu_bridge::clock::now_epoch_secs() + 29);
    // A redelivery is already accepted; a drain before it is due posts nothing.
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert_eq!(app.drain(Direction::ToSlack).await.delivered, 0);
    app.make_due().await;
    assert_eq!(app.drain(Direction::ToSlack).await.delivered, 1);
    assert_eq!(app.drain(Direction::ToSlack).await.delivered, 0);
    assert_eq!(posted_texts(&app), vec!["*Alice Agent:* later"]);
}

#[tokio::test]
async fn slack_500_is_stored_answered_200_and_the_drain_posts_once() {
    let app = app().await;
    app.slack.fail_once("chat.postMessage", Fault::Status(500));
    let callback = agent_reply(DM_VISITOR, "m-500-1", "survives a 500");
    let first = app.easemob_callback(&callback).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert!(app.slack.posts().is_empty());
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert_eq!(
        app.easemob_callback(&as_event_type(callback, "chat_offline"))
            .await
            .status,
        200
    );
    app.make_due().await;
    app.drain(Direction::ToSlack).await;
    assert_eq!(posted_texts(&app), vec!["*Alice Agent:* survives a 500"]);
    assert!(app.waiting(Direction::ToSlack).await.is_empty());
}

#[tokio::test]
async fn a_slow_slack_is_stored_answered_200_and_the_drain_posts() {
    let app = app().await;
    // Longer than the client's 2 s request timeout.
    app.slack.fail_once(
        "chat.postMessage",
        Fault::Slow(std::time::Duration::from_millis(2_500)),
    );
    let callback = agent_reply(DM_VISITOR, "m-slow-1", "slowly");
    let first = app.easemob_callback(&callback).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    app.make_due().await;
    app.drain(Direction::ToSlack).await;
    // The slow post may have landed after the client gave up: Slack has no
    // idempotency key, so two posts are possible here, never zero.
    assert!(!app.slack.posts().is_empty());
    assert!(app.waiting(Direction::ToSlack).await.is_empty());
}

#[tokio::test]
async fn a_failure_midway_stores_the_remaining_posts_and_the_drain_posts_them() {
    let app = app().await;
    let text = "x".repeat(3_900) + " " + &"y".repeat(3_900) + " " + &"z".repeat(3_900);
    app.slack.fail_once("chat.postMessage", Fault::Pass);
    app.slack.fail_once("chat.postMessage", Fault::Status(503));
    let callback = agent_reply(DM_VISITOR, "m-mid-1", &text);
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert_eq!(app.slack.posts().len(), 1);
    let waiting = app.waiting(Direction::ToSlack).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].parts.len(), 2, "only what was not posted");
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    app.make_due().await;
    app.drain(Direction::ToSlack).await;
    let texts = posted_texts(&app);
    assert_eq!(texts.len(), 3, "three parts, none twice");
    assert_eq!(texts[0], format!("*Alice Agent:* {}", "x".repeat(3_900)));
    assert_eq!(texts[1], "y".repeat(3_900));
    assert_eq!(texts[2], "z".repeat(3_900));
}

#[tokio::test]
async fn a_dead_token_marks_the_installation_for_reinstall_and_answers_200() {
    let app = app().await;
    for (i, code) in ["invalid_auth", "token_revoked", "account_inactive"]
        .iter()
        .enumerate()
    {
        let team = format!("T0DEAD{i}");
        app.install(&team, SCOPES).await;
        app.slack
            .fail_once("chat.postMessage", Fault::Error(code.to_string()));
        let visitor = format!("{team}_U0ADA_D0ADA");
        let callback = agent_reply(&visitor, &format!("m-auth-{i}"), "hello");
        let response = app.easemob_callback(&callback).await;
        assert_eq!(response.status, 200, "{code}: {response:?}");
        let installation = app
            .bridge
            .store
            .get_installation(&WorkspaceKey::Team(team.clone()))
            .await
            .unwrap()
            .unwrap();
        assert!(installation.needs_reinstall, "{code}");
        // Easemob does not retry a 200; a redelivery is not posted either.
        assert_eq!(app.easemob_callback(&callback).await.status, 200);
    }
    assert_eq!(app.slack.calls("chat.postMessage").len(), 3);
    assert!(app.slack.posts().is_empty());
    // Each reply is a dead letter saying why.
    let letters = app.dead_letters().await;
    assert_eq!(letters.len(), 3);
    for (letter, code) in letters
        .iter()
        .zip(["invalid_auth", "token_revoked", "account_inactive"])
    {
        assert!(letter.reason.contains(code), "{letter:?}");
    }
}

#[tokio::test]
async fn a_channel_the_bot_cannot_post_in_is_answered_200() {
    let app = app().await;
    for (i, code) in ["channel_not_found", "not_in_channel"].iter().enumerate() {
        app.slack
            .fail_once("chat.postMessage", Fault::Error(code.to_string()));
        let callback = agent_reply(CHANNEL_VISITOR, &format!("m-chan-{i}"), "hello");
        assert_eq!(app.easemob_callback(&callback).await.status, 200, "{code}");
        assert_eq!(app.easemob_callback(&callback).await.status, 200, "{code}");
    }
    assert_eq!(app.slack.calls("chat.postMessage").len(), 2);
    let installation = app
        .bridge
        .store
        .get_installation(&WorkspaceKey::Team(TEAM.into()))
        .await
        .unwrap()
        .unwrap();
    assert!(!installation.needs_reinstall);
}

#[tokio::test]
async fn a_reply_in_a_channel_goes_to_the_thread_the_visitor_wrote_in() {
    let app = app().await;
    let mut threaded = user_message("C0SUPPORT", "channel", "U0ADA", "in a thread", "18.0002");
    threaded["thread_ts"] = json!("18.0001");
    let event = event_callback(TEAM, "EvThread1", threaded);
    assert_eq!(app.slack_event(&event).await.status, 200);

    let reply = agent_reply(CHANNEL_VISITOR, "m-thread-1", "answer in thread");
    assert_eq!(app.easemob_callback(&reply).await.status, 200);

    // The visitor writes at the top level again: the next reply follows.
    let top = user_message("C0SUPPORT", "channel", "U0ADA", "top level", "18.0003");
    let event = event_callback(TEAM, "EvThread2", top);
    assert_eq!(app.slack_event(&event).await.status, 200);
    let reply = agent_reply(CHANNEL_VISITOR, "m-thread-2", "answer at top level");
    assert_eq!(app.easemob_callback(&reply).await.status, 200);

    let posts = sent_posts(&app);
    assert_eq!(
        posts,
        vec![
            json!({ "channel": "C0SUPPORT", "text": "*Alice Agent:* answer in thread", "thread_ts": "18.0001", "unfurl_links": false }),
            json!({ "channel": "C0SUPPORT", "text": "*Alice Agent:* answer at top level", "unfurl_links": false }),
        ]
    );
}

#[tokio::test]
async fn a_long_reply_is_split_into_ordered_posts_of_at_most_4000_characters() {
    let app = app().await;
    let text: String = (0..2_000).map(|i| format!("w{i}&<x> ")).collect();
    let callback = agent_reply(DM_VISITOR, "m-long-1", &text);
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    let texts = posted_texts(&app);
    assert!(texts.len() >= 4, "{} parts", texts.len());
    assert!(texts.iter().all(|t| t.chars().count() <= 4_000));
    assert!(texts[0].starts_with("*Alice Agent:* w0&amp;&lt;x&gt; w1"));
    assert!(texts[1..].iter().all(|t| !t.contains("Alice Agent")));
    let words: Vec<String> = texts
        .iter()
        .map(|t| t.trim_start_matches("*Alice Agent:* "))
        .flat_map(|t| t.split_whitespace().map(str::to_string))
        .collect();
    let expected: Vec<String> = (0..2_000).map(|i| format!("w{i}&amp;&lt;x&gt;")).collect();
    assert_eq!(words, expected);
}

#[tokio::test]
async fn cmd_bodies_are_not_posted() {
    let app = app().await;
    for (i, action) in ["KF-ACK", "KEFU_MESSAGE_RECALL", "TransferToKf"]
        .iter()
        .enumerate()
    {
        let callback = agent_message(
            DM_VISITOR,
            &format!("m-cmd-{i}"),
            json!([{ "type": "cmd", "action": action }]),
            agent_ext(),
        );
        assert_eq!(
            app.easemob_callback(&callback).await.status,
            200,
            "{action}"
        );
    }
    assert!(app.slack.server.requests().is_empty());
}

#[tokio::test]
async fn a_robot_menu_is_posted_as_its_title_and_items() {
    let app = app().await;
    let mut ext = agent_ext();
    ext["msgtype"] = json!({ "choice": {
        "title": "How can we help?",
        "items": [{ "id": "1", "name": "Orders" }, { "id": "2", "name": "Refunds & returns" }, { "id": "TransferToKf", "name": "Talk to a person" }]
    } });
    let callback = agent_message(
        DM_VISITOR,
        "m-menu-1",
        json!([{ "type": "txt", "msg": "How can we help?" }]),
        ext,
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert_eq!(
        posted_texts(&app),
        vec!["*Alice Agent:* How can we help?\n• Orders\n• Refunds &amp; returns\n• Talk to a person"]
    );
}

#[tokio::test]
async fn a_satisfaction_invitation_asks_for_a_rating() {
    let app = app().await;
    let mut ext = agent_ext();
    ext["weichat"]["ctrlType"] = json!("inviteEnquiry");
    ext["weichat"]["ctrlArgs"] = json!({ "inviteId": 42, "serviceSessionId": "9f3e-session" });
    let callback = agent_message(
        DM_VISITOR,
        "m-enquiry-1",
        json!([{ "type": "txt", "msg": "" }]),
        ext,
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    // Rating buttons (tests/tests/rich_conversations.rs); this is the
    // fallback text notifications show.
    assert_eq!(
        posted_texts(&app),
        vec!["*Alice Agent:* How would you rate this conversation?\nRate from 1 (poor) to 5 (excellent)."]
    );
}

#[tokio::test]
async fn files_are_announced_by_kind_and_name() {
    let app = app().await;
    let callback = agent_message(
        DM_VISITOR,
        "m-file-1",
        json!([{
            "type": "img", "url": "http://127.0.0.1:1/local-org/local-app/chatfiles/0e1f", "filename": "photo.jpg",
            "secret": "share-secret-1", "size": { "width": 640, "height": 480 }, "file_length": 52_311
        }]),
        agent_ext(),
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    let callback = agent_message(
        DM_VISITOR,
        "m-file-2",
        json!([{ "type": "file", "url": "u", "filename": "invoice.pdf", "secret": "s", "file_length": 1 }]),
        agent_ext(),
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert_eq!(
        posted_texts(&app),
        vec![
            "*Alice Agent:* 📎 Agent sent an image: photo.jpg",
            "*Alice Agent:* 📎 Agent sent a file: invoice.pdf"
        ]
    );
    // The share-secret never reaches Slack.
    assert!(app
        .slack
        .server
        .requests()
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.body).contains("share-secret")));
}

#[tokio::test]
async fn malformed_requests_get_4xx_and_nothing_is_done() {
    let app = app().await;
    let good = agent_reply(DM_VISITOR, "m-bad-1", "x").to_string();
    let mut outline = agent_reply(DM_VISITOR, "m-bad-2", "x");
    outline["payload"] = json!("not an object");
    let mut no_msg_id = agent_reply(DM_VISITOR, "", "x");
    no_msg_id.as_object_mut().unwrap().remove("msg_id");
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("empty", "application/json", Vec::new(), 400),
        (
            "not json",
            "application/json",
            b"{\"callId\":".to_vec(),
            400,
        ),
        ("an array", "application/json", b"[1,2]".to_vec(), 400),
        (
            "invalid utf-8",
            "application/json",
            vec![0xff, 0xfe, 0x7b],
            400,
        ),
        (
            "form encoded",
            "application/x-www-form-urlencoded",
            good.clone().into_bytes(),
            400,
        ),
        (
            "signed, wrong outline",
            "application/json",
            outline.to_string().into_bytes(),
            400,
        ),
        (
            "signed, no msg_id",
            "application/json",
            no_msg_id.to_string().into_bytes(),
            400,
        ),
    ];
    for (case, content_type, body, status) in cases {
        let request = callback_request(&body, content_type);
        let response = easemob_callback::handle(&app.bridge, &request).await;
        assert_eq!(response.status, status, "{case}: {response:?}");
        assert!(!response.body.is_empty(), "{case}: a short reason");
    }
    let mut get = callback_request(good.as_bytes(), "application/json");
    get.method = "GET".into();
    let response = easemob_callback::handle(&app.bridge, &get).await;
    assert_eq!(response.status, 405);
    assert!(app.slack.server.requests().is_empty());

    // Media types compare case-insensitively, ignoring parameters.
    let request = callback_request(good.as_bytes(), "Application/JSON; charset=UTF-8");
    assert_eq!(
        easemob_callback::handle(&app.bridge, &request).await.status,
        200
    );
    assert_eq!(posted_texts(&app), vec!["*Alice Agent:* x"]);
}

#[tokio::test]
async fn dynamodb_unreachable_posts_nothing_and_answers_5xx() {
    let app = app().await;
    let http = kefu_bridge::bridge::http_client();
    let port = bridge_tests::dynamodb_local::free_port().unwrap();
    let db = bridge_tests::app::local_dynamodb(&format!("http://127.0.0.1:{port}"));
    let broken = kefu_bridge::Bridge::new(app.bridge.config.clone(), db, http);
    let callback = agent_reply(DM_VISITOR, "m-nodb-1", "no table");
    let request = callback_request(callback.to_string().as_bytes(), "application/json");
    let response = easemob_callback::handle(&broken, &request).await;
    assert!(response.status >= 500, "{response:?}");
    assert!(app.slack.server.requests().is_empty());
}
