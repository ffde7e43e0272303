//! Which Kefu skill group a visitor's messages go to (docs/design.md §3
//! "Send a text as the visitor": `ext.weichat.queueName`, the widget's way
//! of routing). An admin sets one per workspace and, optionally, one per
//! channel (store/workspace_settings.rs); the channel's wins. Every
//! message a visitor sends carries it, as the widget does.

use std::time::Duration;

use crate::bridge::Bridge;
use crate::slack::ChannelId;
use crate::store::{Route, WorkspaceKey};

/// How long a workspace's routes are trusted in memory: a changed route
/// takes effect within a minute, and the warm path reads nothing.
const ROUTES_TTL: Duration = Duration::from_secs(60);
/// Kefu skill group names are short; anything longer is not one.
const MAX_QUEUE_NAME_CHARS: usize = 100;

/// A skill group name fit to send: trimmed, not empty, one line, short.
pub fn checked_queue_name(raw: &str) -> Option<&str> {
    let name = raw.trim();
    (!name.is_empty()
        && name.chars().count() <= MAX_QUEUE_NAME_CHARS
        && !name.chars().any(char::is_control))
    .then_some(name)
}

/// The route for `channel` among a workspace's routes: the channel's own,
/// else the workspace's.
pub fn queue_among<'a>(routes: &'a [Route], channel: &ChannelId) -> Option<&'a str> {
    let own = routes
        .iter()
        .find(|route| route.channel.as_deref() == Some(channel.as_str()));
    let workspace_wide = || routes.iter().find(|route| route.channel.is_none());
    own.or_else(workspace_wide)
        .and_then(|route| checked_queue_name(&route.queue))
}

/// The skill group for a visitor writing in `channel`, if one is set. A
/// table that cannot be read leaves the message unrouted (Kefu's default
/// queue) rather than holding it back.
pub async fn queue_for(
    bridge: &Bridge,
    workspace: &WorkspaceKey,
    channel: &ChannelId,
) -> Option<String> {
    let key = workspace.pk();
    let routes = match bridge.memo.routes.get(&key, ROUTES_TTL) {
        Some(routes) => routes,
        None => match bridge.store.routes(workspace).await {
            Ok(routes) => {
                bridge.memo.routes.put(key, routes.clone());
                routes
            }
            Err(error) => {
                tracing::warn!(workspace = workspace.id(), %error, "routes_unavailable");
                return None;
            }
        },
    };
    queue_among(&routes, channel).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(channel: Option<&str>, queue: &str) -> Route {
        Route {
            channel: channel.map(str::to_string),
            queue: queue.to_string(),
        }
    }

    #[test]
    fn the_channels_route_wins_over_the_workspaces() {
        let support = ChannelId::parse("C0SUPPORT").unwrap();
        let other = ChannelId::parse("C0OTHER").unwrap();
        let routes = [route(None, "general"), route(Some("C0SUPPORT"), "售后")];
        assert_eq!(queue_among(&routes, &support), Some("售后"));
        assert_eq!(queue_among(&routes, &other), Some("general"));
        assert_eq!(queue_among(&routes[1..], &other), None);
        assert_eq!(queue_among(&[], &support), None);
    }

    #[test]
    fn only_sensible_queue_names_are_sent() {
        assert_eq!(checked_queue_name("  sales "), Some("sales"));
        assert_eq!(checked_queue_name(" "), None);
        assert_eq!(checked_queue_name("a\nb"), None);
        assert_eq!(checked_queue_name(&"q".repeat(101)), None);
        let routes = [route(None, "bad\u{0}name")];
        assert_eq!(queue_among(&routes, &ChannelId::parse("C1").unwrap()), None);
    }
}
