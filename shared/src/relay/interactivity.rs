//! `POST /slack/interactivity`: button clicks and the comment modal →
//! Kefu (issue "Rich conversations").
//!
//! Verified exactly like every Slack request (docs/design.md §2 "Request signing",
//! over the raw form body; 401 and nothing else otherwise). A click answers
//! the question it belongs to as the visitor who clicked (`team_user_channel`):
//! a menu item as a `txt` with `ext.msgtype.choice.menuid`, a rating as the
//! `enquiry` control message, "Talk to a person" as a `TransferToKf` command
//! (shapes in `easemob/visitor_message.rs`, from kefu-webim). Only the
//! visitor the question was asked of may answer: its stored record says
//! who; without one, only in a direct message (its one user is the
//! visitor), anywhere else the click is refused (`may_answer`). Each
//! message is answered once: the answer is claimed per (workspace, channel,
//! message ts) before anything is sent, so a double click sends once, and
//! the message is then updated to show the answer without its buttons.
//!
//! Slack shows the user an error unless it gets 200 within 3 s, and does
//! not retry: failures are answered 200 with a note to the user (an
//! ephemeral message, or an error in the modal) and the question left open.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bridge::Bridge;
use crate::clock::now_epoch_secs;
use crate::easemob::visitor_message::VisitorEnvelope;
use crate::http_types::{HttpRequest, HttpResponse};
use crate::relay::pipeline::CLAIM_LEASE_SECS;
use crate::relay::prompts::{self, answer_only, Answer, PostedPrompt, Prompt};
use crate::relay::{routing, to_kefu, visitor_profile};
use crate::slack::blocks::{
    self, block_id_args, COMMENT_ACTION, COMMENT_INPUT_ACTION, COMMENT_INPUT_BLOCK, COMMENT_VIEW,
    ENQUIRY_BLOCK_PREFIX, MENU_ITEM_ACTION_PREFIX, RATE_ACTION_PREFIX, RATING_INPUT_ACTION,
    RATING_INPUT_BLOCK, TRANSFER_ACTION, TRANSFER_BLOCK_PREFIX,
};
use crate::slack::interactivity::{Action, BlockActions, IdRef, Interaction, ViewSubmission};
use crate::slack::web::{EphemeralMessage, MessageUpdate};
use crate::slack::{ChannelId, UserId};
use crate::store::{Claim, ClaimKey, Installation, WorkspaceKey};
use crate::visitor::VisitorId;

/// Slack waits 3 s for the answer.
pub const BUDGET: Duration = Duration::from_millis(2_600);

/// True for the interactivity route, with or without an API Gateway stage
/// prefix (`/prod/slack/interactivity`); the `slack-events` function serves
/// it next to `/slack/events` and routes by path.
pub fn is_interactivity_path(path: &str) -> bool {
    path.trim_end_matches('/').ends_with("/slack/interactivity")
}

/// Entry point for `POST /slack/interactivity` (the `slack-events` function).
pub async fn handle(bridge: &Bridge, request: &HttpRequest) -> HttpResponse {
    let deadline = Instant::now() + BUDGET;
    if !request.method.eq_ignore_ascii_case("POST") {
        return HttpResponse::text(405, "use POST").with_header("allow", "POST");
    }
    if let Err(reason) = bridge.verifier.verify(
        request.header("x-slack-request-timestamp"),
        request.header("x-slack-signature"),
        &request.body,
        now_epoch_secs(),
    ) {
        tracing::warn!(reason = %reason, "slack_signature_rejected");
        return HttpResponse::text(401, format!("invalid request signature: {reason}"));
    }
    if !request.has_media_type("application/x-www-form-urlencoded") {
        tracing::warn!(
            content_type = request.header("content-type"),
            outcome = "wrong_content_type",
            "slack_interaction"
        );
        return HttpResponse::text(
            415,
            "expected Content-Type: application/x-www-form-urlencoded",
        );
    }
    let interaction = match Interaction::from_form(&request.body) {
        Ok(interaction) => interaction,
        Err(error) => {
            tracing::warn!(%error, outcome = "malformed_payload", "slack_interaction");
            return HttpResponse::text(400, format!("{error}"));
        }
    };
    let (outcome, response) = match interaction {
        Interaction::BlockActions(actions) => on_block_actions(bridge, &actions, deadline).await,
        Interaction::ViewSubmission(submission) => {
            on_view_submission(bridge, &submission, deadline).await
        }
        Interaction::Other => ("interaction_type_not_handled".into(), ok()),
    };
    tracing::info!(outcome = %outcome, status = response.status, "slack_interaction");
    response
}

