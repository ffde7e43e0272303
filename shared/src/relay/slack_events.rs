//! `POST /slack/events`: Slack Events API → Kefu (docs/design.md §2).

use std::time::{Duration, Instant};

use crate::bridge::Bridge;
use crate::clock::now_epoch_secs;
use crate::dynamo::DynamoError;
use crate::easemob::visitor_message::VisitorEnvelope;
use crate::easemob::TextMessage;
use crate::http_types::{HttpRequest, HttpResponse};
use crate::lambda::Function;
use crate::loop_guard::{not_forwarded, BridgeIdentity};
use crate::relay::outcome::{
    self, Handled, LogIds, LoopRule, Outcome, Place, Rejection, RetryCause, Skip,
};
use crate::relay::pipeline::{self, Claimed, Message, Planned, Report};
use crate::relay::to_kefu::KefuVisitor;
use crate::relay::{files, routing, visitor_profile};
use crate::slack::events::{
    is_supported_channel_type, message_change, Envelope, Event, EventCallback, MessageChange,
    MessageEvent, SlackFile,
};
use crate::slack::ids::is_slack_id;
use crate::slack::markup::{mentioned_users, to_plain_text};
use crate::slack::{ChannelId, UserId};
use crate::store::{ClaimKey, Direction, Installation, ThreadCheck, WorkspaceKey};
use crate::visitor::VisitorId;

/// Slack waits 3 s; everything the handler does fits inside this.
pub const BUDGET: Duration = Duration::from_millis(2_600);
/// A part after the first is sent only with this much of the budget left;
/// otherwise it waits in the outbox for the next drain.
const PART_ALLOWANCE: Duration = Duration::from_millis(1_000);

/// Entry point for the `slack-events` function.
pub async fn handle(bridge: &Bridge, request: &HttpRequest) -> HttpResponse {
    let deadline = Instant::now() + BUDGET;
    if !request.method.eq_ignore_ascii_case("POST") {
        return reject(405, "use POST").with_header("allow", "POST");
    }
    if let Err(reason) = bridge.verifier.verify(
        request.header("x-slack-request-timestamp"),
        request.header("x-slack-signature"),
        &request.body,
        now_epoch_secs(),
    ) {
        tracing::warn!(reason = %reason, "slack_signature_rejected");
        return reject(401, &format!("invalid request signature: {reason}"));
    }
    if request.body.is_empty() {
        tracing::warn!("slack_event_empty_body");
        return reject(400, "empty body");
    }
    if !request.has_media_type("application/json") {
        tracing::warn!(
            content_type = request.header("content-type"),
            "slack_event_wrong_content_type"
        );
        return reject(415, "expected Content-Type: application/json");
    }
    let envelope: Envelope = match serde_json::from_slice(&request.body) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(%error, "slack_event_malformed_json");
            return reject(400, "body is not a Slack event envelope");
        }
    };
    match envelope {
        Envelope::UrlVerification { challenge } => {
            tracing::info!(outcome = "url_verification", "slack_event");
            HttpResponse::json(200, &serde_json::json!({ "challenge": challenge }))
        }
        Envelope::AppRateLimited { team_id } => {
            tracing::warn!(
                team = team_id.as_deref(),
                outcome = "app_rate_limited",
                "slack_event"
            );
            ok()
        }
        Envelope::Unknown => {
            tracing::info!(outcome = "unknown_envelope_type", "slack_event");
            ok()
        }
        Envelope::EventCallback(callback) => {
            if let Err(reason) = check_ids(&callback) {
                tracing::warn!(reason, outcome = "malformed_ids", "slack_event");
                return reject(400, reason);
            }
            let report = handle_callback(bridge, &callback, deadline).await;
            let ids = LogIds {
                event_id: Some(&callback.event_id),
                team: Some(&callback.team_id),
                channel: report.channel.as_deref(),
                retry: request.header("x-slack-retry-num"),
                detail: report.detail.as_deref(),
                parts: report.parts,
                ..LogIds::default()
            };
            outcome::record(&bridge.metrics, PLACE, report.outcome, ids);
            response_for(report.outcome)
        }
    }
}

