//! Who the visitor is, for the agent (`ext.weichat.visitor`), from Slack's
//! `users.info` and `team.info`, cached in memory and in DynamoDB so the warm
//! path does not call Slack for every message; and the names `<@U…>`
//! mentions read as (docs/design.md §2 "Slack markup to plain text").
//!
//! A message's lookups share a small slice of its time ([`LOOKUP_BUDGET`])
//! and run at once; a mention costs at most [`MAX_LOOKUPS_PER_MESSAGE`]
//! lookups per message, and an id Slack does not resolve is remembered as
//! unknown for a while. So a message full of mentions, or a slow Slack,
//! costs the message a bounded time and never its delivery.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;

use crate::bridge::Bridge;
use crate::easemob::VisitorInfo;
use crate::slack::web::{SlackTeam, SlackUser};
use crate::store::{Installation, WorkspaceRecord};
use crate::visitor::VisitorId;

/// Profiles change rarely; a day in the table, ten minutes in memory.
const TABLE_TTL_SECS: i64 = 24 * 3_600;
const MEMORY_TTL: Duration = Duration::from_secs(600);
/// A mentioned id Slack did not resolve shows as the id this long before
/// it is asked about again.
const UNKNOWN_TTL: Duration = Duration::from_secs(600);

/// Mentions one message may look up beyond what memory knows (each is a
/// table read and maybe a `users.info`); the rest show as their ids.
pub const MAX_LOOKUPS_PER_MESSAGE: usize = 3;
/// Time all of one message's profile lookups may take together, out of
/// Slack's 3 s (the sends need the rest).
pub const LOOKUP_BUDGET: Duration = Duration::from_millis(700);

/// When a message's lookups must be done: [`LOOKUP_BUDGET`] from now, and
/// never after the message's own `deadline`.
pub fn lookups_deadline(deadline: Instant) -> Instant {
    (Instant::now() + LOOKUP_BUDGET).min(deadline)
}

/// `lookup`'s answer if it comes by `until`; `None` otherwise (the message
/// goes on without it, as when Slack cannot say).
pub async fn by<T>(
    until: Instant,
    what: &'static str,
    lookup: impl Future<Output = Option<T>>,
) -> Option<T> {
    match tokio::time::timeout_at(until.into(), lookup).await {
        Ok(found) => found,
        Err(_) => {
            tracing::warn!(lookup = what, "profile_lookup_out_of_time");
            None
        }
    }
}

/// A Slack user, or `None` when Slack can't say right now (the message is
/// forwarded anyway, with the id as the name; nothing degraded is cached).
pub async fn slack_user(
    bridge: &Bridge,
    installation: &Installation,
    user: &str,
) -> Option<SlackUser> {
    let workspace = installation.key.id().to_string();
    let memo_key = (workspace.clone(), user.to_string());
    let doc = match bridge.memo.users.get(&memo_key, MEMORY_TTL) {
        Some(doc) => doc,
        None => {
            let (workspace_key, record) = (&installation.key, WorkspaceRecord::Profile(user));
            let doc = match bridge.store.get_cached(workspace_key, record).await {
                Ok(Some(doc)) => doc,
                _ => {
                    let fetched = bridge
                        .slack
                        .users_info(&bridge.bot_token(installation), user)
                        .await;
                    let raw = match fetched {
                        Ok(user) => user_doc(&user),
                        Err(error) => {
                            tracing::warn!(workspace, user, %error, "slack_users_info_failed");
                            return None;
                        }
                    };
                    if let Err(error) = bridge
                        .store
                        .put_cached(workspace_key, record, &raw, TABLE_TTL_SECS)
                        .await
                    {
                        tracing::warn!(workspace, %error, "profile_cache_write_failed");
                    }
                    raw
                }
            };
            bridge.memo.users.put(memo_key, doc.clone());
            doc
        }
    };
    serde_json::from_value(doc).ok()
}

