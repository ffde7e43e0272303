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
    /// case-insensitively and ignoring parameters (SPEC §1).
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
}
