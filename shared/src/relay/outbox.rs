//! Durable delivery (issue "Nothing lost, nothing doubled, no loops"; docs/design.md §2
//! "When Easemob fails", second option: store it in the outbox at once and
//! answer 200).
//!
//! When Kefu or Slack does not take a message within the sender's budget,
//! the handler puts what is left of it in the outbox (store/outbox.rs),
//! marks the claim completed and answers 200: the message is durably
//! accepted, the sender stops retrying, and Easemob never counts a Slack
//! outage against the callback endpoint (its ban rule, docs/design.md §3). A message
//! that can never be delivered (a 4xx that retrying cannot fix, a channel
//! the bot left, a revoked token) becomes a dead letter with the reason.
//! While a conversation has messages waiting, new ones queue behind them,
//! so each conversation stays in order.
//!
//! A scheduled drain (EventBridge, every minute in production; tests call
//! it every few seconds) delivers what waits: conversation by conversation
//! under a lease, in sequence order, with exponential backoff per
//! conversation and a 48 h limit.

use std::time::{Duration, Instant};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde_json::Value;

use crate::bridge::Bridge;
use crate::clock::{now_epoch_millis, now_epoch_secs, spread_bytes};
use crate::dynamo::DynamoError;
use crate::easemob::EasemobError;
use crate::relay::to_slack::OutgoingPost;
use crate::relay::{to_kefu, to_slack};
use crate::slack::web::SlackApiError;
use crate::store::{
    ClaimKey, Direction, NewOutboxItem, OutboxItem, WaitingConversation, MAX_PAYLOAD_BYTES,
};
use crate::visitor::VisitorId;

/// A drain starts no new send after this much of its invocation: Lambda's
/// timeout is 10 s (template.yaml) and a send may take 2 s.
pub const DRAIN_BUDGET: Duration = Duration::from_secs(8);
/// Time a send is given when deciding whether to start it.
const SEND_ALLOWANCE: Duration = Duration::from_millis(2_000);
/// How long a drain holds a conversation: longer than any invocation.
const LEASE_SECS: i64 = 60;
/// Waiting messages (keys and times only) one look at the outbox reads:
/// the drain pages through the conversations, so neither its memory nor
/// the time before its first send grows with the backlog.
const WAITING_PAGE: i32 = 100;
/// One conversation's messages read at a time: payloads are up to 350 KB
/// ([`MAX_PAYLOAD_BYTES`]), and a drain sends only a few within its budget.
const MESSAGE_PAGE: i32 = 10;
/// How long a drain's place in a backlog is remembered for the next drain.
const RESUME_TTL: Duration = Duration::from_secs(600);
/// A message still waiting after this long is given up (dead letter).
pub const GIVE_UP_AFTER_SECS: i64 = 48 * 3_600;
/// The first retry comes at most this long after a failure (docs/design.md §2)…
pub const FIRST_RETRY_MAX_SECS: i64 = 10;
/// …then the wait doubles, up to this.
pub const MAX_BACKOFF_SECS: i64 = 15 * 60;

/// Why a delivery stopped, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// May work later: 5xx, timeout, refused connection, rate limit, a
    /// token Easemob still rejects after the one refresh.
    Transient {
        detail: String,
        /// The service asked for at least this long (`Retry-After`).
        retry_after: Option<u64>,
    },
    /// The same request will fail the same way: dead letter.
    Permanent { reason: String },
}

/// Easemob's answer → retry or dead letter. Besides 401 and 429, a 403 is
/// retried: Easemob answers it when the per-minute message quota (6,000)
/// is spent. Any other 4xx (400 on a bad visitor, 404, 413) is permanent.
pub fn kefu_failure(error: &EasemobError) -> Failure {
    match error {
        EasemobError::RateLimited { retry_after } => Failure::Transient {
            detail: error.to_string(),
            retry_after: *retry_after,
        },
        EasemobError::Unauthorized | EasemobError::Unavailable(_) => Failure::Transient {
            detail: error.to_string(),
            retry_after: None,
        },
        EasemobError::Rejected { status: 403, .. } => Failure::Transient {
            detail: error.to_string(),
            retry_after: None,
        },
        EasemobError::Rejected { .. } => Failure::Permanent {
            reason: error.to_string(),
        },
    }
}

