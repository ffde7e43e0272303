//! The bridge's state, built once per cold start and borrowed by every
//! invocation: configuration, the HTTP client, the store and the in-memory
//! caches that keep the warm path free of lookups.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::now_epoch_secs;
use crate::config::{Config, ConfigError};
use crate::dynamo::{self, DynamoClient, DynamoError};
use crate::easemob::{EasemobClient, TokenProvider};
use crate::slack::signature::SlackVerifier;
use crate::slack::web::{OAuthV2Access, SlackApiError, SlackClient};
use crate::store::{Installation, Store, WorkspaceKey};

/// Bounds on every outbound call (docs/design.md §2): every answer leaves within
/// Slack's 3 s even when a dependency hangs.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(2_000);

/// How long an installation read from the table is trusted in memory. Short,
/// because another function may uninstall or rotate it.
const INSTALLATION_TTL: Duration = Duration::from_secs(60);

/// With token rotation, a bot token this close to expiry is refreshed before
/// it is handed out, so no call made with it dies of `token_expired`.
pub const TOKEN_REFRESH_MARGIN_SECS: i64 = 300;

/// How long a refused refresh waits for a racing instance's write.
const ROTATION_RACE_WAIT: Duration = Duration::from_millis(300);

pub struct Bridge {
    pub config: Config,
    pub store: Store,
    pub slack: SlackClient,
    pub easemob: EasemobClient,
    pub easemob_token: TokenProvider,
    pub verifier: SlackVerifier,
    pub(crate) installations: TtlCache<WorkspaceKey, Installation>,
    pub(crate) memo: Memo,
    /// Single-flight for token rotation inside this instance. One lock for
    /// all workspaces is enough: a Lambda instance serves one invocation at
    /// a time, and rotation happens about twice a day per workspace.
    rotation: tokio::sync::Mutex<()>,
}

/// Small in-memory facts the warm path relies on.
#[derive(Default)]
pub(crate) struct Memo {
    /// Slack profile documents by `(workspace, user)` and team documents by team.
    pub users: TtlCache<(String, String), serde_json::Value>,
    pub teams: TtlCache<String, serde_json::Value>,
    /// Visitor ids known to be registered in Easemob.
    pub registered_visitors: TtlCache<String, ()>,
    /// Per direction, the last conversation a drain that ran out of time
    /// finished: the next drain starts after it (relay/outbox.rs).
    pub drain_resume: TtlCache<crate::store::Direction, String>,
}

