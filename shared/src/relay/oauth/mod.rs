//! Slack OAuth v2 install flow (issue "Install the app into any workspace";
//! docs/design.md §2 "OAuth v2 install").
//!
//! `GET /slack/install` issues a one-time `state` (stored with a 10-minute
//! expiry and bound to the browser by a cookie) and shows an "Add to Slack"
//! page linking to `https://slack.com/oauth/v2/authorize`.
//! `GET /slack/oauth/callback` checks the `state` against the cookie and
//! consumes it, exchanges the `code` with `oauth.v2.access`, learns the bot
//! id from `auth.test`, and stores the [`Installation`] (a reinstall
//! replaces the same record). Every failure has its own page and status and
//! stores nothing. One log line per request; codes, states and tokens never
//! reach it.

mod pages;

pub use pages::{escape_html, APP_NAME};

use crate::bridge::Bridge;
use crate::clock::{now_epoch_secs, random_bytes, RandomnessUnavailable};
use crate::config::Config;
use crate::dynamo::DynamoError;
use crate::http_types::{HttpRequest, HttpResponse};
use crate::slack::bot_token::BotToken;
use crate::slack::web::{OAuthV2Access, SlackApiError};
use crate::store::{ConsumedState, Installation, WorkspaceKey, OAUTH_STATE_TTL_SECS};

pub const INSTALL_PATH: &str = "/slack/install";
pub const CALLBACK_PATH: &str = "/slack/oauth/callback";
/// Always slack.com: `SLACK_API_BASE_URL` is for Web API calls only.
pub const AUTHORIZE_URL: &str = "https://slack.com/oauth/v2/authorize";
pub const STATE_COOKIE: &str = "slack_oauth_state";

/// Bot scopes (docs/design.md §2): read the conversations the app is in, post agent
/// replies under the agent's name and avatar, know who is writing, files.
pub const BOT_SCOPES: &[&str] = &[
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
    "files:write",
];

/// Entry point for the `slack-oauth` function.
pub async fn handle(bridge: &Bridge, request: &HttpRequest) -> HttpResponse {
    let path = request.path.trim_end_matches('/');
    let route = if path.ends_with(INSTALL_PATH) {
        "install"
    } else if path.ends_with(CALLBACK_PATH) {
        "callback"
    } else {
        "other"
    };
    let result = if route == "other" {
        Err(InstallError::NotFound)
    } else if !request.method.eq_ignore_ascii_case("GET") {
        Err(InstallError::MethodNotAllowed)
    } else if route == "install" {
        install(bridge, request).await
    } else {
        callback(bridge, request).await
    };
    match result {
        Ok(done) => {
            tracing::info!(
                route,
                outcome = done.outcome,
                team = done.team.as_deref(),
                enterprise = done.enterprise.as_deref(),
                "slack_oauth"
            );
            done.response
        }
        Err(error) => {
            tracing::warn!(
                route,
                outcome = error.outcome(),
                status = error.status(),
                detail = error.detail().as_deref(),
                "slack_oauth"
            );
            error.response(&install_href(&request.path))
        }
    }
}

/// What a successful request did, for its log line.
struct Done {
    outcome: &'static str,
    team: Option<String>,
    enterprise: Option<String>,
    response: HttpResponse,
}

/// `GET /slack/install`: a fresh state, stored and set as a cookie, and the
/// page with the authorize link.
async fn install(bridge: &Bridge, request: &HttpRequest) -> Result<Done, InstallError> {
    let redirect_uri = redirect_uri(&bridge.config, request).ok_or(InstallError::NoRedirectUri)?;
    let state = new_state().map_err(|_| InstallError::RandomnessUnavailable)?;
    bridge
        .store
        .put_oauth_state(
            &state,
            &redirect_uri,
            now_epoch_secs() + OAUTH_STATE_TTL_SECS,
        )
        .await
        .map_err(InstallError::Store)?;
    let link = authorize_url(&bridge.config.slack_client_id, &redirect_uri, &state);
    Ok(Done {
        outcome: "install_page",
        team: None,
        enterprise: None,
        response: pages::response(200, pages::install_page(&link))
            .with_cookie(state_cookie(&state)),
    })
}

