//! The durable outbox (issue "durable delivery"): messages a downstream
//! service did not take yet, kept until a scheduled drain delivers them, in
//! order per conversation, and dead letters for the ones that can never go.
//!
//! | record | pk | sk |
//! |---|---|---|
//! | waiting message | `OUTBOX` | `<dir>#<visitor id>#<seq, 12 digits>` |
//! | dead letter | `DEADLETTER` | `<dir>#<visitor id>#<seq, 12 digits>` |
//! | a direction's last recovery | `RECOVERY` | `TO_KEFU` / `TO_SLACK` |
//!
//! One partition each, so a drain is one Query and the dead letters are one
//! `aws dynamodb query`. Sort keys group a conversation's messages together,
//! in the order they were accepted.
//!
//! Per conversation, the conversation record (`WORKSPACE#…`,
//! `CONVERSATION#<visitor>`) carries for each direction how many messages
//! wait (`<dir>_pending`), the last sequence number handed out
//! (`<dir>_next_seq`) and the drain's lease (`<dir>_lease_until`). The
//! pending count changes only in the same transaction that puts or removes
//! an outbox record, so "nothing waits" is a condition on the conversation
//! record alone, which the warm path checks in the claim's transaction
//! (store/claims.rs, docs/design.md §4 "Delivery pipeline").

use aws_sdk_dynamodb::types::{Delete, Put, ReturnValue, TransactWriteItem, Update};

use super::{built, Store, WorkspaceKey};
use crate::clock::now_epoch_secs;
use crate::dynamo::item::{num_attr, str_attr, str_list_attr};
use crate::dynamo::{condition_held, DynamoError, Item, ItemExt};

/// How long a dead letter stays for an operator to look at.
pub const DEAD_LETTER_TTL_SECS: i64 = 30 * 24 * 3_600;
/// An outbox record must stay well inside DynamoDB's 400 KB item limit.
pub const MAX_PAYLOAD_BYTES: usize = 350_000;

const OUTBOX_PK: &str = "OUTBOX";
const DEAD_LETTER_PK: &str = "DEADLETTER";
/// One record per direction: when its other side last recovered.
const RECOVERY_PK: &str = "RECOVERY";
/// Sorts after every character a sort key holds: `<prefix>` + this is past
/// every key that starts with `<prefix>`.
const AFTER_ALL: char = char::MAX;

/// Which way a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A Slack user's message on its way to Kefu (drained by `slack-events`).
    ToKefu,
    /// An agent's reply on its way to Slack (drained by `easemob-callback`).
    ToSlack,
}

impl Direction {
    /// The sort-key prefix: `TO_KEFU` / `TO_SLACK`.
    pub fn tag(self) -> &'static str {
        match self {
            Direction::ToKefu => "TO_KEFU",
            Direction::ToSlack => "TO_SLACK",
        }
    }

    /// The direction a sort-key prefix names.
    fn from_tag(tag: &str) -> Option<Self> {
        match tag {
            "TO_KEFU" => Some(Direction::ToKefu),
            "TO_SLACK" => Some(Direction::ToSlack),
            _ => None,
        }
    }

    /// The prefix of this direction's attributes on the conversation record.
    pub(super) fn attr(self, name: &str) -> String {
        match self {
            Direction::ToKefu => format!("to_kefu_{name}"),
            Direction::ToSlack => format!("to_slack_{name}"),
        }
    }
}

/// What the conversation record says about one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lane {
    /// Messages waiting in the outbox (never read as below zero).
    pub pending: i64,
    /// Until when a drain holds this conversation (epoch s; 0: nobody).
    pub lease_until: i64,
}

/// The conversation record: the thread replies go to, and the outbox state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    pub thread_ts: Option<String>,
    pub to_kefu: Lane,
    pub to_slack: Lane,
}

impl Conversation {
    pub fn lane(&self, direction: Direction) -> Lane {
        match direction {
            Direction::ToKefu => self.to_kefu,
            Direction::ToSlack => self.to_slack,
        }
    }

    fn from_item(item: &Item) -> Self {
        let lane = |direction: Direction| Lane {
            pending: item.n(&direction.attr("pending")).unwrap_or(0).max(0),
            lease_until: item.n(&direction.attr("lease_until")).unwrap_or(0),
        };
        Self {
            thread_ts: item.s("thread_ts").map(str::to_string),
            to_kefu: lane(Direction::ToKefu),
            to_slack: lane(Direction::ToSlack),
        }
    }
}

