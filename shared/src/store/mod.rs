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

pub use claims::{Claim, ClaimKey, CLAIM_TTL_SECS};
pub use installation::{Installation, RotationLease, WorkspaceKey};
pub use oauth_state::{ConsumedState, OAuthState, OAUTH_STATE_TTL_SECS};
pub use outbox::{
    Conversation, DeadLetter, DeadLetterId, Direction, Lane, NewOutboxItem, OutboxItem,
    WaitingConversation, DEAD_LETTER_TTL_SECS, MAX_PAYLOAD_BYTES,
};
pub use slack_posts::{SlackPosts, SLACK_POSTS_TTL_SECS};
pub use workspace_settings::{NoticeLanguage, Route};

use crate::dynamo::{DynamoClient, DynamoError};

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

    fn key(pk: &str, sk: &str) -> serde_json::Value {
        serde_json::json!({ "pk": { "S": pk }, "sk": { "S": sk } })
    }

    /// Creates the table with the docs/design.md §1 key schema and TTL (tests, local runs).
    pub async fn create_table(&self) -> Result<(), DynamoError> {
        let result = self
            .db
            .call(
                "CreateTable",
                &serde_json::json!({
                    "TableName": self.table,
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [
                        { "AttributeName": "pk", "AttributeType": "S" },
                        { "AttributeName": "sk", "AttributeType": "S" }
                    ],
                    "KeySchema": [
                        { "AttributeName": "pk", "KeyType": "HASH" },
                        { "AttributeName": "sk", "KeyType": "RANGE" }
                    ]
                }),
            )
            .await;
        match result {
            Ok(_) => {}
            Err(DynamoError::Rejected { kind, .. }) if kind == "ResourceInUseException" => {}
            Err(e) => return Err(e),
        }
        self.db
            .call(
                "UpdateTimeToLive",
                &serde_json::json!({
                    "TableName": self.table,
                    "TimeToLiveSpecification": { "Enabled": true, "AttributeName": "expires_at" }
                }),
            )
            .await
            .map(|_| ())
            .or_else(|e| match e {
                // Already enabled.
                DynamoError::Rejected { .. } => Ok(()),
                e => Err(e),
            })
    }
}
