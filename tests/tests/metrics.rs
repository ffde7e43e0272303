//! The metrics (docs/design.md §1 "Metrics"): runs of the real handlers and
//! drains against DynamoDB Local and the fakes write exactly the expected
//! values, read back from the EMF documents they wrote; and a real function
//! binary writes its documents to stdout, where CloudWatch Logs reads them.

use bridge_tests::app::{event_callback, local_env, user_message};
use bridge_tests::callback_kit::agent_reply;
use bridge_tests::events::resign;
use bridge_tests::fake_server::Fault;
use bridge_tests::runtime_emulator::{apigw_event, function_binaries, LambdaProcess, Outcome};
use bridge_tests::signing::*;
use bridge_tests::TestApp;
use kefu_bridge::store::Direction;
use serde_json::{json, Value};

const TEAM: &str = "T0TEAM1";
const DM_VISITOR: &str = "T0TEAM1_U0ADA_D0ADA";

async fn app() -> TestApp {
    let app = TestApp::start().await;
    app.install(TEAM, &["chat:write", "users:read", "im:history"])
        .await;
    app.add_user("U0ADA", "ada", "Ada Lovelace");
    app
}

fn dm(event_id: &str, text: &str, ts: &str) -> Value {
    event_callback(
        TEAM,
        event_id,
        user_message("D0ADA", "im", "U0ADA", text, ts),
    )
}

/// Every metric written, as `name/direction/reason = value`, for messages.
fn shown(app: &TestApp) -> String {
    format!("{:#?}", app.metric_totals())
}

/// The metric names written, each once.
fn names(app: &TestApp) -> Vec<String> {
    let mut names: Vec<String> = app
        .metric_totals()
        .keys()
        .map(|(name, _, _)| name.clone())
        .collect();
    names.dedup();
    names
}

#[tokio::test]
async fn slack_messages_count_as_delivered_duplicate_and_loop_prevented() {
    let app = app().await;
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        let response = app
            .slack_event(&dm(&format!("EvM{i}"), text, &format!("1.000{i}")))
            .await;
        assert_eq!(response.status, 200, "{response:?}");
    }
    // Slack's retry of the first message.
    assert_eq!(
        app.slack_event(&dm("EvM0", "one", "1.0000")).await.status,
        200
    );
    // The bridge's own post, echoed back as a message event.
    let mut own = user_message("D0ADA", "im", "UT0TEAM1BOT", "agent said", "1.0009");
    own["bot_id"] = json!("BT0TEAM1");
    assert_eq!(
        app.slack_event(&event_callback(TEAM, "EvOwn", own))
            .await
            .status,
        200
    );
    assert_eq!(app.easemob.texts(), vec!["one", "two", "three"]);

    assert_eq!(
        app.metric("MessagesDelivered", "ToKefu", ""),
        3.0,
        "{}",
        shown(&app)
    );
    assert_eq!(
        app.metric("DuplicatesDropped", "ToKefu", ""),
        1.0,
        "{}",
        shown(&app)
    );
    assert_eq!(
        app.metric("LoopsPrevented", "ToKefu", ""),
        1.0,
        "{}",
        shown(&app)
    );
    assert_eq!(
        names(&app),
        vec![
            "DeliveryLatency",
            "DuplicatesDropped",
            "LoopsPrevented",
            "MessagesDelivered"
        ],
        "{}",
        shown(&app)
    );
    // One latency value per delivered message, each a real duration.
    let latencies: Vec<f64> = documents(&app)
        .iter()
        .filter_map(|d| d["DeliveryLatency"].as_f64())
        .collect();
    assert_eq!(latencies.len(), 3, "{}", shown(&app));
    assert!(latencies.iter().all(|ms| *ms > 0.0), "{latencies:?}");
    // Every document names the function, and the direction it counts.
    for document in documents(&app) {
        assert_eq!(document["Function"], "slack-events", "{document}");
        assert_eq!(document["Direction"], "ToKefu", "{document}");
        assert_eq!(
            document["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "KefuBridge"
        );
    }
}

