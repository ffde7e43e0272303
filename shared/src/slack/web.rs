//! Slack Web API client (docs/design.md §2 "Web API calls"). The base URL is
//! configuration so tests and the demo point it at a local fake.
//!
//! Read methods go as GET with query parameters and writes as POST JSON, the
//! way Slack's own SDKs call them; the token always travels as
//! `Authorization: Bearer` (never in the query).

use std::time::Duration;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

use super::bot_token::BotToken;
use crate::dynamo::DynamoError;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SlackApiError {
    /// HTTP 429 with `Retry-After` seconds.
    #[error("rate limited (retry after {retry_after:?} s)")]
    RateLimited { retry_after: Option<u64> },
    /// `ok: false` with Slack's error code.
    #[error("slack error: {0}")]
    Api(String),
    /// Network error, timeout or HTTP 5xx: worth retrying later.
    #[error("slack unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected slack response: {0}")]
    Malformed(String),
}

impl SlackApiError {
    /// The token no longer works: the workspace must reinstall. Only ever
    /// concluded for the stored token (see [`super::bot_token`]).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, SlackApiError::Api(code) if matches!(code.as_str(),
            "invalid_auth" | "token_revoked" | "account_inactive" | "not_authed"))
    }

    /// Slack did not take the token itself: before anything is concluded,
    /// the stored token is looked at (docs/design.md §2 "OAuth v2 install").
    /// An expired one too: another instance may have rotated it.
    pub fn is_token_refused(&self) -> bool {
        self.is_auth_failure()
            || matches!(self, SlackApiError::Api(code) if code == "token_expired")
    }

    /// Worth trying again later (the message is not to be dropped). An
    /// expired token is: rotation replaces it (a refresh Slack refuses
    /// flags the workspace there, not here).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SlackApiError::RateLimited { .. } | SlackApiError::Unavailable(_)
        ) || matches!(self, SlackApiError::Api(code) if matches!(code.as_str(),
            "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout"
            | "token_expired"))
    }
}

