//! Each function's real binary under the Lambda Runtime API emulator, fed the
//! sample events from `events/` (re-signed for now): the wiring of main.rs,
//! configuration from the environment, and the API Gateway v2 / Scheduled
//! Event / SQS event boundary, as AWS runs them.

use std::path::{Path, PathBuf};

use bridge_tests::events::resign;
use bridge_tests::fake_server::Fault;
use bridge_tests::local_sqs;
use bridge_tests::runtime_emulator::{apigw_event, function_binaries, LambdaProcess, Outcome};
use bridge_tests::signing::*;
use bridge_tests::TestApp;
use kefu_bridge::store::WorkspaceKey;
use serde_json::Value;

const TEAM: &str = "T0LOCAL01";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn sample(name: &str) -> Value {
    let path = events_dir().join(name);
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    resign(
        &mut event,
        LOCAL_SLACK_SIGNING_SECRET,
        LOCAL_EASEMOB_CALLBACK_SECRET,
        kefu_bridge::clock::now_epoch_secs(),
    );
    event
}

fn env_for(app: &TestApp) -> Vec<(String, String)> {
    let mut env = bridge_tests::app::local_env(
        &app.table,
        &app.slack.api_base_url(),
        &app.easemob.base_url(),
    );
    env.push((
        "AWS_ENDPOINT_URL_DYNAMODB".into(),
        app.dynamodb_endpoint.clone(),
    ));
    env
}

async fn response(process: &LambdaProcess, event: Value) -> Value {
    match process.invoke(event).await.expect("invocation") {
        Outcome::Response(value) => value,
        Outcome::Error(error) => panic!("{} reported an invocation error: {error}", process.name),
    }
}

fn status(response: &Value) -> i64 {
    response["statusCode"].as_i64().unwrap_or_default()
}

