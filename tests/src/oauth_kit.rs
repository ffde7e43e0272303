//! Helpers for OAuth flow tests: browser requests as API Gateway hands them
//! over (query and cookie), canned `oauth.v2.access` answers, a few
//! `TestApp` steps of the flow, a small HTML reader for the pages, and a log
//! recorder that proves no secret reaches a log line.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use kefu_bridge::dynamo::item::str_attr;
use kefu_bridge::dynamo::{Item, ItemExt};
use kefu_bridge::http_types::{HttpRequest, HttpResponse};
use kefu_bridge::relay::oauth::{self, STATE_COOKIE};
use kefu_bridge::{relay, Bridge};
use serde_json::{json, Value};

use crate::app::{TestApp, APP_ID};
use crate::fake_slack::BotToken;

/// What API Gateway says the API's public address is (`public_base_url`).
pub const PUBLIC_BASE_URL: &str = "https://bridge.example.test";

/// The redirect URI derived from [`PUBLIC_BASE_URL`].
pub fn callback_url() -> String {
    format!("{PUBLIC_BASE_URL}/slack/oauth/callback")
}

/// A browser's GET as the function receives it: decoded query, cookie
/// header (API Gateway v2 would hand cookies over separately; both work).
pub fn browser_get(path: &str, query: &[(&str, &str)], cookie: Option<&str>) -> HttpRequest {
    let mut request = HttpRequest {
        method: "GET".into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        public_base_url: Some(PUBLIC_BASE_URL.into()),
        ..Default::default()
    };
    if let Some(state) = cookie {
        request.cookies.push(format!("{STATE_COOKIE}={state}"));
    }
    request
}

/// The callback Slack redirects the browser to.
pub fn callback_request(code: &str, state: &str, cookie: Option<&str>) -> HttpRequest {
    browser_get(
        "/slack/oauth/callback",
        &[("code", code), ("state", state)],
        cookie,
    )
}

/// A canned `oauth.v2.access` answer for a bot install into `team`: app
/// [`APP_ID`], bot user `U{team}BOT`, installed by `U0INSTALLER`, every scope
/// the install page asks for, no enterprise, no token rotation.
pub fn oauth_access_answer(team: &str, team_name: &str, bot_token: &str) -> Value {
    json!({
        "ok": true,
        "access_token": bot_token,
        "token_type": "bot",
        "scope": oauth::BOT_SCOPES.join(","),
        "bot_user_id": format!("U{team}BOT"),
        "app_id": APP_ID,
        "team": { "id": team, "name": team_name },
        "enterprise": null,
        "is_enterprise_install": false,
        "authed_user": { "id": "U0INSTALLER", "scope": "", "token_type": "user" },
    })
}

/// The install page as a test sees it: the answer, the state it issued,
/// the cookie it set and the authorize link's parameters (decoded).
pub struct InstallPage {
    pub response: HttpResponse,
    pub state: String,
    pub authorize_url: url::Url,
    pub authorize_params: Vec<(String, String)>,
}

impl InstallPage {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.authorize_params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl TestApp {
    /// One request to the `slack-oauth` handler.
    pub async fn oauth(&self, request: &HttpRequest) -> HttpResponse {
        relay::oauth::handle(&self.bridge, request).await
    }

    /// `GET /slack/install`, with the state read from the cookie and the
    /// page's one authorize link taken apart.
    pub async fn open_install_page(&self) -> InstallPage {
        install_page_of(&self.bridge).await
    }

    /// Teaches the fake Slack a one-time `code` that yields `answer`, and
    /// that `auth.test` knows the bot token in it (bot id `B{team}`).
    /// Slack checks the exchange uses [`callback_url`] as redirect_uri.
    pub fn slack_accepts_code(&self, code: &str, answer: &Value) {
        let mut answer = answer.clone();
        answer["__redirect_uri"] = json!(callback_url());
        self.slack_accepts_code_as_is(code, &answer);
    }

    /// As [`TestApp::slack_accepts_code`], with `answer` taken verbatim
    /// (add `__redirect_uri` yourself to have it checked).
    pub fn slack_accepts_code_as_is(&self, code: &str, answer: &Value) {
        self.slack_knows_bot_token_of(answer);
        self.slack
            .state
            .lock()
            .unwrap()
            .oauth_codes
            .insert(code.into(), answer.clone());
    }

    /// A refresh token the fake Slack exchanges (once) for `answer`, whose
    /// bot token then works (bot id `B{team}`).
    pub fn slack_accepts_refresh(&self, refresh_token: &str, answer: &Value) {
        self.slack_knows_bot_token_of(answer);
        self.slack
            .state
            .lock()
            .unwrap()
            .refresh_tokens
            .insert(refresh_token.into(), answer.clone());
    }

    /// Teaches the fake Slack the bot token of an `oauth.v2.access` answer.
    fn slack_knows_bot_token_of(&self, answer: &Value) {
        let team = answer["team"]["id"]
            .as_str()
            .or(answer["enterprise"]["id"].as_str())
            .unwrap_or("T0UNKNOWN")
            .to_string();
        if let Some(token) = answer["access_token"].as_str() {
            self.slack.add_bot_token(
                token,
                BotToken {
                    team_id: team.clone(),
                    team_name: answer["team"]["name"]
                        .as_str()
                        .unwrap_or("Enterprise")
                        .to_string(),
                    bot_id: format!("B{team}"),
                    bot_user_id: answer["bot_user_id"].as_str().unwrap_or("").to_string(),
                    enterprise_id: answer["enterprise"]["id"].as_str().map(str::to_string),
                },
            );
        }
    }

