//! `TestApp`: a real `Bridge` over a fresh table in DynamoDB Local and fresh
//! fake Slack and Easemob servers, so each test reads like its scenario.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use kefu_bridge::clock::{now_epoch_secs, ManualClock};
use kefu_bridge::config::Config;
use kefu_bridge::dynamo::{self, DynamoClient};
use kefu_bridge::http_types::{HttpRequest, HttpResponse};
use kefu_bridge::metrics::{self, Metrics};
use kefu_bridge::secret::Secret;
use kefu_bridge::store::{Installation, WorkspaceKey};
use kefu_bridge::{relay, Bridge};
use serde_json::{json, Value};

use crate::dynamodb_local;
use crate::fake_easemob::FakeEasemob;
use crate::fake_slack::{BotToken, FakeSlack};
use crate::signing::*;

pub struct TestApp {
    pub bridge: Bridge,
    pub slack: FakeSlack,
    pub easemob: FakeEasemob,
    pub table: String,
    pub dynamodb_endpoint: String,
    /// The time every bridge of this app's outbox runs on: tests move it
    /// forward instead of sleeping through a backoff.
    pub clock: Arc<ManualClock>,
    /// The EMF documents every bridge of this app wrote, one per line.
    metric_lines: Arc<Mutex<Vec<String>>>,
}

static TABLE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The `api_app_id` the fake workspace events carry.
pub const APP_ID: &str = "A0KEFUAPP";

impl TestApp {
    pub async fn start() -> Self {
        Self::start_on(&dynamodb_local::endpoint()).await
    }