#[tokio::test]
async fn slack_events_binary_handles_every_sample_event() {
    let app = TestApp::start().await;
    app.install_as(
        TEAM,
        "B0LOCALBOT",
        "U0LOCALBOT",
        "A0LOCALAPP",
        &["chat:write", "users:read"],
    )
    .await;
    app.add_user("U0CUSTOMER", "customer", "Casey Customer");
    let bin = function_binaries(false).join("slack-events");
    let process = LambdaProcess::spawn(&bin, "slack-events", &env_for(&app)).await;

    let verification = response(&process, sample("slack-events/url-verification.json")).await;
    assert_eq!(status(&verification), 200);
    let body: Value = serde_json::from_str(verification["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    assert_eq!(
        status(&response(&process, sample("slack-events/message-dm.json")).await),
        200
    );
    assert_eq!(
        status(&response(&process, sample("slack-events/message-channel.json")).await),
        200
    );
    assert_eq!(
        status(&response(&process, sample("slack-events/message-bot-echo.json")).await),
        200
    );
    let texts = app.easemob.texts();
    assert_eq!(
        texts,
        vec![
            "Hi! I'd like to order a latte & a croissant from the menu (https://example.com/menu)",
            "@U0LOCALBOT is my order ready?",
        ]
    );
    assert_eq!(
        app.easemob.messages()[0]["from"],
        "T0LOCAL01_U0CUSTOMER_D0LOCALDM"
    );

    let scheduled = response(&process, sample("slack-events/scheduled.json")).await;
    assert!(
        scheduled.get("statusCode").is_none(),
        "a scheduled event is not an HTTP answer: {scheduled}"
    );
    // A retry wake-up for a conversation with nothing waiting.
    assert_eq!(
        response(&process, sample("slack-events/sqs-wakeup.json")).await,
        serde_json::json!({ "batchItemFailures": [] })
    );

    // Stale signature (the stored sample, not re-signed) → 401.
    let stale: Value = serde_json::from_str(
        &std::fs::read_to_string(events_dir().join("slack-events/message-dm.json")).unwrap(),
    )
    .unwrap();
    let mut stale = stale;
    stale["headers"]["x-slack-request-timestamp"] = Value::String("1000000000".into());
    assert_eq!(status(&response(&process, stale).await), 401);

    // A body flagged base64 that is not: a deliberate 400, not a crash.
    let lie = apigw_event(
        "POST",
        "/slack/events",
        "",
        &[("content-type", "application/json")],
        Some("not base64 at all!"),
        true,
    );
    assert_eq!(status(&response(&process, lie).await), 400);
    // Something that is neither API Gateway nor a Scheduled Event.
    assert_eq!(
        status(&response(&process, serde_json::json!({ "hello": "world" })).await),
        400
    );

    assert_eq!(
        status(&response(&process, sample("slack-events/app-uninstalled.json")).await),
        200
    );
    let key = WorkspaceKey::Team(TEAM.into());
    assert!(app
        .bridge
        .store
        .get_installation(&key)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        status(&response(&process, sample("slack-events/tokens-revoked.json")).await),
        200
    );
    // The process is still serving after all of that.
    assert_eq!(
        status(&response(&process, sample("slack-events/url-verification.json")).await),
        200
    );
    assert!(process.peak_rss_kib().is_some());
}

#[tokio::test]
async fn a_missing_variable_fails_the_cold_start_naming_it() {
    let app = TestApp::start().await;
    let env: Vec<(String, String)> = env_for(&app)
        .into_iter()
        .filter(|(k, _)| k != "SLACK_SIGNING_SECRET" && k != "TABLE_NAME")
        .collect();
    let bin = function_binaries(false).join("slack-events");
    let mut process = LambdaProcess::spawn(&bin, "slack-events", &env).await;
    let exit = process.wait_exit(std::time::Duration::from_secs(10)).await;
    assert!(
        exit.is_some_and(|s| !s.success()),
        "the process should stop"
    );
    let reported = process.init_error().unwrap_or_default();
    assert!(
        reported.contains("TABLE_NAME") && reported.contains("SLACK_SIGNING_SECRET"),
        "{reported}"
    );
}

#[tokio::test]
async fn easemob_callback_binary_posts_the_agent_reply_and_skips_the_echo() {
    let app = TestApp::start().await;
    app.install_as(
        TEAM,
        "B0LOCALBOT",
        "U0LOCALBOT",
        "A0LOCALAPP",
        &["chat:write", "chat:write.customize"],
    )
    .await;
    let bin = function_binaries(false).join("easemob-callback");
    let process = LambdaProcess::spawn(&bin, "easemob-callback", &env_for(&app)).await;

    assert_eq!(
        status(&response(&process, sample("easemob-callback/agent-reply.json")).await),
        200
    );
    assert_eq!(
        status(&response(&process, sample("easemob-callback/visitor-echo.json")).await),
        200
    );
    // Easemob's retry of the same msg_id posts nothing new.
    assert_eq!(
        status(&response(&process, sample("easemob-callback/agent-reply.json")).await),
        200
    );
    let posts = app.slack.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["channel"], "D0LOCALDM");
    assert_eq!(
        posts[0]["text"],
        "Hello! Your latte &amp; croissant are on the way &lt;3"
    );
    assert_eq!(posts[0]["username"], "Agent Lily");
    assert_eq!(
        posts[0]["icon_url"],
        "https://kefu.easemob.com/avatars/lily.png"
    );

    // A wrong security (signed with another secret) → 401, nothing posted.
    let mut forged: Value = serde_json::from_str(
        &std::fs::read_to_string(events_dir().join("easemob-callback/agent-reply.json")).unwrap(),
    )
    .unwrap();
    resign(
        &mut forged,
        LOCAL_SLACK_SIGNING_SECRET,
        "not-the-callback-secret",
        kefu_bridge::clock::now_epoch_secs(),
    );
    assert_eq!(status(&response(&process, forged).await), 401);
    assert_eq!(app.slack.posts().len(), 1);

    let scheduled = response(&process, sample("easemob-callback/scheduled.json")).await;
    assert!(scheduled.get("statusCode").is_none(), "{scheduled}");
    assert_eq!(
        response(&process, sample("easemob-callback/sqs-wakeup.json")).await,
        serde_json::json!({ "batchItemFailures": [] })
    );
}

