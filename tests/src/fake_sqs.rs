//! A small Amazon SQS on 127.0.0.1 for the backlog benchmark, speaking the
//! AWS JSON 1.0 protocol the SDK uses (`X-Amz-Target: AmazonSQS.<Op>`) for
//! the operations the bridge and its kit call: `CreateQueue`,
//! `GetQueueAttributes`, `SendMessage` (with `DelaySeconds`),
//! `ReceiveMessage` (long polling, visibility timeout, receive counts,
//! redrive to a dead-letter queue after `maxReceiveCount`) and
//! `DeleteMessage`. Like the Slack and Easemob fakes it refuses a request
//! without a SigV4 `Authorization` header.
//!
//! Why it exists: moto answers ~20 requests/s at 90 % of a core on this
//! machine and slows as a queue grows, so a 5,000-message backlog measured
//! moto rather than the bridge (README "Benchmarks"). The tests keep moto, a
//! third party's SQS; this one is only as faithful as the benchmark needs,
//! and `tests/tests/fake_sqs.rs` holds it to the same behaviour on the
//! operations above.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

const ACCOUNT: &str = "000000000000";
/// SQS's default visibility timeout.
const DEFAULT_VISIBILITY_SECS: u64 = 30;
/// How often a long poll looks again for a due message.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// A running fake SQS; it stops with the process.
#[derive(Debug, Clone)]
pub struct FakeSqs {
    pub endpoint: String,
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<String, Queue>,
    next_id: u64,
}

#[derive(Debug)]
struct Queue {
    visibility: Duration,
    /// Dead-letter queue name and `maxReceiveCount`.
    redrive: Option<(String, u32)>,
    messages: Vec<Stored>,
}

#[derive(Debug, Clone)]
struct Stored {
    id: String,
    body: String,
    md5: String,
    /// Not before this (its delay, or its visibility timeout).
    visible_at: Instant,
    receive_count: u32,
    receipt: Option<String>,
}

impl FakeSqs {
    /// Starts the fake on a free port.
    pub async fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("fake sqs: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("fake sqs: {e}"))?
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let state = Arc::new(Mutex::new(State::default()));
        let base = endpoint.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, base) = (state.clone(), base.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let (state, base) = (state.clone(), base.clone());
                        async move { Ok::<_, Infallible>(answer(&state, &base, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { endpoint })
    }
}

type Shared = Arc<Mutex<State>>;

async fn answer(
    state: &Shared,
    base: &str,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    if !header("authorization").starts_with("AWS4-HMAC-SHA256 Credential=") {
        return error(403, "MissingAuthenticationToken", "no SigV4 signature");
    }
    let Some(operation) = header("x-amz-target")
        .strip_prefix("AmazonSQS.")
        .map(str::to_string)
    else {
        return error(400, "InvalidAction", "no X-Amz-Target");
    };
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let Ok(input) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "MalformedInput", "body is not JSON");
    };
    let result = match operation.as_str() {
        "CreateQueue" => create_queue(state, base, &input),
        "GetQueueAttributes" => queue_attributes(state, &input),
        "SendMessage" => send_message(state, &input),
        "ReceiveMessage" => receive_message(state, &input).await,
        "DeleteMessage" => delete_message(state, &input),
        _ => Err((400, "InvalidAction", format!("{operation} is not served"))),
    };
    match result {
        Ok(value) => hyper::Response::builder()
            .status(200)
            .header("content-type", "application/x-amz-json-1.0")
            .body(Full::new(Bytes::from(value.to_string())))
            .unwrap_or_default(),
        Err((status, code, message)) => error(status, code, &message),
    }
}

