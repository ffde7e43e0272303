//! What became of one message, in both directions: the closed set of
//! outcomes a handler or a drain reaches, and the one place that turns an
//! outcome into the HTTP status, the log line's `outcome` field and the
//! metrics (docs/design.md §1 "Metrics").
//!
//! The log names are the ones operators and tests grep for
//! (`forwarded_to_kefu`, `kefu_unavailable_queued`…); the metrics are
//! counts under the dimensions `Function` and `Direction`, and
//! `DeliveryFailed` adds `Reason`, a [`FailureKind`] (never free text, so the
//! metric's cardinality stays small).

use std::time::Duration;

use crate::lambda::Function;
use crate::loop_guard::NotForwarded;
use crate::metrics::{Dimensions, Metric, Metrics};
use crate::store::Direction;

/// One message's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every part reached the other side. `latency`: from the handler's
    /// start to the end of the last send (none for a drain, whose messages
    /// waited for reasons the latency metric should not mix in).
    Delivered { latency: Option<Duration> },
    /// Already delivered: a sender's retry or a replay.
    Duplicate,
    /// Not relayed, because relaying it would start or feed a loop.
    LoopPrevented(LoopRule),
    /// Durably accepted into the outbox; a drain delivers it.
    Queued(QueueCause),
    /// Will never be delivered; kept as a dead letter with its reason.
    DeadLettered(DeadLetterCause),
    /// A drain's attempt failed; the message waits for a later one.
    RetryScheduled(FailureKind),
    /// Done, and not a message to relay: an uninstall, a recall.
    Handled(Handled),
    /// Genuine, but deliberately not relayed (answered 200, not retried).
    NotForUs(Skip),
    /// The request is wrong: the same one fails the same way (4xx).
    Rejected(Rejection),
    /// Nothing was accepted; the sender's retry may do better (503).
    RetryLater(RetryCause),
}

/// Which loop rule stopped a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopRule {
    /// A Slack message by the bridge itself or another bot (`loop_guard`).
    SlackBot(NotForwarded),
    /// An Easemob callback not from the IM service number: the visitor's own
    /// message, echoed back.
    VisitorEcho,
}

/// Why a message went to the outbox instead of the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueCause {
    /// Messages of the conversation wait already: it queues behind them.
    BehindWaiting,
    /// The handler's time ran out before its remaining parts.
    OutOfTime,
    /// A send failed in a way that may work later.
    Failed(FailureKind),
}

/// Why a message became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterCause {
    /// A failure that retrying cannot fix.
    Failed(FailureKind),
    /// Still waiting after the outbox's 48 h limit.
    Expired,
}

/// The `Reason` of `DeliveryFailed`: what refused or could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    KefuUnavailable,
    KefuRateLimited,
    KefuRejected,
    SlackUnavailable,
    SlackRateLimited,
    SlackRejected,
    /// The bot cannot post in that channel (any more).
    SlackChannelGone,
    /// A token was refused after the one refresh (or the workspace is gone).
    TokenRefused,
    StoreUnavailable,
}

impl FailureKind {
    /// The other side asked for less traffic (429, or Easemob's quota).
    pub fn is_rate_limit(self) -> bool {
        matches!(
            self,
            FailureKind::KefuRateLimited | FailureKind::SlackRateLimited
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            FailureKind::KefuUnavailable => "KefuUnavailable",
            FailureKind::KefuRateLimited => "KefuRateLimited",
            FailureKind::KefuRejected => "KefuRejected",
            FailureKind::SlackUnavailable => "SlackUnavailable",
            FailureKind::SlackRateLimited => "SlackRateLimited",
            FailureKind::SlackRejected => "SlackRejected",
            FailureKind::SlackChannelGone => "SlackChannelGone",
            FailureKind::TokenRefused => "TokenRefused",
            FailureKind::StoreUnavailable => "StoreUnavailable",
        }
    }
}

/// Work done that is not a message to relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    AppUninstalled,
    TokensRevoked,
    RecalledInSlack,
    RecallOfUnknownMessage,
    RecallOfAnotherVisitorsMessage,
}

/// Genuine input the bridge does not relay, by design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    WorkspaceNotAllowed,
    WorkspaceNotInstalled,
    UnsupportedChannelType,
    SubtypeNotForwarded,
    MissingUserOrChannel,
    VisitorIdInvalid,
    EmptyMessage,
    UserTokensRevokedIgnored,
    UnhandledEventType,
    NotAMessageEvent,
    RecipientNotAVisitor,
    NothingToShow,
    RecallWithoutUsableId,
}

/// A request refused as malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    MalformedEvent,
    MissingMsgId,
    MalformedMsgId,
}

impl Rejection {
    /// The short reason in the 400's body.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::MalformedEvent => "event has unexpected field types",
            Rejection::MissingMsgId => "message callback without msg_id",
            Rejection::MalformedMsgId => "msg_id is too long or not printable",
        }
    }
}

/// Why nothing was accepted this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryCause {
    StoreUnavailable,
    /// Another delivery of the same message holds its claim.
    DuplicateInProgress,
    RecallFailed,
}

