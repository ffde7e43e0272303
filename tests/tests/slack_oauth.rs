//! `slack-oauth` end to end: the install page, Slack's redirect back, the
//! stored installation, every failure, reinstall, enterprise installs, token
//! rotation and uninstall. Real DynamoDB Local, fake Slack over real HTTP.

use std::time::Duration;

use base64::Engine;
use bridge_tests::app::{event_callback, user_message, APP_ID};
use bridge_tests::fake_server::Fault;
use bridge_tests::oauth_kit::*;
use bridge_tests::signing::*;
use bridge_tests::TestApp;
use futures_util::future::join_all;
use kefu_bridge::clock::now_epoch_secs;
use kefu_bridge::dynamo::item::str_attr;
use kefu_bridge::dynamo::ItemExt;
use kefu_bridge::relay::oauth::BOT_SCOPES;
use kefu_bridge::secret::Secret;
use kefu_bridge::store::{Installation, WorkspaceKey};
use serde_json::{json, Value};

const TEAM: &str = "T0ACME";
const TOKEN: &str = "xoxb-acme-1";

fn acme() -> Value {
    oauth_access_answer(TEAM, "Acme Corp", TOKEN)
}

fn team_key() -> WorkspaceKey {
    WorkspaceKey::Team(TEAM.into())
}

async fn stored(app: &TestApp, key: &WorkspaceKey) -> Option<Installation> {
    app.bridge.store.get_installation(key).await.unwrap()
}

/// The failure pages share a shape: the status, an HTML page saying what
/// happened, and nothing stored.
async fn assert_failed(
    app: &TestApp,
    response: &kefu_bridge::http_types::HttpResponse,
    status: u16,
    says: &str,
) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert!(
        response.body.to_lowercase().contains(&says.to_lowercase()),
        "page should say {says:?}: {}",
        response.body
    );
    assert_eq!(app.stored_installations().await, 0, "nothing stored");
}

fn try_again_link(response: &kefu_bridge::http_types::HttpResponse) -> Option<String> {
    let body = &response.body;
    let at = body.find(">Try again<")?;
    hrefs(&body[..at]).pop()
}

// ── The install page ────────────────────────────────────────────────────

#[tokio::test]
async fn the_install_page_links_to_slack_with_a_fresh_state_bound_to_a_cookie() {
    let app = TestApp::start().await;
    let page = app.open_install_page().await;
    let response = &page.response;
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(
        response.cookies,
        vec![format!(
            "slack_oauth_state={}; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=600",
            page.state
        )]
    );
    // ≥128 bits of randomness, URL- and cookie-safe.
    assert_eq!(page.state.len(), 64);
    assert!(page.state.bytes().all(|b| b.is_ascii_hexdigit()));

    // Always slack.com, although SLACK_API_BASE_URL points at the fake.
    assert_eq!(
        format!(
            "{}://{}{}",
            page.authorize_url.scheme(),
            page.authorize_url.host_str().unwrap(),
            page.authorize_url.path()
        ),
        "https://slack.com/oauth/v2/authorize"
    );
    let names: Vec<&str> = page
        .authorize_params
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(names, ["client_id", "scope", "redirect_uri", "state"]);
    assert_eq!(page.param("client_id"), Some(LOCAL_SLACK_CLIENT_ID));
    let scopes: Vec<&str> = page.param("scope").unwrap().split(',').collect();
    assert_eq!(
        scopes,
        [
            "chat:write",
            "chat:write.customize",
            "im:history",
            "channels:history",
            "groups:history",
            "mpim:history",
            "users:read",
            "users:read.email",
            "team:read",
            "files:read",
            "files:write"
        ]
    );
    assert_eq!(page.param("redirect_uri"), Some(callback_url().as_str()));
    assert_eq!(page.param("state"), Some(page.state.as_str()));

    // Stored one-time with a 10-minute validity; the TTL cleans up an hour later.
    let items = app.items_in(&format!("OAUTH_STATE#{}", page.state)).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].s("sk"), Some("STATE"));
    let valid_until = items[0].n("valid_until").unwrap();
    assert!(
        (valid_until - (now_epoch_secs() + 600)).abs() <= 5,
        "{valid_until}"
    );
    assert_eq!(items[0].n("expires_at"), Some(valid_until + 3_600));

    // Every load issues a new state.
    let again = app.open_install_page().await;
    assert_ne!(again.state, page.state);
    assert_eq!(app.stored_states().await, 2);
    // Nothing was asked of Slack's Web API for a page view.
    assert!(app.slack.server.requests().is_empty());
}