/// `GET /slack/oauth/callback`.
async fn callback(bridge: &Bridge, request: &HttpRequest) -> Result<Done, InstallError> {
    let state = request.query_param("state").filter(|s| !s.is_empty());
    let cookie = request.cookie(STATE_COOKIE).filter(|c| !c.is_empty());
    if let Some(error) = request.query_param("error") {
        // The user said no (or Slack stopped the install): this state is
        // finished. Consume it when it is this browser's own; best effort.
        if let (Some(state), Some(cookie)) = (state, cookie) {
            if same_secret(state, cookie) {
                let _ = bridge.store.consume_oauth_state(state).await;
            }
        }
        return Err(if error == "access_denied" {
            InstallError::Cancelled
        } else {
            InstallError::SlackDeclined(error.to_string())
        });
    }
    let state = state.ok_or(InstallError::MissingState)?;
    let code = request
        .query_param("code")
        .filter(|c| !c.is_empty())
        .ok_or(InstallError::MissingCode)?;
    if !plausible_state(state) {
        return Err(InstallError::UnknownState);
    }
    // The cookie is checked before the state is touched: a request from
    // another browser (a forged link) must not burn the real user's state.
    let cookie = cookie.ok_or(InstallError::CookieMissing)?;
    if !same_secret(state, cookie) {
        return Err(InstallError::CookieMismatch);
    }
    let issued = match bridge
        .store
        .consume_oauth_state(state)
        .await
        .map_err(InstallError::Store)?
    {
        ConsumedState::Valid(issued) => issued,
        ConsumedState::Expired => return Err(InstallError::ExpiredState),
        ConsumedState::Unknown => return Err(InstallError::UnknownState),
    };
    // `oauth.v2.access` wants exactly the redirect_uri the authorize link had.
    let redirect_uri = Some(issued.redirect_uri)
        .filter(|r| !r.is_empty())
        .or_else(|| redirect_uri(&bridge.config, request))
        .ok_or(InstallError::NoRedirectUri)?;

    let access: OAuthV2Access = bridge
        .slack
        .oauth_v2_access(
            &bridge.config.slack_client_id,
            &bridge.config.slack_client_secret,
            &[("code", code), ("redirect_uri", &redirect_uri)],
        )
        .await
        .map_err(InstallError::Exchange)?;
    let mut installation = installation_from(access, now_epoch_secs())?;
    // Only now is the workspace known. A refused one stores nothing.
    let ids = [
        installation.team_id.as_deref(),
        installation.enterprise_id.as_deref(),
    ];
    if !bridge.config.allowed_workspaces.allows(ids) {
        return Err(InstallError::WorkspaceNotAllowed(
            installation.key.id().to_string(),
        ));
    }
    // oauth.v2.access does not say which bot it is; auth.test does.
    let who = bridge
        .slack
        .auth_test(&BotToken::fixed(installation.bot_token.clone()))
        .await
        .map_err(InstallError::BotNotConfirmed)?;
    installation.bot_id =
        who.bot_id
            .filter(|b| !b.is_empty())
            .ok_or(InstallError::IncompleteAnswer(
                "auth.test returned no bot_id",
            ))?;
    if installation.bot_user_id.is_empty() {
        installation.bot_user_id = who.user_id.unwrap_or_default();
    }

    let previous = bridge
        .store
        .get_installation(&installation.key)
        .await
        .map_err(InstallError::Store)?;
    // Same pk/sk as before: a reinstall replaces the record (new token and
    // scopes, needs_reinstall cleared), never adds a second one.
    bridge
        .store
        .put_installation(&installation)
        .await
        .map_err(InstallError::Store)?;
    bridge.forget_workspace(&installation.key);

    let workspace_name = installation
        .team_name
        .clone()
        .or_else(|| installation.enterprise_name.clone())
        .unwrap_or_else(|| installation.key.id().to_string());
    let page = pages::success_page(&workspace_name, installation.key.id(), &installation.app_id);
    Ok(Done {
        outcome: if previous.is_some() {
            "reinstalled"
        } else {
            "installed"
        },
        team: installation.team_id.clone(),
        enterprise: installation.enterprise_id.clone(),
        response: pages::response(200, page).with_cookie(clear_state_cookie()),
    })
}

