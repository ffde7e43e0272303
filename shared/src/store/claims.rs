//! Idempotency claims: exactly-once handling of Slack `event_id`s and
//! Easemob `msg_id`s across retries, races and crashes.
//!
//! A claim is `in_progress` with a lease, then `completed`; a failed attempt
//! `released`s it with how many message parts were already delivered, so the
//! sender's retry resumes after them instead of sending them twice. A lease
//! that runs out (the invocation crashed) can be claimed again.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};

use super::outbox::{conversation_key, Direction};
use super::{built, Store, WorkspaceKey};
use crate::clock::now_epoch_secs;
use crate::dynamo::item::{num_attr, str_attr};
use crate::dynamo::{DynamoError, Item, ItemExt};

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

/// The thread the warm path expects a conversation record to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadCheck<'a> {
    /// Whatever it is (direct messages never thread).
    Any,
    /// None: replies go to the channel's top level.
    TopLevel,
    /// This thread's `thread_ts`.
    In(&'a str),
}

impl ThreadCheck<'_> {
    /// The thread a record that passed the check names (`Any`: not known).
    pub fn thread_ts(self) -> Option<String> {
        match self {
            ThreadCheck::In(thread) => Some(thread.to_string()),
            ThreadCheck::TopLevel | ThreadCheck::Any => None,
        }
    }
}

impl Store {
    /// The warm path's claim (docs/design.md §4 "Delivery pipeline"): one
    /// `TransactWriteItems` puts a fresh claim (`in_progress`, leased) only
    /// if the message was never claimed, and checks that the conversation
    /// has nothing waiting in `direction` and names the `thread` expected.
    /// `Some(Acquired { parts_done: 0 })` when both held;
    /// `Some(Completed | InProgress)` when the claim was there (its old
    /// record, from the cancellation reasons, says which); `None` when the
    /// answer needs the slower path ([`Store::claim`], then the
    /// conversation record): a released or expired claim, messages waiting,
    /// another thread, a transaction conflict.
    pub async fn claim_in_quiet_conversation(
        &self,
        key: &ClaimKey,
        lease_secs: i64,
        workspace: &WorkspaceKey,
        visitor: &str,
        direction: Direction,
        thread: ThreadCheck<'_>,
    ) -> Result<Option<Claim>, DynamoError> {
        let now = now_epoch_secs();
        let mut record = Self::key(key.pk(), "CLAIM");
        record.extend([
            ("status".to_string(), str_attr("in_progress")),
            ("lease_until".to_string(), num_attr(now + lease_secs)),
            ("expires_at".to_string(), num_attr(now + CLAIM_TTL_SECS)),
            ("attempts".to_string(), num_attr(1)),
        ]);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(built)?;
        let mut condition = "(attribute_not_exists(#pending) OR #pending <= :zero)".to_string();
        let mut check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(conversation_key(workspace, visitor)))
            .expression_attribute_names("#pending", direction.attr("pending"))
            .expression_attribute_values(":zero", num_attr(0));
        match thread {
            ThreadCheck::Any => {}
            ThreadCheck::TopLevel => condition.push_str(" AND attribute_not_exists(thread_ts)"),
            ThreadCheck::In(thread_ts) => {
                condition.push_str(" AND thread_ts = :thread");
                check = check.expression_attribute_values(":thread", str_attr(thread_ts));
            }
        }
        let check = check
            .condition_expression(condition)
            .build()
            .map_err(built)?;
        let result = self
            .db
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(Claim::Acquired { parts_done: 0 })),
            Err(SdkError::ServiceError(context))
                if matches!(
                    context.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                let TransactWriteItemsError::TransactionCanceledException(cancelled) =
                    context.into_err()
                else {
                    return Ok(None);
                };
                // Reasons come in the order of the items: the claim first.
                let claim = cancelled.cancellation_reasons().first();
                let claim_failed = claim.and_then(|r| r.code()) == Some("ConditionalCheckFailed");
                Ok(claim
                    .filter(|_| claim_failed)
                    .and_then(|reason| reason.item())
                    .and_then(|old| taken_claim(old, now)))
            }
            Err(error) => Err(DynamoError::from(error)),
        }
    }

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
        self.update(self.claim_status_update(key, status, parts_done)?)
            .await
    }

    /// The write that sets a claim's status and progress, on its own or in
    /// a transaction with what the delivery recorded (store/slack_posts.rs).
    pub(super) fn claim_status_update(
        &self,
        key: &ClaimKey,
        status: &str,
        parts_done: u32,
    ) -> Result<Update, DynamoError> {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(key.pk(), "CLAIM")))
            .update_expression("SET #st = :status, parts_done = :parts REMOVE lease_until")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":status", str_attr(status))
            .expression_attribute_values(":parts", num_attr(i64::from(parts_done)))
            .build()
            .map_err(built)
    }
}

/// What an existing claim record means to a new delivery: `Completed`,
/// `InProgress` under a live lease, or `None` when it may be claimed again
/// (released, or its lease ran out), which [`Store::claim`] does.
fn taken_claim(old: &Item, now: i64) -> Option<Claim> {
    match old.s("status") {
        Some("completed") => Some(Claim::Completed),
        Some("in_progress") if old.n("lease_until").is_some_and(|until| until >= now) => {
            Some(Claim::InProgress)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_claim_reads_as_taken_only_when_completed_or_leased() {
        let record = |status: &str, lease_until: i64| -> Item {
            [
                ("status".to_string(), str_attr(status)),
                ("lease_until".to_string(), num_attr(lease_until)),
            ]
            .into()
        };
        assert_eq!(
            taken_claim(&record("completed", 0), 100),
            Some(Claim::Completed)
        );
        assert_eq!(
            taken_claim(&record("in_progress", 100), 100),
            Some(Claim::InProgress)
        );
        assert_eq!(taken_claim(&record("in_progress", 99), 100), None);
        assert_eq!(taken_claim(&record("released", 500), 100), None);
    }
}