#[tokio::test]
async fn both_pages_are_well_formed_self_contained_html() {
    let app = TestApp::start().await;
    let page = app.open_install_page().await;
    let mut answer = acme();
    answer["team"]["name"] = json!("<script>alert('x')</script> & Co");
    app.slack_accepts_code("code-render", &answer);
    let success = app
        .oauth(&callback_request(
            "code-render",
            &page.state,
            Some(&page.state),
        ))
        .await;
    assert_eq!(success.status, 200, "{}", success.body);

    for (html, title) in [
        (&page.response.body, "Add Kefu Support to Slack"),
        (&success.body, "Kefu Support is installed"),
    ] {
        assert!(
            html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
            "{html}"
        );
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html
            .contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
        assert_eq!(element_text(html, "title").as_deref(), Some(title));
        assert_eq!(unbalanced_tags(html), Vec::<String>::new());
        // No external assets: no scripts, stylesheets, images or fonts to fetch.
        for forbidden in ["<script", "<link", "<img", "src=", "@import", "url("] {
            assert!(!html.contains(forbidden), "{forbidden} in {html}");
        }
        assert!(html.trim_end().ends_with("</html>"));
    }
    assert!(page.response.body.contains("Add to Slack</span>"));
    assert!(page.response.body.contains("<svg"));

    // The workspace name is shown, escaped.
    assert!(!success.body.contains("<script>"));
    assert!(success
        .body
        .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co"));
    assert_eq!(
        element_text(&success.body, "strong").as_deref(),
        Some("<script>alert('x')</script> & Co")
    );
    let links = hrefs(&success.body);
    assert_eq!(
        links,
        vec![
            format!("slack://app?team={TEAM}&id={APP_ID}"),
            format!("https://slack.com/app_redirect?app={APP_ID}&team={TEAM}"),
        ]
    );

    if let Ok(dir) = std::env::var("WRITE_OAUTH_PAGES") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/install-page.html"), &page.response.body).unwrap();
        let plain = app
            .install_via_oauth(
                "code-plain",
                &oauth_access_answer("T0NICE", "Acme Corp", "xoxb-nice"),
            )
            .await;
        std::fs::write(format!("{dir}/success-page.html"), &plain.body).unwrap();
        let cancelled = app
            .oauth(&browser_get(
                "/slack/oauth/callback",
                &[("error", "access_denied")],
                None,
            ))
            .await;
        std::fs::write(format!("{dir}/cancelled-page.html"), &cancelled.body).unwrap();
    }
}

// ── The callback: success ───────────────────────────────────────────────

#[tokio::test]
async fn a_full_install_stores_every_field_and_opens_the_app_in_slack() {
    let app = TestApp::start().await;
    let before = now_epoch_secs();
    let page = app.open_install_page().await;
    app.slack_accepts_code("code-1", &acme());
    let response = app
        .oauth(&callback_request("code-1", &page.state, Some(&page.state)))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(
        response.cookies,
        vec!["slack_oauth_state=; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=0".to_string()]
    );
    assert!(response.body.contains("Acme Corp"));
    let links = hrefs(&response.body);
    assert!(links.contains(&format!("slack://app?team={TEAM}&id={APP_ID}")));
    assert!(links.contains(&format!(
        "https://slack.com/app_redirect?app={APP_ID}&team={TEAM}"
    )));

    let installation = stored(&app, &team_key())
        .await
        .expect("installation stored");
    assert!(installation.installed_at >= before && installation.installed_at <= now_epoch_secs());
    assert_eq!(
        installation,
        Installation {
            key: team_key(),
            team_id: Some(TEAM.into()),
            team_name: Some("Acme Corp".into()),
            enterprise_id: None,
            enterprise_name: None,
            app_id: APP_ID.into(),
            bot_token: Secret::new(TOKEN),
            bot_id: format!("B{TEAM}"),
            bot_user_id: format!("U{TEAM}BOT"),
            scopes: BOT_SCOPES.iter().map(|s| s.to_string()).collect(),
            installed_by: Some("U0INSTALLER".into()),
            installed_at: installation.installed_at,
            refresh_token: None,
            token_expires_at: None,
            needs_reinstall: false,
        }
    );
    // One record under the workspace, and the state is gone.
    assert_eq!(app.items_in(&format!("WORKSPACE#{TEAM}")).await.len(), 1);
    assert_eq!(app.stored_states().await, 0);

    // oauth.v2.access: client credentials by HTTP Basic auth, form code +
    // the same redirect_uri as the authorize link; no secret in the body.
    let exchanges = app.slack.calls("oauth.v2.access");
    assert_eq!(exchanges.len(), 1);
    let exchange = &exchanges[0];
    assert_eq!(exchange.method, "POST");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{LOCAL_SLACK_CLIENT_ID}:{LOCAL_SLACK_CLIENT_SECRET}"
    ));
    assert_eq!(
        exchange.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert!(exchange
        .header("content-type")
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&exchange.body)
        .into_owned()
        .collect();
    assert_eq!(
        form,
        vec![
            ("code".to_string(), "code-1".to_string()),
            ("redirect_uri".to_string(), callback_url()),
        ]
    );
    assert!(exchange.query.is_empty());
    // auth.test with the new bot token, to learn the bot id.
    let tests = app.slack.calls("auth.test");
    assert_eq!(tests.len(), 1);
    assert_eq!(tests[0].bearer(), Some(TOKEN));
}

