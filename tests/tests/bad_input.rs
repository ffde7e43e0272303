//! Whatever arrives, a deliberate answer: a 4xx, or a 200 that skips it (and
//! says so in the log). Never a panic, never a 5xx — a 5xx makes Slack
//! retry and counts toward Easemob's ban — and nothing sent downstream for
//! input that is not a genuine message.
//!
//! Both handlers take a corpus of broken bodies (truncated and invalid
//! JSON, 1 MB bodies, wrong types, unknown types, invalid UTF-8, odd ids),
//! and `lambda::dispatch` takes broken API Gateway events (base64 flags
//! that lie, header names in any case, wrong field types).

use std::time::Duration;

use base64::Engine;
use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::*;
use bridge_tests::runtime_emulator::apigw_event;
use bridge_tests::signing::*;
use bridge_tests::TestApp;
use kefu_bridge::relay::{easemob_callback, outbox, slack_events};
use kefu_bridge::store::Direction;
use serde_json::{json, Value};

const TEAM: &str = "T0TEAM1";
const DM_VISITOR: &str = "T0TEAM1_U0ADA_D0ADA";
const MEGABYTE: usize = 1 << 20;

async fn app() -> TestApp {
    let app = TestApp::start().await;
    app.install(TEAM, &["chat:write", "im:history", "users:read"])
        .await;
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    app
}

fn deliberate(status: u16) -> bool {
    status == 200 || (400..500).contains(&status)
}

fn dm(event_id: &str, text: &str) -> Value {
    event_callback(
        TEAM,
        event_id,
        user_message("D0ADA", "im", "U0ADA", text, "1.0001"),
    )
}

/// A DM event with one field of the event replaced.
fn dm_with(event_id: &str, field: &str, value: Value) -> Value {
    let mut event = dm(event_id, "hello");
    event["event"][field] = value;
    event
}

/// An envelope with one top-level field replaced.
fn envelope_with(event_id: &str, field: &str, value: Value) -> Value {
    let mut event = dm(event_id, "hello");
    event[field] = value;
    event
}

fn nested(depth: usize) -> Vec<u8> {
    let mut body = "[".repeat(depth);
    body.push_str(&"]".repeat(depth));
    body.into_bytes()
}