/// The installation record an `oauth.v2.access` answer describes (bot id
/// still empty: it comes from `auth.test`). Enterprise-wide installs are
/// keyed by the enterprise, others by the team.
fn installation_from(access: OAuthV2Access, now: i64) -> Result<Installation, InstallError> {
    if access.token_type.as_deref().is_some_and(|t| t != "bot") {
        return Err(InstallError::IncompleteAnswer("token_type is not bot"));
    }
    let bot_token = access
        .access_token
        .ok_or(InstallError::IncompleteAnswer("no bot access_token"))?;
    let app_id = access
        .app_id
        .filter(|a| !a.is_empty())
        .ok_or(InstallError::IncompleteAnswer("no app_id"))?;
    let team = access.team.filter(|t| !t.id.is_empty());
    let enterprise = access.enterprise.filter(|e| !e.id.is_empty());
    let key = match (&enterprise, &team) {
        (Some(enterprise), _) if access.is_enterprise_install => {
            WorkspaceKey::Enterprise(enterprise.id.clone())
        }
        (_, Some(team)) => WorkspaceKey::Team(team.id.clone()),
        _ => return Err(InstallError::IncompleteAnswer("no team")),
    };
    Ok(Installation {
        key,
        team_id: team.as_ref().map(|t| t.id.clone()),
        team_name: team.and_then(|t| t.name),
        enterprise_id: enterprise.as_ref().map(|e| e.id.clone()),
        enterprise_name: enterprise.and_then(|e| e.name),
        app_id,
        bot_token,
        bot_id: String::new(),
        bot_user_id: access.bot_user_id.unwrap_or_default(),
        scopes: access
            .scope
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        installed_by: access.authed_user.map(|u| u.id),
        installed_at: now,
        refresh_token: access.refresh_token.filter(|_| access.expires_in.is_some()),
        // Saturating: an absurd `expires_in` must not wrap into the past.
        token_expires_at: access.expires_in.map(|secs| now.saturating_add(secs)),
        needs_reinstall: false,
    })
}

/// `SLACK_REDIRECT_URI` when set, else this API's own callback URL.
pub fn redirect_uri(config: &Config, request: &HttpRequest) -> Option<String> {
    config.slack_redirect_uri.clone().or_else(|| {
        request
            .public_base_url
            .as_deref()
            .map(|base| format!("{}{CALLBACK_PATH}", base.trim_end_matches('/')))
    })
}

/// `https://slack.com/oauth/v2/authorize?client_id=…&scope=…&redirect_uri=…&state=…`
pub fn authorize_url(client_id: &str, redirect_uri: &str, state: &str) -> String {
    let scope = BOT_SCOPES.join(",");
    url::Url::parse_with_params(
        AUTHORIZE_URL,
        [
            ("client_id", client_id),
            ("scope", scope.as_str()),
            ("redirect_uri", redirect_uri),
            ("state", state),
        ],
    )
    .map(String::from)
    .unwrap_or_else(|_| AUTHORIZE_URL.to_string())
}

/// 256 random bits, hex: URL- and cookie-safe as is. No state without
/// randomness: a guessable one would let another site finish an install.
fn new_state() -> Result<String, RandomnessUnavailable> {
    random_bytes::<32>().map(hex::encode)
}