/// Longest `event_id` taken; Slack's are about a dozen characters. Ids
/// become DynamoDB keys (at most 2,048 bytes), so an absurd one is refused
/// here rather than failing a table call (which would read as a 5xx).
const MAX_EVENT_ID_BYTES: usize = 256;

/// The envelope's ids, which name records: `event_id` printable and short,
/// `team_id` and `enterprise_id` Slack ids.
fn check_ids(callback: &EventCallback) -> Result<(), &'static str> {
    let event_id = &callback.event_id;
    if event_id.is_empty()
        || event_id.len() > MAX_EVENT_ID_BYTES
        || event_id.chars().any(char::is_control)
    {
        return Err("event_id is empty, too long or not printable");
    }
    if !is_slack_id(&callback.team_id) {
        return Err("team_id is not a Slack id");
    }
    match callback.enterprise_id.as_deref() {
        Some(enterprise) if !enterprise.is_empty() && !is_slack_id(enterprise) => {
            Err("enterprise_id is not a Slack id")
        }
        _ => Ok(()),
    }
}

/// Where this handler's outcomes are told (relay/outcome.rs).
const PLACE: Place = Place {
    function: Function::SlackEvents,
    direction: Direction::ToKefu,
    event: "slack_event",
};

/// The answer Slack gets for an outcome: 200 stops its retries, a 4xx
/// carries the reason and asks for none, 503 asks for one.
fn response_for(outcome: Outcome) -> HttpResponse {
    match outcome {
        Outcome::Rejected(rejection) => reject(outcome.status(), rejection.reason()),
        Outcome::RetryLater(_) => HttpResponse::text(
            outcome.status(),
            format!("temporarily unavailable: {}", outcome.name(PLACE.direction)),
        ),
        _ => HttpResponse::text(outcome.status(), ""),
    }
}

async fn handle_callback(bridge: &Bridge, callback: &EventCallback, deadline: Instant) -> Report {
    let event: Event = match serde_json::from_value(callback.event.clone()) {
        Ok(event) => event,
        Err(error) => {
            return Report {
                detail: Some(error.to_string()),
                ..Report::done(Outcome::Rejected(Rejection::MalformedEvent))
            }
        }
    };
    // Uninstall events still clean up after a workspace that was served
    // once; anything else from a workspace this deployment does not serve
    // stops here, answered 200 so Slack does not retry (docs/design.md §1).
    let is_uninstall = matches!(event, Event::AppUninstalled | Event::TokensRevoked { .. });
    let ids = [
        Some(callback.team_id.as_str()),
        callback.enterprise_id.as_deref(),
    ];
    if !is_uninstall && !bridge.config.allowed_workspaces.allows(ids) {
        return Report::skipped(Skip::WorkspaceNotAllowed);
    }
    match event {
        Event::Message(message) => {
            let channel = message.channel.clone();
            handle_message(bridge, callback, &message, deadline)
                .await
                .with_channel(channel.as_deref())
        }
        Event::AppUninstalled => uninstall(bridge, callback, Handled::AppUninstalled).await,
        Event::TokensRevoked { tokens } if !tokens.bot.is_empty() => {
            uninstall(bridge, callback, Handled::TokensRevoked).await
        }
        Event::TokensRevoked { .. } => Report::skipped(Skip::UserTokensRevokedIgnored),
        Event::Other => Report::skipped(Skip::UnhandledEventType),
    }
}

