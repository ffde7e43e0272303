//! One Kefu message as ordered Slack steps (issue "Rich conversations"):
//! a session notice when the message carries a session event (issue "The
//! Kefu conversation in Slack"), text posts, then a question with buttons
//! (menu, rating, transfer hint), then the agent's files, uploaded into the
//! conversation.
//!
//! Every step has a `chat.postMessage` form ([`ReplyPart::as_outgoing`]):
//! the question's post with its blocks and its record, a file's "📎 Agent
//! sent …" line. That is what the outbox keeps when Slack does not take a
//! step now, so a reply handed over there keeps its place and order, and a
//! question posted by the drain is remembered like one posted now; only a
//! file uploaded late becomes its line (the drain posts messages, it does
//! not move files).

use std::time::{Duration, Instant};

use crate::bridge::Bridge;
use crate::easemob::callback::{FileBody, MessageBody, Payload};
use crate::relay::files::{self, AgentFileKind, FileError, SlackDestination};
use crate::relay::outcome::FailureKind;
use crate::relay::pipeline::{complete, Failure, Recipient, Stopped};
use crate::relay::prompts::{self, PostedPrompt, Prompt};
use crate::relay::session_notices;
use crate::relay::to_slack::{
    self, AgentIdentity, OutgoingPost, PostError, PostFailure, CUSTOMIZE_SCOPE,
};
use crate::slack::bot_token::BotToken;
use crate::slack::web::{PostMessage, SlackApiError, SlackMessageRef};
use crate::store::{ClaimKey, Direction, Installation, NoticeLanguage, WorkspaceKey};
use crate::visitor::VisitorId;

/// A file transfer is only started (or retried) with this much time left.
const FILE_ALLOWANCE: Duration = Duration::from_secs(2);
/// A step after the first is only started with this much time left.
const STEP_ALLOWANCE: Duration = Duration::from_millis(400);

#[derive(Debug, Clone, PartialEq)]
pub enum ReplyPart {
    Post(PostMessage),
    /// A question: its post carries the blocks; `question` is the record
    /// stored under it once posted.
    Prompt {
        question: PostedPrompt,
        post: PostMessage,
    },
    /// An agent's file; `line` is what the user reads if it is not shown.
    File {
        kind: AgentFileKind,
        body: FileBody,
        line: PostMessage,
    },
}

impl ReplyPart {
    /// The step the outbox kept: a post, or a question with its record.
    pub fn from_outgoing(post: OutgoingPost) -> Self {
        match post.question {
            Some(question) => ReplyPart::Prompt {
                question,
                post: post.message,
            },
            None => ReplyPart::Post(post.message),
        }
    }

    /// The step as one `chat.postMessage` (what the outbox keeps).
    pub fn as_outgoing(&self) -> OutgoingPost {
        match self {
            ReplyPart::Post(post) => OutgoingPost::plain(post.clone()),
            ReplyPart::Prompt { question, post } => OutgoingPost {
                message: post.clone(),
                question: Some(question.clone()),
            },
            ReplyPart::File { line, .. } => OutgoingPost::plain(line.clone()),
        }
    }

    fn is_file(&self) -> bool {
        matches!(self, ReplyPart::File { .. })
    }
}

/// Where and as whom a reply is posted.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub agent: &'a AgentIdentity,
    /// `chat:write.customize` granted: the agent is the posts' author.
    pub customize: bool,
    pub channel: &'a str,
    pub thread_ts: Option<&'a str>,
    /// The workspace's language for session notices.
    pub language: NoticeLanguage,
}

