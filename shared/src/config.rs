//! Configuration, read once at cold start (docs/design.md §1).

use crate::secret::Secret;

pub const DEFAULT_SLACK_API_BASE_URL: &str = "https://slack.com/api";
pub const DEFAULT_EASEMOB_API_BASE_URL: &str = "https://a1.easemob.com";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Every missing variable is named, so one deploy fixes them all.
    #[error("missing environment variable(s): {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Everything the bridge needs from its environment. Every function reads the
/// same set so one SAM `Globals` block configures all three.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub slack_signing_secret: Secret,
    pub slack_client_id: String,
    pub slack_client_secret: Secret,
    pub slack_api_base_url: String,
    /// Optional: the OAuth redirect URI. Without it the callback URL is derived
    /// from the request (API Gateway domain and stage).
    pub slack_redirect_uri: Option<String>,
    pub easemob_api_base_url: String,
    pub easemob_org: String,
    pub easemob_app: String,
    /// `{org}#{app}`: the App Key every genuine callback's `callId` starts with.
    pub easemob_app_key: String,
    pub easemob_client_id: String,
    pub easemob_client_secret: Secret,
    pub easemob_im_service_number: String,
    pub easemob_callback_secret: Secret,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup` so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut missing = Vec::new();
        let mut required = |name: &'static str| -> String {
            match lookup(name).filter(|v| !v.trim().is_empty()) {
                Some(value) => value,
                None => {
                    missing.push(name);
                    String::new()
                }
            }
        };
        let table_name = required("TABLE_NAME");
        let slack_signing_secret = Secret::new(required("SLACK_SIGNING_SECRET"));
        let slack_client_id = required("SLACK_CLIENT_ID");
        let slack_client_secret = Secret::new(required("SLACK_CLIENT_SECRET"));
        let easemob_org = required("EASEMOB_ORG");
        let easemob_app = required("EASEMOB_APP");
        let easemob_client_id = required("EASEMOB_CLIENT_ID");
        let easemob_client_secret = Secret::new(required("EASEMOB_CLIENT_SECRET"));
        let easemob_im_service_number = required("EASEMOB_IM_SERVICE_NUMBER");
        let easemob_callback_secret = Secret::new(required("EASEMOB_CALLBACK_SECRET"));
        if !missing.is_empty() {
            return Err(ConfigError::Missing(missing));
        }
        let optional = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let base_url = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let value = optional(name).unwrap_or_else(|| default.to_string());
            let parsed = url::Url::parse(&value).map_err(|e| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be an http(s) URL".into(),
                });
            }
            Ok(value.trim_end_matches('/').to_string())
        };
        Ok(Self {
            table_name,
            slack_signing_secret,
            slack_client_id,
            slack_client_secret,
            slack_api_base_url: base_url("SLACK_API_BASE_URL", DEFAULT_SLACK_API_BASE_URL)?,
            slack_redirect_uri: optional("SLACK_REDIRECT_URI"),
            easemob_api_base_url: base_url("EASEMOB_API_BASE_URL", DEFAULT_EASEMOB_API_BASE_URL)?,
            easemob_app_key: format!("{easemob_org}#{easemob_app}"),
            easemob_org,
            easemob_app,
            easemob_client_id,
            easemob_client_secret,
            easemob_im_service_number,
            easemob_callback_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("TABLE_NAME", "bridge"),
            ("SLACK_SIGNING_SECRET", "s"),
            ("SLACK_CLIENT_ID", "1.2"),
            ("SLACK_CLIENT_SECRET", "c"),
            ("EASEMOB_ORG", "org"),
            ("EASEMOB_APP", "app"),
            ("EASEMOB_CLIENT_ID", "YXA6"),
            ("EASEMOB_CLIENT_SECRET", "YXA6s"),
            ("EASEMOB_IM_SERVICE_NUMBER", "kefuchannelimid_1"),
            ("EASEMOB_CALLBACK_SECRET", "cb"),
        ])
    }

    #[test]
    fn defaults_apply_when_optional_values_are_absent() {
        let env = full();
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.slack_api_base_url, DEFAULT_SLACK_API_BASE_URL);
        assert_eq!(config.easemob_api_base_url, DEFAULT_EASEMOB_API_BASE_URL);
        assert_eq!(config.slack_redirect_uri, None);
    }

    #[test]
    fn every_missing_variable_is_named() {
        let mut env = full();
        env.remove("TABLE_NAME");
        env.remove("EASEMOB_CALLBACK_SECRET");
        let err = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing(vec!["TABLE_NAME", "EASEMOB_CALLBACK_SECRET"])
        );
        assert!(err.to_string().contains("TABLE_NAME"));
    }

    #[test]
    fn a_base_url_that_is_not_a_url_is_refused() {
        let mut env = full();
        env.insert("SLACK_API_BASE_URL", "not a url");
        let err = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "SLACK_API_BASE_URL",
                ..
            }
        ));
    }

    #[test]
    fn trailing_slash_is_trimmed() {
        let mut env = full();
        env.insert("EASEMOB_API_BASE_URL", "http://127.0.0.1:9000/");
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.easemob_api_base_url, "http://127.0.0.1:9000");
    }
}
