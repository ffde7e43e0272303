//! Configuration, read once at cold start (docs/design.md §1). Each function
//! gets only the secrets it uses: what a function does ([`Duties`]) decides
//! which variables it requires, so the deployment can leave the others out.

use crate::secret::Secret;
use crate::slack::ids::is_slack_id;

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

/// What a function does, and so which secrets it is given. Every function
/// needs the table, the Slack app's client id and secret (the install, and
/// bot-token rotation wherever a bot token is used) and the Slack API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duties {
    /// Verifies Slack requests: `SLACK_SIGNING_SECRET`.
    pub verifies_slack_requests: bool,
    /// Sends to Easemob or reads from it: `EASEMOB_ORG`, `EASEMOB_APP`,
    /// `EASEMOB_CLIENT_ID`, `EASEMOB_CLIENT_SECRET`, `EASEMOB_IM_SERVICE_NUMBER`.
    pub uses_easemob: bool,
    /// Verifies Easemob callbacks: `EASEMOB_CALLBACK_SECRET`.
    pub verifies_easemob_callbacks: bool,
    /// Installs the app (OAuth): `SLACK_CLIENT_ID`, `SLACK_CLIENT_SECRET`.
    /// Other functions take them when given, for bot-token rotation.
    pub installs_app: bool,
}

impl Duties {
    /// Everything: the local server, the demo and tests run every route.
    pub const ALL: Duties = Duties {
        verifies_slack_requests: true,
        uses_easemob: true,
        verifies_easemob_callbacks: true,
        installs_app: true,
    };
}

/// Everything the bridge needs from its environment. A secret a function's
/// [`Duties`] do not include is left empty; the verifiers refuse every
/// request when their secret is empty, so a misrouted request fails closed.
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
    /// Optional `ALLOWED_TEAM_IDS`: the only workspaces served.
    pub allowed_workspaces: AllowedWorkspaces,
    /// Optional `METRICS_NAMESPACE`: where the metrics go (docs/design.md §1
    /// "Metrics"); `KefuBridge` when unset.
    pub metrics_namespace: String,
    /// Optional `RETRY_QUEUE_URL`: the SQS queue that wakes this function's
    /// own outbox drain (docs/design.md §1 "Retry wake-ups (SQS)"); unset,
    /// the minute schedule alone drains.
    pub retry_queue_url: Option<String>,
}

impl Config {
    /// Every variable, for every duty.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_for(Duties::ALL)
    }

    /// The variables one function's `duties` need.
    pub fn from_env_for(duties: Duties) -> Result<Self, ConfigError> {
        Self::from_lookup_for(duties, |name| std::env::var(name).ok())
    }

    /// Reads through `lookup` so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_lookup_for(Duties::ALL, lookup)
    }

    pub fn from_lookup_for(
        duties: Duties,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut missing = Vec::new();
        let mut read = |name: &'static str, needed: bool| -> String {
            match lookup(name).filter(|v| !v.trim().is_empty()) {
                Some(value) if needed => value,
                Some(_) => String::new(),
                None => {
                    if needed {
                        missing.push(name);
                    }
                    String::new()
                }
            }
        };
        let table_name = read("TABLE_NAME", true);
        let slack_signing_secret =
            Secret::new(read("SLACK_SIGNING_SECRET", duties.verifies_slack_requests));
        // Outside the install, the app's credentials only serve bot-token
        // rotation: kept when given, not required (docs/design.md §1).
        let mut app_credential = |name: &'static str| {
            if duties.installs_app {
                read(name, true)
            } else {
                lookup(name)
                    .filter(|v| !v.trim().is_empty())
                    .unwrap_or_default()
            }
        };
        let slack_client_id = app_credential("SLACK_CLIENT_ID");
        let slack_client_secret = Secret::new(app_credential("SLACK_CLIENT_SECRET"));
        let easemob = duties.uses_easemob;
        let easemob_org = read("EASEMOB_ORG", easemob);
        let easemob_app = read("EASEMOB_APP", easemob);
        let easemob_client_id = read("EASEMOB_CLIENT_ID", easemob);
        let easemob_client_secret = Secret::new(read("EASEMOB_CLIENT_SECRET", easemob));
        let easemob_im_service_number = read("EASEMOB_IM_SERVICE_NUMBER", easemob);
        let easemob_callback_secret = Secret::new(read(
            "EASEMOB_CALLBACK_SECRET",
            duties.verifies_easemob_callbacks,
        ));
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
        let allowed_workspaces = AllowedWorkspaces::parse(
            &optional("ALLOWED_TEAM_IDS").unwrap_or_default(),
        )
        .map_err(|reason| ConfigError::Invalid {
            name: "ALLOWED_TEAM_IDS",
            reason,
        })?;
        let retry_queue_url = match optional("RETRY_QUEUE_URL") {
            Some(_) => Some(base_url("RETRY_QUEUE_URL", "")?),
            None => None,
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
            allowed_workspaces,
            metrics_namespace: optional("METRICS_NAMESPACE")
                .map(|namespace| namespace.trim().to_string())
                .unwrap_or_else(|| crate::metrics::DEFAULT_NAMESPACE.to_string()),
            retry_queue_url,
        })
    }
}

