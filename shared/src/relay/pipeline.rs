//! One message's delivery, the same in both directions (docs/design.md §4
//! "Delivery pipeline"): claim → conversation state → queue behind waiting
//! messages → send the parts inside the deadline → outbox or dead letter →
//! complete or release the claim. The live handlers (`slack_events`,
//! `easemob_callback`) plan a message's parts and hand them to [`deliver`];
//! the outbox drain sends what waits through the same [`Recipient`]s.
//!
//! What differs by direction is only how a run of parts is sent and how a
//! failure reads ([`Recipient`]: `to_kefu::KefuVisitor`,
//! `to_slack::SlackConversation`). What becomes of the message is the closed
//! [`Outcome`]; its status, log line and metrics come from
//! [`outcome::record`](crate::relay::outcome::record).

use std::time::{Duration, Instant};

use crate::bridge::Bridge;
use crate::dynamo::DynamoError;
use crate::relay::outbox;
use crate::relay::outcome::{DeadLetterCause, FailureKind, Outcome, QueueCause, RetryCause, Skip};
use crate::store::{
    Claim, ClaimKey, Conversation, Direction, NewOutboxItem, ThreadCheck, WorkspaceKey,
};
use crate::visitor::VisitorId;

/// A claim's lease: longer than any invocation, short enough that a crashed
/// one is retried by the sender's next attempt (Slack's comes ≈1 min later).
pub const CLAIM_LEASE_SECS: i64 = 30;

/// Why a delivery stopped, as far as retrying is concerned, and what
/// failed (the `Reason` of the `DeliveryFailed` metric, relay/outcome.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// May work later: 5xx, timeout, refused connection, rate limit, a
    /// token Easemob still rejects after the one refresh.
    Transient {
        kind: FailureKind,
        detail: String,
        /// The service asked for at least this long (`Retry-After`).
        retry_after: Option<u64>,
    },
    /// The same request will fail the same way: dead letter.
    Permanent { kind: FailureKind, reason: String },
}

impl Failure {
    pub fn kind(&self) -> FailureKind {
        match self {
            Failure::Transient { kind, .. } | Failure::Permanent { kind, .. } => *kind,
        }
    }

    /// What becomes of the message now: queued for a retry, or dead.
    pub fn handed_over(&self) -> Outcome {
        match self {
            Failure::Transient { kind, .. } => Outcome::Queued(QueueCause::Failed(*kind)),
            Failure::Permanent { kind, .. } => {
                Outcome::DeadLettered(DeadLetterCause::Failed(*kind))
            }
        }
    }

    /// The log line's words for it.
    fn detail(self) -> String {
        match self {
            Failure::Transient { detail, .. } => detail,
            Failure::Permanent { reason, .. } => reason,
        }
    }
}

/// Why sending a run of parts stopped, after `done` of them (counting
/// those of earlier attempts).
#[derive(Debug)]
pub struct Stopped<E> {
    pub done: usize,
    pub why: Stop<E>,
}

#[derive(Debug)]
pub enum Stop<E> {
    /// Not enough of the invocation's time left to start the next part:
    /// not a failure.
    OutOfTime,
    Failed(E),
}

impl<E> Stopped<E> {
    pub fn failed(done: usize, error: E) -> Self {
        Self {
            done,
            why: Stop::Failed(error),
        }
    }

    pub fn out_of_time(done: usize) -> Self {
        Self {
            done,
            why: Stop::OutOfTime,
        }
    }
}

/// The other side of one conversation, in one direction: how a run of
/// parts is sent there, how its failures read, and how a part is kept in
/// the outbox.
pub(crate) trait Recipient {
    /// One request to the other side (an Easemob message, a Slack step).
    type Part;
    type Error;
    const DIRECTION: Direction;

    /// Sends `parts[from..]` in order; the first is always tried, later
    /// ones only with time left before `deadline`.
    async fn send(
        &mut self,
        bridge: &Bridge,
        parts: &[Self::Part],
        from: usize,
        deadline: Instant,
    ) -> Result<(), Stopped<Self::Error>>;