/// What an outbox record holds, borrowed from a new message or a replayed
/// dead letter.
struct Queued<'a> {
    direction: Direction,
    workspace: &'a WorkspaceKey,
    visitor: &'a str,
    seq: u64,
    parts: &'a [String],
    parts_done: u32,
    attempts: u32,
    next_attempt_at: i64,
    not_before: Option<i64>,
    origin: &'a str,
    last_error: Option<&'a str>,
}

/// A message to put in the outbox (or straight into the dead letters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxItem {
    pub direction: Direction,
    pub workspace: WorkspaceKey,
    pub visitor: String,
    /// The prepared requests still to send, in order: Easemob message bodies
    /// (TO_KEFU) or `chat.postMessage` arguments (TO_SLACK), as JSON text.
    pub parts: Vec<String>,
    /// The Slack `event_id` or Easemob `msg_id` it came from.
    pub origin: String,
    /// Why it is here (the failure that made the sender give up), if any.
    pub last_error: Option<String>,
    /// Failed attempts so far (0 when it only queues behind others).
    pub attempts: u32,
    /// When a drain may first try it (epoch s).
    pub next_attempt_at: i64,
    /// The other side's `Retry-After` as a time (epoch s): no attempt before
    /// it, even when a recovery brings the conversation forward.
    pub not_before: Option<i64>,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub direction: Direction,
    pub workspace: WorkspaceKey,
    pub visitor: String,
    pub seq: u64,
    pub parts: Vec<String>,
    /// Parts of `parts` already delivered by earlier attempts.
    pub parts_done: u32,
    pub attempts: u32,
    pub next_attempt_at: i64,
    /// See [`NewOutboxItem::not_before`].
    pub not_before: Option<i64>,
    pub created_at: i64,
    pub origin: String,
    pub last_error: Option<String>,
}

impl OutboxItem {
    pub fn sort_key(&self) -> String {
        sort_key(self.direction, &self.visitor, self.seq)
    }

    fn from_item(item: &Item) -> Option<Self> {
        let sk = item.s("sk")?;
        let (tag, rest) = sk.split_once('#')?;
        let direction = Direction::from_tag(tag)?;
        let (visitor, seq) = rest.rsplit_once('#')?;
        let parts = item.str_list("parts").unwrap_or_default();
        let count = |name: &str| item.n(name).unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
        Some(Self {
            direction,
            workspace: WorkspaceKey::from_id(item.s("workspace").unwrap_or_default()),
            visitor: visitor.to_string(),
            seq: seq.parse().ok()?,
            parts,
            parts_done: count("parts_done"),
            attempts: count("attempts"),
            next_attempt_at: item.n("next_attempt_at").unwrap_or(0),
            not_before: item.n("not_before"),
            created_at: item.n("created_at").unwrap_or(0),
            origin: item.s("origin").unwrap_or_default().to_string(),
            last_error: item.s("last_error").map(str::to_string),
        })
    }
}

/// One conversation with messages waiting, as the drain's first look sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingConversation {
    pub workspace: WorkspaceKey,
    pub visitor: String,
    /// Its messages on this page (the last conversation of a page may
    /// have more on the next).
    pub items: usize,
    /// The first waiting message's sequence number, and when it may be
    /// tried (the rest wait behind it).
    pub head_seq: u64,
    pub head_next_attempt_at: i64,
    /// When the oldest of its messages on this page was queued (epoch s).
    pub oldest_created_at: i64,
}

/// One page of [`Store::waiting_conversations`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitingPage {
    pub conversations: Vec<WaitingConversation>,
    /// More conversations may wait after the last one.
    pub more: bool,
}

/// A dead letter as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub item: OutboxItem,
    pub reason: String,
    pub dead_at: i64,
}

/// A dead letter's name for operators (`kefu-bridge-admin dead-letters
/// replay <ID>`): its sort key, `<TO_KEFU|TO_SLACK>#<visitor id>#<seq>`,
/// the same text `aws dynamodb query` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterId {
    direction: Direction,
    visitor: String,
    seq: u64,
}

impl DeadLetterId {
    /// `None` unless `raw` names a dead letter the way `Display` writes it.
    pub fn parse(raw: &str) -> Option<Self> {
        let (tag, rest) = raw.trim().split_once('#')?;
        let (visitor, seq) = rest.rsplit_once('#')?;
        let well_formed = !visitor.is_empty()
            && !visitor.contains('#')
            && !visitor.chars().any(char::is_control)
            && (1..=12).contains(&seq.len())
            && seq.bytes().all(|b| b.is_ascii_digit());
        well_formed.then_some(())?;
        Some(Self {
            direction: Direction::from_tag(tag)?,
            visitor: visitor.to_string(),
            seq: seq.parse().ok()?,
        })
    }

