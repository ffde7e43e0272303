//! A local Amazon SQS (moto in server mode, `pip install 'moto[server]'`),
//! really running, and delivery of its due messages to the functions as
//! SQS events, the way Lambda's event source does (docs/design.md §1 "Retry
//! wake-ups (SQS)").
//!
//! `scripts/test` starts one server for the whole run and exports
//! `AWS_ENDPOINT_URL_SQS`; without it (a bare `cargo test`), the first test
//! in a binary that needs it starts `moto_server` on a free port, and it
//! stops when the test process exits. Each test gets a queue of its own.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::types::{Message, QueueAttributeName};
use kefu_bridge::clock::now_epoch_millis;
use kefu_bridge::lambda::{self, Function};
use kefu_bridge::wakeup::{self, RetryQueue, SqsClient};
use kefu_bridge::Bridge;
use serde_json::{json, Value};

use crate::dynamodb_local::{free_port, wait_for_port};
use crate::TestApp;

static ENDPOINT: OnceLock<String> = OnceLock::new();
static CHILD: OnceLock<Mutex<Child>> = OnceLock::new();
static QUEUE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Lambda's timeout for the draining functions (template.yaml).
const LAMBDA_TIMEOUT_MS: i64 = 10_000;

/// The local SQS endpoint, starting moto if needed.
pub fn endpoint() -> String {
    ENDPOINT
        .get_or_init(|| match std::env::var("AWS_ENDPOINT_URL_SQS") {
            Ok(url) if !url.is_empty() => url,
            _ => start().unwrap_or_else(|e| panic!("cannot start moto_server: {e}")),
        })
        .clone()
}

/// Makes `endpoint` the local SQS of this process (the backlog benchmark's
/// own, tests/src/fake_sqs.rs); false when one was already chosen.
pub fn use_endpoint(endpoint: &str) -> bool {
    ENDPOINT.set(endpoint.to_string()).is_ok()
}

/// Starts `moto_server` on a free port; returns its endpoint.
fn start() -> Result<String, String> {
    let port = free_port()?;
    // As for DynamoDB Local: the shell stops the server when our stdin
    // closes, i.e. when this process exits.
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#"python3 -m moto.server -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & pid=$!; read _; kill $pid; wait $pid"#)
        .arg("sh")
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn moto_server: {e} (pip install 'moto[server]')"))?;
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_for_port(addr, Duration::from_secs(30))?;
    let _ = CHILD.set(Mutex::new(child));
    Ok(format!("http://127.0.0.1:{port}"))
}

/// A client for the local SQS.
pub fn client() -> SqsClient {
    wakeup::client_for_endpoint(&endpoint())
}

