//! Posting to Slack: escaping, splitting, agent identity, threads
//! (docs/design.md §2 `chat.postMessage`, docs/design.md §3 "Callback" agent identity and Kefu extras).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bridge::Bridge;
use crate::easemob::callback::Ext;
use crate::relay::pipeline::remaining;
use crate::relay::prompts::{self, PostedPrompt};
use crate::slack::bot_token::BotToken;
use crate::slack::markup::{escape, escaped_parts, split_by_cost, SLACK_MESSAGE_MAX_CHARS};
use crate::slack::web::{
    retry_after_fits, PostMessage, PostedMessage, SlackApiError, SlackMessageRef,
};
use crate::store::Installation;

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
        Self {
            name: agent_name(&agent.user_nickname),
            avatar_url: avatar_url(&agent.avatar),
        }
    }
}

/// An agent's name as Slack shows it: one line, at most 80 characters
/// (what a `username` shows), `None` when blank.
pub fn agent_name(raw: &str) -> Option<String> {
    let name: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_AGENT_NAME_CHARS)
        .collect();
    Some(name).filter(|n| !n.is_empty())
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

/// One `chat.postMessage` of a reply, as it is sent now or kept in the
/// outbox (JSON: the post's fields, plus `question` for a question). A
/// question carries the record stored under the posted message, so it is
/// remembered whichever path posts it. Outbox records written before
/// questions carried theirs read as plain posts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingPost {
    #[serde(flatten)]
    pub message: PostMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<PostedPrompt>,
}

impl OutgoingPost {
    pub fn plain(message: PostMessage) -> Self {
        Self {
            message,
            question: None,
        }
    }
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
/// progress for the retry. Each post made is added to `carried`, so the
/// caller can remember where the message went (recalls delete it).
pub async fn send_posts(
    bridge: &Bridge,
    installation: &Installation,
    token: &BotToken<'_>,
    posts: &[OutgoingPost],
    already_posted: usize,
    deadline: Instant,
    carried: &mut Vec<SlackMessageRef>,
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
        let posted = post_once_more_if_limited(bridge, installation, token, post, deadline)
            .await
            .map_err(|e| fail(PostError::Slack(e)))?;
        carried.extend(SlackMessageRef::of(&post.message, &posted));
    }
    Ok(())
}

async fn post_once_more_if_limited(
    bridge: &Bridge,
    installation: &Installation,
    token: &BotToken<'_>,
    post: &OutgoingPost,
    deadline: Instant,
) -> Result<PostedMessage, SlackApiError> {
    match post_one(bridge, installation, token, post).await {
        Err(SlackApiError::RateLimited { retry_after }) => {
            let budget = remaining(deadline).saturating_sub(POST_ALLOWANCE);
            let Some(wait) = retry_after_fits(retry_after, budget) else {
                return Err(SlackApiError::RateLimited { retry_after });
            };
            tokio::time::sleep(wait).await;
            post_one(bridge, installation, token, post).await
        }
        other => other,
    }
}

/// A question goes through [`prompts::post`], which stores its record.
async fn post_one(
    bridge: &Bridge,
    installation: &Installation,
    token: &BotToken<'_>,
    post: &OutgoingPost,
) -> Result<PostedMessage, SlackApiError> {
    match &post.question {
        Some(record) => {
            prompts::post(bridge, token, &installation.key, record, &post.message).await
        }
        None => bridge.slack.post_message(token, &post.message).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::easemob::callback::{Callback, Payload};
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