    fn sort_key(&self) -> String {
        sort_key(self.direction, &self.visitor, self.seq)
    }
}

impl std::fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sort_key())
    }
}

impl DeadLetter {
    pub fn id(&self) -> DeadLetterId {
        DeadLetterId {
            direction: self.item.direction,
            visitor: self.item.visitor.clone(),
            seq: self.item.seq,
        }
    }

    fn from_record(record: &Item) -> Option<Self> {
        Some(DeadLetter {
            item: OutboxItem::from_item(record)?,
            reason: record.s("reason").unwrap_or_default().to_string(),
            dead_at: record.n("dead_at").unwrap_or(0),
        })
    }
}

pub fn sort_key(direction: Direction, visitor: &str, seq: u64) -> String {
    format!("{}#{visitor}#{seq:012}", direction.tag())
}

pub(super) fn conversation_key(workspace: &WorkspaceKey, visitor: &str) -> Item {
    Store::key(workspace.pk(), format!("CONVERSATION#{visitor}"))
}

/// Which end of a conversation's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    First,
    Last,
}

/// The sort keys of one conversation's messages lie in `[first, last]`.
fn conversation_range(direction: Direction, visitor: &str) -> (String, String) {
    let prefix = format!("{}#{visitor}#", direction.tag());
    (prefix.clone(), format!("{prefix}{AFTER_ALL}"))
}

impl Store {
    /// The conversation record (strongly consistent); a missing one reads as
    /// "top level, nothing waiting".
    pub async fn get_conversation(
        &self,
        workspace: &WorkspaceKey,
        visitor: &str,
    ) -> Result<Conversation, DynamoError> {
        let item = self.get(conversation_key(workspace, visitor)).await?;
        Ok(item
            .as_ref()
            .map(Conversation::from_item)
            .unwrap_or_default())
    }

    /// Puts `new` in the outbox behind the conversation's other waiting
    /// messages; returns its sequence number. Two calls: the next sequence
    /// number, then one transaction that writes the record and counts it as
    /// pending (so the count never disagrees with the records). A sequence
    /// number taken by a write that then failed is only a gap.
    pub async fn enqueue(&self, new: &NewOutboxItem) -> Result<u64, DynamoError> {
        let mut seq = self
            .next_seq(new.direction, &new.workspace, &new.visitor)
            .await?;
        for _ in 0..2 {
            let queued = Queued {
                direction: new.direction,
                workspace: &new.workspace,
                visitor: &new.visitor,
                seq,
                parts: &new.parts,
                parts_done: 0,
                attempts: new.attempts,
                next_attempt_at: new.next_attempt_at,
                not_before: new.not_before,
                origin: &new.origin,
                last_error: new.last_error.as_deref(),
            };
            let result = self
                .transact(self.queue_writes(&queued, now_epoch_secs())?.into())
                .await;
            match result {
                Ok(()) => return Ok(seq),
                // The counter restarted (its record was deleted while
                // messages waited): continue after the last one stored.
                Err(DynamoError::ConditionalCheckFailed(_)) => {
                    tracing::warn!(visitor = %new.visitor, seq, "outbox_sequence_reseeded");
                    seq = self.reseed_seq(new).await?;
                }
                Err(error) => return Err(error),
            }
        }
        Err(DynamoError::Unavailable(
            "outbox sequence kept colliding".into(),
        ))
    }

    /// The two writes that put a message in its conversation's queue: the
    /// outbox record (never overwriting one) and the conversation's pending
    /// count, for one transaction, so the count never disagrees with the
    /// records.
    fn queue_writes(
        &self,
        queued: &Queued<'_>,
        now: i64,
    ) -> Result<[TransactWriteItem; 2], DynamoError> {
        let mut record = Self::key(
            OUTBOX_PK,
            sort_key(queued.direction, queued.visitor, queued.seq),
        );
        record.extend([
            ("direction".into(), str_attr(queued.direction.tag())),
            ("workspace".into(), str_attr(queued.workspace.id())),
            ("visitor".into(), str_attr(queued.visitor)),
            ("parts".into(), str_list_attr(queued.parts)),
            ("parts_done".into(), num_attr(i64::from(queued.parts_done))),
            ("attempts".into(), num_attr(i64::from(queued.attempts))),
            ("next_attempt_at".into(), num_attr(queued.next_attempt_at)),
            ("created_at".into(), num_attr(now)),
            ("origin".into(), str_attr(queued.origin)),
        ]);
        if let Some(error) = queued.last_error {
            record.insert("last_error".into(), str_attr(truncated(error, 1_000)));
        }
        if let Some(not_before) = queued.not_before {
            record.insert("not_before".into(), num_attr(not_before));
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(built)?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(conversation_key(queued.workspace, queued.visitor)))
            .update_expression("ADD #pending :one SET updated_at = :now")
            .expression_attribute_names("#pending", queued.direction.attr("pending"))
            .expression_attribute_values(":one", num_attr(1))
            .expression_attribute_values(":now", num_attr(now))
            .build()
            .map_err(built)?;
        Ok([
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(count).build(),
        ])
    }

