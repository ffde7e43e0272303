//! Requests that must not go where a payload points, lookups that must not
//! outgrow a message's time, and answers only the asked visitor may give
//! (issue "Trust", items 5–7) — through the real handlers, DynamoDB Local
//! and the fake Slack and Easemob over real HTTP.
//!
//! - An agent's file is fetched only from this app's own chat files on the
//!   configured Easemob origin, without following redirects, reading at
//!   most a little of an error answer (docs/design.md §3 "Files").
//! - `<@U…>` mentions are resolved within the message's time: a few
//!   lookups at most, at once, and an unknown id is not asked about twice
//!   (docs/design.md §2 "Slack markup to plain text").
//! - A question (menu, survey, transfer offer) is answered only by the
//!   visitor it was asked of, however it reached Slack; without its record
//!   only a direct message's own user may answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::*;
use bridge_tests::fake_server::{FakeServer, Fault};
use bridge_tests::rich_kit::*;
use bridge_tests::signing::*;
use bridge_tests::{Reply, TestApp};
use kefu_bridge::easemob::EasemobClient;
use kefu_bridge::relay;
use kefu_bridge::relay::visitor_profile::MAX_LOOKUPS_PER_MESSAGE;
use kefu_bridge::secret::Secret;
use kefu_bridge::store::Direction;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TEAM: &str = "T0TEAM1";
const DM_VISITOR: &str = "T0TEAM1_U0ADA_D0ADA";
const CHANNEL_VISITOR: &str = "T0TEAM1_U0ADA_C0SUPPORT";
const SCOPES: &[&str] = &[
    "chat:write",
    "im:history",
    "channels:history",
    "users:read",
    "files:read",
    "files:write",
];

async fn app() -> TestApp {
    let app = TestApp::start().await;
    app.install(TEAM, SCOPES).await;
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    app.add_user("U0BOB", "bob", "Bob Builder");
    app
}

/// The texts of the messages the bridge posted, in order.
fn posted_texts(app: &TestApp) -> Vec<String> {
    app.slack
        .posts()
        .iter()
        .map(|p| p["text"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Downloads the fake Easemob was asked for.
fn easemob_gets(app: &TestApp) -> usize {
    app.easemob
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count()
}

/// An agent's image at `url` (with `secret`), sent to the DM visitor.
fn agent_image(msg_id: &str, url: &str, secret: &str, len: usize) -> Value {
    agent_message(
        DM_VISITOR,
        msg_id,
        json!([{ "type": "img", "url": url, "filename": "photo.png", "secret": secret,
                 "size": { "width": 8, "height": 6 }, "file_length": len }]),
        agent_ext(),
    )
}

const PHOTO_LINE: &str = "*Alice Agent:* 📎 Agent sent an image: photo.png";

// ─────────────────────────── agent file URLs (item 5) ───────────────────────────

#[tokio::test]
async fn a_file_url_on_another_port_gets_no_request_and_a_genuine_one_still_arrives() {
    let app = app().await;
    let photo = png_bytes(40_000);
    let elsewhere = FakeServer::start({
        let photo = photo.clone();
        move |_| Reply::bytes(200, "image/png", photo.clone())
    })
    .await;
    let (genuine, secret) = app
        .easemob
        .add_file("photo.png", "image/png", photo.clone());
    // The very path of a real chat file, on another local port.
    let path = genuine
        .strip_prefix(&app.easemob.base_url())
        .expect("chat file path");
    let foreign = format!("{}{path}", elsewhere.url());
    let response = app
        .easemob_callback(&agent_image("m-port-1", &foreign, &secret, photo.len()))
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        elsewhere.requests().is_empty(),
        "the bridge fetched {:?}",
        elsewhere.requests()
    );
    assert_eq!(easemob_gets(&app), 0);
    assert!(app.slack.calls("files.getUploadURLExternal").is_empty());
    assert!(app.slack.shared_files().is_empty());
    assert_eq!(posted_texts(&app), [PHOTO_LINE]);

    // The genuine chat file still arrives, byte for byte.
    let response = app
        .easemob_callback(&agent_image("m-port-2", &genuine, &secret, photo.len()))
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    let shared = app.slack.shared_files();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].bytes, photo, "bytes equal at the far end");
    assert_eq!(easemob_gets(&app), 1);
    assert!(elsewhere.requests().is_empty());
}

