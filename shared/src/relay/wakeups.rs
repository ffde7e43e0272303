//! The answer to an SQS event of retry wake-ups (docs/design.md §1 "Retry
//! wake-ups (SQS)"): each record names one conversation, which is drained
//! at once; records to be seen again are answered in `batchItemFailures`.
//!
//! A record is listed when its conversation still had due messages this
//! invocation could not deliver (out of time, or DynamoDB failing): SQS
//! brings it back after its visibility timeout. A record whose body is not a
//! wake-up is logged and not listed: it would never get better. A message
//! that failed again was rescheduled with a wake-up of its own, so its
//! record is done.

use std::time::Instant;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use crate::bridge::Bridge;
use crate::relay::outbox::{self, ConversationDrain, CONVERSATIONS_AT_ONCE};
use crate::store::Direction;
use crate::wakeup::{WakeUp, WakeUpError};

/// Drains the conversations `event`'s records name, for this function's
/// `direction`, up to [`CONVERSATIONS_AT_ONCE`] at once like a scheduled
/// drain: a batch of ten wake-ups is not ten conversations one after
/// another. Records naming the same conversation (the wake-ups of messages
/// queued behind one another share its time) are worked one after the
/// other, so a later one still finds what an earlier drain left.
pub async fn handle(
    bridge: &Bridge,
    direction: Direction,
    event: SqsEvent,
    deadline: Instant,
) -> Value {
    let mut conversations: Vec<(WakeUp, Vec<String>)> = Vec::new();
    for record in event.records {
        let message_id = record.message_id.unwrap_or_default();
        match read(direction, record.body.as_deref()) {
            Ok(wake_up) => match conversations.iter_mut().find(|(w, _)| *w == wake_up) {
                Some((_, ids)) => ids.push(message_id),
                None => conversations.push((wake_up, vec![message_id])),
            },
            Err(error) => tracing::warn!(message_id, %error, "retry_wakeup_malformed"),
        }
    }
    // Built first, then streamed: a stream that maps with a borrowing
    // closure is not `Send` (rust-lang/rust#102211).
    let work: Vec<_> = conversations
        .iter()
        .map(|(wake_up, ids)| wake(bridge, wake_up, ids, deadline))
        .collect();
    let failed: Vec<Vec<String>> = stream::iter(work)
        .buffer_unordered(CONVERSATIONS_AT_ONCE)
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .flatten()
        .map(|message_id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            failure
        })
        .collect();
    to_json(&response)
}

/// One conversation's records in order: each drains it; those to be seen
/// again are returned.
async fn wake(
    bridge: &Bridge,
    wake_up: &WakeUp,
    message_ids: &[String],
    deadline: Instant,
) -> Vec<String> {
    let mut again = Vec::new();
    for message_id in message_ids {
        let (outcome, summary) = outbox::drain_one(
            bridge,
            wake_up.direction,
            &wake_up.workspace,
            &wake_up.visitor,
            deadline,
        )
        .await;
        tracing::info!(
            message_id,
            direction = wake_up.direction.tag(),
            visitor = %wake_up.visitor,
            delivered = summary.delivered,
            retried_later = summary.retried_later,
            dead_lettered = summary.dead_lettered,
            not_due = summary.not_due,
            leased_elsewhere = summary.leased_elsewhere,
            unfinished = outcome == ConversationDrain::Unfinished,
            "retry_wakeup"
        );
        if outcome == ConversationDrain::Unfinished {
            again.push(message_id.clone());
        }
    }
    again
}

/// What a function that drains nothing answers an SQS event: nothing to see
/// again.
pub fn nothing_to_drain(event: &SqsEvent) -> Value {
    tracing::info!(
        records = event.records.len(),
        outcome = "nothing_to_do",
        "sqs_event"
    );
    to_json(&SqsBatchResponse::default())
}

/// A record's body as a wake-up for this function's `direction`.
fn read(direction: Direction, body: Option<&str>) -> Result<WakeUp, WakeUpError> {
    let wake_up = WakeUp::parse(body.unwrap_or_default())?;
    if wake_up.direction != direction {
        return Err(WakeUpError::Unreadable(format!(
            "direction {} is not drained by this function",
            wake_up.direction.tag()
        )));
    }
    Ok(wake_up)
}

fn to_json(response: &SqsBatchResponse) -> Value {
    serde_json::to_value(response).unwrap_or(Value::Null)
}