    async fn next_seq(
        &self,
        direction: Direction,
        workspace: &WorkspaceKey,
        visitor: &str,
    ) -> Result<u64, DynamoError> {
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(conversation_key(workspace, visitor)))
            .update_expression("ADD #seq :one")
            .expression_attribute_names("#seq", direction.attr("next_seq"))
            .expression_attribute_values(":one", num_attr(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await?;
        out.attributes
            .and_then(|a| a.n(&direction.attr("next_seq")))
            .map(|n| n.max(1) as u64)
            .ok_or_else(|| DynamoError::Unavailable("UpdateItem returned no next_seq".into()))
    }

    /// Sets the counter past the conversation's last stored sequence number.
    async fn reseed_seq(&self, new: &NewOutboxItem) -> Result<u64, DynamoError> {
        let last = self
            .conversation_end(new.direction, &new.visitor, End::Last, "sk")
            .await?
            .and_then(|item| item.s("sk")?.rsplit('#').next()?.parse().ok())
            .unwrap_or(0u64);
        let next = last + 1;
        self.db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(conversation_key(&new.workspace, &new.visitor)))
            .update_expression("SET #seq = :next")
            .expression_attribute_names("#seq", new.direction.attr("next_seq"))
            .expression_attribute_values(":next", num_attr(next as i64))
            .send()
            .await?;
        Ok(next)
    }

    /// The conversations with messages waiting in `direction`, in sort-key
    /// order, starting after the conversation `after` (`None`: from the
    /// first), from a light Query (keys and times only) that reads at most
    /// `limit` waiting messages.
    pub async fn waiting_conversations(
        &self,
        direction: Direction,
        after: Option<&str>,
        limit: i32,
    ) -> Result<WaitingPage, DynamoError> {
        let first = match after {
            Some(visitor) => conversation_range(direction, visitor).1,
            None => format!("{}#", direction.tag()),
        };
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", str_attr(OUTBOX_PK))
            .expression_attribute_values(":first", str_attr(first))
            .expression_attribute_values(
                ":last",
                str_attr(format!("{}#{AFTER_ALL}", direction.tag())),
            )
            .projection_expression("sk, workspace, next_attempt_at, created_at")
            .limit(limit)
            .consistent_read(true)
            .send()
            .await?;
        let mut page = WaitingPage {
            conversations: Vec::new(),
            more: out.last_evaluated_key.is_some_and(|key| !key.is_empty()),
        };
        for item in out.items.unwrap_or_default() {
            let Some((visitor, seq)) = item
                .s("sk")
                .and_then(|sk| sk.split_once('#'))
                .and_then(|(_, rest)| rest.rsplit_once('#'))
                .and_then(|(visitor, seq)| Some((visitor, seq.parse::<u64>().ok()?)))
            else {
                continue;
            };
            let created_at = item.n("created_at").unwrap_or(0);
            match page.conversations.last_mut() {
                Some(last) if last.visitor == visitor => {
                    last.items += 1;
                    last.oldest_created_at = last.oldest_created_at.min(created_at);
                }
                _ => page.conversations.push(WaitingConversation {
                    workspace: WorkspaceKey::from_id(item.s("workspace").unwrap_or_default()),
                    visitor: visitor.to_string(),
                    items: 1,
                    head_seq: seq,
                    head_next_attempt_at: item.n("next_attempt_at").unwrap_or(0),
                    oldest_created_at: created_at,
                }),
            }
        }
        Ok(page)
    }

    /// Up to `limit` of one conversation's waiting messages, in order, after
    /// sequence number `after_seq` (read under its lease). Fewer than
    /// `limit` means none wait after them.
    pub async fn conversation_outbox(
        &self,
        direction: Direction,
        visitor: &str,
        after_seq: u64,
        limit: i32,
    ) -> Result<Vec<OutboxItem>, DynamoError> {
        let (_, last) = conversation_range(direction, visitor);
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", str_attr(OUTBOX_PK))
            .expression_attribute_values(
                ":first",
                str_attr(sort_key(direction, visitor, after_seq.saturating_add(1))),
            )
            .expression_attribute_values(":last", str_attr(last))
            .limit(limit)
            .consistent_read(true)
            .send()
            .await?;
        Ok(out
            .items()
            .iter()
            .filter_map(OutboxItem::from_item)
            .collect())
    }