/// Slack's answer → retry or dead letter. A dead token, a channel the bot
/// cannot post in and any other `ok: false` error are permanent; 429, 5xx,
/// timeouts and answers that are not Slack's JSON are retried.
pub fn slack_failure(error: &SlackApiError) -> Failure {
    match error {
        SlackApiError::RateLimited { retry_after } => Failure::Transient {
            detail: error.to_string(),
            retry_after: *retry_after,
        },
        SlackApiError::Malformed(_) => Failure::Transient {
            detail: error.to_string(),
            retry_after: None,
        },
        error if error.is_transient() => Failure::Transient {
            detail: error.to_string(),
            retry_after: None,
        },
        error => Failure::Permanent {
            reason: error.to_string(),
        },
    }
}

/// Seconds to wait after the `failures`-th failed attempt: at most 10 s
/// after the first, doubling up to 15 min, each drawn from the upper half
/// of its range ("equal jitter") so retries of many conversations spread.
pub fn backoff_secs(failures: u32, jitter: u16) -> i64 {
    let doublings = failures.saturating_sub(1).min(16);
    let ceiling = (FIRST_RETRY_MAX_SECS << doublings).min(MAX_BACKOFF_SECS);
    let floor = ceiling / 2;
    floor + i64::from(jitter) % (ceiling - floor + 1)
}

/// When to try again after the `failures`-th failure, honouring a
/// `Retry-After` (capped at the longest backoff).
pub fn retry_at(now: i64, failures: u32, retry_after: Option<u64>) -> i64 {
    let jitter = u16::from_le_bytes(spread_bytes::<2>());
    let asked = retry_after.map_or(0, |s| s.min(MAX_BACKOFF_SECS as u64) as i64);
    now + backoff_secs(failures, jitter).max(asked)
}

/// Takes a message the handler could not (or may not yet) deliver: into
/// the outbox — or the dead letters for a permanent failure — and then
/// completes its claim, so the sender gets 200 and stops retrying. `Ok` has
/// the failure's detail for the log line. If the table fails, nothing is
/// accepted: the claim is released with `parts_done` so the sender's retry
/// resumes after what already went, and `Err` says why.
pub(crate) async fn accept(
    bridge: &Bridge,
    mut new: NewOutboxItem,
    failure: Option<Failure>,
    claim: &ClaimKey,
    parts_total: usize,
    parts_done: usize,
) -> Result<Option<String>, String> {
    let now = now_epoch_secs();
    let stored = match &failure {
        None => queue(bridge, new).await,
        Some(Failure::Transient {
            detail,
            retry_after,
        }) => {
            new.attempts = 1;
            new.next_attempt_at = retry_at(now, 1, *retry_after);
            new.last_error = Some(detail.clone());
            queue(bridge, new).await
        }
        Some(Failure::Permanent { reason }) => {
            new.last_error = Some(reason.clone());
            dead_letter(bridge, new, reason).await
        }
    };
    let detail = failure.map(|f| match f {
        Failure::Transient { detail, .. } => detail,
        Failure::Permanent { reason } => reason,
    });
    match stored {
        Ok(()) => {
            // Answered 200 either way: if recording fails, the claim's lease
            // still blocks a re-delivery meanwhile.
            if let Err(error) = bridge.store.complete_claim(claim, parts_total as u32).await {
                tracing::error!(claim = ?claim, %error, "claim_completion_not_recorded");
            }
            Ok(detail)
        }
        Err(error) => {
            if let Err(store_error) = bridge.store.release_claim(claim, parts_done as u32).await {
                tracing::error!(claim = ?claim, %store_error, "claim_release_failed");
            }
            Err(format!(
                "{}; not stored: {error}",
                detail.unwrap_or_default()
            ))
        }
    }
}