impl From<DynamoError> for SlackApiError {
    fn from(e: DynamoError) -> Self {
        SlackApiError::Unavailable(e.to_string())
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct SlackUser {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub real_name: Option<String>,
    #[serde(default)]
    pub tz: Option<String>,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub profile: SlackProfile,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct SlackProfile {
    #[serde(default)]
    pub real_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub image_72: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct SlackTeam {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthTest {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub bot_id: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub enterprise_id: Option<String>,
}

/// The `oauth.v2.access` answer (docs/design.md §2 "OAuth v2 install"), for both the
/// code exchange and the token-rotation refresh grant. It carries no bot id:
/// that comes from `auth.test` with the new token.
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthV2Access {
    #[serde(default, deserialize_with = "optional_secret")]
    pub access_token: Option<Secret>,
    #[serde(default)]
    pub token_type: Option<String>,
    /// Comma-separated bot scopes.
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub bot_user_id: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub team: Option<OAuthEntity>,
    #[serde(default)]
    pub enterprise: Option<OAuthEntity>,
    #[serde(default)]
    pub is_enterprise_install: bool,
    #[serde(default)]
    pub authed_user: Option<OAuthEntity>,
    /// With token rotation on: a refresh token and the bot token's lifetime.
    #[serde(default, deserialize_with = "optional_secret")]
    pub refresh_token: Option<Secret>,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// `team`, `enterprise` and `authed_user` in an `oauth.v2.access` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthEntity {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// Tokens go straight into a [`Secret`], so a `{:?}` of the answer leaks nothing.
fn optional_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

/// `chat.postMessage` arguments the bridge uses (also kept in the outbox
/// as JSON, hence `Deserialize`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PostMessage {
    pub channel: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    /// Agent text is shown as written, not re-linked or re-formatted.
    pub unfurl_links: bool,
    /// Block Kit for Kefu's questions (menus, ratings, transfer hints);
    /// `text` is then the fallback notifications and screen readers show.
    /// Kept in the outbox with the rest, so a question posted late still
    /// has its buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Value>,
}

/// `chat.update` of one of the bridge's messages (a menu once answered).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageUpdate {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Value,
}

/// `chat.postEphemeral`: a note only `user` sees.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EphemeralMessage {
    pub channel: String,
    pub user: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PostedMessage {
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
}

/// Where one of the bridge's posts is: enough to `chat.delete` it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SlackMessageRef {
    pub channel: String,
    pub ts: String,
}

impl SlackMessageRef {
    /// The post `chat.postMessage` answered for `post` (Slack names the
    /// channel it used; a DM may be answered with its `D…` id).
    pub fn of(post: &PostMessage, posted: &PostedMessage) -> Option<Self> {
        Some(Self {
            channel: posted
                .channel
                .clone()
                .unwrap_or_else(|| post.channel.clone()),
            ts: posted.ts.clone()?,
        })
    }
}

#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base_url: String,
}

impl SlackClient {
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn users_info(
        &self,
        token: &BotToken<'_>,
        user: &str,
    ) -> Result<SlackUser, SlackApiError> {
        #[derive(Deserialize)]
        struct Out {
            user: SlackUser,
        }
        let request = self
            .http
            .get(self.url("users.info"))
            .query(&[("user", user)]);
        Ok(self.send_as::<Out>(token, request).await?.user)
    }

    pub async fn team_info(
        &self,
        token: &BotToken<'_>,
        team: &str,
    ) -> Result<SlackTeam, SlackApiError> {
        #[derive(Deserialize)]
        struct Out {
            team: SlackTeam,
        }
        let request = self
            .http
            .get(self.url("team.info"))
            .query(&[("team", team)]);
        Ok(self.send_as::<Out>(token, request).await?.team)
    }

    pub async fn auth_test(&self, token: &BotToken<'_>) -> Result<AuthTest, SlackApiError> {
        let request = self.http.post(self.url("auth.test"));
        self.send_as(token, request).await
    }

    pub async fn post_message(
        &self,
        token: &BotToken<'_>,
        message: &PostMessage,
    ) -> Result<PostedMessage, SlackApiError> {
        let request = self.http.post(self.url("chat.postMessage")).json(message);
        self.send_as(token, request).await
    }

    pub async fn chat_update(
        &self,
        token: &BotToken<'_>,
        update: &MessageUpdate,
    ) -> Result<Value, SlackApiError> {
        let request = self.http.post(self.url("chat.update")).json(update);
        self.send_as(token, request).await
    }

    /// `chat.delete` of one of the bot's own messages.
    pub async fn chat_delete(
        &self,
        token: &BotToken<'_>,
        message: &SlackMessageRef,
    ) -> Result<Value, SlackApiError> {
        let request = self.http.post(self.url("chat.delete")).json(message);
        self.send_as(token, request).await
    }

    pub async fn post_ephemeral(
        &self,
        token: &BotToken<'_>,
        message: &EphemeralMessage,
    ) -> Result<Value, SlackApiError> {
        let request = self.http.post(self.url("chat.postEphemeral")).json(message);
        self.send_as(token, request).await
    }

    /// `views.open` with a `trigger_id` (valid for 3 s after the click).
    pub async fn views_open(
        &self,
        token: &BotToken<'_>,
        trigger_id: &str,
        view: &Value,
    ) -> Result<Value, SlackApiError> {
        let request = self
            .http
            .post(self.url("views.open"))
            .json(&serde_json::json!({ "trigger_id": trigger_id, "view": view }));
        self.send_as(token, request).await
    }

    /// `oauth.v2.access`, client credentials by HTTP Basic auth (docs/design.md §2).
    /// `form` is `code` + `redirect_uri`, or `grant_type=refresh_token` +
    /// `refresh_token`.
    pub async fn oauth_v2_access<T: DeserializeOwned>(
        &self,
        client_id: &str,
        client_secret: &Secret,
        form: &[(&str, &str)],
    ) -> Result<T, SlackApiError> {
        let request = self
            .http
            .post(self.url("oauth.v2.access"))
            .basic_auth(client_id, Some(client_secret.expose()))
            .form(form);
        self.send(request).await
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn url(&self, method: &str) -> String {
        format!("{}/{method}", self.base_url)
    }

    /// Sends a Web API request with the bot token as `Authorization:
    /// Bearer` — once more with the stored token when Slack refuses a stale
    /// one ([`BotToken::call`]). Bodies are JSON or forms, so the request
    /// can always be built twice.
    pub(crate) async fn send_as<T: DeserializeOwned>(
        &self,
        token: &BotToken<'_>,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SlackApiError> {
        token
            .call(SlackApiError::is_token_refused, |secret| {
                let request = request.try_clone();
                async move {
                    let request = request.ok_or_else(|| {
                        SlackApiError::Malformed("request body cannot be sent twice".into())
                    })?;
                    self.send(request.bearer_auth(secret.expose())).await
                }
            })
            .await
    }

    /// One request as built (bearer calls come through [`Self::send_as`]).
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SlackApiError> {
        let response = request
            .send()
            .await
            .map_err(|e| SlackApiError::Unavailable(crate::http_types::describe_http(&e)))?;
        let status = response.status();
        if status.as_u16() == 429 {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            return Err(SlackApiError::RateLimited { retry_after });
        }
        if status.is_server_error() {
            return Err(SlackApiError::Unavailable(format!("HTTP {status}")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| SlackApiError::Unavailable(crate::http_types::describe_http(&e)))?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| SlackApiError::Malformed(format!("HTTP {status}, body is not JSON")))?;
        if value.get("ok").and_then(Value::as_bool) != Some(true) {
            let code = value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown_error");
            return Err(SlackApiError::Api(code.to_string()));
        }
        serde_json::from_value(value).map_err(|e| SlackApiError::Malformed(e.to_string()))
    }
}

/// How long to wait for a rate-limited Slack call before giving up on this
/// invocation (the caller then answers so the sender retries).
pub fn retry_after_fits(retry_after: Option<u64>, budget: Duration) -> Option<Duration> {
    let wait = Duration::from_secs(retry_after.unwrap_or(1));
    (wait <= budget).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_is_looked_up_and_only_a_dead_one_means_reinstall() {
        let api = |code: &str| SlackApiError::Api(code.into());
        for code in [
            "invalid_auth",
            "token_revoked",
            "account_inactive",
            "not_authed",
        ] {
            assert!(api(code).is_token_refused(), "{code}");
            assert!(api(code).is_auth_failure(), "{code}");
            assert!(!api(code).is_transient(), "{code}");
        }
        // Rotation replaces an expired token: retried, never a reinstall.
        let expired = api("token_expired");
        assert!(expired.is_token_refused());
        assert!(!expired.is_auth_failure());
        assert!(expired.is_transient());
        for other in [
            api("channel_not_found"),
            api("ratelimited"),
            SlackApiError::Unavailable("HTTP 503".into()),
        ] {
            assert!(!other.is_token_refused(), "{other}");
        }
    }
}