/// The text lines the user reads besides questions and files: text bodies
/// (left out for a menu, whose title stands for them, as in Kefu's widget;
/// folded into an invitation or hint), locations, kinds Slack can't show.
fn text_lines(payload: &Payload, prompt: Option<&Prompt>) -> Vec<String> {
    let mut lines = Vec::new();
    for body in &payload.bodies {
        match body {
            MessageBody::Text { msg } if prompt.is_none() => {
                let msg = msg.trim();
                if !msg.is_empty() {
                    lines.push(msg.to_string());
                }
            }
            MessageBody::Location { addr } => lines.push(match addr.trim() {
                "" => "📍 Agent shared a location".to_string(),
                addr => format!("📍 Agent shared a location: {addr}"),
            }),
            MessageBody::Other { kind } => lines.push(format!(
                "Agent sent a message of a kind Slack can't show ({})",
                if kind.is_empty() { "unknown" } else { kind }
            )),
            _ => {}
        }
    }
    lines
}

fn file_kind(body: &MessageBody) -> Option<(AgentFileKind, &FileBody)> {
    match body {
        MessageBody::Image(file) => Some((AgentFileKind::Image, file)),
        MessageBody::File(file) => Some((AgentFileKind::File, file)),
        MessageBody::Audio(file) => Some((AgentFileKind::Audio, file)),
        MessageBody::Video(file) => Some((AgentFileKind::Video, file)),
        _ => None,
    }
}

/// True when a Kefu message has anything to show in Slack (control
/// messages such as `KF-ACK` have not).
pub fn has_content(payload: &Payload) -> bool {
    let prompt = prompts::prompt_of(payload);
    prompt.is_some()
        || session_notices::shown_event(payload).is_some()
        || !text_lines(payload, None).is_empty()
        || payload.bodies.iter().any(|body| file_kind(body).is_some())
}

/// The steps for one Kefu message to `visitor`, in order. Empty when
/// there is nothing to show (control messages such as `KF-ACK`).
pub fn plan(payload: &Payload, visitor: &VisitorId, to: Destination<'_>) -> Vec<ReplyPart> {
    let prompt = prompts::prompt_of(payload);
    let text = text_lines(payload, prompt.as_ref()).join("\n");
    let posts =
        |text: &str| to_slack::build_posts(text, to.agent, to.customize, to.channel, to.thread_ts);
    // The notice comes first: it says who is answering, or that it ended.
    let mut parts: Vec<ReplyPart> = session_notices::shown_event(payload)
        .and_then(|event| {
            session_notices::notice_post(&event, to.language, to.channel, to.thread_ts)
        })
        .into_iter()
        .chain(posts(&text))
        .map(ReplyPart::Post)
        .collect();
    if let Some(prompt) = prompt {
        let post = prompts::build_post(&prompt, to.agent, to.customize, to.channel, to.thread_ts);
        let question = prompts::record(&prompt, visitor, to.agent, to.customize);
        parts.push(ReplyPart::Prompt { question, post });
    }
    for (kind, body) in payload.bodies.iter().filter_map(file_kind) {
        let line = files::kefu_file_line(kind, body, &FileError::Permanent(String::new()));
        if let Some(line) = posts(&line).into_iter().next() {
            parts.push(ReplyPart::File {
                kind,
                body: body.clone(),
                line,
            });
        }
    }
    parts
}

/// When a reply with files may still start steps: file transfers get
/// [`files::FILE_BUDGET`] from the start of the invocation.
pub fn deadline_for(parts: &[ReplyPart], start: Instant, deadline: Instant) -> Instant {
    if parts.iter().any(ReplyPart::is_file) {
        deadline.max(start + files::FILE_BUDGET)
    } else {
        deadline
    }
}

