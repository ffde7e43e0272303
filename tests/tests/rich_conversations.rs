//! Rich conversations end to end: files both ways (bytes equal at the far
//! end), Kefu robot menus, satisfaction invitations and transfer hints as
//! Slack buttons, and the answers that go back to Kefu — real DynamoDB
//! Local, fake Slack and Easemob over real HTTP.

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::*;
use bridge_tests::fake_server::Fault;
use bridge_tests::rich_kit::*;
use bridge_tests::signing::*;
use bridge_tests::TestApp;
use kefu_bridge::relay::interactivity;
use kefu_bridge::store::Direction;
use serde_json::{json, Value};

const TEAM: &str = "T0TEAM1";
const DM_VISITOR: &str = "T0TEAM1_U0ADA_D0ADA";
const CHANNEL_VISITOR: &str = "T0TEAM1_U0ADA_C0SUPPORT";
const TOKEN: &str = "xoxb-t0team1-token";
const SCOPES: &[&str] = &[
    "chat:write",
    "im:history",
    "channels:history",
    "users:read",
    "files:read",
    "files:write",
];
const MB: usize = 1024 * 1024;

async fn app() -> TestApp {
    let app = TestApp::start().await;
    app.install(TEAM, SCOPES).await;
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    app.add_user("U0BOB", "bob", "Bob Builder");
    app
}

fn easemob_base(app: &TestApp) -> String {
    format!(
        "{}/{LOCAL_EASEMOB_ORG}/{LOCAL_EASEMOB_APP}",
        app.easemob.base_url()
    )
}

/// The one post the bridge made (as the fake Slack keeps it: with `ts`).
fn only_post(app: &TestApp) -> Value {
    let posts = app.slack.posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    posts[0].clone()
}

fn has_buttons(message: &Value) -> bool {
    message["blocks"]
        .as_array()
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "actions"))
}

fn menu_ext() -> Value {
    let mut ext = agent_ext();
    ext["msgtype"] = json!({ "choice": {
        "title": "How can we help?",
        "items": [
            { "id": "1", "name": "Orders" },
            { "id": "2", "name": "Refunds & returns" },
            { "id": 3, "name": "Opening hours" }
        ]
    } });
    ext
}

fn invite_ext() -> Value {
    let mut ext = agent_ext();
    ext["weichat"]["ctrlType"] = json!("inviteEnquiry");
    ext["weichat"]["ctrlArgs"] = json!({ "inviteId": 42, "serviceSessionId": "9f3e-session" });
    ext
}

