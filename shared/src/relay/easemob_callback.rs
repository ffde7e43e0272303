//! `POST /easemob/callback`: agent replies → Slack (issue "Agent replies reach Slack").
//!
//! Easemob calls this for every message of the app, including the ones the
//! bridge itself sent as visitors. Only HTTP 200 counts as delivered, and an
//! endpoint failing ~90 times in 30 s is banned for a while (docs/design.md §3), so
//! every genuine callback that is not for us gets 200 and a log line saying
//! why, and so does every reply the bridge has durably accepted: one Slack
//! did not take goes to the outbox (relay/outbox.rs) and a drain posts it
//! later, so a Slack outage cannot get the endpoint banned. 5xx is kept for
//! DynamoDB being unreachable (nothing is accepted then; Easemob's retry
//! may do better), 4xx for requests that are not Easemob's.
//!
//! Loop safety: only messages *from* the IM service number are posted. The
//! visitor's own messages (sent by `slack_events`) come back with `from` =
//! visitor and are skipped here; the bridge's Slack posts come back as
//! Slack events and are stopped by `loop_guard`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bridge::Bridge;
use crate::clock::now_epoch_millis;
use crate::easemob::callback::{verify_callback, Callback, MessageBody, MAX_AGE_MILLIS};
use crate::http_types::{HttpRequest, HttpResponse};
use crate::lambda::Function;
use crate::relay::outcome::{
    self, Handled, LogIds, LoopRule, Outcome, Place, Rejection, RetryCause, Skip,
};
use crate::relay::pipeline::{
    self, complete, release, report_for_taken, Claimed, Message, Planned, Report, CLAIM_LEASE_SECS,
};
use crate::relay::recalls::{self, RecallOutcome};
use crate::relay::reply_parts::{self, SlackConversation};
use crate::relay::session_notices;
use crate::relay::to_slack::AgentIdentity;
use crate::store::{Claim, ClaimKey, Direction, Installation, WorkspaceKey, CLAIM_TTL_SECS};
use crate::visitor::VisitorId;

/// Everything one callback does fits in this, so Easemob gets its answer
/// before it gives up on the request.
pub const BUDGET: Duration = Duration::from_millis(2_500);
/// A replay inside the accepted window finds the message still claimed.
const _: () = assert!(MAX_AGE_MILLIS <= CLAIM_TTL_SECS * 1_000);
/// Longest message id taken (Easemob's are 18–19 digits).
const MAX_MSG_ID_BYTES: usize = 256;

/// Entry point for the `easemob-callback` function.
pub async fn handle(bridge: &Bridge, request: &HttpRequest) -> HttpResponse {
    let deadline = Instant::now() + BUDGET;
    if !request.method.eq_ignore_ascii_case("POST") {
        tracing::warn!(method = %request.method, outcome = "method_not_allowed", "easemob_callback");
        return HttpResponse::text(405, "use POST").with_header("allow", "POST");
    }
    if request.body.is_empty() {
        return reject(400, "empty body", "empty_body");
    }
    if !request.has_media_type("application/json") {
        tracing::warn!(
            content_type = request.header("content-type"),
            outcome = "wrong_content_type",
            "easemob_callback"
        );
        return HttpResponse::text(400, "expected Content-Type: application/json");
    }
    let document: Value = match serde_json::from_slice(&request.body) {
        Ok(document @ Value::Object(_)) => document,
        Ok(_) => return reject(400, "body is not a JSON object", "malformed_body"),
        Err(_) => return reject(400, "body is not JSON", "malformed_body"),
    };
    // Before anything else is read or done: a forged or replayed callback
    // gets nothing.
    if let Err(error) = verify_callback(
        &document,
        &bridge.config.easemob_callback_secret,
        &bridge.config.easemob_app_key,
        now_epoch_millis(),
    ) {
        tracing::warn!(reason = %error, outcome = error.outcome(), "easemob_callback");
        return HttpResponse::text(401, format!("invalid security: {error}"));
    }
    let callback = match Callback::parse(document) {
        Ok(callback) => callback,
        Err(error) => {
            tracing::warn!(%error, outcome = "malformed_callback", "easemob_callback");
            return HttpResponse::text(400, "body is not an Easemob message callback");
        }
    };
    let report = handle_callback(bridge, &callback, deadline).await;
    let visitor = report.visitor.as_ref().map(ToString::to_string);
    let ids = LogIds {
        msg_id: Some(&callback.msg_id),
        event_type: Some(&callback.event_type),
        from: Some(&callback.from),
        visitor: visitor.as_deref(),
        team: report.visitor.as_ref().map(VisitorId::workspace),
        channel: report.visitor.as_ref().map(|v| v.channel().as_str()),
        detail: report.detail.as_deref(),
        parts: report.parts,
        ..LogIds::default()
    };
    outcome::record(&bridge.metrics, PLACE, report.outcome, ids);
    response_for(report.outcome)
}

