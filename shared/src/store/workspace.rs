//! Per-workspace records: caches of Slack profile data, visitors registered
//! in Easemob, the conversation record (the thread a channel conversation is
//! in; its outbox counters are store/outbox.rs's), and the Easemob token.

use serde_json::{json, Value};

use super::{Store, WorkspaceKey};
use crate::clock::now_epoch_secs;
use crate::dynamo::item::{num_attr, str_attr};
use crate::dynamo::{DynamoError, Item, ItemExt};
use crate::secret::Secret;

impl Store {
    /// A cached JSON document, or `None` when absent or expired (DynamoDB's
    /// TTL deletes lazily, so expiry is checked on read too).
    pub async fn get_cached(&self, pk: &str, sk: &str) -> Result<Option<Value>, DynamoError> {
        let Some(item) = self.db.get_item(&self.table, Self::key(pk, sk)).await? else {
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
        pk: &str,
        sk: &str,
        data: &Value,
        ttl_secs: i64,
    ) -> Result<(), DynamoError> {
        self.db
            .call(
                "PutItem",
                &json!({
                    "TableName": self.table,
                    "Item": {
                        "pk": str_attr(pk), "sk": str_attr(sk),
                        "data": str_attr(data.to_string()),
                        "expires_at": num_attr(now_epoch_secs() + ttl_secs),
                    }
                }),
            )
            .await
            .map(|_| ())
    }

    /// Deletes the installation and everything cached for the workspace.
    /// Idempotent: deleting nothing is fine. Returns how many records went.
    pub async fn delete_workspace(&self, key: &WorkspaceKey) -> Result<usize, DynamoError> {
        let records = self
            .db
            .query_all(json!({
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": { ":pk": str_attr(key.pk()) },
                "ProjectionExpression": "pk, sk, to_kefu_pending, to_slack_pending",
            }))
            .await?;
        // A conversation with messages still in the outbox keeps its record:
        // its pending count and sequence counter order them, and the drain
        // settles them (to Kefu: delivered; to Slack: dead letters, the
        // workspace being gone).
        let doomed: Vec<&Item> = records
            .iter()
            .filter(|item| {
                item.n("to_kefu_pending").unwrap_or(0) <= 0
                    && item.n("to_slack_pending").unwrap_or(0) <= 0
            })
            .collect();
        for chunk in doomed.chunks(25) {
            let requests: Vec<Value> = chunk
                .iter()
                .map(|item| json!({ "DeleteRequest": { "Key": { "pk": item["pk"], "sk": item["sk"] } } }))
                .collect();
            let mut pending = json!({ self.table.clone(): requests });
            // BatchWriteItem may hand back unprocessed items under load.
            for _ in 0..5 {
                let out = self
                    .db
                    .call("BatchWriteItem", &json!({ "RequestItems": pending }))
                    .await?;
                match out.get("UnprocessedItems") {
                    Some(rest) if rest.as_object().is_some_and(|m| !m.is_empty()) => {
                        pending = rest.clone();
                    }
                    _ => break,
                }
            }
        }
        Ok(doomed.len())
    }

    /// Marks a record that only needs to exist (e.g. "visitor registered").
    pub async fn put_marker(&self, pk: &str, sk: &str) -> Result<(), DynamoError> {
        self.db
            .call(
                "PutItem",
                &json!({ "TableName": self.table, "Item": { "pk": str_attr(pk), "sk": str_attr(sk) } }),
            )
            .await
            .map(|_| ())
    }

    pub async fn has_marker(&self, pk: &str, sk: &str) -> Result<bool, DynamoError> {
        Ok(self
            .db
            .get_item(&self.table, Self::key(pk, sk))
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
        let mut update = json!({
            "TableName": self.table,
            "Key": Self::key(&workspace.pk(), &format!("CONVERSATION#{visitor}")),
            "ExpressionAttributeValues": { ":now": num_attr(now_epoch_secs()) },
        });
        match thread_ts {
            Some(ts) => {
                update["UpdateExpression"] = json!("SET thread_ts = :ts, updated_at = :now");
                update["ExpressionAttributeValues"][":ts"] = str_attr(ts);
            }
            None => update["UpdateExpression"] = json!("SET updated_at = :now REMOVE thread_ts"),
        }
        self.db.call("UpdateItem", &update).await.map(|_| ())
    }

    /// The shared Easemob token, so cold instances reuse it.
    pub async fn get_easemob_token(
        &self,
        app_key: &str,
    ) -> Result<Option<(Secret, i64)>, DynamoError> {
        let item = self
            .db
            .get_item(
                &self.table,
                Self::key(&format!("EASEMOB_TOKEN#{app_key}"), "TOKEN"),
            )
            .await?;
        Ok(item.and_then(|i| Some((Secret::new(i.s("access_token")?), i.n("token_expires_at")?))))
    }

    pub async fn put_easemob_token(
        &self,
        app_key: &str,
        token: &Secret,
        expires_at: i64,
    ) -> Result<(), DynamoError> {
        self.db
            .call(
                "PutItem",
                &json!({
                    "TableName": self.table,
                    "Item": {
                        "pk": str_attr(format!("EASEMOB_TOKEN#{app_key}")),
                        "sk": str_attr("TOKEN"),
                        "access_token": str_attr(token.expose()),
                        "token_expires_at": num_attr(expires_at),
                        "expires_at": num_attr(expires_at),
                    }
                }),
            )
            .await
            .map(|_| ())
    }
}