fn ok() -> HttpResponse {
    HttpResponse::text(200, "")
}

/// Who clicked, where, in which message.
struct Click<'a> {
    installation: Installation,
    visitor: VisitorId,
    channel: ChannelId,
    user: UserId,
    ts: &'a str,
    thread_ts: Option<&'a str>,
    stored: Option<PostedPrompt>,
}

/// What an answer came to.
enum Delivery {
    Sent,
    AlreadyAnswered,
    Failed(&'static str),
}

/// The installation a payload belongs to: enterprise-wide installs are
/// keyed by enterprise, others by team (as for events).
async fn find_installation(
    bridge: &Bridge,
    team: Option<&IdRef>,
    enterprise: Option<&IdRef>,
    is_enterprise_install: bool,
) -> Result<Option<Installation>, String> {
    let team = team.map(|t| t.id.as_str()).filter(|id| !id.is_empty());
    let enterprise = enterprise
        .map(|e| e.id.as_str())
        .filter(|id| !id.is_empty());
    let mut keys = Vec::new();
    if is_enterprise_install {
        keys.extend(enterprise.map(|e| WorkspaceKey::Enterprise(e.to_string())));
    }
    keys.extend(team.map(|t| WorkspaceKey::Team(t.to_string())));
    if !is_enterprise_install {
        keys.extend(enterprise.map(|e| WorkspaceKey::Enterprise(e.to_string())));
    }
    for key in keys {
        if let Some(installation) = bridge.installation(&key).await.map_err(|e| e.to_string())? {
            return Ok(Some(installation));
        }
    }
    Ok(None)
}

/// Resolves the clicker's conversation; `Err` is the outcome to log.
#[allow(clippy::too_many_arguments)]
async fn click<'a>(
    bridge: &Bridge,
    team: Option<&IdRef>,
    enterprise: Option<&IdRef>,
    is_enterprise_install: bool,
    user: &str,
    channel: Option<&str>,
    ts: Option<&'a str>,
    thread_ts: Option<&'a str>,
) -> Result<Click<'a>, String> {
    let ids = [team, enterprise].map(|id| id.map(|id| id.id.as_str()));
    if !bridge.config.allowed_workspaces.allows(ids) {
        return Err("workspace_not_allowed".into());
    }
    let installation =
        match find_installation(bridge, team, enterprise, is_enterprise_install).await {
            Ok(Some(installation)) => installation,
            Ok(None) => return Err("workspace_not_installed".into()),
            Err(error) => return Err(format!("store_unavailable: {error}")),
        };
    let (Some(user), Some(channel), Some(ts)) = (
        UserId::parse(user),
        channel.and_then(ChannelId::parse),
        ts.filter(|ts| !ts.is_empty()),
    ) else {
        return Err("missing_user_channel_or_message".into());
    };
    let visitor = VisitorId::new(installation.key.id(), &user, &channel)
        .map_err(|e| format!("visitor_id_invalid: {e}"))?;
    let stored = prompts::find(bridge, &installation.key, channel.as_str(), ts)
        .await
        .map_err(|error| format!("store_unavailable: {error}"))?;
    Ok(Click {
        installation,
        visitor,
        channel,
        user,
        ts,
        thread_ts,
        stored,
    })
}

/// Why a click may not answer its question.
enum Refusal {
    /// The question was asked of another visitor (`owner`, as a mention).
    NotTheAddressee { owner: String },
    /// No record says whom it was for (expired, or never stored), and
    /// this is not a direct message, whose one user is the visitor.
    NoRecord,
}