    /// The whole flow as a browser does it: install page, Slack's consent
    /// (the fake accepts `code` for `answer`), callback with the cookie.
    pub async fn install_via_oauth(&self, code: &str, answer: &Value) -> HttpResponse {
        let page = self.open_install_page().await;
        self.slack_accepts_code(code, answer);
        self.oauth(&callback_request(code, &page.state, Some(&page.state)))
            .await
    }

    /// The same flow served by another `slack-oauth` instance: this app's
    /// bridge, standing for the warm `easemob-callback` and `slack-events`
    /// instances, keeps the installation it has in memory.
    pub async fn install_via_oauth_elsewhere(&self, code: &str, answer: &Value) -> HttpResponse {
        let oauth = self.another_instance();
        let page = install_page_of(&oauth).await;
        self.slack_accepts_code(code, answer);
        relay::oauth::handle(
            &oauth,
            &callback_request(code, &page.state, Some(&page.state)),
        )
        .await
    }

    /// Every item of one partition (e.g. `WORKSPACE#T…`).
    pub async fn items_in(&self, pk: &str) -> Vec<Item> {
        let out = self
            .bridge
            .store
            .db()
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", str_attr(pk))
            .consistent_read(true)
            .send()
            .await
            .expect("query");
        out.items.unwrap_or_default()
    }

    /// Every item in the table (tables are per test and small).
    pub async fn all_items(&self) -> Vec<Item> {
        let out = self
            .bridge
            .store
            .db()
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan");
        out.items.unwrap_or_default()
    }

    /// How many OAuth states the table holds.
    pub async fn stored_states(&self) -> usize {
        self.all_items()
            .await
            .iter()
            .filter(|i| i.s("pk").unwrap_or("").starts_with("OAUTH_STATE#"))
            .count()
    }

    /// How many installations the table holds.
    pub async fn stored_installations(&self) -> usize {
        self.all_items()
            .await
            .iter()
            .filter(|i| i.s("sk") == Some("INSTALLATION"))
            .count()
    }
}

/// `GET /slack/install` on any bridge (e.g. one with other configuration).
pub async fn install_page_of(bridge: &Bridge) -> InstallPage {
    let response = relay::oauth::handle(bridge, &browser_get("/slack/install", &[], None)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let state = response
        .cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{STATE_COOKIE}=")))
        .and_then(|rest| rest.split(';').next())
        .expect("state cookie")
        .to_string();
    let links: Vec<String> = hrefs(&response.body)
        .into_iter()
        .filter(|h| h.contains("/oauth/v2/authorize"))
        .collect();
    assert_eq!(links.len(), 1, "exactly one authorize link: {links:?}");
    let authorize_url = url::Url::parse(&links[0]).expect("authorize link is a URL");
    let authorize_params = authorize_url.query_pairs().into_owned().collect();
    InstallPage {
        response,
        state,
        authorize_url,
        authorize_params,
    }
}

/// Every `href="…"` in a page, with HTML entities undone.
pub fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(unescape_html)
        .collect()
}

/// The text of the first `<tag>…</tag>`, entities undone.
pub fn element_text(html: &str, tag: &str) -> Option<String> {
    let start = html.find(&format!("<{tag}"))?;
    let open_end = start + html[start..].find('>')? + 1;
    let close = open_end + html[open_end..].find(&format!("</{tag}>"))?;
    Some(unescape_html(&html[open_end..close]))
}

pub fn unescape_html(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Tags that open more often than they close (or the reverse), ignoring
/// void elements: a cheap well-formedness check for generated pages.
pub fn unbalanced_tags(html: &str) -> Vec<String> {
    const VOID: &[&str] = &["meta", "br", "img", "input", "link", "hr", "path", "circle"];
    let mut stack: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let Some(end) = rest.find('>') else { break };
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        let self_closing = tag.ends_with('/');
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim().to_ascii_lowercase();
            match stack.pop() {
                Some(open) if open == name => {}
                other => problems.push(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if self_closing || VOID.contains(&name.as_str()) {
            continue;
        }
        if name == "style" {
            // Skip the stylesheet's text.
            if let Some(close) = rest.find("</style>") {
                rest = &rest[close + "</style>".len()..];
            }
            continue;
        }
        stack.push(name);
    }
    problems.extend(stack.into_iter().map(|t| format!("<{t}> never closed")));
    problems
}

/// Records the bridge's log events (message and fields) while installed as
/// the thread's default subscriber. `#[tokio::test]` runs on one thread, so
/// everything the handler awaits is seen.
#[derive(Clone, Default)]
pub struct LogRecorder {
    lines: Arc<Mutex<Vec<String>>>,
}

impl LogRecorder {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.lines.lock().unwrap().clear();
    }
}

struct LineVisitor(String);

impl tracing::field::Visit for LineVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

impl tracing::Subscriber for LogRecorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let meta = event.metadata();
        let mut line = LineVisitor(format!("{} {}", meta.level(), meta.target()));
        event.record(&mut line);
        self.lines.lock().unwrap().push(line.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
