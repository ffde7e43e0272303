//! Posting to Slack: escaping, splitting, agent identity, threads
//! (SPEC §2 `chat.postMessage`, SPEC §3 "Callback" agent identity and Kefu extras).

use std::time::{Duration, Instant};

use crate::bridge::Bridge;
use crate::easemob::callback::{Ext, FileBody, MessageBody, Payload};
use crate::secret::Secret;
use crate::slack::markup::{escape, escaped_parts, split_by_cost, SLACK_MESSAGE_MAX_CHARS};
use crate::slack::web::{retry_after_fits, PostMessage, SlackApiError};

/// The scope that lets a post carry `username` and `icon_url`.
pub const CUSTOMIZE_SCOPE: &str = "chat:write.customize";
/// Slack shows at most 80 characters of a `username`.
const MAX_AGENT_NAME_CHARS: usize = 80;
/// Time a post is given when deciding whether to start one (or to wait out
/// a 429) inside the invocation's budget.
const POST_ALLOWANCE: Duration = Duration::from_millis(400);

/// Who the Slack user sees as the author of an agent reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentIdentity {
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

impl AgentIdentity {
    /// From `ext.weichat.agent {userNickname, avatar}`.
    pub fn from_ext(ext: &Ext) -> Self {
        let Some(agent) = &ext.weichat.agent else {
            return Self::default();
        };
        let name: String = agent
            .user_nickname
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .chars()
            .take(MAX_AGENT_NAME_CHARS)
            .collect();
        Self {
            name: Some(name).filter(|n| !n.is_empty()),
            avatar_url: avatar_url(&agent.avatar),
        }
    }
}

/// Kefu avatars may come protocol-relative (`//host/x`): Slack needs an
/// absolute URL. Anything that is not http(s) is no avatar.
pub fn avatar_url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if let Some(rest) = raw.strip_prefix("//") {
        return (!rest.is_empty()).then(|| format!("https://{rest}"));
    }
    let lower = raw.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then(|| raw.to_string())
}

