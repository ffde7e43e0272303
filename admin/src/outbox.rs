//! `outbox list`: the messages waiting for delivery, both directions, in
//! the order the drains will try them (docs/design.md §4 "The table").

use std::io::Write;

use kefu_bridge::metrics::direction_dimension;
use kefu_bridge::store::{Direction, OutboxItem, Store};
use serde::Serialize;

use crate::error::AdminError;
use crate::output::{print_rows, utc, Row};

#[derive(Debug, Serialize)]
pub struct OutboxRow {
    pub id: String,
    /// `ToKefu` | `ToSlack`, as in the metrics' `Direction`.
    pub direction: &'static str,
    pub workspace: String,
    pub visitor: String,
    /// The Slack `event_id` or Easemob `msg_id` it came from.
    pub origin: String,
    pub attempts: u32,
    pub parts: usize,
    pub parts_done: u32,
    pub created_at: String,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
}

impl From<&OutboxItem> for OutboxRow {
    fn from(item: &OutboxItem) -> Self {
        Self {
            id: item.sort_key(),
            direction: direction_dimension(item.direction),
            workspace: item.workspace.id().to_string(),
            visitor: item.visitor.clone(),
            origin: item.origin.clone(),
            attempts: item.attempts,
            parts: item.parts.len(),
            parts_done: item.parts_done,
            created_at: utc(item.created_at),
            next_attempt_at: utc(item.next_attempt_at),
            last_error: item.last_error.clone(),
        }
    }
}

impl Row for OutboxRow {
    const HEADER: &'static [&'static str] = &[
        "ID",
        "DIRECTION",
        "ORIGIN",
        "QUEUED AT",
        "NEXT TRY",
        "ATTEMPTS",
        "LAST ERROR",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.direction.to_string(),
            self.origin.clone(),
            self.created_at.clone(),
            self.next_attempt_at.clone(),
            self.attempts.to_string(),
            self.last_error.clone().unwrap_or_default(),
        ]
    }
}

pub async fn list(store: &Store, out: &mut dyn Write, json: bool) -> Result<(), AdminError> {
    let mut rows = Vec::new();
    for direction in [Direction::ToKefu, Direction::ToSlack] {
        let items = store
            .outbox(direction)
            .await
            .map_err(|e| AdminError::from_store(store.table(), e))?;
        rows.extend(items.iter().map(OutboxRow::from));
    }
    print_rows(out, json, &rows, "The outbox is empty.")?;
    Ok(())
}
