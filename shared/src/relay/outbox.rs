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

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde_json::Value;

use crate::bridge::Bridge;
use crate::clock::{now_epoch_millis, spread_bytes};
use crate::dynamo::DynamoError;
use crate::easemob::message::Addressing;
use crate::lambda::Function;
use crate::relay::outcome::{self, DeadLetterCause, FailureKind, LogIds, Outcome, Place};
use crate::relay::pipeline::{remaining, Failure, Recipient, Stop, Stopped};
use crate::relay::reply_parts::SlackConversation;
use crate::relay::to_kefu::KefuVisitor;
use crate::relay::to_slack::AgentIdentity;
use crate::store::{
    Direction, NewOutboxItem, NoticeLanguage, OutboxItem, WaitingConversation, WorkspaceKey,
    MAX_PAYLOAD_BYTES,
};
use crate::visitor::VisitorId;
use crate::wakeup::WakeUp;

/// A drain starts no new send after this much of its invocation: Lambda's
/// timeout is 10 s (template.yaml) and a send may take 2 s.
pub const DRAIN_BUDGET: Duration = Duration::from_secs(8);
/// Time a send is given when deciding whether to start it.
const SEND_ALLOWANCE: Duration = Duration::from_millis(2_000);
/// Conversations one drain works on at once (docs/design.md §2 "When
/// Easemob fails"): enough to keep up with a backlog, few enough to stay
/// inside Slack's and Easemob's rate limits from one instance.
pub const CONVERSATIONS_AT_ONCE: usize = 4;
/// How long a drain holds a conversation: longer than any invocation.
const LEASE_SECS: i64 = 60;
/// Waiting messages (keys and times only) one look at the outbox reads:
/// the drain pages through the conversations, so neither its memory nor
/// the time before its first send grows with the backlog.
const WAITING_PAGE: i32 = 100;
/// A recovery brings waiting conversations forward once per outage, and
/// only after this long without a failure in its direction (docs/design.md
/// §2 "Recovery"): a service still failing in part — a quota, one
/// workspace's errors, a flapping host — keeps everyone's backoff.
const RECOVERY_QUIET_SECS: i64 = 15;
/// An instance asks the table whether to recover at most this often (a
/// backlog's retries succeed one after another).
const RECOVERY_ASK_EVERY_SECS: i64 = 5;
/// A rate limit without `Retry-After` holds recoveries off this long
/// (Easemob's message quota is per minute).
const RATE_LIMIT_HOLD_SECS: i64 = 60;
/// The part of its invocation a recovery may spend bringing conversations
/// forward; those it does not reach keep their own time.
const RECOVERY_BUDGET: Duration = Duration::from_secs(2);
/// Conversations a recovery brings forward at once (a conditional update
/// and a wake-up each).
const BRING_FORWARD_AT_ONCE: usize = 16;
/// One conversation's messages read at a time: payloads are up to 350 KB
/// ([`MAX_PAYLOAD_BYTES`]), and a drain sends only a few within its budget.
const MESSAGE_PAGE: i32 = 10;
/// How long a drain's place in a backlog is remembered for the next drain.
const RESUME_TTL: Duration = Duration::from_secs(600);
/// A message still waiting after this long is given up (dead letter).
pub const GIVE_UP_AFTER_SECS: i64 = 48 * 3_600;
/// The first retry is due at most this long after a failure, so that with
/// the second the failure time is rounded down by and the wake-up's own
/// delivery it still comes within 10 s (docs/design.md §2)…
pub const FIRST_RETRY_MAX_SECS: i64 = 8;
/// …then the wait doubles, up to this.
pub const MAX_BACKOFF_SECS: i64 = 15 * 60;

/// Seconds to wait after the `failures`-th failed attempt: at most
/// [`FIRST_RETRY_MAX_SECS`] after the first, doubling up to 15 min, each drawn from the upper half
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
    (now + backoff_secs(failures, jitter)).max(not_before(now, retry_after).unwrap_or(now))
}

