//! The bot token a workspace's Slack calls are made with (docs/design.md §2
//! "OAuth v2 install"). A reinstall issues a new token and revokes the old
//! one at once, while warm instances still hold the old one in memory; with
//! token rotation another instance may have replaced it. So a token Slack
//! refuses is checked against the stored installation (past any memory
//! cache) and the call is made once more with the stored token when it
//! differs. Only a refusal of the stored token stands — what follows from
//! it (flag for reinstall, dead letter) stays with the callers.
//!
//! Every Web API method of [`super::web::SlackClient`] takes a `BotToken`,
//! so no call site can skip this. One `BotToken` serves all of a request's
//! calls: after one replacement the rest go out with the stored token.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use super::web::SlackApiError;
use crate::secret::Secret;

/// The answer of a [`StoredToken`] lookup.
pub type StoredLookup<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Secret>, SlackApiError>> + Send + 'a>>;

/// Where the stored token of a workspace is read when Slack refuses one.
pub trait StoredToken: Send + Sync {
    /// The stored token when it is not `refused`. `Ok(None)`: `refused` is
    /// the stored token (or nothing is stored), so Slack's refusal stands.
    /// `Err`: the store could not say; the call is worth making later.
    fn other_than<'a>(&'a self, refused: &'a Secret) -> StoredLookup<'a>;
}

pub struct BotToken<'a> {
    current: Mutex<Secret>,
    stored: Option<Box<dyn StoredToken + 'a>>,
}

impl fmt::Debug for BotToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotToken")
            .field("current", &self.current())
            .field("stored", &self.stored.is_some())
            .finish()
    }
}

impl<'a> BotToken<'a> {
    /// A token with nothing stored behind it (one just issued by the OAuth
    /// exchange): a refusal stands.
    pub fn fixed(token: Secret) -> Self {
        Self {
            current: Mutex::new(token),
            stored: None,
        }
    }

    /// A workspace's token as this instance holds it, and where the stored
    /// one is read if Slack refuses it.
    pub fn with_stored(token: Secret, stored: impl StoredToken + 'a) -> Self {
        Self {
            current: Mutex::new(token),
            stored: Some(Box::new(stored)),
        }
    }

    /// The token the next call goes out with.
    pub fn current(&self) -> Secret {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes `call` with the current token. When Slack refuses that token
    /// (`refused(&error)`) and the stored one differs, makes it once more
    /// with the stored token, which then serves the request's next calls.
    pub async fn call<T, E, Fut>(
        &self,
        refused: impl Fn(&E) -> bool,
        call: impl Fn(Secret) -> Fut,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: From<SlackApiError>,
    {
        let used = self.current();
        let error = match call(used.clone()).await {
            Err(error) if refused(&error) => error,
            other => return other,
        };
        match self.replacement(&used).await? {
            Some(stored) => call(stored).await,
            None => Err(error),
        }
    }

    /// The token to use instead of `refused`, if there is one.
    async fn replacement(&self, refused: &Secret) -> Result<Option<Secret>, SlackApiError> {
        // Another call of this request may have replaced it already.
        let current = self.current();
        if current != *refused {
            return Ok(Some(current));
        }
        let Some(stored) = &self.stored else {
            return Ok(None);
        };
        let found = stored.other_than(refused).await?;
        if let Some(token) = &found {
            *self.current.lock().unwrap_or_else(|p| p.into_inner()) = token.clone();
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store that holds `token` and counts its lookups.
    struct Holds {
        token: Option<&'static str>,
        lookups: AtomicUsize,
    }

    impl StoredToken for &Holds {
        fn other_than<'a>(&'a self, refused: &'a Secret) -> StoredLookup<'a> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let found = self
                .token
                .map(Secret::new)
                .filter(|stored| stored != refused);
            Box::pin(async move { Ok(found) })
        }
    }

    /// Slack as seen by one call: only `good` is taken.
    async fn slack(good: &str, token: Secret) -> Result<String, SlackApiError> {
        if token.expose() == good {
            Ok(token.expose().to_string())
        } else {
            Err(SlackApiError::Api("token_revoked".into()))
        }
    }

    fn refused(error: &SlackApiError) -> bool {
        error.is_token_refused()
    }

    #[tokio::test]
    async fn a_stale_token_is_replaced_once_for_the_whole_request() {
        let store = Holds {
            token: Some("new"),
            lookups: AtomicUsize::new(0),
        };
        let token = BotToken::with_stored(Secret::new("old"), &store);
        for _ in 0..3 {
            let answer = token.call(refused, |t| slack("new", t)).await;
            assert_eq!(answer.as_deref(), Ok("new"));
        }
        assert_eq!(store.lookups.load(Ordering::SeqCst), 1);
        assert_eq!(token.current(), Secret::new("new"));
    }

    #[tokio::test]
    async fn a_refusal_of_the_stored_token_stands() {
        let store = Holds {
            token: Some("old"),
            lookups: AtomicUsize::new(0),
        };
        let token = BotToken::with_stored(Secret::new("old"), &store);
        let answer = token.call(refused, |t| slack("other", t)).await;
        assert_eq!(answer, Err(SlackApiError::Api("token_revoked".into())));
        assert_eq!(store.lookups.load(Ordering::SeqCst), 1);
        // Other errors never look.
        let answer = token
            .call(refused, |_| async {
                Err::<String, _>(SlackApiError::Api("channel_not_found".into()))
            })
            .await;
        assert!(answer.is_err());
        assert_eq!(store.lookups.load(Ordering::SeqCst), 1);
        let fixed = BotToken::fixed(Secret::new("old"));
        assert!(fixed.call(refused, |t| slack("new", t)).await.is_err());
    }
}