#[tokio::test]
async fn another_host_name_for_the_same_port_gets_no_request() {
    let app = app().await;
    let photo = png_bytes(1_000);
    let (genuine, secret) = app
        .easemob
        .add_file("photo.png", "image/png", photo.clone());
    // Same port, same path; `localhost` is not the configured `127.0.0.1`.
    let renamed = genuine.replace("127.0.0.1", "localhost");
    assert_ne!(renamed, genuine);
    let response = app
        .easemob_callback(&agent_image("m-host-1", &renamed, &secret, photo.len()))
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(easemob_gets(&app), 0, "{:?}", app.easemob.server.requests());
    assert!(app.slack.shared_files().is_empty());
    assert_eq!(posted_texts(&app), [PHOTO_LINE]);
}

#[tokio::test]
async fn urls_on_the_right_origin_but_not_this_apps_chat_files_get_no_request() {
    let app = app().await;
    let (genuine, secret) = app
        .easemob
        .add_file("photo.png", "image/png", png_bytes(10));
    let base = app.easemob.base_url();
    let uuid = genuine.rsplit('/').next().unwrap();
    let app_url = format!("{base}/{LOCAL_EASEMOB_ORG}/{LOCAL_EASEMOB_APP}");
    let tricks = [
        format!("{app_url}/users/u0ada"),
        format!("{app_url}/chatfiles/../token"),
        format!("{app_url}/chatfiles/%2e%2e/messages"),
        format!("{app_url}/chatfiles/{uuid}/..%2F..%2Fusers"),
        format!("{app_url}/chatfiles/x%2F..%2F..%2Fusers"),
        format!("{app_url}/chatfiles/..\\token"),
        format!("{app_url}/chatfiles/"),
        format!("{app_url}/chatfiles/{uuid}?redirect=http://example.org/"),
        format!("{base}/other-org/other-app/chatfiles/{uuid}"),
        genuine.replace("http://", "http://user:pw@"),
        genuine.replace("http://", "https://"),
        format!("ftp://127.0.0.1/{LOCAL_EASEMOB_ORG}/{LOCAL_EASEMOB_APP}/chatfiles/{uuid}"),
    ];
    let bodies: Vec<Value> = tricks
        .iter()
        .map(|url| json!({ "type": "file", "url": url, "filename": "photo.png", "secret": secret }))
        .collect();
    let response = app
        .easemob_callback(&agent_message(
            DM_VISITOR,
            "m-path-1",
            Value::Array(bodies),
            agent_ext(),
        ))
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    let requests = app.easemob.server.requests();
    assert_eq!(easemob_gets(&app), 0, "{requests:#?}");
    // Not even a token was needed: nothing was going to be fetched.
    assert!(app.easemob.calls("token").is_empty(), "{requests:#?}");
    assert!(app.slack.shared_files().is_empty());
    assert!(app.slack.calls("files.getUploadURLExternal").is_empty());
    let lines = posted_texts(&app);
    assert_eq!(lines.len(), tricks.len(), "{lines:#?}");
    assert!(lines
        .iter()
        .all(|line| line == "*Alice Agent:* 📎 Agent sent a file: photo.png"));
}

#[tokio::test]
async fn a_redirect_from_a_genuine_chat_file_is_not_followed() {
    let app = app().await;
    let elsewhere = FakeServer::start(|_| Reply::bytes(200, "image/png", png_bytes(10))).await;
    let photo = png_bytes(1_000);
    let (genuine, secret) = app
        .easemob
        .add_file("photo.png", "image/png", photo.clone());
    app.easemob
        .redirect_download(&genuine, &format!("{}/collect", elsewhere.url()));
    let response = app
        .easemob_callback(&agent_image("m-redirect-1", &genuine, &secret, photo.len()))
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect was followed: {:?}",
        elsewhere.requests()
    );
    // Asked once: a redirect is an answer, not a hiccup to retry.
    assert_eq!(easemob_gets(&app), 1);
    assert!(app.slack.shared_files().is_empty());
    assert!(app.slack.calls("files.getUploadURLExternal").is_empty());
    assert_eq!(posted_texts(&app), [PHOTO_LINE]);
}

/// Body bytes of the error answer: far more than any file may be.
const HUGE_ERROR_BODY: u64 = 64 * 1024 * 1024;

/// A stand-in Easemob origin over raw TCP: it issues a token, and answers
/// every chat-file download `HTTP 500` with a body of [`HUGE_ERROR_BODY`]
/// bytes, written until the client stops reading. For each download it
/// reports how many body bytes the socket took.
struct HugeErrorOrigin {
    url: String,
    downloads: Arc<AtomicUsize>,
    written: tokio::sync::mpsc::UnboundedReceiver<u64>,
}