/// The installation an event belongs to: enterprise-wide installs are keyed
/// by enterprise, others by team.
async fn find_installation(
    bridge: &Bridge,
    callback: &EventCallback,
) -> Result<Option<Installation>, DynamoError> {
    let enterprise = callback.enterprise_id.as_deref().filter(|e| !e.is_empty());
    let mut keys = Vec::new();
    if callback.is_enterprise_install {
        keys.extend(enterprise.map(|e| WorkspaceKey::Enterprise(e.to_string())));
    }
    keys.push(WorkspaceKey::Team(callback.team_id.clone()));
    if !callback.is_enterprise_install {
        keys.extend(enterprise.map(|e| WorkspaceKey::Enterprise(e.to_string())));
    }
    for key in keys {
        if let Some(installation) = bridge.installation(&key).await? {
            return Ok(Some(installation));
        }
    }
    Ok(None)
}

fn workspace_key(callback: &EventCallback) -> WorkspaceKey {
    match callback.enterprise_id.as_deref() {
        Some(enterprise) if callback.is_enterprise_install && !enterprise.is_empty() => {
            WorkspaceKey::Enterprise(enterprise.to_string())
        }
        _ => WorkspaceKey::Team(callback.team_id.clone()),
    }
}

/// `app_uninstalled` / bot `tokens_revoked`: delete the installation and
/// everything cached for the workspace. Idempotent.
async fn uninstall(bridge: &Bridge, callback: &EventCallback, done: Handled) -> Report {
    let key = workspace_key(callback);
    bridge.forget_workspace(&key);
    match bridge.store.delete_workspace(&key).await {
        Ok(deleted) => Report {
            detail: Some(format!("{deleted} records deleted")),
            ..Report::done(Outcome::Handled(done))
        },
        Err(error) => Report::retry_later(RetryCause::StoreUnavailable, error.to_string()),
    }
}

