//! Sending to Kefu as the visitor: token, one-time registration, and the
//! message itself, with one token refresh on 401 (docs/design.md §3).

use std::time::{Duration, Instant};

use crate::bridge::Bridge;
use crate::easemob::EasemobError;
use crate::relay::outcome::FailureKind;
use crate::relay::pipeline::{remaining, Failure, Recipient, Stopped};
use crate::secret::Secret;
use crate::store::{Direction, WorkspaceKey, WorkspaceRecord};
use crate::visitor::VisitorId;

const REGISTERED_MEMORY_TTL: Duration = Duration::from_secs(24 * 3_600);

/// Registers the visitor as an Easemob IM user once: remembered in memory
/// and in the table, so this costs nothing on the warm path.
pub async fn ensure_registered(
    bridge: &Bridge,
    workspace: &WorkspaceKey,
    visitor: &VisitorId,
) -> Result<(), EasemobError> {
    let username = visitor.to_string();
    if bridge
        .memo
        .registered_visitors
        .get(&username, REGISTERED_MEMORY_TTL)
        .is_some()
    {
        return Ok(());
    }
    let record = WorkspaceRecord::Visitor(&username);
    let known = bridge
        .store
        .has_marker(workspace, record)
        .await
        .map_err(|e| EasemobError::Unavailable(e.to_string()))?;
    if !known {
        // The visitor never logs in, but the password must still be
        // unguessable (anyone holding it could write as the visitor): without
        // randomness the visitor is not registered, and the message waits.
        let password = match crate::clock::random_bytes::<16>() {
            Ok(bytes) => hex::encode(bytes),
            Err(error) => {
                tracing::error!(visitor = %username, %error, "visitor_password_randomness_unavailable");
                return Err(EasemobError::Unavailable(error.to_string()));
            }
        };
        with_token(bridge, |token| {
            let password = password.clone();
            let username = username.clone();
            async move {
                bridge
                    .easemob
                    .register_user(&token, &username, &password)
                    .await
            }
        })
        .await?;
        bridge
            .store
            .put_marker(workspace, record)
            .await
            .map_err(|e| EasemobError::Unavailable(e.to_string()))?;
    }
    bridge.memo.registered_visitors.put(username, ());
    Ok(())
}

/// Sends one prepared message body. A 429 whose `Retry-After` fits before
/// `deadline` is waited out once; anything else is the caller's to handle.
pub async fn send_body(
    bridge: &Bridge,
    body: &[u8],
    deadline: Instant,
) -> Result<(), EasemobError> {
    let first = with_token(bridge, |token| async move {
        bridge.easemob.send_message(&token, body).await
    })
    .await;
    match first {
        Err(EasemobError::RateLimited { retry_after }) => {
            let wait = Duration::from_secs(retry_after.unwrap_or(1));
            if Instant::now() + wait + Duration::from_millis(500) > deadline {
                return Err(EasemobError::RateLimited { retry_after });
            }
            tokio::time::sleep(wait).await;
            with_token(bridge, |token| async move {
                bridge.easemob.send_message(&token, body).await
            })
            .await
        }
        other => other,
    }
}

/// Runs `call` with the current token; on 401, once more with a fresh one.
async fn with_token<F, Fut>(bridge: &Bridge, call: F) -> Result<(), EasemobError>
where
    F: Fn(Secret) -> Fut,
    Fut: std::future::Future<Output = Result<(), EasemobError>>,
{
    let token = bridge
        .easemob_token
        .token(&bridge.easemob, &bridge.store)
        .await?;
    match call(token.clone()).await {
        Err(EasemobError::Unauthorized) => {
            tracing::info!("easemob_token_rejected_refreshing");
            let fresh = bridge
                .easemob_token
                .refresh_after_unauthorized(&bridge.easemob, &bridge.store, &token)
                .await?;
            call(fresh).await
        }
        other => other,
    }
}

/// A visitor's conversation in Kefu, as the delivery pipeline sends to it
/// (relay/pipeline.rs): the visitor is registered once, then each part is
/// one prepared Easemob message body.
pub(crate) struct KefuVisitor<'a> {
    pub workspace: &'a WorkspaceKey,
    pub visitor: &'a VisitorId,
    /// A part after the first is started only with this much time left
    /// (the live handler's and the drain's budgets differ).
    pub allowance: Duration,
}

impl Recipient for KefuVisitor<'_> {
    type Part = Vec<u8>;
    type Error = EasemobError;
    const DIRECTION: Direction = Direction::ToKefu;

    async fn send(
        &mut self,
        bridge: &Bridge,
        parts: &[Vec<u8>],
        from: usize,
        deadline: Instant,
    ) -> Result<(), Stopped<EasemobError>> {
        // A message may have been queued because registering failed.
        ensure_registered(bridge, self.workspace, self.visitor)
            .await
            .map_err(|error| Stopped::failed(from, error))?;
        for (index, body) in parts.iter().enumerate().skip(from) {
            if index > from && remaining(deadline) < self.allowance {
                return Err(Stopped::out_of_time(index));
            }
            send_body(bridge, body, deadline)
                .await
                .map_err(|error| Stopped::failed(index, error))?;
        }
        Ok(())
    }

    /// Easemob's answer → retry or dead letter. Besides 401 and 429, a 403
    /// is retried: Easemob answers it when the per-minute message quota
    /// (6,000) is spent. Any other 4xx (400 on a bad visitor, 404, 413) is
    /// permanent.
    fn classify(error: &EasemobError) -> Failure {
        let transient = |kind, retry_after| Failure::Transient {
            kind,
            detail: error.to_string(),
            retry_after,
        };
        match error {
            EasemobError::RateLimited { retry_after } => {
                transient(FailureKind::KefuRateLimited, *retry_after)
            }
            EasemobError::Unauthorized => transient(FailureKind::TokenRefused, None),
            EasemobError::Unavailable(_) => transient(FailureKind::KefuUnavailable, None),
            EasemobError::Rejected { status: 403, .. } => {
                transient(FailureKind::KefuRateLimited, None)
            }
            EasemobError::Rejected { .. } => Failure::Permanent {
                kind: FailureKind::KefuRejected,
                reason: error.to_string(),
            },
        }
    }

    fn stored(part: &Vec<u8>) -> String {
        String::from_utf8_lossy(part).into_owned()
    }

    fn from_stored(stored: &str) -> Result<Vec<u8>, Failure> {
        Ok(stored.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(error: EasemobError) -> Failure {
        KefuVisitor::classify(&error)
    }

    #[test]
    fn failures_are_classified_and_named() {
        let transient = |f: &Failure| matches!(f, Failure::Transient { .. });
        for (error, kind) in [
            (EasemobError::Unauthorized, FailureKind::TokenRefused),
            (
                EasemobError::Unavailable("x".into()),
                FailureKind::KefuUnavailable,
            ),
            (
                EasemobError::RateLimited {
                    retry_after: Some(3),
                },
                FailureKind::KefuRateLimited,
            ),
            (
                EasemobError::Rejected {
                    status: 403,
                    error: "".into(),
                },
                FailureKind::KefuRateLimited,
            ),
        ] {
            let failure = classify(error);
            assert!(transient(&failure), "{failure:?}");
            assert_eq!(failure.kind(), kind);
        }
        let rejected = classify(EasemobError::Rejected {
            status: 400,
            error: "illegal_argument".into(),
        });
        assert!(!transient(&rejected));
        assert_eq!(rejected.kind(), FailureKind::KefuRejected);
    }
}