/// Where this handler's outcomes are told (relay/outcome.rs).
const PLACE: Place = Place {
    function: Function::EasemobCallback,
    direction: Direction::ToSlack,
    event: "easemob_callback",
};

/// The answer Easemob gets for an outcome: 200 for everything handled,
/// accepted or deliberately skipped (it must not send it again), 400 with
/// the reason for a malformed callback, 503 when nothing was accepted.
fn response_for(outcome: Outcome) -> HttpResponse {
    match outcome {
        Outcome::Rejected(rejection) => HttpResponse::text(outcome.status(), rejection.reason()),
        Outcome::RetryLater(_) => HttpResponse::text(
            outcome.status(),
            format!("temporarily unavailable: {}", outcome.name(PLACE.direction)),
        ),
        _ => HttpResponse::text(outcome.status(), ""),
    }
}

async fn handle_callback(bridge: &Bridge, callback: &Callback, deadline: Instant) -> Report {
    if !callback.is_message() {
        return Report::skipped(Skip::NotAMessageEvent).with_detail(callback.event_type.clone());
    }
    if callback.msg_id.trim().is_empty() {
        return Report::done(Outcome::Rejected(Rejection::MissingMsgId));
    }
    // `msg_id` names the claim record: an absurd one is refused here rather
    // than failing a table call (which would read as a 5xx).
    if !names_a_record(&callback.msg_id) {
        return Report::done(Outcome::Rejected(Rejection::MalformedMsgId));
    }
    // The loop rule: only the service number speaks for an agent. The
    // visitor's own message, echoed back with `from` = visitor, stops here.
    let service_number = &bridge.config.easemob_im_service_number;
    if !callback.from.eq_ignore_ascii_case(service_number) {
        return Report::done(Outcome::LoopPrevented(LoopRule::VisitorEcho));
    }
    let visitor = match VisitorId::decode(&callback.to) {
        Ok(visitor) => visitor,
        Err(error) => {
            return Report::skipped(Skip::RecipientNotAVisitor)
                .with_detail(format!("to={}: {error}", callback.to))
        }
    };
    // An agent reply for a workspace this deployment does not serve is not
    // posted; 200, since Easemob would only send it again.
    if !bridge
        .config
        .allowed_workspaces
        .allows([Some(visitor.workspace())])
    {
        return Report::skipped(Skip::WorkspaceNotAllowed).for_visitor(&visitor);
    }
    let workspace = WorkspaceKey::from_id(visitor.workspace());
    let installation = match bridge.installation(&workspace).await {
        Ok(Some(installation)) => installation,
        Ok(None) => return Report::skipped(Skip::WorkspaceNotInstalled).for_visitor(&visitor),
        Err(error) => {
            return Report::retry_later(RetryCause::StoreUnavailable, error.to_string())
                .for_visitor(&visitor)
        }
    };
    if let Some(recalled) = recalls::recalled_id(callback) {
        return take_back(bridge, callback, recalled, &visitor, &installation)
            .await
            .for_visitor(&visitor);
    }
    if !reply_parts::has_content(&callback.payload) {
        return Report::skipped(Skip::NothingToShow)
            .with_detail(body_kinds(callback))
            .for_visitor(&visitor);
    }
    let started = deadline - BUDGET;
    deliver(bridge, callback, &visitor, &installation, started, deadline)
        .await
        .for_visitor(&visitor)
}