/// Signed Slack bodies that are not a message to forward, each with the
/// answers allowed (`None`: any deliberate answer).
fn slack_corpus() -> Vec<(String, Vec<u8>, Option<u16>)> {
    let json = |v: Value| v.to_string().into_bytes();
    let good = dm("EvGood", "hello").to_string();
    let mut corpus: Vec<(String, Vec<u8>, Option<u16>)> = vec![
        ("empty".into(), Vec::new(), Some(400)),
        ("one brace".into(), b"{".to_vec(), Some(400)),
        (
            "truncated envelope".into(),
            good.as_bytes()[..good.len() / 2].to_vec(),
            Some(400),
        ),
        ("null".into(), b"null".to_vec(), Some(400)),
        ("array".into(), b"[]".to_vec(), Some(400)),
        ("string".into(), b"\"event_callback\"".to_vec(), Some(400)),
        ("number".into(), b"42".to_vec(), Some(400)),
        (
            "invalid UTF-8".into(),
            [
                b"{\"type\":\"event_callback\",\"x\":\"".as_slice(),
                &[0xff, 0xfe, 0xc0],
                b"\"}",
            ]
            .concat(),
            Some(400),
        ),
        (
            "BOM then JSON".into(),
            [b"\xef\xbb\xbf".as_slice(), good.as_bytes()].concat(),
            Some(400),
        ),
        ("nested 100k deep".into(), nested(100_000), Some(400)),
        ("1 MB of junk".into(), vec![b'a'; MEGABYTE], Some(400)),
        (
            "1 MB unknown envelope".into(),
            json(json!({ "type": "brand_new", "pad": "x".repeat(MEGABYTE) })),
            Some(200),
        ),
        (
            "url_verification without challenge".into(),
            json(json!({ "type": "url_verification" })),
            Some(400),
        ),
        (
            "app_rate_limited, odd team".into(),
            json(json!({ "type": "app_rate_limited", "team_id": 7 })),
            None,
        ),
        (
            "type is a number".into(),
            json(json!({ "type": 5 })),
            Some(400),
        ),
        (
            "type is null".into(),
            json(json!({ "type": null })),
            Some(400),
        ),
        (
            "unknown event type".into(),
            json(event_callback(
                TEAM,
                "EvUnknown",
                json!({ "type": "reaction_added" }),
            )),
            Some(200),
        ),
        (
            "event without type".into(),
            json(event_callback(TEAM, "EvNoType", json!({ "text": "x" }))),
            None,
        ),
        (
            "tokens_revoked, tokens a string".into(),
            json(event_callback(
                TEAM,
                "EvRevoked",
                json!({ "type": "tokens_revoked", "tokens": "x" }),
            )),
            None,
        ),
    ];
    for (field, value) in [
        ("event_id", json!(5)),
        ("event_id", json!(null)),
        ("team_id", json!(null)),
        ("team_id", json!(["T0TEAM1"])),
        ("event", json!("a message")),
        ("event", json!([])),
        ("event", json!(null)),
        ("api_app_id", json!({})),
        ("enterprise_id", json!(12)),
        ("is_enterprise_install", json!("yes")),
        ("event_time", json!("now")),
    ] {
        corpus.push((
            format!("envelope {field} = {value}"),
            json(envelope_with("EvEnv", field, value)),
            Some(400),
        ));
    }
    for (i, (field, value)) in [
        ("text", json!(42)),
        ("text", json!(["a"])),
        ("user", json!([])),
        ("channel", json!({})),
        ("files", json!("x")),
        ("files", json!([1, 2])),
        ("subtype", json!(5)),
        ("message", json!("x")),
        ("thread_ts", json!(1.5)),
        ("bot_profile", json!("x")),
        ("channel_type", json!(9)),
        ("bot_id", json!(true)),
    ]
    .into_iter()
    .enumerate()
    {
        corpus.push((
            format!("event {field} = {value}"),
            json(dm_with(&format!("EvType{i}"), field, value)),
            Some(400),
        ));
    }
    // Odd ids: refused, or skipped, never a table error.
    for (name, event, status) in [
        (
            "event_id of 5,000 characters",
            dm(&"E".repeat(5_000), "x"),
            Some(400),
        ),
        ("event_id with a NUL", dm("Ev\u{0}1", "x"), Some(400)),
        ("empty event_id", dm("", "x"), Some(400)),
        (
            "team_id T-1",
            envelope_with("EvT1", "team_id", json!("T-1")),
            Some(400),
        ),
        (
            "empty team_id",
            envelope_with("EvT2", "team_id", json!("")),
            Some(400),
        ),
        (
            "team_id of 5,000 characters",
            envelope_with("EvT3", "team_id", json!("T".repeat(5_000))),
            Some(400),
        ),
        (
            "enterprise_id e!",
            envelope_with("EvT4", "enterprise_id", json!("e!")),
            Some(400),
        ),
        (
            "user <script>",
            dm_with("EvU1", "user", json!("U<script>")),
            Some(200),
        ),
        (
            "user of 5,000 characters",
            dm_with("EvU2", "user", json!("U".repeat(5_000))),
            Some(200),
        ),
        (
            "channel with a space",
            dm_with("EvU3", "channel", json!("D0 ADA")),
            Some(200),
        ),
        (
            "lower-case channel",
            dm_with("EvU4", "channel", json!("d0ada")),
            Some(200),
        ),
        (
            "channel_type unknown",
            dm_with("EvU5", "channel_type", json!("app_home")),
            Some(200),
        ),
    ] {
        corpus.push((name.into(), json(event), status));
    }
    corpus
}

#[tokio::test]
async fn slack_events_answers_every_broken_body_deliberately() {
    let app = app().await;
    let mut outcomes = Vec::new();
    for (name, body, expected) in slack_corpus() {
        let request = app.signed_slack_request(&body);
        let response = slack_events::handle(&app.bridge, &request).await;
        assert!(
            deliberate(response.status),
            "{name}: {} {}",
            response.status,
            response.body
        );
        if let Some(expected) = expected {
            assert_eq!(response.status, expected, "{name}: {}", response.body);
        }
        if response.status >= 400 {
            assert_eq!(response.header("x-slack-no-retry"), Some("1"), "{name}");
        }
        outcomes.push((name, response.status));
    }
    assert!(
        app.easemob.calls("messages").is_empty(),
        "nothing reached Kefu: {outcomes:?}"
    );
    // Odd but well-formed event ids are fine.
    for (i, id) in ["Ev#1/..", "Ev 你好", "Ev%00", "Ev'\"<>"]
        .iter()
        .enumerate()
    {
        let event = event_callback(
            TEAM,
            id,
            user_message("D0ADA", "im", "U0ADA", &format!("odd id {i}"), "1.0002"),
        );
        assert_eq!(app.slack_event(&event).await.status, 200, "{id}");
    }
    assert_eq!(app.easemob.texts().len(), 4);
}

