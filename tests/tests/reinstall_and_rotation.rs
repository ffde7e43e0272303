//! Bot tokens that change under warm functions (issue 13, items 1 and 2;
//! docs/design.md §2 "OAuth v2 install"): a reinstall revokes the old token
//! at once while `easemob-callback` and `slack-events` still hold it in
//! memory, and with token rotation several instances meet one expired token.
//! Real handlers, DynamoDB Local, and a fake Slack that revokes a
//! reinstalled workspace's old tokens and honours a refresh token once.

use futures_util::future::join_all;
use kefu_bridge::clock::now_epoch_secs;
use kefu_bridge::relay::easemob_callback;
use kefu_bridge::secret::Secret;
use kefu_bridge::store::{Direction, Installation, RotationLease, WorkspaceKey};
use kefu_bridge::Bridge;
use serde_json::{json, Value};

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::{self, agent_ext, agent_message, agent_reply};
use bridge_tests::fake_server::Fault;
use bridge_tests::oauth_kit::*;
use bridge_tests::rich_kit::*;
use bridge_tests::TestApp;

const TEAM: &str = "T0ACME";
const DM_VISITOR: &str = "T0ACME_U0ADA_D0ADA";
const OLD_TOKEN: &str = "xoxb-acme-1";
const NEW_TOKEN: &str = "xoxb-acme-2";

fn key() -> WorkspaceKey {
    WorkspaceKey::Team(TEAM.into())
}

/// Installed through the real OAuth flow, with Ada and Bob known to Slack.
async fn installed() -> TestApp {
    let app = TestApp::start().await;
    let response = app
        .install_via_oauth("code-1", &oauth_access_answer(TEAM, "Acme Corp", OLD_TOKEN))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    app.add_user("U0BOB", "bob", "Bob Builder");
    app.slack
        .add_team(json!({ "id": TEAM, "name": "Acme Corp", "domain": "acme" }));
    app
}

/// An admin reinstalls (say, for new scopes) through another `slack-oauth`
/// instance: Slack issues `NEW_TOKEN` and revokes the old one at once.
async fn reinstall_elsewhere(app: &TestApp, code: &str, token: &str) {
    let response = app
        .install_via_oauth_elsewhere(code, &oauth_access_answer(TEAM, "Acme Corp", token))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
}

async fn stored(app: &TestApp) -> Installation {
    app.bridge
        .store
        .get_installation(&key())
        .await
        .unwrap()
        .expect("installed")
}

/// Posts Slack took whose text contains `text`.
fn posted_containing(app: &TestApp, text: &str) -> Vec<Value> {
    app.slack
        .posts()
        .into_iter()
        .filter(|p| p["text"].as_str().unwrap_or("").contains(text))
        .collect()
}

/// The bearer tokens of every request to a Web API method, in order.
fn bearers(app: &TestApp, method: &str) -> Vec<String> {
    app.slack
        .calls(method)
        .iter()
        .map(|c| c.bearer().unwrap_or("").to_string())
        .collect()
}

/// Nothing flagged, nothing dead, nothing waiting.
async fn assert_healthy(app: &TestApp) {
    assert!(!stored(app).await.needs_reinstall, "flagged for reinstall");
    assert!(app.dead_letters().await.is_empty(), "dead-lettered");
    assert!(app.waiting(Direction::ToSlack).await.is_empty());
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
}

// ───────────────────────── reinstall while warm ─────────────────────────

