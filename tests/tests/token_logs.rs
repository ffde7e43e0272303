//! The log lines of a stale bot token and of token rotation (issue 13,
//! items 1 and 2), in a test binary of its own: it installs a thread-local
//! tracing subscriber, and tracing caches each callsite's interest
//! process-wide (see oauth_logs.rs).

use futures_util::future::join_all;
use kefu_bridge::clock::now_epoch_secs;
use kefu_bridge::relay::easemob_callback;
use kefu_bridge::secret::Secret;
use kefu_bridge::store::WorkspaceKey;
use kefu_bridge::Bridge;
use serde_json::{json, Value};

use bridge_tests::callback_kit::{self, agent_reply};
use bridge_tests::oauth_kit::*;
use bridge_tests::signing::LOCAL_SLACK_CLIENT_SECRET;
use bridge_tests::TestApp;

const TEAM: &str = "T0ACME";
const DM_VISITOR: &str = "T0ACME_U0ADA_D0ADA";

fn rotating(token: &str, refresh: &str) -> Value {
    let mut answer = oauth_access_answer(TEAM, "Acme Corp", token);
    answer["refresh_token"] = json!(refresh);
    answer["expires_in"] = json!(43_200);
    answer
}

async fn reply_on(bridge: &Bridge, msg_id: &str) -> u16 {
    let body = agent_reply(DM_VISITOR, msg_id, "hello").to_string();
    easemob_callback::handle(
        bridge,
        &callback_kit::callback_request(body.as_bytes(), "application/json"),
    )
    .await
    .status
}

/// Moves the stored bot token's expiry into the past.
async fn expire(app: &TestApp) {
    let key = WorkspaceKey::Team(TEAM.into());
    let mut installation = app
        .bridge
        .store
        .get_installation(&key)
        .await
        .unwrap()
        .unwrap();
    installation.token_expires_at = Some(now_epoch_secs() - 10);
    app.bridge
        .store
        .put_installation(&installation)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stale_token_and_a_rotation_are_logged_by_workspace_and_never_with_a_token() {
    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let app = TestApp::start().await;
    let key = WorkspaceKey::Team(TEAM.into());

    // A stale token after a reinstall.
    app.install_via_oauth("code-1", &rotating("xoxe.xoxb-1", "xoxe-1-r1"))
        .await;
    assert_eq!(reply_on(&app.bridge, "m-log-1").await, 200);
    app.install_via_oauth_elsewhere("code-2", &rotating("xoxe.xoxb-2", "xoxe-1-r2"))
        .await;
    assert_eq!(reply_on(&app.bridge, "m-log-2").await, 200);

    // Two instances meet an expired token: one takes the lease, one waits.
    expire(&app).await;
    app.slack_accepts_refresh("xoxe-1-r2", &rotating("xoxe.xoxb-3", "xoxe-1-r3"));
    let (a, b) = (app.another_instance(), app.another_instance());
    let statuses = join_all([reply_on(&a, "m-log-3"), reply_on(&b, "m-log-4")]).await;
    assert_eq!(statuses, [200, 200]);

    // A crashed holder's lease is taken over.
    expire(&app).await;
    app.slack_accepts_refresh("xoxe-1-r3", &rotating("xoxe.xoxb-4", "xoxe-1-r4"));
    let now = now_epoch_secs();
    app.bridge
        .store
        .take_rotation_lease(&key, &Secret::new("xoxe-1-r3"), now - 60, now - 55)
        .await
        .unwrap();
    assert_eq!(reply_on(&app.another_instance(), "m-log-5").await, 200);

    let lines: Vec<String> = recorder
        .lines()
        .into_iter()
        .filter(|l| l.contains("kefu_bridge"))
        .collect();
    let with = |event: &str| -> Vec<&String> {
        lines
            .iter()
            .filter(|l| l.contains(&format!("message={event}")))
            .collect()
    };
    let stale = with("stale_bot_token_retried_with_stored");
    assert_eq!(stale.len(), 1, "{lines:#?}");
    assert!(stale[0].contains(&format!("workspace={TEAM}")));
    assert_eq!(with("rotation_lease_taken").len(), 1, "{lines:#?}");
    let waited = with("rotation_lease_waited");
    assert_eq!(waited.len(), 1, "{lines:#?}");
    assert!(waited[0].contains("outcome=rotated_elsewhere"));
    let expired = with("rotation_lease_expired");
    assert_eq!(expired.len(), 1, "{lines:#?}");
    assert!(expired[0].contains(&format!("workspace={TEAM}")));
    assert_eq!(with("bot_token_rotated").len(), 2, "{lines:#?}");
    for line in &lines {
        for secret in [
            "xoxe.xoxb-1",
            "xoxe.xoxb-2",
            "xoxe.xoxb-3",
            "xoxe.xoxb-4",
            "xoxe-1-r",
            LOCAL_SLACK_CLIENT_SECRET,
        ] {
            assert!(!line.contains(secret), "{secret} leaked: {line}");
        }
    }
}