/// Sends `parts[already..]` in order. Stops at the first step Slack does
/// not take (or when time is up), reporting how many are done, like
/// [`to_slack::send_posts`], so the caller hands the rest to the outbox.
/// A file that cannot be shown (too large, refused, or still failing after
/// one retry) is replaced by its line. Every message posted is added to
/// `carried` (an uploaded file is not: Slack names its message later).
#[allow(clippy::too_many_arguments)]
pub async fn send(
    bridge: &Bridge,
    installation: &Installation,
    to: Destination<'_>,
    parts: &[ReplyPart],
    already: usize,
    deadline: Instant,
    carried: &mut Vec<SlackMessageRef>,
) -> Result<(), PostFailure> {
    // One token for the whole reply: a stale one is replaced once.
    let token = bridge.bot_token(installation);
    for (index, part) in parts.iter().enumerate().skip(already) {
        let fail = |error| PostFailure {
            posted: index,
            error,
        };
        // The first step of an invocation is always tried.
        let left = deadline.saturating_duration_since(Instant::now());
        if index > already && left < STEP_ALLOWANCE {
            return Err(fail(PostError::OutOfTime));
        }
        match part {
            ReplyPart::Post(_) | ReplyPart::Prompt { .. } => post_one(
                bridge,
                installation,
                &token,
                &part.as_outgoing(),
                deadline,
                carried,
            )
            .await
            .map_err(fail)?,
            ReplyPart::File { kind, body, line } => {
                let Err(error) = transfer(bridge, &token, to, *kind, body, deadline).await else {
                    continue;
                };
                tracing::warn!(%error, kind = kind.noun(), "agent_file_not_uploaded");
                let line = match &error {
                    FileError::TooLarge { .. } => to_slack::build_posts(
                        &files::kefu_file_line(*kind, body, &error),
                        to.agent,
                        to.customize,
                        to.channel,
                        to.thread_ts,
                    )
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| line.clone()),
                    _ => line.clone(),
                };
                post_one(
                    bridge,
                    installation,
                    &token,
                    &OutgoingPost::plain(line),
                    deadline,
                    carried,
                )
                .await
                .map_err(fail)?;
            }
        }
    }
    Ok(())
}

async fn post_one(
    bridge: &Bridge,
    installation: &Installation,
    token: &BotToken<'_>,
    post: &OutgoingPost,
    deadline: Instant,
    carried: &mut Vec<SlackMessageRef>,
) -> Result<(), PostError> {
    to_slack::send_posts(
        bridge,
        installation,
        token,
        std::slice::from_ref(post),
        0,
        deadline,
        carried,
    )
    .await
    .map_err(|failure| failure.error)
}

/// Uploads one agent file; a transient failure is retried once while the
/// file budget allows.
async fn transfer(
    bridge: &Bridge,
    token: &BotToken<'_>,
    to: Destination<'_>,
    kind: AgentFileKind,
    body: &FileBody,
    deadline: Instant,
) -> Result<(), FileError> {
    let destination = SlackDestination {
        bot_token: token,
        channel: to.channel,
        thread_ts: to.thread_ts,
        agent_name: to.agent.name.as_deref(),
    };
    let mut tries = 0;
    loop {
        tries += 1;
        if deadline.saturating_duration_since(Instant::now()) < FILE_ALLOWANCE {
            return Err(FileError::Transient("out of time for the file".into()));
        }
        match files::kefu_file_to_slack(bridge, kind, body, destination, deadline).await {
            Err(FileError::Transient(detail)) if tries < 2 => {
                tracing::info!(detail, "agent_file_retrying");
            }
            other => return other,
        }
    }
}

/// A visitor's conversation in Slack, as the delivery pipeline posts to it
/// (relay/pipeline.rs): the live callback's planned steps, or what the
/// outbox kept of them. Every post made is remembered afterwards, for a
/// later recall (relay/recalls.rs).
pub(crate) struct SlackConversation<'a> {
    pub installation: &'a Installation,
    pub agent: &'a AgentIdentity,
    pub channel: &'a str,
    pub thread_ts: Option<String>,
    pub language: NoticeLanguage,
    /// The Kefu message the posts carry: its `msg_id`, and Kefu's own id.
    pub origin: &'a str,
    pub kefu_msg_id: Option<&'a str>,
    pub visitor: String,
    pub carried: Vec<SlackMessageRef>,
}

