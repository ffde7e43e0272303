//! `dead-letters list | replay | purge` (docs/design.md §1 "Admin CLI"):
//! what could never be delivered, and putting it right. A replay puts each
//! dead letter back into the outbox, due now, exactly once even when two
//! replays run at once (the store moves it in one conditional transaction);
//! the next drain or wake-up delivers it in order with the rest of its
//! conversation. Named ids are all checked before anything changes.

use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kefu_bridge::clock::now_epoch_secs;
use kefu_bridge::dynamo::DynamoError;
use kefu_bridge::metrics::direction_dimension;
use kefu_bridge::store::{DeadLetter, DeadLetterId, OutboxItem, Store};
use serde::Serialize;

use crate::cli::Selection;
use crate::error::AdminError;
use crate::output::{print_rows, utc, Row};

/// More items than this get a progress bar on stderr (when it is a terminal).
const PROGRESS_AFTER: usize = 5;
/// Tries of one replay or purge whose write lost a race or met an outage.
const ATTEMPTS: u32 = 3;
/// The pause before the second try (twice that before the third).
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A dead letter as the operator sees it.
#[derive(Debug, Serialize)]
pub struct DeadLetterRow {
    /// What `replay` and `purge` take.
    pub id: String,
    /// `ToKefu` | `ToSlack`, as in the metrics' `Direction`.
    pub direction: &'static str,
    pub workspace: String,
    pub visitor: String,
    /// The Slack `event_id` or Easemob `msg_id` it came from.
    pub origin: String,
    pub reason: String,
    pub failed_at: String,
    pub attempts: u32,
    pub parts: usize,
    pub parts_done: u32,
    pub created_at: String,
}

impl From<&DeadLetter> for DeadLetterRow {
    fn from(letter: &DeadLetter) -> Self {
        let item = &letter.item;
        Self {
            id: letter.id().to_string(),
            direction: direction_dimension(item.direction),
            workspace: item.workspace.id().to_string(),
            visitor: item.visitor.clone(),
            origin: item.origin.clone(),
            reason: letter.reason.clone(),
            failed_at: utc(letter.dead_at),
            attempts: item.attempts,
            parts: item.parts.len(),
            parts_done: item.parts_done,
            created_at: utc(item.created_at),
        }
    }
}

impl Row for DeadLetterRow {
    const HEADER: &'static [&'static str] = &[
        "ID",
        "DIRECTION",
        "ORIGIN",
        "FAILED AT",
        "ATTEMPTS",
        "REASON",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.direction.to_string(),
            self.origin.clone(),
            self.failed_at.clone(),
            self.attempts.to_string(),
            self.reason.clone(),
        ]
    }
}

/// What a replay or purge did to one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Back in the outbox, due now.
    Replayed,
    /// Deleted.
    Purged,
    /// `--dry-run`: would have been replayed.
    WouldReplay,
    /// `--dry-run`: would have been purged.
    WouldPurge,
    /// Another replay or purge took it first: nothing to do.
    AlreadyGone,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Replayed => "replayed",
            Outcome::Purged => "purged",
            Outcome::WouldReplay => "would replay",
            Outcome::WouldPurge => "would purge",
            Outcome::AlreadyGone => "already gone",
        }
    }
}

/// One line of a replay's or purge's report.
#[derive(Debug, Serialize)]
pub struct ChangeRow {
    pub id: String,
    pub direction: &'static str,
    pub visitor: String,
    pub outcome: Outcome,
}

impl Row for ChangeRow {
    const HEADER: &'static [&'static str] = &["ID", "DIRECTION", "OUTCOME"];

    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.direction.to_string(),
            self.outcome.label().to_string(),
        ]
    }
}

/// Replay or purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Replay,
    Purge,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Replay => "replaying",
            Action::Purge => "purging",
        }
    }
}

pub async fn list(store: &Store, out: &mut dyn Write, json: bool) -> Result<(), AdminError> {
    let letters = store
        .dead_letters()
        .await
        .map_err(|e| AdminError::from_store(store.table(), e))?;
    let rows: Vec<DeadLetterRow> = letters.iter().map(DeadLetterRow::from).collect();
    print_rows(out, json, &rows, "No dead letters.")?;
    Ok(())
}