    /// A `TestApp` over the DynamoDB at `endpoint` (e.g. a test's own
    /// [`dynamodb_local::DedicatedDynamoDb`], to stop it mid-run).
    pub async fn start_on(endpoint: &str) -> Self {
        let endpoint = endpoint.to_string();
        let table = format!(
            "bridge-test-{}-{}-{}",
            std::process::id(),
            TABLE_COUNTER.fetch_add(1, Ordering::SeqCst),
            now_epoch_secs()
        );
        let slack = FakeSlack::start(LOCAL_SLACK_CLIENT_ID, LOCAL_SLACK_CLIENT_SECRET).await;
        let easemob = FakeEasemob::start(
            LOCAL_EASEMOB_ORG,
            LOCAL_EASEMOB_APP,
            LOCAL_EASEMOB_CLIENT_ID,
            LOCAL_EASEMOB_CLIENT_SECRET,
        )
        .await;
        let env = local_env(&table, &slack.api_base_url(), &easemob.base_url());
        let config =
            Config::from_lookup(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                .expect("test config");
        let http = kefu_bridge::bridge::http_client();
        let mut bridge = Bridge::new(config, local_dynamodb(&endpoint), http);
        let (metrics, metric_lines) = Metrics::in_memory(&bridge.config.metrics_namespace);
        bridge.metrics = metrics;
        let clock = Arc::new(ManualClock::default());
        bridge.clock = clock.clone();
        create_table_patiently(&bridge).await;
        Self {
            bridge,
            slack,
            easemob,
            table,
            dynamodb_endpoint: endpoint,
            clock,
            metric_lines,
        }
    }

    /// The EMF documents written so far, one JSON document per line.
    pub fn metric_lines(&self) -> Vec<String> {
        self.metric_lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the documents written so far.
    pub fn clear_metrics(&self) {
        self.metric_lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Each metric's sum over the documents written so far, by
    /// `(name, direction, reason)` ("" where a dimension is absent).
    pub fn metric_totals(&self) -> BTreeMap<(String, String, String), f64> {
        metrics::totals(&self.metric_lines())
    }

    /// One metric's sum for `direction` (and `reason`, "" for none); 0 when
    /// never written.
    pub fn metric(&self, name: &str, direction: &str, reason: &str) -> f64 {
        self.metric_totals()
            .get(&(name.to_string(), direction.to_string(), reason.to_string()))
            .copied()
            .unwrap_or(0.0)
    }

    /// A metrics writer into this app's lines, for another bridge.
    fn metrics(&self) -> Metrics {
        self.bridge.metrics.clone()
    }

    /// The same table and fakes behind a bridge configured with `extra`
    /// environment on top of the local one (e.g. `ALLOWED_TEAM_IDS`): a
    /// redeploy with new settings, cold caches included.
    pub fn reconfigure(&mut self, extra: &[(&str, &str)]) {
        let mut env = local_env(
            &self.table,
            &self.slack.api_base_url(),
            &self.easemob.base_url(),
        );
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_lookup(|k| {
            env.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        })
        .expect("test config");
        let http = kefu_bridge::bridge::http_client();
        let metrics = self.metrics();
        self.bridge = Bridge::new(config, local_dynamodb(&self.dynamodb_endpoint), http);
        self.bridge.metrics = metrics;
        self.bridge.clock = self.clock.clone();
    }

    /// A second bridge over the same table and fakes: another Lambda
    /// instance (cold, with empty memory caches).
    pub fn another_instance(&self) -> Bridge {
        let http = kefu_bridge::bridge::http_client();
        let mut bridge = Bridge::new(
            self.bridge.config.clone(),
            local_dynamodb(&self.dynamodb_endpoint),
            http,
        );
        bridge.metrics = self.metrics();
        bridge.clock = self.clock.clone();
        bridge
    }

    /// Stores an installation for `team` (as the OAuth flow would) and
    /// teaches the fake Slack its token, users and team.
    pub async fn install(&self, team: &str, scopes: &[&str]) -> Installation {
        self.install_as(
            team,
            &format!("B{team}"),
            &format!("U{team}BOT"),
            APP_ID,
            scopes,
        )
        .await
    }

    /// `install` with explicit bot ids and app id (the sample events' ones).
    pub async fn install_as(
        &self,
        team: &str,
        bot_id: &str,
        bot_user_id: &str,
        app_id: &str,
        scopes: &[&str],
    ) -> Installation {
        let token = format!("xoxb-{}-token", team.to_lowercase());
        let bot = BotToken {
            team_id: team.into(),
            team_name: format!("Team {team}"),
            bot_id: bot_id.into(),
            bot_user_id: bot_user_id.into(),
            enterprise_id: None,
        };
        self.slack.add_bot_token(&token, bot.clone());
        self.slack
            .add_team(json!({ "id": team, "name": bot.team_name, "domain": team.to_lowercase() }));
        let installation = Installation {
            key: WorkspaceKey::Team(team.into()),
            team_id: Some(team.into()),
            team_name: Some(bot.team_name.clone()),
            enterprise_id: None,
            enterprise_name: None,
            app_id: app_id.into(),
            bot_token: Secret::new(token),
            bot_id: bot.bot_id,
            bot_user_id: bot.bot_user_id,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            installed_by: Some("U0INSTALLER".into()),
            installed_at: now_epoch_secs(),
            refresh_token: None,
            token_expires_at: None,
            needs_reinstall: false,
        };
        self.bridge
            .store
            .put_installation(&installation)
            .await
            .expect("store installation");
        installation
    }

    /// Adds a Slack user to the fake (display name, real name, email, phone).
    pub fn add_user(&self, id: &str, display_name: &str, real_name: &str) {
        self.slack.add_user(json!({
            "id": id, "name": display_name.to_lowercase(), "real_name": real_name, "tz": "Europe/London",
            "profile": {
                "display_name": display_name, "real_name": real_name,
                "email": format!("{}@example.com", display_name.to_lowercase()),
                "phone": "+44 20 7946 0000", "title": "Customer",
            }
        }));
    }

    /// Signs and delivers a Slack Events API body to `slack-events`.
    pub async fn slack_event(&self, body: &Value) -> HttpResponse {
        let request = self.signed_slack_request(body.to_string().as_bytes());
        relay::slack_events::handle(&self.bridge, &request).await
    }

    pub fn signed_slack_request(&self, body: &[u8]) -> HttpRequest {
        signed_slack_request(
            LOCAL_SLACK_SIGNING_SECRET,
            "/slack/events",
            "application/json",
            body,
        )
    }
}

/// Creates the test's table, retrying while DynamoDB Local is still warming
/// up: a cold JVM on a busy 2-core machine can take longer than the bridge's
/// 2 s request timeout for its first CreateTable, and then answers it in
/// shapes other than "unavailable" (a dispatch failure seen as a rejection
/// with no error code). Creating is idempotent, so any error is retried.
pub async fn create_table_patiently(bridge: &Bridge) {
    let mut attempt = 0;
    loop {
        match bridge.store.create_table().await {
            Ok(()) => return,
            Err(_) if attempt < 15 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            }
            Err(error) => panic!("create table: {error}"),
        }
    }
}

/// Environment for a bridge pointed at the given fakes and table, with the
/// documented local secrets.
pub fn local_env(table: &str, slack_api: &str, easemob_api: &str) -> Vec<(String, String)> {
    [
        ("TABLE_NAME", table),
        ("SLACK_SIGNING_SECRET", LOCAL_SLACK_SIGNING_SECRET),
        ("SLACK_CLIENT_ID", LOCAL_SLACK_CLIENT_ID),
        ("SLACK_CLIENT_SECRET", LOCAL_SLACK_CLIENT_SECRET),
        ("SLACK_API_BASE_URL", slack_api),
        ("EASEMOB_API_BASE_URL", easemob_api),
        ("EASEMOB_ORG", LOCAL_EASEMOB_ORG),
        ("EASEMOB_APP", LOCAL_EASEMOB_APP),
        ("EASEMOB_CLIENT_ID", LOCAL_EASEMOB_CLIENT_ID),
        ("EASEMOB_CLIENT_SECRET", LOCAL_EASEMOB_CLIENT_SECRET),
        ("EASEMOB_IM_SERVICE_NUMBER", LOCAL_EASEMOB_SERVICE_NUMBER),
        ("EASEMOB_CALLBACK_SECRET", LOCAL_EASEMOB_CALLBACK_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A DynamoDB client for DynamoDB Local at `endpoint` (any credentials do),
/// with the bridge's own timeouts and retries.
pub fn local_dynamodb(endpoint: &str) -> DynamoClient {
    dynamo::client_for_endpoint(endpoint, "local", "local")
}

/// A Slack `event_callback` envelope around `event`.
pub fn event_callback(team: &str, event_id: &str, event: Value) -> Value {
    json!({
        "token": "legacy-verification-token",
        "team_id": team,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": now_epoch_secs(),
        "authorizations": [{ "enterprise_id": null, "team_id": team, "user_id": format!("U{team}BOT"), "is_bot": true, "is_enterprise_install": false }],
        "is_ext_shared_channel": false,
    })
}

/// A person's message event.
pub fn user_message(channel: &str, channel_type: &str, user: &str, text: &str, ts: &str) -> Value {
    json!({
        "type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
        "event_ts": ts, "channel_type": channel_type, "client_msg_id": format!("c-{ts}"),
    })
}

/// A person's edit of their message `ts`, as Slack sends it: subtype
/// `message_changed`, the new version in `message`, the old one in
/// `previous_message`.
pub fn edited_message(
    channel: &str,
    channel_type: &str,
    user: &str,
    ts: &str,
    old_text: &str,
    new_text: &str,
) -> Value {
    let edited_at = format!("{ts}9");
    json!({
        "type": "message", "subtype": "message_changed", "hidden": true,
        "channel": channel, "channel_type": channel_type, "ts": edited_at, "event_ts": edited_at,
        "message": {
            "type": "message", "user": user, "text": new_text, "ts": ts,
            "edited": { "user": user, "ts": edited_at }, "client_msg_id": format!("c-{ts}"),
        },
        "previous_message": {
            "type": "message", "user": user, "text": old_text, "ts": ts,
            "client_msg_id": format!("c-{ts}"),
        },
    })
}

/// The deletion of message `previous` (a message object as Slack keeps
/// it), as Slack sends it: subtype `message_deleted` with `deleted_ts` and
/// `previous_message`.
pub fn deleted_message(channel: &str, channel_type: &str, previous: Value) -> Value {
    let ts = previous["ts"].as_str().unwrap_or("1.0").to_string();
    let deleted_at = format!("{ts}8");
    json!({
        "type": "message", "subtype": "message_deleted", "hidden": true,
        "channel": channel, "channel_type": channel_type, "ts": deleted_at,
        "event_ts": deleted_at, "deleted_ts": ts, "previous_message": previous,
    })
}
