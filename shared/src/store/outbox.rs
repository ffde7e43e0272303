//! The durable outbox (issue "durable delivery"): messages a downstream
//! service did not take yet, kept until a scheduled drain delivers them, in
//! order per conversation, and dead letters for the ones that can never go.
//!
//! | record | pk | sk |
//! |---|---|---|
//! | waiting message | `OUTBOX` | `<dir>#<visitor id>#<seq, 12 digits>` |
//! | dead letter | `DEADLETTER` | `<dir>#<visitor id>#<seq, 12 digits>` |
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
//! an outbox record, so "nothing waits" can be read from the conversation
//! record alone, which the normal path reads anyway.

use serde_json::{json, Value};

use super::{Store, WorkspaceKey};
use crate::clock::now_epoch_secs;
use crate::dynamo::item::{num_attr, str_attr};
use crate::dynamo::{condition_held, DynamoError, Item, ItemExt};

/// How long a dead letter stays for an operator to look at.
pub const DEAD_LETTER_TTL_SECS: i64 = 30 * 24 * 3_600;
/// An outbox record must stay well inside DynamoDB's 400 KB item limit.
pub const MAX_PAYLOAD_BYTES: usize = 350_000;

const OUTBOX_PK: &str = "OUTBOX";
const DEAD_LETTER_PK: &str = "DEADLETTER";

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
    fn attr(self, name: &str) -> String {
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
        let parts = item
            .get("parts")
            .and_then(|p| p.get("L"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.get("S").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
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
    pub items: usize,
    /// When the first waiting message may be tried (the rest wait behind it).
    pub head_next_attempt_at: i64,
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

fn conversation_key(workspace: &WorkspaceKey, visitor: &str) -> Value {
    Store::key(&workspace.pk(), &format!("CONVERSATION#{visitor}"))
}

fn parts_attr(parts: &[String]) -> Value {
    json!({ "L": parts.iter().map(|p| str_attr(p.as_str())).collect::<Vec<_>>() })
}

/// True when a transaction was cancelled because a condition did not hold.
fn condition_failed_in_transaction(error: &DynamoError) -> bool {
    matches!(error, DynamoError::Rejected { kind, message }
        if kind == "TransactionCanceledException" && message.contains("ConditionalCheckFailed"))
}

impl Store {
    /// The conversation record (strongly consistent); a missing one reads as
    /// "top level, nothing waiting".
    pub async fn get_conversation(
        &self,
        workspace: &WorkspaceKey,
        visitor: &str,
    ) -> Result<Conversation, DynamoError> {
        let item = self
            .db
            .get_item(&self.table, conversation_key(workspace, visitor))
            .await?;
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
            let now = now_epoch_secs();
            let mut record = json!({
                "pk": str_attr(OUTBOX_PK),
                "sk": str_attr(sort_key(new.direction, &new.visitor, seq)),
                "direction": str_attr(new.direction.tag()),
                "workspace": str_attr(new.workspace.id()),
                "visitor": str_attr(&new.visitor),
                "parts": parts_attr(&new.parts),
                "parts_done": num_attr(0),
                "attempts": num_attr(i64::from(new.attempts)),
                "next_attempt_at": num_attr(new.next_attempt_at),
                "created_at": num_attr(now),
                "origin": str_attr(&new.origin),
            });
            if let Some(error) = &new.last_error {
                record["last_error"] = str_attr(error.as_str());
            }
            let pending = new.direction.attr("pending");
            let result = self
                .db
                .call(
                    "TransactWriteItems",
                    &json!({ "TransactItems": [
                        { "Put": {
                            "TableName": self.table,
                            "Item": record,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        } },
                        { "Update": {
                            "TableName": self.table,
                            "Key": conversation_key(&new.workspace, &new.visitor),
                            "UpdateExpression": "ADD #pending :one SET updated_at = :now",
                            "ExpressionAttributeNames": { "#pending": pending },
                            "ExpressionAttributeValues": { ":one": num_attr(1), ":now": num_attr(now) },
                        } },
                    ] }),
                )
                .await;
            match result {
                Ok(_) => return Ok(seq),
                // The counter restarted (its record was deleted while
                // messages waited): continue after the last one stored.
                Err(error) if condition_failed_in_transaction(&error) => {
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

    async fn next_seq(
        &self,
        direction: Direction,
        workspace: &WorkspaceKey,
        visitor: &str,
    ) -> Result<u64, DynamoError> {
        let out = self
            .db
            .call(
                "UpdateItem",
                &json!({
                    "TableName": self.table,
                    "Key": conversation_key(workspace, visitor),
                    "UpdateExpression": "ADD #seq :one",
                    "ExpressionAttributeNames": { "#seq": direction.attr("next_seq") },
                    "ExpressionAttributeValues": { ":one": num_attr(1) },
                    "ReturnValues": "UPDATED_NEW",
                }),
            )
            .await?;
        out.get("Attributes")
            .and_then(Value::as_object)
            .and_then(|a| a.n(&direction.attr("next_seq")))
            .map(|n| n.max(1) as u64)
            .ok_or_else(|| DynamoError::Unavailable("UpdateItem returned no next_seq".into()))
    }

    /// Sets the counter past the conversation's last stored sequence number.
    async fn reseed_seq(&self, new: &NewOutboxItem) -> Result<u64, DynamoError> {
        let out = self
            .db
            .call(
                "Query",
                &json!({
                    "TableName": self.table,
                    "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                    "ExpressionAttributeValues": {
                        ":pk": str_attr(OUTBOX_PK),
                        ":prefix": str_attr(format!("{}#{}#", new.direction.tag(), new.visitor)),
                    },
                    "ProjectionExpression": "sk",
                    "ScanIndexForward": false,
                    "Limit": 1,
                    "ConsistentRead": true,
                }),
            )
            .await?;
        let last = out
            .get("Items")
            .and_then(Value::as_array)
            .and_then(|items| items.first())
            .and_then(|item| {
                item.get("sk")?
                    .get("S")?
                    .as_str()?
                    .rsplit('#')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0u64);
        let next = last + 1;
        self.db
            .call(
                "UpdateItem",
                &json!({
                    "TableName": self.table,
                    "Key": conversation_key(&new.workspace, &new.visitor),
                    "UpdateExpression": "SET #seq = :next",
                    "ExpressionAttributeNames": { "#seq": new.direction.attr("next_seq") },
                    "ExpressionAttributeValues": { ":next": num_attr(next as i64) },
                }),
            )
            .await?;
        Ok(next)
    }

    /// The conversations with messages waiting in `direction`, in sort-key
    /// order, from a light first Query (keys and times only).
    pub async fn waiting_conversations(
        &self,
        direction: Direction,
    ) -> Result<Vec<WaitingConversation>, DynamoError> {
        let items = self
            .db
            .query_all(json!({
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {
                    ":pk": str_attr(OUTBOX_PK),
                    ":prefix": str_attr(format!("{}#", direction.tag())),
                },
                "ProjectionExpression": "sk, workspace, next_attempt_at",
                "ConsistentRead": true,
            }))
            .await?;
        let mut waiting: Vec<WaitingConversation> = Vec::new();
        for item in &items {
            let Some((visitor, _)) = item
                .s("sk")
                .and_then(|sk| sk.split_once('#'))
                .and_then(|(_, rest)| rest.rsplit_once('#'))
            else {
                continue;
            };
            match waiting.last_mut() {
                Some(last) if last.visitor == visitor => last.items += 1,
                _ => waiting.push(WaitingConversation {
                    workspace: WorkspaceKey::from_id(item.s("workspace").unwrap_or_default()),
                    visitor: visitor.to_string(),
                    items: 1,
                    head_next_attempt_at: item.n("next_attempt_at").unwrap_or(0),
                }),
            }
        }
        Ok(waiting)
    }

    /// One conversation's waiting messages in order (read under its lease).
    pub async fn conversation_outbox(
        &self,
        direction: Direction,
        visitor: &str,
    ) -> Result<Vec<OutboxItem>, DynamoError> {
        let items = self
            .db
            .query_all(json!({
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {
                    ":pk": str_attr(OUTBOX_PK),
                    ":prefix": str_attr(format!("{}#{visitor}#", direction.tag())),
                },
                "ConsistentRead": true,
            }))
            .await?;
        Ok(items.iter().filter_map(OutboxItem::from_item).collect())
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
            .call(
                "UpdateItem",
                &json!({
                    "TableName": self.table,
                    "Key": conversation_key(workspace, visitor),
                    "UpdateExpression": "SET #lease = :until",
                    "ConditionExpression": "attribute_not_exists(#lease) OR #lease < :now",
                    "ExpressionAttributeNames": { "#lease": direction.attr("lease_until") },
                    "ExpressionAttributeValues": { ":until": num_attr(until), ":now": num_attr(now) },
                }),
            )
            .await;
        condition_held(result)
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
            .call(
                "UpdateItem",
                &json!({
                    "TableName": self.table,
                    "Key": conversation_key(workspace, visitor),
                    "UpdateExpression": "SET #lease = :zero",
                    "ConditionExpression": "#lease = :held",
                    "ExpressionAttributeNames": { "#lease": direction.attr("lease_until") },
                    "ExpressionAttributeValues": { ":zero": num_attr(0), ":held": num_attr(held_until) },
                }),
            )
            .await;
        // Nothing to change when the condition does not hold.
        condition_held(result).map(|_| ())
    }

    /// A delivered message leaves the outbox and stops counting as pending.
    pub async fn finish_outbox_item(&self, item: &OutboxItem) -> Result<(), DynamoError> {
        self.db
            .call(
                "TransactWriteItems",
                &json!({ "TransactItems": [
                    Self::delete_outbox_op(&self.table, item),
                    Self::pending_down_op(&self.table, item),
                ] }),
            )
            .await
            .map(|_| ())
    }

    /// A failed attempt: remember progress and when to try again.
    pub async fn reschedule_outbox_item(
        &self,
        item: &OutboxItem,
        parts_done: u32,
        attempts: u32,
        next_attempt_at: i64,
        last_error: &str,
    ) -> Result<(), DynamoError> {
        self.db
            .call(
                "UpdateItem",
                &json!({
                    "TableName": self.table,
                    "Key": Self::key(OUTBOX_PK, &item.sort_key()),
                    "UpdateExpression": "SET parts_done = :done, attempts = :attempts, next_attempt_at = :next, last_error = :error",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": {
                        ":done": num_attr(i64::from(parts_done)),
                        ":attempts": num_attr(i64::from(attempts)),
                        ":next": num_attr(next_attempt_at),
                        ":error": str_attr(truncated(last_error, 1_000)),
                    },
                }),
            )
            .await
            .map(|_| ())
    }

    /// Moves a waiting message to the dead letters, in one transaction.
    pub async fn dead_letter_outbox_item(
        &self,
        item: &OutboxItem,
        parts_done: u32,
        reason: &str,
    ) -> Result<(), DynamoError> {
        let mut letter = self.dead_letter_record(
            item.direction,
            &item.workspace,
            &item.visitor,
            item.seq,
            &item.parts,
            &item.origin,
            reason,
        );
        letter["parts_done"] = num_attr(i64::from(parts_done));
        letter["attempts"] = num_attr(i64::from(item.attempts));
        letter["created_at"] = num_attr(item.created_at);
        if let Some(error) = &item.last_error {
            letter["last_error"] = str_attr(error.as_str());
        }
        self.db
            .call(
                "TransactWriteItems",
                &json!({ "TransactItems": [
                    { "Put": { "TableName": self.table, "Item": letter } },
                    Self::delete_outbox_op(&self.table, item),
                    Self::pending_down_op(&self.table, item),
                ] }),
            )
            .await
            .map(|_| ())
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
        let mut letter = self.dead_letter_record(
            new.direction,
            &new.workspace,
            &new.visitor,
            seq,
            &new.parts,
            &new.origin,
            reason,
        );
        letter["created_at"] = num_attr(now_epoch_secs());
        letter["attempts"] = num_attr(i64::from(new.attempts));
        if let Some(error) = &new.last_error {
            letter["last_error"] = str_attr(error.as_str());
        }
        self.db
            .call(
                "PutItem",
                &json!({ "TableName": self.table, "Item": letter }),
            )
            .await
            .map(|_| ())
    }

    /// Every dead letter, oldest conversation first (operators, tests).
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DynamoError> {
        let records = self
            .db
            .query_all(json!({
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": { ":pk": str_attr(DEAD_LETTER_PK) },
                "ConsistentRead": true,
            }))
            .await?;
        Ok(records.iter().filter_map(DeadLetter::from_record).collect())
    }

    /// One dead letter, if it is (still) there.
    pub async fn dead_letter(&self, id: &DeadLetterId) -> Result<Option<DeadLetter>, DynamoError> {
        let record = self
            .db
            .get_item(&self.table, Self::key(DEAD_LETTER_PK, &id.sort_key()))
            .await?;
        Ok(record.as_ref().and_then(DeadLetter::from_record))
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
            let mut record = json!({
                "pk": str_attr(OUTBOX_PK),
                "sk": str_attr(sort_key(item.direction, &item.visitor, seq)),
                "direction": str_attr(item.direction.tag()),
                "workspace": str_attr(item.workspace.id()),
                "visitor": str_attr(&item.visitor),
                "parts": parts_attr(&item.parts),
                "parts_done": num_attr(i64::from(item.parts_done)),
                "attempts": num_attr(0),
                "next_attempt_at": num_attr(now),
                "created_at": num_attr(now),
                "origin": str_attr(&item.origin),
            });
            if !letter.reason.is_empty() {
                record["last_error"] = str_attr(truncated(&letter.reason, 1_000));
            }
            let result = self
                .db
                .call(
                    "TransactWriteItems",
                    &json!({ "TransactItems": [
                        { "Delete": {
                            "TableName": self.table,
                            "Key": Self::key(DEAD_LETTER_PK, &id.sort_key()),
                            "ConditionExpression": "attribute_exists(pk)",
                        } },
                        { "Put": {
                            "TableName": self.table,
                            "Item": record,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        } },
                        { "Update": {
                            "TableName": self.table,
                            "Key": conversation_key(&item.workspace, &item.visitor),
                            "UpdateExpression": "ADD #pending :one SET updated_at = :now",
                            "ExpressionAttributeNames": { "#pending": item.direction.attr("pending") },
                            "ExpressionAttributeValues": { ":one": num_attr(1), ":now": num_attr(now) },
                        } },
                    ] }),
                )
                .await;
            match result {
                Ok(_) => return Ok(true),
                Err(error) if condition_failed_in_transaction(&error) => {
                    if self.dead_letter(&id).await?.is_none() {
                        return Ok(false);
                    }
                    seq = self
                        .next_seq(item.direction, &item.workspace, &item.visitor)
                        .await?;
                }
                Err(error) => return Err(error),
            }
        }
        Err(DynamoError::Unavailable(
            "outbox sequence kept colliding".into(),
        ))
    }

    /// Deletes a dead letter for good; `Ok(false)` when it was already gone.
    pub async fn purge_dead_letter(&self, id: &DeadLetterId) -> Result<bool, DynamoError> {
        let result = self
            .db
            .call(
                "DeleteItem",
                &json!({
                    "TableName": self.table,
                    "Key": Self::key(DEAD_LETTER_PK, &id.sort_key()),
                    "ConditionExpression": "attribute_exists(pk)",
                }),
            )
            .await;
        condition_held(result)
    }

    /// Every waiting message in `direction` (operators, tests).
    pub async fn outbox(&self, direction: Direction) -> Result<Vec<OutboxItem>, DynamoError> {
        let mut items = Vec::new();
        for conversation in self.waiting_conversations(direction).await? {
            items.extend(
                self.conversation_outbox(direction, &conversation.visitor)
                    .await?,
            );
        }
        Ok(items)
    }

    #[allow(clippy::too_many_arguments)]
    fn dead_letter_record(
        &self,
        direction: Direction,
        workspace: &WorkspaceKey,
        visitor: &str,
        seq: u64,
        parts: &[String],
        origin: &str,
        reason: &str,
    ) -> Value {
        let now = now_epoch_secs();
        json!({
            "pk": str_attr(DEAD_LETTER_PK),
            "sk": str_attr(sort_key(direction, visitor, seq)),
            "direction": str_attr(direction.tag()),
            "workspace": str_attr(workspace.id()),
            "visitor": str_attr(visitor),
            "parts": parts_attr(parts),
            "origin": str_attr(origin),
            "reason": str_attr(truncated(reason, 1_000)),
            "dead_at": num_attr(now),
            "expires_at": num_attr(now + DEAD_LETTER_TTL_SECS),
        })
    }

    fn delete_outbox_op(table: &str, item: &OutboxItem) -> Value {
        json!({ "Delete": {
            "TableName": table,
            "Key": Self::key(OUTBOX_PK, &item.sort_key()),
            "ConditionExpression": "attribute_exists(pk)",
        } })
    }

    fn pending_down_op(table: &str, item: &OutboxItem) -> Value {
        json!({ "Update": {
            "TableName": table,
            "Key": conversation_key(&item.workspace, &item.visitor),
            "UpdateExpression": "ADD #pending :minus_one SET updated_at = :now",
            "ExpressionAttributeNames": { "#pending": item.direction.attr("pending") },
            "ExpressionAttributeValues": { ":minus_one": num_attr(-1), ":now": num_attr(now_epoch_secs()) },
        } })
    }
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
    fn records_read_back() {
        let mut item = Item::new();
        item.insert("sk".into(), str_attr("TO_SLACK#T1_U1_C1#000000000042"));
        item.insert("workspace".into(), str_attr("T1"));
        item.insert("parts".into(), parts_attr(&["a".into(), "b".into()]));
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
    fn truncation_respects_characters() {
        assert_eq!(truncated("héllo", 2), "h");
        assert_eq!(truncated("abc", 10), "abc");
    }
}