/// With `RETRY_QUEUE_URL` (and `AWS_ENDPOINT_URL_SQS`, read by aws-config
/// itself), the binary puts a wake-up on its queue when a message goes to
/// the outbox, and drains that conversation when the wake-up comes back.
#[tokio::test]
async fn slack_events_binary_sends_and_answers_retry_wakeups() {
    let app = TestApp::start().await;
    app.install_as(
        TEAM,
        "B0LOCALBOT",
        "U0LOCALBOT",
        "A0LOCALAPP",
        &["chat:write", "users:read"],
    )
    .await;
    app.add_user("U0CUSTOMER", "customer", "Casey Customer");
    let queue = local_sqs::create_queue().await;
    let mut env = env_for(&app);
    env.push(("RETRY_QUEUE_URL".into(), queue.clone()));
    env.push(("AWS_ENDPOINT_URL_SQS".into(), local_sqs::endpoint()));
    let bin = function_binaries(false).join("slack-events");
    let process = LambdaProcess::spawn(&bin, "slack-events", &env).await;

    app.easemob.fail_always("messages", Fault::Status(503));
    assert_eq!(
        status(&response(&process, sample("slack-events/message-dm.json")).await),
        200
    );
    assert_eq!(local_sqs::counts(&queue).await, (0, 1, 0));
    app.easemob.heal();
    app.make_due().await;
    assert_eq!(
        response(&process, sample("slack-events/sqs-wakeup.json")).await,
        serde_json::json!({ "batchItemFailures": [] })
    );
    assert_eq!(app.easemob.texts().len(), 1);
    assert!(app
        .waiting(kefu_bridge::store::Direction::ToKefu)
        .await
        .is_empty());
}

