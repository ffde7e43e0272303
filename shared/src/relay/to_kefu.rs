//! Sending to Kefu as the visitor: token, one-time registration, and the
//! message itself, with one token refresh on 401 (docs/design.md §3).

use std::time::{Duration, Instant};

use crate::bridge::Bridge;
use crate::easemob::EasemobError;
use crate::secret::Secret;
use crate::store::{WorkspaceKey, WorkspaceRecord};
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
