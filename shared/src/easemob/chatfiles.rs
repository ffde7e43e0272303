//! Easemob chat files (docs/design.md §3 "Files"): what a visitor's image or file
//! message points at. Upload: `POST {base}/{org}/{app}/chatfiles`,
//! multipart with the file in part `file`, header `restrict-access: true`
//! (the answer then carries a `share-secret`); download: `GET` the file's
//! url with the token and `share-secret`. Limit 10 MB.
//!
//! A callback's file `url` is only a claim: it is fetched only when it is
//! exactly one of this app's chat files on the configured origin
//! ([`ChatFileUrl`]), and never through a redirect, so neither the token
//! nor a share-secret goes anywhere else (docs/design.md §3 "Files").
//! <https://doc.easemob.com/document/server-side/message_upload_file.html>,
//! <https://doc.easemob.com/document/server-side/message_download.html>

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::client::{EasemobClient, EasemobError};
use crate::http_types::{describe_http, read_body_bounded, BoundedReadError};
use crate::secret::Secret;

/// Easemob refuses uploads over 10 MB.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// A `multipart/form-data` body with one part, `file`, built around a
/// single buffer: the head is written first, the caller appends the file's
/// bytes straight into [`MultipartFile::file_bytes`] (a download streams
/// into it chunk by chunk), and [`MultipartFile::finish`] closes it. So a
/// file is held once, in the very bytes that are uploaded, and those bytes
/// can be sent again after a token refresh without another download.
///
/// Built by hand rather than with reqwest's `multipart` feature: one part
/// with a known name is twenty lines, and this way the download needs no
/// second buffer and no `stream` feature (nor `mime_guess`'s tables in the
/// Lambda binary).
#[derive(Debug)]
pub struct MultipartFile {
    boundary: String,
    body: Vec<u8>,
    head_len: usize,
}

impl MultipartFile {
    pub fn new(filename: &str, content_type: &str) -> Self {
        let boundary = format!(
            "kefu-bridge-{}",
            hex::encode(crate::clock::spread_bytes::<12>())
        );
        let content_type = match content_type.trim() {
            ct if ct.is_empty() || ct.contains(['\r', '\n']) => "application/octet-stream",
            ct => ct,
        };
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n\r\n",
            disposition_filename(filename)
        );
        Self {
            boundary,
            head_len: head.len(),
            body: head.into_bytes(),
        }
    }

    /// The buffer to append the file's bytes to.
    pub fn file_bytes(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }

    /// Bytes of file appended so far.
    pub fn file_len(&self) -> usize {
        self.body.len() - self.head_len
    }

    /// The `Content-Type` header value and the finished body.
    pub fn finish(mut self) -> (String, Bytes) {
        self.body
            .extend_from_slice(format!("\r\n--{}--\r\n", self.boundary).as_bytes());
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            Bytes::from(self.body),
        )
    }
}

/// A file name as browsers put it in `Content-Disposition` (WHATWG form
/// encoding): UTF-8 as is, with `"`, CR and LF percent-encoded so the name
/// cannot end the header early.
fn disposition_filename(name: &str) -> String {
    let name = if name.trim().is_empty() { "file" } else { name };
    name.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// An uploaded file, as the visitor's message refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    pub uuid: String,
    /// `{base}/{org}/{app}/chatfiles/{uuid}`
    pub url: String,
    pub share_secret: Option<Secret>,
}

/// Why a download from Easemob stopped.
#[derive(Debug)]
pub enum DownloadError {
    TooLarge {
        at_least: u64,
    },
    /// Easemob answered a redirect (3xx), which is not followed.
    Redirected {
        status: u16,
    },
    Easemob(EasemobError),
}

/// One of this app's chat files: `{base}/{org}/{app}/chatfiles/{uuid}` on
/// the configured origin. Only [`EasemobClient::chatfile_url`] makes one,
/// so a download cannot be pointed anywhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatFileUrl(String);

impl ChatFileUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a file URL from a callback is not fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForeignFileUrl {
    #[error("is not a URL")]
    NotAUrl,
    #[error("carries a user name or password")]
    Credentials,
    #[error("is not on the configured Easemob origin")]
    OtherOrigin,
    #[error("is not one of this app's chat files")]
    NotAChatFile,
}

/// Longest chat-file id taken (Easemob's are 36-character UUIDs).
const MAX_UUID_LEN: usize = 128;

