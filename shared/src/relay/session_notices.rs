//! Kefu session events as one quiet line in the customer's conversation
//! (issue "The Kefu conversation in Slack"; docs/design.md §3 "Callback",
//! session events): an agent joined, the conversation waits for one, it
//! was handed on, it ended. Kefu's web widget shows the same lines
//! (`easemob/kefu-webim` `src/i18n/*.js`, `event_message`); the bridge
//! words them for a chat, in English or Chinese per workspace.
//!
//! A notice is one more step of the message that carries the event (see
//! relay/reply_parts.rs), so it is claimed, posted, queued in the outbox
//! and remembered for recalls exactly like a reply, and shown once.

use std::time::Duration;

use crate::bridge::Bridge;
use crate::easemob::callback::Payload;
use crate::easemob::session_event::SessionEvent;
use crate::relay::to_slack::agent_name;
use crate::slack::blocks;
use crate::slack::markup::escape;
use crate::slack::web::PostMessage;
use crate::store::{NoticeLanguage, WorkspaceKey};

/// How long a workspace's notice language is trusted in memory.
const LANGUAGE_TTL: Duration = Duration::from_secs(300);

/// The event a message carries, when the customer is to see it.
pub fn shown_event(payload: &Payload) -> Option<SessionEvent> {
    SessionEvent::of(&payload.ext.weichat).filter(SessionEvent::is_shown)
}

/// `*Alice Agent*`: bold, escaped, `*` taken out (Slack cannot escape it).
fn bold_name(raw: &str) -> Option<String> {
    agent_name(raw).map(|name| format!("*{}*", escape(&name.replace('*', ""))))
}

/// The notice's line (Slack mrkdwn), or `None` for an event not shown.
pub fn line(event: &SessionEvent, language: NoticeLanguage) -> Option<String> {
    use NoticeLanguage::{Chinese, English};
    let agent = |agent: &Option<String>| agent.as_deref().and_then(bold_name);
    Some(match (event, language) {
        (SessionEvent::Opened { agent: who }, English) => match agent(who) {
            Some(name) => format!("👋 {name} joined the conversation"),
            None => "👋 An agent joined the conversation".to_string(),
        },
        (SessionEvent::Opened { agent: who }, Chinese) => match agent(who) {
            Some(name) => format!("👋 客服 {name} 已接入会话"),
            None => "👋 客服已接入会话".to_string(),
        },
        (SessionEvent::WaitingForAgent, English) => {
            "⏳ Waiting for an agent — you'll be connected as soon as one is free".to_string()
        }
        (SessionEvent::WaitingForAgent, Chinese) => "⏳ 正在为您转接客服，请稍候".to_string(),
        (SessionEvent::Transferred { agent: who }, English) => match agent(who) {
            Some(name) => format!("🔀 Your conversation was handed to {name}"),
            None => "🔀 Your conversation was handed to another agent".to_string(),
        },
        (SessionEvent::Transferred { agent: who }, Chinese) => match agent(who) {
            Some(name) => format!("🔀 会话已转接至客服 {name}"),
            None => "🔀 会话已转接至其他客服".to_string(),
        },
        (SessionEvent::Closed, English) => {
            "✅ The conversation has ended. Write again any time to start a new one.".to_string()
        }
        (SessionEvent::Closed, Chinese) => {
            "✅ 会话已结束。如需帮助，请随时发送新消息。".to_string()
        }
        (SessionEvent::Created | SessionEvent::Other(_), _) => return None,
    })
}

/// The notice as a post: a context block and its text, from the app itself
/// (no agent name or avatar), in the visitor's DM or thread.
pub fn notice_post(
    event: &SessionEvent,
    language: NoticeLanguage,
    channel: &str,
    thread_ts: Option<&str>,
) -> Option<PostMessage> {
    let rendered = blocks::notice(&line(event, language)?);
    Some(PostMessage {
        channel: channel.to_string(),
        text: rendered.text,
        thread_ts: thread_ts.map(str::to_string),
        username: None,
        icon_url: None,
        unfurl_links: false,
        blocks: Some(rendered.blocks),
    })
}

/// The language of `workspace`'s notices, read only for a message that
/// has a notice to show. A table that cannot be read costs the wording,
/// never the notice: English then.
pub async fn language_for(
    bridge: &Bridge,
    workspace: &WorkspaceKey,
    payload: &Payload,
) -> NoticeLanguage {
    if shown_event(payload).is_none() {
        return NoticeLanguage::default();
    }
    let key = workspace.pk();
    if let Some(language) = bridge.memo.notice_languages.get(&key, LANGUAGE_TTL) {
        return language;
    }
    match bridge.store.notice_language(workspace).await {
        Ok(language) => {
            bridge.memo.notice_languages.put(key, language);
            language
        }
        Err(error) => {
            tracing::warn!(workspace = workspace.id(), %error, "notice_language_unavailable");
            NoticeLanguage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shown_event_has_a_line_in_both_languages() {
        let events = [
            SessionEvent::Opened {
                agent: Some("Alice *Agent*".into()),
            },
            SessionEvent::Opened { agent: None },
            SessionEvent::WaitingForAgent,
            SessionEvent::Transferred {
                agent: Some("Bob <B&B>".into()),
            },
            SessionEvent::Transferred { agent: None },
            SessionEvent::Closed,
        ];
        for language in [NoticeLanguage::English, NoticeLanguage::Chinese] {
            for event in &events {
                let line = line(event, language).expect("shown");
                assert!(!line.trim().is_empty());
            }
        }
        assert_eq!(
            line(&events[0], NoticeLanguage::English).unwrap(),
            "👋 *Alice Agent* joined the conversation"
        );
        assert_eq!(
            line(&events[3], NoticeLanguage::English).unwrap(),
            "🔀 Your conversation was handed to *Bob &lt;B&amp;B&gt;*"
        );
        assert!(line(&events[5], NoticeLanguage::Chinese)
            .unwrap()
            .contains("会话已结束"));
        assert_eq!(line(&SessionEvent::Created, NoticeLanguage::English), None);
        assert_eq!(
            line(&SessionEvent::Other("X".into()), NoticeLanguage::Chinese),
            None
        );
    }

    #[test]
    fn a_notice_is_one_context_block_from_the_app_in_the_thread() {
        let post = notice_post(
            &SessionEvent::Closed,
            NoticeLanguage::English,
            "C1",
            Some("1.2"),
        )
        .unwrap();
        assert_eq!(post.thread_ts.as_deref(), Some("1.2"));
        assert_eq!(post.username, None);
        let blocks = post.blocks.unwrap();
        assert_eq!(blocks.as_array().unwrap().len(), 1);
        assert_eq!(blocks[0]["type"], "context");
        assert_eq!(blocks[0]["elements"][0]["text"], post.text.as_str());
    }
}