/// A fresh standard queue; returns its URL.
pub async fn create_queue() -> String {
    let name = format!(
        "retry-{}-{}",
        std::process::id(),
        QUEUE_COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    create_named_queue(&name).await
}

/// The standard queue `name` (created if new); returns its URL.
pub async fn create_named_queue(name: &str) -> String {
    client()
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("queue url")
        .to_string()
}

/// What a queue holds: `(visible, delayed, in flight)`.
pub async fn counts(queue_url: &str) -> (u64, u64, u64) {
    let answer = client()
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("queue attributes");
    let attributes = answer.attributes().cloned().unwrap_or_default();
    let count = |name: QueueAttributeName| {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Puts a message with `body` on the queue, due now (a duplicate or a
/// stray wake-up).
pub async fn send_body(queue_url: &str, body: &str) {
    client()
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .expect("send message");
}

/// One delivery of due messages as an SQS event.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The records the event carried (their bodies).
    pub bodies: Vec<String>,
    /// The function's answer.
    pub answer: Value,
    /// Records the function asked to see again (left on the queue).
    pub failed: Vec<String>,
}

/// Receives the queue's due messages (waiting up to `wait_secs` for the
/// first), hands them to `function` on `bridge` as one SQS event through
/// `lambda::invoke` — the binaries' own dispatch —, and deletes every record
/// not listed in `batchItemFailures`, as Lambda's event source does. `None`
/// when nothing was due.
pub async fn deliver(
    bridge: &Bridge,
    function: Function,
    queue_url: &str,
    wait_secs: i32,
) -> Option<Delivery> {
    let messages = receive(queue_url, wait_secs).await;
    if messages.is_empty() {
        return None;
    }
    Some(hand_over(bridge, function, queue_url, &messages).await)
}

/// For `scripts/dev`, whose one local server is every function and so
/// shares one queue: each due wake-up goes to the function draining its
/// direction.
pub async fn deliver_by_direction(bridge: &Bridge, queue_url: &str, wait_secs: i32) -> usize {
    let messages = receive(queue_url, wait_secs).await;
    let to_slack = |m: &Message| {
        m.body()
            .is_some_and(|b| b.contains(r#""direction":"ToSlack""#))
    };
    let count = messages.len();
    let (slack, kefu): (Vec<Message>, Vec<Message>) = messages.into_iter().partition(to_slack);
    for (function, batch) in [
        (Function::SlackEvents, kefu),
        (Function::EasemobCallback, slack),
    ] {
        if !batch.is_empty() {
            hand_over(bridge, function, queue_url, &batch).await;
        }
    }
    count
}

async fn receive(queue_url: &str, wait_secs: i32) -> Vec<Message> {
    receive_batch(queue_url, wait_secs, 30)
        .await
        .expect("receive")
}

/// Up to 10 due messages (waiting up to `wait_secs` for the first), hidden
/// for `visibility_secs` while they are handled, as Lambda's event source
/// polls a queue. `Err` when SQS did not answer in time or refused.
pub async fn receive_batch(
    queue_url: &str,
    wait_secs: i32,
    visibility_secs: i32,
) -> Result<Vec<Message>, String> {
    let bound = Duration::from_secs(wait_secs.max(0) as u64 + 5);
    let long_poll = TimeoutConfig::builder()
        .read_timeout(bound)
        .operation_attempt_timeout(bound)
        .operation_timeout(bound)
        .build();
    client()
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_secs)
        .visibility_timeout(visibility_secs)
        // Long polling outlasts the bridge's 2 s bound on a call.
        .customize()
        .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(long_poll))
        .send()
        .await
        .map(|answer| answer.messages.unwrap_or_default())
        .map_err(|e| format!("receive: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))
}

async fn hand_over(
    bridge: &Bridge,
    function: Function,
    queue_url: &str,
    messages: &[Message],
) -> Delivery {
    let deadline_ms = (now_epoch_millis() + LAMBDA_TIMEOUT_MS) as u64;
    let answer = lambda::invoke(bridge, function, sqs_event(messages), deadline_ms).await;
    let failed = failed_records(&answer);
    delete_settled(queue_url, messages, &failed)
        .await
        .expect("delete message");
    Delivery {
        bodies: messages
            .iter()
            .map(|m| m.body().unwrap_or_default().to_string())
            .collect(),
        answer,
        failed,
    }
}

/// The SQS event Lambda's event source hands the function for `messages`.
pub fn sqs_event(messages: &[Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_epoch_millis().to_string(),
                    "SenderId": "AIDALOCAL",
                    "ApproximateFirstReceiveTimestamp": now_epoch_millis().to_string(),
                },
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:retry",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The `messageId`s a function's answer lists in `batchItemFailures`.
pub fn failed_records(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .map(|failures| {
            failures
                .iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes every message not listed in `failed`, as Lambda's event source
/// does after an invocation; the listed ones come back after their
/// visibility timeout.
pub async fn delete_settled(
    queue_url: &str,
    messages: &[Message],
    failed: &[String],
) -> Result<(), String> {
    let client = client();
    for message in messages {
        if !failed
            .iter()
            .any(|id| Some(id.as_str()) == message.message_id())
        {
            client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(|e| format!("delete: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        }
    }
    Ok(())
}

impl TestApp {
    /// Turns retry wake-ups on: a fresh queue on the local SQS becomes this
    /// bridge's `RETRY_QUEUE_URL`. Returns the queue's URL.
    pub async fn use_retry_queue(&mut self) -> String {
        let queue_url = create_queue().await;
        self.reconfigure(&[("RETRY_QUEUE_URL", &queue_url)]);
        self.bridge.wakeups = RetryQueue::new(client(), self.bridge.config.retry_queue_url.clone());
        queue_url
    }
}