/// Puts a message in the outbox behind the conversation's waiting ones. A
/// payload too large for one record (DynamoDB items stop at 400 KB) goes as
/// several records in a row, in order.
pub(crate) async fn queue(bridge: &Bridge, new: NewOutboxItem) -> Result<(), DynamoError> {
    for chunk in chunks_within(&new.parts, MAX_PAYLOAD_BYTES) {
        let record = NewOutboxItem {
            parts: chunk.to_vec(),
            ..new.clone()
        };
        let seq = bridge.store.enqueue(&record).await?;
        tracing::info!(
            direction = new.direction.tag(),
            visitor = %new.visitor,
            origin = %new.origin,
            seq,
            parts = record.parts.len(),
            reason = new.last_error.as_deref(),
            "outbox_queued"
        );
    }
    Ok(())
}

/// Records a message that can never be delivered, with the reason.
pub(crate) async fn dead_letter(
    bridge: &Bridge,
    new: NewOutboxItem,
    reason: &str,
) -> Result<(), DynamoError> {
    for chunk in chunks_within(&new.parts, MAX_PAYLOAD_BYTES) {
        let record = NewOutboxItem {
            parts: chunk.to_vec(),
            ..new.clone()
        };
        bridge.store.dead_letter_new(&record, reason).await?;
    }
    tracing::warn!(
        direction = new.direction.tag(),
        visitor = %new.visitor,
        origin = %new.origin,
        reason,
        "dead_lettered"
    );
    Ok(())
}

/// Consecutive runs of `parts` whose text adds up to at most `limit` bytes
/// (a single larger part goes alone; the store refuses it, visibly).
fn chunks_within(parts: &[String], limit: usize) -> Vec<&[String]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, part) in parts.iter().enumerate() {
        if i > start && size + part.len() > limit {
            chunks.push(&parts[start..i]);
            start = i;
            size = 0;
        }
        size += part.len();
    }
    if start < parts.len() || parts.is_empty() {
        chunks.push(&parts[start..]);
    }
    chunks
}

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrainSummary {
    pub direction: &'static str,
    /// Messages delivered and removed from the outbox.
    pub delivered: usize,
    /// Messages whose attempt failed and that wait for a later drain.
    pub retried_later: usize,
    pub dead_lettered: usize,
    /// Conversations this drain worked on.
    pub conversations: usize,
    /// Conversations left alone: backing off, or leased by another drain.
    pub not_due: usize,
    pub leased_elsewhere: usize,
    /// The drain ran out of time (or the table failed) with work left.
    pub stopped_early: bool,
}