impl SlackConversation<'_> {
    /// Where and as whom the steps are posted.
    pub fn destination(&self) -> Destination<'_> {
        Destination {
            agent: self.agent,
            customize: self.installation.has_scope(CUSTOMIZE_SCOPE),
            channel: self.channel,
            thread_ts: self.thread_ts.as_deref(),
            language: self.language,
        }
    }
}

/// Slack errors that mean the bot cannot post in that channel (any more).
const CHANNEL_GONE: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "channel_is_archived",
];

impl Recipient for SlackConversation<'_> {
    type Part = ReplyPart;
    type Error = SlackApiError;
    const DIRECTION: Direction = Direction::ToSlack;

    async fn send(
        &mut self,
        bridge: &Bridge,
        parts: &[ReplyPart],
        from: usize,
        deadline: Instant,
    ) -> Result<(), Stopped<SlackApiError>> {
        let mut carried = std::mem::take(&mut self.carried);
        let sent = send(
            bridge,
            self.installation,
            self.destination(),
            parts,
            from,
            deadline,
            &mut carried,
        )
        .await;
        self.carried = carried;
        match sent {
            Ok(()) => Ok(()),
            Err(PostFailure {
                posted,
                error: PostError::OutOfTime,
            }) => Err(Stopped::out_of_time(posted)),
            Err(PostFailure {
                posted,
                error: PostError::Slack(error),
            }) => {
                if error.is_auth_failure() {
                    // The token is dead: nothing helps until a reinstall.
                    flag_reinstall(bridge, &self.installation.key).await;
                }
                Err(Stopped::failed(posted, error))
            }
        }
    }

    /// Slack's answer → retry or dead letter. A dead token, a channel the
    /// bot cannot post in and any other `ok: false` error are permanent;
    /// 429, 5xx, timeouts and answers that are not Slack's JSON are retried.
    fn classify(error: &SlackApiError) -> Failure {
        let transient = |kind, retry_after| Failure::Transient {
            kind,
            detail: error.to_string(),
            retry_after,
        };
        let permanent = |kind| Failure::Permanent {
            kind,
            reason: error.to_string(),
        };
        match error {
            SlackApiError::RateLimited { retry_after } => {
                transient(FailureKind::SlackRateLimited, *retry_after)
            }
            SlackApiError::Malformed(_) => transient(FailureKind::SlackUnavailable, None),
            error if error.is_transient() => transient(FailureKind::SlackUnavailable, None),
            error if error.is_auth_failure() => permanent(FailureKind::TokenRefused),
            SlackApiError::Api(code) if CHANNEL_GONE.contains(&code.as_str()) => {
                permanent(FailureKind::SlackChannelGone)
            }
            _ => permanent(FailureKind::SlackRejected),
        }
    }

    fn stored(part: &ReplyPart) -> String {
        serde_json::to_string(&part.as_outgoing()).unwrap_or_default()
    }

    fn from_stored(stored: &str) -> Result<ReplyPart, Failure> {
        serde_json::from_str(stored)
            .map(ReplyPart::from_outgoing)
            .map_err(|error| Failure::Permanent {
                kind: FailureKind::SlackRejected,
                reason: format!("unreadable chat.postMessage payload: {error}"),
            })
    }

    /// Where the message went, for a later recall (and Kefu's own id of
    /// it, which its recall command may use instead), in the same write as
    /// the claim's completion. Best effort: without it a recall is only a
    /// log line; the completion is then written on its own.
    async fn finish(&mut self, bridge: &Bridge, completing: Option<(&ClaimKey, usize)>) {
        let remembered = bridge
            .store
            .remember_slack_posts(
                &self.installation.key,
                self.origin,
                self.kefu_msg_id,
                &self.visitor,
                &self.carried,
                completing.map(|(claim, parts)| (claim, parts as u32)),
            )
            .await;
        if let Err(error) = remembered {
            tracing::warn!(origin = %self.origin, %error, "slack_posts_not_recorded");
            if let Some((claim, parts)) = completing {
                complete(bridge, claim, parts).await;
            }
        }
    }
}