    /// Retry later, or never.
    fn classify(error: &Self::Error) -> Failure;

    /// The part as the outbox keeps it…
    fn stored(part: &Self::Part) -> String;

    /// …and back; a record that does not read is a permanent failure.
    fn from_stored(stored: &str) -> Result<Self::Part, Failure>;

    /// After the sends, whatever they came to: what the recipient records
    /// (best effort), and the claim's completion when `completing` names
    /// it (the message delivered: `parts` parts).
    async fn finish(&mut self, bridge: &Bridge, completing: Option<(&ClaimKey, usize)>) {
        if let Some((claim, parts)) = completing {
            complete(bridge, claim, parts).await;
        }
    }
}

/// What happened to one message, and the details its log line carries.
#[derive(Debug)]
pub struct Report {
    pub outcome: Outcome,
    pub detail: Option<String>,
    /// Parts delivered (or, handed over, delivered before the hand-over).
    pub parts: usize,
    pub channel: Option<String>,
    pub visitor: Option<VisitorId>,
}

impl Report {
    pub fn done(outcome: Outcome) -> Self {
        Self {
            outcome,
            detail: None,
            parts: 0,
            channel: None,
            visitor: None,
        }
    }

    /// Genuine, deliberately not relayed: the sender must not send it again.
    pub fn skipped(skip: Skip) -> Self {
        Self::done(Outcome::NotForUs(skip))
    }

    /// Nothing accepted; the sender's retry may do better.
    pub fn retry_later(cause: RetryCause, detail: impl Into<String>) -> Self {
        Self::done(Outcome::RetryLater(cause)).with_detail(detail)
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_channel(mut self, channel: Option<&str>) -> Self {
        self.channel = channel.map(str::to_string);
        self
    }

    pub fn for_visitor(mut self, visitor: &VisitorId) -> Self {
        self.visitor = Some(visitor.clone());
        self
    }
}

/// One message a live handler delivers.
pub(crate) struct Message<'a> {
    /// Its idempotency claim (the Slack `event_id`, the Easemob `msg_id`).
    pub claim: ClaimKey,
    /// The same id, as the outbox records where a message came from.
    pub origin: &'a str,
    pub workspace: &'a WorkspaceKey,
    pub visitor: &'a VisitorId,
    /// The thread the conversation record should name for the warm path.
    pub thread: ThreadCheck<'a>,
    /// The handler's start, for the delivery latency.
    pub started: Instant,
}

/// The claim is this invocation's, and what the conversation record says.
pub(crate) struct Claimed {
    /// Parts an earlier attempt delivered already.
    pub parts_done: usize,
    pub conversation: Conversation,
}

/// What a handler plans once the message is claimed.
pub(crate) enum Planned<R: Recipient> {
    Send {
        recipient: R,
        parts: Vec<R::Part>,
        /// Until when parts may be started (files may widen the handler's).
        deadline: Instant,
    },
    /// Nothing to send after all (an empty message): the claim completes.
    Nothing(Report),
}

