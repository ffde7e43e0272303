//! The bridge's state, built once per cold start and borrowed by every
//! invocation: configuration, the HTTP client, the store and the in-memory
//! caches that keep the warm path free of lookups.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::now_epoch_secs;
use crate::config::{Config, ConfigError, Duties};
use crate::dynamo::{self, DynamoClient, DynamoError};
use crate::easemob::{EasemobClient, TokenProvider};
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::slack::bot_token::{BotToken, StoredLookup, StoredToken};
use crate::slack::signature::SlackVerifier;
use crate::slack::web::{OAuthV2Access, SlackApiError, SlackClient};
use crate::store::{Installation, RotationLease, Store, WorkspaceKey};
use crate::wakeup::{self, RetryQueue};

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

/// How long the instance exchanging a refresh token holds the lease on it:
/// longer than the exchange and the write can take (each bounded by
/// [`REQUEST_TIMEOUT`]), so a live holder is never overtaken; a crashed
/// one's lease runs out and another instance takes over.
const ROTATION_LEASE_SECS: i64 = 5;
/// How long an instance waits for another's rotation, polling the table.
/// Bounded well inside every function's budget (Slack's 3 s): after it the
/// instance goes on with the token it has (it is refreshed 5 minutes early,
/// so it usually still works).
const ROTATION_WAIT: Duration = Duration::from_millis(1_000);
const ROTATION_POLL: Duration = Duration::from_millis(100);

pub struct Bridge {
    pub config: Config,
    pub store: Store,
    pub slack: SlackClient,
    pub easemob: EasemobClient,
    pub easemob_token: TokenProvider,
    pub verifier: SlackVerifier,
    /// Where outcomes are counted (docs/design.md §1 "Metrics"): stdout,
    /// which CloudWatch Logs reads; the test kit swaps in a buffer.
    pub metrics: Metrics,
    /// Where outbox wake-ups go (wakeup.rs); off unless `RETRY_QUEUE_URL`.
    pub wakeups: RetryQueue,
    pub(crate) installations: TtlCache<WorkspaceKey, Installation>,
    pub(crate) memo: Memo,
    /// The time the outbox and its drains run on (clock.rs).
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
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
    /// Mentioned `(workspace, user)` ids Slack did not resolve (unknown, or
    /// no answer in time): shown as ids for a while, not asked about again.
    pub unknown_users: TtlCache<(String, String), ()>,
    pub teams: TtlCache<String, serde_json::Value>,
    /// Visitor ids known to be registered in Easemob.
    pub registered_visitors: TtlCache<String, ()>,
    /// The thread each conversation was last seen in, by visitor id: the
    /// warm path's guess (relay/pipeline.rs).
    pub threads: TtlCache<String, Option<String>>,
    /// Per direction, the last conversation a drain that ran out of time
    /// finished: the next drain starts after it (relay/outbox.rs).
    pub drain_resume: TtlCache<crate::store::Direction, String>,
    /// Kefu routes and notice language, by workspace partition key.
    pub routes: TtlCache<String, Vec<crate::store::Route>>,
    pub notice_languages: TtlCache<String, crate::store::NoticeLanguage>,
    /// Per direction, when this instance last asked to mark a recovery,
    /// and last noted a failure (clock epoch s): not again for a few
    /// seconds (relay/outbox.rs).
    pub recoveries: TtlCache<crate::store::Direction, i64>,
    pub failures_noted: TtlCache<crate::store::Direction, i64>,
}

impl Bridge {
    /// Reads the environment once (cold start): the variables `duties` need.
    pub async fn from_env(duties: Duties) -> Result<Self, ConfigError> {
        let config = Config::from_env_for(duties)?;
        let aws = dynamo::sdk_config_from_env().await?;
        let db = dynamo::client_from_config(&aws);
        let wakeups = RetryQueue::new(
            wakeup::client_from_config(&aws),
            config.retry_queue_url.clone(),
        );
        if !wakeups.is_on() {
            tracing::info!("retry_wakeups_off");
        }
        Ok(Self::new(config, db, http_client()).with_wakeups(wakeups))
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
        let metrics = Metrics::stdout(&config.metrics_namespace);
        Self {
            config,
            store,
            slack,
            easemob,
            easemob_token,
            verifier,
            metrics,
            wakeups: RetryQueue::off(),
            installations: TtlCache::default(),
            memo: Memo::default(),
            clock: std::sync::Arc::new(crate::clock::SystemClock),
            rotation: tokio::sync::Mutex::new(()),
        }
    }

