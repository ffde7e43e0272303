//! The `Installation` record: what the OAuth flow stores per workspace.

use super::Store;
use crate::dynamo::item::{bool_attr, num_attr, str_attr};
use crate::dynamo::{condition_held, DynamoError, Item, ItemExt};
use crate::secret::Secret;
use aws_sdk_dynamodb::types::ReturnValue;

/// The sort key of a workspace's installation record.
const INSTALLATION_SK: &str = "INSTALLATION";

/// How an installation is found: by team, or by enterprise for org-wide
/// (Enterprise Grid) installs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WorkspaceKey {
    Team(String),
    Enterprise(String),
}

impl WorkspaceKey {
    /// The id as it appears in visitor ids: `T…` or `E…`.
    pub fn id(&self) -> &str {
        match self {
            WorkspaceKey::Team(id) | WorkspaceKey::Enterprise(id) => id,
        }
    }

    /// From a visitor id's first part.
    pub fn from_id(id: &str) -> Self {
        if id.starts_with('E') {
            WorkspaceKey::Enterprise(id.to_string())
        } else {
            WorkspaceKey::Team(id.to_string())
        }
    }

    pub fn pk(&self) -> String {
        format!("WORKSPACE#{}", self.id())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub key: WorkspaceKey,
    pub team_id: Option<String>,
    pub team_name: Option<String>,
    pub enterprise_id: Option<String>,
    pub enterprise_name: Option<String>,
    pub app_id: String,
    pub bot_token: Secret,
    pub bot_id: String,
    pub bot_user_id: String,
    pub scopes: Vec<String>,
    pub installed_by: Option<String>,
    pub installed_at: i64,
    /// With token rotation on: the refresh token and when the bot token expires.
    pub refresh_token: Option<Secret>,
    pub token_expires_at: Option<i64>,
    /// Set when Slack answered `invalid_auth`/`token_revoked`/`account_inactive`.
    pub needs_reinstall: bool,
}

/// Whether this instance may exchange the refresh token now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationLease {
    Taken,
    /// Taken from an instance whose lease ran out (it crashed or hung).
    TakenOver,
    /// Another instance holds it, or the pair has been rotated meanwhile:
    /// read the installation again.
    Held,
}

impl Installation {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    fn to_item(&self) -> Item {
        let mut item = Store::key(self.key.pk(), INSTALLATION_SK);
        let mut opt = |name: &str, value: &Option<String>| {
            if let Some(v) = value {
                item.insert(name.into(), str_attr(v.clone()));
            }
        };
        opt("team_id", &self.team_id);
        opt("team_name", &self.team_name);
        opt("enterprise_id", &self.enterprise_id);
        opt("enterprise_name", &self.enterprise_name);
        opt("installed_by", &self.installed_by);
        opt(
            "refresh_token",
            &self.refresh_token.as_ref().map(|s| s.expose().to_string()),
        );
        item.insert("app_id".into(), str_attr(self.app_id.clone()));
        item.insert("bot_token".into(), str_attr(self.bot_token.expose()));
        item.insert("bot_id".into(), str_attr(self.bot_id.clone()));
        item.insert("bot_user_id".into(), str_attr(self.bot_user_id.clone()));
        item.insert("scopes".into(), str_attr(self.scopes.join(",")));
        item.insert("installed_at".into(), num_attr(self.installed_at));
        if let Some(at) = self.token_expires_at {
            item.insert("token_expires_at".into(), num_attr(at));
        }
        item.insert("needs_reinstall".into(), bool_attr(self.needs_reinstall));
        item
    }

    fn from_item(key: WorkspaceKey, item: &Item) -> Option<Self> {
        let owned = |name: &str| item.s(name).map(str::to_string);
        Some(Self {
            key,
            team_id: owned("team_id"),
            team_name: owned("team_name"),
            enterprise_id: owned("enterprise_id"),
            enterprise_name: owned("enterprise_name"),
            app_id: owned("app_id").unwrap_or_default(),
            bot_token: Secret::new(item.s("bot_token")?),
            bot_id: owned("bot_id").unwrap_or_default(),
            bot_user_id: owned("bot_user_id").unwrap_or_default(),
            scopes: item
                .s("scopes")
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            installed_by: owned("installed_by"),
            installed_at: item.n("installed_at").unwrap_or(0),
            refresh_token: item.s("refresh_token").map(Secret::new),
            token_expires_at: item.n("token_expires_at"),
            needs_reinstall: item.bool("needs_reinstall").unwrap_or(false),
        })
    }
}

impl Store {
    pub async fn get_installation(
        &self,
        key: &WorkspaceKey,
    ) -> Result<Option<Installation>, DynamoError> {
        let item = self.get(Self::key(key.pk(), INSTALLATION_SK)).await?;
        Ok(item.and_then(|item| Installation::from_item(key.clone(), &item)))
    }

