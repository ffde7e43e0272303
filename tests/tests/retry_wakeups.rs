//! Retry wake-ups through SQS (issue 15 item 3; docs/design.md §1 "Retry
//! wake-ups (SQS)"), end to end: the real handlers, DynamoDB Local, moto's
//! SQS and the fakes. A message that goes to the outbox puts one delayed
//! wake-up on the function's queue; the kit hands due wake-ups back as SQS
//! events through `lambda::invoke`, as Lambda's event source does.

use std::time::Instant;

use bridge_tests::app::{event_callback, local_dynamodb, user_message};
use bridge_tests::callback_kit::agent_reply;
use bridge_tests::fake_server::Fault;
use bridge_tests::local_sqs::{self, Delivery};
use bridge_tests::TestApp;
use kefu_bridge::lambda::Function;
use kefu_bridge::store::Direction;
use kefu_bridge::wakeup::{RetryQueue, WakeUp};
use kefu_bridge::Bridge;

const TEAM: &str = "T0WAKE";
const USER: &str = "U0WAKE1";
const CHANNEL: &str = "D0WAKE1";
const VISITOR: &str = "T0WAKE_U0WAKE1_D0WAKE1";
/// Longer than the first retry's wait (≤ 10 s) with room for a busy machine;
/// SQS long polling returns as soon as the wake-up is due.
const LONG_POLL_SECS: i32 = 20;

async fn app() -> (TestApp, String) {
    let mut app = TestApp::start().await;
    let queue = app.use_retry_queue().await;
    app.install(TEAM, &["chat:write", "im:history", "users:read"])
        .await;
    app.add_user(USER, "wake", "Wake Visitor");
    (app, queue)
}

fn message(event_id: &str, text: &str, ts: &str) -> serde_json::Value {
    event_callback(TEAM, event_id, user_message(CHANNEL, "im", USER, text, ts))
}

fn wake_up_body(direction: Direction) -> String {
    WakeUp {
        direction,
        workspace: kefu_bridge::store::WorkspaceKey::Team(TEAM.into()),
        visitor: VISITOR.into(),
    }
    .to_body()
}

fn no_failures(delivery: &Delivery) {
    assert_eq!(
        delivery.answer,
        serde_json::json!({ "batchItemFailures": [] }),
        "{delivery:?}"
    );
}

#[tokio::test]
async fn kefu_down_then_back_a_wake_up_delivers_the_message_once() {
    let (app, queue) = app().await;
    app.easemob.fail_always("messages", Fault::Status(503));
    let failed_at = Instant::now();
    assert_eq!(
        app.slack_event(&message("EvW1", "first", "1.1"))
            .await
            .status,
        200
    );
    assert_eq!(app.waiting(Direction::ToKefu).await.len(), 1);
    // Exactly one wake-up, delayed until the conversation's next attempt.
    assert_eq!(local_sqs::counts(&queue).await, (0, 1, 0));
    app.easemob.heal();

    let delivery = local_sqs::deliver(&app.bridge, Function::SlackEvents, &queue, LONG_POLL_SECS)
        .await
        .expect("the wake-up comes back once due");
    let first_retry = failed_at.elapsed();
    no_failures(&delivery);
    assert_eq!(delivery.bodies, vec![wake_up_body(Direction::ToKefu)]);
    assert_eq!(app.easemob.texts(), vec!["first"]);
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
    assert_eq!(local_sqs::counts(&queue).await, (0, 0, 0));
    println!("first retry after a single failure: {first_retry:?} (wake-up)");

    // The same wake-up again (SQS delivers at least once): nothing twice.
    local_sqs::send_body(&queue, &delivery.bodies[0]).await;
    let again = local_sqs::deliver(&app.bridge, Function::SlackEvents, &queue, 0)
        .await
        .expect("the duplicate");
    no_failures(&again);
    assert_eq!(app.easemob.texts(), vec!["first"]);
    assert_eq!(local_sqs::counts(&queue).await, (0, 0, 0));
}

/// A message queued behind a waiting one is delivered at the conversation's
/// next attempt, not before: its wake-up is delayed to that attempt too
/// (an undelayed one would only wake a drain that finds nothing due).
#[tokio::test]
async fn a_message_queued_behind_a_waiting_one_wakes_at_the_conversations_next_attempt() {
    let (app, queue) = app().await;
    app.easemob.fail_always("messages", Fault::Status(503));
    for (event_id, text, ts) in [("EvQ1", "first", "3.1"), ("EvQ2", "second", "3.2")] {
        let answer = app.slack_event(&message(event_id, text, ts)).await;
        assert_eq!(answer.status, 200);
    }
    // Only the first was tried; both wait, in order.
    assert_eq!(app.easemob.calls("messages").len(), 1);
    assert_eq!(app.waiting(Direction::ToKefu).await.len(), 2);
    // Two wake-ups, both delayed: none is visible before the first's retry.
    assert_eq!(local_sqs::counts(&queue).await, (0, 2, 0));

    app.easemob.heal();
    let delivery = local_sqs::deliver(&app.bridge, Function::SlackEvents, &queue, LONG_POLL_SECS)
        .await
        .expect("the wake-ups come back once due");
    no_failures(&delivery);
    assert_eq!(app.easemob.texts(), vec!["first", "second"]);
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
}

