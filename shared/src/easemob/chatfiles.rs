//! Easemob chat files (docs/design.md §3 "Files"): what a visitor's image or file
//! message points at. Upload: `POST {base}/{org}/{app}/chatfiles`,
//! multipart with the file in part `file`, header `restrict-access: true`
//! (the answer then carries a `share-secret`); download: `GET` the file's
//! url with the token and `share-secret`. Limit 10 MB.
//! <https://doc.easemob.com/document/server-side/message_upload_file.html>,
//! <https://doc.easemob.com/document/server-side/message_download.html>

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::client::{EasemobClient, EasemobError};
use crate::http_types::{describe_http, read_body_bounded, same_origin, BoundedReadError};
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
    TooLarge { at_least: u64 },
    Easemob(EasemobError),
}

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

    /// Downloads a chat file into `into` (at most `limit` bytes), sending
    /// the `share-secret` header when there is one. The app token goes only
    /// to this app's own cluster: a callback may name any URL.
    pub async fn download_chatfile(
        &self,
        token: &Secret,
        url: &str,
        secret: Option<&Secret>,
        limit: u64,
        timeout: Duration,
        into: &mut Vec<u8>,
    ) -> Result<u64, DownloadError> {
        let mut request = self.http().get(url).timeout(timeout);
        if same_origin(url, self.app_url()) {
            request = request.bearer_auth(token.expose());
        }
        if let Some(secret) = secret {
            request = request.header("share-secret", secret.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| DownloadError::Easemob(EasemobError::Unavailable(describe_http(&e))))?;
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