impl Refusal {
    fn outcome(&self) -> &'static str {
        match self {
            Refusal::NotTheAddressee { .. } => "not_the_addressee",
            Refusal::NoRecord => "prompt_record_missing",
        }
    }

    /// What the clicker is told.
    fn note(&self) -> String {
        match self {
            Refusal::NotTheAddressee { owner } => {
                format!("This question was asked of {owner}, so only they can answer it.")
            }
            Refusal::NoRecord => {
                "This question has expired or isn't for you, so it can't be answered here."
                    .to_string()
            }
        }
    }
}

/// The one rule of who may answer a question: the visitor its record
/// names. Without a record only a direct message can tell (its one user is
/// the visitor); anywhere else the click is refused, so a question nobody
/// remembers is never answered by whoever clicks first.
fn may_answer(click: &Click<'_>) -> Result<(), Refusal> {
    match &click.stored {
        Some(stored)
            if stored
                .visitor
                .eq_ignore_ascii_case(&click.visitor.to_string()) =>
        {
            Ok(())
        }
        Some(stored) => Err(Refusal::NotTheAddressee {
            owner: VisitorId::decode(&stored.visitor)
                .map(|v| format!("<@{}>", v.user()))
                .unwrap_or_else(|_| "someone else".into()),
        }),
        None if click.channel.is_direct_message() => Ok(()),
        None => {
            tracing::warn!(
                workspace = click.installation.key.id(),
                channel = %click.channel,
                ts = click.ts,
                user = %click.user,
                "prompt_record_missing"
            );
            Err(Refusal::NoRecord)
        }
    }
}

async fn on_block_actions(
    bridge: &Bridge,
    payload: &BlockActions,
    deadline: Instant,
) -> (String, HttpResponse) {
    let ours = |a: &&Action| {
        a.action_id.starts_with(MENU_ITEM_ACTION_PREFIX)
            || a.action_id.starts_with(RATE_ACTION_PREFIX)
            || a.action_id == COMMENT_ACTION
            || a.action_id == TRANSFER_ACTION
    };
    let Some(action) = payload.actions.iter().find(ours) else {
        return ("action_not_ours".into(), ok());
    };
    let click = match click(
        bridge,
        payload.team.as_ref(),
        payload.enterprise.as_ref(),
        payload.is_enterprise_install,
        &payload.user.id,
        payload.channel_id(),
        payload.message_ts(),
        payload.thread_ts(),
    )
    .await
    {
        Ok(click) => click,
        Err(outcome) => return (outcome, ok()),
    };
    if let Err(refusal) = may_answer(&click) {
        tell(bridge, &click, &refusal.note()).await;
        return (refusal.outcome().into(), ok());
    }

    if action.action_id == COMMENT_ACTION {
        return open_comment_modal(bridge, payload, &click).await;
    }
    let stored_prompt = click.stored.as_ref().map(|s| &s.prompt);
    let (answer, body_args) = if action.action_id.starts_with(MENU_ITEM_ACTION_PREFIX) {
        let id_text = action.value.clone().unwrap_or_default();
        let stored_item = match stored_prompt {
            Some(Prompt::Menu { items, .. }) => items
                .iter()
                .find(|item| value_text(&item.id) == id_text)
                .cloned(),
            _ => None,
        };
        let name = stored_item
            .as_ref()
            .map(|item| item.name.clone())
            .or_else(|| action.text().map(str::to_string))
            .or_else(|| payload.button_text_in_message(&action.action_id))
            .unwrap_or_else(|| id_text.clone());
        let id = stored_item.map_or(Value::String(id_text), |item| item.id);
        (Answer::Menu { name }, id)
    } else if let Some(score) = action.action_id.strip_prefix(RATE_ACTION_PREFIX) {
        let Some(score) =
            parse_score(score).or_else(|| action.value.as_deref().and_then(parse_score))
        else {
            return ("bad_rating".into(), ok());
        };
        let Some(args) = enquiry_args(stored_prompt, &action.block_id) else {
            tell(bridge, &click, "This survey can no longer be answered.").await;
            return ("enquiry_args_unknown".into(), ok());
        };
        (
            Answer::Rating {
                score,
                comment: String::new(),
            },
            args,
        )
    } else {
        let args = match stored_prompt {
            Some(Prompt::Transfer {
                id,
                service_session_id,
                ..
            }) => Some(json!({ "id": id, "serviceSessionId": service_session_id })),
            _ => block_id_args(&action.block_id, TRANSFER_BLOCK_PREFIX),
        };
        let Some(args) = args else {
            tell(bridge, &click, "This offer can no longer be taken up.").await;
            return ("transfer_args_unknown".into(), ok());
        };
        (Answer::Transfer, args)
    };

    let original_blocks = payload
        .message
        .as_ref()
        .and_then(|m| m.get("blocks"))
        .cloned();
    match answer_once(
        bridge,
        &click,
        &answer,
        &body_args,
        original_blocks,
        deadline,
    )
    .await
    {
        Delivery::Sent => (format!("answered_{}", kind(&answer)), ok()),
        Delivery::AlreadyAnswered => ("already_answered".into(), ok()),
        Delivery::Failed(outcome) => {
            tell(
                bridge,
                &click,
                "Sorry, the support team could not be reached just now. Please try again in a moment.",
            )
            .await;
            (outcome.into(), ok())
        }
    }
}

