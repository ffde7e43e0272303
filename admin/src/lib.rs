//! `kefu-bridge-admin`: what an operator runs after an outage (docs/design.md
//! §1 "Admin CLI") — the installations, the outbox, the dead letters (list,
//! replay, purge) and the Kefu routes, read and changed through the same
//! `Store` the functions use, so only `store/` knows the table's keys.
//!
//! `main.rs` only parses the command line and turns [`run`]'s result into
//! an exit status; everything here is plain async functions over a `Store`.

pub mod cli;
pub mod dead_letters;
pub mod error;
pub mod installations;
pub mod language;
pub mod outbox;
pub mod output;
pub mod routes;

use std::io::Write;

use aws_credential_types::provider::ProvideCredentials;
use kefu_bridge::dynamo;
use kefu_bridge::store::Store;

use cli::{Cli, Command, DeadLettersAction, LanguageAction, ListOnly, RoutesAction};
use dead_letters::Action;
pub use error::AdminError;

/// The store on `table`, with credentials, region and endpoint from the
/// standard places (`aws-config`: environment, profiles, SSO;
/// `AWS_ENDPOINT_URL_DYNAMODB`).
pub async fn connect(table: Option<&str>) -> Result<Store, AdminError> {
    let table = table
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AdminError::NoTable)?;
    let shared = dynamo::aws_config_from_env().await;
    let client = dynamo::client_with(&shared).map_err(AdminError::from_config)?;
    // Credentials first, so a missing or expired login is one clear line
    // before any request (the client reuses what this resolves).
    let provider = shared
        .credentials_provider()
        .ok_or_else(|| AdminError::NoCredentials("no credential provider".into()))?;
    provider
        .provide_credentials()
        .await
        .map_err(AdminError::from_credentials)?;
    Ok(Store::new(client, table))
}

/// Runs one command, writing what it found to `out`.
pub async fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), AdminError> {
    let store = connect(cli.table.as_deref()).await?;
    let json = cli.json;
    match &cli.command {
        Command::Installations {
            action: ListOnly::List,
        } => installations::list(&store, out, json).await,
        Command::Outbox {
            action: ListOnly::List,
        } => outbox::list(&store, out, json).await,
        Command::DeadLetters { action } => match action {
            DeadLettersAction::List => dead_letters::list(&store, out, json).await,
            DeadLettersAction::Replay(selection) => {
                dead_letters::change(&store, out, json, Action::Replay, selection).await
            }
            DeadLettersAction::Purge(selection) => {
                dead_letters::change(&store, out, json, Action::Purge, selection).await
            }
        },
        Command::Routes { action } => match action {
            RoutesAction::Set { args } => routes::set(&store, out, json, args).await,
            RoutesAction::Unset { team, channel } => {
                routes::unset(&store, out, json, team, channel.as_deref()).await
            }
            RoutesAction::List { team } => routes::list(&store, out, json, team.as_deref()).await,
        },
        Command::Language { action } => match action {
            LanguageAction::Set { team, language } => {
                language::set(&store, out, json, team, language).await
            }
            LanguageAction::List { team } => {
                language::list(&store, out, json, team.as_deref()).await
            }
        },
    }
}
