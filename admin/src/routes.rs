//! `routes set | unset | list`: which Kefu skill group a workspace's
//! visitors (or one channel's) are routed to (docs/design.md §4 "The table":
//! `ROUTE#*` / `ROUTE#<channel>`). Only installed workspaces take a route, so
//! a mistyped id changes nothing. The functions pick a change up within a
//! minute (they keep routes in memory that long).

use std::io::Write;

use kefu_bridge::relay::routing::checked_queue_name;
use kefu_bridge::slack::ids::is_slack_id;
use kefu_bridge::slack::ChannelId;
use kefu_bridge::store::{Store, WorkspaceKey};
use serde::Serialize;

use crate::error::AdminError;
use crate::output::{print_rows, Row};

#[derive(Debug, Serialize)]
pub struct RouteRow {
    pub workspace: String,
    /// The channel id, or absent for the workspace-wide route.
    pub channel: Option<String>,
    pub queue: String,
}

impl Row for RouteRow {
    const HEADER: &'static [&'static str] = &["WORKSPACE", "CHANNEL", "KEFU QUEUE"];

    fn cells(&self) -> Vec<String> {
        vec![
            self.workspace.clone(),
            self.channel
                .clone()
                .unwrap_or_else(|| "* (every channel)".into()),
            self.queue.clone(),
        ]
    }
}

/// A workspace id as typed: a Slack team id (`T…`) or enterprise id (`E…`).
pub(crate) fn workspace(raw: &str) -> Result<WorkspaceKey, AdminError> {
    if is_slack_id(raw) && (raw.starts_with('T') || raw.starts_with('E')) {
        Ok(WorkspaceKey::from_id(raw))
    } else {
        Err(AdminError::BadWorkspace(raw.to_string()))
    }
}

/// A channel id as typed: public `C…`, private `G…` or direct `D…`.
fn channel(raw: &str) -> Result<ChannelId, AdminError> {
    ChannelId::parse(raw)
        .filter(|c| matches!(c.as_str().as_bytes()[0], b'C' | b'G' | b'D'))
        .ok_or_else(|| AdminError::BadChannel(raw.to_string()))
}

/// Fails unless the workspace has installed the app.
pub(crate) async fn installed(store: &Store, key: &WorkspaceKey) -> Result<(), AdminError> {
    match store
        .get_installation(key)
        .await
        .map_err(|e| AdminError::from_store(store.table(), e))?
    {
        Some(_) => Ok(()),
        None => Err(AdminError::NotInstalled(key.id().to_string())),
    }
}

/// `routes set <TEAM> [CHANNEL] <QUEUE>`; prints the workspace's routes after.
pub async fn set(
    store: &Store,
    out: &mut dyn Write,
    json: bool,
    args: &[String],
) -> Result<(), AdminError> {
    let (team, channel_id, queue) = match args {
        [team, queue] => (team, None, queue),
        [team, channel_id, queue] => (team, Some(channel(channel_id)?), queue),
        _ => unreachable!("clap takes two or three values"),
    };
    let key = workspace(team)?;
    let queue = checked_queue_name(queue).ok_or_else(|| AdminError::BadQueue(queue.clone()))?;
    installed(store, &key).await?;
    store
        .put_route(&key, channel_id.as_ref(), queue)
        .await
        .map_err(|e| AdminError::from_store(store.table(), e))?;
    print_routes(store, out, json, &[key]).await
}

/// `routes unset <TEAM> [CHANNEL]`; prints the workspace's routes after.
pub async fn unset(
    store: &Store,
    out: &mut dyn Write,
    json: bool,
    team: &str,
    channel_id: Option<&str>,
) -> Result<(), AdminError> {
    let key = workspace(team)?;
    let channel_id = channel_id.map(channel).transpose()?;
    installed(store, &key).await?;
    store
        .delete_route(&key, channel_id.as_ref())
        .await
        .map_err(|e| AdminError::from_store(store.table(), e))?;
    print_routes(store, out, json, &[key]).await
}

/// `routes list [TEAM]`: one workspace's routes, or every installed one's.
pub async fn list(
    store: &Store,
    out: &mut dyn Write,
    json: bool,
    team: Option<&str>,
) -> Result<(), AdminError> {
    let keys = workspaces(store, team).await?;
    print_routes(store, out, json, &keys).await
}

/// The workspace `team` names, or every installed one.
pub(crate) async fn workspaces(
    store: &Store,
    team: Option<&str>,
) -> Result<Vec<WorkspaceKey>, AdminError> {
    Ok(match team {
        Some(team) => vec![workspace(team)?],
        None => store
            .installations()
            .await
            .map_err(|e| AdminError::from_store(store.table(), e))?
            .into_iter()
            .map(|installation| installation.key)
            .collect(),
    })
}

async fn print_routes(
    store: &Store,
    out: &mut dyn Write,
    json: bool,
    keys: &[WorkspaceKey],
) -> Result<(), AdminError> {
    let mut rows = Vec::new();
    for key in keys {
        let routes = store
            .routes(key)
            .await
            .map_err(|e| AdminError::from_store(store.table(), e))?;
        rows.extend(routes.into_iter().map(|route| RouteRow {
            workspace: key.id().to_string(),
            channel: route.channel,
            queue: route.queue,
        }));
    }
    print_rows(
        out,
        json,
        &rows,
        "No routes: visitors go to Kefu's default queue.",
    )?;
    Ok(())
}