impl DrainSummary {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// When a scheduled drain must stop starting sends: [`DRAIN_BUDGET`] from
/// now, or 2 s before Lambda's deadline (epoch ms; 0 when unknown).
pub fn drain_deadline(lambda_deadline_ms: u64) -> Instant {
    let budget = match i64::try_from(lambda_deadline_ms) {
        Ok(deadline) if deadline > 0 => {
            let left = deadline - now_epoch_millis() - 2_000;
            Duration::from_millis(left.max(0) as u64).min(DRAIN_BUDGET)
        }
        _ => DRAIN_BUDGET,
    };
    Instant::now() + budget
}

/// The answer to an EventBridge Scheduled Event: drain `direction`.
pub async fn scheduled(
    bridge: &Bridge,
    direction: Direction,
    event: &EventBridgeEvent<Value>,
    deadline: Instant,
) -> Value {
    tracing::info!(source = %event.source, direction = direction.tag(), "scheduled_event");
    drain(bridge, direction, deadline).await.to_json()
}

/// How delivering one waiting message went.
enum Delivery {
    Delivered,
    /// The drain's time ran out after `parts_done` parts: not a failure.
    OutOfTime {
        parts_done: u32,
    },
    Failed {
        parts_done: u32,
        failure: Failure,
    },
}

/// Delivers what waits in `direction`, oldest first per conversation,
/// starting no send after `deadline`. Leases are released when it ends.
///
/// The outbox is read a page at a time. A drain that runs out of time
/// remembers (in this instance) the last conversation that had its turn,
/// and the next drain starts after it and then wraps around: when a backlog
/// takes several drains, each conversation gets its turn, none always
/// comes last, and a long backlog does not hold up the others.
pub async fn drain(bridge: &Bridge, direction: Direction, deadline: Instant) -> DrainSummary {
    let mut summary = DrainSummary {
        direction: direction.tag(),
        ..DrainSummary::default()
    };
    let resume = bridge.memo.drain_resume.get(&direction, RESUME_TTL);
    let mut after = resume.clone();
    // Past the end once: then from the first conversation up to `resume`.
    let mut wrapped = resume.is_none();
    let mut last_turn: Option<String> = None;
    'pages: loop {
        if remaining(deadline) < SEND_ALLOWANCE {
            summary.stopped_early = true;
            break;
        }
        let page = match bridge
            .store
            .waiting_conversations(direction, after.as_deref(), WAITING_PAGE)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(direction = direction.tag(), %error, "outbox_drain_store_unavailable");
                summary.stopped_early = true;
                break;
            }
        };
        for conversation in &page.conversations {
            let seen_before = wrapped
                && resume
                    .as_deref()
                    .is_some_and(|start| conversation.visitor.as_str() > start);
            if seen_before {
                break 'pages;
            }
            if remaining(deadline) < SEND_ALLOWANCE {
                summary.stopped_early = true;
                break 'pages;
            }
            let keep_going =
                drain_waiting(bridge, direction, conversation, deadline, &mut summary).await;
            last_turn = Some(conversation.visitor.clone());
            if !keep_going {
                summary.stopped_early = true;
                break 'pages;
            }
        }
        match page.conversations.last() {
            Some(last) if page.more => after = Some(last.visitor.clone()),
            _ if !wrapped => {
                wrapped = true;
                after = None;
            }
            _ => break,
        }
    }
    match last_turn.filter(|_| summary.stopped_early) {
        Some(visitor) => bridge.memo.drain_resume.put(direction, visitor),
        None if !summary.stopped_early => bridge.memo.drain_resume.remove(&direction),
        None => {}
    }
    tracing::info!(
        direction = direction.tag(),
        delivered = summary.delivered,
        retried_later = summary.retried_later,
        dead_lettered = summary.dead_lettered,
        conversations = summary.conversations,
        not_due = summary.not_due,
        leased_elsewhere = summary.leased_elsewhere,
        stopped_early = summary.stopped_early,
        "outbox_drained"
    );
    summary
}

/// One conversation with messages waiting: skipped when not due or leased
/// elsewhere, else drained under its lease. False when the whole drain
/// must stop (out of time, or the table failing).
async fn drain_waiting(
    bridge: &Bridge,
    direction: Direction,
    conversation: &WaitingConversation,
    deadline: Instant,
    summary: &mut DrainSummary,
) -> bool {
    let now = now_epoch_secs();
    if conversation.head_next_attempt_at > now {
        summary.not_due += 1;
        return true;
    }
    let until = now + LEASE_SECS;
    let (workspace, visitor) = (&conversation.workspace, &conversation.visitor);
    match bridge
        .store
        .take_drain_lease(direction, workspace, visitor, now, until)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            summary.leased_elsewhere += 1;
            return true;
        }
        Err(error) => {
            tracing::error!(%error, visitor = %visitor, "outbox_drain_store_unavailable");
            return false;
        }
    }
    summary.conversations += 1;
    let keep_going = drain_conversation(bridge, direction, visitor, deadline, summary).await;
    if let Err(error) = bridge
        .store
        .release_drain_lease(direction, workspace, visitor, until)
        .await
    {
        // It runs out by itself within a minute.
        tracing::warn!(%error, visitor = %visitor, "outbox_lease_not_released");
    }
    keep_going
}