#[tokio::test]
async fn a_reinstall_updates_the_one_record_and_clears_needs_reinstall() {
    let app = TestApp::start().await;
    assert_eq!(app.install_via_oauth("code-1", &acme()).await.status, 200);
    app.bridge
        .store
        .mark_needs_reinstall(&team_key())
        .await
        .unwrap();
    // This instance has the old installation in memory.
    let cached = app.bridge.installation(&team_key()).await.unwrap().unwrap();
    assert!(cached.needs_reinstall);

    let mut answer = oauth_access_answer(TEAM, "Acme Corporation", "xoxb-acme-2");
    answer["scope"] = json!("chat:write,im:history,users:read");
    answer["authed_user"]["id"] = json!("U0OTHERADMIN");
    let response = app.install_via_oauth("code-2", &answer).await;
    assert_eq!(response.status, 200, "{}", response.body);

    let items = app.items_in(&format!("WORKSPACE#{TEAM}")).await;
    assert_eq!(items.len(), 1, "reinstall must not duplicate: {items:?}");
    let installation = stored(&app, &team_key()).await.unwrap();
    assert_eq!(installation.bot_token, Secret::new("xoxb-acme-2"));
    assert_eq!(installation.team_name.as_deref(), Some("Acme Corporation"));
    assert_eq!(
        installation.scopes,
        ["chat:write", "im:history", "users:read"]
    );
    assert_eq!(installation.installed_by.as_deref(), Some("U0OTHERADMIN"));
    assert!(!installation.needs_reinstall);
    // The memory cache was dropped: the new token is used at once.
    let loaded = app.bridge.installation(&team_key()).await.unwrap().unwrap();
    assert_eq!(loaded, installation);
}

#[tokio::test]
async fn an_enterprise_install_is_keyed_by_the_enterprise() {
    let app = TestApp::start().await;
    let answer = json!({
        "ok": true, "access_token": "xoxb-grid-1", "token_type": "bot",
        "scope": BOT_SCOPES.join(","), "bot_user_id": "U0GRIDBOT", "app_id": APP_ID,
        "team": null, "enterprise": { "id": "E0GRID", "name": "Grid Inc" },
        "is_enterprise_install": true,
        "authed_user": { "id": "W0ADMIN" },
    });
    let response = app.install_via_oauth("code-grid", &answer).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.body.contains("Grid Inc"));

    let key = WorkspaceKey::Enterprise("E0GRID".into());
    let installation = stored(&app, &key).await.expect("keyed by enterprise");
    assert_eq!(installation.key, key);
    assert_eq!(installation.team_id, None);
    assert_eq!(installation.team_name, None);
    assert_eq!(installation.enterprise_id.as_deref(), Some("E0GRID"));
    assert_eq!(installation.enterprise_name.as_deref(), Some("Grid Inc"));
    assert_eq!(installation.bot_id, "BE0GRID");
    assert_eq!(installation.bot_user_id, "U0GRIDBOT");
    assert_eq!(installation.installed_by.as_deref(), Some("W0ADMIN"));
    assert_eq!(app.items_in("WORKSPACE#E0GRID").await.len(), 1);
    assert_eq!(app.stored_installations().await, 1);
}