/// The other side's `Retry-After` as a time: no attempt before it, even when
/// a recovery brings the conversation forward.
pub fn not_before(now: i64, retry_after: Option<u64>) -> Option<i64> {
    retry_after.map(|s| now + s.min(MAX_BACKOFF_SECS as u64) as i64)
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
    if bridge.wakeups.is_on() {
        let at = conversation_next_attempt(bridge, &new).await;
        wake_at(bridge, new.direction, &new.workspace, &new.visitor, at).await;
    }
    Ok(())
}

/// When the conversation of a message just queued is next tried: its first
/// waiting message's time, so that a message queued behind a backing-off
/// one wakes the drain when that one is due, not at once to find nothing
/// due (docs/design.md §1 "Retry wake-ups (SQS)"). The message's own time
/// when the table cannot say (the wake-up is best effort).
async fn conversation_next_attempt(bridge: &Bridge, new: &NewOutboxItem) -> i64 {
    match bridge
        .store
        .next_attempt_at(new.direction, &new.visitor)
        .await
    {
        Ok(Some(at)) => at,
        Ok(None) => new.next_attempt_at,
        Err(error) => {
            tracing::warn!(%error, visitor = %new.visitor, "outbox_next_attempt_not_read");
            new.next_attempt_at
        }
    }
}

/// Asks SQS to wake this function's drain for the conversation at `at`
/// (epoch s; docs/design.md §1 "Retry wake-ups (SQS)"). Best effort: the
/// outbox stays the truth and the minute schedule the safety net.
async fn wake_at(
    bridge: &Bridge,
    direction: Direction,
    workspace: &WorkspaceKey,
    visitor: &str,
    at: i64,
) {
    let wake_up = WakeUp {
        direction,
        workspace: workspace.clone(),
        visitor: visitor.to_string(),
    };
    bridge
        .wakeups
        .send(&wake_up, at - bridge.clock.epoch_secs())
        .await;
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
    /// Messages this drain saw waiting (the `OutboxDepth` metric).
    pub waiting_seen: usize,
    /// When the oldest message it saw was queued (epoch s).
    pub oldest_seen_at: Option<i64>,
}

impl DrainSummary {
    /// Counts what waits in a conversation the drain looked at.
    fn saw(&mut self, conversation: &WaitingConversation) {
        self.waiting_seen += conversation.items;
        let oldest = self
            .oldest_seen_at
            .unwrap_or(conversation.oldest_created_at);
        self.oldest_seen_at = Some(oldest.min(conversation.oldest_created_at));
    }

