//! `installations list`: the Slack workspaces that installed the app, and
//! whether each needs a reinstall. Never prints a token.

use std::io::Write;

use kefu_bridge::store::{Installation, Store};
use serde::Serialize;

use crate::error::AdminError;
use crate::output::{print_rows, utc, Row};

#[derive(Debug, Serialize)]
pub struct InstallationRow {
    /// The workspace id (`T…`, or `E…` for an org-wide install): what
    /// `routes` takes.
    pub workspace: String,
    /// The Slack team id (absent for an org-wide install).
    pub team_id: Option<String>,
    pub team_name: Option<String>,
    pub enterprise_id: Option<String>,
    pub enterprise_name: Option<String>,
    pub app_id: String,
    pub bot_id: String,
    pub bot_user_id: String,
    pub scopes: Vec<String>,
    pub installed_by: Option<String>,
    pub installed_at: String,
    /// When the bot token expires (token rotation on), else absent.
    pub token_expires_at: Option<String>,
    /// Slack refused the token: the workspace must install the app again.
    pub needs_reinstall: bool,
}

impl From<&Installation> for InstallationRow {
    fn from(installation: &Installation) -> Self {
        Self {
            workspace: installation.key.id().to_string(),
            team_id: installation.team_id.clone(),
            team_name: installation.team_name.clone(),
            enterprise_id: installation.enterprise_id.clone(),
            enterprise_name: installation.enterprise_name.clone(),
            app_id: installation.app_id.clone(),
            bot_id: installation.bot_id.clone(),
            bot_user_id: installation.bot_user_id.clone(),
            scopes: installation.scopes.clone(),
            installed_by: installation.installed_by.clone(),
            installed_at: utc(installation.installed_at),
            token_expires_at: installation.token_expires_at.map(utc),
            needs_reinstall: installation.needs_reinstall,
        }
    }
}

impl Row for InstallationRow {
    const HEADER: &'static [&'static str] = &[
        "WORKSPACE",
        "NAME",
        "BOT USER",
        "INSTALLED AT",
        "STATUS",
        "SCOPES",
    ];

    fn cells(&self) -> Vec<String> {
        let name = self
            .team_name
            .clone()
            .or_else(|| self.enterprise_name.clone())
            .unwrap_or_default();
        let status = if self.needs_reinstall {
            "needs reinstall"
        } else {
            "ok"
        };
        vec![
            self.workspace.clone(),
            name,
            self.bot_user_id.clone(),
            self.installed_at.clone(),
            status.to_string(),
            self.scopes.join(","),
        ]
    }
}

pub async fn list(store: &Store, out: &mut dyn Write, json: bool) -> Result<(), AdminError> {
    let installations = store
        .installations()
        .await
        .map_err(|e| AdminError::from_store(store.table(), e))?;
    let rows: Vec<InstallationRow> = installations.iter().map(InstallationRow::from).collect();
    print_rows(out, json, &rows, "No workspace has installed the app.")?;
    Ok(())
}