impl Outcome {
    /// The log line's `outcome` field.
    pub fn name(self, direction: Direction) -> &'static str {
        match self {
            Outcome::Delivered { .. } => match direction {
                Direction::ToKefu => "forwarded_to_kefu",
                Direction::ToSlack => "posted_to_slack",
            },
            Outcome::Duplicate => "duplicate_already_delivered",
            Outcome::LoopPrevented(LoopRule::SlackBot(reason)) => reason.outcome(),
            Outcome::LoopPrevented(LoopRule::VisitorEcho) => "not_from_service_number",
            Outcome::Queued(QueueCause::BehindWaiting) => match direction {
                Direction::ToKefu => "queued_behind_waiting_messages",
                Direction::ToSlack => "queued_behind_waiting_replies",
            },
            Outcome::Queued(QueueCause::OutOfTime) => "queued_out_of_time",
            Outcome::Queued(QueueCause::Failed(kind)) => match (kind, direction) {
                (FailureKind::KefuRateLimited, _) => "kefu_rate_limited_queued",
                (FailureKind::SlackRateLimited, _) => "slack_rate_limited_queued",
                (_, Direction::ToKefu) => "kefu_unavailable_queued",
                (_, Direction::ToSlack) => "slack_unavailable_queued",
            },
            Outcome::DeadLettered(DeadLetterCause::Expired) => "gave_up_after_48h",
            Outcome::DeadLettered(DeadLetterCause::Failed(kind)) => match kind {
                FailureKind::KefuRejected => "kefu_rejected_dead_lettered",
                FailureKind::TokenRefused if direction == Direction::ToSlack => {
                    "slack_auth_failed_needs_reinstall"
                }
                FailureKind::SlackChannelGone => "slack_channel_unavailable",
                FailureKind::SlackRejected => "slack_rejected",
                _ => "dead_lettered",
            },
            Outcome::RetryScheduled(_) => "retry_later",
            Outcome::Handled(handled) => match handled {
                Handled::AppUninstalled => "app_uninstalled",
                Handled::TokensRevoked => "tokens_revoked",
                Handled::RecalledInSlack => "recalled_in_slack",
                Handled::RecallOfUnknownMessage => "recall_of_unknown_message",
                Handled::RecallOfAnotherVisitorsMessage => "recall_of_another_visitors_message",
            },
            Outcome::NotForUs(skip) => match skip {
                Skip::WorkspaceNotAllowed => "workspace_not_allowed",
                Skip::WorkspaceNotInstalled => "workspace_not_installed",
                Skip::UnsupportedChannelType => "unsupported_channel_type",
                Skip::SubtypeNotForwarded => "subtype_not_forwarded",
                Skip::MissingUserOrChannel => "missing_user_or_channel",
                Skip::VisitorIdInvalid => "visitor_id_invalid",
                Skip::EmptyMessage => "empty_message",
                Skip::UserTokensRevokedIgnored => "user_tokens_revoked_ignored",
                Skip::UnhandledEventType => "unhandled_event_type",
                Skip::NotAMessageEvent => "not_a_message_event",
                Skip::RecipientNotAVisitor => "recipient_not_a_visitor",
                Skip::NothingToShow => "nothing_to_show",
                Skip::RecallWithoutUsableId => "recall_without_usable_id",
            },
            Outcome::Rejected(rejection) => match rejection {
                Rejection::MalformedEvent => "malformed_event",
                Rejection::MissingMsgId => "missing_msg_id",
                Rejection::MalformedMsgId => "malformed_msg_id",
            },
            Outcome::RetryLater(cause) => match cause {
                RetryCause::StoreUnavailable => "store_unavailable",
                RetryCause::DuplicateInProgress => "duplicate_in_progress",
                RetryCause::RecallFailed => "recall_failed_retry",
            },
        }
    }

    /// The HTTP status a handler answers: 200 for everything taken care of
    /// (delivered, durably accepted, deliberately skipped), so the sender
    /// stops; 400 for a malformed request; 503 when nothing was accepted.
    pub fn status(self) -> u16 {
        match self {
            Outcome::Rejected(_) => 400,
            Outcome::RetryLater(_) => 503,
            _ => 200,
        }
    }

    /// The failure behind this outcome, counted as `DeliveryFailed`.
    pub fn failure(self) -> Option<FailureKind> {
        match self {
            Outcome::Queued(QueueCause::Failed(kind))
            | Outcome::DeadLettered(DeadLetterCause::Failed(kind))
            | Outcome::RetryScheduled(kind) => Some(kind),
            Outcome::RetryLater(RetryCause::StoreUnavailable) => {
                Some(FailureKind::StoreUnavailable)
            }
            _ => None,
        }
    }

    /// The counts and values this outcome adds, besides `DeliveryFailed`.
    pub fn metric_values(self) -> Vec<(Metric, f64)> {
        match self {
            Outcome::Delivered { latency } => {
                let mut values = vec![(Metric::MessagesDelivered, 1.0)];
                if let Some(latency) = latency {
                    values.push((Metric::DeliveryLatency, latency.as_secs_f64() * 1_000.0));
                }
                values
            }
            Outcome::Duplicate => vec![(Metric::DuplicatesDropped, 1.0)],
            Outcome::LoopPrevented(_) => vec![(Metric::LoopsPrevented, 1.0)],
            Outcome::Queued(_) => vec![(Metric::OutboxQueued, 1.0)],
            Outcome::DeadLettered(_) => vec![(Metric::DeadLettered, 1.0)],
            _ => Vec::new(),
        }
    }

    fn is_trouble(self) -> bool {
        self.failure().is_some() || matches!(self, Outcome::DeadLettered(_))
    }
}