async fn post_menu(app: &TestApp, visitor: &str, msg_id: &str) -> Value {
    let callback = agent_message(
        visitor,
        msg_id,
        json!([{ "type": "txt", "msg": "How can we help?" }]),
        menu_ext(),
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    only_post(app)
}

async fn post_invite(app: &TestApp) -> Value {
    let callback = agent_message(
        DM_VISITOR,
        "m-invite-1",
        json!([{ "type": "txt", "msg": "" }]),
        invite_ext(),
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    only_post(app)
}

// ───────────────────────────── files, Slack → Kefu ─────────────────────────────

#[tokio::test]
async fn a_shared_image_and_document_reach_kefu_byte_for_byte_after_the_text() {
    let app = app().await;
    let image = png_bytes(300_000);
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\n".repeat(500);
    let cat = app.slack.add_file(
        TEAM,
        "cat.png",
        "image/png",
        image.clone(),
        Some((640, 480)),
    );
    let invoice = app
        .slack
        .add_file(TEAM, "invoice 7.pdf", "application/pdf", pdf.clone(), None);
    let event = file_share(
        "D0ADA",
        "im",
        "U0ADA",
        "see attached",
        "16.0001",
        vec![cat, invoice],
    );
    let response = app.slack_event(&event_callback(TEAM, "EvF1", event)).await;
    assert_eq!(response.status, 200, "{response:?}");

    // Downloaded with the bot token (url_private_download), uploaded with
    // the app token and restrict-access, as multipart part `file`.
    let downloads: Vec<_> = app
        .slack
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/files-pri/"))
        .collect();
    assert_eq!(downloads.len(), 2);
    assert!(downloads.iter().all(|r| r.bearer() == Some(TOKEN)));
    assert!(downloads.iter().all(|r| r.path.contains("/download/")));
    let uploads = app.easemob.calls("chatfiles");
    assert_eq!(uploads.len(), 2);
    assert!(uploads
        .iter()
        .all(|u| u.header("restrict-access") == Some("true")));
    assert!(uploads
        .iter()
        .all(|u| u.bearer().is_some_and(|t| t.starts_with("YWMt"))));

    let stored = app.easemob.uploaded_files();
    assert_eq!(stored[0].bytes, image, "image bytes equal at the far end");
    assert_eq!(stored[0].filename, "cat.png");
    assert_eq!(stored[0].content_type, "image/png");
    assert_eq!(stored[1].bytes, pdf);
    assert_eq!(stored[1].filename, "invoice 7.pdf");

    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert_eq!(
        messages[0]["msg"],
        json!({ "type": "txt", "msg": "see attached" })
    );
    assert_eq!(
        messages[1]["msg"],
        json!({
            "type": "img",
            "url": format!("{}/chatfiles/{}", easemob_base(&app), stored[0].uuid),
            "filename": "cat.png",
            "secret": stored[0].share_secret.clone().unwrap(),
            "size": { "width": 640, "height": 480 },
            "file_length": image.len(),
        })
    );
    assert_eq!(
        messages[2]["msg"],
        json!({
            "type": "file",
            "url": format!("{}/chatfiles/{}", easemob_base(&app), stored[1].uuid),
            "filename": "invoice 7.pdf",
            "secret": stored[1].share_secret.clone().unwrap(),
            "file_length": pdf.len(),
        })
    );
    for message in &messages {
        assert_eq!(message["from"], DM_VISITOR);
        assert_eq!(message["target"], json!([LOCAL_EASEMOB_SERVICE_NUMBER]));
        assert_eq!(message["ext"]["weichat"]["visitor"]["userNickname"], "ada");
    }
    // The agent can fetch what the visitor sent with the share-secret.
    let fetched = reqwest::Client::new()
        .get(messages[1]["msg"]["url"].as_str().unwrap())
        .bearer_auth(uploads[0].bearer().unwrap())
        .header(
            "share-secret",
            messages[1]["msg"]["secret"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(fetched.as_ref(), image.as_slice());
    assert!(app.slack.ephemerals().is_empty());
}

#[tokio::test]
async fn an_oversize_file_is_named_to_kefu_and_the_visitor_is_told() {
    let app = app().await;
    // Slack says how big it is: nothing is downloaded.
    let mut big = app
        .slack
        .add_file(TEAM, "site tour.mov", "video/quicktime", vec![0; 16], None);
    big["size"] = json!(12 * MB + 400 * 1024);
    let event = file_share("C0SUPPORT", "channel", "U0ADA", "", "17.0001", vec![big]);
    let mut event = event;
    event["thread_ts"] = json!("17.0000");
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "EvF2", event))
            .await
            .status,
        200
    );
    assert!(app
        .slack
        .server
        .requests()
        .iter()
        .all(|r| !r.path.starts_with("/files-pri/")));
    assert!(app.easemob.calls("chatfiles").is_empty());
    assert_eq!(
        app.easemob.texts(),
        vec!["[file] site tour.mov (12.4 MB) — too large to forward (limit 10 MB)"]
    );
    let notes = app.slack.ephemerals();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(notes[0]["channel"], "C0SUPPORT");
    assert_eq!(notes[0]["user"], "U0ADA");
    assert_eq!(notes[0]["thread_ts"], "17.0000");
    let note = notes[0]["text"].as_str().unwrap();
    assert!(
        note.contains("*site tour.mov* is too large") && note.contains("12.4 MB"),
        "{note}"
    );

    // Slack's size is missing: the download stops once it passes 10 MB.
    let mut sneaky = app.slack.add_file(
        TEAM,
        "dump.bin",
        "application/octet-stream",
        vec![7; 10 * MB + 1],
        None,
    );
    sneaky.as_object_mut().unwrap().remove("size");
    let event = file_share("D0ADA", "im", "U0ADA", "logs", "18.0001", vec![sneaky]);
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "EvF3", event))
            .await
            .status,
        200
    );
    assert!(app.easemob.calls("chatfiles").is_empty());
    let texts = app.easemob.texts();
    assert_eq!(texts[1], "logs");
    assert!(
        texts[2].starts_with("[file] dump.bin (10.0 MB) — too large to forward"),
        "{}",
        texts[2]
    );
    assert_eq!(app.slack.ephemerals().len(), 2);
}

