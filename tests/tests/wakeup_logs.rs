//! The log lines of retry wake-ups (docs/design.md §1 "Retry wake-ups
//! (SQS)"), in a test binary of its own: it installs a thread-local tracing
//! subscriber, and tracing caches each callsite's interest process-wide
//! (see oauth_logs.rs).

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::dynamodb_local::free_port;
use bridge_tests::fake_server::Fault;
use bridge_tests::local_sqs;
use bridge_tests::oauth_kit::LogRecorder;
use bridge_tests::TestApp;
use kefu_bridge::lambda::Function;
use kefu_bridge::store::Direction;
use kefu_bridge::wakeup::{self, RetryQueue};

const TEAM: &str = "T0LOGS";
const VISITOR: &str = "T0LOGS_U0LOGS1_D0LOGS1";

fn lines_with(recorder: &LogRecorder, name: &str) -> Vec<String> {
    let needle = format!("message={name}");
    recorder
        .lines()
        .into_iter()
        .filter(|line| line.split(' ').any(|word| word == needle))
        .collect()
}

/// The value of ` field=` in `line`.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=");
    line.split(' ')
        .find_map(|word| word.strip_prefix(key.as_str()))
}

#[tokio::test]
async fn wake_ups_are_logged_when_sent_refused_or_not_sent() {
    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let mut app = TestApp::start().await;
    let queue = app.use_retry_queue().await;
    app.install(TEAM, &["chat:write", "im:history", "users:read"])
        .await;
    app.add_user("U0LOGS1", "logs", "Log Visitor");
    let message = |id: &str, text: &str, ts: &str| {
        event_callback(TEAM, id, user_message("D0LOGS1", "im", "U0LOGS1", text, ts))
    };

    // Kefu down: one wake-up, due no later than the first retry (≤ 10 s).
    app.easemob.fail_always("messages", Fault::Status(503));
    assert_eq!(
        app.slack_event(&message("EvL1", "one", "1.1")).await.status,
        200
    );
    let sent = lines_with(&recorder, "retry_wakeup_sent");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(field(&sent[0], "visitor"), Some(VISITOR));
    let delay: i64 = field(&sent[0], "delay").unwrap().parse().unwrap();
    assert!((0..=10).contains(&delay), "{}", sent[0]);
    assert_eq!(local_sqs::counts(&queue).await, (0, 1, 0));

    // A record that is not a wake-up: a named line, and not seen again.
    local_sqs::send_body(&queue, "{\"direction\":\"ToKefu\"").await;
    let delivery = local_sqs::deliver(&app.bridge, Function::SlackEvents, &queue, 0)
        .await
        .expect("the record");
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let refused = lines_with(&recorder, "retry_wakeup_malformed");
    assert_eq!(refused.len(), 1, "{:?}", recorder.lines());
    assert!(field(&refused[0], "message_id").is_some_and(|id| !id.is_empty()));
    assert_eq!(local_sqs::counts(&queue).await, (0, 1, 0));

    // SQS unreachable: the message is still taken (the outbox is the
    // truth), and the failed send is a named line.
    let closed = format!("http://127.0.0.1:{}", free_port().unwrap());
    app.bridge.wakeups = RetryQueue::new(
        wakeup::client_for_endpoint(&closed),
        Some(format!("{closed}/123456789012/gone")),
    );
    assert_eq!(
        app.slack_event(&message("EvL2", "two", "1.2")).await.status,
        200
    );
    assert_eq!(app.waiting(Direction::ToKefu).await.len(), 2);
    let not_sent = lines_with(&recorder, "retry_wakeup_not_sent");
    assert_eq!(not_sent.len(), 1, "{:?}", recorder.lines());
    assert_eq!(field(&not_sent[0], "visitor"), Some(VISITOR));
}