impl HugeErrorOrigin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let downloads = Arc::new(AtomicUsize::new(0));
        let (report, written) = tokio::sync::mpsc::unbounded_channel();
        let counter = downloads.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                let report = report.clone();
                tokio::spawn(async move {
                    let head = read_head(&mut stream).await;
                    if head.starts_with("POST ") && head.contains("/token ") {
                        let body = json!({ "access_token": "YWMt-huge", "expires_in": 5_184_000,
                                           "application": "huge" })
                        .to_string();
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let head = format!(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {HUGE_ERROR_BODY}\r\nconnection: close\r\n\r\n{{\"error\":\"x\",\"pad\":\""
                    );
                    let mut sent: u64 = 0;
                    if stream.write_all(head.as_bytes()).await.is_ok() {
                        let chunk = vec![b'a'; 64 * 1024];
                        while sent < HUGE_ERROR_BODY {
                            let piece =
                                &chunk[..chunk.len().min((HUGE_ERROR_BODY - sent) as usize)];
                            if stream.write_all(piece).await.is_err() {
                                break;
                            }
                            sent += piece.len() as u64;
                        }
                    }
                    let _ = report.send(sent);
                });
            }
        });
        Self {
            url,
            downloads,
            written,
        }
    }
}

/// Reads a request's head and any `content-length` body; returns the head.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&bytes).to_string();
    let head_len = text.find("\r\n\r\n").map_or(text.len(), |i| i + 4);
    let body_len: usize = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut have = bytes.len() - head_len;
    while have < body_len {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }
    text[..head_len].to_string()
}

#[tokio::test]
async fn a_huge_error_answer_is_read_only_in_part_and_nothing_is_uploaded() {
    let app = app().await;
    let mut origin = HugeErrorOrigin::start().await;
    // An instance whose EASEMOB_API_BASE_URL is that origin.
    let mut bridge = app.another_instance();
    bridge.config.easemob_api_base_url = origin.url.clone();
    bridge.easemob = EasemobClient::new(
        kefu_bridge::bridge::http_client(),
        &origin.url,
        LOCAL_EASEMOB_ORG,
        LOCAL_EASEMOB_APP,
        LOCAL_EASEMOB_CLIENT_ID,
        Secret::new(LOCAL_EASEMOB_CLIENT_SECRET),
    );
    let url = format!(
        "{}/{LOCAL_EASEMOB_ORG}/{LOCAL_EASEMOB_APP}/chatfiles/0c0f5f3a-e66b-11e3-8863-000000000001",
        origin.url
    );
    let callback = agent_image("m-huge-1", &url, "s3cret", 1_000);
    let request = callback_request(callback.to_string().as_bytes(), "application/json");
    let response = relay::easemob_callback::handle(&bridge, &request).await;
    assert_eq!(response.status, 200, "{response:?}");
    let downloads = origin.downloads.load(Ordering::SeqCst);
    assert!(downloads >= 1, "the genuine chat file URL was not fetched");
    for _ in 0..downloads {
        // A guard against a hang, not a measure: each download reports
        // once its connection is closed (or the whole body went out).
        let written = tokio::time::timeout(Duration::from_secs(60), origin.written.recv())
            .await
            .expect("the download connection was left open")
            .expect("a report");
        assert!(
            written < HUGE_ERROR_BODY,
            "the whole {written}-byte error body was read"
        );
    }
    assert!(app.slack.shared_files().is_empty());
    assert!(app.slack.calls("files.getUploadURLExternal").is_empty());
    assert_eq!(posted_texts(&app), [PHOTO_LINE]);
}

// ─────────────────────────── mentions (item 6) ───────────────────────────

fn users_info_calls_for(app: &TestApp, prefix: &str) -> usize {
    app.slack
        .calls("users.info")
        .iter()
        .filter(|r| r.param("user").is_some_and(|u| u.starts_with(prefix)))
        .count()
}