    /// The same bridge sending its outbox wake-ups to `wakeups`.
    pub fn with_wakeups(mut self, wakeups: RetryQueue) -> Self {
        self.wakeups = wakeups;
        self
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

    /// The bot token for a workspace's Slack calls in one request: the
    /// freshest this instance holds, checked against the table when Slack
    /// refuses it (docs/design.md §2 "OAuth v2 install"; `slack::bot_token`).
    pub fn bot_token(&self, installation: &Installation) -> BotToken<'_> {
        // Memory holds the newest copy this instance has read: after a stale
        // token was replaced earlier in the request, the stored one.
        let token = self
            .installations
            .get(&installation.key, INSTALLATION_TTL)
            .map_or_else(|| installation.bot_token.clone(), |held| held.bot_token);
        BotToken::with_stored(
            token,
            StoredInstallation {
                bridge: self,
                key: installation.key.clone(),
            },
        )
    }

    /// Token rotation (docs/design.md §2 "OAuth v2 install", `refresh_token` +
    /// `expires_in`). Slack honours a refresh token once, so exactly one
    /// instance exchanges it: inside the instance, callers queue on
    /// `rotation` and the first one goes on (the rest find its result in
    /// memory); across instances, the one that takes the lease in the table
    /// exchanges, and the others poll the table for the new pair for at
    /// most [`ROTATION_WAIT`]. Nothing is flagged for reinstall because
    /// another instance is rotating.
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
        let started = Instant::now();
        let mut waited = false;
        loop {
            // Another instance may have rotated it already.
            let Some(current) = self.store.get_installation(key).await? else {
                self.installations.remove(key);
                return Ok(None);
            };
            self.installations.put(key.clone(), current.clone());
            let now = now_epoch_secs();
            let Some(used) = current
                .refresh_token
                .clone()
                .filter(|_| needs_refresh(&current, now))
            else {
                if waited {
                    tracing::info!(
                        workspace = key.id(),
                        outcome = "rotated_elsewhere",
                        waited_ms = started.elapsed().as_millis() as u64,
                        "rotation_lease_waited"
                    );
                }
                return Ok(Some(current));
            };
            let lease = self
                .store
                .take_rotation_lease(key, &used, now, now + ROTATION_LEASE_SECS)
                .await?;
            match lease {
                RotationLease::Taken => {
                    tracing::info!(workspace = key.id(), "rotation_lease_taken");
                    return self.rotate(key, current, used).await;
                }
                RotationLease::TakenOver => {
                    tracing::warn!(workspace = key.id(), "rotation_lease_expired");
                    return self.rotate(key, current, used).await;
                }
                RotationLease::Held if started.elapsed() + ROTATION_POLL > ROTATION_WAIT => {
                    tracing::warn!(
                        workspace = key.id(),
                        outcome = "gave_up",
                        waited_ms = started.elapsed().as_millis() as u64,
                        "rotation_lease_waited"
                    );
                    return Ok(Some(current));
                }
                RotationLease::Held => {
                    waited = true;
                    tokio::time::sleep(ROTATION_POLL).await;
                }
            }
        }
    }

    /// Exchanges `used` for a new pair under the lease and stores it.
    async fn rotate(
        &self,
        key: &WorkspaceKey,
        current: Installation,
        used: Secret,
    ) -> Result<Option<Installation>, DynamoError> {
        if self.config.slack_client_id.is_empty()
            || self.config.slack_client_secret.expose().is_empty()
        {
            // The deployment gave this function no app credentials.
            tracing::error!(workspace = key.id(), "token_rotation_not_configured");
            self.give_back_rotation_lease(key, &used).await;
            return Ok(Some(current));
        }
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
                self.give_back_rotation_lease(key, &used).await;
                return Ok(Some(current));
            }
            Err(error) => return self.refresh_failed(key, current, &used, error).await,
        };
        if self.store.replace_rotated_token(&rotated, &used).await? {
            tracing::info!(workspace = key.id(), "bot_token_rotated");
            self.installations.put(key.clone(), rotated.clone());
            return Ok(Some(rotated));
        }
        // Our lease ran out and another instance rotated: its pair stands.
        let winner = self.store.get_installation(key).await?;
        match &winner {
            Some(winner) => self.installations.put(key.clone(), winner.clone()),
            None => self.installations.remove(key),
        }
        Ok(winner)
    }

    /// Slack refused or could not be reached. Under the lease nobody else
    /// used this refresh token — unless the lease ran out meanwhile, so the
    /// table is read once more. A refusal of the stored refresh token flags
    /// the installation for reinstall (and it is not retried on every
    /// event); after a transient failure the lease is given back, so the
    /// next call tries again.
    async fn refresh_failed(
        &self,
        key: &WorkspaceKey,
        current: Installation,
        used: &Secret,
        error: SlackApiError,
    ) -> Result<Option<Installation>, DynamoError> {
        tracing::warn!(workspace = key.id(), %error, "token_refresh_failed");
        if !matches!(error, SlackApiError::Api(_)) || error.is_transient() {
            self.give_back_rotation_lease(key, used).await;
            return Ok(Some(current));
        }
        if let Some(stored) = self.store.get_installation(key).await? {
            if stored.refresh_token.as_ref() != Some(used) {
                self.installations.put(key.clone(), stored.clone());
                return Ok(Some(stored));
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

    /// After an exchange that gave no pair: the next call may try at once.
    /// If the table does not take it, the lease simply runs out.
    async fn give_back_rotation_lease(&self, key: &WorkspaceKey, used: &Secret) {
        if let Err(error) = self.store.release_rotation_lease(key, used).await {
            tracing::warn!(workspace = key.id(), %error, "rotation_lease_not_released");
        }
    }

    /// Drops what this instance remembers about a workspace (uninstall).
    pub fn forget_workspace(&self, key: &WorkspaceKey) {
        self.installations.remove(key);
        self.memo.routes.remove(&key.pk());
        self.memo.notice_languages.remove(&key.pk());
    }

    /// The stored bot token when it is not `refused`, read past the memory
    /// cache (that is where a stale copy comes from); memory then holds the
    /// stored installation.
    async fn stored_token_other_than(
        &self,
        key: &WorkspaceKey,
        refused: &Secret,
    ) -> Result<Option<Secret>, SlackApiError> {
        let Some(stored) = self.store.get_installation(key).await? else {
            return Ok(None);
        };
        self.installations.put(key.clone(), stored.clone());
        if stored.bot_token == *refused {
            tracing::info!(workspace = key.id(), "bot_token_refused_as_stored");
            return Ok(None);
        }
        tracing::info!(workspace = key.id(), "stale_bot_token_retried_with_stored");
        Ok(Some(stored.bot_token))
    }
}

/// A workspace's installation in the table, as [`BotToken`] reads it.
struct StoredInstallation<'a> {
    bridge: &'a Bridge,
    key: WorkspaceKey,
}

impl StoredToken for StoredInstallation<'_> {
    fn other_than<'a>(&'a self, refused: &'a Secret) -> StoredLookup<'a> {
        Box::pin(self.bridge.stored_token_other_than(&self.key, refused))
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
    client_builder().build().expect("TLS backend initialises")
}

/// The client for files a payload names (docs/design.md §3 "Files"): as
/// [`http_client`], but it follows no redirect, so a request goes exactly
/// where the checked URL says and nowhere a server sends it next.
pub fn no_redirect_http_client() -> reqwest::Client {
    client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("TLS backend initialises")
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(50))
        .user_agent(concat!("slack-kefu-bridge/", env!("CARGO_PKG_VERSION")))
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