#[tokio::test]
async fn slack_down_then_back_a_wake_up_delivers_the_reply() {
    let (app, queue) = app().await;
    app.slack
        .fail_always("chat.postMessage", Fault::Status(503));
    let reply = agent_reply(&VISITOR.to_lowercase(), "wake-msg-1", "hello from Kefu");
    assert_eq!(app.easemob_callback(&reply).await.status, 200);
    assert_eq!(app.waiting(Direction::ToSlack).await.len(), 1);
    assert_eq!(local_sqs::counts(&queue).await, (0, 1, 0));
    app.slack.heal();

    let delivery = local_sqs::deliver(
        &app.bridge,
        Function::EasemobCallback,
        &queue,
        LONG_POLL_SECS,
    )
    .await
    .expect("the wake-up comes back once due");
    no_failures(&delivery);
    assert_eq!(delivery.bodies, vec![wake_up_body(Direction::ToSlack)]);
    assert_eq!(app.slack.posts().len(), 1);
    assert!(app.waiting(Direction::ToSlack).await.is_empty());
}

#[tokio::test]
async fn a_wake_up_with_nothing_due_sends_nothing() {
    let (app, queue) = app().await;
    // Nothing waits at all.
    local_sqs::send_body(&queue, &wake_up_body(Direction::ToKefu)).await;
    let delivery = local_sqs::deliver(&app.bridge, Function::SlackEvents, &queue, 0)
        .await
        .expect("the wake-up");
    no_failures(&delivery);
    // Something waits, but its retry is not due yet (an early duplicate).
    app.easemob.fail_always("messages", Fault::Status(503));
    assert_eq!(
        app.slack_event(&message("EvW2", "later", "2.1"))
            .await
            .status,
        200
    );
    app.easemob.heal();
    let calls = app.easemob.calls("messages").len();
    local_sqs::send_body(&queue, &wake_up_body(Direction::ToKefu)).await;
    let early = local_sqs::deliver(&app.bridge, Function::SlackEvents, &queue, 0)
        .await
        .expect("the early wake-up");
    no_failures(&early);
    assert_eq!(app.easemob.calls("messages").len(), calls);
    assert_eq!(app.waiting(Direction::ToKefu).await.len(), 1);
}

#[tokio::test]
async fn a_record_that_is_not_a_wake_up_is_not_retried() {
    let (app, queue) = app().await;
    for body in [
        "not json",
        r#"{"direction":"Sideways","workspace":"T0WAKE","visitor":"T0WAKE_U0WAKE1_D0WAKE1"}"#,
        r#"{"direction":"ToKefu","workspace":"T0OTHER","visitor":"T0WAKE_U0WAKE1_D0WAKE1"}"#,
        // A wake-up for the other function's direction.
        &wake_up_body(Direction::ToSlack),
    ] {
        local_sqs::send_body(&queue, body).await;
        let delivery = local_sqs::deliver(&app.bridge, Function::SlackEvents, &queue, 0)
            .await
            .expect("the record");
        no_failures(&delivery);
    }
    assert_eq!(local_sqs::counts(&queue).await, (0, 0, 0));
    assert!(app.easemob.calls("messages").is_empty());
}

#[tokio::test]
async fn dynamodb_unavailable_during_a_wake_up_lists_the_record() {
    let (app, queue) = app().await;
    // A function instance whose table endpoint refuses connections.
    let port = bridge_tests::dynamodb_local::free_port().unwrap();
    let db = local_dynamodb(&format!("http://127.0.0.1:{port}"));
    let broken = Bridge::new(
        app.bridge.config.clone(),
        db,
        kefu_bridge::bridge::http_client(),
    )
    .with_wakeups(RetryQueue::off());
    local_sqs::send_body(&queue, &wake_up_body(Direction::ToKefu)).await;
    let delivery = local_sqs::deliver(&broken, Function::SlackEvents, &queue, 0)
        .await
        .expect("the wake-up");
    assert_eq!(delivery.failed.len(), 1, "{delivery:?}");
    assert_eq!(
        delivery.answer["batchItemFailures"][0]["itemIdentifier"],
        delivery.failed[0].as_str()
    );
    // Left on the queue to be seen again.
    assert_eq!(local_sqs::counts(&queue).await, (0, 0, 1));
}

#[tokio::test]
async fn slack_oauth_answers_an_sqs_event_with_nothing_to_retry() {
    let (app, queue) = app().await;
    local_sqs::send_body(&queue, &wake_up_body(Direction::ToKefu)).await;
    let delivery = local_sqs::deliver(&app.bridge, Function::SlackOAuth, &queue, 0)
        .await
        .expect("the record");
    no_failures(&delivery);
}

/// Without `RETRY_QUEUE_URL` the outbox works as before: nothing is sent
/// anywhere, the minute schedule drains.
#[tokio::test]
async fn without_a_retry_queue_the_schedule_alone_drains() {
    let app = TestApp::start().await;
    app.install(TEAM, &["chat:write", "im:history", "users:read"])
        .await;
    app.add_user(USER, "wake", "Wake Visitor");
    assert!(!app.bridge.wakeups.is_on());
    app.easemob.fail_always("messages", Fault::Status(503));
    assert_eq!(
        app.slack_event(&message("EvW3", "plain", "3.1"))
            .await
            .status,
        200
    );
    app.easemob.heal();
    app.make_due().await;
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 1);
    assert_eq!(app.easemob.texts(), vec!["plain"]);
}
