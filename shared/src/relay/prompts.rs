//! Kefu's questions as Slack buttons (issue "Rich conversations"): a robot
//! menu, a satisfaction invitation, a transfer hint. Recognised the way the
//! Kefu web visitor SDK recognises them (`easemob/kefu-webim`
//! `src/js/app/pages/main/channel.js`, `_handleMessage`: `inviteEnquiry`
//! first; a menu is a received `ext.msgtype.choice` with a title and items
//! and no `mode`; `src/js/app/tools/messageFactory.js`: a transfer hint only
//! when there is no `choice`), posted with Block Kit, and remembered per
//! message so the click can be answered with Kefu's exact arguments and
//! checked against whom the question was for.
//!
//! [`post`] is the one place a question is posted, and it always stores
//! its record: the record travels with the post ([`PostedPrompt`] in the
//! outbox's `OutgoingPost`), so a question posted late by a drain is
//! remembered like one posted at once. Outside a direct message, a
//! question without its record cannot be answered (`interactivity.rs`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bridge::Bridge;
use crate::dynamo::DynamoError;
use crate::easemob::callback::{MessageBody, Payload};
use crate::relay::to_slack::AgentIdentity;
use crate::slack::blocks::{self, Rendered};
use crate::slack::bot_token::BotToken;
use crate::slack::web::{PostMessage, PostedMessage, SlackApiError};
use crate::store::{WorkspaceKey, WorkspaceRecord};
use crate::visitor::VisitorId;

/// How long a posted question can be answered with its stored arguments
/// (Kefu invitations expire well before this).
const PROMPT_TTL_SECS: i64 = 30 * 24 * 3_600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Prompt {
    Menu {
        title: String,
        items: Vec<MenuItem>,
    },
    Enquiry {
        text: String,
        invite_id: Value,
        service_session_id: Value,
    },
    Transfer {
        text: String,
        id: Value,
        service_session_id: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MenuItem {
    /// As Kefu sent it (string or number); `menuid` echoes it.
    pub id: Value,
    pub name: String,
}

/// What is remembered about a posted question (and kept with its post
/// while it waits in the outbox).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostedPrompt {
    pub prompt: Prompt,
    /// The visitor id the question was for.
    pub visitor: String,
    /// The agent's name when it is written into the message (no
    /// `chat:write.customize`), so the answered form keeps it.
    pub byline: Option<String>,
}

/// The visitor's answer to a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Menu { name: String },
    Rating { score: u8, comment: String },
    Transfer,
}