impl Bridge {
    /// Reads the environment once (cold start).
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let db = dynamo::client_from_env().await?;
        Ok(Self::new(config, db, http_client()))
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
            rotation: tokio::sync::Mutex::new(()),
        }
    }

    /// The installation for `key`, from memory when recently read. With
    /// token rotation on, a bot token that has expired or expires within
    /// [`TOKEN_REFRESH_MARGIN_SECS`] is refreshed first (once, however many
    /// callers race for it).
    pub async fn installation(
        &self,
        key: &WorkspaceKey,
    ) -> Result<Option<Installation>, DynamoError> {
        let installation = match self.installations.get(key, INSTALLATION_TTL) {
            Some(installation) => installation,
            None => match self.store.get_installation(key).await? {
                Some(installation) => {
                    self.installations.put(key.clone(), installation.clone());
                    installation
                }
                None => return Ok(None),
            },
        };
        if !needs_refresh(&installation, now_epoch_secs()) {
            return Ok(Some(installation));
        }
        self.refreshed_installation(key).await
    }

    /// Token rotation (docs/design.md §2, `refresh_token` + `expires_in`). Inside the
    /// instance, callers queue on `rotation` and the first one refreshes;
    /// the rest find its result in memory. Across instances, the new pair is
    /// written only if the stored refresh token is still the one used, and
    /// the loser of that race re-reads the winner's pair.
    async fn refreshed_installation(
        &self,
        key: &WorkspaceKey,
    ) -> Result<Option<Installation>, DynamoError> {
        let _single_flight = self.rotation.lock().await;
        if let Some(fresh) = self
            .installations
            .get(key, INSTALLATION_TTL)
            .filter(|i| !needs_refresh(i, now_epoch_secs()))
        {
            return Ok(Some(fresh));
        }
        // Another instance may have rotated it already.
        let Some(current) = self.store.get_installation(key).await? else {
            self.installations.remove(key);
            return Ok(None);
        };
        self.installations.put(key.clone(), current.clone());
        let Some(used) = current
            .refresh_token
            .clone()
            .filter(|_| needs_refresh(&current, now_epoch_secs()))
        else {
            return Ok(Some(current));
        };
        let answer = self
            .slack
            .oauth_v2_access::<OAuthV2Access>(
                &self.config.slack_client_id,
                &self.config.slack_client_secret,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", used.expose()),
                ],
            )
            .await;
        let rotated = match answer {
            Ok(OAuthV2Access {
                access_token: Some(token),
                refresh_token,
                expires_in,
                ..
            }) => Installation {
                bot_token: token,
                // Slack may hand back the same refresh token; keep ours then.
                refresh_token: refresh_token.or(Some(used.clone())),
                token_expires_at: expires_in.map(|secs| now_epoch_secs() + secs),
                ..current.clone()
            },
            Ok(_) => {
                tracing::warn!(workspace = key.id(), "token_refresh_without_token");
                return Ok(Some(current));
            }
            Err(error) => return self.refresh_failed(key, current, &used, error).await,
        };
        if self.store.replace_rotated_token(&rotated, &used).await? {
            tracing::info!(workspace = key.id(), "bot_token_rotated");
            self.installations.put(key.clone(), rotated.clone());
            return Ok(Some(rotated));
        }
        // Lost the race to another instance: its pair is the stored one.
        let winner = self.store.get_installation(key).await?;
        match &winner {
            Some(winner) => self.installations.put(key.clone(), winner.clone()),
            None => self.installations.remove(key),
        }
        Ok(winner)
    }

    /// Slack refused or could not be reached. A refused refresh token is
    /// often just one another instance already used: then its pair is in
    /// the table. If not, the installation is flagged for reinstall (and not
    /// retried on every event); a transient failure leaves it as it is.
    async fn refresh_failed(
        &self,
        key: &WorkspaceKey,
        current: Installation,
        used: &crate::secret::Secret,
        error: SlackApiError,
    ) -> Result<Option<Installation>, DynamoError> {
        tracing::warn!(workspace = key.id(), %error, "token_refresh_failed");
        if !matches!(error, SlackApiError::Api(_)) || error.is_transient() {
            return Ok(Some(current));
        }
        // The instance that won with our refresh token writes its pair a
        // moment after Slack answered it: look twice before giving up.
        for wait in [Duration::ZERO, ROTATION_RACE_WAIT] {
            tokio::time::sleep(wait).await;
            let stored = self.store.get_installation(key).await?;
            if let Some(stored) = &stored {
                if stored.refresh_token.as_ref() != Some(used) {
                    self.installations.put(key.clone(), stored.clone());
                    return Ok(Some(stored.clone()));
                }
            }
        }
        if !self.store.mark_refresh_refused(key, used).await? {
            // Rotated between our read and the flag: use that pair.
            let stored = self.store.get_installation(key).await?;
            if let Some(stored) = &stored {
                self.installations.put(key.clone(), stored.clone());
            }
            return Ok(stored);
        }
        let flagged = Installation {
            needs_reinstall: true,
            ..current
        };
        self.installations.put(key.clone(), flagged.clone());
        Ok(Some(flagged))
    }

    /// Drops what this instance remembers about a workspace (uninstall).
    pub fn forget_workspace(&self, key: &WorkspaceKey) {
        self.installations.remove(key);
    }
}

/// True when the installation rotates tokens and its bot token is expired or
/// about to be. A flagged installation is left alone until it is reinstalled.
fn needs_refresh(installation: &Installation, now: i64) -> bool {
    installation.refresh_token.is_some()
        && !installation.needs_reinstall
        && installation
            .token_expires_at
            .is_some_and(|at| at - now <= TOKEN_REFRESH_MARGIN_SECS)
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
