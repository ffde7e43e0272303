//! The Kefu conversation in Slack, end to end through the real handlers,
//! DynamoDB Local and the fake Slack and Easemob: session notices (an
//! agent joined, waiting, handed on, ended), an agent's recall deleting
//! the Slack posts, a customer's edits and deletions reaching the agent,
//! and routing every visitor message to the workspace's skill group.

use bridge_tests::app::{deleted_message, edited_message, event_callback, user_message};
use bridge_tests::callback_kit::*;
use bridge_tests::fake_server::Fault;
use bridge_tests::rich_kit::*;
use bridge_tests::TestApp;
use kefu_bridge::slack::ChannelId;
use kefu_bridge::store::{Direction, NoticeLanguage, Route, WorkspaceKey};
use serde_json::{json, Value};

const TEAM: &str = "T0TEAM1";
const DM_VISITOR: &str = "T0TEAM1_U0ADA_D0ADA";
const CHANNEL_VISITOR: &str = "T0TEAM1_U0ADA_C0SUPPORT";
const SCOPES: &[&str] = &["chat:write", "im:history", "channels:history", "users:read"];

const OPENED: &str = "ServiceSessionOpenedEvent";
const CREATED: &str = "ServiceSessionCreatedEvent";
const WAITING: &str = "ServiceSessionTransferedToAgentQueueEvent";
const TRANSFERRED: &str = "ServiceSessionTransferedEvent";
const CLOSED: &str = "ServiceSessionClosedEvent";

async fn app() -> TestApp {
    let app = TestApp::start().await;
    app.install(TEAM, SCOPES).await;
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    app
}

fn workspace() -> WorkspaceKey {
    WorkspaceKey::Team(TEAM.into())
}

