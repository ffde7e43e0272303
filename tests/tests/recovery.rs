//! When the other side comes back (docs/design.md §2 "Recovery"): the
//! first retry that succeeds after an outage, once no failure came for
//! 15 s, brings every other waiting conversation of that direction forward
//! to now and wakes its drain, so a backlog goes out at once instead of
//! each conversation sitting out its backoff — but not while the other side
//! still fails in part, and never against a rate limit.
//! The real handlers, DynamoDB Local, the local SQS and the fakes; the
//! clock is moved, not waited for.

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::fake_server::Fault;
use bridge_tests::local_sqs;
use bridge_tests::TestApp;
use kefu_bridge::clock::Clock;
use kefu_bridge::lambda::Function;
use kefu_bridge::relay::outbox::FIRST_RETRY_MAX_SECS;

/// Longer than the quiet spell a recovery waits for after the last failure.
const QUIET: i64 = 16;
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

/// B's message fails four times: its next try is 32–64 s after the last.
async fn b_deep_in_backoff(app: &TestApp) {
    app.easemob.fail_always("messages", Fault::Status(503));
    says(app, "U0BACKB", "EvB1", "from B").await;
    for attempt in 1..4 {
        app.clock.advance(FIRST_RETRY_MAX_SECS << (attempt - 1));
        assert_eq!(app.drain(Direction::ToKefu).await.retried_later, 1);
    }
    app.easemob.heal();
}

fn b_due(waiting: &[OutboxItem]) -> i64 {
    head_of(waiting, "U0BACKB").next_attempt_at
}

#[tokio::test]
async fn when_a_retry_succeeds_the_other_waiting_conversations_go_at_once() {
    let (app, queue) = app().await;
    b_deep_in_backoff(&app).await;
    // A's message fails once: due within 8 s.
    app.easemob.fail_once("messages", Fault::Status(503));
    says(&app, "U0BACKA", "EvA1", "from A").await;
    app.clock.advance(QUIET);
    // (The test clock is the wall clock moved forward: read it afresh.)
    assert!(b_due(&app.waiting(Direction::ToKefu).await) > app.clock.epoch_secs());

    // A's retry succeeds, no failure for 16 s: Kefu is back.
    let drained = app.drain(Direction::ToKefu).await;
    assert_eq!(drained.delivered, 1);
    assert_eq!(app.easemob.texts(), vec!["from A"]);
    // B is due now, and its drain is woken now.
    assert!(b_due(&app.waiting(Direction::ToKefu).await) <= app.clock.epoch_secs());
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
async fn while_the_other_side_still_fails_in_part_everyone_keeps_their_backoff() {
    let (app, _queue) = app().await;
    b_deep_in_backoff(&app).await;
    app.easemob.fail_once("messages", Fault::Status(503));
    says(&app, "U0BACKA", "EvA2", "from A").await;
    app.clock.advance(QUIET);
    // C's message fails just now: Kefu is not quite back.
    app.easemob.fail_once("messages", Fault::Status(503));
    says(&app, "U0BACKC", "EvC2", "from C").await;
    let b_before = b_due(&app.waiting(Direction::ToKefu).await);

    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 1);
    assert_eq!(app.easemob.texts(), vec!["from A"]);
    assert_eq!(b_due(&app.waiting(Direction::ToKefu).await), b_before);
}

#[tokio::test]
async fn a_rate_limit_holds_the_recovery_off_until_its_retry_after() {
    let (app, _queue) = app().await;
    b_deep_in_backoff(&app).await;
    // C is told to come back in 10 minutes; A's failure is a plain 503.
    app.easemob.fail_once("messages", Fault::RateLimited(600));
    says(&app, "U0BACKC", "EvC1", "from C").await;
    app.easemob.fail_once("messages", Fault::Status(503));
    says(&app, "U0BACKA", "EvA3", "from A").await;
    let waiting = app.waiting(Direction::ToKefu).await;
    let (c_told, b_before) = (
        head_of(&waiting, "U0BACKC").next_attempt_at,
        b_due(&waiting),
    );

    app.clock.advance(QUIET);
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 1);
    assert_eq!(app.easemob.texts(), vec!["from A"]);
    // No sweep while the rate limit holds: C keeps the time Easemob asked
    // for, and B (which alone would have been brought forward) its backoff.
    let waiting = app.waiting(Direction::ToKefu).await;
    assert_eq!(head_of(&waiting, "U0BACKC").next_attempt_at, c_told);
    assert!(c_told > app.clock.epoch_secs() + 500);
    assert_eq!(b_due(&waiting), b_before);
}

/// Each outage gets its recovery, however soon after the last one: what
/// allows a sweep is a failure since the last sweep, not the clock.
#[tokio::test]
async fn an_outage_soon_after_a_recovery_is_recovered_from_too() {
    let (app, _queue) = app().await;
    // A first short outage and its recovery (the sweep finds nothing else).
    app.easemob.fail_once("messages", Fault::Status(503));
    says(&app, "U0BACKC", "EvC0", "first outage").await;
    app.clock.advance(QUIET);
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 1);

    // Then a second outage: B backs off far, A a little.
    b_deep_in_backoff(&app).await;
    app.easemob.fail_once("messages", Fault::Status(503));
    says(&app, "U0BACKA", "EvA5", "from A").await;
    app.clock.advance(QUIET);
    assert!(b_due(&app.waiting(Direction::ToKefu).await) > app.clock.epoch_secs());

    // A's retry goes through: B is brought forward again.
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 1);
    assert!(b_due(&app.waiting(Direction::ToKefu).await) <= app.clock.epoch_secs());
}
