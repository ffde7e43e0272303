//! One-time OAuth `state` records (docs/design.md §2 "OAuth v2 install"): written when
//! the install page is shown, consumed by the callback.
//!
//! Consuming is a single conditional `DeleteItem` that hands back the old
//! item, so of two callbacks racing with the same `state` exactly one gets
//! it, and a replayed callback finds nothing. Validity (`valid_until`) is
//! checked on read; the TTL attribute `expires_at` only cleans up, an hour
//! later: real DynamoDB deletes lazily (up to days late) while DynamoDB Local
//! deletes at once, and an expired state must answer "expired" either way,
//! not "unknown".

use aws_sdk_dynamodb::types::ReturnValue;

use super::Store;
use crate::clock::now_epoch_secs;
use crate::dynamo::item::{num_attr, str_attr};
use crate::dynamo::{DynamoError, ItemExt};

/// How long an install link stays valid (docs/design.md §2: 10 minutes).
pub const OAUTH_STATE_TTL_SECS: i64 = 600;

/// How long after expiry a state record is kept so it can still be told
/// apart from an unknown one.
const CLEANUP_GRACE_SECS: i64 = 3_600;

/// What the install page remembered for a `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthState {
    /// The `redirect_uri` the authorize link carried; `oauth.v2.access` must
    /// be called with the same one.
    pub redirect_uri: String,
    pub expires_at: i64,
}

/// The outcome of consuming a `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumedState {
    Valid(OAuthState),
    /// It existed but is older than [`OAUTH_STATE_TTL_SECS`] (now deleted).
    Expired,
    /// Never issued, or already used.
    Unknown,
}

fn pk(state: &str) -> String {
    format!("OAUTH_STATE#{state}")
}

impl Store {
    /// Remembers a freshly issued `state` until `expires_at` (epoch seconds).
    pub async fn put_oauth_state(
        &self,
        state: &str,
        redirect_uri: &str,
        expires_at: i64,
    ) -> Result<(), DynamoError> {
        let mut record = Self::key(pk(state), "STATE");
        record.insert("redirect_uri".into(), str_attr(redirect_uri));
        record.insert("created_at".into(), num_attr(now_epoch_secs()));
        record.insert("valid_until".into(), num_attr(expires_at));
        record.insert(
            "expires_at".into(),
            num_attr(expires_at + CLEANUP_GRACE_SECS),
        );
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            // 256 random bits never collide; the guard keeps "one state,
            // one install" true regardless.
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await?;
        Ok(())
    }

    /// Deletes the `state` and returns what it held: the first caller wins,
    /// every later one gets [`ConsumedState::Unknown`].
    pub async fn consume_oauth_state(&self, state: &str) -> Result<ConsumedState, DynamoError> {
        let result = self
            .db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk(state), "STATE")))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(DynamoError::from);
        let old = match result {
            Ok(out) => out.attributes,
            Err(DynamoError::ConditionalCheckFailed(_)) => return Ok(ConsumedState::Unknown),
            Err(e) => return Err(e),
        };
        let Some(old) = old else {
            return Ok(ConsumedState::Unknown);
        };
        // The TTL attribute is the table's contract too: a record whose
        // `expires_at` has passed is expired even before TTL deletes it.
        let expires_at = old
            .n("valid_until")
            .unwrap_or(0)
            .min(old.n("expires_at").unwrap_or(i64::MAX));
        if expires_at <= now_epoch_secs() {
            return Ok(ConsumedState::Expired);
        }
        Ok(ConsumedState::Valid(OAuthState {
            redirect_uri: old.s("redirect_uri").unwrap_or_default().to_string(),
            expires_at,
        }))
    }
}