/// One leased conversation, in order, a page at a time. False when the
/// whole drain must stop (out of time, or the table failing).
async fn drain_conversation(
    bridge: &Bridge,
    direction: Direction,
    visitor: &str,
    deadline: Instant,
    summary: &mut DrainSummary,
) -> bool {
    let mut after_seq = 0;
    loop {
        if remaining(deadline) < SEND_ALLOWANCE {
            return false;
        }
        // Read under the lease: what an earlier drain delivered is gone by now.
        let items = match bridge
            .store
            .conversation_outbox(direction, visitor, after_seq, MESSAGE_PAGE)
            .await
        {
            Ok(items) => items,
            Err(error) => {
                tracing::error!(%error, visitor, "outbox_drain_store_unavailable");
                return false;
            }
        };
        let last_page = items.len() < MESSAGE_PAGE as usize;
        for item in items {
            match drain_item(bridge, direction, visitor, item, deadline, summary).await {
                ItemOutcome::Settled { seq } => after_seq = seq,
                ItemOutcome::ConversationWaits => return true,
                ItemOutcome::StopDrain => return false,
            }
        }
        if last_page {
            return true;
        }
    }
}

/// What one waiting message's turn means for its conversation and the drain.
enum ItemOutcome {
    /// Delivered or dead-lettered: its conversation goes on.
    Settled { seq: u64 },
    /// Not due, or failed and rescheduled: the later ones wait behind it.
    ConversationWaits,
    /// Out of time, or the table failing.
    StopDrain,
}

async fn drain_item(
    bridge: &Bridge,
    direction: Direction,
    visitor: &str,
    item: OutboxItem,
    deadline: Instant,
    summary: &mut DrainSummary,
) -> ItemOutcome {
    if remaining(deadline) < SEND_ALLOWANCE {
        return ItemOutcome::StopDrain;
    }
    let now = now_epoch_secs();
    if item.next_attempt_at > now {
        summary.not_due += 1;
        return ItemOutcome::ConversationWaits;
    }
    let booked = if now - item.created_at > GIVE_UP_AFTER_SECS {
        let reason = format!(
            "gave up after 48 h ({} attempts; last error: {})",
            item.attempts,
            item.last_error.as_deref().unwrap_or("none")
        );
        summary.dead_lettered += 1;
        bridge
            .store
            .dead_letter_outbox_item(&item, item.parts_done, &reason)
            .await
    } else {
        match deliver(bridge, &item, deadline).await {
            Delivery::Delivered => {
                summary.delivered += 1;
                bridge.store.finish_outbox_item(&item).await
            }
            Delivery::OutOfTime { parts_done } => {
                let kept = bridge
                    .store
                    .reschedule_outbox_item(
                        &item,
                        parts_done,
                        item.attempts,
                        item.next_attempt_at,
                        item.last_error.as_deref().unwrap_or(""),
                    )
                    .await;
                if let Err(error) = kept {
                    tracing::error!(%error, visitor, "outbox_progress_not_recorded");
                }
                return ItemOutcome::StopDrain;
            }
            Delivery::Failed {
                parts_done,
                failure:
                    Failure::Transient {
                        detail,
                        retry_after,
                    },
            } => {
                let attempts = item.attempts.saturating_add(1);
                let next = retry_at(now_epoch_secs(), attempts, retry_after);
                tracing::warn!(
                    direction = direction.tag(),
                    visitor,
                    seq = item.seq,
                    attempts,
                    retry_in = next - now_epoch_secs(),
                    error = %detail,
                    "outbox_retry_later"
                );
                summary.retried_later += 1;
                let kept = bridge
                    .store
                    .reschedule_outbox_item(&item, parts_done, attempts, next, &detail)
                    .await;
                if let Err(error) = kept {
                    tracing::error!(%error, visitor, "outbox_progress_not_recorded");
                    return ItemOutcome::StopDrain;
                }
                // Later messages of this conversation wait behind it.
                return ItemOutcome::ConversationWaits;
            }
            Delivery::Failed {
                parts_done,
                failure: Failure::Permanent { reason },
            } => {
                tracing::warn!(
                    direction = direction.tag(),
                    visitor,
                    seq = item.seq,
                    reason,
                    "dead_lettered"
                );
                summary.dead_lettered += 1;
                bridge
                    .store
                    .dead_letter_outbox_item(&item, parts_done, &reason)
                    .await
            }
        }
    };
    if let Err(error) = booked {
        // Delivered (or dead) but not recorded: stop before anything else
        // is sent; the record is retried by the next drain.
        tracing::error!(%error, visitor, seq = item.seq, "outbox_outcome_not_recorded");
        return ItemOutcome::StopDrain;
    }
    ItemOutcome::Settled { seq: item.seq }
}