fn documents(app: &TestApp) -> Vec<Value> {
    app.metric_lines()
        .iter()
        .map(|line| serde_json::from_str(line).expect("an EMF line is JSON"))
        .collect()
}

#[tokio::test]
async fn an_agent_reply_delivered_counts_once_with_its_latency() {
    let app = app().await;
    let reply = agent_reply(DM_VISITOR, "m-metrics-1", "Hello");
    assert_eq!(app.easemob_callback(&reply).await.status, 200);
    assert_eq!(app.slack.posts().len(), 1);

    assert_eq!(
        app.metric("MessagesDelivered", "ToSlack", ""),
        1.0,
        "{}",
        shown(&app)
    );
    let documents = documents(&app);
    assert_eq!(documents.len(), 1, "{documents:?}");
    assert_eq!(documents[0]["Function"], "easemob-callback");
    let latency = documents[0]["DeliveryLatency"].as_f64().expect("a latency");
    assert!(latency > 0.0, "{latency}");
    assert_eq!(
        documents[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
        json!([
            { "Name": "MessagesDelivered", "Unit": "Count" },
            { "Name": "DeliveryLatency", "Unit": "Milliseconds" }
        ])
    );
}

#[tokio::test]
async fn a_slack_500_counts_as_queued_and_failed_with_its_reason_then_delivered_by_the_drain() {
    let app = app().await;
    app.slack.fail_once("chat.postMessage", Fault::Status(500));
    let reply = agent_reply(DM_VISITOR, "m-metrics-500", "survives");
    assert_eq!(app.easemob_callback(&reply).await.status, 200);
    assert!(app.slack.posts().is_empty());

    assert_eq!(
        app.metric("OutboxQueued", "ToSlack", ""),
        1.0,
        "{}",
        shown(&app)
    );
    assert_eq!(
        app.metric("DeliveryFailed", "ToSlack", "SlackUnavailable"),
        1.0,
        "{}",
        shown(&app)
    );
    assert_eq!(app.metric("MessagesDelivered", "ToSlack", ""), 0.0);

    app.make_due().await;
    assert_eq!(app.drain(Direction::ToSlack).await.delivered, 1);
    assert_eq!(
        app.metric("MessagesDelivered", "ToSlack", ""),
        1.0,
        "{}",
        shown(&app)
    );
    assert_eq!(
        app.metric("OutboxDepth", "ToSlack", ""),
        1.0,
        "{}",
        shown(&app)
    );
}

#[tokio::test]
async fn a_permanent_easemob_400_counts_as_dead_lettered_and_failed() {
    let app = app().await;
    app.easemob
        .fail_once("messages", Fault::Error("illegal_argument".into()));
    let response = app.slack_event(&dm("EvBad", "refused", "2.0001")).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(app.dead_letters().await.len(), 1);

    assert_eq!(
        app.metric("DeadLettered", "ToKefu", ""),
        1.0,
        "{}",
        shown(&app)
    );
    assert_eq!(
        app.metric("DeliveryFailed", "ToKefu", "KefuRejected"),
        1.0,
        "{}",
        shown(&app)
    );
    assert_eq!(app.metric("OutboxQueued", "ToKefu", ""), 0.0);
    assert_eq!(app.metric("MessagesDelivered", "ToKefu", ""), 0.0);
}

#[tokio::test]
async fn a_drain_reports_what_waits_and_how_old_the_oldest_is() {
    let app = app().await;
    app.easemob.fail_always("messages", Fault::Status(503));
    for (i, text) in ["first", "second"].iter().enumerate() {
        let event = dm(&format!("EvQ{i}"), text, &format!("3.000{i}"));
        assert_eq!(app.slack_event(&event).await.status, 200);
    }
    assert_eq!(app.waiting(Direction::ToKefu).await.len(), 2);
    // The first failed; the second queued behind it.
    assert_eq!(
        app.metric("OutboxQueued", "ToKefu", ""),
        2.0,
        "{}",
        shown(&app)
    );
    assert_eq!(
        app.metric("DeliveryFailed", "ToKefu", "KefuUnavailable"),
        1.0,
        "{}",
        shown(&app)
    );

    app.clear_metrics();
    app.make_due().await;
    let summary = app.drain(Direction::ToKefu).await;
    assert_eq!(summary.waiting_seen, 2, "{summary:?}");
    let depth: Vec<Value> = documents(&app)
        .into_iter()
        .filter(|d| d.get("OutboxDepth").is_some())
        .collect();
    assert_eq!(depth.len(), 1, "one look per drain: {depth:?}");
    assert_eq!(depth[0]["OutboxDepth"], 2.0);
    assert!(depth[0]["OutboxOldestAgeSeconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(depth[0]["Function"], "slack-events");
    assert_eq!(depth[0]["Direction"], "ToKefu");
    // The drain's attempt failed again: counted by reason, not delivered.
    assert_eq!(
        app.metric("DeliveryFailed", "ToKefu", "KefuUnavailable"),
        1.0,
        "{}",
        shown(&app)
    );
    assert_eq!(app.metric("MessagesDelivered", "ToKefu", ""), 0.0);

    // Kefu is back: both delivered by the drain, nothing left to see.
    app.easemob.heal();
    app.clear_metrics();
    app.make_due().await;
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 2);
    assert_eq!(
        app.metric("MessagesDelivered", "ToKefu", ""),
        2.0,
        "{}",
        shown(&app)
    );
    app.clear_metrics();
    app.drain(Direction::ToKefu).await;
    assert_eq!(app.metric("OutboxDepth", "ToKefu", ""), 0.0);
    assert_eq!(app.metric("OutboxOldestAgeSeconds", "ToKefu", ""), 0.0);
    assert_eq!(
        documents(&app).len(),
        1,
        "an empty outbox still reports its depth"
    );
}

#[tokio::test]
async fn the_slack_events_binary_writes_emf_documents_to_stdout() {
    let app = app().await;
    let mut env = local_env(
        &app.table,
        &app.slack.api_base_url(),
        &app.easemob.base_url(),
    );
    env.push((
        "AWS_ENDPOINT_URL_DYNAMODB".into(),
        app.dynamodb_endpoint.clone(),
    ));
    let bin = function_binaries(false).join("slack-events");
    let process = LambdaProcess::spawn(&bin, "slack-events", &env).await;

    let body = dm("EvBin1", "from the binary", "4.0001").to_string();
    let mut event = apigw_event(
        "POST",
        "/slack/events",
        "",
        &[
            ("content-type", "application/json"),
            ("x-slack-signature", "v0=unsigned"),
            ("x-slack-request-timestamp", "0"),
        ],
        Some(&body),
        false,
    );
    resign(
        &mut event,
        LOCAL_SLACK_SIGNING_SECRET,
        LOCAL_EASEMOB_CALLBACK_SECRET,
        kefu_bridge::clock::now_epoch_secs(),
    );
    match process.invoke(event).await.expect("invocation") {
        Outcome::Response(response) => assert_eq!(response["statusCode"], 200, "{response}"),
        Outcome::Error(error) => panic!("invocation error: {error}"),
    }
    assert_eq!(app.easemob.texts(), vec!["from the binary"]);

    // The answer is sent before the line is read back: wait for the pipe.
    let mut documents = Vec::new();
    for _ in 0..50 {
        documents = process
            .stdout_lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line.get("_aws").is_some())
            .collect();
        if !documents.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(documents.len(), 1, "{:#?}", process.stdout_lines());
    let document = &documents[0];
    let directive = &document["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "KefuBridge");
    assert_eq!(directive["Dimensions"], json!([["Function", "Direction"]]));
    assert_eq!(document["Function"], "slack-events");
    assert_eq!(document["Direction"], "ToKefu");
    assert_eq!(document["MessagesDelivered"], 1.0);
    assert!(document["_aws"]["Timestamp"].as_i64().unwrap() > 0);
}