#[tokio::test]
async fn twenty_unknown_mentions_make_a_few_lookups_and_the_message_goes_once() {
    let app = app().await;
    let ghosts: Vec<String> = (1..=20).map(|i| format!("U0GHOST{i:02}")).collect();
    let text = format!(
        "who are {} and <@U0BOB>?",
        ghosts
            .iter()
            .map(|g| format!("<@{g}>"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let event = user_message("D0ADA", "im", "U0ADA", &text, "1.0001");
    let response = app
        .slack_event(&event_callback(TEAM, "EvGhosts1", event))
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    let lookups = users_info_calls_for(&app, "U0GHOST");
    assert!(
        lookups <= MAX_LOOKUPS_PER_MESSAGE,
        "{lookups} users.info calls for one message"
    );
    const { assert!(MAX_LOOKUPS_PER_MESSAGE <= 5) };
    let texts = app.easemob.texts();
    assert_eq!(texts.len(), 1, "{texts:#?}");
    let expected = format!(
        "who are {} and @",
        ghosts
            .iter()
            .map(|g| format!("@{g}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(texts[0].starts_with(&expected), "{}", texts[0]);
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
}

#[tokio::test]
async fn an_unknown_id_is_looked_up_once_and_a_known_one_by_name() {
    let app = app().await;
    for (i, ts) in ["2.0001", "2.0002", "2.0003"].iter().enumerate() {
        let event = user_message("D0ADA", "im", "U0ADA", "ask <@U0NOBODY> or <@U0BOB>", ts);
        let response = app
            .slack_event(&event_callback(TEAM, &format!("EvNobody{i}"), event))
            .await;
        assert_eq!(response.status, 200);
    }
    assert_eq!(users_info_calls_for(&app, "U0NOBODY"), 1);
    assert_eq!(users_info_calls_for(&app, "U0BOB"), 1);
    assert_eq!(app.easemob.texts(), vec!["ask @U0NOBODY or @bob"; 3]);
}

#[tokio::test]
async fn a_slow_users_info_does_not_spend_the_messages_time() {
    let app = app().await;
    // Ada has written before: her visitor record and profile are warm.
    let first = user_message("D0ADA", "im", "U0ADA", "hello", "3.0001");
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "EvSlow0", first))
            .await
            .status,
        200
    );
    app.slack
        .fail_always("users.info", Fault::Slow(Duration::from_millis(1_500)));
    // Long enough for two Kefu messages; the second is sent now only if
    // the lookups left it the time.
    let long = "word ".repeat(1_600);
    let text = format!("<@U0SLOW1> <@U0SLOW2> <@U0SLOW3> {long}");
    let event = user_message("D0ADA", "im", "U0ADA", &text, "3.0002");
    let response = app
        .slack_event(&event_callback(TEAM, "EvSlow1", event))
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        app.waiting(Direction::ToKefu).await.is_empty(),
        "a part was left for the drain: the lookups spent the message's time"
    );
    let texts = app.easemob.texts();
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert!(texts[1].starts_with("@U0SLOW1 @U0SLOW2 @U0SLOW3 word"));
    // Timed out lookups are not retried by the next message either.
    let before = users_info_calls_for(&app, "U0SLOW");
    let again = user_message("D0ADA", "im", "U0ADA", "<@U0SLOW1> again", "3.0003");
    app.slack_event(&event_callback(TEAM, "EvSlow2", again))
        .await;
    assert_eq!(users_info_calls_for(&app, "U0SLOW"), before);
    assert_eq!(app.easemob.texts().last().unwrap(), "@U0SLOW1 again");
}

// ─────────────────────────── answers (item 7) ───────────────────────────

fn menu_ext() -> Value {
    let mut ext = agent_ext();
    ext["msgtype"] = json!({ "choice": {
        "title": "How can we help?",
        "items": [{ "id": "1", "name": "Orders" }, { "id": "2", "name": "Refunds" }]
    } });
    ext
}

fn only_post(app: &TestApp) -> Value {
    let posts = app.slack.posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    posts[0].clone()
}

#[tokio::test]
async fn a_menu_posted_from_the_outbox_is_answered_only_by_its_visitor() {
    let app = app().await;
    app.slack
        .fail_always("chat.postMessage", Fault::Status(500));
    let callback = agent_message(
        CHANNEL_VISITOR,
        "m-menu-outbox-1",
        json!([{ "type": "txt", "msg": "" }]),
        menu_ext(),
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert!(app.slack.posts().is_empty());
    app.slack.heal();
    app.make_due().await;
    let summary = app.drain(Direction::ToSlack).await;
    assert_eq!(summary.delivered, 1, "{summary:?}");
    let menu = only_post(&app);
    assert_eq!(menu["channel"], "C0SUPPORT");

    // Bob is in the channel too, but the question was Ada's.
    let response = app
        .interaction(&click(TEAM, "U0BOB", &menu, "kefu_menu_item_0"))
        .await;
    assert_eq!(response.status, 200);
    assert!(app.easemob.messages().is_empty());
    assert!(app.slack.calls("chat.update").is_empty());
    let notes = app.slack.ephemerals();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(notes[0]["user"], "U0BOB");
    assert!(notes[0]["text"].as_str().unwrap().contains("<@U0ADA>"));

    // Ada answers, once.
    for _ in 0..2 {
        let response = app
            .interaction(&click(TEAM, "U0ADA", &menu, "kefu_menu_item_1"))
            .await;
        assert_eq!(response.status, 200);
    }
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["from"], CHANNEL_VISITOR);
    assert_eq!(messages[0]["msg"]["msg"], "Refunds");
    assert_eq!(messages[0]["ext"]["msgtype"]["choice"]["menuid"], "2");
    assert_eq!(app.slack.calls("chat.update").len(), 1);
}

#[tokio::test]
async fn a_question_without_its_record_is_refused_in_a_channel_and_taken_in_a_dm() {
    let app = app().await;
    let callback = agent_message(
        DM_VISITOR,
        "m-menu-norecord-1",
        json!([{ "type": "txt", "msg": "" }]),
        menu_ext(),
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    let posted = only_post(&app);

    // The same buttons on a message the bridge holds no record of, in a
    // channel: nobody can tell whose question it is.
    let mut in_channel = posted.clone();
    in_channel["channel"] = json!("C0SUPPORT");
    in_channel["ts"] = json!("1700009999.000100");
    let response = app
        .interaction(&click(TEAM, "U0ADA", &in_channel, "kefu_menu_item_0"))
        .await;
    assert_eq!(response.status, 200);
    assert!(app.easemob.messages().is_empty());
    assert!(app.slack.calls("chat.update").is_empty());
    let notes = app.slack.ephemerals();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(notes[0]["user"], "U0ADA");
    assert_eq!(notes[0]["channel"], "C0SUPPORT");

    // In a direct message the DM's own user is the visitor.
    let mut in_dm = posted.clone();
    in_dm["ts"] = json!("1700009998.000100");
    let response = app
        .interaction(&click(TEAM, "U0ADA", &in_dm, "kefu_menu_item_0"))
        .await;
    assert_eq!(response.status, 200);
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["from"], DM_VISITOR);
    assert_eq!(messages[0]["msg"]["msg"], "Orders");
}

/// A waiting message is sent to Kefu only as its conversation's visitor and
/// only to the service number: a record that names another sender or
/// recipient (a damaged or tampered table) becomes a dead letter with the
/// reason, and Kefu receives nothing from it.
#[tokio::test]
async fn a_waiting_message_naming_another_sender_or_recipient_is_not_sent() {
    let app = app().await;
    app.easemob.fail_always("messages", Fault::Status(503));
    let event = user_message("D0ADA", "im", "U0ADA", "genuine", "9.0001");
    let answer = app
        .slack_event(&event_callback(TEAM, "EvGENUINE", event))
        .await;
    assert_eq!(answer.status, 200);
    app.easemob.heal();
    let genuine = app.waiting(Direction::ToKefu).await[0].parts[0].clone();
    assert!(genuine.contains(DM_VISITOR) && genuine.contains(LOCAL_EASEMOB_SERVICE_NUMBER));
    for (origin, part) in [
        ("as-eve", genuine.replace(DM_VISITOR, "T0TEAM1_U0EVE_D0EVE")),
        (
            "to-another",
            genuine.replace(LOCAL_EASEMOB_SERVICE_NUMBER, "another_service_number"),
        ),
    ] {
        let tampered = kefu_bridge::store::NewOutboxItem {
            direction: Direction::ToKefu,
            workspace: kefu_bridge::store::WorkspaceKey::Team(TEAM.into()),
            visitor: DM_VISITOR.into(),
            parts: vec![part],
            origin: origin.into(),
            last_error: None,
            attempts: 0,
            next_attempt_at: 0,
            not_before: None,
        };
        app.bridge.store.enqueue(&tampered).await.expect("stored");
    }
    app.make_due().await;
    app.drain(Direction::ToKefu).await;

    assert_eq!(app.easemob.texts(), vec!["genuine"]);
    let letters = app.dead_letters().await;
    let origins: Vec<&str> = letters.iter().map(|l| l.item.origin.as_str()).collect();
    assert_eq!(origins, ["as-eve", "to-another"]);
    for letter in &letters {
        assert!(
            letter.reason.contains("is not a message from"),
            "{letter:?}"
        );
    }
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
}