fn kind(answer: &Answer) -> &'static str {
    match answer {
        Answer::Menu { .. } => "menu",
        Answer::Rating { .. } => "rating",
        Answer::Transfer => "transfer",
    }
}

fn parse_score(text: &str) -> Option<u8> {
    text.trim().parse().ok().filter(|s| (1..=5).contains(s))
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `{inviteId, serviceSessionId}` of a satisfaction invitation: stored,
/// else carried by the buttons' block id.
fn enquiry_args(stored: Option<&Prompt>, block_id: &str) -> Option<Value> {
    match stored {
        Some(Prompt::Enquiry {
            invite_id,
            service_session_id,
            ..
        }) => Some(json!({ "inviteId": invite_id, "serviceSessionId": service_session_id })),
        _ => block_id_args(block_id, ENQUIRY_BLOCK_PREFIX),
    }
}

/// What the comment modal remembers of the message it answers.
#[derive(Debug, Serialize, Deserialize)]
struct ModalMetadata {
    channel: String,
    ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thread_ts: Option<String>,
    /// `{inviteId, serviceSessionId}` when the message carried them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Value>,
}

async fn open_comment_modal(
    bridge: &Bridge,
    payload: &BlockActions,
    click: &Click<'_>,
) -> (String, HttpResponse) {
    let Some(trigger_id) = payload.trigger_id.as_deref() else {
        return ("missing_trigger_id".into(), ok());
    };
    let block_id = payload
        .actions
        .iter()
        .find(|a| a.action_id == COMMENT_ACTION)
        .map(|a| a.block_id.as_str())
        .unwrap_or("");
    let metadata = ModalMetadata {
        channel: click.channel.to_string(),
        ts: click.ts.to_string(),
        thread_ts: click.thread_ts.map(str::to_string),
        args: block_id_args(block_id, ENQUIRY_BLOCK_PREFIX),
    };
    let metadata = serde_json::to_string(&metadata).unwrap_or_default();
    match bridge
        .slack
        .views_open(
            &bridge.bot_token(&click.installation),
            trigger_id,
            &blocks::comment_modal(&metadata),
        )
        .await
    {
        Ok(_) => ("comment_modal_opened".into(), ok()),
        Err(error) => {
            tracing::warn!(%error, "views_open_failed");
            tell(
                bridge,
                click,
                "Sorry, the comment form could not be opened. You can still rate with the stars.",
            )
            .await;
            ("comment_modal_failed".into(), ok())
        }
    }
}

async fn on_view_submission(
    bridge: &Bridge,
    payload: &ViewSubmission,
    deadline: Instant,
) -> (String, HttpResponse) {
    if payload.view.callback_id != COMMENT_VIEW {
        return ("view_not_ours".into(), ok());
    }
    let Ok(metadata) = serde_json::from_str::<ModalMetadata>(&payload.view.private_metadata) else {
        return ("bad_private_metadata".into(), ok());
    };
    let Some(score) = payload
        .view
        .input(RATING_INPUT_BLOCK, RATING_INPUT_ACTION)
        .and_then(parse_score)
    else {
        return (
            "rating_missing".into(),
            modal_error(RATING_INPUT_BLOCK, "Choose a rating from 1 to 5."),
        );
    };
    let comment: String = payload
        .view
        .input(COMMENT_INPUT_BLOCK, COMMENT_INPUT_ACTION)
        .unwrap_or("")
        .trim()
        .chars()
        .take(blocks::COMMENT_MAX_CHARS)
        .collect();
    let click = match click(
        bridge,
        payload.team.as_ref(),
        payload.enterprise.as_ref(),
        payload.is_enterprise_install,
        &payload.user.id,
        Some(&metadata.channel),
        Some(&metadata.ts),
        metadata.thread_ts.as_deref(),
    )
    .await
    {
        Ok(click) => click,
        Err(outcome) => return (outcome, ok()),
    };
    if let Err(refusal) = may_answer(&click) {
        return (
            refusal.outcome().into(),
            modal_error(COMMENT_INPUT_BLOCK, &refusal.note()),
        );
    }
    let args = match click.stored.as_ref().map(|s| &s.prompt) {
        Some(prompt @ Prompt::Enquiry { .. }) => enquiry_args(Some(prompt), ""),
        _ => metadata.args.clone(),
    };
    let Some(args) = args else {
        return (
            "enquiry_args_unknown".into(),
            modal_error(
                COMMENT_INPUT_BLOCK,
                "This survey can no longer be answered.",
            ),
        );
    };
    let answer = Answer::Rating { score, comment };
    match answer_once(bridge, &click, &answer, &args, None, deadline).await {
        // An empty 200 closes the modal.
        Delivery::Sent => ("answered_rating_with_comment".into(), ok()),
        Delivery::AlreadyAnswered => {
            tell(
                bridge,
                &click,
                "You have already rated this conversation — thank you!",
            )
            .await;
            ("already_answered".into(), ok())
        }
        Delivery::Failed(outcome) => (
            outcome.into(),
            modal_error(
                COMMENT_INPUT_BLOCK,
                "The support team could not be reached just now. Please try again.",
            ),
        ),
    }
}

/// Keeps the modal open with `message` under the input `block_id`.
fn modal_error(block_id: &str, message: &str) -> HttpResponse {
    HttpResponse::json(
        200,
        &json!({ "response_action": "errors", "errors": { block_id: message } }),
    )
}

/// Claims the message, sends the answer to Kefu as the visitor, then shows
/// the answer in place of the buttons.
async fn answer_once(
    bridge: &Bridge,
    click: &Click<'_>,
    answer: &Answer,
    args: &Value,
    original_blocks: Option<Value>,
    deadline: Instant,
) -> Delivery {
    let workspace = &click.installation.key;
    let claim_key =
        ClaimKey::Interaction(format!("{}#{}#{}", workspace.id(), click.channel, click.ts));
    match bridge.store.claim(&claim_key, CLAIM_LEASE_SECS).await {
        Ok(Claim::Acquired { .. }) => {}
        Ok(Claim::Completed) | Ok(Claim::InProgress) => return Delivery::AlreadyAnswered,
        Err(error) => {
            tracing::warn!(%error, "interaction_claim_failed");
            return Delivery::Failed("store_unavailable");
        }
    }
    let release = || async {
        if let Err(error) = bridge.store.release_claim(&claim_key, 0).await {
            tracing::error!(%error, "claim_release_failed");
        }
    };
    if let Err(error) = to_kefu::ensure_registered(bridge, workspace, &click.visitor).await {
        tracing::warn!(%error, "visitor_registration_failed");
        release().await;
        return Delivery::Failed("kefu_unavailable");
    }
    let team_id = click
        .installation
        .team_id
        .clone()
        .unwrap_or_else(|| workspace.id().to_string());
    // Within a slice of Slack's 3 s, as for messages (docs/design.md §2
    // "Slack markup to plain text").
    let lookups_until = visitor_profile::lookups_deadline(deadline);
    let (user, team) = tokio::join!(
        visitor_profile::by(
            lookups_until,
            "visitor",
            visitor_profile::slack_user(bridge, &click.installation, click.user.as_str()),
        ),
        visitor_profile::by(
            lookups_until,
            "team",
            visitor_profile::slack_team(bridge, &click.installation, &team_id),
        ),
    );
    let visitor_info = visitor_profile::visitor_info(
        &click.visitor,
        user.as_ref(),
        team.as_ref(),
        &click.installation,
        channel_type(&click.channel),
    );
    let from = click.visitor.to_string();
    let queue = routing::queue_for(bridge, workspace, &click.channel).await;
    let envelope = VisitorEnvelope {
        from: &from,
        service_number: &bridge.config.easemob_im_service_number,
        visitor: &visitor_info,
        queue: queue.as_deref(),
    };
    let arg = |name: &str| args.get(name).cloned().unwrap_or(Value::Null);
    let body = match answer {
        Answer::Menu { name } => envelope.menu_choice(name, args),
        Answer::Rating { score, comment } => {
            envelope.enquiry(&arg("inviteId"), &arg("serviceSessionId"), *score, comment)
        }
        Answer::Transfer => envelope.transfer_to_agent(&arg("id"), &arg("serviceSessionId")),
    };
    if let Err(error) = to_kefu::send_body(bridge, &body, deadline).await {
        tracing::warn!(%error, "answer_not_sent_to_kefu");
        release().await;
        return Delivery::Failed("kefu_unavailable");
    }
    if let Err(error) = bridge.store.complete_claim(&claim_key, 1).await {
        tracing::error!(%error, "claim_completion_not_recorded");
    }
    show_answer(bridge, click, answer, original_blocks).await;
    Delivery::Sent
}

/// Replaces the question's buttons with the answer (`chat.update`). The
/// answer is already with Kefu, so a failure here is only logged.
async fn show_answer(
    bridge: &Bridge,
    click: &Click<'_>,
    answer: &Answer,
    original_blocks: Option<Value>,
) {
    let rendered = match &click.stored {
        Some(stored) => stored
            .prompt
            .render_answered(stored.byline.as_deref(), answer),
        None => answer_only(answer, original_blocks.as_ref()),
    };
    let update = MessageUpdate {
        channel: click.channel.to_string(),
        ts: click.ts.to_string(),
        text: rendered.text,
        blocks: rendered.blocks,
    };
    if let Err(error) = bridge
        .slack
        .chat_update(&bridge.bot_token(&click.installation), &update)
        .await
    {
        tracing::warn!(%error, "answered_message_not_updated");
    }
}

/// A note only the clicker sees, next to the message they clicked.
async fn tell(bridge: &Bridge, click: &Click<'_>, text: &str) {
    let note = EphemeralMessage {
        channel: click.channel.to_string(),
        user: click.user.to_string(),
        text: text.to_string(),
        thread_ts: click.thread_ts.map(str::to_string),
    };
    if let Err(error) = bridge
        .slack
        .post_ephemeral(&bridge.bot_token(&click.installation), &note)
        .await
    {
        tracing::warn!(%error, "ephemeral_note_failed");
    }
}

/// The conversation kind, from the channel id (what `visitor_info` shows).
fn channel_type(channel: &ChannelId) -> &'static str {
    match channel.as_str().chars().next() {
        Some('D') => "im",
        Some('G') => "group",
        _ => "channel",
    }
}