/// `ALLOWED_TEAM_IDS`: the Slack workspaces (`T…`) and Enterprise Grid
/// organisations (`E…`) this deployment serves, comma-separated. Empty
/// serves any workspace. Installs, events, interactivity and agent replies
/// of any other workspace are refused, so a bridge meant for one company
/// cannot be installed and used by another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedWorkspaces(Vec<String>);

impl AllowedWorkspaces {
    /// Ids exactly as Slack writes them (upper case): a lower-case or
    /// mistyped id is an error at cold start, not a silently empty list.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut ids = Vec::new();
        for id in raw.split(',').map(str::trim).filter(|id| !id.is_empty()) {
            if !(is_slack_id(id) && (id.starts_with('T') || id.starts_with('E'))) {
                return Err(format!(
                    "{id:?} is not a Slack team id (T…) or enterprise id (E…) in upper case"
                ));
            }
            ids.push(id.to_string());
        }
        Ok(Self(ids))
    }

    /// True when any workspace is served, or when one of `ids` (a
    /// workspace's team id, its enterprise id) is listed.
    pub fn allows<'a>(&self, ids: impl IntoIterator<Item = Option<&'a str>>) -> bool {
        self.0.is_empty()
            || ids
                .into_iter()
                .flatten()
                .any(|id| self.0.iter().any(|allowed| allowed == id))
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
        assert_eq!(config.metrics_namespace, "KefuBridge");
    }

    #[test]
    fn the_metrics_namespace_comes_from_the_environment() {
        let mut env = full();
        env.insert("METRICS_NAMESPACE", " Acme/Bridge ");
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.metrics_namespace, "Acme/Bridge");
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
    fn each_function_needs_only_its_own_secrets() {
        let oauth_only = Duties {
            verifies_slack_requests: false,
            uses_easemob: false,
            verifies_easemob_callbacks: false,
            installs_app: true,
        };
        let env: HashMap<&str, &str> = HashMap::from([
            ("TABLE_NAME", "bridge"),
            ("SLACK_CLIENT_ID", "1.2"),
            ("SLACK_CLIENT_SECRET", "c"),
        ]);
        let config =
            Config::from_lookup_for(oauth_only, |k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.slack_signing_secret.expose(), "");
        assert_eq!(config.easemob_callback_secret.expose(), "");
        // A secret given to a function that does not use it is not kept.
        let mut extra = env.clone();
        extra.insert("EASEMOB_CALLBACK_SECRET", "cb");
        let config =
            Config::from_lookup_for(oauth_only, |k| extra.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.easemob_callback_secret.expose(), "");
        let callback = Duties {
            verifies_easemob_callbacks: true,
            uses_easemob: true,
            installs_app: false,
            ..oauth_only
        };
        // Without the app's credentials, a relaying function still starts
        // (it only cannot rotate a bot token).
        let relay_env: HashMap<&str, &str> = HashMap::from([
            ("TABLE_NAME", "bridge"),
            ("EASEMOB_ORG", "o"),
            ("EASEMOB_APP", "a"),
            ("EASEMOB_CLIENT_ID", "i"),
            ("EASEMOB_CLIENT_SECRET", "s"),
            ("EASEMOB_IM_SERVICE_NUMBER", "n"),
            ("EASEMOB_CALLBACK_SECRET", "cb"),
        ]);
        let config =
            Config::from_lookup_for(callback, |k| relay_env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.slack_client_id, "");
        let err = Config::from_lookup_for(oauth_only, |k| relay_env.get(k).map(|v| v.to_string()))
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing(vec!["SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"])
        );
        let err =
            Config::from_lookup_for(callback, |k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing(vec![
                "EASEMOB_ORG",
                "EASEMOB_APP",
                "EASEMOB_CLIENT_ID",
                "EASEMOB_CLIENT_SECRET",
                "EASEMOB_IM_SERVICE_NUMBER",
                "EASEMOB_CALLBACK_SECRET"
            ])
        );
    }

    #[test]
    fn the_allow_list_takes_upper_case_team_and_enterprise_ids() {
        let mut env = full();
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert!(config.allowed_workspaces.allows([Some("T0ANY")]));
        env.insert("ALLOWED_TEAM_IDS", " T0ACME , E0GRID,, ");
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        let allowed = &config.allowed_workspaces;
        assert!(allowed.allows([Some("T0ACME")]));
        assert!(allowed.allows([Some("T0OTHER"), Some("E0GRID")]));
        assert!(!allowed.allows([Some("T0OTHER"), None]));
        assert!(!allowed.allows([Some("t0acme")]));
        assert!(!allowed.allows([None, None]));
        for bad in ["t0acme", "U0USER", "T0ACME,C0CHAN", "T", "T0-ACME"] {
            env.insert("ALLOWED_TEAM_IDS", bad);
            let err = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "ALLOWED_TEAM_IDS",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn trailing_slash_is_trimmed() {
        let mut env = full();
        env.insert("EASEMOB_API_BASE_URL", "http://127.0.0.1:9000/");
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.easemob_api_base_url, "http://127.0.0.1:9000");
    }
}