/// What the Slack user reads for one Kefu message, as plain text (escaped
/// when posts are built). Empty when there is nothing to show: control
/// (`cmd`) messages and empty texts, such as Kefu's session events.
///
/// Kefu extras are shown as readable text until Slack-native controls
/// exist: a robot menu (`ext.msgtype.choice` without `mode`) as its title
/// (which Kefu's own web widget shows instead of the text) and one bullet per
/// item; a satisfaction invitation (`ctrlType = inviteEnquiry`) as a line
/// asking for a 1–5 rating; a transfer hint as its text or label.
pub fn reply_text(payload: &Payload) -> String {
    let ext = &payload.ext;
    let menu = ext.msgtype.choice.as_ref().filter(|c| c.is_menu());
    let menu_title = menu.map(|m| m.title.trim()).filter(|t| !t.is_empty());

    let mut lines: Vec<String> = Vec::new();
    let mut other_lines: Vec<String> = Vec::new();
    for body in &payload.bodies {
        match body {
            MessageBody::Text { msg } => {
                let msg = msg.trim();
                if !msg.is_empty() && menu_title.is_none() {
                    lines.push(msg.to_string());
                }
            }
            MessageBody::Image(file) => other_lines.push(file_line("an image", file)),
            MessageBody::File(file) => other_lines.push(file_line("a file", file)),
            MessageBody::Audio(file) => other_lines.push(file_line("a voice message", file)),
            MessageBody::Video(file) => other_lines.push(file_line("a video", file)),
            MessageBody::Location { addr } => other_lines.push(match addr.trim() {
                "" => "📍 Agent shared a location".to_string(),
                addr => format!("📍 Agent shared a location: {addr}"),
            }),
            MessageBody::Command { .. } => {}
            MessageBody::Other { kind } => other_lines.push(format!(
                "Agent sent a message of a kind Slack can't show ({})",
                if kind.is_empty() { "unknown" } else { kind }
            )),
        }
    }
    if let Some(menu) = menu {
        lines.extend(menu_title.map(str::to_string));
        lines.extend(
            menu.items
                .iter()
                .map(|item| item.name.trim())
                .filter(|name| !name.is_empty())
                .map(|name| format!("• {name}")),
        );
    }
    match ext.weichat.ctrl_type.as_str() {
        "inviteEnquiry" => lines.push(
            "⭐ Please rate this service: reply with a number from 1 (poor) to 5 (excellent)."
                .to_string(),
        ),
        "TransferToKfHint" if lines.is_empty() => {
            let label = ext.weichat.ctrl_args.get("label").and_then(|l| l.as_str());
            lines.extend(
                label
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
        _ => {}
    }
    lines.extend(other_lines);
    lines.join("\n")
}

/// "📎 Agent sent an image: photo.jpg" — files themselves are relayed by a
/// later issue; their Easemob URLs need a token or share-secret anyway.
fn file_line(kind: &str, file: &FileBody) -> String {
    match file.filename.trim() {
        "" => format!("📎 Agent sent {kind}"),
        name => format!("📎 Agent sent {kind}: {name}"),
    }
}

/// The ordered `chat.postMessage` calls for one reply: escaped text split
/// into parts of at most 4,000 characters at whitespace. With
/// `chat:write.customize` the agent's name and avatar go in `username` and
/// `icon_url`; without it, the first part starts with the name in bold.
pub fn build_posts(
    text: &str,
    agent: &AgentIdentity,
    customize: bool,
    channel: &str,
    thread_ts: Option<&str>,
) -> Vec<PostMessage> {
    let text = text.trim();
    if text.is_empty() {
        return Vec::new();
    }
    let prefix = match (&agent.name, customize) {
        // `*` would end the bold early; Slack has no way to escape it.
        (Some(name), false) => format!("*{}:* ", escape(&name.replace('*', ""))),
        _ => String::new(),
    };
    let first_limit = SLACK_MESSAGE_MAX_CHARS.saturating_sub(prefix.chars().count());
    split_for_slack(text, first_limit, SLACK_MESSAGE_MAX_CHARS)
        .into_iter()
        .enumerate()
        .map(|(index, part)| PostMessage {
            channel: channel.to_string(),
            text: if index == 0 {
                format!("{prefix}{part}")
            } else {
                part
            },
            thread_ts: thread_ts.map(str::to_string),
            username: agent.name.clone().filter(|_| customize),
            icon_url: agent.avatar_url.clone().filter(|_| customize),
            unfurl_links: false,
            blocks: None,
        })
        .collect()
}

/// Characters a character takes once escaped for Slack.
fn escaped_cost(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    }
}

/// Like [`escaped_parts`], but the first part may be shorter (it carries the
/// agent-name prefix). Every part is escaped after the cut, so no cut falls
/// inside an escape.
fn split_for_slack(text: &str, first_limit: usize, limit: usize) -> Vec<String> {
    let mut first = split_by_cost(text, first_limit, escaped_cost);
    if first.len() <= 1 {
        return first.iter().map(|part| escape(part)).collect();
    }
    let head = first.swap_remove(0);
    // `split_by_cost` returns a prefix of `text` first; the rest starts
    // after it and the whitespace run it was cut at.
    let rest = text[head.len()..].trim_start();
    let mut parts = vec![escape(&head)];
    parts.extend(
        escaped_parts(rest, limit)
            .into_iter()
            .filter(|part| !part.is_empty()),
    );
    parts
}

/// Why posting stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostError {
    Slack(SlackApiError),
    /// Not enough of the invocation's budget left to start the next part.
    OutOfTime,
}

/// Posting stopped after `posted` posts (counting those of earlier attempts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostFailure {
    pub posted: usize,
    pub error: PostError,
}

/// Posts `posts[already_posted..]` in order with the bot token. A 429 whose
/// `Retry-After` fits before `deadline` is waited out once; anything else
/// stops, reporting how many posts are made so the caller can keep that
/// progress for the retry.
pub async fn send_posts(
    bridge: &Bridge,
    token: &Secret,
    posts: &[PostMessage],
    already_posted: usize,
    deadline: Instant,
) -> Result<(), PostFailure> {
    for (index, post) in posts.iter().enumerate().skip(already_posted) {
        let fail = |error| PostFailure {
            posted: index,
            error,
        };
        // The first post of an invocation is always tried.
        if index > already_posted && remaining(deadline) < POST_ALLOWANCE {
            return Err(fail(PostError::OutOfTime));
        }
        post_once_more_if_limited(bridge, token, post, deadline)
            .await
            .map_err(|e| fail(PostError::Slack(e)))?;
    }
    Ok(())
}

