//! The named log lines of refused agent replies (issue "Trust" items 4 and
//! 12; docs/design.md §3 "Callback"): an operator searching the logs finds
//! each refusal under its own name. A test binary of its own: it installs a
//! thread-local tracing subscriber, and tracing caches each callsite's
//! interest process-wide (see oauth_logs.rs).

use bridge_tests::callback_kit::{agent_reply, sign};
use bridge_tests::oauth_kit::LogRecorder;
use bridge_tests::TestApp;
use serde_json::json;

const TEAM: &str = "T0LOGCB";
const OTHER: &str = "T0LOGCX";
const VISITOR: &str = "T0LOGCB_U0ADA_D0ADA";

/// The `outcome` of the `easemob_callback` lines recorded so far.
fn outcomes(recorder: &LogRecorder) -> Vec<String> {
    recorder
        .lines()
        .into_iter()
        .filter(|line| {
            line.split(' ')
                .any(|word| word == "message=easemob_callback")
        })
        .filter_map(|line| {
            line.split(' ')
                .find_map(|word| word.strip_prefix("outcome="))
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn each_refused_callback_is_logged_under_its_own_name() {
    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let mut app = TestApp::start().await;
    for team in [TEAM, OTHER] {
        app.install(team, &["chat:write", "im:history", "users:read"])
            .await;
    }
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    let now = kefu_bridge::clock::now_epoch_millis();

    let genuine = agent_reply(VISITOR, "1094483487342750001", "genuine");
    let mut forged = agent_reply(VISITOR, "1094483487342750002", "forged");
    for field in ["callId", "timestamp", "security"] {
        forged[field] = genuine[field].clone();
    }
    let mut old = agent_reply(VISITOR, "1094483487342750003", "old");
    old["timestamp"] = json!(now - 3 * 86_400_000);
    sign(&mut old);
    let mut ahead = agent_reply(VISITOR, "1094483487342750004", "ahead");
    ahead["timestamp"] = json!(now + 6 * 60_000);
    sign(&mut ahead);
    let mut unsigned = agent_reply(VISITOR, "1094483487342750005", "unsigned");
    unsigned["security"] = json!("0".repeat(32));

    for (callback, outcome) in [
        (&forged, "call_id_not_for_this_message"),
        (&old, "callback_too_old"),
        (&ahead, "callback_from_the_future"),
        (&unsigned, "security_rejected"),
    ] {
        recorder.clear();
        assert_eq!(app.easemob_callback(callback).await.status, 401);
        assert_eq!(outcomes(&recorder), vec![outcome.to_string()]);
    }
    assert!(app.slack.posts().is_empty());

    // A reply to a workspace outside ALLOWED_TEAM_IDS: answered, not posted,
    // logged as such.
    app.reconfigure(&[("ALLOWED_TEAM_IDS", TEAM)]);
    recorder.clear();
    let elsewhere = agent_reply(&format!("{OTHER}_U0ADA_D0ADA"), "1094483487342750006", "x");
    assert_eq!(app.easemob_callback(&elsewhere).await.status, 200);
    assert_eq!(
        outcomes(&recorder),
        vec!["workspace_not_allowed".to_string()]
    );
    assert!(app.slack.posts().is_empty());
}