/// Plans the message's steps once it is claimed, and delivers them
/// through the pipeline (relay/pipeline.rs).
async fn deliver(
    bridge: &Bridge,
    callback: &Callback,
    visitor: &VisitorId,
    installation: &Installation,
    started: Instant,
    deadline: Instant,
) -> Report {
    let msg_id = callback.msg_id.trim();
    let expected = pipeline::expected_thread(bridge, visitor);
    let message = Message {
        claim: ClaimKey::EasemobMessage(msg_id.to_string()),
        origin: msg_id,
        workspace: &installation.key,
        visitor,
        thread: pipeline::thread_check(&expected),
        started,
    };
    let agent = AgentIdentity::from_ext(&callback.payload.ext);
    let kefu_msg_id = callback.payload.ext.weichat.msg_id.trim();
    pipeline::deliver(bridge, message, async |claimed: &Claimed| {
        // Direct messages never thread; in a channel the reply goes to the
        // thread the visitor last wrote in (slack_events remembers it).
        let thread_ts = claimed
            .conversation
            .thread_ts
            .clone()
            .filter(|_| !visitor.channel().is_direct_message());
        let slack = SlackConversation {
            installation,
            agent: &agent,
            channel: visitor.channel().as_str(),
            thread_ts,
            language: session_notices::language_for(bridge, &installation.key, &callback.payload)
                .await,
            origin: msg_id,
            kefu_msg_id: Some(kefu_msg_id).filter(|id| names_a_record(id)),
            visitor: visitor.to_string(),
            carried: Vec::new(),
        };
        // A session notice, text posts, a question with buttons, files
        // (issues "Rich conversations", "The Kefu conversation in Slack");
        // each step also has a plain post form for the outbox.
        let parts = reply_parts::plan(&callback.payload, visitor, slack.destination());
        let deadline = reply_parts::deadline_for(&parts, started, deadline);
        Planned::Send {
            recipient: slack,
            parts,
            deadline,
        }
    })
    .await
}

/// An agent's recall: claimed like any message, so it is done once; the
/// posts that carried the recalled message are deleted.
async fn take_back(
    bridge: &Bridge,
    callback: &Callback,
    recalled: &str,
    visitor: &VisitorId,
    installation: &Installation,
) -> Report {
    if !names_a_record(recalled) {
        return Report::skipped(Skip::RecallWithoutUsableId)
            .with_detail(recalled.chars().take(80).collect::<String>());
    }
    let claim_key = ClaimKey::EasemobMessage(callback.msg_id.trim().to_string());
    match bridge.store.claim(&claim_key, CLAIM_LEASE_SECS).await {
        Ok(Claim::Acquired { .. }) => {}
        Ok(taken) => return report_for_taken(taken),
        Err(error) => return Report::retry_later(RetryCause::StoreUnavailable, error.to_string()),
    }
    let detail = format!("recalled={recalled}");
    match recalls::recall(bridge, installation, visitor, recalled).await {
        RecallOutcome::Deleted {
            deleted,
            already_gone,
            refused,
        } => {
            complete(bridge, &claim_key, 0).await;
            Report {
                parts: deleted,
                ..Report::done(Outcome::Handled(Handled::RecalledInSlack)).with_detail(format!(
                    "{detail} already_gone={already_gone} refused={refused}"
                ))
            }
        }
        RecallOutcome::Unknown => {
            complete(bridge, &claim_key, 0).await;
            Report::done(Outcome::Handled(Handled::RecallOfUnknownMessage)).with_detail(detail)
        }
        RecallOutcome::OtherVisitor => {
            complete(bridge, &claim_key, 0).await;
            Report::done(Outcome::Handled(Handled::RecallOfAnotherVisitorsMessage))
                .with_detail(detail)
        }
        RecallOutcome::Unavailable(error) => {
            release(bridge, &claim_key, 0).await;
            Report::retry_later(RetryCause::RecallFailed, format!("{detail}: {error}"))
        }
    }
}

/// An id that will name a table record (a claim, a recall record):
/// Easemob's are 18–19 digits, Kefu's a UUID; an absurd one is refused
/// before it fails a table call (which would read as a 5xx).
fn names_a_record(id: &str) -> bool {
    let id = id.trim();
    !id.is_empty() && id.len() <= MAX_MSG_ID_BYTES && !id.chars().any(char::is_control)
}

/// For the log line of a message with nothing to show: `cmd:KF-ACK`, `txt`…
fn body_kinds(callback: &Callback) -> String {
    let kinds: Vec<String> = callback
        .payload
        .bodies
        .iter()
        .map(|body| match body {
            MessageBody::Text { .. } => "txt".to_string(),
            MessageBody::Command { action } => format!("cmd:{action}"),
            MessageBody::Image(_) => "img".to_string(),
            MessageBody::File(_) => "file".to_string(),
            MessageBody::Audio(_) => "audio".to_string(),
            MessageBody::Video(_) => "video".to_string(),
            MessageBody::Location { .. } => "loc".to_string(),
            MessageBody::Other { kind } => kind.clone(),
        })
        .collect();
    if kinds.is_empty() {
        "no bodies".to_string()
    } else {
        kinds.join(",")
    }
}

fn reject(status: u16, reason: &str, outcome: &'static str) -> HttpResponse {
    tracing::warn!(outcome, reason, "easemob_callback");
    HttpResponse::text(status, reason)
}
