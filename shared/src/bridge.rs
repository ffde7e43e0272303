//! The bridge's state, built once per cold start and borrowed by every
//! invocation: configuration, the HTTP client, the store and the in-memory
//! caches that keep the warm path free of lookups.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError};
use crate::dynamo::{DynamoClient, DynamoError};
use crate::easemob::{EasemobClient, TokenProvider};
use crate::slack::signature::SlackVerifier;
use crate::slack::web::SlackClient;
use crate::store::{Installation, Store, WorkspaceKey};

/// Bounds on every outbound call (SPEC §2): every answer leaves within
/// Slack's 3 s even when a dependency hangs.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(2_000);

/// How long an installation read from the table is trusted in memory. Short,
/// because another function may uninstall or rotate it.
const INSTALLATION_TTL: Duration = Duration::from_secs(60);

pub struct Bridge {
    pub config: Config,
    pub store: Store,
    pub slack: SlackClient,
    pub easemob: EasemobClient,
    pub easemob_token: TokenProvider,
    pub verifier: SlackVerifier,
    pub(crate) installations: TtlCache<WorkspaceKey, Installation>,
    pub(crate) memo: Memo,
}

/// Small in-memory facts the warm path relies on.
#[derive(Default)]
pub(crate) struct Memo {
    /// Slack profile documents by `(workspace, user)` and team documents by team.
    pub users: TtlCache<(String, String), serde_json::Value>,
    pub teams: TtlCache<String, serde_json::Value>,
    /// Visitor ids known to be registered in Easemob.
    pub registered_visitors: TtlCache<String, ()>,
    /// Last known thread of each channel conversation, to skip rewriting it.
    pub conversation_threads: TtlCache<String, Option<String>>,
}

impl Bridge {
    /// Reads the environment once (cold start).
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let http = http_client();
        let db = DynamoClient::from_env(http.clone())?;
        Ok(Self::new(config, db, http))
    }

    pub fn new(config: Config, db: DynamoClient, http: reqwest::Client) -> Self {
        let store = Store::new(db, &config.table_name);
        let slack = SlackClient::new(http.clone(), &config.slack_api_base_url);
        let easemob = EasemobClient::new(
            http,
            &config.easemob_api_base_url,
            &config.easemob_org,
            &config.easemob_app,
            &config.easemob_client_id,
            config.easemob_client_secret.clone(),
        );
        let easemob_token = TokenProvider::new(&config.easemob_org, &config.easemob_app);
        let verifier = SlackVerifier::new(config.slack_signing_secret.clone());
        Self {
            config,
            store,
            slack,
            easemob,
            easemob_token,
            verifier,
            installations: TtlCache::default(),
            memo: Memo::default(),
        }
    }

    /// The installation for `key`, from memory when recently read.
    pub async fn installation(
        &self,
        key: &WorkspaceKey,
    ) -> Result<Option<Installation>, DynamoError> {
        if let Some(installation) = self.installations.get(key, INSTALLATION_TTL) {
            return Ok(Some(installation));
        }
        let installation = self.store.get_installation(key).await?;
        if let Some(installation) = &installation {
            self.installations.put(key.clone(), installation.clone());
        }
        Ok(installation)
    }

    /// Drops what this instance remembers about a workspace (uninstall).
    pub fn forget_workspace(&self, key: &WorkspaceKey) {
        self.installations.remove(key);
    }
}

/// The one HTTP client: rustls, bounded connect and request time.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(50))
        .user_agent(concat!("slack-kefu-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("TLS backend initialises")
}

/// A map whose entries are trusted for a caller-given time.
pub(crate) struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K, V> Default for TtlCache<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// Bounds memory on long-lived warm instances.
    const MAX_ENTRIES: usize = 10_000;

    pub fn get(&self, key: &K, ttl: Duration) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(v, _)| v.clone())
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (value, Instant::now()));
    }

    pub fn remove(&self, key: &K) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}