/// Text that is all control characters, NULs, mentions of garbage ids, a
/// mention of a 5,000-character id, or 1 MB: forwarded or queued, never 5xx.
#[tokio::test]
async fn odd_and_huge_message_texts_are_forwarded_within_the_budget() {
    let app = app().await;
    let huge = "word ".repeat(MEGABYTE / 5);
    let texts = [
        "\u{0}\u{1}\u{7f} nul and control".to_string(),
        format!("<@{}> hi", "U".repeat(5_000)),
        "<@u0ada> <@> <@U0ADA|> <#> <!> <|> <<<>>> &amp;&amp".to_string(),
        "\u{202e}right-to-left\u{200b} zero width".to_string(),
        huge.clone(),
    ];
    for (i, text) in texts.iter().enumerate() {
        let response = app.slack_event(&dm(&format!("EvText{i}"), text)).await;
        assert_eq!(response.status, 200, "text {i}: {response:?}");
    }
    // The 1 MB message arrives whole, in order, from Kefu's side, once the
    // outbox has been drained (what did not fit the budget waited there).
    app.drain_until_empty(Duration::from_millis(200), Duration::from_secs(60))
        .await;
    let texts = app.easemob.texts();
    let huge_parts: Vec<&String> = texts.iter().filter(|t| t.starts_with("word")).collect();
    assert!(huge_parts.len() > 100, "{} parts", huge_parts.len());
    let joined: Vec<&str> = huge_parts
        .iter()
        .flat_map(|part| part.split_whitespace())
        .collect();
    assert_eq!(joined.len(), MEGABYTE / 5);
    assert!(joined.iter().all(|w| *w == "word"));
    assert!(app.dead_letters().await.is_empty());
}

fn easemob_corpus() -> Vec<(String, Vec<u8>, Option<u16>)> {
    let json = |v: Value| v.to_string().into_bytes();
    let good = agent_reply(DM_VISITOR, "m-good", "hello").to_string();
    let with = |msg_id: &str, path: &[&str], value: Value| {
        let mut callback = agent_reply(DM_VISITOR, msg_id, "hello");
        let mut target = &mut callback;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        sign(&mut callback);
        callback
    };
    let mut corpus: Vec<(String, Vec<u8>, Option<u16>)> = vec![
        ("empty".into(), Vec::new(), Some(400)),
        (
            "truncated".into(),
            good.as_bytes()[..good.len() / 2].to_vec(),
            Some(400),
        ),
        ("null".into(), b"null".to_vec(), Some(400)),
        ("array".into(), b"[{}]".to_vec(), Some(400)),
        (
            "invalid UTF-8".into(),
            vec![b'{', 0xff, 0xfe, b'}'],
            Some(400),
        ),
        ("nested 100k deep".into(), nested(100_000), Some(400)),
        ("1 MB of junk".into(), vec![b'{'; MEGABYTE], Some(400)),
        (
            "unsigned".into(),
            json(json!({ "callId": "x", "timestamp": 1 })),
            Some(401),
        ),
        (
            "1 MB, unsigned".into(),
            json(json!({ "pad": "x".repeat(MEGABYTE) })),
            Some(401),
        ),
    ];
    for (i, (path, value, status)) in [
        (vec!["payload"], json!("not an object"), Some(400)),
        (vec!["payload", "bodies"], json!("x"), Some(400)),
        (vec!["payload", "bodies"], json!([1, "x", null]), None),
        (
            vec!["payload", "bodies"],
            json!([{ "type": 5, "msg": [] }]),
            None,
        ),
        (vec!["payload", "ext"], json!("x"), Some(200)),
        (vec!["payload", "ext", "weichat"], json!(5), Some(200)),
        (
            vec!["payload", "ext", "weichat", "agent"],
            json!("x"),
            Some(200),
        ),
        (
            vec!["payload", "ext", "msgtype"],
            json!({ "choice": "x" }),
            Some(200),
        ),
        (vec!["eventType"], json!("message_recall"), Some(200)),
        (vec!["eventType"], json!(5), None),
        (vec!["from"], json!(null), Some(200)),
        (vec!["to"], json!("a_b_c"), Some(200)),
        (vec!["to"], json!("t0team1_u0ada_d0ada_x"), Some(200)),
        (vec!["to"], json!("t".repeat(5_000)), Some(200)),
        (vec!["to"], json!("t0team1_u0ada_d0ada\u{0}"), Some(200)),
        (vec!["to"], json!(["t0team1_u0ada_d0ada"]), None),
        (vec!["to"], json!("t9unknown_u0ada_d0ada"), Some(200)),
        (vec!["msg_id"], json!("9".repeat(5_000)), Some(400)),
        (vec!["msg_id"], json!("m\u{0}1"), Some(400)),
        (vec!["msg_id"], json!({}), None),
        (vec!["msg_id"], json!(""), Some(400)),
    ]
    .into_iter()
    .enumerate()
    {
        corpus.push((
            format!("{} = {value}", path.join(".")),
            json(with(&format!("m-odd-{i}"), &path, value)),
            status,
        ));
    }
    // `timestamp` and `callId` are what `security` covers: odd ones fail it.
    let mut stamp = agent_reply(DM_VISITOR, "m-stamp", "x");
    stamp["timestamp"] = json!("soon");
    corpus.push(("timestamp not digits".into(), json(stamp), Some(401)));
    let mut call = agent_reply(DM_VISITOR, "m-call", "x");
    call["callId"] = json!(42);
    corpus.push(("callId a number".into(), json(call), Some(401)));
    corpus
}