#[tokio::test]
async fn a_file_slack_will_not_hand_over_is_named_to_kefu() {
    let app = app().await;
    // Hosted in another workspace: the bot token gets Slack's sign-in page
    // (what a token without files:read gets too).
    let foreign = app
        .slack
        .add_file("T0OTHER", "secret.png", "image/png", png_bytes(10), None);
    let external = json!({ "id": "F0GDRIVE", "name": "Plan", "mimetype": "application/vnd.google-apps.document",
        "mode": "external", "is_external": true, "external_type": "gdrive",
        "url_private": "https://docs.google.com/document/d/1" });
    let event = file_share(
        "D0ADA",
        "im",
        "U0ADA",
        "",
        "19.0001",
        vec![foreign, external],
    );
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "EvF4", event))
            .await
            .status,
        200
    );
    assert_eq!(
        app.easemob.texts(),
        vec![
            "[file] secret.png (1 KB) — could not be forwarded",
            "[file] Plan — could not be forwarded"
        ]
    );
    // The bot token never went to Google.
    assert!(app.easemob.calls("chatfiles").is_empty());
    assert_eq!(app.slack.ephemerals().len(), 2);
}

// ───────────────────────────── files, Kefu → Slack ─────────────────────────────

#[tokio::test]
async fn an_agent_image_reaches_the_visitors_thread_byte_for_byte() {
    let app = app().await;
    // Ada writes in a thread of #support: the reply goes there.
    let mut event = user_message("C0SUPPORT", "channel", "U0ADA", "my order?", "20.0002");
    event["thread_ts"] = json!("20.0001");
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "EvT1", event))
            .await
            .status,
        200
    );
    let photo = png_bytes(250_000);
    let (url, secret) = app
        .easemob
        .add_file("photo.png", "image/png", photo.clone());
    let callback = agent_message(
        CHANNEL_VISITOR,
        "m-img-1",
        json!([{ "type": "img", "url": url, "filename": "photo.png", "secret": secret,
                 "size": { "width": 800, "height": 600 }, "file_length": photo.len() }]),
        agent_ext(),
    );
    let response = app.easemob_callback(&callback).await;
    assert_eq!(response.status, 200, "{response:?}");

    // Downloaded with the token and the share-secret.
    let downloads: Vec<_> = app
        .easemob
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/chatfiles/"))
        .collect();
    assert_eq!(downloads.len(), 1);
    assert_eq!(downloads[0].header("share-secret"), Some(secret.as_str()));
    assert!(downloads[0].bearer().is_some());

    let tickets = app.slack.calls("files.getUploadURLExternal");
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].bearer(), Some(TOKEN));
    assert_eq!(tickets[0].param("filename").as_deref(), Some("photo.png"));
    assert_eq!(
        tickets[0].param("length").as_deref(),
        Some(photo.len().to_string().as_str())
    );
    let shared = app.slack.shared_files();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].bytes, photo, "bytes equal at the far end");
    assert_eq!(shared[0].channel_id, "C0SUPPORT");
    assert_eq!(shared[0].thread_ts.as_deref(), Some("20.0001"));
    assert_eq!(shared[0].title, "photo.png");
    assert_eq!(
        shared[0].initial_comment.as_deref(),
        Some("*Alice Agent* sent an image")
    );
    assert!(
        app.slack.posts().is_empty(),
        "no text post besides the file"
    );
    // The share-secret never reaches Slack.
    assert!(app
        .slack
        .server
        .requests()
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.body).contains(&secret)));
}

