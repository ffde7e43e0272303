//! Plain HTTP request/response values the handlers work on. The `lambda`
//! module converts API Gateway events to and from these, so handlers and
//! tests never see Lambda types.

use http::HeaderMap;

#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Header names are case-insensitive by construction (`http::HeaderMap`).
    pub headers: HeaderMap,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Cookies as `name=value` pairs (API Gateway v2 hands them separately).
    pub cookies: Vec<String>,
    /// The raw body bytes exactly as received (base64 already decoded).
    pub body: Vec<u8>,
    /// `https://{domain}/{stage}` when API Gateway says so; used to derive
    /// the OAuth redirect URI.
    pub public_base_url: Option<String>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        let from_header = self
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'));
        self.cookies
            .iter()
            .map(String::as_str)
            .chain(from_header)
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// True when the `Content-Type` media type equals `expected`, compared
    /// case-insensitively and ignoring parameters (docs/design.md §1).
    pub fn has_media_type(&self, expected: &str) -> bool {
        self.header("content-type")
            .and_then(|v| v.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<String>,
    pub body: String,
}

impl HttpResponse {
    pub fn new(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            cookies: Vec::new(),
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::new(status, "application/json", body.to_string())
    }

    pub fn html(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/html; charset=utf-8", body)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn with_cookie(mut self, cookie: String) -> Self {
        self.cookies.push(cookie);
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// reqwest errors as a short reason without the URL (no query-string
/// secrets ever reach a log line).
pub fn describe_http(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else if error.is_body() || error.is_decode() {
        "response body error".into()
    } else if let Some(status) = error.status() {
        format!("HTTP {status}")
    } else {
        "request failed".into()
    }
}

/// Why a bounded body read stopped.
#[derive(Debug)]
pub enum BoundedReadError {
    /// More than the limit: said so by `Content-Length`, or found while reading.
    TooLarge {
        at_least: u64,
    },
    Http(reqwest::Error),
}

/// Appends `response`'s body to `into` chunk by chunk as it arrives, so the
/// caller chooses the one buffer a file lives in (e.g. the middle of the
/// multipart body it is about to upload). Refuses more than `limit` bytes:
/// up front when `Content-Length` says so, else as soon as the count passes
/// it. Returns the number of bytes appended.
pub async fn read_body_bounded(
    mut response: reqwest::Response,
    limit: u64,
    into: &mut Vec<u8>,
) -> Result<u64, BoundedReadError> {
    if let Some(length) = response.content_length().filter(|l| *l > limit) {
        return Err(BoundedReadError::TooLarge { at_least: length });
    }
    if let Some(length) = response.content_length() {
        into.reserve(length as usize);
    }
    let mut read: u64 = 0;
    while let Some(chunk) = response.chunk().await.map_err(BoundedReadError::Http)? {
        read += chunk.len() as u64;
        if read > limit {
            return Err(BoundedReadError::TooLarge { at_least: read });
        }
        into.extend_from_slice(&chunk);
    }
    Ok(read)
}

/// At most the first `limit` bytes of `response`'s body (fewer when it is
/// shorter). The rest is never read: dropping the response closes the
/// connection. For answers only read for a reason, such as an error's JSON,
/// which a misbehaving server could make as large as it likes.
pub async fn read_body_prefix(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut prefix = Vec::new();
    while prefix.len() < limit {
        let Some(chunk) = response.chunk().await? else {
            break;
        };
        let take = chunk.len().min(limit - prefix.len());
        prefix.extend_from_slice(&chunk[..take]);
    }
    Ok(prefix)
}

/// True when `url` has the scheme, host and port of `base`: credentials for
/// a service only ever go to that service's own origin, whatever URL a
/// payload names.
pub fn same_origin(url: &str, base: &str) -> bool {
    match (url::Url::parse(url), url::Url::parse(base)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str().map(str::to_ascii_lowercase)
                    == b.host_str().map(str::to_ascii_lowercase)
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_is_compared_case_insensitively_without_parameters() {
        let mut request = HttpRequest::default();
        request.headers.insert(
            "Content-Type",
            "Application/JSON; charset=UTF-8".parse().unwrap(),
        );
        assert!(request.has_media_type("application/json"));
        assert!(!request.has_media_type("application/x-www-form-urlencoded"));
    }

    #[test]
    fn cookies_are_read_from_both_places() {
        let mut request = HttpRequest {
            cookies: vec!["a=1".into()],
            ..Default::default()
        };
        request
            .headers
            .insert("cookie", "b=2; slack_oauth_state=xyz".parse().unwrap());
        assert_eq!(request.cookie("a"), Some("1"));
        assert_eq!(request.cookie("slack_oauth_state"), Some("xyz"));
        assert_eq!(request.cookie("c"), None);
    }

    #[test]
    fn same_origin_compares_scheme_host_and_port() {
        let base = "https://a1.easemob.com";
        assert!(same_origin(
            "https://A1.easemob.com/org/app/chatfiles/1",
            base
        ));
        assert!(same_origin("https://a1.easemob.com:443/x", base));
        assert!(!same_origin("http://a1.easemob.com/x", base));
        assert!(!same_origin("https://a1.easemob.com.evil.io/x", base));
        assert!(!same_origin(
            "https://evil.io/?https://a1.easemob.com",
            base
        ));
        assert!(!same_origin("not a url", base));
    }
}