#[tokio::test]
async fn after_a_reinstall_a_warm_callback_posts_the_next_reply_once_with_the_new_token() {
    let app = installed().await;
    // Warm: the first reply caches the installation in memory.
    let first = agent_reply(DM_VISITOR, "m-warm-1", "first reply");
    assert_eq!(app.easemob_callback(&first).await.status, 200);
    assert_eq!(bearers(&app, "chat.postMessage"), [OLD_TOKEN]);

    reinstall_elsewhere(&app, "code-2", NEW_TOKEN).await;
    let second = agent_reply(DM_VISITOR, "m-warm-2", "second reply");
    let response = app.easemob_callback(&second).await;
    assert_eq!(response.status, 200, "{response:?}");

    let posted = posted_containing(&app, "second reply");
    assert_eq!(posted.len(), 1, "posted exactly once: {posted:#?}");
    // The stale token was refused once, then the stored one was used.
    assert_eq!(
        bearers(&app, "chat.postMessage"),
        [OLD_TOKEN, OLD_TOKEN, NEW_TOKEN]
    );
    assert_healthy(&app).await;

    // The memory now holds the new token: no refused call any more.
    let third = agent_reply(DM_VISITOR, "m-warm-3", "third reply");
    assert_eq!(app.easemob_callback(&third).await.status, 200);
    assert_eq!(bearers(&app, "chat.postMessage").last().unwrap(), NEW_TOKEN);
    assert_eq!(app.slack.calls("chat.postMessage").len(), 4);
    assert_eq!(posted_containing(&app, "third reply").len(), 1);
}

#[tokio::test]
async fn after_a_reinstall_a_warm_callback_uploads_an_agent_file_with_the_new_token() {
    let app = installed().await;
    let first = agent_reply(DM_VISITOR, "m-file-0", "hello");
    assert_eq!(app.easemob_callback(&first).await.status, 200);

    reinstall_elsewhere(&app, "code-2", NEW_TOKEN).await;
    let photo = png_bytes(20_000);
    let (url, secret) = app
        .easemob
        .add_file("photo.png", "image/png", photo.clone());
    let callback = agent_message(
        DM_VISITOR,
        "m-file-1",
        json!([{ "type": "img", "url": url, "filename": "photo.png", "secret": secret,
                 "file_length": photo.len() }]),
        agent_ext(),
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);

    let shared = app.slack.shared_files();
    assert_eq!(shared.len(), 1, "shared exactly once");
    assert_eq!(shared[0].bytes, photo);
    assert_eq!(
        bearers(&app, "files.getUploadURLExternal"),
        [OLD_TOKEN, NEW_TOKEN]
    );
    assert_eq!(bearers(&app, "files.completeUploadExternal"), [NEW_TOKEN]);
    assert!(
        posted_containing(&app, "photo.png").is_empty(),
        "no fallback line"
    );
    assert_healthy(&app).await;
}

#[tokio::test]
async fn after_a_reinstall_a_warm_slack_events_looks_up_a_new_person_with_the_new_token() {
    let app = installed().await;
    let ada = user_message("D0ADA", "im", "U0ADA", "hello from ada", "1.0001");
    let response = app.slack_event(&event_callback(TEAM, "EvR1", ada)).await;
    assert_eq!(response.status, 200);
    assert_eq!(bearers(&app, "users.info"), [OLD_TOKEN]);

    reinstall_elsewhere(&app, "code-2", NEW_TOKEN).await;
    let bob = user_message("D0BOB", "im", "U0BOB", "hello from bob", "1.0002");
    let response = app.slack_event(&event_callback(TEAM, "EvR2", bob)).await;
    assert_eq!(response.status, 200, "{response:?}");

    assert_eq!(
        bearers(&app, "users.info"),
        [OLD_TOKEN, OLD_TOKEN, NEW_TOKEN]
    );
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(messages[1]["msg"]["msg"], "hello from bob");
    // Bob's profile was found with the new token, not degraded to his id.
    assert_eq!(
        messages[1]["ext"]["weichat"]["visitor"]["userNickname"],
        "bob"
    );
    assert_healthy(&app).await;
}

#[tokio::test]
async fn after_a_reinstall_a_warm_slack_events_downloads_a_shared_file_with_the_new_token() {
    let app = installed().await;
    let ada = user_message("D0ADA", "im", "U0ADA", "hello", "2.0001");
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "EvD1", ada))
            .await
            .status,
        200
    );

    reinstall_elsewhere(&app, "code-2", NEW_TOKEN).await;
    let image = png_bytes(30_000);
    let cat = app
        .slack
        .add_file(TEAM, "cat.png", "image/png", image.clone(), Some((64, 48)));
    let event = file_share("D0ADA", "im", "U0ADA", "", "2.0002", vec![cat]);
    let response = app.slack_event(&event_callback(TEAM, "EvD2", event)).await;
    assert_eq!(response.status, 200, "{response:?}");

    let downloads: Vec<String> = app
        .slack
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/files-pri/"))
        .map(|r| r.bearer().unwrap_or("").to_string())
        .collect();
    assert_eq!(downloads, [OLD_TOKEN, NEW_TOKEN]);
    let uploaded = app.easemob.uploaded_files();
    assert_eq!(uploaded.len(), 1);
    assert_eq!(uploaded[0].bytes, image, "bytes equal at the far end");
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(messages[1]["msg"]["type"], "img");
    assert!(
        app.slack.ephemerals().is_empty(),
        "the visitor is told nothing"
    );
    assert_healthy(&app).await;
}