async fn handle_message(
    bridge: &Bridge,
    callback: &EventCallback,
    message: &MessageEvent,
    deadline: Instant,
) -> Report {
    // The handler's start, for the delivery latency.
    let started = deadline - BUDGET;
    let channel_type = message.channel_type.as_deref().unwrap_or("");
    if !is_supported_channel_type(channel_type) {
        return Report::skipped(Skip::UnsupportedChannelType);
    }
    let installation = match find_installation(bridge, callback).await {
        Ok(Some(installation)) => installation,
        Ok(None) => return Report::skipped(Skip::WorkspaceNotInstalled),
        Err(error) => return Report::retry_later(RetryCause::StoreUnavailable, error.to_string()),
    };
    let me = BridgeIdentity {
        bot_id: &installation.bot_id,
        bot_user_id: &installation.bot_user_id,
        app_id: &callback.api_app_id,
    };
    // What the agent is told: a message, an edit, a deletion (issue "The
    // Kefu conversation in Slack"); `written` is the message whose author
    // counts — the new version of an edit, the old one of a deletion.
    let change = message_change(message);
    let written = match change {
        MessageChange::Wrote(written)
        | MessageChange::Edited(written)
        | MessageChange::Deleted(written) => Some(written),
        MessageChange::Other => None,
    };
    // A deleted bot post (the bridge's own, deleted for a recall) shows its
    // author only in `previous_message`: the loop guard reads it there too.
    if let Some(reason) =
        not_forwarded(message, me).or_else(|| written.and_then(|w| not_forwarded(w, me)))
    {
        return Report {
            detail: Some(reason.rule()),
            ..Report::done(Outcome::LoopPrevented(LoopRule::SlackBot(reason)))
        };
    }
    let Some(written) = written else {
        return Report {
            detail: message.subtype.clone(),
            ..Report::skipped(Skip::SubtypeNotForwarded)
        };
    };
    let (Some(user), Some(channel)) = (
        written.user.as_deref().and_then(UserId::parse),
        message.channel.as_deref().and_then(ChannelId::parse),
    ) else {
        return Report::skipped(Skip::MissingUserOrChannel);
    };
    let visitor = match VisitorId::new(installation.key.id(), &user, &channel) {
        Ok(visitor) => visitor,
        Err(error) => {
            return Report {
                detail: Some(error.to_string()),
                ..Report::skipped(Skip::VisitorIdInvalid)
            }
        }
    };

    // The thread this message puts the conversation in (docs/design.md §2
    // `thread_ts`): when the record already names it, nothing is written.
    let thread = match change {
        MessageChange::Wrote(_) if !visitor.channel().is_direct_message() => {
            match message.thread_ts.as_deref() {
                Some(thread_ts) => ThreadCheck::In(thread_ts),
                None => ThreadCheck::TopLevel,
            }
        }
        _ => ThreadCheck::Any,
    };
    let message_ref = Message {
        claim: ClaimKey::SlackEvent(callback.event_id.clone()),
        origin: &callback.event_id,
        workspace: &installation.key,
        visitor: &visitor,
        thread,
        started,
    };
    pipeline::deliver(bridge, message_ref, async |claimed: &Claimed| {
        let parts_done = claimed.parts_done;
        // The message's lookups, at once and within a slice of its time:
        // mentions, the visitor's profile, the team (docs/design.md §2
        // "Slack markup to plain text").
        let lookups_until = visitor_profile::lookups_deadline(deadline);
        let written_text = async {
            match change {
                MessageChange::Edited(now) => {
                    edited_text(&message_text(bridge, &installation, now, lookups_until).await)
                        .unwrap_or_default()
                }
                MessageChange::Deleted(before) => {
                    deleted_note(&message_text(bridge, &installation, before, lookups_until).await)
                }
                _ => message_text(bridge, &installation, message, lookups_until).await,
            }
        };
        let (text, user_profile, team_profile) = tokio::join!(
            written_text,
            visitor_profile::by(
                lookups_until,
                "visitor",
                visitor_profile::slack_user(bridge, &installation, user.as_str()),
            ),
            visitor_profile::by(
                lookups_until,
                "team",
                visitor_profile::slack_team(bridge, &installation, &callback.team_id),
            ),
        );
        // Files travel with what was written; an edit or a deletion is words.
        let files: &[SlackFile] = match change {
            MessageChange::Wrote(_) => &message.files,
            _ => &[],
        };
        if text.trim().is_empty() && files.is_empty() {
            return Planned::Nothing(Report::skipped(Skip::EmptyMessage));
        }
        if let MessageChange::Wrote(_) = change {
            remember_thread(
                bridge,
                &installation.key,
                &visitor,
                message,
                claimed.conversation.thread_ts.as_deref(),
            )
            .await;
        }
        let visitor_info = visitor_profile::visitor_info(
            &visitor,
            user_profile.as_ref(),
            team_profile.as_ref(),
            &installation,
            channel_type,
        );
        let from = visitor.to_string();
        let queue = routing::queue_for(bridge, &installation.key, &channel).await;
        let outgoing = TextMessage {
            from: &from,
            service_number: &bridge.config.easemob_im_service_number,
            visitor: &visitor_info,
            queue: queue.as_deref(),
        };
        // The text first, then one message per file, in order (issue "Rich
        // conversations"). Files are uploaded now, even when the messages
        // queue behind others: the outbox keeps message bodies, not files.
        let mut bodies = if text.trim().is_empty() {
            Vec::new()
        } else {
            outgoing.bodies(&text)
        };
        let mut deadline = deadline;
        if !files.is_empty() {
            let shared = files::SharedIn {
                bot_token: &bridge.bot_token(&installation),
                channel: channel.as_str(),
                user: user.as_str(),
                thread_ts: message.thread_ts.as_deref(),
            };
            let envelope = VisitorEnvelope {
                from: &from,
                service_number: &bridge.config.easemob_im_service_number,
                visitor: &visitor_info,
                queue: queue.as_deref(),
            };
            let file_bodies = files::visitor_file_bodies(
                bridge,
                shared,
                files,
                parts_done.saturating_sub(bodies.len()),
                started + files::FILE_BUDGET,
                |file| envelope.file(file),
                |line| outgoing.bodies(line).into_iter().next().unwrap_or_default(),
            )
            .await;
            bodies.extend(file_bodies);
            // Slack's 3 s are spent on a large file anyway (its retry finds
            // the claim); what bounds the sends now is Lambda's timeout.
            deadline = deadline.max(started + files::SEND_AFTER_FILES);
        }
        Planned::Send {
            recipient: KefuVisitor {
                workspace: &installation.key,
                visitor: &visitor,
                allowance: PART_ALLOWANCE,
            },
            parts: bodies,
            deadline,
        }
    })
    .await
}