#[tokio::test]
async fn easemob_callback_answers_every_broken_body_deliberately() {
    let app = app().await;
    let mut outcomes = Vec::new();
    for (name, body, expected) in easemob_corpus() {
        let request = callback_request(&body, "application/json");
        let response = easemob_callback::handle(&app.bridge, &request).await;
        assert!(
            deliberate(response.status),
            "{name}: {} {}",
            response.status,
            response.body
        );
        if let Some(expected) = expected {
            assert_eq!(response.status, expected, "{name}: {}", response.body);
        }
        outcomes.push((name, response.status));
    }
    // Only the well-formed replies with odd ext were posted (as text).
    let posts = app.slack.posts();
    assert!(posts.iter().all(|p| p["channel"] == "D0ADA"), "{posts:?}");
    assert!(posts.len() <= 6, "{outcomes:?}");
    // A 1 MB agent reply is posted whole, in order, within the budget
    // (and the outbox for what did not fit).
    let huge = "word ".repeat(MEGABYTE / 5);
    let before = app.slack.posts().len();
    let response = app
        .easemob_callback(&agent_reply(DM_VISITOR, "m-huge", &huge))
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    app.drain_until_empty(Duration::from_millis(200), Duration::from_secs(60))
        .await;
    let words: usize = app
        .slack
        .posts()
        .iter()
        .skip(before)
        .map(|p| p["text"].as_str().unwrap().split_whitespace().count())
        .sum();
    // The first post carries the agent's name in bold.
    assert_eq!(words, MEGABYTE / 5 + 2);
}

// ── Through lambda::dispatch, as the functions run them ─────────────────

async fn dispatch_slack(app: &TestApp, event: Value) -> Value {
    let bridge = &app.bridge;
    kefu_bridge::lambda::dispatch(
        event,
        |request| async move { slack_events::handle(bridge, &request).await },
        |e| async move {
            outbox::scheduled(bridge, Direction::ToKefu, &e, outbox::drain_deadline(0)).await
        },
    )
    .await
}

async fn dispatch_easemob(app: &TestApp, event: Value) -> Value {
    let bridge = &app.bridge;
    kefu_bridge::lambda::dispatch(
        event,
        |request| async move { easemob_callback::handle(bridge, &request).await },
        |e| async move {
            outbox::scheduled(bridge, Direction::ToSlack, &e, outbox::drain_deadline(0)).await
        },
    )
    .await
}

fn status(answer: &Value) -> i64 {
    answer["statusCode"].as_i64().unwrap_or(-1)
}

/// A signed Slack request as API Gateway hands it over, header names as given.
fn slack_apigw(body: &str, names: [&str; 3], content_type: &str) -> Value {
    let now = kefu_bridge::clock::now_epoch_secs();
    let signature = slack_signature(LOCAL_SLACK_SIGNING_SECRET, now, body.as_bytes());
    apigw_event(
        "POST",
        "/slack/events",
        "",
        &[
            (names[0], content_type),
            (names[1], &now.to_string()),
            (names[2], &signature),
        ],
        Some(body),
        false,
    )
}