/// States this bridge could have issued look like this; anything else is
/// answered without a table lookup.
fn plausible_state(state: &str) -> bool {
    (16..=128).contains(&state.len())
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn state_cookie(state: &str) -> String {
    format!(
        "{STATE_COOKIE}={state}; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age={OAUTH_STATE_TTL_SECS}"
    )
}

pub fn clear_state_cookie() -> String {
    format!("{STATE_COOKIE}=; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
}

/// Compares without an early exit, so timing says nothing about the match.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The install page next to the path this request came to (keeps an API
/// Gateway stage prefix such as `/prod`).
fn install_href(path: &str) -> String {
    let path = path.trim_end_matches('/');
    let prefix = path
        .strip_suffix(CALLBACK_PATH)
        .or_else(|| path.strip_suffix(INSTALL_PATH))
        .unwrap_or("");
    format!("{prefix}{INSTALL_PATH}")
}

/// Every way the flow can fail; [`InstallError::response`] is the one place
/// that turns them into pages.
#[derive(Debug)]
pub enum InstallError {
    NotFound,
    MethodNotAllowed,
    /// Neither `SLACK_REDIRECT_URI` nor an API Gateway domain to derive it from.
    NoRedirectUri,
    Store(DynamoError),
    /// The OS random source failed, so no unguessable `state` can be issued.
    RandomnessUnavailable,
    /// `ALLOWED_TEAM_IDS` does not list this workspace (its id).
    WorkspaceNotAllowed(String),
    MissingState,
    MissingCode,
    CookieMissing,
    CookieMismatch,
    /// Never issued, already used, or not a state at all.
    UnknownState,
    ExpiredState,
    /// `error=access_denied`: the user pressed Cancel on Slack's page.
    Cancelled,
    /// Any other `error=` Slack redirected with.
    SlackDeclined(String),
    /// `oauth.v2.access` failed.
    Exchange(SlackApiError),
    /// `auth.test` with the new token failed.
    BotNotConfirmed(SlackApiError),
    IncompleteAnswer(&'static str),
}

impl InstallError {
    pub fn status(&self) -> u16 {
        match self {
            InstallError::NotFound => 404,
            InstallError::MethodNotAllowed => 405,
            InstallError::NoRedirectUri => 500,
            InstallError::Store(_) | InstallError::RandomnessUnavailable => 503,
            InstallError::CookieMissing | InstallError::CookieMismatch => 401,
            InstallError::WorkspaceNotAllowed(_) => 403,
            InstallError::Exchange(SlackApiError::Api(_)) => 400,
            InstallError::Exchange(_)
            | InstallError::BotNotConfirmed(_)
            | InstallError::IncompleteAnswer(_) => 502,
            InstallError::MissingState
            | InstallError::MissingCode
            | InstallError::UnknownState
            | InstallError::ExpiredState
            | InstallError::Cancelled
            | InstallError::SlackDeclined(_) => 400,
        }
    }

    pub fn outcome(&self) -> &'static str {
        match self {
            InstallError::NotFound => "not_found",
            InstallError::MethodNotAllowed => "method_not_allowed",
            InstallError::NoRedirectUri => "redirect_uri_not_configured",
            InstallError::Store(_) => "store_unavailable",
            InstallError::RandomnessUnavailable => "randomness_unavailable",
            InstallError::WorkspaceNotAllowed(_) => "workspace_not_allowed",
            InstallError::MissingState => "state_missing",
            InstallError::MissingCode => "code_missing",
            InstallError::CookieMissing => "state_cookie_missing",
            InstallError::CookieMismatch => "state_cookie_mismatch",
            InstallError::UnknownState => "state_unknown_or_used",
            InstallError::ExpiredState => "state_expired",
            InstallError::Cancelled => "user_cancelled",
            InstallError::SlackDeclined(_) => "slack_declined",
            InstallError::Exchange(SlackApiError::Api(_)) => "slack_refused_code",
            InstallError::Exchange(_) => "slack_unavailable",
            InstallError::BotNotConfirmed(_) => "auth_test_failed",
            InstallError::IncompleteAnswer(_) => "slack_answer_incomplete",
        }
    }

    /// For the log line: error codes and reasons, never a secret.
    fn detail(&self) -> Option<String> {
        match self {
            InstallError::Store(e) => Some(e.to_string()),
            InstallError::SlackDeclined(code) => Some(code.clone()),
            InstallError::WorkspaceNotAllowed(workspace) => Some(workspace.clone()),
            InstallError::Exchange(e) | InstallError::BotNotConfirmed(e) => Some(e.to_string()),
            InstallError::IncompleteAnswer(what) => Some(what.to_string()),
            _ => None,
        }
    }

    /// Whether the browser's state cookie is finished with. Not after a
    /// cookie failure (it may belong to another install in progress), nor
    /// when the request never got as far as the state.
    fn clears_cookie(&self) -> bool {
        !matches!(
            self,
            InstallError::NotFound
                | InstallError::MethodNotAllowed
                | InstallError::NoRedirectUri
                | InstallError::MissingState
                | InstallError::MissingCode
                | InstallError::CookieMissing
                | InstallError::CookieMismatch
        )
    }

    pub fn response(&self, install_href: &str) -> HttpResponse {
        let again = Some(install_href);
        let (heading, message, code, again): (&str, &str, Option<&str>, Option<&str>) = match self {
            InstallError::NotFound => (
                "Page not found",
                "There is nothing at this address. To add the app to Slack, open the install page.",
                None,
                again,
            ),
            InstallError::MethodNotAllowed => (
                "Method not allowed",
                "This address only answers GET requests from a browser.",
                None,
                None,
            ),
            InstallError::NoRedirectUri => (
                "Installation is not configured",
                "The redirect URL for Slack is unknown: SLACK_REDIRECT_URI must be set to this \
                 service's /slack/oauth/callback address.",
                None,
                None,
            ),
            InstallError::Store(_) => (
                "Temporarily unavailable",
                "We could not reach our database just now. Nothing was changed; please try again \
                 in a moment.",
                None,
                again,
            ),
            InstallError::RandomnessUnavailable => (
                "Temporarily unavailable",
                "We could not create a secure install link just now. Nothing was changed; please \
                 try again in a moment.",
                None,
                again,
            ),
            InstallError::WorkspaceNotAllowed(_) => (
                "This workspace cannot install the app",
                "This app serves only the Slack workspaces its operator has listed, and this one \
                 is not among them, so nothing was installed. If your workspace should have \
                 access, ask whoever runs the app to add it.",
                None,
                None,
            ),
            InstallError::MissingState => (
                "This link is incomplete",
                "The address Slack sent you back to is missing its state parameter, so we cannot \
                 tell which installation it belongs to. Please start again from the install page.",
                None,
                again,
            ),
            InstallError::MissingCode => (
                "This link is incomplete",
                "The address Slack sent you back to is missing its authorization code. Please \
                 start again from the install page.",
                None,
                again,
            ),
            InstallError::CookieMissing | InstallError::CookieMismatch => (
                "Please finish in the same browser",
                "This installation was started in another browser or tab, or your browser did not \
                 keep our cookie. Start again from the install page, in this browser, and finish \
                 it here.",
                None,
                again,
            ),
            InstallError::UnknownState => (
                "This install link was already used",
                "The link is unknown or has already been used, so it cannot install the app \
                 again. Start again from the install page to get a fresh one.",
                None,
                again,
            ),
            InstallError::ExpiredState => (
                "This install link has expired",
                "Install links are valid for 10 minutes. Start again from the install page to \
                 get a fresh one.",
                None,
                again,
            ),
            InstallError::Cancelled => (
                "Installation cancelled",
                "You cancelled on Slack's page, so nothing was installed. Changed your mind? You \
                 can try again at any time.",
                None,
                again,
            ),
            InstallError::SlackDeclined(code) => (
                "Slack stopped the installation",
                "Slack did not let the installation go ahead, and nothing was installed.",
                Some(code.as_str()),
                again,
            ),
            InstallError::Exchange(SlackApiError::Api(code)) => {
                let message = match code.as_str() {
                    "invalid_code" | "code_already_used" | "code_expired" => {
                        "Slack did not accept the authorization code: it has expired or was \
                         already used. Start again from the install page."
                    }
                    "bad_redirect_uri" | "invalid_redirect_uri" | "redirect_uri_mismatch" => {
                        "The redirect URL does not match the one in the Slack app's settings. \
                         Whoever runs this app needs to add it under OAuth & Permissions → \
                         Redirect URLs (or set SLACK_REDIRECT_URI)."
                    }
                    "bad_client_secret" | "invalid_client_id" | "invalid_client" => {
                        "Slack did not accept this app's credentials. Whoever runs this app needs \
                         to check SLACK_CLIENT_ID and SLACK_CLIENT_SECRET."
                    }
                    _ => "Slack refused to complete the installation, and nothing was installed.",
                };
                (
                    "Slack refused the installation",
                    message,
                    Some(code.as_str()),
                    again,
                )
            }
            InstallError::Exchange(_)
            | InstallError::BotNotConfirmed(_)
            | InstallError::IncompleteAnswer(_) => (
                "Slack could not be reached",
                "Slack did not answer properly just now, so nothing was installed. Please try \
                 again in a moment.",
                None,
                again,
            ),
        };
        let mut response = pages::response(
            self.status(),
            pages::problem_page(heading, message, code, again),
        );
        if matches!(self, InstallError::MethodNotAllowed) {
            response = response.with_header("allow", "GET");
        }
        if self.clears_cookie() {
            response = response.with_cookie(clear_state_cookie());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_link_goes_to_slack_com_with_every_parameter() {
        let link = authorize_url("1.2", "https://x.test/slack/oauth/callback", "abc");
        let url = url::Url::parse(&link).unwrap();
        assert_eq!(url.host_str(), Some("slack.com"));
        assert_eq!(url.path(), "/oauth/v2/authorize");
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            params,
            vec![
                ("client_id".into(), "1.2".into()),
                ("scope".into(), BOT_SCOPES.join(",")),
                (
                    "redirect_uri".into(),
                    "https://x.test/slack/oauth/callback".into()
                ),
                ("state".into(), "abc".into()),
            ]
        );
    }

    #[test]
    fn states_are_fresh_long_and_url_safe() {
        let (a, b) = (new_state().unwrap(), new_state().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(plausible_state(&a));
        assert!(!plausible_state("short"));
        assert!(!plausible_state("has space and is long enough"));
    }

    #[test]
    fn the_try_again_link_keeps_the_stage_prefix() {
        assert_eq!(
            install_href("/prod/slack/oauth/callback"),
            "/prod/slack/install"
        );
        assert_eq!(install_href("/slack/oauth/callback/"), "/slack/install");
        assert_eq!(install_href("/elsewhere"), "/slack/install");
    }

    #[test]
    fn without_randomness_the_install_page_is_a_503_and_no_cookie() {
        let error = InstallError::RandomnessUnavailable;
        assert_eq!(error.status(), 503);
        assert_eq!(error.outcome(), "randomness_unavailable");
        let response = error.response("/slack/install");
        assert_eq!(response.status, 503);
        assert!(response.body.contains("Temporarily unavailable"));
        assert!(!response.body.contains("oauth/v2/authorize"));
        assert!(response
            .cookies
            .iter()
            .all(|c| !c.starts_with(&format!("{STATE_COOKIE}=")) || c.ends_with("Max-Age=0")));
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
