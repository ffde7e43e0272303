//! The OAuth handler's log lines, in a test binary of its own: it installs a
//! thread-local tracing subscriber, and tracing caches each callsite's
//! interest process-wide, so tests running beside it on other threads made
//! its line count flaky.

use bridge_tests::fake_server::Fault;
use bridge_tests::oauth_kit::*;
use bridge_tests::signing::*;
use bridge_tests::TestApp;
use serde_json::{json, Value};

const TEAM: &str = "T0ACME";
const TOKEN: &str = "xoxb-acme-1";

fn acme() -> Value {
    oauth_access_answer(TEAM, "Acme Corp", TOKEN)
}

#[tokio::test]
async fn logs_carry_outcome_and_team_but_never_a_code_state_or_secret() {
    let app = TestApp::start().await;
    // Register the handler's log callsites first: tracing caches each
    // callsite's interest when it is first hit, and other tests hit these
    // concurrently on threads without a subscriber. Installing the recorder
    // afterwards rebuilds their interest for it.
    app.open_install_page().await;
    app.oauth(&browser_get("/slack/oauth/callback", &[], None))
        .await;
    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());

    let mut answer = acme();
    answer["refresh_token"] = json!("xoxe-1-refresh-secret");
    answer["expires_in"] = json!(43_200);
    let page = app.open_install_page().await;
    app.slack_accepts_code("code-secret-1", &answer);
    let ok = app
        .oauth(&callback_request(
            "code-secret-1",
            &page.state,
            Some(&page.state),
        ))
        .await;
    assert_eq!(ok.status, 200);
    let replay = app
        .oauth(&callback_request(
            "code-secret-1",
            &page.state,
            Some(&page.state),
        ))
        .await;
    assert_eq!(replay.status, 400);
    let page2 = app.open_install_page().await;
    app.slack
        .fail_once("oauth.v2.access", Fault::Error("bad_client_secret".into()));
    let refused = app
        .oauth(&callback_request(
            "code-secret-2",
            &page2.state,
            Some(&page2.state),
        ))
        .await;
    assert_eq!(refused.status, 400);

    let lines: Vec<String> = recorder
        .lines()
        .into_iter()
        .filter(|l| l.contains("kefu_bridge"))
        .collect();
    // One line per request.
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(lines.iter().all(|l| l.contains("slack_oauth")));
    assert!(lines[1].contains("outcome=installed") && lines[1].contains(&format!("team={TEAM}")));
    assert!(lines[2].contains("outcome=state_unknown_or_used"));
    assert!(
        lines[4].contains("outcome=slack_refused_code") && lines[4].contains("bad_client_secret")
    );
    for line in &lines {
        for secret in [
            "code-secret-1",
            "code-secret-2",
            page.state.as_str(),
            page2.state.as_str(),
            TOKEN,
            "xoxe-1-refresh-secret",
            LOCAL_SLACK_CLIENT_SECRET,
        ] {
            assert!(!line.contains(secret), "{secret} leaked: {line}");
        }
    }
}