#[tokio::test]
async fn after_a_reinstall_a_click_updates_the_question_with_the_new_token() {
    let app = installed().await;
    // Ada wrote first (her profile is cached), then the robot asked.
    let ada = user_message("D0ADA", "im", "U0ADA", "hi", "3.0001");
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "EvC1", ada))
            .await
            .status,
        200
    );
    let mut ext = agent_ext();
    ext["msgtype"] = json!({ "choice": { "title": "How can we help?",
        "items": [{ "id": "1", "name": "Orders" }, { "id": "2", "name": "Refunds" }] } });
    let menu = agent_message(
        DM_VISITOR,
        "m-menu-1",
        json!([{ "type": "txt", "msg": "How can we help?" }]),
        ext,
    );
    assert_eq!(app.easemob_callback(&menu).await.status, 200);
    let question = app.slack.posts()[0].clone();

    reinstall_elsewhere(&app, "code-2", NEW_TOKEN).await;
    let response = app
        .interaction(&click(TEAM, "U0ADA", &question, "kefu_menu_item_0"))
        .await;
    assert_eq!(response.status, 200, "{response:?}");

    assert_eq!(bearers(&app, "chat.update"), [OLD_TOKEN, NEW_TOKEN]);
    assert_eq!(app.slack.updates().len(), 1, "updated once");
    let texts = app.easemob.texts();
    assert_eq!(texts, ["hi", "Orders"]);
    assert_healthy(&app).await;
}

#[tokio::test]
async fn after_a_reinstall_a_warm_drain_delivers_a_waiting_reply_once_with_the_new_token() {
    let app = installed().await;
    let first = agent_reply(DM_VISITOR, "m-drain-1", "first reply");
    assert_eq!(app.easemob_callback(&first).await.status, 200);
    // Slack is down for the second reply: it waits in the outbox.
    app.slack.fail_once("chat.postMessage", Fault::Status(503));
    let second = agent_reply(DM_VISITOR, "m-drain-2", "waiting reply");
    assert_eq!(app.easemob_callback(&second).await.status, 200);
    assert_eq!(app.waiting(Direction::ToSlack).await.len(), 1);

    reinstall_elsewhere(&app, "code-2", NEW_TOKEN).await;
    app.make_due().await;
    let summary = app.drain(Direction::ToSlack).await;
    assert_eq!(summary.delivered, 1, "{summary:?}");

    assert_eq!(posted_containing(&app, "waiting reply").len(), 1);
    assert_eq!(
        bearers(&app, "chat.postMessage"),
        [OLD_TOKEN, OLD_TOKEN, OLD_TOKEN, NEW_TOKEN]
    );
    assert_healthy(&app).await;
}

