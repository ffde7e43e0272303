//! The command line of `kefu-bridge-admin` (docs/design.md §1 "Admin CLI"):
//! subcommands, flags and their help text, parsed by clap. What each does is
//! in the sibling modules; this file only says what a person may type.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kefu-bridge-admin",
    version,
    about = "Look after a deployed Slack ⇄ Kefu bridge: installations, the outbox, dead letters and Kefu routes.",
    long_about = "Look after a deployed Slack ⇄ Kefu bridge: installations, the outbox, dead letters and Kefu routes.\n\n\
        AWS credentials and region come the standard way (environment, AWS_PROFILE, `aws sso login`); \
        AWS_ENDPOINT_URL_DYNAMODB points it at another DynamoDB (e.g. DynamoDB Local). \
        The table is the stack's `TableName` output."
)]
pub struct Cli {
    /// The bridge's DynamoDB table (the stack's `TableName` output).
    #[arg(long, env = "TABLE_NAME", global = true, value_name = "TABLE")]
    pub table: Option<String>,

    /// Print JSON (one array per command) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Slack workspaces that installed the app.
    Installations {
        #[command(subcommand)]
        action: ListOnly,
    },
    /// Messages waiting for delivery (both directions).
    Outbox {
        #[command(subcommand)]
        action: ListOnly,
    },
    /// Messages that could never be delivered: list, replay or purge them.
    #[command(name = "dead-letters")]
    DeadLetters {
        #[command(subcommand)]
        action: DeadLettersAction,
    },
    /// The Kefu skill group (queue) each workspace or channel is routed to.
    Routes {
        #[command(subcommand)]
        action: RoutesAction,
    },
    /// The language of the notices the bridge writes to a workspace's
    /// customers (joined, waiting, handed over, ended): en or zh.
    Language {
        #[command(subcommand)]
        action: LanguageAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum LanguageAction {
    /// Set a workspace's notice language.
    Set {
        /// The workspace id (T… or E…).
        team: String,
        /// `en` (English, the default) or `zh` (Chinese).
        language: String,
    },
    /// Show the notice language, of one workspace or of every installed one.
    List {
        /// The workspace id (T… or E…).
        team: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListOnly {
    /// List them.
    List,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersAction {
    /// List every dead letter with its reason.
    List,
    /// Put dead letters back into the outbox, due now; the next drain
    /// delivers them in order with the conversation's other messages.
    Replay(Selection),
    /// Delete dead letters for good.
    Purge(Selection),
}

/// Which dead letters a replay or purge works on.
#[derive(Debug, Args)]
pub struct Selection {
    /// Every dead letter.
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,

    /// Ids as `dead-letters list` shows them (e.g. TO_KEFU#T1_U1_D1#000000000007).
    #[arg(value_name = "ID", required_unless_present = "all")]
    pub ids: Vec<String>,

    /// Show what would happen and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum RoutesAction {
    /// Route a workspace's visitors (or one channel's) to a Kefu skill group.
    #[command(override_usage = "kefu-bridge-admin routes set <TEAM> [CHANNEL] <QUEUE>")]
    Set {
        /// TEAM [CHANNEL] QUEUE: a workspace id (T… or E…), optionally a
        /// channel id (C…, G…, D…), and the Kefu skill group's name.
        #[arg(num_args = 2..=3, required = true, value_names = ["TEAM", "CHANNEL", "QUEUE"])]
        args: Vec<String>,
    },
    /// Remove a workspace's route (or one channel's).
    Unset {
        /// The workspace id (T… or E…).
        team: String,
        /// The channel id; without it, the workspace-wide route.
        channel: Option<String>,
    },
    /// List routes, of one workspace or of every installed one.
    List {
        /// The workspace id (T… or E…).
        team: Option<String>,
    },
}
