//! Slack files both ways: downloading what a visitor shared (`url_private`
//! with the bot token; needs `files:read`) and uploading what an agent sent
//! with Slack's external upload flow (needs `files:write`):
//! `files.getUploadURLExternal` (form: `filename`, `length`) → POST the
//! bytes to `upload_url` → `files.completeUploadExternal` (JSON: `files`,
//! `channel_id`, `thread_ts`, `initial_comment`), which shares the file in
//! the conversation.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bot_token::BotToken;
use super::web::{SlackApiError, SlackClient};
use crate::http_types::{describe_http, read_body_bounded, same_origin, BoundedReadError};
use crate::secret::Secret;

/// Why a download from Slack stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackDownloadError {
    TooLarge {
        at_least: u64,
    },
    /// The URL is not Slack's: the bot token is not sent there.
    NotSlackHosted,
    /// Slack answered its sign-in page instead of the file: the token
    /// lacks `files:read` (or is not valid for the file's workspace).
    SignInPage,
    Slack(SlackApiError),
}

impl SlackDownloadError {
    /// Slack did not take the token: its sign-in page (also its answer to a
    /// token without `files:read`), or a refused token.
    fn is_token_refused(&self) -> bool {
        match self {
            SlackDownloadError::SignInPage => true,
            SlackDownloadError::Slack(error) => error.is_token_refused(),
            _ => false,
        }
    }
}

impl From<SlackApiError> for SlackDownloadError {
    fn from(error: SlackApiError) -> Self {
        SlackDownloadError::Slack(error)
    }
}

/// Where to upload one file's bytes.
#[derive(Debug, Clone, Deserialize)]
pub struct UploadTicket {
    pub upload_url: String,
    pub file_id: String,
}

/// `files.completeUploadExternal` arguments.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CompleteUpload {
    pub files: Vec<UploadedFileRef>,
    pub channel_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UploadedFileRef {
    pub id: String,
    pub title: String,
}

/// Slack's own file hosts. `url_private` of an external file (Google Drive…)
/// points elsewhere, and the bot token must never travel there.
fn is_slack_file_host(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| {
        u.scheme() == "https"
            && u.host_str()
                .is_some_and(|h| h == "files.slack.com" || h.ends_with(".slack.com"))
    })
}

impl SlackClient {
    /// Downloads a file a visitor shared into `into` (at most `limit` bytes)
    /// with the bot token (the stored one if Slack refuses a stale one).
    /// Tests' fake Slack serves files from the Web API's own origin, which
    /// is trusted like Slack's hosts.
    pub async fn download_private_file(
        &self,
        token: &BotToken<'_>,
        url: &str,
        limit: u64,
        timeout: Duration,
        into: &mut Vec<u8>,
    ) -> Result<u64, SlackDownloadError> {
        if !is_slack_file_host(url) && !same_origin(url, self.base_url()) {
            return Err(SlackDownloadError::NotSlackHosted);
        }
        let response = token
            .call(SlackDownloadError::is_token_refused, |secret| async move {
                self.open_private_file(&secret, url, timeout).await
            })
            .await?;
        read_body_bounded(response, limit, into)
            .await
            .map_err(|error| match error {
                BoundedReadError::TooLarge { at_least } => {
                    SlackDownloadError::TooLarge { at_least }
                }
                BoundedReadError::Http(e) => {
                    SlackDownloadError::Slack(SlackApiError::Unavailable(describe_http(&e)))
                }
            })
    }

    /// Asks for a file with `token`: the answer whose body is the file, or
    /// why not.
    async fn open_private_file(
        &self,
        token: &Secret,
        url: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, SlackDownloadError> {
        // reqwest drops `Authorization` if a redirect leaves the host.
        let response = self
            .http()
            .get(url)
            .bearer_auth(token.expose())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                SlackDownloadError::Slack(SlackApiError::Unavailable(describe_http(&e)))
            })?;
        let status = response.status();
        if status.as_u16() == 429 {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            return Err(SlackDownloadError::Slack(SlackApiError::RateLimited {
                retry_after,
            }));
        }
        if status.is_server_error() {
            return Err(SlackDownloadError::Slack(SlackApiError::Unavailable(
                format!("HTTP {status}"),
            )));
        }
        if !status.is_success() {
            return Err(SlackDownloadError::Slack(SlackApiError::Api(format!(
                "file download answered HTTP {status}"
            ))));
        }
        // Without `files:read`, Slack answers 200 with its HTML sign-in page.
        let is_html = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/html")
            });
        if is_html {
            return Err(SlackDownloadError::SignInPage);
        }
        Ok(response)
    }

    /// `files.getUploadURLExternal`: form-encoded (the method takes no JSON).
    pub async fn get_upload_url_external(
        &self,
        token: &BotToken<'_>,
        filename: &str,
        length: u64,
    ) -> Result<UploadTicket, SlackApiError> {
        let request = self
            .http()
            .post(self.url("files.getUploadURLExternal"))
            .form(&[("filename", filename), ("length", &length.to_string())]);
        self.send_as(token, request).await
    }

    /// POSTs the file's bytes to the `upload_url` (a pre-signed URL: no
    /// token). Slack answers `200 OK - <length>`.
    pub async fn upload_to_url(
        &self,
        upload_url: &str,
        bytes: Bytes,
        timeout: Duration,
    ) -> Result<(), SlackApiError> {
        let response = self
            .http()
            .post(upload_url)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| SlackApiError::Unavailable(describe_http(&e)))?;
        let status = response.status();
        match status.as_u16() {
            200..=299 => Ok(()),
            429 => Err(SlackApiError::RateLimited {
                retry_after: response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok()),
            }),
            500..=599 => Err(SlackApiError::Unavailable(format!("HTTP {status}"))),
            _ => Err(SlackApiError::Api(format!("upload answered HTTP {status}"))),
        }
    }

    /// `files.completeUploadExternal`: shares the uploaded files in
    /// `channel_id` (in `thread_ts` when set) with `initial_comment`.
    pub async fn complete_upload_external(
        &self,
        token: &BotToken<'_>,
        complete: &CompleteUpload,
    ) -> Result<Value, SlackApiError> {
        let request = self
            .http()
            .post(self.url("files.completeUploadExternal"))
            .json(complete);
        self.send_as(token, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slack_hosts_get_the_token() {
        assert!(is_slack_file_host(
            "https://files.slack.com/files-pri/T1-F1/download/a.png"
        ));
        assert!(is_slack_file_host("https://acme.enterprise.slack.com/x"));
        assert!(!is_slack_file_host("http://files.slack.com/x"));
        assert!(!is_slack_file_host("https://files.slack.com.evil.io/x"));
        assert!(!is_slack_file_host("https://drive.google.com/file/d/1"));
    }
}