#[tokio::test]
async fn a_refusal_of_the_stored_token_still_flags_the_workspace_and_dead_letters_the_reply() {
    // Revoked with no reinstall: the stored token is the one refused.
    let app = installed().await;
    let first = agent_reply(DM_VISITOR, "m-dead-1", "first reply");
    assert_eq!(app.easemob_callback(&first).await.status, 200);
    app.slack.revoke_token(OLD_TOKEN);
    let second = agent_reply(DM_VISITOR, "m-dead-2", "second reply");
    assert_eq!(app.easemob_callback(&second).await.status, 200);
    assert_eq!(bearers(&app, "chat.postMessage"), [OLD_TOKEN, OLD_TOKEN]);
    assert!(stored(&app).await.needs_reinstall);
    let letters = app.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert!(letters[0].reason.contains("invalid_auth"), "{letters:?}");

    // Reinstalled, then the new token revoked too: the stale token is
    // retried with the stored one, and that refusal is final.
    let app = installed().await;
    let first = agent_reply(DM_VISITOR, "m-dead-3", "first reply");
    assert_eq!(app.easemob_callback(&first).await.status, 200);
    reinstall_elsewhere(&app, "code-2", NEW_TOKEN).await;
    app.slack.revoke_token(NEW_TOKEN);
    let second = agent_reply(DM_VISITOR, "m-dead-4", "second reply");
    assert_eq!(app.easemob_callback(&second).await.status, 200);
    assert_eq!(
        bearers(&app, "chat.postMessage"),
        [OLD_TOKEN, OLD_TOKEN, NEW_TOKEN]
    );
    assert!(app.slack.posts().len() == 1, "only the first reply");
    assert!(stored(&app).await.needs_reinstall);
    let letters = app.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert!(letters[0].reason.contains("invalid_auth"), "{letters:?}");
}

// ───────────────────────── rotation across instances ─────────────────────────

const ROTATING_1: &str = "xoxe.xoxb-acme-1";
const ROTATING_2: &str = "xoxe.xoxb-acme-2";
const REFRESH_1: &str = "xoxe-1-acme-r1";
const REFRESH_2: &str = "xoxe-1-acme-r2";

fn rotating(token: &str, refresh: &str) -> Value {
    let mut answer = oauth_access_answer(TEAM, "Acme Corp", token);
    answer["refresh_token"] = json!(refresh);
    answer["expires_in"] = json!(43_200);
    answer
}

/// Installed with token rotation; the bot token has expired (in the table
/// and at Slack) and Slack will exchange the refresh token once.
async fn installed_with_an_expired_token() -> TestApp {
    let app = TestApp::start().await;
    let response = app
        .install_via_oauth("code-1", &rotating(ROTATING_1, REFRESH_1))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let mut installation = stored(&app).await;
    installation.token_expires_at = Some(now_epoch_secs() - 10);
    app.bridge
        .store
        .put_installation(&installation)
        .await
        .unwrap();
    app.slack.expire_token(ROTATING_1);
    app.slack_accepts_refresh(REFRESH_1, &rotating(ROTATING_2, REFRESH_2));
    app
}

fn refresh_exchanges(app: &TestApp) -> usize {
    app.slack
        .calls("oauth.v2.access")
        .iter()
        .filter(|r| r.param("grant_type").as_deref() == Some("refresh_token"))
        .count()
}

/// One agent reply handled by `bridge` (one Lambda instance).
async fn reply_on(bridge: &Bridge, visitor: &str, msg_id: &str, text: &str) -> u16 {
    let body = agent_reply(visitor, msg_id, text).to_string();
    easemob_callback::handle(
        bridge,
        &callback_kit::callback_request(body.as_bytes(), "application/json"),
    )
    .await
    .status
}

#[tokio::test]
async fn five_instances_meeting_one_expired_token_exchange_it_once_and_all_post_with_the_new_one() {
    let app = installed_with_an_expired_token().await;
    let instances: Vec<Bridge> = (0..5).map(|_| app.another_instance()).collect();
    let statuses = join_all(instances.iter().enumerate().map(|(i, bridge)| {
        let visitor = format!("{TEAM}_U0ADA_D0ADA{i}");
        async move {
            reply_on(
                bridge,
                &visitor,
                &format!("m-rot-{i}"),
                &format!("reply {i}"),
            )
            .await
        }
    }))
    .await;
    assert_eq!(statuses, [200; 5]);

    assert_eq!(refresh_exchanges(&app), 1, "exactly one exchange");
    for i in 0..5 {
        assert_eq!(
            posted_containing(&app, &format!("reply {i}")).len(),
            1,
            "reply {i} posted once"
        );
    }
    assert!(
        bearers(&app, "chat.postMessage")
            .iter()
            .all(|t| t == ROTATING_2),
        "{:?}",
        bearers(&app, "chat.postMessage")
    );
    let installation = stored(&app).await;
    assert_eq!(installation.bot_token, Secret::new(ROTATING_2));
    assert_eq!(installation.refresh_token, Some(Secret::new(REFRESH_2)));
    assert_healthy(&app).await;
}