#[tokio::test]
async fn an_agent_file_over_10_mb_is_a_line() {
    let app = app().await;
    let callback = agent_message(
        DM_VISITOR,
        "m-big-1",
        json!([
            { "type": "txt", "msg": "Here is the manual" },
            { "type": "file", "url": format!("{}/chatfiles/nope", easemob_base(&app)),
              "filename": "manual.zip", "secret": "s", "file_length": 11 * MB }
        ]),
        agent_ext(),
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert!(app
        .easemob
        .server
        .requests()
        .iter()
        .all(|r| r.method != "GET"));
    assert!(app.slack.calls("files.getUploadURLExternal").is_empty());
    let texts: Vec<String> = app
        .slack
        .posts()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts,
        vec![
            "*Alice Agent:* Here is the manual",
            "*Alice Agent:* 📎 Agent sent a file too large to show here: manual.zip (11.0 MB)"
        ]
    );
}

// ───────────────────────────── robot menus ─────────────────────────────

#[tokio::test]
async fn a_robot_menu_is_buttons_and_a_click_answers_it_as_the_visitor() {
    let app = app().await;
    let menu = post_menu(&app, DM_VISITOR, "m-menu-1").await;
    assert_eq!(
        menu["text"],
        "*Alice Agent:* How can we help?\n• Orders\n• Refunds &amp; returns\n• Opening hours"
    );
    let blocks = menu["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["text"], "*Alice Agent:* How can we help?");
    let buttons = blocks[1]["elements"].as_array().unwrap();
    let labels: Vec<&str> = buttons
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Orders", "Refunds & returns", "Opening hours"]);
    let values: Vec<&str> = buttons
        .iter()
        .map(|b| b["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["1", "2", "3"]);

    let response = app
        .interaction(&click(TEAM, "U0ADA", &menu, "kefu_menu_item_1"))
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let sent = &messages[0];
    assert_eq!(sent["target_type"], "users");
    assert_eq!(sent["target"], json!([LOCAL_EASEMOB_SERVICE_NUMBER]));
    assert_eq!(sent["from"], DM_VISITOR);
    assert_eq!(
        sent["msg"],
        json!({ "type": "txt", "msg": "Refunds & returns" })
    );
    assert_eq!(
        sent["ext"]["msgtype"],
        json!({ "choice": { "menuid": "2" } })
    );
    assert_eq!(sent["ext"]["weichat"]["visitor"]["userNickname"], "ada");
    assert_eq!(
        sent.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["ext", "from", "msg", "target", "target_type"]
    );

    // The message now shows the choice, without buttons.
    let updates = app.slack.calls("chat.update");
    assert_eq!(updates.len(), 1);
    let update = updates[0].json();
    assert_eq!(update["channel"], "D0ADA");
    assert_eq!(update["ts"], menu["ts"]);
    assert_eq!(updates[0].bearer(), Some(TOKEN));
    assert!(!has_buttons(&update));
    assert!(update["text"]
        .as_str()
        .unwrap()
        .contains("You chose *Refunds &amp; returns*"));
    assert!(!has_buttons(&only_post(&app)));

    // A numeric item id goes back as the number Kefu sent.
    let app = self::app().await;
    let menu = post_menu(&app, DM_VISITOR, "m-menu-2").await;
    app.interaction(&click(TEAM, "U0ADA", &menu, "kefu_menu_item_2"))
        .await;
    assert_eq!(
        app.easemob.messages()[0]["ext"]["msgtype"]["choice"]["menuid"],
        json!(3)
    );
}

#[tokio::test]
async fn a_double_click_answers_once() {
    let app = app().await;
    let menu = post_menu(&app, DM_VISITOR, "m-menu-3").await;
    let first = click(TEAM, "U0ADA", &menu, "kefu_menu_item_0");
    let second = click(TEAM, "U0ADA", &menu, "kefu_menu_item_1");
    let (a, b) = tokio::join!(app.interaction(&first), app.interaction(&second));
    assert_eq!((a.status, b.status), (200, 200));
    let late = app.interaction(&first).await;
    assert_eq!(late.status, 200);
    assert_eq!(
        app.easemob.messages().len(),
        1,
        "{:#?}",
        app.easemob.messages()
    );
    assert_eq!(app.slack.calls("chat.update").len(), 1);
}

#[tokio::test]
async fn only_the_visitor_asked_can_answer_in_a_channel() {
    let app = app().await;
    let menu = post_menu(&app, CHANNEL_VISITOR, "m-menu-4").await;
    let response = app
        .interaction(&click(TEAM, "U0BOB", &menu, "kefu_menu_item_0"))
        .await;
    assert_eq!(response.status, 200);
    assert!(app.easemob.messages().is_empty());
    assert!(app.slack.calls("chat.update").is_empty());
    let notes = app.slack.ephemerals();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["user"], "U0BOB");
    assert!(notes[0]["text"].as_str().unwrap().contains("<@U0ADA>"));
    // Ada still can.
    app.interaction(&click(TEAM, "U0ADA", &menu, "kefu_menu_item_0"))
        .await;
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["from"], CHANNEL_VISITOR);
}

#[tokio::test]
async fn a_click_while_kefu_is_down_leaves_the_question_open() {
    let app = app().await;
    let menu = post_menu(&app, DM_VISITOR, "m-menu-5").await;
    app.easemob.fail_always("messages", Fault::Status(503));
    let clicked = click(TEAM, "U0ADA", &menu, "kefu_menu_item_0");
    assert_eq!(app.interaction(&clicked).await.status, 200);
    assert!(app.slack.calls("chat.update").is_empty());
    let notes = app.slack.ephemerals();
    assert_eq!(notes.len(), 1);
    assert!(notes[0]["text"].as_str().unwrap().contains("try again"));
    app.easemob.heal();
    assert_eq!(app.interaction(&clicked).await.status, 200);
    assert_eq!(app.easemob.messages().len(), 1);
    assert_eq!(app.slack.calls("chat.update").len(), 1);
}

#[tokio::test]
async fn a_menu_posted_late_from_the_outbox_keeps_its_buttons() {
    let app = app().await;
    app.slack
        .fail_always("chat.postMessage", Fault::Status(500));
    let callback = agent_message(
        DM_VISITOR,
        "m-menu-6",
        json!([{ "type": "txt", "msg": "" }]),
        menu_ext(),
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert!(app.slack.posts().is_empty());
    app.slack.heal();
    app.make_due().await;
    app.drain(Direction::ToSlack).await;
    let menu = only_post(&app);
    assert!(has_buttons(&menu));
    // Answered from what the buttons carry.
    app.interaction(&click(TEAM, "U0ADA", &menu, "kefu_menu_item_0"))
        .await;
    let sent = &app.easemob.messages()[0];
    assert_eq!(sent["msg"]["msg"], "Orders");
    assert_eq!(sent["ext"]["msgtype"]["choice"]["menuid"], "1");
}

// ───────────────────────────── satisfaction ─────────────────────────────

#[tokio::test]
async fn a_rating_sends_the_enquiry_control_message_once() {
    let app = app().await;
    let invite = post_invite(&app).await;
    let buttons = find_button(&invite, "kefu_rate_4").expect("a 4 button");
    assert_eq!(buttons.0["value"], "4");
    let response = app
        .interaction(&click(TEAM, "U0ADA", &invite, "kefu_rate_4"))
        .await;
    assert_eq!(response.status, 200);
    app.interaction(&click(TEAM, "U0ADA", &invite, "kefu_rate_5"))
        .await;
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let sent = &messages[0];
    assert_eq!(sent["from"], DM_VISITOR);
    assert_eq!(sent["msg"], json!({ "type": "txt", "msg": "" }));
    assert_eq!(sent["ext"]["weichat"]["ctrlType"], "enquiry");
    assert_eq!(
        sent["ext"]["weichat"]["ctrlArgs"],
        json!({ "inviteId": 42, "serviceSessionId": "9f3e-session", "summary": "4", "detail": "" })
    );
    let updates = app.slack.calls("chat.update");
    assert_eq!(updates.len(), 1);
    let update = updates[0].json();
    assert_eq!(update["text"], "Thanks — you rated 4/5");
    assert!(!has_buttons(&update));
}

#[tokio::test]
async fn a_comment_opens_a_modal_whose_submission_rates_with_it() {
    let app = app().await;
    let invite = post_invite(&app).await;
    let clicked = click(TEAM, "U0ADA", &invite, "kefu_rate_with_comment");
    assert_eq!(app.interaction(&clicked).await.status, 200);
    let opened = app.slack.calls("views.open");
    assert_eq!(opened.len(), 1);
    let opened = opened[0].json();
    assert_eq!(opened["trigger_id"], clicked["trigger_id"]);
    let view = &app.slack.views()[0]["view"];
    assert_eq!(view["type"], "modal");
    assert!(
        app.easemob.messages().is_empty(),
        "nothing sent before submit"
    );

    let submission = submit_rating(TEAM, "U0ADA", view, 2, "  Slow reply, but kind  ");
    let response = app.interaction(&submission).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "", "an empty 200 closes the modal");
    let sent = &app.easemob.messages()[0];
    assert_eq!(
        sent["ext"]["weichat"]["ctrlArgs"],
        json!({ "inviteId": 42, "serviceSessionId": "9f3e-session", "summary": "2", "detail": "Slow reply, but kind" })
    );
    let update = app.slack.calls("chat.update")[0].json();
    assert_eq!(update["ts"], invite["ts"]);
    assert_eq!(update["text"], "Thanks — you rated 2/5");
    assert!(update["blocks"]
        .to_string()
        .contains("Slow reply, but kind"));

    // Submitted again (or a button clicked after): answered once.
    app.interaction(&submission).await;
    app.interaction(&click(TEAM, "U0ADA", &invite, "kefu_rate_5"))
        .await;
    assert_eq!(app.easemob.messages().len(), 1);

    // A submission without a rating keeps the modal open with an error.
    let mut unrated = submission.clone();
    unrated["view"]["state"]["values"] = json!({});
    let response = app.interaction(&unrated).await;
    let body: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(body["response_action"], "errors");
}

// ───────────────────────────── transfer hint ─────────────────────────────

#[tokio::test]
async fn talk_to_a_person_sends_the_transfer_command() {
    let app = app().await;
    let mut ext = agent_ext();
    ext["weichat"]["ctrlType"] = json!("TransferToKfHint");
    ext["weichat"]["ctrlArgs"] =
        json!({ "id": 7, "serviceSessionId": "9f3e-session", "label": "转人工客服" });
    let callback = agent_message(
        DM_VISITOR,
        "m-hint-1",
        json!([{ "type": "txt", "msg": "I could not find an answer." }]),
        ext,
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    let hint = only_post(&app);
    let (button, _) = find_button(&hint, "kefu_transfer").expect("a transfer button");
    assert_eq!(button["text"]["text"], "Talk to a person");
    assert!(hint["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("I could not find an answer."));

    app.interaction(&click(TEAM, "U0ADA", &hint, "kefu_transfer"))
        .await;
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0]["msg"],
        json!({ "type": "cmd", "action": "TransferToKf" })
    );
    assert_eq!(
        messages[0]["ext"]["weichat"]["ctrlArgs"],
        json!({ "id": 7, "serviceSessionId": "9f3e-session" })
    );
    assert_eq!(messages[0]["from"], DM_VISITOR);
    let update = app.slack.calls("chat.update")[0].json();
    assert!(!has_buttons(&update));
}

// ───────────────────────────── the route itself ─────────────────────────────

#[tokio::test]
async fn a_bad_signature_on_interactivity_is_401_and_nothing_goes_out() {
    let app = app().await;
    let menu = post_menu(&app, DM_VISITOR, "m-menu-7").await;
    app.slack.server.clear();
    app.easemob.server.clear();
    let payload = click(TEAM, "U0ADA", &menu, "kefu_menu_item_0");

    let mut wrong_secret = signed_slack_request(
        "not-the-signing-secret",
        INTERACTIVITY_PATH,
        "application/x-www-form-urlencoded",
        &form_body(&payload),
    );
    let mut tampered = interaction_request(&payload);
    tampered.body = form_body(&click(TEAM, "U0ADA", &menu, "kefu_menu_item_2"));
    let stale = signed_slack_request_at(
        LOCAL_SLACK_SIGNING_SECRET,
        INTERACTIVITY_PATH,
        "application/x-www-form-urlencoded",
        &form_body(&payload),
        kefu_bridge::clock::now_epoch_secs() - 301,
    );
    let mut unsigned = interaction_request(&payload);
    unsigned.headers.remove("x-slack-signature");
    for request in [&mut wrong_secret, &mut tampered] {
        assert_eq!(
            interactivity::handle(&app.bridge, request).await.status,
            401
        );
    }
    assert_eq!(interactivity::handle(&app.bridge, &stale).await.status, 401);
    assert_eq!(
        interactivity::handle(&app.bridge, &unsigned).await.status,
        401
    );
    assert!(app.slack.server.requests().is_empty());
    assert!(app.easemob.server.requests().is_empty());
    assert!(app.easemob.messages().is_empty());

    // Signed but not a form, or without a payload: refused, nothing sent.
    let json_body = signed_slack_request(
        LOCAL_SLACK_SIGNING_SECRET,
        INTERACTIVITY_PATH,
        "application/json",
        payload.to_string().as_bytes(),
    );
    assert_eq!(
        interactivity::handle(&app.bridge, &json_body).await.status,
        415
    );
    let no_payload = signed_slack_request(
        LOCAL_SLACK_SIGNING_SECRET,
        INTERACTIVITY_PATH,
        "application/x-www-form-urlencoded",
        b"token=x",
    );
    assert_eq!(
        interactivity::handle(&app.bridge, &no_payload).await.status,
        400
    );
    assert!(app.easemob.server.requests().is_empty());
}

#[tokio::test]
async fn the_local_server_routes_interactivity() {
    let app = app().await;
    let menu = post_menu(&app, DM_VISITOR, "m-menu-8").await;
    let request = interaction_request(&click(TEAM, "U0ADA", &menu, "kefu_menu_item_0"));
    let response = bridge_tests::local_server::route(&app.bridge, &request).await;
    assert_eq!(response.status, 200);
    assert_eq!(app.easemob.messages().len(), 1);
    assert!(interactivity::is_interactivity_path("/slack/interactivity"));
    assert!(interactivity::is_interactivity_path(
        "/prod/slack/interactivity/"
    ));
    assert!(!interactivity::is_interactivity_path("/slack/events"));
}

// ───────────────────────────── sample events ─────────────────────────────

fn sample(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    bridge_tests::events::resign(
        &mut event,
        LOCAL_SLACK_SIGNING_SECRET,
        LOCAL_EASEMOB_CALLBACK_SECRET,
        kefu_bridge::clock::now_epoch_secs(),
    );
    event
}

async fn invoke(app: &TestApp, event: Value) -> Value {
    let http = |request: kefu_bridge::http_types::HttpRequest| async move {
        if interactivity::is_interactivity_path(&request.path) {
            interactivity::handle(&app.bridge, &request).await
        } else if request.path.ends_with("/easemob/callback") {
            kefu_bridge::relay::easemob_callback::handle(&app.bridge, &request).await
        } else {
            kefu_bridge::relay::slack_events::handle(&app.bridge, &request).await
        }
    };
    kefu_bridge::lambda::dispatch(event, http, |_| async { Value::Null }).await
}

/// The interactivity samples click on exactly what the bridge posts for the
/// callback samples, and answer Kefu as the web SDK would.
#[tokio::test]
async fn the_sample_events_are_signed_and_agree_with_the_bridge() {
    let app = TestApp::start().await;
    let scopes: Vec<&str> = SCOPES
        .iter()
        .copied()
        .chain(["chat:write.customize"])
        .collect();
    app.install_as(
        "T0LOCAL01",
        "B0LOCALBOT",
        "U0LOCALBOT",
        "A0LOCALAPP",
        &scopes,
    )
    .await;
    app.add_user("U0CUSTOMER", "customer", "Casey Customer");
    let payload_of = |event: &Value| -> Value {
        let body = bridge_tests::events::body_bytes(event);
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        serde_json::from_str(&form[0].1).unwrap()
    };

    for (callback, click_sample) in [
        (
            "easemob-callback/robot-menu.json",
            "slack-events/interactivity-menu-click.json",
        ),
        (
            "easemob-callback/satisfaction-invite.json",
            "slack-events/interactivity-rating.json",
        ),
    ] {
        let answer = invoke(&app, sample(callback)).await;
        assert_eq!(answer["statusCode"], 200, "{callback}: {answer}");
        let posted = app.slack.posts().last().cloned().unwrap();
        let clicked = sample(click_sample);
        assert_eq!(clicked["isBase64Encoded"], true);
        let payload = payload_of(&clicked);
        assert_eq!(
            payload["message"]["blocks"], posted["blocks"],
            "{click_sample} clicks on what {callback} posts"
        );
        let answer = invoke(&app, clicked).await;
        assert_eq!(answer["statusCode"], 200, "{click_sample}: {answer}");
    }
    let sent = app.easemob.messages();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[0]["msg"]["msg"], "Where is my order?");
    assert_eq!(sent[0]["ext"]["msgtype"]["choice"]["menuid"], "menu-orders");
    assert_eq!(
        sent[1]["ext"]["weichat"]["ctrlArgs"],
        json!({ "inviteId": 42, "serviceSessionId": "session-1", "summary": "4", "detail": "" })
    );

    // A stale signature (as stored) is refused.
    let mut stale = sample("slack-events/interactivity-menu-click.json");
    stale["headers"]["x-slack-request-timestamp"] = json!("1000000000");
    assert_eq!(invoke(&app, stale).await["statusCode"], 401);

    // The file samples name Slack's and Easemob's real hosts: pointed at
    // the fakes (and re-signed) they move their files.
    let with_body = |mut event: Value, edit: &dyn Fn(&mut Value)| {
        let mut body: Value =
            serde_json::from_slice(&bridge_tests::events::body_bytes(&event)).unwrap();
        edit(&mut body);
        event["body"] = json!(body.to_string());
        event["isBase64Encoded"] = json!(false);
        bridge_tests::events::resign(
            &mut event,
            LOCAL_SLACK_SIGNING_SECRET,
            LOCAL_EASEMOB_CALLBACK_SECRET,
            kefu_bridge::clock::now_epoch_secs(),
        );
        event
    };
    let jpeg = png_bytes(183_203);
    let (url, secret) = app
        .easemob
        .add_file("latte-receipt.jpg", "image/jpeg", jpeg.clone());
    let image = with_body(sample("easemob-callback/agent-image.json"), &|body| {
        body["payload"]["bodies"][0]["url"] = json!(url);
        body["payload"]["bodies"][0]["secret"] = json!(secret);
    });
    assert_eq!(invoke(&app, image).await["statusCode"], 200);
    assert_eq!(app.slack.shared_files()[0].bytes, jpeg);

    let hint = invoke(&app, sample("easemob-callback/transfer-hint.json")).await;
    assert_eq!(hint["statusCode"], 200);
    assert!(has_buttons(app.slack.posts().last().unwrap()));

    let png = png_bytes(48_205);
    let hosted = app
        .slack
        .add_file("T0LOCAL01", "receipt.png", "image/png", png.clone(), None);
    let files = with_body(sample("slack-events/file-share.json"), &|body| {
        for url in ["url_private", "url_private_download"] {
            body["event"]["files"][0][url] = hosted[url].clone();
        }
    });
    assert_eq!(invoke(&app, files).await["statusCode"], 200);
    let sent = app.easemob.messages();
    assert_eq!(sent[sent.len() - 2]["msg"]["msg"], "Here is my receipt");
    assert_eq!(sent[sent.len() - 1]["msg"]["type"], "img");
    assert_eq!(
        sent[sent.len() - 1]["msg"]["size"],
        json!({ "width": 640, "height": 1136 })
    );
    assert_eq!(app.easemob.uploaded_files()[0].bytes, png);
}

/// Slack apps often give interactivity the Events API's request URL: a
/// click posted to `/slack/events` (a signed form, as Slack sends it) is
/// answered like one posted to `/slack/interactivity`.
#[tokio::test]
async fn a_click_posted_to_the_events_url_is_answered_too() {
    let app = app().await;
    let menu = post_menu(&app, DM_VISITOR, "m-menu-events-url").await;
    let payload = click(TEAM, "U0ADA", &menu, "kefu_menu_item_1");
    let request = signed_slack_request(
        LOCAL_SLACK_SIGNING_SECRET,
        "/slack/events",
        "application/x-www-form-urlencoded",
        &form_body(&payload),
    );
    let response = kefu_bridge::lambda::Function::SlackEvents
        .handle_http(&app.bridge, &request)
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(
        messages[0]["msg"],
        json!({ "type": "txt", "msg": "Refunds & returns" })
    );
    // Unsigned, it is refused there as anywhere.
    let mut forged = request.clone();
    forged.headers.remove("x-slack-signature");
    let refused = kefu_bridge::lambda::Function::SlackEvents
        .handle_http(&app.bridge, &forged)
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(app.easemob.messages().len(), 1);
}
