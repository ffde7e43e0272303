//! Per-workspace records: caches of Slack profile data, visitors registered
//! in Easemob, the conversation record (the thread a channel conversation is
//! in; its outbox counters are store/outbox.rs's), and the Easemob token.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use serde_json::Value;

use super::{built, Store, WorkspaceKey};
use crate::clock::now_epoch_secs;
use crate::dynamo::item::{num_attr, str_attr};
use crate::dynamo::{DynamoError, ItemExt};
use crate::secret::Secret;

/// DynamoDB takes at most 25 writes in one `BatchWriteItem`.
const BATCH_SIZE: usize = 25;

/// The pauses before each retry of a batch's unprocessed writes: AWS's
/// advice is to retry them with exponential backoff. Four retries, 750 ms
/// of pauses in all, so an uninstall still answers within Slack's 3 s
/// (docs/design.md §2 "Events API").
const UNPROCESSED_RETRY_PAUSES: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

/// A record kept in a workspace's partition for the relay: a cached
/// document or a marker (docs/design.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceRecord<'a> {
    /// A Slack user's profile (`users.info`), by user id.
    Profile(&'a str),
    /// A Slack team's name and domain (`team.info`), by team id.
    Team(&'a str),
    /// A visitor registered in Easemob, by visitor id.
    Visitor(&'a str),
    /// An interactive message the bridge posted.
    Prompt { channel: &'a str, ts: &'a str },
}

impl WorkspaceRecord<'_> {
    fn sk(&self) -> String {
        match self {
            WorkspaceRecord::Profile(user) => format!("PROFILE#{user}"),
            WorkspaceRecord::Team(team) => format!("TEAM#{team}"),
            WorkspaceRecord::Visitor(visitor) => format!("VISITOR#{visitor}"),
            WorkspaceRecord::Prompt { channel, ts } => format!("PROMPT#{channel}#{ts}"),
        }
    }
}

impl Store {
    /// A cached JSON document, or `None` when absent or expired (DynamoDB's
    /// TTL deletes lazily, so expiry is checked on read too).
    pub async fn get_cached(
        &self,
        workspace: &WorkspaceKey,
        record: WorkspaceRecord<'_>,
    ) -> Result<Option<Value>, DynamoError> {
        let Some(item) = self.get(Self::key(workspace.pk(), record.sk())).await? else {
            return Ok(None);
        };
        if item
            .n("expires_at")
            .is_some_and(|at| at <= now_epoch_secs())
        {
            return Ok(None);
        }
        Ok(item.s("data").and_then(|d| serde_json::from_str(d).ok()))
    }

    pub async fn put_cached(
        &self,
        workspace: &WorkspaceKey,
        record: WorkspaceRecord<'_>,
        data: &Value,
        ttl_secs: i64,
    ) -> Result<(), DynamoError> {
        let mut item = Self::key(workspace.pk(), record.sk());
        item.insert("data".into(), str_attr(data.to_string()));
        item.insert("expires_at".into(), num_attr(now_epoch_secs() + ttl_secs));
        self.put(item).await
    }

    /// Deletes the installation and everything cached for the workspace.
    /// Idempotent: deleting nothing is fine. Returns how many records went.
    /// Deletes DynamoDB still leaves unprocessed after the retries are an
    /// error (logged as `workspace_cleanup_incomplete`): the caller answers
    /// 5xx and the sender's retry deletes the rest.
    pub async fn delete_workspace(&self, key: &WorkspaceKey) -> Result<usize, DynamoError> {
        let records = self
            .query_all(
                self.db
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", str_attr(key.pk()))
                    .projection_expression("pk, sk, to_kefu_pending, to_slack_pending"),
            )
            .await?;
        // A conversation with messages still in the outbox keeps its record:
        // its pending count and sequence counter order them, and the drain
        // settles them (to Kefu: delivered; to Slack: dead letters, the
        // workspace being gone).
        let doomed: Vec<WriteRequest> = records
            .iter()
            .filter(|item| {
                item.n("to_kefu_pending").unwrap_or(0) <= 0
                    && item.n("to_slack_pending").unwrap_or(0) <= 0
            })
            .map(|item| {
                let key = ["pk", "sk"]
                    .into_iter()
                    .filter_map(|name| Some((name.to_string(), item.get(name)?.clone())))
                    .collect();
                let delete = DeleteRequest::builder().set_key(Some(key)).build()?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<_, _>>()
            .map_err(built)?;
        let count = doomed.len();
        for chunk in doomed.chunks(BATCH_SIZE) {
            let written = write_all(chunk.to_vec(), &UNPROCESSED_RETRY_PAUSES, |requests| {
                self.write_batch(requests)
            })
            .await;
            if let Err(error) = written {
                tracing::error!(workspace = key.id(), %error, "workspace_cleanup_incomplete");
                return Err(error);
            }
        }
        Ok(count)
    }

    /// One `BatchWriteItem` on this table; returns the writes DynamoDB left
    /// unprocessed.
    async fn write_batch(
        &self,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, DynamoError> {
        let out = self
            .db
            .batch_write_item()
            .request_items(&self.table, requests)
            .send()
            .await?;
        Ok(out
            .unprocessed_items
            .and_then(|mut left| left.remove(&self.table))
            .unwrap_or_default())
    }

    /// Marks a record that only needs to exist (e.g. "visitor registered").
    pub async fn put_marker(
        &self,
        workspace: &WorkspaceKey,
        record: WorkspaceRecord<'_>,
    ) -> Result<(), DynamoError> {
        self.put(Self::key(workspace.pk(), record.sk())).await
    }

    pub async fn has_marker(
        &self,
        workspace: &WorkspaceKey,
        record: WorkspaceRecord<'_>,
    ) -> Result<bool, DynamoError> {
        Ok(self
            .get(Self::key(workspace.pk(), record.sk()))
            .await?
            .is_some())
    }

    /// The thread a channel visitor last wrote in (`None`: top level).
    pub async fn get_conversation_thread(
        &self,
        workspace: &WorkspaceKey,
        visitor: &str,
    ) -> Result<Option<String>, DynamoError> {
        Ok(self.get_conversation(workspace, visitor).await?.thread_ts)
    }

    /// Sets (or, for a top-level message, removes) the thread on the
    /// conversation record. An update, not a put: the record also carries
    /// the outbox counters (store/outbox.rs), which must survive it.
    pub async fn put_conversation_thread(
        &self,
        workspace: &WorkspaceKey,
        visitor: &str,
        thread_ts: Option<&str>,
    ) -> Result<(), DynamoError> {
        let update = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                workspace.pk(),
                format!("CONVERSATION#{visitor}"),
            )))
            .expression_attribute_values(":now", num_attr(now_epoch_secs()));
        let update = match thread_ts {
            Some(ts) => update
                .update_expression("SET thread_ts = :ts, updated_at = :now")
                .expression_attribute_values(":ts", str_attr(ts)),
            None => update.update_expression("SET updated_at = :now REMOVE thread_ts"),
        };
        update.send().await?;
        Ok(())
    }

    /// The shared Easemob token, so cold instances reuse it.
    pub async fn get_easemob_token(
        &self,
        app_key: &str,
    ) -> Result<Option<(Secret, i64)>, DynamoError> {
        let item = self
            .get(Self::key(format!("EASEMOB_TOKEN#{app_key}"), "TOKEN"))
            .await?;
        Ok(item.and_then(|i| Some((Secret::new(i.s("access_token")?), i.n("token_expires_at")?))))
    }

    pub async fn put_easemob_token(
        &self,
        app_key: &str,
        token: &Secret,
        expires_at: i64,
    ) -> Result<(), DynamoError> {
        let mut item = Self::key(format!("EASEMOB_TOKEN#{app_key}"), "TOKEN");
        item.insert("access_token".into(), str_attr(token.expose()));
        item.insert("token_expires_at".into(), num_attr(expires_at));
        item.insert("expires_at".into(), num_attr(expires_at));
        self.put(item).await
    }
}

/// Writes `requests` with `write` (one `BatchWriteItem`, answering what it
/// left unprocessed), retrying the unprocessed ones after each of `pauses`
/// in turn. What is still left after the last one is an error, never
/// dropped in silence.
async fn write_all<W, F>(
    mut requests: Vec<WriteRequest>,
    pauses: &[Duration],
    mut write: W,
) -> Result<(), DynamoError>
where
    W: FnMut(Vec<WriteRequest>) -> F,
    F: Future<Output = Result<Vec<WriteRequest>, DynamoError>>,
{
    let retries = pauses.len();
    let mut pauses = pauses.iter();
    loop {
        requests = write(requests).await?;
        if requests.is_empty() {
            return Ok(());
        }
        let Some(pause) = pauses.next() else {
            return Err(DynamoError::Throttled(format!(
                "BatchWriteItem left {} writes unprocessed after {} retries",
                requests.len(),
                retries
            )));
        };
        tokio::time::sleep(*pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::DeleteRequest;
    use std::cell::RefCell;

    fn deletes(count: usize) -> Vec<WriteRequest> {
        (0..count)
            .map(|i| {
                let key = Store::key(format!("WORKSPACE#T{i}"), "INSTALLATION");
                let delete = DeleteRequest::builder().set_key(Some(key)).build().unwrap();
                WriteRequest::builder().delete_request(delete).build()
            })
            .collect()
    }

    const QUICK: [Duration; 4] = [Duration::from_millis(1); 4];

    /// A batch writer that processes `per_call` writes a call and hands the
    /// rest back, recording what it was asked to write.
    fn partial_writer(
        per_call: usize,
        asked: &RefCell<Vec<usize>>,
    ) -> impl FnMut(Vec<WriteRequest>) -> std::future::Ready<Result<Vec<WriteRequest>, DynamoError>> + '_
    {
        move |mut requests: Vec<WriteRequest>| {
            asked.borrow_mut().push(requests.len());
            let left = requests.split_off(per_call.min(requests.len()));
            std::future::ready(Ok(left))
        }
    }

    #[tokio::test]
    async fn unprocessed_writes_are_retried_until_none_is_left() {
        let asked = RefCell::new(Vec::new());
        write_all(deletes(25), &QUICK, partial_writer(10, &asked))
            .await
            .unwrap();
        assert_eq!(*asked.borrow(), vec![25, 15, 5]);
    }

    #[tokio::test]
    async fn writes_still_unprocessed_after_the_last_retry_are_an_error() {
        let asked = RefCell::new(Vec::new());
        let result = write_all(deletes(25), &QUICK, partial_writer(2, &asked)).await;
        // One try and one retry after each pause; what is left is reported.
        assert_eq!(*asked.borrow(), vec![25, 23, 21, 19, 17]);
        match result {
            Err(error @ DynamoError::Throttled(_)) => {
                assert!(error.is_unavailable());
                assert!(
                    error.to_string().contains("15 writes unprocessed"),
                    "{error}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_pauses_grow_and_stay_inside_the_event_budget() {
        assert!(UNPROCESSED_RETRY_PAUSES.windows(2).all(|w| w[0] < w[1]));
        let total: Duration = UNPROCESSED_RETRY_PAUSES.iter().sum();
        assert!(total < Duration::from_secs(1), "{total:?}");
    }
}