/// Runs the whole sequence for one message and says what became of it.
pub(crate) async fn deliver<R: Recipient>(
    bridge: &Bridge,
    message: Message<'_>,
    plan: impl AsyncFnOnce(&Claimed) -> Planned<R>,
) -> Report {
    let claimed = match claim(bridge, &message, R::DIRECTION).await {
        Ok(claimed) => claimed,
        Err(report) => return report,
    };
    let (mut recipient, parts, deadline) = match plan(&claimed).await {
        Planned::Send {
            recipient,
            parts,
            deadline,
        } => (recipient, parts, deadline),
        Planned::Nothing(report) => {
            complete(bridge, &message.claim, 0).await;
            return report;
        }
    };
    let later = Later::<R> {
        message: &message,
        parts: &parts,
    };
    let parts_done = claimed.parts_done;
    let report = if claimed.conversation.lane(R::DIRECTION).pending > 0 {
        later
            .hand_over(
                bridge,
                parts_done,
                None,
                Outcome::Queued(QueueCause::BehindWaiting),
            )
            .await
    } else {
        match recipient.send(bridge, &parts, parts_done, deadline).await {
            Ok(()) => {
                let latency = message.started.elapsed();
                // Delivered: answered 200 even if recording completion
                // fails; the claim's lease still blocks a re-delivery.
                recipient
                    .finish(bridge, Some((&message.claim, parts.len())))
                    .await;
                return Report {
                    parts: parts.len(),
                    ..Report::done(Outcome::Delivered {
                        latency: Some(latency),
                    })
                };
            }
            Err(Stopped {
                done,
                why: Stop::OutOfTime,
            }) => {
                later
                    .hand_over(bridge, done, None, Outcome::Queued(QueueCause::OutOfTime))
                    .await
            }
            Err(Stopped {
                done,
                why: Stop::Failed(error),
            }) => {
                let failure = R::classify(&error);
                let outcome = failure.handed_over();
                later.hand_over(bridge, done, Some(failure), outcome).await
            }
        }
    };
    recipient.finish(bridge, None).await;
    report
}

/// The claim, and the conversation's state (the thread to reply in,
/// whether messages wait). The warm path is one transaction: a fresh claim
/// together with the check that nothing waits in this direction and the
/// thread is the one expected (docs/design.md §4 "Delivery pipeline").
/// When that does not hold (seen before, messages waiting, another thread,
/// a race), the slower path: the claim, then a read of the conversation
/// record; if that read fails, the claim is given back.
async fn claim(
    bridge: &Bridge,
    message: &Message<'_>,
    direction: Direction,
) -> Result<Claimed, Report> {
    let visitor = message.visitor.to_string();
    let unavailable =
        |error: DynamoError| Report::retry_later(RetryCause::StoreUnavailable, error.to_string());
    let quick = bridge
        .store
        .claim_in_quiet_conversation(
            &message.claim,
            CLAIM_LEASE_SECS,
            message.workspace,
            &visitor,
            direction,
            message.thread,
        )
        .await
        .map_err(unavailable)?;
    let parts_done = match quick {
        Some(Claim::Acquired { parts_done }) => {
            if message.thread != ThreadCheck::Any {
                bridge.memo.threads.put(visitor, message.thread.thread_ts());
            }
            return Ok(Claimed {
                parts_done: parts_done as usize,
                conversation: Conversation {
                    thread_ts: message.thread.thread_ts(),
                    ..Conversation::default()
                },
            });
        }
        Some(taken) => return Err(report_for_taken(taken)),
        None => match bridge
            .store
            .claim(&message.claim, CLAIM_LEASE_SECS)
            .await
            .map_err(unavailable)?
        {
            Claim::Acquired { parts_done } => parts_done as usize,
            taken => return Err(report_for_taken(taken)),
        },
    };
    match bridge
        .store
        .get_conversation(message.workspace, &visitor)
        .await
    {
        Ok(conversation) => {
            bridge
                .memo
                .threads
                .put(visitor, conversation.thread_ts.clone());
            Ok(Claimed {
                parts_done,
                conversation,
            })
        }
        Err(error) => {
            release(bridge, &message.claim, parts_done).await;
            Err(unavailable(error))
        }
    }
}

/// How long this instance trusts the thread it last saw a conversation in
/// as the warm path's guess (a wrong guess costs only the slower path).
const THREAD_MEMORY_TTL: Duration = Duration::from_secs(3_600);

/// The thread an agent reply's warm path expects: none in a direct
/// message; in a channel, the one this instance last saw the conversation
/// in (the check in the claim's transaction catches a change).
pub(crate) fn expected_thread(bridge: &Bridge, visitor: &VisitorId) -> Option<Option<String>> {
    if visitor.channel().is_direct_message() {
        return None;
    }
    Some(
        bridge
            .memo
            .threads
            .get(&visitor.to_string(), THREAD_MEMORY_TTL)
            .flatten(),
    )
}