/// Text bodies joined, the way Kefu's widget shows them.
fn texts(payload: &Payload) -> String {
    payload
        .bodies
        .iter()
        .filter_map(|body| match body {
            MessageBody::Text { msg } => Some(msg.trim()),
            _ => None,
        })
        .filter(|msg| !msg.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The question a Kefu message asks, if any.
pub fn prompt_of(payload: &Payload) -> Option<Prompt> {
    let weichat = &payload.ext.weichat;
    let arg = |name: &str| weichat.ctrl_args.get(name).cloned();
    if weichat.ctrl_type == "inviteEnquiry" {
        return Some(Prompt::Enquiry {
            text: texts(payload),
            // kefu-webim sends `invite || 0` and `session || ""`.
            invite_id: arg("inviteId").filter(|v| !v.is_null()).unwrap_or(json!(0)),
            service_session_id: arg("serviceSessionId")
                .filter(|v| !v.is_null())
                .unwrap_or(json!("")),
        });
    }
    if let Some(choice) = payload.ext.msgtype.choice.as_ref() {
        let items: Vec<MenuItem> = choice
            .items
            .iter()
            .filter(|item| !item.name.trim().is_empty())
            .map(|item| MenuItem {
                id: item.raw_id.clone(),
                name: item.name.trim().to_string(),
            })
            .collect();
        if choice.is_menu() && !choice.title.trim().is_empty() && !items.is_empty() {
            return Some(Prompt::Menu {
                title: choice.title.trim().to_string(),
                items,
            });
        }
        return None;
    }
    if weichat.ctrl_type == "TransferToKfHint" {
        let label = arg("label")
            .and_then(|l| l.as_str().map(str::trim).map(str::to_string))
            .unwrap_or_default();
        let text = match texts(payload) {
            text if text.is_empty() => label,
            text => text,
        };
        return Some(Prompt::Transfer {
            text,
            id: arg("id").unwrap_or(Value::Null),
            service_session_id: arg("serviceSessionId").unwrap_or(Value::Null),
        });
    }
    None
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Prompt {
    /// The question as Slack shows it, with its buttons.
    pub fn render(&self, byline: Option<&str>) -> Rendered {
        match self {
            Prompt::Menu { title, items } => {
                let items: Vec<(String, String)> = items
                    .iter()
                    .map(|item| (value_text(&item.id), item.name.clone()))
                    .collect();
                blocks::menu(byline, title, &items)
            }
            Prompt::Enquiry {
                text,
                invite_id,
                service_session_id,
            } => blocks::enquiry(
                byline,
                text,
                &json!({ "inviteId": invite_id, "serviceSessionId": service_session_id }),
            ),
            Prompt::Transfer {
                text,
                id,
                service_session_id,
            } => blocks::transfer_hint(
                byline,
                text,
                &json!({ "id": id, "serviceSessionId": service_session_id }),
            ),
        }
    }

    /// The question once answered: the buttons replaced by the answer.
    pub fn render_answered(&self, byline: Option<&str>, answer: &Answer) -> Rendered {
        match (self, answer) {
            (Prompt::Menu { title, .. }, Answer::Menu { name }) => {
                blocks::menu_answered(byline, title, name)
            }
            (Prompt::Enquiry { text, .. }, Answer::Rating { score, comment }) => {
                blocks::enquiry_answered(byline, text, *score, comment)
            }
            (Prompt::Transfer { text, .. }, Answer::Transfer) => {
                blocks::transfer_answered(byline, text)
            }
            (_, answer) => answer_only(answer, None),
        }
    }
}

/// The answered form of a message whose question is not remembered: its
/// blocks without buttons (when the click carried them), and the answer.
pub fn answer_only(answer: &Answer, original_blocks: Option<&Value>) -> Rendered {
    let line = match answer {
        Answer::Menu { name } => blocks::menu_choice_line(name),
        Answer::Rating { score, .. } => blocks::rating_line(*score),
        Answer::Transfer => blocks::TRANSFER_DONE_LINE.to_string(),
    };
    blocks::answered_in_place(original_blocks, &line)
}

/// The agent's name as written into a question's post: only without
/// `chat:write.customize` (with it, the agent is the post's author).
fn byline(agent: &AgentIdentity, customize: bool) -> Option<String> {
    agent.name.clone().filter(|_| !customize)
}

/// The record of `prompt` asked of `visitor`, as [`post`] stores it.
pub fn record(
    prompt: &Prompt,
    visitor: &VisitorId,
    agent: &AgentIdentity,
    customize: bool,
) -> PostedPrompt {
    PostedPrompt {
        prompt: prompt.clone(),
        visitor: visitor.to_string(),
        byline: byline(agent, customize),
    }
}

/// The post that asks `prompt` of `visitor`. With `chat:write.customize`
/// the agent is the post's author; without, their name leads the first
/// line, as for text replies.
pub fn build_post(
    prompt: &Prompt,
    agent: &AgentIdentity,
    customize: bool,
    channel: &str,
    thread_ts: Option<&str>,
) -> PostMessage {
    let byline = byline(agent, customize);
    let rendered = prompt.render(byline.as_deref());
    PostMessage {
        channel: channel.to_string(),
        text: rendered.text,
        thread_ts: thread_ts.map(str::to_string),
        username: agent.name.clone().filter(|_| customize),
        icon_url: agent.avatar_url.clone().filter(|_| customize),
        unfurl_links: false,
        blocks: Some(rendered.blocks),
    }
}

/// Posts the question and remembers `record` (whom it was for, its
/// arguments) under the new message's `ts`. Every path that posts a
/// question comes here.
pub async fn post(
    bridge: &Bridge,
    token: &BotToken<'_>,
    workspace: &WorkspaceKey,
    record: &PostedPrompt,
    post: &PostMessage,
) -> Result<PostedMessage, SlackApiError> {
    let posted = bridge.slack.post_message(token, post).await?;
    match (&posted.ts, serde_json::to_value(record)) {
        (Some(ts), Ok(doc)) => {
            let channel = posted.channel.as_deref().unwrap_or(&post.channel);
            // The question is posted: failing it now would post it twice.
            // Without its record it can still be answered in a direct
            // message; in a channel the click is refused (fail closed).
            if let Err(error) = bridge
                .store
                .put_cached(
                    workspace,
                    WorkspaceRecord::Prompt { channel, ts },
                    &doc,
                    PROMPT_TTL_SECS,
                )
                .await
            {
                tracing::error!(%error, channel, ts, "prompt_not_stored");
            }
        }
        _ => tracing::error!(channel = %post.channel, "prompt_not_stored_without_ts"),
    }
    Ok(posted)
}

/// The question posted as message `ts` in `channel`, if remembered. A
/// table failure is an error, not "no record": the caller must not take
/// an outage for a question nobody was asked.
pub async fn find(
    bridge: &Bridge,
    workspace: &WorkspaceKey,
    channel: &str,
    ts: &str,
) -> Result<Option<PostedPrompt>, DynamoError> {
    let doc = bridge
        .store
        .get_cached(workspace, WorkspaceRecord::Prompt { channel, ts })
        .await?;
    Ok(doc.and_then(|doc| match serde_json::from_value(doc) {
        Ok(record) => Some(record),
        Err(error) => {
            tracing::warn!(%error, channel, ts, "prompt_record_unreadable");
            None
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::easemob::callback::Callback;

    fn payload(value: Value) -> Payload {
        Callback::parse(json!({ "payload": value }))
            .unwrap()
            .payload
    }

    #[test]
    fn a_menu_keeps_item_ids_as_kefu_sent_them() {
        let p = payload(json!({
            "bodies": [{ "type": "txt", "msg": "ignored" }],
            "ext": { "msgtype": { "choice": { "title": " Pick ", "items": [
                { "id": 1, "name": "Orders" }, { "id": "b2", "name": "Refunds" }, { "id": "x", "name": "" }
            ] } } }
        }));
        assert_eq!(
            prompt_of(&p),
            Some(Prompt::Menu {
                title: "Pick".into(),
                items: vec![
                    MenuItem {
                        id: json!(1),
                        name: "Orders".into()
                    },
                    MenuItem {
                        id: json!("b2"),
                        name: "Refunds".into()
                    },
                ],
            })
        );
    }

    #[test]
    fn a_choice_with_a_mode_or_no_items_is_not_a_menu() {
        let guide = payload(json!({ "ext": { "msgtype": { "choice": {
            "mode": "transferManualGuide", "title": "t", "items": [{ "id": 1, "name": "a" }] } } } }));
        assert_eq!(prompt_of(&guide), None);
        let empty =
            payload(json!({ "ext": { "msgtype": { "choice": { "title": "t", "items": [] } } } }));
        assert_eq!(prompt_of(&empty), None);
    }

    #[test]
    fn an_invitation_and_a_transfer_hint() {
        let invite = payload(json!({
            "bodies": [{ "type": "txt", "msg": "" }],
            "ext": { "weichat": { "ctrlType": "inviteEnquiry",
                "ctrlArgs": { "inviteId": 42, "serviceSessionId": "s-1", "detail": "x" } } }
        }));
        assert_eq!(
            prompt_of(&invite),
            Some(Prompt::Enquiry {
                text: String::new(),
                invite_id: json!(42),
                service_session_id: json!("s-1")
            })
        );
        let hint = payload(json!({
            "bodies": [{ "type": "txt", "msg": "" }],
            "ext": { "weichat": { "ctrlType": "TransferToKfHint",
                "ctrlArgs": { "id": 7, "serviceSessionId": "s-1", "label": "转人工客服" } } }
        }));
        assert_eq!(
            prompt_of(&hint),
            Some(Prompt::Transfer {
                text: "转人工客服".into(),
                id: json!(7),
                service_session_id: json!("s-1")
            })
        );
    }

    #[test]
    fn answered_forms_replace_the_buttons() {
        let menu = Prompt::Menu {
            title: "Pick".into(),
            items: vec![MenuItem {
                id: json!(1),
                name: "Orders".into(),
            }],
        };
        let answered = menu.render_answered(
            Some("Alice"),
            &Answer::Menu {
                name: "Orders".into(),
            },
        );
        assert!(!answered.blocks.to_string().contains("\"actions\""));
        assert!(answered.text.contains("You chose *Orders*"));
        assert!(answered.text.starts_with("*Alice:* Pick"));
    }
}