    /// Adds what another part of the same drain did.
    fn add(&mut self, other: &DrainSummary) {
        self.delivered += other.delivered;
        self.retried_later += other.retried_later;
        self.dead_lettered += other.dead_lettered;
        self.conversations += other.conversations;
        self.not_due += other.not_due;
        self.leased_elsewhere += other.leased_elsewhere;
        self.stopped_early |= other.stopped_early;
        self.waiting_seen += other.waiting_seen;
        self.oldest_seen_at = match (self.oldest_seen_at, other.oldest_seen_at) {
            (Some(mine), Some(theirs)) => Some(mine.min(theirs)),
            (mine, theirs) => mine.or(theirs),
        };
    }

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
/// The outbox is read a page at a time, and up to
/// [`CONVERSATIONS_AT_ONCE`] conversations of a page are drained at once,
/// each strictly in order under its own lease: a slow or failing
/// conversation does not hold up the others. A drain that runs out of time
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
    loop {
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
        let seen_before = |conversation: &&WaitingConversation| {
            wrapped
                && resume
                    .as_deref()
                    .is_some_and(|start| conversation.visitor.as_str() > start)
        };
        let turns: Vec<&WaitingConversation> = page
            .conversations
            .iter()
            .take_while(|conversation| !seen_before(conversation))
            .collect();
        for conversation in &turns {
            summary.saw(conversation);
        }
        let reached_start = turns.len() < page.conversations.len();
        let stop = AtomicBool::new(false);
        // The turns are built first and only then streamed: a stream that
        // maps with a borrowing closure is not `Send` (rust-lang/rust#102211).
        let pending: Vec<_> = turns
            .iter()
            .enumerate()
            .map(|(index, conversation)| {
                take_turn(bridge, direction, conversation, index, deadline, &stop)
            })
            .collect();
        let mut results: Vec<Turn> = stream::iter(pending)
            .buffer_unordered(CONVERSATIONS_AT_ONCE)
            .collect()
            .await;
        // Turns start in page order, so those that ran are a prefix of it.
        results.sort_by_key(|turn| turn.index);
        for turn in results {
            summary.add(&turn.summary);
            if turn.ran {
                last_turn = Some(turns[turn.index].visitor.clone());
            }
        }
        if stop.load(Ordering::Relaxed) {
            summary.stopped_early = true;
            break;
        }
        if reached_start {
            break;
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
        waiting_seen = summary.waiting_seen,
        "outbox_drained"
    );
    let oldest_age = summary.oldest_seen_at.map_or(0, |created_at| {
        (bridge.clock.epoch_secs() - created_at).max(0)
    });
    outcome::record_depth(
        &bridge.metrics,
        drain_place(direction),
        summary.waiting_seen,
        oldest_age,
    );
    summary
}

/// One conversation's turn in a drain.
struct Turn {
    /// Its place on the page.
    index: usize,
    /// False when the drain had already stopped before its turn began.
    ran: bool,
    summary: DrainSummary,
}

/// A conversation's turn, unless the drain has stopped; sets `stop` when
/// the whole drain must stop (out of time, or the table failing).
async fn take_turn(
    bridge: &Bridge,
    direction: Direction,
    conversation: &WaitingConversation,
    index: usize,
    deadline: Instant,
    stop: &AtomicBool,
) -> Turn {
    let mut summary = DrainSummary::default();
    if stop.load(Ordering::Relaxed) || remaining(deadline) < SEND_ALLOWANCE {
        stop.store(true, Ordering::Relaxed);
        return Turn {
            index,
            ran: false,
            summary,
        };
    }
    if !drain_waiting(bridge, direction, conversation, deadline, &mut summary).await {
        stop.store(true, Ordering::Relaxed);
    }
    Turn {
        index,
        ran: true,
        summary,
    }
}

/// How draining the one conversation a wake-up names went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationDrain {
    /// Everything due went (or failed and was rescheduled, with its own
    /// wake-up), or nothing was due, or another drain holds it.
    Done,
    /// Due messages are left: out of time, or the table failing. The
    /// wake-up should be seen again.
    Unfinished,
}