/// The text the agent reads: Slack markup made plain (files follow as
/// their own messages).
async fn message_text(
    bridge: &Bridge,
    installation: &Installation,
    message: &MessageEvent,
    lookups_until: Instant,
) -> String {
    let raw = message.text.as_deref().unwrap_or("");
    // Only well-formed user ids are looked up (each is a users.info call
    // and a cache key).
    let mut mentioned = mentioned_users(raw);
    mentioned.retain(|user| UserId::parse(user).is_some());
    let names =
        visitor_profile::mention_names(bridge, installation, &mentioned, lookups_until).await;
    to_plain_text(raw, &names)
}

/// What the agent reads for an edited message: "(edited) new text"
/// (`None` when the new version has no text).
fn edited_text(new_text: &str) -> Option<String> {
    let new_text = new_text.trim();
    (!new_text.is_empty()).then(|| format!("(edited) {new_text}"))
}

/// Longest quote of a deleted message in the note to the agent.
const DELETED_QUOTE_CHARS: usize = 100;

/// What the agent reads when the customer deletes a message: a short note
/// naming it by its first words.
fn deleted_note(old_text: &str) -> String {
    let old_text = old_text.split_whitespace().collect::<Vec<_>>().join(" ");
    if old_text.is_empty() {
        return "(deleted a message)".to_string();
    }
    let mut quote: String = old_text.chars().take(DELETED_QUOTE_CHARS).collect();
    if quote.len() < old_text.len() {
        quote.push('…');
    }
    format!("(deleted a message: \"{quote}\")")
}

/// In a channel, agent replies go to the thread the visitor last wrote in;
/// a top-level message resets it (docs/design.md §2 `thread_ts`). Written only when it
/// differs from the conversation record just read, so the warm path stays
/// at claim + conversation read + complete.
async fn remember_thread(
    bridge: &Bridge,
    workspace: &WorkspaceKey,
    visitor: &VisitorId,
    message: &MessageEvent,
    stored: Option<&str>,
) {
    if visitor.channel().is_direct_message() {
        return;
    }
    let thread = message.thread_ts.as_deref();
    if thread == stored {
        return;
    }
    let key = visitor.to_string();
    if let Err(error) = bridge
        .store
        .put_conversation_thread(workspace, &key, thread)
        .await
    {
        tracing::warn!(visitor = %key, %error, "conversation_thread_not_stored");
    }
}

fn ok() -> HttpResponse {
    HttpResponse::text(200, "")
}

/// A 4xx Slack should not retry: the same request will fail the same way.
fn reject(status: u16, reason: &str) -> HttpResponse {
    HttpResponse::text(status, reason).with_header("x-slack-no-retry", "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_is_the_new_text_marked() {
        assert_eq!(
            edited_text(" two lattes \n").as_deref(),
            Some("(edited) two lattes")
        );
        assert_eq!(edited_text("  "), None);
    }

    #[test]
    fn a_deletion_is_a_short_note_with_the_first_words() {
        assert_eq!(deleted_note(""), "(deleted a message)");
        assert_eq!(
            deleted_note("wrong\n order"),
            "(deleted a message: \"wrong order\")"
        );
        let long = deleted_note(&"word ".repeat(50));
        assert!(long.ends_with("…\")"), "{long}");
        assert!(long.chars().count() < 130);
    }
}
