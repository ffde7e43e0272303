//! Idempotency claims: exactly-once handling of Slack `event_id`s and
//! Easemob `msg_id`s across retries, races and crashes.
//!
//! A claim is `in_progress` with a lease, then `completed`; a failed attempt
//! `released`s it with how many message parts were already delivered, so the
//! sender's retry resumes after them instead of sending them twice. A lease
//! that runs out (the invocation crashed) can be claimed again.

use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::Store;
use crate::clock::now_epoch_secs;
use crate::dynamo::item::{num_attr, str_attr};
use crate::dynamo::{DynamoError, ItemExt};

/// Claims outlive every sender retry (Slack: ~6 min, Easemob: immediate).
pub const CLAIM_TTL_SECS: i64 = 24 * 3_600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimKey {
    SlackEvent(String),
    EasemobMessage(String),
    /// An answer to one of the bridge's interactive messages (menu, rating,
    /// transfer), keyed by workspace, channel and message `ts`: a message
    /// is answered once, however often its buttons are clicked.
    Interaction(String),
}

impl ClaimKey {
    fn pk(&self) -> String {
        match self {
            ClaimKey::SlackEvent(id) => format!("SLACK_EVENT#{id}"),
            ClaimKey::EasemobMessage(id) => format!("EASEMOB_MSG#{id}"),
            ClaimKey::Interaction(id) => format!("INTERACTION#{id}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This invocation owns the work; `parts_done` parts were delivered by an
    /// earlier attempt.
    Acquired { parts_done: u32 },
    /// Already delivered: answer success and send nothing.
    Completed,
    /// Another invocation holds a live lease: answer so the sender retries.
    InProgress,
}

impl Store {
    pub async fn claim(&self, key: &ClaimKey, lease_secs: i64) -> Result<Claim, DynamoError> {
        let now = now_epoch_secs();
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key.pk(), "CLAIM")))
            .update_expression("SET #st = :in_progress, lease_until = :lease, expires_at = :exp, attempts = if_not_exists(attempts, :zero) + :one")
            .condition_expression("attribute_not_exists(pk) OR #st = :released OR (#st = :in_progress AND lease_until < :now)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":in_progress", str_attr("in_progress"))
            .expression_attribute_values(":released", str_attr("released"))
            .expression_attribute_values(":lease", num_attr(now + lease_secs))
            .expression_attribute_values(":exp", num_attr(now + CLAIM_TTL_SECS))
            .expression_attribute_values(":now", num_attr(now))
            .expression_attribute_values(":zero", num_attr(0))
            .expression_attribute_values(":one", num_attr(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .map_err(DynamoError::from);
        match result {
            Ok(out) => {
                let parts_done = out.attributes.and_then(|a| a.n("parts_done")).unwrap_or(0);
                Ok(Claim::Acquired {
                    parts_done: parts_done.max(0) as u32,
                })
            }
            Err(DynamoError::ConditionalCheckFailed(old)) => {
                let completed = old
                    .as_ref()
                    .and_then(|item| item.s("status"))
                    .is_some_and(|s| s == "completed");
                Ok(if completed {
                    Claim::Completed
                } else {
                    Claim::InProgress
                })
            }
            Err(e) => Err(e),
        }
    }

    pub async fn complete_claim(&self, key: &ClaimKey, parts_done: u32) -> Result<(), DynamoError> {
        self.set_claim_status(key, "completed", parts_done).await
    }

    /// Gives the work back for the sender's retry, remembering progress.
    pub async fn release_claim(&self, key: &ClaimKey, parts_done: u32) -> Result<(), DynamoError> {
        self.set_claim_status(key, "released", parts_done).await
    }

    async fn set_claim_status(
        &self,
        key: &ClaimKey,
        status: &str,
        parts_done: u32,
    ) -> Result<(), DynamoError> {
        self.db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key.pk(), "CLAIM")))
            .update_expression("SET #st = :status, parts_done = :parts REMOVE lease_until")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":status", str_attr(status))
            .expression_attribute_values(":parts", num_attr(i64::from(parts_done)))
            .send()
            .await?;
        Ok(())
    }
}