#[tokio::test]
async fn an_enterprise_workspace_installed_per_team_is_keyed_by_the_team() {
    let app = TestApp::start().await;
    let mut answer = acme();
    answer["enterprise"] = json!({ "id": "E0GRID", "name": "Grid Inc" });
    assert_eq!(app.install_via_oauth("code-t", &answer).await.status, 200);
    let installation = stored(&app, &team_key()).await.expect("keyed by team");
    assert_eq!(installation.enterprise_id.as_deref(), Some("E0GRID"));
    assert_eq!(installation.enterprise_name.as_deref(), Some("Grid Inc"));
    assert!(app.items_in("WORKSPACE#E0GRID").await.is_empty());
}

#[tokio::test]
async fn the_redirect_uri_comes_from_configuration_first() {
    let app = TestApp::start().await;
    let mut config = app.bridge.config.clone();
    config.slack_redirect_uri = Some("https://kefu.example.com/slack/oauth/callback".into());
    let bridge = bridge_with(&app, config);
    let page = install_page_of(&bridge).await;
    assert_eq!(
        page.param("redirect_uri"),
        Some("https://kefu.example.com/slack/oauth/callback")
    );
    let mut answer = acme();
    answer["__redirect_uri"] = json!("https://kefu.example.com/slack/oauth/callback");
    app.slack_accepts_code_as_is("code-cfg", &answer);
    let response = kefu_bridge::relay::oauth::handle(
        &bridge,
        &callback_request("code-cfg", &page.state, Some(&page.state)),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(stored(&app, &team_key()).await.is_some());
}

#[tokio::test]
async fn without_a_redirect_uri_the_page_says_slack_redirect_uri_must_be_set() {
    let app = TestApp::start().await;
    let mut request = browser_get("/slack/install", &[], None);
    request.public_base_url = None;
    let response = app.oauth(&request).await;
    assert_failed(&app, &response, 500, "SLACK_REDIRECT_URI must be set").await;
    assert!(response.cookies.is_empty());
    assert_eq!(app.stored_states().await, 0);
}

#[tokio::test]
async fn routes_stage_prefixes_and_methods() {
    let app = TestApp::start().await;
    let staged = app
        .oauth(&browser_get("/prod/slack/install", &[], None))
        .await;
    assert_eq!(staged.status, 200);

    let mut post = browser_get("/slack/install", &[], None);
    post.method = "POST".into();
    let response = app.oauth(&post).await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET"));
    let mut post = callback_request("c", "s", None);
    post.method = "POST".into();
    assert_eq!(app.oauth(&post).await.status, 405);

    let response = app.oauth(&browser_get("/slack/elsewhere", &[], None)).await;
    assert_eq!(response.status, 404);
    assert_eq!(app.stored_states().await, 1);
}

// ── The callback: failures ──────────────────────────────────────────────

#[tokio::test]
async fn a_callback_without_state_or_code_is_400() {
    let app = TestApp::start().await;
    let page = app.open_install_page().await;
    app.slack_accepts_code("code-1", &acme());
    let no_state = app
        .oauth(&browser_get(
            "/slack/oauth/callback",
            &[("code", "code-1")],
            Some(&page.state),
        ))
        .await;
    assert_failed(&app, &no_state, 400, "missing its state").await;
    assert_eq!(try_again_link(&no_state).as_deref(), Some("/slack/install"));
    let no_code = app
        .oauth(&browser_get(
            "/slack/oauth/callback",
            &[("state", &page.state)],
            Some(&page.state),
        ))
        .await;
    assert_failed(&app, &no_code, 400, "missing its authorization code").await;
    assert!(app.slack.calls("oauth.v2.access").is_empty());
    // Neither touched the state: the real callback still works.
    assert_eq!(
        app.oauth(&callback_request("code-1", &page.state, Some(&page.state)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_unknown_or_malformed_state_is_400() {
    let app = TestApp::start().await;
    app.slack_accepts_code("code-1", &acme());
    let never_issued = "ab".repeat(32);
    let response = app
        .oauth(&callback_request(
            "code-1",
            &never_issued,
            Some(&never_issued),
        ))
        .await;
    assert_failed(&app, &response, 400, "already used").await;
    let odd = "not a state <b>";
    let response = app.oauth(&callback_request("code-1", odd, Some(odd))).await;
    assert_failed(&app, &response, 400, "already used").await;
    assert!(!response.body.contains("<b>"));
    assert!(app.slack.calls("oauth.v2.access").is_empty());
}

#[tokio::test]
async fn a_reused_state_is_400_and_installs_nothing_twice() {
    let app = TestApp::start().await;
    let page = app.open_install_page().await;
    app.slack_accepts_code("code-1", &acme());
    let callback = callback_request("code-1", &page.state, Some(&page.state));
    assert_eq!(app.oauth(&callback).await.status, 200);
    app.bridge
        .store
        .db()
        .delete_item()
        .table_name(&app.table)
        .key("pk", str_attr(format!("WORKSPACE#{TEAM}")))
        .key("sk", str_attr("INSTALLATION"))
        .send()
        .await
        .unwrap();
    app.slack_accepts_code("code-1", &acme());
    let replay = app.oauth(&callback).await;
    assert_failed(&app, &replay, 400, "already used").await;
    assert_eq!(app.slack.calls("oauth.v2.access").len(), 1);
}

#[tokio::test]
async fn two_callbacks_racing_with_one_state_install_once() {
    let app = TestApp::start().await;
    let page = app.open_install_page().await;
    app.slack_accepts_code("code-1", &acme());
    let callback = callback_request("code-1", &page.state, Some(&page.state));
    let answers = join_all((0..4).map(|_| app.oauth(&callback))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 400, 400, 400]);
    assert_eq!(app.slack.calls("oauth.v2.access").len(), 1);
}

#[tokio::test]
async fn an_expired_state_is_400_even_before_ttl_deletes_it() {
    let app = TestApp::start().await;
    let state = "0123456789abcdef".repeat(4);
    app.bridge
        .store
        .put_oauth_state(&state, &callback_url(), now_epoch_secs() - 1)
        .await
        .unwrap();
    app.slack_accepts_code("code-1", &acme());
    let response = app
        .oauth(&callback_request("code-1", &state, Some(&state)))
        .await;
    assert_failed(&app, &response, 400, "expired").await;
    assert_eq!(try_again_link(&response).as_deref(), Some("/slack/install"));
    assert!(app.slack.calls("oauth.v2.access").is_empty());
    assert_eq!(app.stored_states().await, 0, "consumed on read");
}

/// Decision: the cookie is checked before the state is consumed, so a
/// forged link opened in another browser can't burn the real user's state;
/// the user can still finish in their own browser.
#[tokio::test]
async fn a_missing_or_foreign_cookie_is_401_and_leaves_the_state_usable() {
    let app = TestApp::start().await;
    let page = app.open_install_page().await;
    let other = app.open_install_page().await;
    app.slack_accepts_code("code-1", &acme());

    let missing = app
        .oauth(&callback_request("code-1", &page.state, None))
        .await;
    assert_failed(&app, &missing, 401, "same browser").await;
    assert!(
        missing.cookies.is_empty(),
        "another install's cookie is kept"
    );
    let foreign = app
        .oauth(&callback_request("code-1", &page.state, Some(&other.state)))
        .await;
    assert_failed(&app, &foreign, 401, "same browser").await;
    assert_eq!(try_again_link(&foreign).as_deref(), Some("/slack/install"));
    assert!(app.slack.calls("oauth.v2.access").is_empty());
    assert_eq!(app.stored_states().await, 2);

    let own = app
        .oauth(&callback_request("code-1", &page.state, Some(&page.state)))
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
}

#[tokio::test]
async fn the_user_cancelling_gets_a_page_with_a_way_back() {
    let app = TestApp::start().await;
    let page = app.open_install_page().await;
    let response = app
        .oauth(&browser_get(
            "/prod/slack/oauth/callback",
            &[("error", "access_denied"), ("state", &page.state)],
            Some(&page.state),
        ))
        .await;
    assert_failed(&app, &response, 400, "cancelled").await;
    assert_eq!(
        try_again_link(&response).as_deref(),
        Some("/prod/slack/install")
    );
    assert!(app.slack.server.requests().is_empty());
    // That state is finished, and so is its cookie.
    assert_eq!(app.stored_states().await, 0);
    assert!(response.cookies[0].ends_with("Max-Age=0"));

    // Slack's other refusals on the redirect are named.
    let response = app
        .oauth(&browser_get(
            "/slack/oauth/callback",
            &[("error", "invalid_scope<x>")],
            None,
        ))
        .await;
    assert_failed(&app, &response, 400, "Slack stopped the installation").await;
    assert!(response.body.contains("invalid_scope&lt;x&gt;"));
}

#[tokio::test]
async fn slack_refusing_the_code_is_a_400_page_in_plain_words() {
    let cases: [(&str, &str); 4] = [
        ("invalid_code", "expired or was already used"),
        ("bad_redirect_uri", "Redirect URLs"),
        ("bad_client_secret", "SLACK_CLIENT_SECRET"),
        ("invalid_client_id", "SLACK_CLIENT_ID"),
    ];
    for (error, says) in cases {
        let app = TestApp::start().await;
        let page = app.open_install_page().await;
        match error {
            // Slack never issued this code.
            "invalid_code" => {}
            // Issued for another redirect URI.
            "bad_redirect_uri" => {
                let mut answer = acme();
                answer["__redirect_uri"] = json!("https://elsewhere.test/cb");
                app.slack_accepts_code_as_is("code-1", &answer);
            }
            _ => {
                app.slack_accepts_code("code-1", &acme());
                app.slack
                    .fail_once("oauth.v2.access", Fault::Error(error.into()));
            }
        }
        let response = app
            .oauth(&callback_request("code-1", &page.state, Some(&page.state)))
            .await;
        assert_failed(&app, &response, 400, says).await;
        assert!(
            response.body.contains(&format!("<code>{error}</code>")),
            "{error}: {}",
            response.body
        );
        assert_eq!(try_again_link(&response).as_deref(), Some("/slack/install"));
        assert!(app.slack.calls("auth.test").is_empty());
    }
}

#[tokio::test]
async fn slack_unreachable_failing_or_slow_is_a_502_page() {
    for fault in [
        Fault::Status(500),
        Fault::Status(503),
        Fault::Slow(Duration::from_millis(2_500)),
        Fault::RateLimited(30),
    ] {
        let app = TestApp::start().await;
        let page = app.open_install_page().await;
        app.slack_accepts_code("code-1", &acme());
        app.slack.fail_once("oauth.v2.access", fault.clone());
        let response = app
            .oauth(&callback_request("code-1", &page.state, Some(&page.state)))
            .await;
        assert_failed(&app, &response, 502, "could not be reached").await;
        assert_eq!(
            try_again_link(&response).as_deref(),
            Some("/slack/install"),
            "{fault:?}"
        );
    }
    // auth.test failing after the exchange stores nothing either.
    let app = TestApp::start().await;
    let page = app.open_install_page().await;
    app.slack_accepts_code("code-1", &acme());
    app.slack.fail_once("auth.test", Fault::Status(500));
    let response = app
        .oauth(&callback_request("code-1", &page.state, Some(&page.state)))
        .await;
    assert_failed(&app, &response, 502, "could not be reached").await;

    // And Slack not listening at all.
    let app = TestApp::start().await;
    let mut config = app.bridge.config.clone();
    let port = bridge_tests::dynamodb_local::free_port().unwrap();
    config.slack_api_base_url = format!("http://127.0.0.1:{port}/api");
    let bridge = bridge_with(&app, config);
    let page = install_page_of(&bridge).await;
    let response = kefu_bridge::relay::oauth::handle(
        &bridge,
        &callback_request("code-1", &page.state, Some(&page.state)),
    )
    .await;
    assert_failed(&app, &response, 502, "could not be reached").await;
}

// ── Token rotation ──────────────────────────────────────────────────────

fn rotating(token: &str, refresh: &str, expires_in: i64) -> Value {
    let mut answer = oauth_access_answer(TEAM, "Acme Corp", token);
    answer["refresh_token"] = json!(refresh);
    answer["expires_in"] = json!(expires_in);
    answer
}

/// Moves the stored bot token's expiry (as if time had passed).
async fn expire_at(app: &TestApp, at: i64) {
    let mut installation = stored(app, &team_key()).await.unwrap();
    installation.token_expires_at = Some(at);
    app.bridge
        .store
        .put_installation(&installation)
        .await
        .unwrap();
}

fn refresh_calls(app: &TestApp) -> Vec<bridge_tests::Recorded> {
    app.slack
        .calls("oauth.v2.access")
        .into_iter()
        .filter(|r| r.param("grant_type").as_deref() == Some("refresh_token"))
        .collect()
}

#[tokio::test]
async fn a_rotating_install_stores_the_refresh_token_and_expiry() {
    let app = TestApp::start().await;
    let now = now_epoch_secs();
    let response = app
        .install_via_oauth("code-1", &rotating("xoxe.xoxb-1", "xoxe-1-r1", 43_200))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let installation = stored(&app, &team_key()).await.unwrap();
    assert_eq!(installation.bot_token, Secret::new("xoxe.xoxb-1"));
    assert_eq!(installation.refresh_token, Some(Secret::new("xoxe-1-r1")));
    let expires = installation.token_expires_at.unwrap();
    assert!((expires - (now + 43_200)).abs() <= 5, "{expires}");
    // Fresh for hours: loading it asks Slack nothing.
    app.bridge.installation(&team_key()).await.unwrap();
    assert!(refresh_calls(&app).is_empty());
}

#[tokio::test]
async fn an_expired_token_is_refreshed_exactly_once_under_five_concurrent_loads() {
    let app = TestApp::start().await;
    app.install_via_oauth("code-1", &rotating("xoxe.xoxb-1", "xoxe-1-r1", 43_200))
        .await;
    expire_at(&app, now_epoch_secs() - 10).await;
    app.slack_accepts_refresh("xoxe-1-r1", &rotating("xoxe.xoxb-2", "xoxe-1-r2", 43_200));

    let key = team_key();
    let loads = join_all((0..5).map(|_| app.bridge.installation(&key))).await;
    for loaded in loads {
        let loaded = loaded.unwrap().unwrap();
        assert_eq!(loaded.bot_token, Secret::new("xoxe.xoxb-2"));
    }
    let calls = refresh_calls(&app);
    assert_eq!(calls.len(), 1, "exactly one refresh");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{LOCAL_SLACK_CLIENT_ID}:{LOCAL_SLACK_CLIENT_SECRET}"
    ));
    assert_eq!(
        calls[0].header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        calls[0].param("refresh_token").as_deref(),
        Some("xoxe-1-r1")
    );

    let installation = stored(&app, &team_key()).await.unwrap();
    assert_eq!(installation.bot_token, Secret::new("xoxe.xoxb-2"));
    assert_eq!(installation.refresh_token, Some(Secret::new("xoxe-1-r2")));
    assert!(installation.token_expires_at.unwrap() > now_epoch_secs() + 43_000);
    // Everything else is untouched.
    assert_eq!(installation.bot_id, format!("B{TEAM}"));
    assert_eq!(installation.scopes.len(), BOT_SCOPES.len());
    assert_eq!(app.items_in(&format!("WORKSPACE#{TEAM}")).await.len(), 1);
}

#[tokio::test]
async fn a_token_expiring_within_five_minutes_is_refreshed_before_use() {
    let app = TestApp::start().await;
    app.install_via_oauth("code-1", &rotating("xoxe.xoxb-1", "xoxe-1-r1", 43_200))
        .await;
    // Six minutes left: used as is.
    expire_at(&app, now_epoch_secs() + 360).await;
    let loaded = app
        .another_instance()
        .installation(&team_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.bot_token, Secret::new("xoxe.xoxb-1"));
    assert!(refresh_calls(&app).is_empty());
    // Four minutes left: refreshed first.
    expire_at(&app, now_epoch_secs() + 240).await;
    app.slack_accepts_refresh("xoxe-1-r1", &rotating("xoxe.xoxb-2", "xoxe-1-r2", 43_200));
    let loaded = app
        .another_instance()
        .installation(&team_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.bot_token, Secret::new("xoxe.xoxb-2"));
    assert_eq!(refresh_calls(&app).len(), 1);
}

#[tokio::test]
async fn two_instances_racing_to_refresh_agree_on_the_stored_pair() {
    let app = TestApp::start().await;
    app.install_via_oauth("code-1", &rotating("xoxe.xoxb-1", "xoxe-1-r1", 43_200))
        .await;
    expire_at(&app, now_epoch_secs() - 10).await;
    // Slack honours a refresh token once; the loser is refused.
    app.slack_accepts_refresh("xoxe-1-r1", &rotating("xoxe.xoxb-2", "xoxe-1-r2", 43_200));
    let (a, b) = (app.another_instance(), app.another_instance());
    let key = team_key();
    let loads = join_all(
        [&a, &b, &a, &b]
            .into_iter()
            .map(|bridge| bridge.installation(&key)),
    )
    .await;
    let installation = stored(&app, &team_key()).await.unwrap();
    assert_eq!(installation.bot_token, Secret::new("xoxe.xoxb-2"));
    assert_eq!(installation.refresh_token, Some(Secret::new("xoxe-1-r2")));
    assert!(!installation.needs_reinstall);
    for loaded in loads {
        assert_eq!(loaded.unwrap().unwrap().bot_token, installation.bot_token);
    }
    assert_eq!(
        refresh_calls(&app).len(),
        1,
        "one exchange across instances"
    );
}

#[tokio::test]
async fn a_refused_refresh_token_flags_the_installation_for_reinstall() {
    let app = TestApp::start().await;
    app.install_via_oauth("code-1", &rotating("xoxe.xoxb-1", "xoxe-1-r1", 43_200))
        .await;
    expire_at(&app, now_epoch_secs() - 10).await;
    // Slack knows no such refresh token (revoked).
    let loaded = app.bridge.installation(&team_key()).await.unwrap().unwrap();
    assert!(loaded.needs_reinstall);
    assert!(stored(&app, &team_key()).await.unwrap().needs_reinstall);
    // Not retried on every load.
    app.another_instance()
        .installation(&team_key())
        .await
        .unwrap();
    assert_eq!(refresh_calls(&app).len(), 1);
    // A reinstall clears it.
    let response = app
        .install_via_oauth("code-2", &rotating("xoxe.xoxb-9", "xoxe-1-r9", 43_200))
        .await;
    assert_eq!(response.status, 200);
    let loaded = app.bridge.installation(&team_key()).await.unwrap().unwrap();
    assert!(!loaded.needs_reinstall);
    assert_eq!(loaded.bot_token, Secret::new("xoxe.xoxb-9"));
}

#[tokio::test]
async fn slack_down_during_refresh_keeps_the_installation_and_retries_later() {
    let app = TestApp::start().await;
    app.install_via_oauth("code-1", &rotating("xoxe.xoxb-1", "xoxe-1-r1", 43_200))
        .await;
    expire_at(&app, now_epoch_secs() + 100).await;
    app.slack_accepts_refresh("xoxe-1-r1", &rotating("xoxe.xoxb-2", "xoxe-1-r2", 43_200));
    app.slack.fail_once("oauth.v2.access", Fault::Status(503));
    let loaded = app.bridge.installation(&team_key()).await.unwrap().unwrap();
    assert_eq!(loaded.bot_token, Secret::new("xoxe.xoxb-1"));
    assert!(!loaded.needs_reinstall);
    let loaded = app.bridge.installation(&team_key()).await.unwrap().unwrap();
    assert_eq!(loaded.bot_token, Secret::new("xoxe.xoxb-2"));
}

// ── Uninstall ───────────────────────────────────────────────────────────

#[tokio::test]
async fn install_then_uninstall_then_messages_are_dropped() {
    let app = TestApp::start().await;
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    app.slack
        .add_team(json!({ "id": TEAM, "name": "Acme Corp", "domain": "acme" }));
    assert_eq!(app.install_via_oauth("code-1", &acme()).await.status, 200);

    let dm = |id: &str, text: &str, ts: &str| {
        event_callback(TEAM, id, user_message("D0ADA", "im", "U0ADA", text, ts))
    };
    assert_eq!(
        app.slack_event(&dm("EvO1", "hello", "1.0001")).await.status,
        200
    );
    assert_eq!(app.easemob.texts(), vec!["hello"]);
    // The bridge asked Slack with the token the install stored.
    assert!(app
        .slack
        .calls("users.info")
        .iter()
        .all(|c| c.bearer() == Some(TOKEN)));

    let uninstall = event_callback(TEAM, "EvO2", json!({ "type": "app_uninstalled" }));
    assert_eq!(app.slack_event(&uninstall).await.status, 200);
    assert!(stored(&app, &team_key()).await.is_none());
    assert!(app.items_in(&format!("WORKSPACE#{TEAM}")).await.is_empty());

    assert_eq!(
        app.slack_event(&dm("EvO3", "still there?", "1.0002"))
            .await
            .status,
        200
    );
    assert_eq!(app.easemob.texts(), vec!["hello"]);

    // Installing again brings it back.
    assert_eq!(app.install_via_oauth("code-2", &acme()).await.status, 200);
    assert_eq!(
        app.slack_event(&dm("EvO4", "back", "1.0003")).await.status,
        200
    );
    assert_eq!(app.easemob.texts(), vec!["hello", "back"]);
}

// ── The real binary ─────────────────────────────────────────────────────

// ── helpers ─────────────────────────────────────────────────────────────

/// A bridge over the app's table and fakes with other configuration.
fn bridge_with(app: &TestApp, config: kefu_bridge::Config) -> kefu_bridge::Bridge {
    let http = kefu_bridge::bridge::http_client();
    let db = bridge_tests::app::local_dynamodb(&app.dynamodb_endpoint);
    kefu_bridge::Bridge::new(config, db, http)
}