/// The team's name and domain (for an enterprise install, of the team the
/// message came from).
pub async fn slack_team(
    bridge: &Bridge,
    installation: &Installation,
    team: &str,
) -> Option<SlackTeam> {
    if let Some(doc) = bridge.memo.teams.get(&team.to_string(), MEMORY_TTL) {
        return serde_json::from_value(doc).ok();
    }
    let record = WorkspaceRecord::Team(team);
    let doc = match bridge.store.get_cached(&installation.key, record).await {
        Ok(Some(doc)) => doc,
        _ => match bridge
            .slack
            .team_info(&bridge.bot_token(installation), team)
            .await
        {
            Ok(info) => {
                let doc =
                    serde_json::json!({ "id": info.id, "name": info.name, "domain": info.domain });
                if let Err(error) = bridge
                    .store
                    .put_cached(&installation.key, record, &doc, TABLE_TTL_SECS)
                    .await
                {
                    tracing::warn!(team, %error, "team_cache_write_failed");
                }
                doc
            }
            Err(error) => {
                tracing::warn!(team, %error, "slack_team_info_failed");
                return None;
            }
        },
    };
    bridge.memo.teams.put(team.to_string(), doc.clone());
    serde_json::from_value(doc).ok()
}

/// Only the fields the bridge shows; nothing else of the profile is stored.
fn user_doc(user: &SlackUser) -> Value {
    serde_json::json!({
        "id": user.id,
        "name": user.name,
        "real_name": user.real_name,
        "tz": user.tz,
        "is_bot": user.is_bot,
        "profile": {
            "real_name": user.profile.real_name,
            "display_name": user.profile.display_name,
            "email": user.profile.email,
            "phone": user.profile.phone,
            "title": user.profile.title,
            "image_72": user.profile.image_72,
        }
    })
}

/// The name a person goes by in Slack: display name, else real name, else
/// handle, else the id. Never empty.
pub fn display_name(user: Option<&SlackUser>, fallback_id: &str) -> String {
    let non_empty = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    user.and_then(|u| {
        non_empty(&u.profile.display_name)
            .or_else(|| non_empty(&u.profile.real_name))
            .or_else(|| non_empty(&u.real_name))
            .or_else(|| non_empty(&u.name))
    })
    .unwrap_or_else(|| fallback_id.to_string())
}

/// `ext.weichat.visitor` for one conversation.
pub fn visitor_info(
    visitor: &VisitorId,
    user: Option<&SlackUser>,
    team: Option<&SlackTeam>,
    installation: &Installation,
    channel_type: &str,
) -> VisitorInfo {
    let non_empty = |s: Option<&String>| {
        s.map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_default()
    };
    let team_name = team
        .and_then(|t| t.name.clone())
        .or_else(|| installation.team_name.clone())
        .unwrap_or_else(|| visitor.workspace().to_string());
    let workspace = match team.and_then(|t| t.domain.as_deref()) {
        Some(domain) if !domain.is_empty() => format!("{team_name} ({domain}.slack.com)"),
        _ => team_name.clone(),
    };
    let conversation = match channel_type {
        "im" => format!("direct message {}", visitor.channel()),
        "mpim" => format!("group DM {}", visitor.channel()),
        "group" => format!("private channel {}", visitor.channel()),
        _ => format!("channel {}", visitor.channel()),
    };
    let mut description = format!(
        "Slack workspace {workspace}, {conversation}, user {}",
        visitor.user()
    );
    if let Some(title) = user
        .and_then(|u| u.profile.title.as_deref())
        .filter(|t| !t.trim().is_empty())
    {
        description.push_str(&format!(", title: {}", title.trim()));
    }
    if let Some(tz) = user.and_then(|u| u.tz.as_deref()).filter(|t| !t.is_empty()) {
        description.push_str(&format!(", time zone: {tz}"));
    }
    VisitorInfo {
        user_nickname: display_name(user, visitor.user().as_str()),
        true_name: non_empty(
            user.and_then(|u| u.profile.real_name.as_ref().or(u.real_name.as_ref())),
        ),
        company_name: team_name,
        phone: non_empty(user.and_then(|u| u.profile.phone.as_ref())),
        email: non_empty(user.and_then(|u| u.profile.email.as_ref())),
        description,
    }
    .capped()
}

