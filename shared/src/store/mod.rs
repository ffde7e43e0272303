//! Everything the bridge remembers, in one DynamoDB table (docs/design.md §1: `pk`,
//! `sk`, TTL attribute `expires_at`).
//!
//! | record | pk | sk |
//! |---|---|---|
//! | installation | `WORKSPACE#T…` / `WORKSPACE#E…` | `INSTALLATION` |
//! | visitor profile cache | `WORKSPACE#…` | `PROFILE#U…` |
//! | team info cache | `WORKSPACE#…` | `TEAM#T…` |
//! | visitor registered in Easemob | `WORKSPACE#…` | `VISITOR#<visitor id>` |
//! | conversation (thread to reply in, outbox counters) | `WORKSPACE#…` | `CONVERSATION#<visitor id>` |
//! | interactive message (menu, rating, transfer hint) posted | `WORKSPACE#…` | `PROMPT#<channel>#<ts>` |
//! | Slack posts of a Kefu message (for recalls, 7 days) | `WORKSPACE#…` | `KEFU_MSG#<msg_id>` (Kefu's own id: `same_as` → msg_id) |
//! | Kefu skill group of the workspace / of a channel | `WORKSPACE#…` | `ROUTE#*` / `ROUTE#<channel>` |
//! | workspace settings (notice language) | `WORKSPACE#…` | `SETTINGS` |
//! | Slack event claim | `SLACK_EVENT#<event_id>` | `CLAIM` |
//! | Easemob message claim | `EASEMOB_MSG#<msg_id>` | `CLAIM` |
//! | answer to an interactive message | `INTERACTION#<workspace>#<channel>#<ts>` | `CLAIM` |
//! | Easemob token | `EASEMOB_TOKEN#<org>#<app>` | `TOKEN` |
//! | OAuth state | `OAUTH_STATE#<state>` | `STATE` |
//! | message waiting for delivery | `OUTBOX` | `<dir>#<visitor id>#<seq>` |
//! | message that can never be delivered | `DEADLETTER` | `<dir>#<visitor id>#<seq>` |
//!
//! Everything about a workspace shares its partition, so uninstalling is one
//! query and a batch of deletes.

mod claims;
mod installation;
mod oauth_state;
mod outbox;
mod slack_posts;
mod workspace;
mod workspace_settings;

pub use claims::{Claim, ClaimKey, ThreadCheck, CLAIM_TTL_SECS};
pub use installation::{Installation, RotationLease, WorkspaceKey};
pub use oauth_state::{ConsumedState, OAuthState, OAUTH_STATE_TTL_SECS};
pub use outbox::{
    Conversation, DeadLetter, DeadLetterId, Direction, Lane, NewOutboxItem, OutboxItem,
    WaitingConversation, WaitingPage, DEAD_LETTER_TTL_SECS, MAX_PAYLOAD_BYTES,
};
pub use workspace::WorkspaceRecord;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem, Update,
};
pub use slack_posts::{SlackPosts, SLACK_POSTS_TTL_SECS};
pub use workspace_settings::{NoticeLanguage, Route};

use crate::dynamo::item::str_attr;
use crate::dynamo::{DynamoClient, DynamoError, Item};

#[derive(Clone)]
pub struct Store {
    db: DynamoClient,
    table: String,
}

impl Store {
    pub fn new(db: DynamoClient, table: &str) -> Self {
        Self {
            db,
            table: table.to_string(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn db(&self) -> &DynamoClient {
        &self.db
    }

    fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
        [
            ("pk".to_string(), str_attr(pk)),
            ("sk".to_string(), str_attr(sk)),
        ]
        .into()
    }

    /// The item under `key` (strongly consistent), if any.
    async fn get(&self, key: Item) -> Result<Option<Item>, DynamoError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item)
    }

    /// Every item `query` matches, page after page (for partitions that
    /// stay small: one workspace's records, the dead letters).
    async fn query_all(&self, query: QueryFluentBuilder) -> Result<Vec<Item>, DynamoError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = query.clone().set_exclusive_start_key(start).send().await?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// Runs `update`, built to be one item of a transaction, on its own as
    /// a plain UpdateItem (half a transaction's write capacity).
    async fn update(&self, update: Update) -> Result<(), DynamoError> {
        self.db
            .update_item()
            .table_name(update.table_name)
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_expression_attribute_names(update.expression_attribute_names)
            .set_expression_attribute_values(update.expression_attribute_values)
            .set_condition_expression(update.condition_expression)
            .send()
            .await?;
        Ok(())
    }

    /// Writes `items` all or none, in one TransactWriteItems.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), DynamoError> {
        self.db
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await?;
        Ok(())
    }

    /// Puts `item` as it is (no condition).
    async fn put(&self, item: Item) -> Result<(), DynamoError> {
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await?;
        Ok(())
    }

    /// Creates the table with the docs/design.md §4 key schema and TTL (tests, local runs).
    pub async fn create_table(&self) -> Result<(), DynamoError> {
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let string = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let created = self
            .db
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string("pk").map_err(built)?)
            .attribute_definitions(string("sk").map_err(built)?)
            .key_schema(key("pk", KeyType::Hash).map_err(built)?)
            .key_schema(key("sk", KeyType::Range).map_err(built)?)
            .send()
            .await
            .map_err(DynamoError::from);
        match created {
            Ok(_) => {}
            Err(DynamoError::Rejected { kind, .. }) if kind == "ResourceInUseException" => {}
            Err(e) => return Err(e),
        }
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name("expires_at")
            .build()
            .map_err(built)?;
        match self
            .db
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(DynamoError::from)
        {
            // Already enabled.
            Ok(_) | Err(DynamoError::Rejected { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A request shape the SDK's builder refused (a required field missing).
fn built(error: aws_sdk_dynamodb::error::BuildError) -> DynamoError {
    DynamoError::Rejected {
        kind: "BuildError".into(),
        message: error.to_string(),
    }
}