type Answer = Result<Value, (u16, &'static str, String)>;

fn error(status: u16, code: &str, message: &str) -> hyper::Response<Full<Bytes>> {
    let body = json!({ "__type": format!("com.amazonaws.sqs#{code}"), "message": message });
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header(
            "x-amzn-query-error",
            format!("AWS.SimpleQueueService.{code};Sender"),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn arn(name: &str) -> String {
    format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}")
}

/// The queue a `QueueUrl` names: its last path segment.
fn queue_name(input: &Value) -> Result<String, (u16, &'static str, String)> {
    input["QueueUrl"]
        .as_str()
        .and_then(|url| url.rsplit('/').next())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .ok_or((400, "MissingParameter", "QueueUrl".into()))
}

fn no_queue(name: &str) -> (u16, &'static str, String) {
    (400, "QueueDoesNotExist", format!("no queue {name}"))
}

fn create_queue(state: &Shared, base: &str, input: &Value) -> Answer {
    let name = input["QueueName"]
        .as_str()
        .filter(|n| !n.is_empty() && n.len() <= 80)
        .ok_or((400, "MissingParameter", "QueueName".to_string()))?;
    let attributes = &input["Attributes"];
    let visibility = attributes["VisibilityTimeout"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_VISIBILITY_SECS);
    let redrive = match attributes["RedrivePolicy"].as_str() {
        None => None,
        Some(policy) => {
            let policy: Value = serde_json::from_str(policy)
                .map_err(|_| (400, "InvalidAttributeValue", "RedrivePolicy".to_string()))?;
            let target = policy["deadLetterTargetArn"]
                .as_str()
                .and_then(|arn| arn.rsplit(':').next())
                .ok_or((
                    400,
                    "InvalidAttributeValue",
                    "deadLetterTargetArn".to_string(),
                ))?;
            let max = policy["maxReceiveCount"]
                .as_u64()
                .or_else(|| policy["maxReceiveCount"].as_str()?.parse().ok())
                .ok_or((400, "InvalidAttributeValue", "maxReceiveCount".to_string()))?;
            Some((target.to_string(), max as u32))
        }
    };
    let mut state = lock(state);
    if let Some((target, _)) = &redrive {
        if !state.queues.contains_key(target) {
            return Err(no_queue(target));
        }
    }
    let url = format!("{base}/{ACCOUNT}/{name}");
    state.queues.entry(name.to_string()).or_insert(Queue {
        visibility: Duration::from_secs(visibility),
        redrive,
        messages: Vec::new(),
    });
    Ok(json!({ "QueueUrl": url }))
}

fn queue_attributes(state: &Shared, input: &Value) -> Answer {
    let name = queue_name(input)?;
    let state = lock(state);
    let queue = state.queues.get(&name).ok_or_else(|| no_queue(&name))?;
    let now = Instant::now();
    let count = |f: &dyn Fn(&Stored) -> bool| queue.messages.iter().filter(|m| f(m)).count();
    let all = [
        ("QueueArn", arn(&name)),
        (
            "ApproximateNumberOfMessages",
            count(&|m| m.visible_at <= now).to_string(),
        ),
        (
            "ApproximateNumberOfMessagesDelayed",
            count(&|m| m.visible_at > now && m.receipt.is_none()).to_string(),
        ),
        (
            "ApproximateNumberOfMessagesNotVisible",
            count(&|m| m.visible_at > now && m.receipt.is_some()).to_string(),
        ),
        ("VisibilityTimeout", queue.visibility.as_secs().to_string()),
    ];
    let wanted: Vec<&str> = input["AttributeNames"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let attributes: Map<String, Value> = all
        .into_iter()
        .filter(|(key, _)| wanted.contains(&"All") || wanted.contains(key))
        .map(|(key, value)| (key.to_string(), Value::String(value)))
        .collect();
    Ok(json!({ "Attributes": attributes }))
}

fn send_message(state: &Shared, input: &Value) -> Answer {
    let name = queue_name(input)?;
    let body = input["MessageBody"]
        .as_str()
        .filter(|b| !b.is_empty() && b.len() <= 256 * 1024)
        .ok_or((400, "InvalidParameterValue", "MessageBody".to_string()))?;
    let delay = input["DelaySeconds"].as_i64().unwrap_or(0);
    if !(0..=900).contains(&delay) {
        return Err((400, "InvalidParameterValue", "DelaySeconds".into()));
    }
    let mut state = lock(state);
    state.next_id += 1;
    let id = format!("00000000-0000-4000-8000-{:012}", state.next_id);
    let queue = state.queues.get_mut(&name).ok_or_else(|| no_queue(&name))?;
    let md5 = hex::encode(Md5::digest(body.as_bytes()));
    queue.messages.push(Stored {
        id: id.clone(),
        body: body.to_string(),
        md5: md5.clone(),
        visible_at: Instant::now() + Duration::from_secs(delay as u64),
        receive_count: 0,
        receipt: None,
    });
    Ok(json!({ "MessageId": id, "MD5OfMessageBody": md5 }))
}

async fn receive_message(state: &Shared, input: &Value) -> Answer {
    let name = queue_name(input)?;
    let max = input["MaxNumberOfMessages"].as_u64().unwrap_or(1);
    if !(1..=10).contains(&max) {
        return Err((400, "InvalidParameterValue", "MaxNumberOfMessages".into()));
    }
    let wait = Duration::from_secs(input["WaitTimeSeconds"].as_u64().unwrap_or(0).min(20));
    let visibility = input["VisibilityTimeout"].as_u64().map(Duration::from_secs);
    let until = Instant::now() + wait;
    loop {
        let taken = take_due(state, &name, max as usize, visibility)?;
        if !taken.is_empty() || Instant::now() >= until {
            return Ok(json!({ "Messages": taken }));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Up to `max` due messages, now in flight; those received more often than
/// the redrive policy allows go to the dead-letter queue instead.
fn take_due(
    state: &Shared,
    name: &str,
    max: usize,
    visibility: Option<Duration>,
) -> Result<Vec<Value>, (u16, &'static str, String)> {
    let mut state = lock(state);
    state.next_id += 1;
    let batch = state.next_id;
    let queue = state.queues.get_mut(name).ok_or_else(|| no_queue(name))?;
    let now = Instant::now();
    let visibility = visibility.unwrap_or(queue.visibility);
    let mut taken = Vec::new();
    let mut dead = Vec::new();
    let mut index = 0;
    while index < queue.messages.len() && taken.len() < max {
        if queue.messages[index].visible_at > now {
            index += 1;
            continue;
        }
        if let Some((target, limit)) = &queue.redrive {
            if queue.messages[index].receive_count >= *limit {
                let mut moved = queue.messages.remove(index);
                moved.receipt = None;
                moved.receive_count = 0;
                dead.push((target.clone(), moved));
                continue;
            }
        }
        let message = &mut queue.messages[index];
        message.receive_count += 1;
        message.visible_at = now + visibility;
        let receipt = format!("{}#{batch}", message.id);
        message.receipt = Some(receipt.clone());
        taken.push(json!({
            "MessageId": message.id,
            "ReceiptHandle": receipt,
            "MD5OfBody": message.md5,
            "Body": message.body,
            "Attributes": { "ApproximateReceiveCount": message.receive_count.to_string() },
        }));
        index += 1;
    }
    for (target, message) in dead {
        if let Some(queue) = state.queues.get_mut(&target) {
            queue.messages.push(message);
        }
    }
    Ok(taken)
}

fn delete_message(state: &Shared, input: &Value) -> Answer {
    let name = queue_name(input)?;
    let receipt = input["ReceiptHandle"]
        .as_str()
        .filter(|r| !r.is_empty())
        .ok_or((400, "ReceiptHandleIsInvalid", "ReceiptHandle".to_string()))?;
    let mut state = lock(state);
    let queue = state.queues.get_mut(&name).ok_or_else(|| no_queue(&name))?;
    // A stale receipt of a message already gone succeeds, as in SQS.
    queue
        .messages
        .retain(|m| m.receipt.as_deref() != Some(receipt));
    Ok(json!({}))
}