/// [`expected_thread`] as the check the claim's transaction makes.
pub(crate) fn thread_check(expected: &Option<Option<String>>) -> ThreadCheck<'_> {
    match expected {
        None => ThreadCheck::Any,
        Some(None) => ThreadCheck::TopLevel,
        Some(Some(thread)) => ThreadCheck::In(thread),
    }
}

/// A claim this invocation did not get.
pub(crate) fn report_for_taken(claim: Claim) -> Report {
    match claim {
        Claim::Completed => Report::done(Outcome::Duplicate),
        Claim::InProgress | Claim::Acquired { .. } => Report::retry_later(
            RetryCause::DuplicateInProgress,
            "another delivery holds the claim",
        ),
    }
}

/// A message whose remaining parts go to the outbox (or the dead letters)
/// instead of the other side now.
struct Later<'a, R: Recipient> {
    message: &'a Message<'a>,
    parts: &'a [R::Part],
}

impl<R: Recipient> Later<'_, R> {
    /// Stores parts `from..` durably, then completes the claim: the sender
    /// gets 200 and stops retrying (Easemob never counts a Slack outage
    /// against the callback endpoint). If the table fails, nothing is
    /// accepted: the claim is released with the progress, and the sender's
    /// retry resumes after what already went (5xx).
    async fn hand_over(
        &self,
        bridge: &Bridge,
        from: usize,
        failure: Option<Failure>,
        outcome: Outcome,
    ) -> Report {
        let now = bridge.clock.epoch_secs();
        let mut new = NewOutboxItem {
            direction: R::DIRECTION,
            workspace: self.message.workspace.clone(),
            visitor: self.message.visitor.to_string(),
            parts: self.parts[from.min(self.parts.len())..]
                .iter()
                .map(R::stored)
                .collect(),
            origin: self.message.origin.to_string(),
            last_error: None,
            attempts: 0,
            next_attempt_at: now,
            not_before: None,
        };
        let stored = match &failure {
            None => outbox::queue(bridge, new).await,
            Some(Failure::Transient {
                kind,
                detail,
                retry_after,
            }) => {
                new.attempts = 1;
                new.next_attempt_at = outbox::retry_at(now, 1, *retry_after);
                new.not_before = outbox::not_before(now, *retry_after);
                new.last_error = Some(detail.clone());
                outbox::note_failure(bridge, R::DIRECTION, *kind, *retry_after).await;
                outbox::queue(bridge, new).await
            }
            Some(Failure::Permanent { reason, .. }) => {
                new.attempts = 1;
                new.last_error = Some(reason.clone());
                outbox::dead_letter(bridge, new, reason).await
            }
        };
        let detail = failure.map(Failure::detail);
        match stored {
            Ok(()) => {
                complete(bridge, &self.message.claim, self.parts.len()).await;
                Report {
                    parts: from,
                    detail,
                    ..Report::done(outcome)
                }
            }
            Err(error) => {
                release(bridge, &self.message.claim, from).await;
                Report::retry_later(
                    RetryCause::StoreUnavailable,
                    format!("{}; not stored: {error}", detail.unwrap_or_default()),
                )
            }
        }
    }
}

/// Records the claim as done (`parts` delivered or durably accepted).
/// Answered 200 either way: if recording fails, the claim's lease still
/// blocks a re-delivery meanwhile.
pub(crate) async fn complete(bridge: &Bridge, key: &ClaimKey, parts: usize) {
    if let Err(error) = bridge.store.complete_claim(key, parts as u32).await {
        tracing::error!(claim = ?key, %error, "claim_completion_not_recorded");
    }
}

/// Gives the message back for the sender's retry, remembering progress.
pub(crate) async fn release(bridge: &Bridge, key: &ClaimKey, parts_done: usize) {
    if let Err(error) = bridge.store.release_claim(key, parts_done as u32).await {
        tracing::error!(claim = ?key, %error, "claim_release_failed");
    }
}

/// What is left of the time until `deadline`.
pub(crate) fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