async fn post_once_more_if_limited(
    bridge: &Bridge,
    token: &Secret,
    post: &PostMessage,
    deadline: Instant,
) -> Result<(), SlackApiError> {
    match bridge.slack.post_message(token, post).await {
        Err(SlackApiError::RateLimited { retry_after }) => {
            let budget = remaining(deadline).saturating_sub(POST_ALLOWANCE);
            let Some(wait) = retry_after_fits(retry_after, budget) else {
                return Err(SlackApiError::RateLimited { retry_after });
            };
            tokio::time::sleep(wait).await;
            bridge.slack.post_message(token, post).await.map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::easemob::callback::Callback;
    use serde_json::json;

    fn payload(value: serde_json::Value) -> Payload {
        Callback::parse(json!({ "payload": value }))
            .unwrap()
            .payload
    }

    fn alice() -> AgentIdentity {
        AgentIdentity {
            name: Some("Alice".into()),
            avatar_url: Some("https://kefu.example/a.png".into()),
        }
    }

    #[test]
    fn avatars_become_absolute_https_urls() {
        assert_eq!(
            avatar_url("//kefu.easemob.com/ossimages/a.png").as_deref(),
            Some("https://kefu.easemob.com/ossimages/a.png")
        );
        assert_eq!(
            avatar_url("https://x.io/a.png").as_deref(),
            Some("https://x.io/a.png")
        );
        assert_eq!(avatar_url(""), None);
        assert_eq!(avatar_url("//"), None);
        assert_eq!(avatar_url("images/a.png"), None);
    }

    #[test]
    fn agent_identity_from_ext() {
        let p = payload(json!({ "ext": { "weichat": { "agent": {
            "userNickname": "  Alice\nSmith ", "avatar": "//kefu.example/a.png" } } } }));
        assert_eq!(
            AgentIdentity::from_ext(&p.ext),
            AgentIdentity {
                name: Some("Alice Smith".into()),
                avatar_url: Some("https://kefu.example/a.png".into())
            }
        );
        let empty = payload(
            json!({ "ext": { "weichat": { "agent": { "userNickname": "", "avatar": "" } } } }),
        );
        assert_eq!(
            AgentIdentity::from_ext(&empty.ext),
            AgentIdentity::default()
        );
    }

    #[test]
    fn texts_files_and_commands() {
        let p = payload(json!({ "bodies": [
            { "type": "txt", "msg": " hello " },
            { "type": "img", "filename": "photo.jpg", "url": "u" },
            { "type": "file", "filename": "" },
            { "type": "audio", "filename": "voice.amr", "length": 3 },
            { "type": "video", "filename": "clip.mp4" },
            { "type": "cmd", "action": "KF-ACK" },
            { "type": "loc", "addr": "1 Main St" },
            { "type": "sticker" }
        ] }));
        assert_eq!(
            reply_text(&p),
            "hello\n📎 Agent sent an image: photo.jpg\n📎 Agent sent a file\n\
             📎 Agent sent a voice message: voice.amr\n📎 Agent sent a video: clip.mp4\n\
             📍 Agent shared a location: 1 Main St\n\
             Agent sent a message of a kind Slack can't show (sticker)"
        );
        let cmd_only = payload(json!({ "bodies": [{ "type": "cmd", "action": "TransferToKf" }] }));
        assert_eq!(reply_text(&cmd_only), "");
    }

    #[test]
    fn a_robot_menu_is_its_title_and_one_bullet_per_item() {
        let p = payload(json!({
            "bodies": [{ "type": "txt", "msg": "ignored, as in Kefu's widget" }],
            "ext": { "msgtype": { "choice": { "title": "How can we help?",
                "items": [{ "id": "1", "name": "Orders" }, { "id": "2", "name": "Refunds" }] } } }
        }));
        assert_eq!(reply_text(&p), "How can we help?\n• Orders\n• Refunds");
        // Not a menu when `mode` is set: the text is the message.
        let guide = payload(json!({
            "bodies": [{ "type": "txt", "msg": "Transferring you" }],
            "ext": { "msgtype": { "choice": { "mode": "transferManualGuide", "title": "x", "items": [] } } }
        }));
        assert_eq!(reply_text(&guide), "Transferring you");
    }

    #[test]
    fn an_enquiry_invitation_asks_for_a_rating() {
        let p = payload(json!({
            "bodies": [{ "type": "txt", "msg": "" }],
            "ext": { "weichat": { "ctrlType": "inviteEnquiry", "ctrlArgs": { "inviteId": 1, "serviceSessionId": "s" } } }
        }));
        let text = reply_text(&p);
        assert!(text.contains("1 (poor) to 5 (excellent)"), "{text}");
    }

    #[test]
    fn a_transfer_hint_without_text_shows_its_label() {
        let p = payload(json!({
            "bodies": [{ "type": "txt", "msg": "" }],
            "ext": { "weichat": { "ctrlType": "TransferToKfHint", "ctrlArgs": { "id": 1, "label": "Talk to a person" } } }
        }));
        assert_eq!(reply_text(&p), "Talk to a person");
    }

    #[test]
    fn without_customize_the_name_is_a_bold_prefix() {
        let posts = build_posts("a < b & c", &alice(), false, "D1", None);
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].text, "*Alice:* a &lt; b &amp; c");
        assert_eq!(posts[0].username, None);
        assert_eq!(posts[0].icon_url, None);
        let odd = AgentIdentity {
            name: Some("<b>*Bob*".into()),
            avatar_url: None,
        };
        assert_eq!(
            build_posts("hi", &odd, false, "D1", None)[0].text,
            "*&lt;b&gt;Bob:* hi"
        );
    }

    #[test]
    fn with_customize_name_and_avatar_are_username_and_icon() {
        let posts = build_posts("hi", &alice(), true, "C1", Some("1.2"));
        assert_eq!(
            posts,
            vec![PostMessage {
                channel: "C1".into(),
                text: "hi".into(),
                thread_ts: Some("1.2".into()),
                username: Some("Alice".into()),
                icon_url: Some("https://kefu.example/a.png".into()),
                unfurl_links: false,
                blocks: None,
            }]
        );
    }

    #[test]
    fn long_replies_split_within_4000_with_the_prefix_on_the_first_only() {
        let text = "a&b ".repeat(2_500);
        let posts = build_posts(&text, &alice(), false, "D1", None);
        assert!(posts.len() > 1);
        for post in &posts {
            assert!(post.text.chars().count() <= 4_000, "{}", post.text.len());
        }
        assert!(posts[0].text.starts_with("*Alice:* a&amp;b"));
        assert!(posts[1..].iter().all(|p| p.text.starts_with("a&amp;b")));
        let words: Vec<String> = posts
            .iter()
            .flat_map(|p| {
                p.text
                    .trim_start_matches("*Alice:* ")
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(words.len(), 2_500);
        assert!(words.iter().all(|w| w == "a&amp;b"));
    }

    #[test]
    fn the_prefix_is_accounted_for_at_the_limit() {
        // Exactly 4,000 characters: fits alone, not with a prefix.
        let text = "x".repeat(3_000) + " " + &"y".repeat(999);
        assert_eq!(build_posts(&text, &alice(), true, "D1", None).len(), 1);
        let posts = build_posts(&text, &alice(), false, "D1", None);
        assert_eq!(posts.len(), 2);
        assert_eq!(posts[0].text, format!("*Alice:* {}", "x".repeat(3_000)));
        assert_eq!(posts[1].text, "y".repeat(999));
    }

    #[test]
    fn nothing_to_show_is_no_post() {
        assert!(build_posts("  \n ", &alice(), false, "D1", None).is_empty());
    }
}