/// The dead letters `selection` names: every one with `--all`; otherwise
/// each named id, all of which must parse and exist (else nothing changes)
/// — or, for a replay, already be back in the outbox where a replay run at
/// the same time put it (returned apart: nothing left to do).
async fn selected(
    store: &Store,
    action: Action,
    selection: &Selection,
) -> Result<(Vec<DeadLetter>, Vec<OutboxItem>), AdminError> {
    let store_error = |e| AdminError::from_store(store.table(), e);
    if selection.all {
        let letters = store.dead_letters().await.map_err(store_error)?;
        return Ok((letters, Vec::new()));
    }
    let ids = selection
        .ids
        .iter()
        .map(|raw| DeadLetterId::parse(raw).ok_or_else(|| AdminError::BadDeadLetterId(raw.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut letters: Vec<DeadLetter> = Vec::with_capacity(ids.len());
    let mut replayed_meanwhile = Vec::new();
    let mut unknown = Vec::new();
    for id in ids {
        if letters.iter().any(|l| l.id() == id) {
            continue; // named twice
        }
        if let Some(letter) = store.dead_letter(&id).await.map_err(store_error)? {
            letters.push(letter);
            continue;
        }
        let waiting = match action {
            Action::Replay => store.replayed(&id).await.map_err(store_error)?,
            Action::Purge => None,
        };
        match waiting {
            Some(item) => replayed_meanwhile.push(item),
            None => unknown.push(id.to_string()),
        }
    }
    if !unknown.is_empty() {
        return Err(AdminError::UnknownDeadLetters(unknown));
    }
    Ok((letters, replayed_meanwhile))
}

/// Replays or purges the selected dead letters, one conditional write each,
/// and reports each one's outcome. Stops at the first store failure, saying
/// how many were done (each one done is complete: no half-replayed letter).
pub async fn change(
    store: &Store,
    out: &mut dyn Write,
    json: bool,
    action: Action,
    selection: &Selection,
) -> Result<(), AdminError> {
    let (letters, replayed_meanwhile) = selected(store, action, selection).await?;
    // A dead letter's id is its message's place, in the outbox as here.
    let row = |item: &OutboxItem, outcome| ChangeRow {
        id: item.sort_key(),
        direction: direction_dimension(item.direction),
        visitor: item.visitor.clone(),
        outcome,
    };
    let mut rows: Vec<ChangeRow> = replayed_meanwhile
        .iter()
        .map(|item| row(item, Outcome::AlreadyGone))
        .collect();
    if selection.dry_run {
        let outcome = match action {
            Action::Replay => Outcome::WouldReplay,
            Action::Purge => Outcome::WouldPurge,
        };
        rows.extend(letters.iter().map(|l| row(&l.item, outcome)));
    } else {
        let progress = progress_bar(letters.len(), action);
        for (done, letter) in letters.iter().enumerate() {
            match apply(store, action, letter).await {
                Ok(outcome) => rows.push(row(&letter.item, outcome)),
                Err(error) => {
                    progress.abandon();
                    print_rows(out, json, &rows, "")?;
                    return Err(AdminError::Interrupted {
                        done,
                        total: letters.len(),
                        cause: Box::new(AdminError::from_store(store.table(), error)),
                    });
                }
            }
            progress.inc(1);
        }
        progress.finish_and_clear();
    }
    let empty = if selection.all {
        "No dead letters."
    } else {
        ""
    };
    print_rows(out, json, &rows, empty)?;
    if !json && !rows.is_empty() {
        writeln!(out, "{}", summary(&rows))?;
    }
    Ok(())
}

/// `2 replayed, 1 already gone.` — how many of each outcome, in a fixed order.
fn summary(rows: &[ChangeRow]) -> String {
    let counts: Vec<String> = [
        Outcome::Replayed,
        Outcome::Purged,
        Outcome::WouldReplay,
        Outcome::WouldPurge,
        Outcome::AlreadyGone,
    ]
    .into_iter()
    .filter_map(|outcome| {
        let n = rows.iter().filter(|r| r.outcome == outcome).count();
        (n > 0).then(|| format!("{n} {}", outcome.label()))
    })
    .collect();
    let dry = rows
        .iter()
        .any(|r| matches!(r.outcome, Outcome::WouldReplay | Outcome::WouldPurge));
    format!(
        "{}.{}",
        counts.join(", "),
        if dry {
            " Dry run: nothing changed."
        } else {
            ""
        }
    )
}

/// Replays or purges one dead letter. A write that lost a race inside
/// DynamoDB (two transactions on one item at once) is tried again shortly:
/// by then the other one has finished, and the conditional write either
/// finds the letter gone or goes through — never both.
async fn apply(store: &Store, action: Action, letter: &DeadLetter) -> Result<Outcome, DynamoError> {
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let result = match action {
            Action::Replay => store
                .replay_dead_letter(letter, now_epoch_secs())
                .await
                .map(|moved| (moved, Outcome::Replayed)),
            Action::Purge => store
                .purge_dead_letter(&letter.id())
                .await
                .map(|deleted| (deleted, Outcome::Purged)),
        };
        match result {
            Ok((true, outcome)) => return Ok(outcome),
            Ok((false, _)) => return Ok(Outcome::AlreadyGone),
            Err(error) if error.is_unavailable() && attempt < ATTEMPTS => {
                tokio::time::sleep(RETRY_PAUSE * attempt).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A bar on stderr for more than a few items; hidden otherwise, and
/// whenever stderr is not a terminal (scripts, tests).
fn progress_bar(total: usize, action: Action) -> ProgressBar {
    if total <= PROGRESS_AFTER {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(action.verb());
    bar
}