/// The text of every quiet one-line notice posted, in order.
fn notice_lines(app: &TestApp) -> Vec<String> {
    app.slack
        .context_posts()
        .iter()
        .map(|post| post["text"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn deliver(app: &TestApp, callback: &Value) {
    let response = app.easemob_callback(callback).await;
    assert_eq!(response.status, 200, "{response:?}");
}

// ───────────────────────────── session notices ─────────────────────────────

#[tokio::test]
async fn each_session_event_is_one_quiet_line_in_the_dm_once() {
    let app = app().await;
    let events = [
        session_event(
            DM_VISITOR,
            "m-created",
            CREATED,
            json!({ "sessionId": "9f3e" }),
        ),
        session_event(DM_VISITOR, "m-waiting", WAITING, json!({})),
        session_event(
            DM_VISITOR,
            "m-opened",
            OPENED,
            agent_event_obj("Alice Agent"),
        ),
        agent_reply(DM_VISITOR, "m-reply", "Hi Ada, how can I help?"),
        session_event(
            DM_VISITOR,
            "m-moved",
            TRANSFERRED,
            agent_event_obj("Bob <B&B>"),
        ),
        session_event(DM_VISITOR, "m-closed", CLOSED, json!({})),
    ];
    for callback in &events {
        deliver(&app, callback).await;
        // Easemob may deliver the same message again, as `chat_offline`.
        deliver(&app, &as_event_type(callback.clone(), "chat_offline")).await;
    }
    assert_eq!(
        notice_lines(&app),
        [
            "⏳ Waiting for an agent — you'll be connected as soon as one is free",
            "👋 *Alice Agent* joined the conversation",
            "🔀 Your conversation was handed to *Bob &lt;B&amp;B&gt;*",
            "✅ The conversation has ended. Write again any time to start a new one.",
        ]
    );
    let posts = app.slack.posts();
    assert_eq!(posts.len(), 5, "{posts:#?}");
    for notice in app.slack.context_posts() {
        assert_eq!(notice["channel"], "D0ADA");
        assert_eq!(notice["thread_ts"], Value::Null);
        // From the app itself: no agent name or avatar on a notice.
        assert_eq!(notice["username"], Value::Null);
        let blocks = notice["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0]["elements"][0]["type"], "mrkdwn");
        assert_eq!(blocks[0]["elements"][0]["text"], notice["text"]);
    }
    // The reply between them is an ordinary post, in its place.
    assert_eq!(posts[2]["text"], "*Alice Agent:* Hi Ada, how can I help?");
}

#[tokio::test]
async fn the_agent_name_may_come_as_user_nickname_and_an_event_may_carry_text() {
    let app = app().await;
    let mut callback = agent_message(
        DM_VISITOR,
        "m-opened-2",
        json!([{ "type": "txt", "msg": "Hello, Alice here" }]),
        agent_ext(),
    );
    callback["payload"]["ext"]["weichat"]["event"] =
        json!({ "eventName": OPENED, "eventObj": { "userNickname": "Alice Agent" } });
    deliver(&app, &callback).await;
    let texts: Vec<Value> = app
        .slack
        .posts()
        .iter()
        .map(|p| p["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [
            json!("👋 *Alice Agent* joined the conversation"),
            json!("*Alice Agent:* Hello, Alice here"),
        ]
    );
}

#[tokio::test]
async fn in_a_channel_the_notice_goes_to_the_visitors_thread() {
    let app = app().await;
    let question = user_message(
        "C0SUPPORT",
        "channel",
        "U0ADA",
        "Is my order late?",
        "1700.0002",
    );
    let mut question = question;
    question["thread_ts"] = json!("1700.0001");
    let response = app
        .slack_event(&event_callback(TEAM, "Ev-thread-1", question))
        .await;
    assert_eq!(response.status, 200);
    deliver(
        &app,
        &session_event(
            CHANNEL_VISITOR,
            "m-opened-c",
            OPENED,
            agent_event_obj("Alice Agent"),
        ),
    )
    .await;
    let notices = app.slack.context_posts();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["channel"], "C0SUPPORT");
    assert_eq!(notices[0]["thread_ts"], "1700.0001");
}

#[tokio::test]
async fn a_chinese_workspace_gets_chinese_notices() {
    let app = app().await;
    app.bridge
        .store
        .put_notice_language(&workspace(), NoticeLanguage::Chinese)
        .await
        .unwrap();
    deliver(
        &app,
        &session_event(DM_VISITOR, "m-zh-1", OPENED, agent_event_obj("小王")),
    )
    .await;
    deliver(
        &app,
        &session_event(DM_VISITOR, "m-zh-2", CLOSED, json!({})),
    )
    .await;
    assert_eq!(
        notice_lines(&app),
        [
            "👋 客服 *小王* 已接入会话",
            "✅ 会话已结束。如需帮助，请随时发送新消息。"
        ]
    );
}

#[tokio::test]
async fn a_notice_slack_does_not_take_waits_in_the_outbox_and_is_posted_once() {
    let app = app().await;
    app.slack.fail_once("chat.postMessage", Fault::Status(500));
    let closed = session_event(DM_VISITOR, "m-closed-late", CLOSED, json!({}));
    deliver(&app, &closed).await;
    assert!(app.slack.posts().is_empty());
    assert_eq!(app.waiting(Direction::ToSlack).await.len(), 1);
    app.make_due().await;
    app.drain(Direction::ToSlack).await;
    deliver(&app, &closed).await;
    assert_eq!(
        notice_lines(&app),
        ["✅ The conversation has ended. Write again any time to start a new one."]
    );
    assert!(app.waiting(Direction::ToSlack).await.is_empty());
}

// ───────────────────────────── recalls ─────────────────────────────

#[tokio::test]
async fn a_kefu_recall_deletes_every_post_that_carried_the_message() {
    let app = app().await;
    // Long enough for two posts.
    let long = "word ".repeat(1_000);
    let reply = agent_message(
        DM_VISITOR,
        "1100000000000000001",
        json!([{ "type": "txt", "msg": long }]),
        agent_ext_with_kefu_id("kefu-msg-1"),
    );
    deliver(&app, &reply).await;
    deliver(
        &app,
        &agent_reply(DM_VISITOR, "1100000000000000002", "Anything else?"),
    )
    .await;
    assert_eq!(app.slack.posts().len(), 3);

    // Kefu names the message by its own id (`ext.weichat.msgId`).
    deliver(
        &app,
        &kefu_recall(DM_VISITOR, "1100000000000000003", "kefu-msg-1"),
    )
    .await;
    let deleted: Vec<Value> = app
        .slack
        .deletes()
        .iter()
        .map(|d| d["ts"].clone())
        .collect();
    let posts = app.slack.posts();
    assert_eq!(deleted, [posts[0]["ts"].clone(), posts[1]["ts"].clone()]);
    let left: Vec<Value> = app
        .slack
        .visible_posts()
        .iter()
        .map(|p| p["text"].clone())
        .collect();
    assert_eq!(left, [json!("*Alice Agent:* Anything else?")]);
    // chat.delete went with the workspace's bot token.
    let call = &app.slack.calls("chat.delete")[0];
    assert_eq!(call.bearer(), Some("xoxb-t0team1-token"));

    // The same recall again (Easemob's retry) deletes nothing more.
    deliver(
        &app,
        &kefu_recall(DM_VISITOR, "1100000000000000003", "kefu-msg-1"),
    )
    .await;
    assert_eq!(app.slack.calls("chat.delete").len(), 2);
}

#[tokio::test]
async fn a_recall_by_easemob_msg_id_in_either_shape_deletes_the_post() {
    let app = app().await;
    deliver(
        &app,
        &agent_reply(DM_VISITOR, "1200000000000000001", "first"),
    )
    .await;
    deliver(
        &app,
        &agent_reply(DM_VISITOR, "1200000000000000002", "second"),
    )
    .await;
    deliver(
        &app,
        &im_recall(DM_VISITOR, "1200000000000000003", "1200000000000000001"),
    )
    .await;
    deliver(
        &app,
        &kefu_recall(DM_VISITOR, "1200000000000000004", "1200000000000000002"),
    )
    .await;
    assert!(
        app.slack.visible_posts().is_empty(),
        "{:#?}",
        app.slack.visible_posts()
    );
    assert_eq!(app.slack.deletes().len(), 2);
}

#[tokio::test]
async fn a_reply_posted_by_the_outbox_drain_can_be_recalled() {
    let app = app().await;
    app.slack.fail_once("chat.postMessage", Fault::Status(503));
    let reply = agent_message(
        DM_VISITOR,
        "1300000000000000001",
        json!([{ "type": "txt", "msg": "sent late" }]),
        agent_ext_with_kefu_id("kefu-msg-13"),
    );
    deliver(&app, &reply).await;
    assert!(app.slack.posts().is_empty());
    app.make_due().await;
    assert_eq!(app.drain(Direction::ToSlack).await.delivered, 1);
    assert_eq!(app.slack.posts().len(), 1);
    deliver(
        &app,
        &kefu_recall(DM_VISITOR, "1300000000000000002", "kefu-msg-13"),
    )
    .await;
    assert!(app.slack.visible_posts().is_empty());
}

#[tokio::test]
async fn unknown_expired_and_other_visitors_recalls_delete_nothing() {
    let app = app().await;
    deliver(
        &app,
        &agent_reply(DM_VISITOR, "1400000000000000001", "kept"),
    )
    .await;
    deliver(
        &app,
        &agent_reply("T0TEAM1_U0BOB_D0BOB", "1400000000000000002", "Bob's"),
    )
    .await;
    // Never posted here.
    deliver(
        &app,
        &im_recall(DM_VISITOR, "1400000000000000003", "1399999999999999999"),
    )
    .await;
    // Bob's message, named in a recall sent to Ada: not hers to take back.
    deliver(
        &app,
        &im_recall(DM_VISITOR, "1400000000000000004", "1400000000000000002"),
    )
    .await;
    // Past the 7-day window.
    app.expire_slack_posts(&workspace(), "1400000000000000001")
        .await;
    deliver(
        &app,
        &im_recall(DM_VISITOR, "1400000000000000005", "1400000000000000001"),
    )
    .await;
    // A recall naming no message at all.
    deliver(&app, &kefu_recall(DM_VISITOR, "1400000000000000006", "")).await;
    assert!(app.slack.calls("chat.delete").is_empty());
    assert_eq!(app.slack.visible_posts().len(), 2);
}

#[tokio::test]
async fn a_recall_slack_cannot_take_now_is_answered_503_for_easemobs_retry() {
    let app = app().await;
    deliver(
        &app,
        &agent_reply(DM_VISITOR, "1500000000000000001", "oops"),
    )
    .await;
    app.slack.fail_once("chat.delete", Fault::Status(500));
    let recall = im_recall(DM_VISITOR, "1500000000000000002", "1500000000000000001");
    assert_eq!(app.easemob_callback(&recall).await.status, 503);
    deliver(&app, &recall).await;
    assert!(app.slack.visible_posts().is_empty());
}

// ───────────────────────────── customer edits and deletions ─────────────────────────────

#[tokio::test]
async fn an_edit_reaches_the_agent_once_marked_edited() {
    let app = app().await;
    let original = user_message("D0ADA", "im", "U0ADA", "one latte", "1700.0100");
    app.slack_event(&event_callback(TEAM, "Ev-orig", original))
        .await;
    let edit = event_callback(
        TEAM,
        "Ev-edit",
        edited_message(
            "D0ADA",
            "im",
            "U0ADA",
            "1700.0100",
            "one latte",
            "two lattes &amp; a muffin",
        ),
    );
    assert_eq!(app.slack_event(&edit).await.status, 200);
    // Slack's retry of the same event.
    assert_eq!(app.slack_event(&edit).await.status, 200);
    assert_eq!(
        app.easemob.texts(),
        ["one latte", "(edited) two lattes & a muffin"]
    );
    let sent = &app.easemob.messages()[1];
    assert_eq!(sent["from"], DM_VISITOR);
    assert_eq!(sent["ext"]["weichat"]["visitor"]["userNickname"], "ada");
}

#[tokio::test]
async fn a_preview_or_the_bridges_own_edit_is_not_an_edit() {
    let app = app().await;
    // Slack adds a link preview: `message_changed` with the same text.
    let preview = edited_message("D0ADA", "im", "U0ADA", "1700.0200", "see x.io", "see x.io");
    app.slack_event(&event_callback(TEAM, "Ev-preview", preview))
        .await;
    // The bridge updates its own menu (`chat.update`): the bot's message.
    let mut own = edited_message(
        "D0ADA",
        "im",
        "UT0TEAM1BOT",
        "1700.0300",
        "menu",
        "answered",
    );
    own["message"]["bot_id"] = json!("BT0TEAM1");
    own["previous_message"]["bot_id"] = json!("BT0TEAM1");
    app.slack_event(&event_callback(TEAM, "Ev-own-edit", own))
        .await;
    assert!(app.easemob.messages().is_empty());
}

#[tokio::test]
async fn a_deleted_message_sends_the_agent_a_short_note() {
    let app = app().await;
    let previous = user_message("D0ADA", "im", "U0ADA", "wrong order, sorry", "1700.0400");
    let deletion = deleted_message("D0ADA", "im", previous);
    let event = event_callback(TEAM, "Ev-del", deletion);
    assert_eq!(app.slack_event(&event).await.status, 200);
    assert_eq!(app.slack_event(&event).await.status, 200);
    assert_eq!(
        app.easemob.texts(),
        ["(deleted a message: \"wrong order, sorry\")"]
    );
}

#[tokio::test]
async fn the_bridges_own_deletions_never_reach_the_agent() {
    let app = app().await;
    deliver(
        &app,
        &agent_reply(DM_VISITOR, "1600000000000000001", "recalled soon"),
    )
    .await;
    deliver(
        &app,
        &im_recall(DM_VISITOR, "1600000000000000002", "1600000000000000001"),
    )
    .await;
    assert_eq!(app.slack.deletes().len(), 1);
    // Slack tells the app about the deletion: the previous message is the
    // bot's own post.
    let post = app.slack.posts()[0].clone();
    let previous = json!({
        "type": "message", "user": post["bot_user_id"], "bot_id": post["bot_id"],
        "app_id": bridge_tests::app::APP_ID, "text": post["text"], "ts": post["ts"],
    });
    let event = event_callback(TEAM, "Ev-bot-del", deleted_message("D0ADA", "im", previous));
    assert_eq!(app.slack_event(&event).await.status, 200);
    assert!(app.easemob.messages().is_empty());
}

// ───────────────────────────── routing ─────────────────────────────

#[tokio::test]
async fn every_visitor_message_carries_its_routes_skill_group() {
    let app = app().await;
    let support = ChannelId::parse("C0SUPPORT").unwrap();
    let store = &app.bridge.store;
    store
        .put_route(&workspace(), None, "general")
        .await
        .unwrap();
    store
        .put_route(&workspace(), Some(&support), "售后")
        .await
        .unwrap();
    let mut routes = store.routes(&workspace()).await.unwrap();
    routes.sort_by(|a, b| a.channel.cmp(&b.channel));
    assert_eq!(
        routes,
        [
            Route {
                channel: None,
                queue: "general".into()
            },
            Route {
                channel: Some("C0SUPPORT".into()),
                queue: "售后".into()
            },
        ]
    );

    let dm = user_message("D0ADA", "im", "U0ADA", "hello", "1700.0500");
    app.slack_event(&event_callback(TEAM, "Ev-r1", dm)).await;
    let in_channel = user_message("C0SUPPORT", "channel", "U0ADA", "hi there", "1700.0501");
    app.slack_event(&event_callback(TEAM, "Ev-r2", in_channel))
        .await;
    // An answer to a question (here: "talk to a person") is routed too.
    let mut ext = agent_ext();
    ext["weichat"]["ctrlType"] = json!("TransferToKfHint");
    ext["weichat"]["ctrlArgs"] = json!({ "id": 7, "serviceSessionId": "9f3e", "label": "人工" });
    let hint = agent_message(
        DM_VISITOR,
        "m-hint-r",
        json!([{ "type": "txt", "msg": "?" }]),
        ext,
    );
    deliver(&app, &hint).await;
    let hint_post = app.slack.posts()[0].clone();
    app.interaction(&click(TEAM, "U0ADA", &hint_post, "kefu_transfer"))
        .await;

    let queues: Vec<Value> = app
        .easemob
        .messages()
        .iter()
        .map(|m| m["ext"]["weichat"]["queueName"].clone())
        .collect();
    assert_eq!(queues, [json!("general"), json!("售后"), json!("general")]);
}

#[tokio::test]
async fn without_a_route_messages_carry_no_queue_and_a_new_route_reaches_a_cold_instance() {
    let app = app().await;
    let first = user_message("D0ADA", "im", "U0ADA", "hello", "1700.0600");
    app.slack_event(&event_callback(TEAM, "Ev-n1", first)).await;
    let sent = &app.easemob.messages()[0];
    assert!(
        sent["ext"]["weichat"].get("queueName").is_none(),
        "{sent:#}"
    );

    app.bridge
        .store
        .put_route(&workspace(), None, "vip")
        .await
        .unwrap();
    let cold = app.another_instance();
    let second = user_message("D0ADA", "im", "U0ADA", "again", "1700.0601");
    let request =
        app.signed_slack_request(event_callback(TEAM, "Ev-n2", second).to_string().as_bytes());
    kefu_bridge::relay::slack_events::handle(&cold, &request).await;
    assert_eq!(
        app.easemob.messages()[1]["ext"]["weichat"]["queueName"],
        "vip"
    );

    app.bridge
        .store
        .delete_route(&workspace(), None)
        .await
        .unwrap();
    assert!(app
        .bridge
        .store
        .routes(&workspace())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_uninstall_forgets_the_workspaces_routes_at_once() {
    let app = app().await;
    app.bridge
        .store
        .put_route(&workspace(), None, "old-queue")
        .await
        .unwrap();
    let first = user_message("D0ADA", "im", "U0ADA", "hello", "1700.0700");
    app.slack_event(&event_callback(TEAM, "Ev-u1", first)).await;
    assert_eq!(
        app.easemob.messages()[0]["ext"]["weichat"]["queueName"],
        "old-queue"
    );

    let uninstall = event_callback(TEAM, "Ev-u2", json!({ "type": "app_uninstalled" }));
    assert_eq!(app.slack_event(&uninstall).await.status, 200);
    assert!(app
        .bridge
        .store
        .routes(&workspace())
        .await
        .unwrap()
        .is_empty());
    app.install(TEAM, SCOPES).await;
    let again = user_message("D0ADA", "im", "U0ADA", "back again", "1700.0701");
    app.slack_event(&event_callback(TEAM, "Ev-u3", again)).await;
    let sent = &app.easemob.messages()[1];
    assert!(
        sent["ext"]["weichat"].get("queueName").is_none(),
        "{sent:#}"
    );
}
