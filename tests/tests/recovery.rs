//! When the other side comes back (docs/design.md §2 "Recovery"): the
//! first retry that succeeds after an outage brings every other waiting
//! conversation of that direction forward to now and wakes its drain, so a
//! backlog goes out at once instead of each conversation sitting out its
//! backoff — except where the other side asked for time with `Retry-After`.
//! The real handlers, DynamoDB Local, the local SQS and the fakes; the
//! clock is moved, not waited for.

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::fake_server::Fault;
use bridge_tests::local_sqs;
use bridge_tests::TestApp;
use kefu_bridge::clock::Clock;
use kefu_bridge::lambda::Function;
use kefu_bridge::relay::outbox::FIRST_RETRY_MAX_SECS;
use kefu_bridge::store::{Direction, OutboxItem};

const TEAM: &str = "T0BACK";

async fn app() -> (TestApp, String) {
    let mut app = TestApp::start().await;
    let queue = app.use_retry_queue().await;
    app.install(TEAM, &["chat:write", "im:history", "users:read"])
        .await;
    for user in ["U0BACKA", "U0BACKB", "U0BACKC"] {
        app.add_user(user, user, user);
    }
    (app, queue)
}

/// `user` says `text` in a DM with the bot; Slack gets its 200.
async fn says(app: &TestApp, user: &str, event_id: &str, text: &str) {
    let channel = user.replace("U0", "D0");
    let event = user_message(&channel, "im", user, text, "5.1");
    let answer = app
        .slack_event(&event_callback(TEAM, event_id, event))
        .await;
    assert_eq!(answer.status, 200);
}

fn head_of(waiting: &[OutboxItem], user: &str) -> OutboxItem {
    waiting
        .iter()
        .find(|item| item.visitor.contains(user))
        .cloned()
        .unwrap_or_else(|| panic!("{user}'s message waits: {waiting:?}"))
}

#[tokio::test]
async fn when_a_retry_succeeds_the_other_waiting_conversations_go_at_once() {
    let (app, queue) = app().await;
    app.easemob.fail_always("messages", Fault::Status(503));
    // B's message has failed four times: its next try is 32–64 s away.
    says(&app, "U0BACKB", "EvB1", "from B").await;
    for attempt in 1..4 {
        app.clock.advance(FIRST_RETRY_MAX_SECS << (attempt - 1));
        assert_eq!(app.drain(Direction::ToKefu).await.retried_later, 1);
    }
    // A's has failed once: due within 8 s.
    says(&app, "U0BACKA", "EvA1", "from A").await;
    app.easemob.heal();
    app.clock.advance(FIRST_RETRY_MAX_SECS);
    let now = app.clock.epoch_secs();
    assert!(head_of(&app.waiting(Direction::ToKefu).await, "U0BACKB").next_attempt_at > now + 20);

    // A's retry succeeds: Kefu is back.
    let drained = app.drain(Direction::ToKefu).await;
    assert_eq!(drained.delivered, 1);
    assert_eq!(app.easemob.texts(), vec!["from A"]);
    // B is due now, and its drain is woken now.
    let b = head_of(&app.waiting(Direction::ToKefu).await, "U0BACKB");
    assert!(b.next_attempt_at <= now, "{b:?}");
    let delivery = local_sqs::deliver(&app.bridge, Function::SlackEvents, &queue, 2)
        .await
        .expect("an undelayed wake-up for B");
    assert_eq!(
        delivery.answer,
        serde_json::json!({ "batchItemFailures": [] })
    );
    assert_eq!(app.easemob.texts(), vec!["from A", "from B"]);
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
}

#[tokio::test]
async fn a_conversation_told_to_wait_by_retry_after_keeps_its_wait() {
    let (app, _queue) = app().await;
    // C was told to come back in 10 minutes; A's failure is a plain 503.
    app.easemob.fail_once("messages", Fault::RateLimited(600));
    says(&app, "U0BACKC", "EvC1", "from C").await;
    app.easemob.fail_once("messages", Fault::Status(503));
    says(&app, "U0BACKA", "EvA2", "from A").await;
    let told = head_of(&app.waiting(Direction::ToKefu).await, "U0BACKC").next_attempt_at;

    app.clock.advance(FIRST_RETRY_MAX_SECS);
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 1);
    assert_eq!(app.easemob.texts(), vec!["from A"]);
    // Still waiting for the time Easemob asked for.
    let c = head_of(&app.waiting(Direction::ToKefu).await, "U0BACKC");
    assert_eq!(c.next_attempt_at, told);
    assert!(c.next_attempt_at > app.clock.epoch_secs() + 500);
}

/// Each outage gets its recovery, however soon after the last one: what
/// allows a sweep is a failure since the last sweep, not the clock.
#[tokio::test]
async fn an_outage_soon_after_a_recovery_is_recovered_from_too() {
    let (app, _queue) = app().await;
    // A first short outage and its recovery (the sweep finds nothing else).
    app.easemob.fail_once("messages", Fault::Status(503));
    says(&app, "U0BACKC", "EvC0", "first outage").await;
    app.clock.advance(FIRST_RETRY_MAX_SECS);
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 1);

    // Seconds later (32 s in all), a second outage: B backs off 16–32 s,
    // A a little.
    app.easemob.fail_always("messages", Fault::Status(503));
    says(&app, "U0BACKB", "EvB5", "from B").await;
    for attempt in 1..3 {
        app.clock.advance(FIRST_RETRY_MAX_SECS << (attempt - 1));
        assert_eq!(app.drain(Direction::ToKefu).await.retried_later, 1);
    }
    says(&app, "U0BACKA", "EvA5", "from A").await;
    app.easemob.heal();
    app.clock.advance(FIRST_RETRY_MAX_SECS);
    let now = app.clock.epoch_secs();

    assert!(head_of(&app.waiting(Direction::ToKefu).await, "U0BACKB").next_attempt_at > now);

    // A's retry goes through: B is brought forward again.
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 1);
    let b = head_of(&app.waiting(Direction::ToKefu).await, "U0BACKB");
    assert!(b.next_attempt_at <= now, "{b:?}");
}