/// Drains exactly `workspace`'s conversation with `visitor`, with the same
/// lease, order and paging as a scheduled drain (docs/design.md §1 "Retry
/// wake-ups (SQS)"). Nothing due, nothing done.
pub async fn drain_one(
    bridge: &Bridge,
    direction: Direction,
    workspace: &WorkspaceKey,
    visitor: &str,
    deadline: Instant,
) -> (ConversationDrain, DrainSummary) {
    let mut summary = DrainSummary {
        direction: direction.tag(),
        ..DrainSummary::default()
    };
    let head = match bridge
        .store
        .conversation_outbox(direction, visitor, 0, 1)
        .await
    {
        Ok(items) => items.into_iter().next(),
        Err(error) => {
            tracing::error!(%error, visitor, "outbox_drain_store_unavailable");
            return (ConversationDrain::Unfinished, summary);
        }
    };
    // The outbox is the truth: a wake-up only says where to look.
    let Some(head) = head.filter(|head| head.workspace == *workspace) else {
        return (ConversationDrain::Done, summary);
    };
    let conversation = WaitingConversation {
        workspace: head.workspace,
        visitor: head.visitor,
        items: 1,
        head_seq: head.seq,
        head_next_attempt_at: head.next_attempt_at,
        oldest_created_at: head.created_at,
    };
    let finished = drain_waiting(bridge, direction, &conversation, deadline, &mut summary).await;
    let outcome = if finished {
        ConversationDrain::Done
    } else {
        summary.stopped_early = true;
        ConversationDrain::Unfinished
    };
    (outcome, summary)
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
    let now = bridge.clock.epoch_secs();
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
    let now = bridge.clock.epoch_secs();
    if item.next_attempt_at > now {
        summary.not_due += 1;
        return ItemOutcome::ConversationWaits;
    }
    let tell = |outcome: Outcome, detail: Option<&str>| {
        let ids = LogIds {
            visitor: Some(visitor),
            seq: Some(item.seq),
            detail,
            parts: item.parts.len(),
            ..LogIds::default()
        };
        outcome::record(&bridge.metrics, drain_place(direction), outcome, ids);
    };
    let booked = if now - item.created_at > GIVE_UP_AFTER_SECS {
        let reason = format!(
            "gave up after 48 h ({} attempts; last error: {})",
            item.attempts,
            item.last_error.as_deref().unwrap_or("none")
        );
        tell(
            Outcome::DeadLettered(DeadLetterCause::Expired),
            Some(&reason),
        );
        summary.dead_lettered += 1;
        bridge
            .store
            .dead_letter_outbox_item(&item, item.parts_done, &reason)
            .await
    } else {
        match deliver(bridge, &item, deadline).await {
            Delivery::Delivered => {
                tell(Outcome::Delivered { latency: None }, None);
                summary.delivered += 1;
                let finished = bridge.store.finish_outbox_item(&item).await;
                if item.attempts > 0 && finished.is_ok() {
                    // A retry went through: the other side may be back.
                    bring_forward_after_recovery(bridge, direction, deadline).await;
                }
                finished
            }
            Delivery::OutOfTime { parts_done } => {
                let kept = bridge
                    .store
                    .reschedule_outbox_item(
                        &item,
                        parts_done,
                        item.attempts,
                        item.next_attempt_at,
                        item.not_before,
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
                        kind,
                        detail,
                        retry_after,
                    },
            } => {
                let attempts = item.attempts.saturating_add(1);
                let now = bridge.clock.epoch_secs();
                let next = retry_at(now, attempts, retry_after);
                let not_before = not_before(now, retry_after);
                let told = format!(
                    "attempt {attempts}, retry in {} s: {detail}",
                    next - bridge.clock.epoch_secs()
                );
                tell(Outcome::RetryScheduled(kind), Some(&told));
                summary.retried_later += 1;
                let kept = bridge
                    .store
                    .reschedule_outbox_item(&item, parts_done, attempts, next, not_before, &detail)
                    .await;
                if let Err(error) = kept {
                    tracing::error!(%error, visitor, "outbox_progress_not_recorded");
                    return ItemOutcome::StopDrain;
                }
                note_failure(bridge, direction, kind, retry_after).await;
                wake_at(bridge, direction, &item.workspace, visitor, next).await;
                // Later messages of this conversation wait behind it.
                return ItemOutcome::ConversationWaits;
            }
            Delivery::Failed {
                parts_done,
                failure: Failure::Permanent { kind, reason },
            } => {
                tell(
                    Outcome::DeadLettered(DeadLetterCause::Failed(kind)),
                    Some(&reason),
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

/// Notes a transient failure of `direction`'s other side (docs/design.md
/// §2 "Recovery"): the next retry to go through after a quiet spell brings
/// the waiting conversations forward, and a rate limit holds that off until
/// its `Retry-After` (or a minute) has passed. Best effort, and written at
/// most once a second per instance unless it carries a rate limit.
pub(crate) async fn note_failure(
    bridge: &Bridge,
    direction: Direction,
    kind: FailureKind,
    retry_after: Option<u64>,
) {
    if kind == FailureKind::StoreUnavailable {
        // Our own table, not the other side.
        return;
    }
    let now = bridge.clock.epoch_secs();
    let hold_until = kind
        .is_rate_limit()
        .then(|| not_before(now, retry_after).unwrap_or(now + RATE_LIMIT_HOLD_SECS));
    let noted_lately = bridge
        .memo
        .failures_noted
        .get(&direction, Duration::from_secs(1))
        .is_some_and(|at| at == now);
    if noted_lately && hold_until.is_none() {
        return;
    }
    match bridge.store.mark_failure(direction, now, hold_until).await {
        Ok(()) => bridge.memo.failures_noted.put(direction, now),
        Err(error) => {
            tracing::warn!(direction = direction.tag(), %error, "outbox_failure_not_noted")
        }
    }
}

/// After a retry succeeded, the other side may be back: when no failure
/// came for a while and none is held off by a rate limit, every other
/// waiting conversation of `direction` that is backing off is made due now
/// and its drain woken, so the backlog goes out at once rather than each
/// conversation sitting out its backoff (up to 15 min) — once per outage
/// across instances, never against a `Retry-After` (docs/design.md §2
/// "Recovery"). Within [`RECOVERY_BUDGET`] of the invocation; what it does
/// not reach keeps its own time.
async fn bring_forward_after_recovery(bridge: &Bridge, direction: Direction, deadline: Instant) {
    let started = Instant::now();
    let until =
        (started + RECOVERY_BUDGET).min(deadline.checked_sub(SEND_ALLOWANCE).unwrap_or(started));
    let now = bridge.clock.epoch_secs();
    let asked = Duration::from_secs(RECOVERY_ASK_EVERY_SECS as u64);
    if let Some(at) = bridge.memo.recoveries.get(&direction, asked) {
        if now - at < RECOVERY_ASK_EVERY_SECS {
            return;
        }
    }
    let marked = bridge
        .store
        .mark_recovery(direction, now, RECOVERY_QUIET_SECS)
        .await;
    if marked.is_ok() {
        bridge.memo.recoveries.put(direction, now);
    }
    match marked {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(direction = direction.tag(), %error, "outbox_recovery_not_marked");
            return;
        }
    }
    let mut brought = 0;
    let mut after: Option<String> = None;
    let mut complete = false;
    while Instant::now() < until {
        let page = match bridge
            .store
            .waiting_conversations(direction, after.as_deref(), WAITING_PAGE)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(direction = direction.tag(), %error, "outbox_recovery_store_unavailable");
                break;
            }
        };
        // A page ends after a whole conversation, so each conversation
        // here starts with its first waiting message: the one that backs off.
        let backing_off: Vec<_> = page
            .conversations
            .iter()
            .filter(|c| c.head_next_attempt_at > now)
            .map(|c| bring_one_forward(bridge, direction, c, now, until))
            .collect();
        brought += stream::iter(backing_off)
            .buffer_unordered(BRING_FORWARD_AT_ONCE)
            .filter(|done| std::future::ready(*done))
            .count()
            .await;
        match page.conversations.last() {
            Some(last) if page.more => after = Some(last.visitor.clone()),
            _ => {
                complete = Instant::now() < until;
                break;
            }
        }
    }
    tracing::info!(
        direction = direction.tag(),
        conversations = brought,
        complete,
        took_ms = started.elapsed().as_millis() as u64,
        "outbox_brought_forward"
    );
}

/// One backing-off conversation made due now and its drain woken, unless
/// the recovery's time is up; false when it was not (out of time, changed
/// meanwhile, or waiting for its own `Retry-After`).
async fn bring_one_forward(
    bridge: &Bridge,
    direction: Direction,
    conversation: &WaitingConversation,
    now: i64,
    until: Instant,
) -> bool {
    if Instant::now() >= until {
        return false;
    }
    let brought = bridge
        .store
        .bring_forward(
            direction,
            &conversation.visitor,
            conversation.head_seq,
            conversation.head_next_attempt_at,
            now,
        )
        .await;
    match brought {
        Ok(true) => {
            wake_at(
                bridge,
                direction,
                &conversation.workspace,
                &conversation.visitor,
                now,
            )
            .await;
            true
        }
        Ok(false) => false,
        Err(error) => {
            tracing::warn!(visitor = %conversation.visitor, %error, "outbox_recovery_store_unavailable");
            false
        }
    }
}

/// Where a drain's outcomes are told: each direction is drained by the
/// function that receives its messages (docs/design.md §1; lambda.rs).
fn drain_place(direction: Direction) -> Place {
    Place {
        function: Function::draining(direction),
        direction,
        event: "outbox_item",
    }
}

async fn deliver(bridge: &Bridge, item: &OutboxItem, deadline: Instant) -> Delivery {
    let permanent = |kind: FailureKind, reason: String| Delivery::Failed {
        parts_done: item.parts_done,
        failure: Failure::Permanent { kind, reason },
    };
    let visitor = match VisitorId::decode(&item.visitor) {
        Ok(visitor) => visitor,
        Err(error) => {
            let kind = match item.direction {
                Direction::ToKefu => FailureKind::KefuRejected,
                Direction::ToSlack => FailureKind::SlackRejected,
            };
            return permanent(kind, format!("not a visitor id: {error}"));
        }
    };
    match item.direction {
        Direction::ToKefu => {
            // A stored body names its sender and recipient itself: send it
            // only as this conversation's visitor, to this service number.
            let from = visitor.to_string();
            let service = &bridge.config.easemob_im_service_number;
            let skip = item.parts_done as usize;
            if let Some(index) = item
                .parts
                .iter()
                .skip(skip)
                .position(|part| !Addressing::is_from_to(part.as_bytes(), &from, service))
            {
                return permanent(
                    FailureKind::KefuRejected,
                    format!(
                        "stored part {} is not a message from {from} to the service number",
                        skip + index + 1
                    ),
                );
            }
            let mut kefu = KefuVisitor {
                workspace: &item.workspace,
                visitor: &visitor,
                allowance: SEND_ALLOWANCE,
            };
            send_stored(bridge, &mut kefu, item, deadline).await
        }
        Direction::ToSlack => {
            // The installation is read now, not when the reply was
            // queued: the token may have rotated, the workspace may be gone.
            let installation = match bridge.installation(&item.workspace).await {
                Ok(Some(installation)) => installation,
                Ok(None) => {
                    return permanent(FailureKind::TokenRefused, "workspace uninstalled".into())
                }
                Err(error) => {
                    return Delivery::Failed {
                        parts_done: item.parts_done,
                        failure: Failure::Transient {
                            kind: FailureKind::StoreUnavailable,
                            detail: error.to_string(),
                            retry_after: None,
                        },
                    }
                }
            };
            if installation.needs_reinstall {
                return permanent(
                    FailureKind::TokenRefused,
                    "workspace needs reinstall: its bot token was refused".into(),
                );
            }
            // The posts carry their channel, thread and author; files never
            // wait here (their line does), so the destination is only the
            // conversation's channel.
            let agent = AgentIdentity::default();
            let mut slack = SlackConversation {
                installation: &installation,
                agent: &agent,
                channel: visitor.channel().as_str(),
                thread_ts: None,
                language: NoticeLanguage::default(),
                origin: &item.origin,
                kefu_msg_id: None,
                visitor: item.visitor.clone(),
                carried: Vec::new(),
            };
            send_stored(bridge, &mut slack, item, deadline).await
        }
    }
}

/// Sends what is left of a waiting message through its recipient.
async fn send_stored<R: Recipient>(
    bridge: &Bridge,
    recipient: &mut R,
    item: &OutboxItem,
    deadline: Instant,
) -> Delivery {
    let parts: Vec<R::Part> = match item.parts.iter().map(|p| R::from_stored(p)).collect() {
        Ok(parts) => parts,
        Err(failure) => {
            return Delivery::Failed {
                parts_done: item.parts_done,
                failure,
            }
        }
    };
    let sent = recipient
        .send(bridge, &parts, item.parts_done as usize, deadline)
        .await;
    recipient.finish(bridge, None).await;
    match sent {
        Ok(()) => Delivery::Delivered,
        Err(Stopped { done, why }) => {
            let parts_done = done as u32;
            match why {
                Stop::OutOfTime => Delivery::OutOfTime { parts_done },
                Stop::Failed(error) => Delivery::Failed {
                    parts_done,
                    failure: R::classify(&error),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_is_due_within_8_s_then_doubles_up_to_15_min() {
        for jitter in [0, 1, 7, 999, u16::MAX] {
            let first = backoff_secs(1, jitter);
            assert!((4..=8).contains(&first), "{first}");
            let second = backoff_secs(2, jitter);
            assert!((8..=16).contains(&second), "{second}");
            assert!((450..=900).contains(&backoff_secs(8, jitter)));
            assert!((450..=900).contains(&backoff_secs(u32::MAX, jitter)));
        }
        // Zero failures (a message queued behind others) is treated as one.
        assert!(backoff_secs(0, 3) <= 8);
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap() {
        let now = 1_000;
        assert!(retry_at(now, 1, Some(30)) >= now + 30);
        assert!(retry_at(now, 1, Some(86_400)) <= now + MAX_BACKOFF_SECS);
        assert!(retry_at(now, 1, None) <= now + FIRST_RETRY_MAX_SECS);
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