    /// Every installation, for operators (`kefu-bridge-admin installations
    /// list`): a paged Scan for installation records. Never on a request
    /// path: the functions always know which workspace they need.
    pub async fn installations(&self) -> Result<Vec<Installation>, DynamoError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .db
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :sk")
                .expression_attribute_values(":sk", str_attr(INSTALLATION_SK))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in out.items.unwrap_or_default() {
                let Some(id) = item.s("pk").and_then(|pk| pk.strip_prefix("WORKSPACE#")) else {
                    continue;
                };
                found.extend(Installation::from_item(WorkspaceKey::from_id(id), &item));
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(found),
            }
        }
    }

    /// Creates or replaces (reinstall: new token and scopes, same record).
    pub async fn put_installation(&self, installation: &Installation) -> Result<(), DynamoError> {
        self.put(installation.to_item()).await
    }

    /// Stores a refreshed token pair only if the stored refresh token is
    /// still the one that was used, so two racing refreshers can't overwrite
    /// a newer pair with an older one.
    pub async fn replace_rotated_token(
        &self,
        installation: &Installation,
        used_refresh_token: &Secret,
    ) -> Result<bool, DynamoError> {
        let result = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(installation.to_item()))
            .condition_expression("refresh_token = :used")
            .expression_attribute_values(":used", str_attr(used_refresh_token.expose()))
            .send()
            .await;
        condition_held(result.map_err(DynamoError::from))
    }

    /// Takes the right to exchange `refresh_token` until `until` (docs/design.md
    /// §2 "OAuth v2 install": exactly one instance exchanges it) — unless
    /// another instance holds that right, or the pair was rotated meanwhile.
    /// A lease that ran out by `now` (its holder crashed) is taken over.
    pub async fn take_rotation_lease(
        &self,
        key: &WorkspaceKey,
        refresh_token: &Secret,
        now: i64,
        until: i64,
    ) -> Result<RotationLease, DynamoError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key.pk(), INSTALLATION_SK)))
            .update_expression("SET rotation_lease_until = :until")
            .condition_expression(
                "refresh_token = :used AND (attribute_not_exists(rotation_lease_until) OR rotation_lease_until < :now)",
            )
            .expression_attribute_values(":until", num_attr(until))
            .expression_attribute_values(":now", num_attr(now))
            .expression_attribute_values(":used", str_attr(refresh_token.expose()))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await
            .map_err(DynamoError::from);
        // A rotated pair is written whole (`replace_rotated_token`), which
        // ends the lease: an old lease still there is one that ran out.
        Ok(match result {
            Ok(out)
                if out
                    .attributes()
                    .is_some_and(|old| old.contains_key("rotation_lease_until")) =>
            {
                RotationLease::TakenOver
            }
            Ok(_) => RotationLease::Taken,
            Err(DynamoError::ConditionalCheckFailed(_)) => RotationLease::Held,
            Err(error) => return Err(error),
        })
    }

    /// Gives the lease back after an exchange that did not happen (Slack
    /// unreachable), so the next call tries again at once.
    pub async fn release_rotation_lease(
        &self,
        key: &WorkspaceKey,
        refresh_token: &Secret,
    ) -> Result<(), DynamoError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key.pk(), INSTALLATION_SK)))
            .update_expression("REMOVE rotation_lease_until")
            .condition_expression("refresh_token = :used")
            .expression_attribute_values(":used", str_attr(refresh_token.expose()))
            .send()
            .await
            .map_err(DynamoError::from);
        // Rotated meanwhile: nothing to give back.
        condition_held(result).map(|_| ())
    }

    /// Flags the installation for reinstall because Slack refused
    /// `refresh_token`, unless another instance has rotated it meanwhile
    /// (then its fresh pair must not be flagged).
    pub async fn mark_refresh_refused(
        &self,
        key: &WorkspaceKey,
        refused_refresh_token: &Secret,
    ) -> Result<bool, DynamoError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key.pk(), INSTALLATION_SK)))
            .update_expression("SET needs_reinstall = :t")
            .condition_expression("refresh_token = :refused")
            .expression_attribute_values(":t", bool_attr(true))
            .expression_attribute_values(":refused", str_attr(refused_refresh_token.expose()))
            .send()
            .await;
        condition_held(result.map_err(DynamoError::from))
    }

    pub async fn mark_needs_reinstall(&self, key: &WorkspaceKey) -> Result<(), DynamoError> {
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key.pk(), INSTALLATION_SK)))
            .update_expression("SET needs_reinstall = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", bool_attr(true))
            .send()
            .await;
        // Nothing to change when the condition does not hold.
        condition_held(result.map_err(DynamoError::from)).map(|_| ())
    }
}