async fn deliver(bridge: &Bridge, item: &OutboxItem, deadline: Instant) -> Delivery {
    match item.direction {
        Direction::ToKefu => deliver_to_kefu(bridge, item, deadline).await,
        Direction::ToSlack => deliver_to_slack(bridge, item, deadline).await,
    }
}

async fn deliver_to_kefu(bridge: &Bridge, item: &OutboxItem, deadline: Instant) -> Delivery {
    let start = item.parts_done;
    let failed = |parts_done: u32, failure: Failure| Delivery::Failed {
        parts_done,
        failure,
    };
    let visitor = match VisitorId::decode(&item.visitor) {
        Ok(visitor) => visitor,
        Err(error) => {
            return failed(
                start,
                Failure::Permanent {
                    reason: format!("not a visitor id: {error}"),
                },
            )
        }
    };
    // The message may have been queued because registering failed.
    if let Err(error) = to_kefu::ensure_registered(bridge, &item.workspace, &visitor).await {
        return failed(start, kefu_failure(&error));
    }
    for (index, body) in item.parts.iter().enumerate().skip(start as usize) {
        let index = index as u32;
        if index > start && remaining(deadline) < SEND_ALLOWANCE {
            return Delivery::OutOfTime { parts_done: index };
        }
        if let Err(error) = to_kefu::send_body(bridge, body.as_bytes(), deadline).await {
            return failed(index, kefu_failure(&error));
        }
    }
    Delivery::Delivered
}

async fn deliver_to_slack(bridge: &Bridge, item: &OutboxItem, deadline: Instant) -> Delivery {
    let start = item.parts_done;
    let permanent = |reason: String| Delivery::Failed {
        parts_done: start,
        failure: Failure::Permanent { reason },
    };
    // The installation is read now, not when the reply was queued: the
    // token may have rotated, the workspace may be gone.
    let installation = match bridge.installation(&item.workspace).await {
        Ok(Some(installation)) => installation,
        Ok(None) => return permanent("workspace uninstalled".into()),
        Err(error) => {
            return Delivery::Failed {
                parts_done: start,
                failure: Failure::Transient {
                    detail: error.to_string(),
                    retry_after: None,
                },
            }
        }
    };
    if installation.needs_reinstall {
        return permanent("workspace needs reinstall: its bot token was refused".into());
    }
    // A question's record comes with its post: `send_posts` stores it.
    let posts: Vec<OutgoingPost> = match item
        .parts
        .iter()
        .map(|part| serde_json::from_str(part))
        .collect()
    {
        Ok(posts) => posts,
        Err(error) => return permanent(format!("unreadable chat.postMessage payload: {error}")),
    };
    let mut carried = Vec::new();
    let sent = to_slack::send_posts(
        bridge,
        &installation,
        &bridge.bot_token(&installation),
        &posts,
        start as usize,
        deadline,
        &mut carried,
    )
    .await;
    // Where the reply went, for a later recall (relay/recalls.rs); best
    // effort, like on the callback's own path.
    if let Err(error) = bridge
        .store
        .remember_slack_posts(&item.workspace, &item.origin, None, &item.visitor, &carried)
        .await
    {
        tracing::warn!(origin = %item.origin, %error, "slack_posts_not_recorded");
    }
    match sent {
        Ok(()) => Delivery::Delivered,
        Err(to_slack::PostFailure { posted, error }) => {
            let parts_done = posted as u32;
            match error {
                to_slack::PostError::OutOfTime => Delivery::OutOfTime { parts_done },
                to_slack::PostError::Slack(error) => {
                    if error.is_auth_failure() {
                        flag_reinstall(bridge, &installation.key).await;
                    }
                    Delivery::Failed {
                        parts_done,
                        failure: slack_failure(&error),
                    }
                }
            }
        }
    }
}

