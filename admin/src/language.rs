//! `language set | list`: the language of the notices the bridge writes to
//! a workspace's customers — "joined the conversation", waiting, handed
//! over, ended (docs/design.md §4 "The table": `SETTINGS`). English unless
//! set. The functions pick a change up within five minutes (they keep the
//! language in memory that long).

use std::io::Write;

use kefu_bridge::store::{NoticeLanguage, Store, WorkspaceKey};
use serde::Serialize;

use crate::error::AdminError;
use crate::output::{print_rows, Row};
use crate::routes::{installed, workspace, workspaces};

#[derive(Debug, Serialize)]
pub struct LanguageRow {
    pub workspace: String,
    /// `en` or `zh`.
    pub language: &'static str,
}

impl Row for LanguageRow {
    const HEADER: &'static [&'static str] = &["WORKSPACE", "NOTICE LANGUAGE"];

    fn cells(&self) -> Vec<String> {
        vec![self.workspace.clone(), self.language.to_string()]
    }
}

/// `language set <TEAM> <en|zh>`; prints the workspace's language after.
pub async fn set(
    store: &Store,
    out: &mut dyn Write,
    json: bool,
    team: &str,
    language: &str,
) -> Result<(), AdminError> {
    let key = workspace(team)?;
    let language = NoticeLanguage::from_tag(language)
        .ok_or_else(|| AdminError::BadLanguage(language.to_string()))?;
    installed(store, &key).await?;
    store
        .put_notice_language(&key, language)
        .await
        .map_err(|e| AdminError::from_store(store.table(), e))?;
    print_languages(store, out, json, &[key]).await
}

/// `language list [TEAM]`: one workspace's notice language, or every
/// installed one's.
pub async fn list(
    store: &Store,
    out: &mut dyn Write,
    json: bool,
    team: Option<&str>,
) -> Result<(), AdminError> {
    let keys = workspaces(store, team).await?;
    print_languages(store, out, json, &keys).await
}

async fn print_languages(
    store: &Store,
    out: &mut dyn Write,
    json: bool,
    keys: &[WorkspaceKey],
) -> Result<(), AdminError> {
    let mut rows = Vec::new();
    for key in keys {
        let language = store
            .notice_language(key)
            .await
            .map_err(|e| AdminError::from_store(store.table(), e))?;
        rows.push(LanguageRow {
            workspace: key.id().to_string(),
            language: language.tag(),
        });
    }
    print_rows(out, json, &rows, "No installed workspaces.")?;
    Ok(())
}