impl EasemobClient {
    /// Uploads a finished multipart body. `timeout` replaces the client's
    /// short default: a 10 MB upload to a far cluster takes longer than a
    /// message does.
    pub async fn upload_chatfile(
        &self,
        token: &Secret,
        content_type: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<UploadedFile, EasemobError> {
        let response = self
            .http()
            .post(format!("{}/chatfiles", self.app_url()))
            .bearer_auth(token.expose())
            .header("restrict-access", "true")
            .header("content-type", content_type)
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| EasemobError::Unavailable(describe_http(&e)))?;
        let value = Self::check(response).await?;
        let entity = value
            .get("entities")
            .and_then(Value::as_array)
            .and_then(|entities| entities.first())
            .ok_or_else(|| EasemobError::Unavailable("upload answer without entities".into()))?;
        let uuid = entity
            .get("uuid")
            .and_then(Value::as_str)
            .filter(|uuid| !uuid.is_empty())
            .ok_or_else(|| EasemobError::Unavailable("upload answer without uuid".into()))?;
        Ok(UploadedFile {
            url: format!("{}/chatfiles/{uuid}", self.app_url()),
            uuid: uuid.to_string(),
            share_secret: entity
                .get("share-secret")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(Secret::new),
        })
    }

    /// The chat file `url` names, when it is exactly one of this app's:
    /// the configured scheme, host and port, no user name or password, the
    /// path `/{org}/{app}/chatfiles/{uuid}` once dot segments are resolved
    /// (the uuid plain letters, digits, `-` and `_`: nothing encoded), no
    /// query and no fragment. The URL then fetched is built from the
    /// configuration and the uuid, not copied from the callback.
    pub fn chatfile_url(&self, url: &str) -> Result<ChatFileUrl, ForeignFileUrl> {
        let url = url::Url::parse(url.trim()).map_err(|_| ForeignFileUrl::NotAUrl)?;
        let own = url::Url::parse(self.app_url()).map_err(|_| ForeignFileUrl::OtherOrigin)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ForeignFileUrl::Credentials);
        }
        if url.scheme() != own.scheme()
            || url.host() != own.host()
            || url.port_or_known_default() != own.port_or_known_default()
        {
            return Err(ForeignFileUrl::OtherOrigin);
        }
        // Easemob's org and app names are case-insensitive.
        let prefix = format!("{}/chatfiles/", own.path().trim_end_matches('/'));
        let uuid = url
            .path()
            .get(..prefix.len())
            .filter(|head| head.eq_ignore_ascii_case(&prefix))
            .map(|_| &url.path()[prefix.len()..])
            .filter(|uuid| {
                !uuid.is_empty()
                    && uuid.len() <= MAX_UUID_LEN
                    && uuid
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .filter(|_| url.query().is_none() && url.fragment().is_none())
            .ok_or(ForeignFileUrl::NotAChatFile)?;
        Ok(ChatFileUrl(format!("{}/chatfiles/{uuid}", self.app_url())))
    }

    /// Downloads a chat file into `into` (at most `limit` bytes) with the
    /// app token, and the `share-secret` header when there is one. A
    /// redirect is an answer, not followed.
    pub async fn download_chatfile(
        &self,
        token: &Secret,
        url: &ChatFileUrl,
        secret: Option<&Secret>,
        limit: u64,
        timeout: Duration,
        into: &mut Vec<u8>,
    ) -> Result<u64, DownloadError> {
        let mut request = self
            .downloads()
            .get(url.as_str())
            .timeout(timeout)
            .bearer_auth(token.expose());
        if let Some(secret) = secret {
            request = request.header("share-secret", secret.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| DownloadError::Easemob(EasemobError::Unavailable(describe_http(&e))))?;
        if response.status().is_redirection() {
            return Err(DownloadError::Redirected {
                status: response.status().as_u16(),
            });
        }
        if !response.status().is_success() {
            return Err(DownloadError::Easemob(
                Self::check(response)
                    .await
                    .err()
                    .unwrap_or(EasemobError::Unavailable("unexpected status".into())),
            ));
        }
        read_body_bounded(response, limit, into)
            .await
            .map_err(|error| match error {
                BoundedReadError::TooLarge { at_least } => DownloadError::TooLarge { at_least },
                BoundedReadError::Http(e) => {
                    DownloadError::Easemob(EasemobError::Unavailable(describe_http(&e)))
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multipart_body_has_one_file_part() {
        let mut form = MultipartFile::new("a \"b\".png", "image/png");
        form.file_bytes().extend_from_slice(b"\x89PNG\r\n--x");
        assert_eq!(form.file_len(), 9);
        let (content_type, body) = form.finish();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains(
            "Content-Disposition: form-data; name=\"file\"; filename=\"a %22b%22.png\"\r\nContent-Type: image/png\r\n\r\n\u{fffd}PNG\r\n--x\r\n"
        ));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
    }

    fn client(base: &str) -> EasemobClient {
        EasemobClient::new(
            reqwest::Client::new(),
            base,
            "Org",
            "app",
            "id",
            Secret::new("s"),
        )
    }

    #[test]
    fn only_this_apps_chat_files_are_fetched() {
        let easemob = client("https://a1.easemob.com");
        let own = |url: &str| easemob.chatfile_url(url).map(|u| u.as_str().to_string());
        let expected = Ok("https://a1.easemob.com/Org/app/chatfiles/0c0f-5f3a_1".to_string());
        assert_eq!(
            own("https://a1.easemob.com/Org/app/chatfiles/0c0f-5f3a_1"),
            expected
        );
        assert_eq!(
            own(" https://A1.easemob.com:443/org/APP/chatfiles/0c0f-5f3a_1"),
            expected
        );
        assert_eq!(
            own("https://a1.easemob.com/Org/app/chatfiles/x/../0c0f-5f3a_1"),
            expected
        );
        for (url, why) in [
            ("not a url", ForeignFileUrl::NotAUrl),
            ("/Org/app/chatfiles/1", ForeignFileUrl::NotAUrl),
            (
                "http://a1.easemob.com/Org/app/chatfiles/1",
                ForeignFileUrl::OtherOrigin,
            ),
            (
                "https://a1.easemob.com:8443/Org/app/chatfiles/1",
                ForeignFileUrl::OtherOrigin,
            ),
            (
                "https://a1.easemob.com.evil.io/Org/app/chatfiles/1",
                ForeignFileUrl::OtherOrigin,
            ),
            (
                "https://a31.easemob.com/Org/app/chatfiles/1",
                ForeignFileUrl::OtherOrigin,
            ),
            (
                "https://u@a1.easemob.com/Org/app/chatfiles/1",
                ForeignFileUrl::Credentials,
            ),
            (
                "https://a1.easemob.com/Org/app/users/1",
                ForeignFileUrl::NotAChatFile,
            ),
            (
                "https://a1.easemob.com/Org/app/chatfiles/",
                ForeignFileUrl::NotAChatFile,
            ),
            (
                "https://a1.easemob.com/Org/app/chatfiles/../token",
                ForeignFileUrl::NotAChatFile,
            ),
            (
                "https://a1.easemob.com/Org/app/chatfiles/%2e%2e/token",
                ForeignFileUrl::NotAChatFile,
            ),
            (
                "https://a1.easemob.com/Org/app/chatfiles/1%2F..%2Fusers",
                ForeignFileUrl::NotAChatFile,
            ),
            (
                "https://a1.easemob.com/Org/app/chatfiles/1/2",
                ForeignFileUrl::NotAChatFile,
            ),
            (
                "https://a1.easemob.com/Org/app/chatfiles/1?x=y",
                ForeignFileUrl::NotAChatFile,
            ),
            (
                "https://a1.easemob.com/Org/app/chatfiles/1#f",
                ForeignFileUrl::NotAChatFile,
            ),
            (
                "https://a1.easemob.com/Other/app/chatfiles/1",
                ForeignFileUrl::NotAChatFile,
            ),
            (
                "https://a1.easemob.com/Org/appx/chatfiles/1",
                ForeignFileUrl::NotAChatFile,
            ),
        ] {
            assert_eq!(easemob.chatfile_url(url), Err(why), "{url}");
        }
    }

    #[test]
    fn odd_names_and_types_cannot_break_the_headers() {
        let (_, body) = MultipartFile::new("x\r\nInjected: 1", "text/plain\r\nX: y").finish();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("filename=\"x%0D%0AInjected: 1\""));
        assert!(text.contains("Content-Type: application/octet-stream\r\n"));
        let (_, unnamed) = MultipartFile::new(" ", "").finish();
        assert!(String::from_utf8_lossy(&unnamed).contains("filename=\"file\""));
    }
}