#[tokio::test]
async fn slack_oauth_binary_serves_the_install_page_and_completes_an_install() {
    let app = TestApp::start().await;
    let bin = function_binaries(false).join("slack-oauth");
    let process = LambdaProcess::spawn(&bin, "slack-oauth", &env_for(&app)).await;

    let page = response(&process, sample("slack-oauth/install.json")).await;
    assert_eq!(status(&page), 200);
    assert!(page["headers"]["content-type"]
        .as_str()
        .unwrap()
        .starts_with("text/html"));
    let cookie = page["cookies"][0].as_str().unwrap();
    assert!(
        cookie.starts_with("slack_oauth_state=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert!(page["body"].as_str().unwrap().contains(
        "redirect_uri=https%3A%2F%2Flocal.execute-api.localhost%2Fslack%2Foauth%2Fcallback"
    ));

    // The sample callback's state and code, as if the install page had issued them.
    let redirect = "https://local.execute-api.localhost/slack/oauth/callback";
    app.bridge
        .store
        .put_oauth_state(
            "local-oauth-state",
            redirect,
            kefu_bridge::clock::now_epoch_secs() + 600,
        )
        .await
        .unwrap();
    let mut answer =
        bridge_tests::oauth_kit::oauth_access_answer(TEAM, "Local Coffee", "xoxb-local-bot-token");
    answer["__redirect_uri"] = Value::String(redirect.into());
    app.slack_accepts_code_as_is("local-oauth-code", &answer);

    let done = response(&process, sample("slack-oauth/oauth-callback.json")).await;
    assert_eq!(status(&done), 200, "{done}");
    assert!(done["body"]
        .as_str()
        .unwrap()
        .contains("slack://app?team=T0LOCAL01"));
    assert!(done["cookies"][0].as_str().unwrap().ends_with("Max-Age=0"));
    let stored = app
        .bridge
        .store
        .get_installation(&WorkspaceKey::Team(TEAM.into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.bot_token.expose(), "xoxb-local-bot-token");
    assert_eq!(stored.bot_id, format!("B{TEAM}"));

    // The same callback again: the state was consumed.
    assert_eq!(
        status(&response(&process, sample("slack-oauth/oauth-callback.json")).await),
        400
    );
    let denied = response(&process, sample("slack-oauth/oauth-callback-denied.json")).await;
    assert!((400..500).contains(&status(&denied)), "{denied}");
}

/// Every file in `events/`, re-signed, through the binary that serves its
/// route (Scheduled Events through both draining functions): each gets a
/// deliberate answer — never an invocation error, never a 5xx.
#[tokio::test]
async fn every_sample_event_gets_a_deliberate_answer_from_its_binary() {
    use kefu_bridge::lambda::Function;
    let app = TestApp::start().await;
    app.install_as(
        TEAM,
        "B0LOCALBOT",
        "U0LOCALBOT",
        "A0LOCALAPP",
        &["chat:write"],
    )
    .await;
    let bins = function_binaries(false);
    let env = env_for(&app);
    let (events_bin, oauth_bin, callback_bin) = (
        bins.join("slack-events"),
        bins.join("slack-oauth"),
        bins.join("easemob-callback"),
    );
    let events = LambdaProcess::spawn(&events_bin, "slack-events", &env).await;
    let oauth = LambdaProcess::spawn(&oauth_bin, "slack-oauth", &env).await;
    let callback = LambdaProcess::spawn(&callback_bin, "easemob-callback", &env).await;
    let files = bridge_tests::events::sample_files(&events_dir());
    assert!(files.len() >= 13, "{files:?}");
    for file in files {
        let name = file
            .strip_prefix(events_dir())
            .unwrap()
            .display()
            .to_string();
        let event = sample(&name);
        let targets: Vec<&LambdaProcess> = match event["rawPath"].as_str() {
            Some(path) => match Function::for_path(path) {
                Some(Function::SlackEvents) => vec![&events],
                Some(Function::SlackOAuth) => vec![&oauth],
                Some(Function::EasemobCallback) => vec![&callback],
                None => panic!("{name}: no function serves {path}"),
            },
            None => vec![&events, &callback],
        };
        for process in targets {
            let answer = response(process, event.clone()).await;
            if event.get("rawPath").is_some() {
                let status = status(&answer);
                assert!(
                    (200..500).contains(&status),
                    "{name} → {}: {answer}",
                    process.name
                );
            } else {
                assert!(answer.get("statusCode").is_none(), "{name}: {answer}");
            }
        }
    }
}

/// The names template.yaml gives one function (`Globals` and its own
/// `Environment`).
fn template_env_names(logical_id: &str) -> Vec<String> {
    bridge_tests::template::Template::load()
        .environment(logical_id)
        .into_keys()
        .collect()
}

/// Each binary runs with exactly the environment template.yaml gives its
/// function, no other secret: the deployment's least privilege and the
/// code's requirements (`Function::duties`) agree.
#[tokio::test]
async fn each_binary_serves_with_only_the_variables_the_template_gives_it() {
    let app = TestApp::start().await;
    app.install_as(
        TEAM,
        "B0LOCALBOT",
        "U0LOCALBOT",
        "A0LOCALAPP",
        &["chat:write", "users:read"],
    )
    .await;
    app.add_user("U0CUSTOMER", "customer", "Casey Customer");
    let all = env_for(&app);
    let only = |logical_id: &str| -> Vec<(String, String)> {
        let names = template_env_names(logical_id);
        assert!(names.contains(&"TABLE_NAME".to_string()), "{names:?}");
        all.iter()
            .filter(|(k, _)| names.contains(k) || k.starts_with("AWS_ENDPOINT_URL"))
            .cloned()
            .collect()
    };
    let names = |env: &[(String, String)]| env.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    let bins = function_binaries(false);

    let oauth_env = only("SlackOAuthFunction");
    for secret in [
        "SLACK_SIGNING_SECRET",
        "EASEMOB_CLIENT_SECRET",
        "EASEMOB_CALLBACK_SECRET",
    ] {
        assert!(!names(&oauth_env).contains(&secret.to_string()), "{secret}");
    }
    let oauth = LambdaProcess::spawn(&bins.join("slack-oauth"), "slack-oauth", &oauth_env).await;
    assert_eq!(
        status(&response(&oauth, sample("slack-oauth/install.json")).await),
        200
    );

    let events_env = only("SlackEventsFunction");
    assert!(!names(&events_env).contains(&"EASEMOB_CALLBACK_SECRET".to_string()));
    let events =
        LambdaProcess::spawn(&bins.join("slack-events"), "slack-events", &events_env).await;
    assert_eq!(
        status(&response(&events, sample("slack-events/message-dm.json")).await),
        200
    );
    assert_eq!(app.easemob.messages().len(), 1);

    let callback_env = only("EasemobCallbackFunction");
    assert!(!names(&callback_env).contains(&"SLACK_SIGNING_SECRET".to_string()));
    let callback = LambdaProcess::spawn(
        &bins.join("easemob-callback"),
        "easemob-callback",
        &callback_env,
    )
    .await;
    assert_eq!(
        status(&response(&callback, sample("easemob-callback/agent-reply.json")).await),
        200
    );
    assert_eq!(app.slack.posts().len(), 1);
}