#[tokio::test]
async fn a_crashed_holders_lease_runs_out_and_another_instance_takes_over() {
    let app = installed_with_an_expired_token().await;
    // An instance took the lease a minute ago and died before exchanging.
    let now = now_epoch_secs();
    let crashed = app
        .bridge
        .store
        .take_rotation_lease(&key(), &Secret::new(REFRESH_1), now - 60, now - 55)
        .await
        .unwrap();
    assert_eq!(crashed, RotationLease::Taken);

    let instance = app.another_instance();
    assert_eq!(
        reply_on(&instance, DM_VISITOR, "m-takeover-1", "after the crash").await,
        200
    );
    assert_eq!(refresh_exchanges(&app), 1);
    assert_eq!(bearers(&app, "chat.postMessage"), [ROTATING_2]);
    assert_eq!(posted_containing(&app, "after the crash").len(), 1);
    assert_eq!(stored(&app).await.bot_token, Secret::new(ROTATING_2));
    assert_healthy(&app).await;
}

#[tokio::test]
async fn a_lease_held_elsewhere_is_waited_for_briefly_and_never_flags_the_workspace() {
    let app = TestApp::start().await;
    let response = app
        .install_via_oauth("code-1", &rotating(ROTATING_1, REFRESH_1))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    app.slack_accepts_refresh(REFRESH_1, &rotating(ROTATING_2, REFRESH_2));
    // Due for a refresh (100 s left) while another instance holds the lease
    // and hangs: the token still works, so the reply goes out with it.
    let mut installation = stored(&app).await;
    installation.token_expires_at = Some(now_epoch_secs() + 100);
    app.bridge
        .store
        .put_installation(&installation)
        .await
        .unwrap();
    let now = now_epoch_secs();
    let hung = app
        .bridge
        .store
        .take_rotation_lease(&key(), &Secret::new(REFRESH_1), now, now + 60)
        .await
        .unwrap();
    assert_eq!(hung, RotationLease::Taken);
    assert_eq!(
        reply_on(
            &app.another_instance(),
            DM_VISITOR,
            "m-held-1",
            "still valid"
        )
        .await,
        200
    );
    assert_eq!(posted_containing(&app, "still valid").len(), 1);
    assert_eq!(bearers(&app, "chat.postMessage"), [ROTATING_1]);
    assert_eq!(refresh_exchanges(&app), 0, "the lease is respected");
    assert!(!stored(&app).await.needs_reinstall);

    // Past its expiry at Slack, the reply waits in the outbox: not flagged,
    // not a dead letter.
    app.slack.expire_token(ROTATING_1);
    assert_eq!(
        reply_on(
            &app.another_instance(),
            DM_VISITOR,
            "m-held-2",
            "after expiry"
        )
        .await,
        200
    );
    assert!(posted_containing(&app, "after expiry").is_empty());
    assert_eq!(app.waiting(Direction::ToSlack).await.len(), 1);
    assert!(app.dead_letters().await.is_empty());
    assert!(!stored(&app).await.needs_reinstall);

    // The hung holder gives up; the next drain rotates once and delivers.
    app.bridge
        .store
        .release_rotation_lease(&key(), &Secret::new(REFRESH_1))
        .await
        .unwrap();
    app.make_due().await;
    let drainer = app.another_instance();
    let summary = kefu_bridge::relay::outbox::drain(
        &drainer,
        Direction::ToSlack,
        std::time::Instant::now() + kefu_bridge::relay::outbox::DRAIN_BUDGET,
    )
    .await;
    assert_eq!(summary.delivered, 1, "{summary:?}");
    assert_eq!(refresh_exchanges(&app), 1);
    assert_eq!(posted_containing(&app, "after expiry").len(), 1);
    assert_eq!(
        bearers(&app, "chat.postMessage").last().unwrap(),
        ROTATING_2
    );
    assert_healthy(&app).await;
}
