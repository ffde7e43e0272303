//! The Easemob app token (docs/design.md §3 "Token"): long-lived, so it is fetched once
//! per expiry period, kept in memory for the warm path and in DynamoDB so cold
//! instances reuse it, and refreshed once on HTTP 401.

use tokio::sync::{Mutex, RwLock};

use super::client::{EasemobClient, EasemobError};
use crate::clock::now_epoch_secs;
use crate::secret::Secret;
use crate::store::Store;

/// Refresh this long before Easemob's stated expiry.
const EXPIRY_MARGIN_SECS: i64 = 60;

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    expires_at: i64,
}

impl CachedToken {
    fn is_fresh(&self, now: i64) -> bool {
        self.expires_at - EXPIRY_MARGIN_SECS > now
    }
}

pub struct TokenProvider {
    app_key: String,
    memory: RwLock<Option<CachedToken>>,
    /// Single flight: concurrent requests wait for one refresh.
    refresh: Mutex<()>,
}

impl TokenProvider {
    pub fn new(org: &str, app: &str) -> Self {
        Self {
            app_key: format!("{org}#{app}"),
            memory: RwLock::new(None),
            refresh: Mutex::new(()),
        }
    }

    /// A valid token: memory, else the table, else Easemob.
    pub async fn token(
        &self,
        client: &EasemobClient,
        store: &Store,
    ) -> Result<Secret, EasemobError> {
        let now = now_epoch_secs();
        if let Some(cached) = self
            .memory
            .read()
            .await
            .as_ref()
            .filter(|c| c.is_fresh(now))
        {
            return Ok(cached.token.clone());
        }
        let _single_flight = self.refresh.lock().await;
        if let Some(cached) = self
            .memory
            .read()
            .await
            .as_ref()
            .filter(|c| c.is_fresh(now))
        {
            return Ok(cached.token.clone());
        }
        let stored = store
            .get_easemob_token(&self.app_key)
            .await
            .map_err(|e| EasemobError::Unavailable(e.to_string()))?;
        if let Some((token, expires_at)) = stored {
            let cached = CachedToken { token, expires_at };
            if cached.is_fresh(now) {
                *self.memory.write().await = Some(cached.clone());
                return Ok(cached.token);
            }
        }
        self.fetch(client, store).await
    }

    /// After a 401 with `rejected`: a new token, unless another request has
    /// already replaced it (then that one).
    pub async fn refresh_after_unauthorized(
        &self,
        client: &EasemobClient,
        store: &Store,
        rejected: &Secret,
    ) -> Result<Secret, EasemobError> {
        let _single_flight = self.refresh.lock().await;
        if let Some(cached) = self.memory.read().await.as_ref() {
            if &cached.token != rejected && cached.is_fresh(now_epoch_secs()) {
                return Ok(cached.token.clone());
            }
        }
        self.fetch(client, store).await
    }

    async fn fetch(&self, client: &EasemobClient, store: &Store) -> Result<Secret, EasemobError> {
        let issued = client.request_token().await?;
        let expires_at = now_epoch_secs() + issued.expires_in_secs.max(0);
        // Storing is best effort: a token that works is not lost because the
        // table was slow; the next cold instance just asks Easemob again.
        if let Err(error) = store
            .put_easemob_token(&self.app_key, &issued.access_token, expires_at)
            .await
        {
            tracing::warn!(%error, "easemob_token_not_stored");
        }
        let cached = CachedToken {
            token: issued.access_token,
            expires_at,
        };
        *self.memory.write().await = Some(cached.clone());
        Ok(cached.token)
    }
}