    /// When the conversation's next attempt is due: its first waiting
    /// message's `next_attempt_at` (later ones wait behind it); `None` when
    /// nothing waits. Reads the time alone, never the payload.
    pub async fn next_attempt_at(
        &self,
        direction: Direction,
        visitor: &str,
    ) -> Result<Option<i64>, DynamoError> {
        let first = self
            .conversation_end(direction, visitor, End::First, "next_attempt_at")
            .await?;
        Ok(first.and_then(|item| item.n("next_attempt_at")))
    }

    /// The `projection` of one end of a conversation's waiting messages
    /// (one strongly consistent Query with `Limit` 1).
    async fn conversation_end(
        &self,
        direction: Direction,
        visitor: &str,
        end: End,
        projection: &str,
    ) -> Result<Option<Item>, DynamoError> {
        let (first, last) = conversation_range(direction, visitor);
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", str_attr(OUTBOX_PK))
            .expression_attribute_values(":first", str_attr(first))
            .expression_attribute_values(":last", str_attr(last))
            .projection_expression(projection)
            .scan_index_forward(end == End::First)
            .limit(1)
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.items.unwrap_or_default().into_iter().next())
    }

    /// Takes the drain lease of one conversation in one direction until
    /// `until`; false when another drain holds it.
    pub async fn take_drain_lease(
        &self,
        direction: Direction,
        workspace: &WorkspaceKey,
        visitor: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, DynamoError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(conversation_key(workspace, visitor)))
            .update_expression("SET #lease = :until")
            .condition_expression("attribute_not_exists(#lease) OR #lease < :now")
            .expression_attribute_names("#lease", direction.attr("lease_until"))
            .expression_attribute_values(":until", num_attr(until))
            .expression_attribute_values(":now", num_attr(now))
            .send()
            .await;
        condition_held(result.map_err(DynamoError::from))
    }

    /// Gives the lease back, unless it ran out and another drain took it.
    pub async fn release_drain_lease(
        &self,
        direction: Direction,
        workspace: &WorkspaceKey,
        visitor: &str,
        held_until: i64,
    ) -> Result<(), DynamoError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(conversation_key(workspace, visitor)))
            .update_expression("SET #lease = :zero")
            .condition_expression("#lease = :held")
            .expression_attribute_names("#lease", direction.attr("lease_until"))
            .expression_attribute_values(":zero", num_attr(0))
            .expression_attribute_values(":held", num_attr(held_until))
            .send()
            .await;
        // Nothing to change when the condition does not hold.
        condition_held(result.map_err(DynamoError::from)).map(|_| ())
    }

    /// A delivered message leaves the outbox and stops counting as pending.
    pub async fn finish_outbox_item(&self, item: &OutboxItem) -> Result<(), DynamoError> {
        self.transact(vec![
            self.delete_outbox_op(item)?,
            self.pending_down_op(item)?,
        ])
        .await
    }

    /// Records a failed or unfinished attempt: progress, attempts, when to
    /// try next and why; `not_before` is the other side's `Retry-After` as
    /// a time, if it gave one.
    pub async fn reschedule_outbox_item(
        &self,
        item: &OutboxItem,
        parts_done: u32,
        attempts: u32,
        next_attempt_at: i64,
        not_before: Option<i64>,
        last_error: &str,
    ) -> Result<(), DynamoError> {
        let set = "SET parts_done = :done, attempts = :attempts, next_attempt_at = :next, last_error = :error";
        let request = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(OUTBOX_PK, item.sort_key())))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":done", num_attr(i64::from(parts_done)))
            .expression_attribute_values(":attempts", num_attr(i64::from(attempts)))
            .expression_attribute_values(":next", num_attr(next_attempt_at))
            .expression_attribute_values(":error", str_attr(truncated(last_error, 1_000)));
        let request = match not_before {
            Some(at) => request
                .update_expression(format!("{set}, not_before = :not_before"))
                .expression_attribute_values(":not_before", num_attr(at)),
            None => request.update_expression(format!("{set} REMOVE not_before")),
        };
        request.send().await?;
        Ok(())
    }

    /// Notes that `direction`'s other side failed a send just now (a
    /// transient failure), and, for a rate limit, holds recoveries off until
    /// `hold_until` (never shortening a longer hold).
    pub async fn mark_failure(
        &self,
        direction: Direction,
        now: i64,
        hold_until: Option<i64>,
    ) -> Result<(), DynamoError> {
        let update = |set: &str| {
            self.db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(RECOVERY_PK, direction.tag())))
                .update_expression(format!("SET failed_at = :now, expires_at = :expires{set}"))
                .expression_attribute_values(":now", num_attr(now))
                .expression_attribute_values(":expires", num_attr(now + 24 * 3_600))
        };
        if let Some(hold) = hold_until {
            let held = update(", hold_until = :hold")
                .condition_expression("attribute_not_exists(hold_until) OR hold_until < :hold")
                .expression_attribute_values(":hold", num_attr(hold))
                .send()
                .await;
            // A longer hold stands: the failure is still noted below.
            if condition_held(held.map_err(DynamoError::from))? {
                return Ok(());
            }
        }
        update("").send().await?;
        Ok(())
    }

    /// Marks that `direction`'s other side answered again: true for the one
    /// caller across all instances that should bring the waiting
    /// conversations forward — when a failure was noted since the last
    /// recovery, none came in the last `quiet_secs`, and no rate limit holds
    /// recoveries off (a conditional write; docs/design.md §2 "Recovery").
    pub async fn mark_recovery(
        &self,
        direction: Direction,
        now: i64,
        quiet_secs: i64,
    ) -> Result<bool, DynamoError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(RECOVERY_PK, direction.tag())))
            .update_expression("SET recovered_at = :now")
            .condition_expression(
                "failed_at <= :quiet \
                 AND (attribute_not_exists(recovered_at) OR recovered_at < failed_at) \
                 AND (attribute_not_exists(hold_until) OR hold_until <= :now)",
            )
            .expression_attribute_values(":now", num_attr(now))
            .expression_attribute_values(":quiet", num_attr(now - quiet_secs))
            .send()
            .await;
        condition_held(result.map_err(DynamoError::from))
    }

    /// Makes a conversation's first waiting message due at `now`, unless it
    /// changed since it was read as due at `seen_next_attempt_at` (a drain
    /// got to it) or the other side asked for a later time (`not_before`).
    /// True when it was brought forward.
    pub async fn bring_forward(
        &self,
        direction: Direction,
        visitor: &str,
        seq: u64,
        seen_next_attempt_at: i64,
        now: i64,
    ) -> Result<bool, DynamoError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(OUTBOX_PK, sort_key(direction, visitor, seq))))
            .update_expression("SET next_attempt_at = :now")
            .condition_expression(
                "next_attempt_at = :seen AND (attribute_not_exists(not_before) OR not_before <= :now)",
            )
            .expression_attribute_values(":seen", num_attr(seen_next_attempt_at))
            .expression_attribute_values(":now", num_attr(now))
            .send()
            .await;
        condition_held(result.map_err(DynamoError::from))
    }

    /// Moves a waiting message to the dead letters, in one transaction.
    pub async fn dead_letter_outbox_item(
        &self,
        item: &OutboxItem,
        parts_done: u32,
        reason: &str,
    ) -> Result<(), DynamoError> {
        let mut letter = dead_letter_record(
            item.direction,
            &item.workspace,
            &item.visitor,
            item.seq,
            &item.parts,
            &item.origin,
            reason,
        );
        letter.insert("parts_done".into(), num_attr(i64::from(parts_done)));
        letter.insert("attempts".into(), num_attr(i64::from(item.attempts)));
        letter.insert("created_at".into(), num_attr(item.created_at));
        if let Some(error) = &item.last_error {
            letter.insert("last_error".into(), str_attr(error.as_str()));
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(letter))
            .build()
            .map_err(built)?;
        self.transact(vec![
            TransactWriteItem::builder().put(put).build(),
            self.delete_outbox_op(item)?,
            self.pending_down_op(item)?,
        ])
        .await
    }

    /// A message that failed for good before it ever waited in the outbox.
    pub async fn dead_letter_new(
        &self,
        new: &NewOutboxItem,
        reason: &str,
    ) -> Result<(), DynamoError> {
        let seq = self
            .next_seq(new.direction, &new.workspace, &new.visitor)
            .await?;
        let mut letter = dead_letter_record(
            new.direction,
            &new.workspace,
            &new.visitor,
            seq,
            &new.parts,
            &new.origin,
            reason,
        );
        letter.insert("created_at".into(), num_attr(now_epoch_secs()));
        letter.insert("attempts".into(), num_attr(i64::from(new.attempts)));
        if let Some(error) = &new.last_error {
            letter.insert("last_error".into(), str_attr(error.as_str()));
        }
        self.put(letter).await
    }

    /// Every dead letter, oldest conversation first (operators, tests).
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DynamoError> {
        let records = self
            .query_all(
                self.db
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", str_attr(DEAD_LETTER_PK))
                    .consistent_read(true),
            )
            .await?;
        Ok(records.iter().filter_map(DeadLetter::from_record).collect())
    }

    /// One dead letter, if it is (still) there.
    pub async fn dead_letter(&self, id: &DeadLetterId) -> Result<Option<DeadLetter>, DynamoError> {
        let record = self.get(Self::key(DEAD_LETTER_PK, id.sort_key())).await?;
        Ok(record.as_ref().and_then(DeadLetter::from_record))
    }

    /// The outbox record a replay of dead letter `id` put back in its old
    /// place, while it still waits there (another replay got there first).
    pub async fn replayed(&self, id: &DeadLetterId) -> Result<Option<OutboxItem>, DynamoError> {
        let record = self.get(Self::key(OUTBOX_PK, id.sort_key())).await?;
        Ok(record.as_ref().and_then(OutboxItem::from_item))
    }

    /// Puts a dead letter back into the outbox, due at `now`, with a fresh
    /// start (no attempts, a new 48 h) and the parts already delivered
    /// skipped. One transaction moves it: the dead letter goes only if it is
    /// still there, the outbox record appears in its old place in the
    /// conversation, and the conversation counts one more message waiting
    /// (so new messages queue behind it and the next drain delivers all in
    /// order). Two replays at once: one moves it, the other finds it gone
    /// (`Ok(false)`, nothing written). When the old place is taken (a
    /// conversation record recreated since, whose counter started over), it
    /// goes behind the conversation's waiting messages instead.
    pub async fn replay_dead_letter(
        &self,
        letter: &DeadLetter,
        now: i64,
    ) -> Result<bool, DynamoError> {
        let id = letter.id();
        let item = &letter.item;
        let mut seq = item.seq;
        for _ in 0..2 {
            let queued = Queued {
                direction: item.direction,
                workspace: &item.workspace,
                visitor: &item.visitor,
                seq,
                parts: &item.parts,
                parts_done: item.parts_done,
                attempts: 0,
                next_attempt_at: now,
                not_before: None,
                origin: &item.origin,
                last_error: Some(letter.reason.as_str()).filter(|r| !r.is_empty()),
            };
            let [put, pending_up] = self.queue_writes(&queued, now)?;
            let take = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(DEAD_LETTER_PK, id.sort_key())))
                .condition_expression("attribute_exists(pk)")
                .build()
                .map_err(built)?;
            let moved = self
                .transact(vec![
                    TransactWriteItem::builder().delete(take).build(),
                    put,
                    pending_up,
                ])
                .await;
            if condition_held(moved)? {
                return Ok(true);
            }
            if self.dead_letter(&id).await?.is_none() {
                return Ok(false);
            }
            seq = self
                .next_seq(item.direction, &item.workspace, &item.visitor)
                .await?;
        }
        Err(DynamoError::Unavailable(
            "outbox sequence kept colliding".into(),
        ))
    }

    /// Deletes a dead letter for good; `Ok(false)` when it was already gone.
    pub async fn purge_dead_letter(&self, id: &DeadLetterId) -> Result<bool, DynamoError> {
        let result = self
            .db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(DEAD_LETTER_PK, id.sort_key())))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        condition_held(result.map_err(DynamoError::from))
    }

    /// Every waiting message in `direction` (operators, tests).
    pub async fn outbox(&self, direction: Direction) -> Result<Vec<OutboxItem>, DynamoError> {
        const PAGE: i32 = 100;
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .waiting_conversations(direction, after.as_deref(), PAGE)
                .await?;
            for conversation in &page.conversations {
                let mut after_seq = 0;
                loop {
                    let batch = self
                        .conversation_outbox(direction, &conversation.visitor, after_seq, PAGE)
                        .await?;
                    let full = batch.len() == PAGE as usize;
                    after_seq = batch.last().map_or(after_seq, |item| item.seq);
                    items.extend(batch);
                    if !full {
                        break;
                    }
                }
            }
            match page.conversations.last() {
                Some(last) if page.more => after = Some(last.visitor.clone()),
                _ => return Ok(items),
            }
        }
    }

    fn delete_outbox_op(&self, item: &OutboxItem) -> Result<TransactWriteItem, DynamoError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(OUTBOX_PK, item.sort_key())))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(built)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn pending_down_op(&self, item: &OutboxItem) -> Result<TransactWriteItem, DynamoError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(conversation_key(&item.workspace, &item.visitor)))
            .update_expression("ADD #pending :minus_one SET updated_at = :now")
            .expression_attribute_names("#pending", item.direction.attr("pending"))
            .expression_attribute_values(":minus_one", num_attr(-1))
            .expression_attribute_values(":now", num_attr(now_epoch_secs()))
            .build()
            .map_err(built)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