/// Who and what one log line is about; each handler fills in its ids.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogIds<'a> {
    pub event_id: Option<&'a str>,
    pub msg_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub from: Option<&'a str>,
    pub team: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub visitor: Option<&'a str>,
    pub retry: Option<&'a str>,
    pub seq: Option<u64>,
    pub detail: Option<&'a str>,
    pub parts: usize,
}

/// Where an outcome is told: the function and direction it happened in.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub function: Function,
    pub direction: Direction,
    /// The log line's name (`slack_event`, `easemob_callback`, `outbox_item`).
    pub event: &'static str,
}

/// The one place an outcome is told: one log line with its `outcome` name
/// and ids, and its EMF documents (docs/design.md §1 "Metrics").
pub fn record(metrics: &Metrics, place: Place, outcome: Outcome, ids: LogIds<'_>) {
    let name = outcome.name(place.direction);
    let latency_ms = match outcome {
        Outcome::Delivered {
            latency: Some(latency),
        } => Some(latency.as_millis() as u64),
        _ => None,
    };
    let reason = outcome.failure().map(FailureKind::name);
    macro_rules! log_line {
        ($level:ident) => {
            tracing::$level!(
                event_id = ids.event_id,
                msg_id = ids.msg_id,
                event_type = ids.event_type,
                from = ids.from,
                visitor = ids.visitor,
                team = ids.team,
                channel = ids.channel,
                retry = ids.retry,
                seq = ids.seq,
                outcome = name,
                reason,
                detail = ids.detail,
                parts = ids.parts,
                status = outcome.status(),
                latency_ms,
                "{}",
                place.event
            )
        };
    }
    if outcome.is_trouble() {
        log_line!(warn);
    } else {
        log_line!(info);
    }
    let function = place.function.name();
    metrics.emit(
        Dimensions {
            function,
            direction: Some(place.direction),
            reason: None,
        },
        &outcome.metric_values(),
    );
    if let Some(kind) = outcome.failure() {
        metrics.emit(
            Dimensions {
                function,
                direction: Some(place.direction),
                reason: Some(kind.name()),
            },
            &[(Metric::DeliveryFailed, 1.0)],
        );
    }
}

/// A drain's look at the outbox: how many messages it saw waiting and how
/// old the oldest of them is (0 and 0 when none waits, so the alarm on
/// the age always has data).
pub fn record_depth(metrics: &Metrics, place: Place, waiting: usize, oldest_age_secs: i64) {
    metrics.emit(
        Dimensions {
            function: place.function.name(),
            direction: Some(place.direction),
            reason: None,
        },
        &[
            (Metric::OutboxDepth, waiting as f64),
            (Metric::OutboxOldestAgeSeconds, oldest_age_secs as f64),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::totals;

    fn key(name: &str, direction: &str, reason: &str) -> (String, String, String) {
        (name.into(), direction.into(), reason.into())
    }

    #[test]
    fn a_failed_send_that_queues_counts_as_queued_and_failed_by_kind() {
        let (metrics, lines) = Metrics::in_memory("Ns");
        let place = Place {
            function: Function::EasemobCallback,
            direction: Direction::ToSlack,
            event: "easemob_callback",
        };
        let outcome = Outcome::Queued(QueueCause::Failed(FailureKind::SlackUnavailable));
        assert_eq!(outcome.name(Direction::ToSlack), "slack_unavailable_queued");
        assert_eq!(outcome.status(), 200);
        record(&metrics, place, outcome, LogIds::default());
        let totals = totals(&lines.lock().unwrap());
        assert_eq!(totals[&key("OutboxQueued", "ToSlack", "")], 1.0);
        assert_eq!(
            totals[&key("DeliveryFailed", "ToSlack", "SlackUnavailable")],
            1.0
        );
        assert_eq!(totals.len(), 2, "{totals:?}");
    }

    #[test]
    fn skips_and_rejections_write_no_metric() {
        let (metrics, lines) = Metrics::in_memory("Ns");
        let place = Place {
            function: Function::SlackEvents,
            direction: Direction::ToKefu,
            event: "slack_event",
        };
        record(
            &metrics,
            place,
            Outcome::NotForUs(Skip::EmptyMessage),
            LogIds::default(),
        );
        let rejected = Outcome::Rejected(Rejection::MalformedEvent);
        assert_eq!(rejected.status(), 400);
        record(&metrics, place, rejected, LogIds::default());
        assert!(lines.lock().unwrap().is_empty());
        assert_eq!(Outcome::RetryLater(RetryCause::RecallFailed).status(), 503);
    }
}
