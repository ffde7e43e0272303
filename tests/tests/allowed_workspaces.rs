//! `ALLOWED_TEAM_IDS` (docs/design.md §1): a bridge meant for some
//! workspaces refuses every other one — its install with a clear page
//! (403, nothing stored), its events and clicks (200 so Slack does not
//! retry, nothing sent to Kefu) and agent replies to its visitors (200,
//! nothing posted) — while the listed workspaces work as before.

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::*;
use bridge_tests::oauth_kit::*;
use bridge_tests::rich_kit::click;
use bridge_tests::TestApp;
use serde_json::{json, Value};

const ALLOWED: &str = "T0ALLOWED";
const OTHER: &str = "T0OTHER";
const LIST: &str = "T0ALLOWED, E0GRID";
const SCOPES: &[&str] = &["chat:write", "im:history", "users:read"];

fn dm_from(team: &str, event_id: &str, text: &str) -> Value {
    event_callback(
        team,
        event_id,
        user_message("D0ADA", "im", "U0ADA", text, "1.0001"),
    )
}

#[tokio::test]
async fn an_install_into_an_unlisted_workspace_gets_a_403_page_and_stores_nothing() {
    let mut app = TestApp::start().await;
    app.reconfigure(&[("ALLOWED_TEAM_IDS", LIST)]);

    let refused = app
        .install_via_oauth(
            "code-other",
            &oauth_access_answer(OTHER, "Other Corp", "xoxb-other"),
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("text/html")));
    assert_eq!(
        element_text(&refused.body, "h1").as_deref(),
        Some("This workspace cannot install the app")
    );
    assert!(unbalanced_tags(&refused.body).is_empty());
    assert_eq!(app.stored_installations().await, 0);
    assert!(
        app.slack.calls("auth.test").is_empty(),
        "a refused workspace's token is not used"
    );

    let installed = app
        .install_via_oauth(
            "code-allowed",
            &oauth_access_answer(ALLOWED, "Allowed Inc", "xoxb-allowed"),
        )
        .await;
    assert_eq!(installed.status, 200, "{installed:?}");
    assert_eq!(app.stored_installations().await, 1);

    // An Enterprise Grid organisation on the list installs org-wide.
    let mut grid = oauth_access_answer(OTHER, "Grid Member", "xoxb-grid");
    grid["team"] = Value::Null;
    grid["enterprise"] = json!({ "id": "E0GRID", "name": "Grid" });
    grid["is_enterprise_install"] = json!(true);
    let installed = app.install_via_oauth("code-grid", &grid).await;
    assert_eq!(installed.status, 200, "{installed:?}");
    assert_eq!(app.stored_installations().await, 2);
}

/// Both workspaces were installed before the list was set; afterwards only
/// the listed one is served.
#[tokio::test]
async fn events_clicks_and_replies_of_an_unlisted_workspace_are_not_relayed() {
    let mut app = TestApp::start().await;
    for team in [ALLOWED, OTHER] {
        app.install(team, SCOPES).await;
    }
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    // A menu the agent sent to the other workspace's visitor while it was
    // still served.
    let menu_ext = {
        let mut ext = agent_ext();
        ext["msgtype"] =
            json!({ "choice": { "title": "Pick", "items": [{ "id": "1", "name": "Orders" }] } });
        ext
    };
    let menu = agent_message(
        &format!("{OTHER}_U0ADA_D0ADA"),
        "m-menu-other",
        json!([{ "type": "txt", "msg": "Pick" }]),
        menu_ext,
    );
    assert_eq!(app.easemob_callback(&menu).await.status, 200);
    let posted_menu = app.slack.posts()[0].clone();

    app.reconfigure(&[("ALLOWED_TEAM_IDS", LIST)]);

    for _ in 0..2 {
        let response = app.slack_event(&dm_from(OTHER, "EvOther", "hello?")).await;
        assert_eq!(response.status, 200, "{response:?}");
        assert!(response.header("x-slack-no-retry").is_none());
    }
    let response = app
        .interaction(&click(OTHER, "U0ADA", &posted_menu, "kefu_menu_item_0"))
        .await;
    assert_eq!(response.status, 200);
    assert!(
        app.easemob.messages().is_empty(),
        "{:?}",
        app.easemob.messages()
    );
    assert!(app.slack.calls("chat.update").is_empty());

    let reply = agent_reply(&format!("{OTHER}_U0ADA_D0ADA"), "m-other", "for other");
    assert_eq!(app.easemob_callback(&reply).await.status, 200);
    assert_eq!(app.slack.posts().len(), 1, "only the menu from before");

    // The listed workspace is served as before.
    let response = app
        .slack_event(&dm_from(ALLOWED, "EvAllowed", "hello"))
        .await;
    assert_eq!(response.status, 200);
    let messages = app.easemob.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["from"], format!("{ALLOWED}_U0ADA_D0ADA"));
    let reply = agent_reply(
        &format!("{ALLOWED}_U0ADA_D0ADA"),
        "m-allowed",
        "for allowed",
    );
    assert_eq!(app.easemob_callback(&reply).await.status, 200);
    let posts = app.slack.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1]["team_id"], ALLOWED);

    // Uninstalling the unlisted workspace still cleans up after it.
    let uninstall = event_callback(OTHER, "EvUninstall", json!({ "type": "app_uninstalled" }));
    assert_eq!(app.slack_event(&uninstall).await.status, 200);
    assert_eq!(app.stored_installations().await, 1);
}