fn dead_letter_record(
    direction: Direction,
    workspace: &WorkspaceKey,
    visitor: &str,
    seq: u64,
    parts: &[String],
    origin: &str,
    reason: &str,
) -> Item {
    let now = now_epoch_secs();
    let mut letter = Store::key(DEAD_LETTER_PK, sort_key(direction, visitor, seq));
    letter.extend([
        ("direction".into(), str_attr(direction.tag())),
        ("workspace".into(), str_attr(workspace.id())),
        ("visitor".into(), str_attr(visitor)),
        ("parts".into(), str_list_attr(parts)),
        ("origin".into(), str_attr(origin)),
        ("reason".into(), str_attr(truncated(reason, 1_000))),
        ("dead_at".into(), num_attr(now)),
        ("expires_at".into(), num_attr(now + DEAD_LETTER_TTL_SECS)),
    ]);
    letter
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_group_a_conversation_in_order() {
        assert_eq!(
            sort_key(Direction::ToKefu, "T1_U1_D1", 7),
            "TO_KEFU#T1_U1_D1#000000000007"
        );
        let mut keys: Vec<String> = [10, 9, 100, 1]
            .iter()
            .map(|seq| sort_key(Direction::ToSlack, "T1_U1_D1", *seq))
            .collect();
        keys.sort();
        assert_eq!(
            keys.iter()
                .map(|k| k.rsplit('#').next().unwrap().parse::<u64>().unwrap())
                .collect::<Vec<_>>(),
            vec![1, 9, 10, 100]
        );
    }

    #[test]
    fn a_conversations_range_holds_its_keys_and_no_other_conversations() {
        let (first, last) = conversation_range(Direction::ToKefu, "T1_U1_D1");
        let inside = |key: &str| first.as_str() <= key && key <= last.as_str();
        assert!(inside(&sort_key(Direction::ToKefu, "T1_U1_D1", 1)));
        assert!(inside(&sort_key(Direction::ToKefu, "T1_U1_D1", u64::MAX)));
        for other in ["T1_U1_D10", "T1_U1_D", "T1_U1_D1X", "T1_U1_C1", "T2_U1_D1"] {
            assert!(!inside(&sort_key(Direction::ToKefu, other, 1)), "{other}");
        }
        assert!(!inside(&sort_key(Direction::ToSlack, "T1_U1_D1", 1)));
    }

    #[test]
    fn records_read_back() {
        let mut item = Store::key(OUTBOX_PK, "TO_SLACK#T1_U1_C1#000000000042");
        item.insert("workspace".into(), str_attr("T1"));
        item.insert("parts".into(), str_list_attr(&["a".into(), "b".into()]));
        item.insert("parts_done".into(), num_attr(1));
        item.insert("attempts".into(), num_attr(3));
        item.insert("origin".into(), str_attr("m-1"));
        let read = OutboxItem::from_item(&item).unwrap();
        assert_eq!(read.direction, Direction::ToSlack);
        assert_eq!(read.visitor, "T1_U1_C1");
        assert_eq!(read.seq, 42);
        assert_eq!(read.parts, vec!["a", "b"]);
        assert_eq!((read.parts_done, read.attempts), (1, 3));
        assert_eq!(read.workspace, WorkspaceKey::Team("T1".into()));
    }

    #[test]
    fn dead_letter_ids_are_their_sort_keys_and_nothing_else_parses() {
        let id = DeadLetterId::parse("TO_SLACK#T1_U1_D1#000000000042").unwrap();
        assert_eq!(id.to_string(), "TO_SLACK#T1_U1_D1#000000000042");
        assert_eq!(id.sort_key(), sort_key(Direction::ToSlack, "T1_U1_D1", 42));
        // Leading zeros are optional as typed; the id reads back canonical.
        assert_eq!(
            DeadLetterId::parse(" TO_KEFU#T1_U1_D1#7 ")
                .unwrap()
                .to_string(),
            "TO_KEFU#T1_U1_D1#000000000007"
        );
        for bad in [
            "",
            "TO_KEFU",
            "TO_KEFU#T1_U1_D1",
            "TO_ELSEWHERE#T1_U1_D1#1",
            "TO_KEFU##1",
            "TO_KEFU#T1#U1#1",
            "TO_KEFU#T1_U1_D1#x1",
            "TO_KEFU#T1_U1_D1#1234567890123",
            "TO_KEFU#T1_U1\nD1#1",
            "OUTBOX",
        ] {
            assert_eq!(DeadLetterId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncated("héllo", 2), "h");
        assert_eq!(truncated("abc", 10), "abc");
    }
}