/// Slack refused the bot token: the workspace must reinstall; remember it
/// so nothing else is tried with that token.
pub(crate) async fn flag_reinstall(bridge: &Bridge, key: &crate::store::WorkspaceKey) {
    if let Err(error) = bridge.store.mark_needs_reinstall(key).await {
        tracing::error!(workspace = key.id(), %error, "needs_reinstall_not_recorded");
    }
    bridge.forget_workspace(key);
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_comes_within_10_s_then_doubles_up_to_15_min() {
        for jitter in [0, 1, 7, 999, u16::MAX] {
            let first = backoff_secs(1, jitter);
            assert!((5..=10).contains(&first), "{first}");
            let second = backoff_secs(2, jitter);
            assert!((10..=20).contains(&second), "{second}");
            assert!((450..=900).contains(&backoff_secs(8, jitter)));
            assert!((450..=900).contains(&backoff_secs(u32::MAX, jitter)));
        }
        // Zero failures (a message queued behind others) is treated as one.
        assert!(backoff_secs(0, 3) <= 10);
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap() {
        let now = 1_000;
        assert!(retry_at(now, 1, Some(30)) >= now + 30);
        assert!(retry_at(now, 1, Some(86_400)) <= now + MAX_BACKOFF_SECS);
        assert!(retry_at(now, 1, None) <= now + FIRST_RETRY_MAX_SECS);
    }

    #[test]
    fn failures_are_classified() {
        let transient = |f: Failure| matches!(f, Failure::Transient { .. });
        assert!(transient(kefu_failure(&EasemobError::Unauthorized)));
        assert!(transient(kefu_failure(&EasemobError::Unavailable(
            "x".into()
        ))));
        assert!(transient(kefu_failure(&EasemobError::RateLimited {
            retry_after: Some(3)
        })));
        assert!(transient(kefu_failure(&EasemobError::Rejected {
            status: 403,
            error: "".into()
        })));
        assert!(!transient(kefu_failure(&EasemobError::Rejected {
            status: 400,
            error: "illegal_argument".into()
        })));
        assert!(transient(slack_failure(&SlackApiError::Unavailable(
            "HTTP 500".into()
        ))));
        assert!(transient(slack_failure(&SlackApiError::Api(
            "ratelimited".into()
        ))));
        for code in [
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "invalid_auth",
            "no_text",
        ] {
            assert!(!transient(slack_failure(&SlackApiError::Api(code.into()))));
        }
    }

    #[test]
    fn chunks_keep_order_and_size() {
        let parts: Vec<String> = ["aaaa", "bb", "cccc", "d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let chunks = chunks_within(&parts, 6);
        assert_eq!(chunks, vec![&parts[0..2], &parts[2..4]]);
        assert_eq!(chunks_within(&parts, 2).len(), 4);
        assert_eq!(chunks_within(&[], 6).len(), 1);
    }
}