/// Slack refused the bot token: the workspace must reinstall; remember it
/// so nothing else is tried with that token.
pub(crate) async fn flag_reinstall(bridge: &Bridge, key: &WorkspaceKey) {
    if let Err(error) = bridge.store.mark_needs_reinstall(key).await {
        tracing::error!(workspace = key.id(), %error, "needs_reinstall_not_recorded");
    }
    bridge.forget_workspace(key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::easemob::callback::Callback;
    use serde_json::json;

    #[test]
    fn slack_failures_are_classified_and_named() {
        let classify = |error: SlackApiError| SlackConversation::classify(&error);
        let transient = |f: &Failure| matches!(f, Failure::Transient { .. });
        let unavailable = classify(SlackApiError::Unavailable("HTTP 500".into()));
        assert!(transient(&unavailable));
        assert_eq!(unavailable.kind(), FailureKind::SlackUnavailable);
        assert!(transient(&classify(SlackApiError::Api(
            "ratelimited".into()
        ))));
        for (code, kind) in [
            ("channel_not_found", FailureKind::SlackChannelGone),
            ("not_in_channel", FailureKind::SlackChannelGone),
            ("is_archived", FailureKind::SlackChannelGone),
            ("invalid_auth", FailureKind::TokenRefused),
            ("no_text", FailureKind::SlackRejected),
        ] {
            let failure = classify(SlackApiError::Api(code.into()));
            assert!(!transient(&failure), "{code}");
            assert_eq!(failure.kind(), kind, "{code}");
        }
    }

    #[test]
    fn a_step_reads_back_from_the_outbox_as_it_was_planned() {
        let post = ReplyPart::Post(PostMessage {
            channel: "D1".into(),
            text: "hi".into(),
            thread_ts: None,
            username: None,
            icon_url: None,
            unfurl_links: false,
            blocks: None,
        });
        let stored = SlackConversation::stored(&post);
        assert_eq!(SlackConversation::from_stored(&stored), Ok(post));
        assert!(SlackConversation::from_stored("{not json").is_err());
    }

    fn payload(value: serde_json::Value) -> Payload {
        Callback::parse(json!({ "payload": value }))
            .unwrap()
            .payload
    }

    fn alice() -> AgentIdentity {
        AgentIdentity {
            name: Some("Alice".into()),
            avatar_url: None,
        }
    }

    fn visitor() -> VisitorId {
        VisitorId::decode("t1_u1_d1").unwrap()
    }

    fn plan_for(value: serde_json::Value) -> Vec<ReplyPart> {
        let agent = alice();
        plan(
            &payload(value),
            &visitor(),
            Destination {
                agent: &agent,
                customize: false,
                channel: "D1",
                thread_ts: None,
                language: NoticeLanguage::English,
            },
        )
    }

    #[test]
    fn texts_then_files_with_their_lines_for_the_outbox() {
        let parts = plan_for(json!({ "bodies": [
            { "type": "txt", "msg": " hello " },
            { "type": "img", "filename": "photo.jpg", "url": "u" },
            { "type": "cmd", "action": "KF-ACK" },
            { "type": "loc", "addr": "1 Main St" },
            { "type": "sticker" },
            { "type": "audio", "filename": "" }
        ] }));
        let posts: Vec<String> = parts.iter().map(|p| p.as_outgoing().message.text).collect();
        assert_eq!(
            posts,
            [
                "*Alice:* hello\n📍 Agent shared a location: 1 Main St\nAgent sent a message of a kind Slack can't show (sticker)",
                "*Alice:* 📎 Agent sent an image: photo.jpg",
                "*Alice:* 📎 Agent sent a voice message",
            ]
        );
        assert!(matches!(
            parts[1],
            ReplyPart::File {
                kind: AgentFileKind::Image,
                ..
            }
        ));
    }

    #[test]
    fn a_menu_is_one_question_whose_title_stands_for_the_text() {
        let parts = plan_for(json!({
            "bodies": [{ "type": "txt", "msg": "ignored, as in Kefu's widget" }],
            "ext": { "msgtype": { "choice": { "title": "How can we help?",
                "items": [{ "id": "1", "name": "Orders" }, { "id": "2", "name": "Refunds" }] } } }
        }));
        assert_eq!(parts.len(), 1);
        let ReplyPart::Prompt { post, question } = &parts[0] else {
            panic!("not a question: {parts:?}")
        };
        assert_eq!(post.text, "*Alice:* How can we help?\n• Orders\n• Refunds");
        assert!(post.blocks.is_some());
        assert_eq!(question.visitor, "T1_U1_D1");
        assert_eq!(question.byline.as_deref(), Some("Alice"));
    }

    #[test]
    fn a_question_keeps_its_record_through_the_outbox_and_old_records_read_as_posts() {
        let parts = plan_for(json!({
            "ext": { "msgtype": { "choice": { "title": "Pick",
                "items": [{ "id": 7, "name": "Orders" }] } } }
        }));
        let outgoing = parts[0].as_outgoing();
        let kept = serde_json::to_string(&outgoing).unwrap();
        let back: OutgoingPost = serde_json::from_str(&kept).unwrap();
        assert_eq!(back, outgoing);
        assert!(back.question.is_some());
        // What a drain finds in a record queued before questions carried theirs.
        let old = serde_json::to_string(&outgoing.message).unwrap();
        let back: OutgoingPost = serde_json::from_str(&old).unwrap();
        assert_eq!(back, OutgoingPost::plain(outgoing.message));
    }

    #[test]
    fn an_invitation_and_a_hint_fold_their_text_in() {
        let parts = plan_for(json!({
            "bodies": [{ "type": "txt", "msg": "Please rate me" }],
            "ext": { "weichat": { "ctrlType": "inviteEnquiry", "ctrlArgs": { "inviteId": 1, "serviceSessionId": "s" } } }
        }));
        assert_eq!(parts.len(), 1);
        assert!(parts[0]
            .as_outgoing()
            .message
            .text
            .starts_with("*Alice:* Please rate me"));
    }

    #[test]
    fn a_session_event_is_a_notice_before_the_text() {
        let event = |name: &str| {
            json!({ "weichat": { "event": { "eventName": name,
                "eventObj": { "agentUserNiceName": "Alice Agent" } } } })
        };
        let parts = plan_for(json!({
            "bodies": [{ "type": "txt", "msg": "Hi, I'm Alice" }],
            "ext": event("ServiceSessionOpenedEvent"),
        }));
        let posts: Vec<PostMessage> = parts.iter().map(|p| p.as_outgoing().message).collect();
        assert_eq!(posts.len(), 2);
        assert_eq!(posts[0].text, "👋 *Alice Agent* joined the conversation");
        assert_eq!(posts[0].blocks.as_ref().unwrap()[0]["type"], "context");
        assert_eq!(posts[1].text, "*Alice:* Hi, I'm Alice");
        let created = payload(json!({ "bodies": [{ "type": "txt", "msg": "" }],
            "ext": event("ServiceSessionCreatedEvent") }));
        assert!(!has_content(&created));
        let closed = payload(json!({ "bodies": [], "ext": event("ServiceSessionClosedEvent") }));
        assert!(has_content(&closed));
    }

    #[test]
    fn control_messages_have_nothing_to_show() {
        let p = payload(
            json!({ "bodies": [{ "type": "cmd", "action": "TransferToKf" }, { "type": "txt", "msg": " " }] }),
        );
        assert!(!has_content(&p));
        assert!(plan_for(json!({ "bodies": [{ "type": "cmd", "action": "KF-ACK" }] })).is_empty());
        assert!(has_content(&payload(
            json!({ "bodies": [{ "type": "file", "url": "u" }] })
        )));
    }
}