/// Display names for `<@U…>` mentions, through the same caches, by
/// `until`: what memory knows, plus at most [`MAX_LOOKUPS_PER_MESSAGE`]
/// lookups made at once. An id left out, unknown to Slack or not answered
/// in time has no name here (it reads as the id) and one of the last two
/// kinds is not looked up again for [`UNKNOWN_TTL`].
pub async fn mention_names(
    bridge: &Bridge,
    installation: &Installation,
    users: &[String],
    until: Instant,
) -> HashMap<String, String> {
    let workspace = installation.key.id();
    let memo_key = |user: &str| (workspace.to_string(), user.to_string());
    let mut names = HashMap::new();
    let mut to_look_up = Vec::new();
    let mut left_out = 0usize;
    for user in users {
        if let Some(doc) = bridge.memo.users.get(&memo_key(user), MEMORY_TTL) {
            let profile: Option<SlackUser> = serde_json::from_value(doc).ok();
            names.insert(user.clone(), display_name(profile.as_ref(), user));
            continue;
        }
        let unknown = bridge.memo.unknown_users.get(&memo_key(user), UNKNOWN_TTL);
        if unknown.is_some() {
            continue;
        }
        if to_look_up.len() < MAX_LOOKUPS_PER_MESSAGE {
            to_look_up.push(user);
        } else {
            left_out += 1;
        }
    }
    if left_out > 0 {
        tracing::info!(workspace, left_out, "mention_lookups_capped");
    }
    let lookups = to_look_up.into_iter().map(|user| async move {
        let profile = by(until, "mention", slack_user(bridge, installation, user)).await;
        (user, profile)
    });
    for (user, profile) in join_all(lookups).await {
        match profile {
            Some(profile) => {
                names.insert(user.clone(), display_name(Some(&profile), user));
            }
            None => bridge.memo.unknown_users.put(memo_key(user), ()),
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::slack::web::SlackProfile;
    use crate::slack::{ChannelId, UserId};
    use crate::store::WorkspaceKey;

    fn installation() -> Installation {
        Installation {
            key: WorkspaceKey::Team("T1".into()),
            team_id: Some("T1".into()),
            team_name: Some("Acme".into()),
            enterprise_id: None,
            enterprise_name: None,
            app_id: "A1".into(),
            bot_token: Secret::new("xoxb-1"),
            bot_id: "B1".into(),
            bot_user_id: "U0BOT".into(),
            scopes: vec![],
            installed_by: None,
            installed_at: 0,
            refresh_token: None,
            token_expires_at: None,
            needs_reinstall: false,
        }
    }

    fn visitor() -> VisitorId {
        VisitorId::new(
            "T1",
            &UserId::parse("U1").unwrap(),
            &ChannelId::parse("D1").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn nickname_is_never_empty() {
        let info = visitor_info(&visitor(), None, None, &installation(), "im");
        assert_eq!(info.user_nickname, "U1");
        assert_eq!(info.company_name, "Acme");
        assert!(info.description.contains("direct message D1"));
    }

    #[test]
    fn profile_fields_fill_the_visitor() {
        let user = SlackUser {
            id: "U1".into(),
            profile: SlackProfile {
                display_name: Some("ada".into()),
                real_name: Some("Ada Lovelace".into()),
                phone: Some("+44 1".into()),
                email: Some("ada@example.com".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let team = SlackTeam {
            id: "T1".into(),
            name: Some("Acme Corp".into()),
            domain: Some("acme".into()),
        };
        let info = visitor_info(
            &visitor(),
            Some(&user),
            Some(&team),
            &installation(),
            "channel",
        );
        assert_eq!(info.user_nickname, "ada");
        assert_eq!(info.true_name, "Ada Lovelace");
        assert_eq!(info.company_name, "Acme Corp");
        assert_eq!(info.phone, "+44 1");
        assert_eq!(info.email, "ada@example.com");
        assert!(info.description.contains("Acme Corp (acme.slack.com)"));
    }

    #[test]
    fn display_name_prefers_display_then_real_name() {
        let user = SlackUser {
            id: "U1".into(),
            name: Some("ada.l".into()),
            profile: SlackProfile {
                display_name: Some(" ".into()),
                real_name: Some("Ada".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(display_name(Some(&user), "U1"), "Ada");
    }
}
