//! Easemob REST calls. The base URL is configuration: clusters differ per
//! customer (a1, a31, a1-sgp, …) and tests point it at a local fake.

use serde::Deserialize;
use serde_json::Value;

use crate::http_types::{describe_http, read_body_prefix};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EasemobError {
    /// HTTP 401 (`auth_bad_access_token`): refresh the token once and resend.
    #[error("easemob rejected the token")]
    Unauthorized,
    #[error("easemob rate limited (retry after {retry_after:?} s)")]
    RateLimited { retry_after: Option<u64> },
    /// Network error, timeout, 5xx: worth retrying later.
    #[error("easemob unavailable: {0}")]
    Unavailable(String),
    /// Any other 4xx: retrying the same request will not help.
    #[error("easemob refused the request: HTTP {status} {error}")]
    Rejected { status: u16, error: String },
}

impl EasemobError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            EasemobError::RateLimited { .. }
                | EasemobError::Unavailable(_)
                | EasemobError::Unauthorized
        )
    }
}

/// A token as Easemob issued it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: Secret,
    pub expires_in_secs: i64,
}

/// Bytes of an error answer read at most: Easemob's error JSON is a few
/// hundred bytes, and nothing past this is worth holding.
const ERROR_BODY_LIMIT: usize = 4 * 1024;

#[derive(Clone)]
pub struct EasemobClient {
    http: reqwest::Client,
    /// For chat-file downloads: follows no redirect (docs/design.md §3 "Files").
    downloads: reqwest::Client,
    /// `{base}/{org}/{app}`
    app_url: String,
    client_id: String,
    client_secret: Secret,
}

/// Easemob answers `expires_in` in seconds, but some clusters answer in
/// milliseconds: anything above 1e8 (three years in seconds) is taken as ms.
pub fn expires_in_secs(raw: i64) -> i64 {
    if raw > 100_000_000 {
        raw / 1_000
    } else {
        raw
    }
}

impl EasemobClient {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        org: &str,
        app: &str,
        client_id: &str,
        client_secret: Secret,
    ) -> Self {
        Self {
            http,
            downloads: crate::bridge::no_redirect_http_client(),
            app_url: format!("{}/{org}/{app}", base_url.trim_end_matches('/')),
            client_id: client_id.to_string(),
            client_secret,
        }
    }

    pub fn app_url(&self) -> &str {
        &self.app_url
    }

    /// For the chat-file calls in `chatfiles.rs`.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// For chat-file downloads in `chatfiles.rs`: no redirects.
    pub(crate) fn downloads(&self) -> &reqwest::Client {
        &self.downloads
    }

    /// `POST {base}/{org}/{app}/token` with client credentials.
    pub async fn request_token(&self) -> Result<IssuedToken, EasemobError> {
        #[derive(Deserialize)]
        struct Out {
            access_token: String,
            #[serde(default)]
            expires_in: i64,
        }
        let body = serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose(),
        });
        let response = self
            .http
            .post(format!("{}/token", self.app_url))
            .json(&body)
            .send()
            .await
            .map_err(|e| EasemobError::Unavailable(describe_http(&e)))?;
        let value = Self::check(response).await?;
        let out: Out = serde_json::from_value(value)
            .map_err(|_| EasemobError::Unavailable("token response without access_token".into()))?;
        Ok(IssuedToken {
            access_token: Secret::new(out.access_token),
            expires_in_secs: expires_in_secs(out.expires_in),
        })
    }

    /// Registers an IM user; an existing one (HTTP 400
    /// `duplicate_unique_property_exists`) counts as success.
    pub async fn register_user(
        &self,
        token: &Secret,
        username: &str,
        password: &str,
    ) -> Result<(), EasemobError> {
        let response = self
            .http
            .post(format!("{}/users", self.app_url))
            .bearer_auth(token.expose())
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .map_err(|e| EasemobError::Unavailable(describe_http(&e)))?;
        match Self::check(response).await {
            Ok(_) => Ok(()),
            Err(EasemobError::Rejected { status: 400, error })
                if error == "duplicate_unique_property_exists" =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `POST {base}/{org}/{app}/messages` with a prepared body.
    pub async fn send_message(&self, token: &Secret, body: &[u8]) -> Result<(), EasemobError> {
        let response = self
            .http
            .post(format!("{}/messages", self.app_url))
            .bearer_auth(token.expose())
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| EasemobError::Unavailable(describe_http(&e)))?;
        Self::check(response).await.map(|_| ())
    }

    pub(crate) async fn check(response: reqwest::Response) -> Result<Value, EasemobError> {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = if response.status().is_success() {
            response.bytes().await.map(|body| body.to_vec())
        } else {
            read_body_prefix(response, ERROR_BODY_LIMIT).await
        }
        .map_err(|e| EasemobError::Unavailable(describe_http(&e)))?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match status {
            200..=299 => Ok(value),
            401 => Err(EasemobError::Unauthorized),
            429 => Err(EasemobError::RateLimited { retry_after }),
            400..=499 => Err(EasemobError::Rejected {
                status,
                error: value
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            }),
            _ => Err(EasemobError::Unavailable(format!("HTTP {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_above_1e8_is_milliseconds() {
        assert_eq!(expires_in_secs(5_184_000), 5_184_000);
        assert_eq!(expires_in_secs(5_184_000_000), 5_184_000);
    }
}