#[tokio::test]
async fn header_names_in_any_case_and_media_type_variants_are_accepted() {
    let app = app().await;
    let variants = [
        [
            "content-type",
            "x-slack-request-timestamp",
            "x-slack-signature",
        ],
        [
            "Content-Type",
            "X-Slack-Request-Timestamp",
            "X-Slack-Signature",
        ],
        [
            "CONTENT-TYPE",
            "X-SLACK-REQUEST-TIMESTAMP",
            "X-SLACK-SIGNATURE",
        ],
        [
            "content-Type",
            "x-Slack-request-Timestamp",
            "X-slack-SIGNATURE",
        ],
    ];
    for (i, names) in variants.iter().enumerate() {
        let body = dm(&format!("EvCase{i}"), &format!("case {i}")).to_string();
        let content_type = ["application/json", "Application/JSON; charset=UTF-8"][i % 2];
        let answer = dispatch_slack(&app, slack_apigw(&body, *names, content_type)).await;
        assert_eq!(status(&answer), 200, "{names:?}: {answer}");
    }
    assert_eq!(
        app.easemob.texts(),
        vec!["case 0", "case 1", "case 2", "case 3"]
    );

    // The same through the handler with a mixed-case HeaderMap insert.
    let body = dm("EvCase9", "case 9").to_string();
    let mut request = app.signed_slack_request(body.as_bytes());
    let signature = request.headers.remove("x-slack-signature").unwrap();
    request.headers.insert(
        http::HeaderName::from_bytes(b"X-Slack-Signature").unwrap(),
        signature,
    );
    assert_eq!(
        slack_events::handle(&app.bridge, &request).await.status,
        200
    );

    // Easemob through dispatch with capitalised headers.
    let callback = agent_reply(DM_VISITOR, "m-case-1", "cased").to_string();
    let event = apigw_event(
        "POST",
        "/easemob/callback",
        "",
        &[("Content-Type", "APPLICATION/JSON")],
        Some(&callback),
        false,
    );
    assert_eq!(status(&dispatch_easemob(&app, event).await), 200);
    assert_eq!(app.slack.posts().len(), 1);
}

#[tokio::test]
async fn broken_api_gateway_events_get_4xx_through_dispatch() {
    let app = app().await;
    let good_body = dm("EvDispatch", "x").to_string();
    let good = slack_apigw(
        &good_body,
        [
            "content-type",
            "x-slack-request-timestamp",
            "x-slack-signature",
        ],
        "application/json",
    );
    let with = |path: &[&str], value: Value| {
        let mut event = good.clone();
        let mut target = &mut event;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        event
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(good_body.as_bytes());
    let cases: Vec<(&str, Value)> = vec![
        (
            "base64 flag on plain text",
            with(&["isBase64Encoded"], json!(true)),
        ),
        ("base64 flag off on base64", with(&["body"], json!(b64))),
        (
            "isBase64Encoded a string",
            with(&["isBase64Encoded"], json!("yes")),
        ),
        (
            "header value a number",
            with(&["headers", "x-slack-signature"], json!(5)),
        ),
        (
            "header value with a newline",
            with(&["headers", "x-slack-signature"], json!("v0=a\nb")),
        ),
        ("headers a list", with(&["headers"], json!(["a"]))),
        ("body a number", with(&["body"], json!(42))),
        ("body null", with(&["body"], json!(null))),
        ("body 1 MB", with(&["body"], json!("x".repeat(MEGABYTE)))),
        (
            "requestContext.http missing",
            with(&["requestContext", "http"], json!(null)),
        ),
        (
            "method GET",
            with(&["requestContext", "http", "method"], json!("GET")),
        ),
        (
            "method not a method",
            with(&["requestContext", "http", "method"], json!("PO ST")),
        ),
        (
            "requestContext a string",
            with(&["requestContext"], json!("x")),
        ),
        ("neither kind", json!({ "hello": "world" })),
        ("null", json!(null)),
        ("a list", json!([1, 2])),
        (
            "scheduled, detail-type a number",
            json!({ "source": "aws.events", "detail-type": 5 }),
        ),
        (
            "scheduled, time not a time",
            json!({ "source": "aws.events", "detail-type": "Scheduled Event", "time": "noon" }),
        ),
    ];
    for (name, event) in cases {
        for (route, answer) in [
            ("slack-events", dispatch_slack(&app, event.clone()).await),
            (
                "easemob-callback",
                dispatch_easemob(&app, event.clone()).await,
            ),
        ] {
            let code = status(&answer);
            assert!((400..500).contains(&code), "{route}, {name}: {answer}");
        }
    }
    assert!(app.easemob.calls("messages").is_empty());
    assert!(app.slack.calls("chat.postMessage").is_empty());

    // The good one, to show the corpus was not refused for another reason.
    assert_eq!(status(&dispatch_slack(&app, good).await), 200);
    // A real Scheduled Event is not an HTTP answer: the drain's summary.
    let scheduled = json!({
        "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "1", "time": "2026-11-26T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}
    });
    let answer = dispatch_slack(&app, scheduled).await;
    assert_eq!(answer["direction"], "TO_KEFU", "{answer}");
}
