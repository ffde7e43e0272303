//! The backlog benchmark (`bridge-benches --backlog`, issue "Delivery at
//! scale", its "Measure" section): Kefu is down while thousands of Slack
//! messages arrive, then it recovers, and we time how the outbox drains;
//! then the same with Slack down while agents answer ([`Side`]).
//!
//! The bridge runs as AWS runs it: the release binary of the function that
//! receives and drains that direction under the Lambda Runtime API emulator, several instances answering API Gateway
//! events, up to [`WAKEUP_CONCURRENCY`] instances taking the SQS wake-ups
//! from the real (local) queue its `RETRY_QUEUE_URL` names — received,
//! handed over as SQS events and deleted the way Lambda's event source does,
//! with the template's batch size, visibility timeout and redrive to a
//! dead-letter queue — and one instance taking a Scheduled Event every
//! minute, like EventBridge. DynamoDB Local behind the counting proxy, the
//! fakes answering at a realistic speed.
//!
//! This module also owns the "## Backlog" section of BENCHMARKS.md: it
//! writes it, and finds it again so the full report keeps it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use bridge_tests::app::{event_callback, local_env, user_message};
use bridge_tests::callback_kit::agent_message;
use bridge_tests::dynamo_proxy::{CountingProxy, Tally};
use bridge_tests::fake_server::Fault;
use bridge_tests::fake_sqs::FakeSqs;
use bridge_tests::local_sqs;
use bridge_tests::runtime_emulator::{apigw_event, LambdaProcess, Outcome};
use bridge_tests::TestApp;
use kefu_bridge::clock::now_epoch_secs;
use kefu_bridge::store::Direction;
use serde_json::{json, Value};

use crate::fixtures::{self, TEAM};
use crate::machine::utc;
use crate::scenarios::signed_slack_event;
use crate::stats::{millis, Latencies};

/// The section's heading in BENCHMARKS.md.
pub const HEADING: &str = "## Backlog";

/// How fast the fakes answer a healthy call: an Easemob message send and a
/// Slack `chat.postMessage`, as measured from a Lambda region.
pub const EASEMOB_SEND: Duration = Duration::from_millis(80);
pub const SLACK_POST: Duration = Duration::from_millis(60);
/// template.yaml `RetryMaximumConcurrency` (its default): instances taking
/// wake-ups at once.
pub const WAKEUP_CONCURRENCY: usize = 5;
/// template.yaml: the event source's `BatchSize`, the queue's
/// `VisibilityTimeout` and its redrive `maxReceiveCount`.
const BATCH_SIZE: i32 = 10;
const VISIBILITY_SECS: i32 = 60;
const MAX_RECEIVES: u32 = 5;
/// How long one poll of the event source waits for a message (Lambda long
/// polls too; a short wait keeps the benchmark's stop prompt).
const POLL_WAIT_SECS: i32 = 1;
/// After the local SQS failed to answer, poll again this much later.
const SQS_ERROR_PAUSE: Duration = Duration::from_millis(200);
/// template.yaml: `rate(1 minute)`.
const SCHEDULE_EVERY: Duration = Duration::from_secs(60);
/// Instances answering Slack's requests during the outage.
const ARRIVAL_INSTANCES: usize = 4;
/// How often the benchmark looks at what the fake Kefu received.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// Targets from the issue.
pub const DRAIN_MAX: Duration = Duration::from_secs(120);
pub const FIRST_RETRY_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct BacklogOptions {
    pub messages: usize,
    pub conversations: usize,
    /// Give up waiting for the drain after this long.
    pub limit: Duration,
}

impl Default for BacklogOptions {
    fn default() -> Self {
        Self {
            messages: 5_000,
            conversations: 500,
            limit: Duration::from_secs(20 * 60),
        }
    }
}

/// The side that is down: Kefu while customers write (drained by
/// `slack-events`), or Slack while agents answer (drained by
/// `easemob-callback`). Everything else about the run is the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Side {
    #[default]
    Kefu,
    Slack,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Kefu, Side::Slack];

    pub fn name(self) -> &'static str {
        match self {
            Side::Kefu => "Kefu",
            Side::Slack => "Slack",
        }
    }

    fn direction(self) -> Direction {
        match self {
            Side::Kefu => Direction::ToKefu,
            Side::Slack => Direction::ToSlack,
        }
    }

    /// The function that receives the messages and drains them.
    fn binary(self) -> &'static str {
        match self {
            Side::Kefu => "slack-events",
            Side::Slack => "easemob-callback",
        }
    }

    /// Who writes the messages, and the fake's route that takes them.
    fn senders(self) -> &'static str {
        match self {
            Side::Kefu => "Slack messages",
            Side::Slack => "agent replies (Easemob callbacks)",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Side::Kefu => "messages",
            Side::Slack => "chat.postMessage",
        }
    }

    fn speed(self) -> Duration {
        match self {
            Side::Kefu => EASEMOB_SEND,
            Side::Slack => SLACK_POST,
        }
    }

    /// The fake of this side answers `fault` from now on.
    fn set(self, app: &TestApp, fault: Fault) {
        match self {
            Side::Kefu => app.easemob.fail_always(self.route(), fault),
            Side::Slack => app.slack.fail_always(self.route(), fault),
        }
    }

    fn fail_once(self, app: &TestApp, fault: Fault) {
        match self {
            Side::Kefu => app.easemob.fail_once(self.route(), fault),
            Side::Slack => app.slack.fail_once(self.route(), fault),
        }
    }

    /// Healthy again, at a realistic speed.
    fn heal(self, app: &TestApp) {
        self.set(app, Fault::Slow(self.speed()));
    }

    /// Message `index` of `conversation`, as API Gateway hands it over.
    fn event(self, conversation: usize, index: usize) -> Value {
        match self {
            Side::Kefu => message_event(conversation, index),
            Side::Slack => reply_event(conversation, index),
        }
    }

    /// Texts the fake of this side accepted, from the `from`-th on.
    fn accepted_since(self, app: &TestApp, from: usize) -> Vec<String> {
        match self {
            Side::Kefu => {
                let state = app.easemob.state.lock().unwrap_or_else(|p| p.into_inner());
                state
                    .messages
                    .get(from..)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|m| m["msg"]["msg"].as_str().map(str::to_string))
                    .collect()
            }
            Side::Slack => app
                .slack
                .posts()
                .get(from..)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p["text"].as_str().map(str::to_string))
                .collect(),
        }
    }

    fn accepted(self, app: &TestApp) -> usize {
        match self {
            Side::Kefu => app.easemob.messages().len(),
            Side::Slack => app.slack.posts().len(),
        }
    }
}

/// One invocation of a draining instance.
#[derive(Debug, Clone)]
struct Invocation {
    started: Instant,
    took: Duration,
    /// SQS records handed over (0 for a Scheduled Event).
    records: usize,
    /// Records the function listed in `batchItemFailures`.
    failed: usize,
    /// A Scheduled Event's summary: messages it delivered.
    scheduled_delivered: Option<u64>,
}

/// One message the fake Kefu accepted, when the benchmark saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    conversation: usize,
    index: usize,
}

/// What the `retry_wakeup` log lines of the wake-up instances say.
#[derive(Debug, Clone, Default)]
pub struct WakeUpLog {
    pub records: u64,
    pub delivered_something: u64,
    pub not_due: u64,
    pub leased_elsewhere: u64,
    pub failed_again: u64,
    pub unfinished: u64,
    pub nothing_waiting: u64,
    /// From the `outbox_brought_forward` lines: recoveries, the
    /// conversations they brought forward, how many stopped before the end
    /// of the outbox, and the longest one.
    pub recoveries: u64,
    pub brought_forward: u64,
    pub recoveries_incomplete: u64,
    pub longest_recovery_ms: u64,
}

/// Everything measured.
#[derive(Debug, Clone, Default)]
pub struct BacklogResult {
    pub side: Side,
    pub date: String,
    pub messages: usize,
    pub conversations: usize,
    pub arrival: Duration,
    pub arrival_latency: Latencies,
    pub arrival_dynamo_per_message: f64,
    /// Queued in the outbox at recovery.
    pub waiting_at_recovery: usize,
    /// Per conversation at recovery: seconds until its first message may be
    /// tried again, and the failed attempts it had.
    pub head_wait_secs: Vec<i64>,
    pub head_attempts: Vec<u32>,
    /// Wake-ups on the queue at recovery (visible, delayed, in flight).
    pub queue_at_recovery: (u64, u64, u64),
    /// Recovery → last delivery; `None` when the limit passed first.
    pub drain: Option<Duration>,
    pub delivered: usize,
    pub first_retry: Option<Duration>,
    pub peak_rss_kib: Option<u64>,
    pub out_of_order: usize,
    pub duplicates: usize,
    pub missing: usize,
    pub dead_letters: usize,
    pub wakeup_dead_letters: u64,
    pub drain_dynamo: Tally,
    /// After recovery: when each conversation's first and last message
    /// arrived at the fake Kefu.
    pub first_delivery: Vec<Duration>,
    pub conversation_span: Vec<Duration>,
    /// Deliveries per 10 s after recovery.
    pub timeline: Vec<usize>,
    pub wakeup_invocations: usize,
    pub wakeup_records: usize,
    pub wakeup_failed_records: usize,
    pub wakeup_busy: Duration,
    pub wakeup_log: WakeUpLog,
    pub scheduled_runs: usize,
    pub scheduled_delivered: u64,
    /// Receives or deletes the local SQS did not answer in time (the
    /// event source tried again).
    pub sqs_errors: u64,
    /// Which local SQS served the run.
    pub sqs: String,
}

/// The stage: DynamoDB Local behind the counting proxy, the fakes, the
/// retry queue and its dead-letter queue, and the functions' environment.
struct Stage {
    app: TestApp,
    proxy: CountingProxy,
    env: Vec<(String, String)>,
    queue_url: String,
    dead_letter_url: String,
}

impl Stage {
    async fn start(conversations: usize) -> Result<Self, String> {
        let app = TestApp::start().await;
        let proxy = CountingProxy::start(&app.dynamodb_endpoint)
            .await
            .map_err(|e| format!("counting proxy: {e}"))?;
        app.install(TEAM, fixtures::SCOPES).await;
        // One more conversation than the backlog's: the first-retry probe.
        for c in 0..=conversations {
            let name = format!("visitor{c}");
            app.add_user(&user(c), &name, &format!("Visitor {c}"));
        }
        let (queue_url, dead_letter_url) = retry_queue().await?;
        let mut env = local_env(
            &app.table,
            &app.slack.api_base_url(),
            &app.easemob.base_url(),
        );
        env.extend([
            ("AWS_ENDPOINT_URL_DYNAMODB".to_string(), proxy.url()),
            ("AWS_ENDPOINT_URL_SQS".to_string(), local_sqs::endpoint()),
            ("RETRY_QUEUE_URL".to_string(), queue_url.clone()),
        ]);
        app.easemob
            .fail_always("messages", Fault::Slow(EASEMOB_SEND));
        app.slack
            .fail_always("chat.postMessage", Fault::Slow(SLACK_POST));
        Ok(Self {
            app,
            proxy,
            env,
            queue_url,
            dead_letter_url,
        })
    }

    async fn spawn(&self, side: Side, binary: &Path) -> Arc<LambdaProcess> {
        Arc::new(LambdaProcess::spawn(binary, side.binary(), &self.env).await)
    }
}

/// The SQS the run uses, as the report names it: the one
/// `AWS_ENDPOINT_URL_SQS` names, else the benchmark's own (moto answers
/// ~20 requests/s at 90 % of a core here and slows as the queue grows, so
/// a large backlog would measure moto rather than the bridge).
async fn choose_sqs() -> Result<String, String> {
    static CHOSEN: OnceLock<String> = OnceLock::new();
    if let Some(chosen) = CHOSEN.get() {
        return Ok(chosen.clone());
    }
    let chosen = match std::env::var("AWS_ENDPOINT_URL_SQS") {
        Ok(url) if !url.is_empty() => format!("the SQS at {url}"),
        _ => {
            let fake = FakeSqs::start().await?;
            if local_sqs::use_endpoint(&fake.endpoint) {
                "the benchmark's own SQS, `tests/src/fake_sqs.rs`".into()
            } else {
                format!("the SQS at {}", local_sqs::endpoint())
            }
        }
    };
    Ok(CHOSEN.get_or_init(|| chosen).clone())
}

/// The retry queue as template.yaml makes it: a standard queue with a
/// 60 s visibility timeout whose messages go to a dead-letter queue after
/// 5 receives. Returns both URLs.
async fn retry_queue() -> Result<(String, String), String> {
    let suffix = format!("{}-{}", std::process::id(), now_epoch_secs());
    let dead_letter_url = local_sqs::create_named_queue(&format!("backlog-dlq-{suffix}")).await;
    let client = local_sqs::client();
    let arn = client
        .get_queue_attributes()
        .queue_url(&dead_letter_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("dead-letter queue arn: {e}"))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or("dead-letter queue without an arn")?;
    let queue_url = client
        .create_queue()
        .queue_name(format!("backlog-retry-{suffix}"))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            VISIBILITY_SECS.to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({ "deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVES }).to_string(),
        )
        .send()
        .await
        .map_err(|e| format!("retry queue: {e}"))?
        .queue_url()
        .ok_or("retry queue without a url")?
        .to_string();
    Ok((queue_url, dead_letter_url))
}

fn user(conversation: usize) -> String {
    format!("U0BL{conversation:05}")
}

fn channel(conversation: usize) -> String {
    format!("D0BL{conversation:05}")
}

fn text(conversation: usize, index: usize) -> String {
    format!("backlog c{conversation} m{index}")
}

/// `(conversation, index)` of a message [`text`] wrote.
fn parse_text(text: &str) -> Option<(usize, usize)> {
    let rest = text.strip_prefix("backlog c")?;
    let (conversation, index) = rest.split_once(" m")?;
    Some((conversation.parse().ok()?, index.parse().ok()?))
}

/// Message `index` of `conversation`, as API Gateway hands it over.
fn message_event(conversation: usize, index: usize) -> Value {
    let event_id = format!("Ev0BL{conversation:05}X{index:05}");
    let ts = format!("{}.{:06}", 1_795_000_000 + conversation, index + 1);
    let event = user_message(
        &channel(conversation),
        "im",
        &user(conversation),
        &text(conversation, index),
        &ts,
    );
    signed_slack_event(&event_callback(TEAM, &event_id, event).to_string())
}

/// Agent reply `index` to `conversation`, as API Gateway hands Easemob's
/// callback to `easemob-callback`.
fn reply_event(conversation: usize, index: usize) -> Value {
    let visitor = format!("{TEAM}_{}_{}", user(conversation), channel(conversation));
    // Easemob message ids are long decimal numbers.
    let msg_id = format!(
        "{}",
        1_300_000_000_000_000_000u64 + (conversation * 100_000 + index) as u64
    );
    let callback = agent_message(
        &visitor.to_lowercase(),
        &msg_id,
        json!([{ "type": "txt", "msg": text(conversation, index) }]),
        fixtures::agent_ext(),
    );
    apigw_event(
        "POST",
        "/easemob/callback",
        "",
        &[("content-type", "application/json;charset=UTF-8")],
        Some(&callback.to_string()),
        false,
    )
}

async fn status_of(process: &LambdaProcess, event: Value) -> Result<i64, String> {
    match process.invoke(event).await? {
        Outcome::Response(value) => Ok(value["statusCode"].as_i64().unwrap_or(0)),
        Outcome::Error(error) => Err(format!("invocation error: {error}")),
    }
}

/// Lambda's SQS event source for one instance: poll, hand the batch over,
/// delete what the function did not list, until `stop`.
async fn event_source(
    process: Arc<LambdaProcess>,
    queue_url: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Invocation>>>,
    sqs_errors: Arc<AtomicU64>,
) {
    while !stop.load(Ordering::Relaxed) {
        let messages =
            match local_sqs::receive_batch(&queue_url, POLL_WAIT_SECS, VISIBILITY_SECS).await {
                Ok(messages) => messages,
                // A busy local SQS: poll again, as Lambda's poller does.
                Err(_) => {
                    sqs_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(SQS_ERROR_PAUSE).await;
                    continue;
                }
            };
        if messages.is_empty() {
            continue;
        }
        let messages = &messages[..messages.len().min(BATCH_SIZE as usize)];
        let started = Instant::now();
        let failed = match process.invoke(local_sqs::sqs_event(messages)).await {
            Ok(Outcome::Response(answer)) => local_sqs::failed_records(&answer),
            // An invocation error: Lambda sees the whole batch again.
            _ => messages
                .iter()
                .filter_map(|m| m.message_id().map(str::to_string))
                .collect(),
        };
        let took = started.elapsed();
        // A record not deleted comes back after its visibility timeout.
        if local_sqs::delete_settled(&queue_url, messages, &failed)
            .await
            .is_err()
        {
            sqs_errors.fetch_add(1, Ordering::Relaxed);
        }
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Invocation {
                started,
                took,
                records: messages.len(),
                failed: failed.len(),
                scheduled_delivered: None,
            });
    }
}

/// EventBridge: a Scheduled Event every minute, the first a minute after
/// `start`, until `stop`.
async fn schedule(
    process: Arc<LambdaProcess>,
    start: Instant,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Invocation>>>,
) {
    let mut ticks = tokio::time::interval_at((start + SCHEDULE_EVERY).into(), SCHEDULE_EVERY);
    loop {
        ticks.tick().await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let event = json!({
            "version": "0", "id": "backlog", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "000000000000",
            "time": rfc3339_now(), "region": "us-east-1",
            "resources": [], "detail": {}
        });
        let started = Instant::now();
        let answer = process.invoke(event).await;
        let delivered = match &answer {
            Ok(Outcome::Response(summary)) => summary["delivered"].as_u64(),
            _ => None,
        };
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Invocation {
                started,
                took: started.elapsed(),
                records: 0,
                failed: 0,
                scheduled_delivered: Some(delivered.unwrap_or(0)),
            });
    }
}

/// Runs the scenario with the function binaries in `bins`.
pub async fn run(
    options: &BacklogOptions,
    side: Side,
    bins: &Path,
) -> Result<BacklogResult, String> {
    let conversations = options.conversations.max(1);
    let per_conversation = options.messages.div_ceil(conversations).max(1);
    let messages = per_conversation * conversations;
    let binary = bins.join(side.binary());
    let sqs = choose_sqs().await?;
    let stage = Stage::start(conversations).await?;
    let mut result = BacklogResult {
        side,
        sqs,
        date: utc(std::time::SystemTime::now()),
        messages,
        conversations,
        ..BacklogResult::default()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let invocations: Arc<Mutex<Vec<Invocation>>> = Arc::default();
    let sqs_errors: Arc<AtomicU64> = Arc::default();
    let mut drainers = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..WAKEUP_CONCURRENCY {
        let process = stage.spawn(side, &binary).await;
        drainers.push(process.clone());
        tasks.push(tokio::spawn(event_source(
            process,
            stage.queue_url.clone(),
            stop.clone(),
            invocations.clone(),
            sqs_errors.clone(),
        )));
    }
    let mut arrivals = Vec::new();
    for _ in 0..ARRIVAL_INSTANCES {
        arrivals.push(stage.spawn(side, &binary).await);
    }

    // A single failure with Kefu healthy: the wake-up, not the schedule
    // (not started yet), brings the retry.
    eprintln!("backlog: first retry after a single failure…");
    result.first_retry = first_retry(&stage, side, &arrivals[0], conversations).await?;
    let seen_before = side.accepted(&stage.app);

    // The outage: every message goes to the outbox.
    eprintln!(
        "backlog: {} down, {messages} messages over {conversations} conversations…",
        side.name()
    );
    side.set(&stage.app, Fault::Status(503));
    let scheduled = stage.spawn(side, &binary).await;
    drainers.push(scheduled.clone());
    let outage_started = Instant::now();
    tasks.push(tokio::spawn(schedule(
        scheduled,
        outage_started,
        stop.clone(),
        invocations.clone(),
    )));
    let before_arrival = stage.proxy.tally();
    let mut senders = Vec::new();
    for (slot, process) in arrivals.iter().enumerate() {
        let process = process.clone();
        senders.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for index in 0..per_conversation {
                for conversation in (slot..conversations).step_by(ARRIVAL_INSTANCES) {
                    let started = Instant::now();
                    let status = status_of(&process, side.event(conversation, index)).await?;
                    if status != 200 {
                        return Err(format!(
                            "message {index} of conversation {conversation} answered {status}"
                        ));
                    }
                    latencies.push(started.elapsed());
                }
            }
            Ok::<_, String>(latencies)
        }));
    }
    for sender in senders {
        for latency in sender.await.map_err(|e| format!("arrival: {e}"))?? {
            result.arrival_latency.push(latency);
        }
    }
    result.arrival = outage_started.elapsed();
    result.arrival_dynamo_per_message =
        stage.proxy.tally().since(&before_arrival).calls() as f64 / messages as f64;
    if side.accepted(&stage.app) != seen_before {
        return Err(format!(
            "{} accepted messages while it was down",
            side.name()
        ));
    }

    // Recovery.
    let outbox = stage
        .app
        .bridge
        .store
        .outbox(side.direction())
        .await
        .map_err(|e| format!("reading the outbox: {e}"))?;
    side.heal(&stage.app);
    let recovered = Instant::now();
    let recovered_at = now_epoch_secs();
    eprintln!(
        "backlog: {} back after {:.1} s; {} messages wait; draining…",
        side.name(),
        result.arrival.as_secs_f64(),
        outbox.len()
    );
    let before_drain = stage.proxy.tally();
    let log_marks: Vec<usize> = drainers.iter().map(|p| p.stdout_lines().len()).collect();
    result.waiting_at_recovery = outbox.len();
    let mut heads: HashMap<&str, (u64, i64, u32)> = HashMap::new();
    for item in &outbox {
        let head = heads.entry(item.visitor.as_str()).or_insert((
            item.seq,
            item.next_attempt_at,
            item.attempts,
        ));
        if item.seq < head.0 {
            *head = (item.seq, item.next_attempt_at, item.attempts);
        }
    }
    for (_, next_attempt_at, attempts) in heads.into_values() {
        result
            .head_wait_secs
            .push((next_attempt_at - recovered_at).max(0));
        result.head_attempts.push(attempts);
    }
    result.queue_at_recovery = local_sqs::counts(&stage.queue_url).await;

    // Watch the fake Kefu until every message arrived.
    let mut seen: Vec<Seen> = Vec::new();
    let mut read = seen_before;
    let mut last_delivery = None;
    let expected: HashSet<(usize, usize)> = (0..conversations)
        .flat_map(|c| (0..per_conversation).map(move |i| (c, i)))
        .collect();
    let mut delivered: HashSet<(usize, usize)> = HashSet::new();
    let mut progress = Instant::now();
    while delivered.len() < expected.len() && recovered.elapsed() < options.limit {
        tokio::time::sleep(WATCH_EVERY).await;
        let new = side.accepted_since(&stage.app, read);
        read += new.len();
        let at = Instant::now();
        for message in new {
            let Some((conversation, index)) = parse_text(&message) else {
                continue;
            };
            seen.push(Seen {
                at,
                conversation,
                index,
            });
            if expected.contains(&(conversation, index)) && delivered.insert((conversation, index))
            {
                last_delivery = Some(at);
            }
        }
        if progress.elapsed() >= Duration::from_secs(10) {
            progress = Instant::now();
            eprintln!(
                "backlog: {:.0} s after recovery, {} of {} delivered",
                recovered.elapsed().as_secs_f64(),
                delivered.len(),
                expected.len()
            );
        }
    }
    result.drain_dynamo = stage.proxy.tally().since(&before_drain);
    result.delivered = delivered.len();
    result.drain = last_delivery
        .filter(|_| delivered.len() == expected.len())
        .map(|at| at - recovered);
    // A moment for a late duplicate to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for message in side.accepted_since(&stage.app, read) {
        if let Some((conversation, index)) = parse_text(&message) {
            seen.push(Seen {
                at: Instant::now(),
                conversation,
                index,
            });
        }
    }

    stop.store(true, Ordering::Relaxed);
    result.sqs_errors = sqs_errors.load(Ordering::Relaxed);
    result.peak_rss_kib = drainers.iter().filter_map(|p| p.peak_rss_kib()).max();
    result.wakeup_log = wakeup_log(&drainers, &log_marks);
    for task in tasks {
        task.abort();
    }
    let invocations = invocations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let drain_end = last_delivery.unwrap_or_else(Instant::now);
    for invocation in invocations
        .iter()
        .filter(|i| i.started >= recovered && i.started <= drain_end)
    {
        match invocation.scheduled_delivered {
            Some(delivered) => {
                result.scheduled_runs += 1;
                result.scheduled_delivered += delivered;
            }
            None => {
                result.wakeup_invocations += 1;
                result.wakeup_records += invocation.records;
                result.wakeup_failed_records += invocation.failed;
                result.wakeup_busy += invocation.took;
            }
        }
    }
    check_order(&mut result, &seen, &expected);
    timings(&mut result, &seen, recovered);
    result.dead_letters = stage
        .app
        .bridge
        .store
        .dead_letters()
        .await
        .map(|d| d.len())
        .unwrap_or(0);
    let (visible, delayed, in_flight) = local_sqs::counts(&stage.dead_letter_url).await;
    result.wakeup_dead_letters = visible + delayed + in_flight;
    Ok(result)
}

/// One message in a conversation of its own, one 503, then the side
/// healthy: from the answer to the sender (the message is in the outbox) to
/// its arrival at the fake.
async fn first_retry(
    stage: &Stage,
    side: Side,
    process: &LambdaProcess,
    conversation: usize,
) -> Result<Option<Duration>, String> {
    side.fail_once(&stage.app, Fault::Status(503));
    let status = status_of(process, side.event(conversation, 0)).await?;
    let failed_at = Instant::now();
    if status != 200 {
        return Err(format!("first-retry message answered {status}"));
    }
    let waiting = stage.app.waiting(side.direction()).await.len();
    if waiting != 1 {
        return Err(format!("first-retry message: {waiting} waiting, not 1"));
    }
    let wanted = text(conversation, 0);
    while failed_at.elapsed() < SCHEDULE_EVERY {
        tokio::time::sleep(WATCH_EVERY).await;
        if side.accepted_since(&stage.app, 0).contains(&wanted) {
            return Ok(Some(failed_at.elapsed()));
        }
    }
    Ok(None)
}

/// Sums the `retry_wakeup` log lines each instance wrote after `marks`.
fn wakeup_log(processes: &[Arc<LambdaProcess>], marks: &[usize]) -> WakeUpLog {
    let mut log = WakeUpLog::default();
    for (process, mark) in processes.iter().zip(marks) {
        for line in process.stdout_lines().iter().skip(*mark) {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let count = |field: &str| entry[field].as_u64().unwrap_or(0);
            if entry["message"] == "outbox_brought_forward" {
                log.recoveries += 1;
                log.brought_forward += count("conversations");
                log.recoveries_incomplete += u64::from(entry["complete"] != true);
                log.longest_recovery_ms = log.longest_recovery_ms.max(count("took_ms"));
                continue;
            }
            if entry["message"] != "retry_wakeup" {
                continue;
            }
            log.records += 1;
            if count("delivered") > 0 {
                log.delivered_something += 1;
            } else if count("retried_later") > 0 {
                log.failed_again += 1;
            } else if count("not_due") > 0 {
                log.not_due += 1;
            } else if count("leased_elsewhere") > 0 {
                log.leased_elsewhere += 1;
            } else if entry["unfinished"] != true {
                log.nothing_waiting += 1;
            }
            if entry["unfinished"] == true {
                log.unfinished += 1;
            }
        }
    }
    log
}

/// Out of order: a message that arrived after a later one of its
/// conversation. Duplicates: arrivals beyond the first of each message.
fn check_order(result: &mut BacklogResult, seen: &[Seen], expected: &HashSet<(usize, usize)>) {
    let mut highest: HashMap<usize, usize> = HashMap::new();
    let mut arrived: HashSet<(usize, usize)> = HashSet::new();
    for s in seen {
        if !expected.contains(&(s.conversation, s.index)) {
            continue;
        }
        if !arrived.insert((s.conversation, s.index)) {
            result.duplicates += 1;
        }
        let top = highest.entry(s.conversation).or_insert(s.index);
        if s.index < *top {
            result.out_of_order += 1;
        }
        *top = (*top).max(s.index);
    }
    result.missing = expected.len() - arrived.len();
}

fn timings(result: &mut BacklogResult, seen: &[Seen], recovered: Instant) {
    let mut spans: BTreeMap<usize, (Instant, Instant)> = BTreeMap::new();
    for s in seen {
        let span = spans.entry(s.conversation).or_insert((s.at, s.at));
        span.1 = s.at;
        let bucket = (s.at - recovered).as_secs() as usize / 10;
        if result.timeline.len() <= bucket {
            result.timeline.resize(bucket + 1, 0);
        }
        result.timeline[bucket] += 1;
    }
    for (first, last) in spans.into_values() {
        result.first_delivery.push(first - recovered);
        result.conversation_span.push(last - first);
    }
}

/// Now as EventBridge writes an event's `time`.
fn rfc3339_now() -> String {
    let (y, mo, d, h, mi, s) = kefu_bridge::clock::utc_parts(now_epoch_secs());
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

fn percentile_secs(values: &[i64], p: f64) -> i64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn spread(values: &[Duration]) -> String {
    let mut latencies = Latencies::default();
    for value in values {
        latencies.push(*value);
    }
    format!(
        "{} / {} / {}",
        secs(latencies.median()),
        secs(latencies.percentile(90.0)),
        secs(latencies.percentile(100.0))
    )
}

/// The "## Backlog" section of BENCHMARKS.md: one part per side that was
/// down.
pub fn markdown(results: &[BacklogResult]) -> String {
    let parts: Vec<String> = results.iter().map(BacklogResult::markdown).collect();
    format!("{HEADING}\n\n{}", parts.join("\n"))
}

impl BacklogResult {
    /// This run's part of the "## Backlog" section.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let w = &mut md;
        let per_conversation = self.messages / self.conversations.max(1);
        let side = self.side.name();
        let _ = writeln!(w, "### {side} down, then back\n");
        let _ = writeln!(
            w,
            "Written by `scripts/bench --backlog` on {}. {side} down (its fake answers 503 to \
             every `{}`) while {} {} arrive across {} conversations ({} each, in order per \
             conversation) through {} `{}` instances; then {side} recovers. Release binaries \
             under the Lambda Runtime API emulator: {} instances take the SQS wake-ups from \
             the local queue \
             `RETRY_QUEUE_URL` names ({}; batches of {}, visibility {} s, dead-letter \
             queue after {} receives, as template.yaml), one takes a Scheduled Event every \
             minute. Healthy fakes answer an Easemob send in {} ms and a Slack post in {} ms; \
             DynamoDB Local behind the counting proxy.\n",
            self.date,
            self.side.route(),
            self.messages,
            self.side.senders(),
            self.conversations,
            per_conversation,
            ARRIVAL_INSTANCES,
            self.side.binary(),
            WAKEUP_CONCURRENCY,
            self.sqs,
            BATCH_SIZE,
            VISIBILITY_SECS,
            MAX_RECEIVES,
            EASEMOB_SEND.as_millis(),
            SLACK_POST.as_millis(),
        );
        let _ = writeln!(w, "| | target | measured | |\n|---|--:|--:|---|");
        let verdict = |met: bool| if met { "met" } else { "**missed**" };
        let drain = match self.drain {
            Some(d) => secs(d),
            None => format!(
                "not done: {} of {} delivered",
                self.delivered, self.messages
            ),
        };
        let _ = writeln!(
            w,
            "| recovery → last delivery | ≤ {} | {} | {} |",
            secs(DRAIN_MAX),
            drain,
            verdict(self.drain.is_some_and(|d| d <= DRAIN_MAX))
        );
        let _ = writeln!(
            w,
            "| first retry after a single failure (by the wake-up) | ≤ {} | {} | {} |",
            secs(FIRST_RETRY_MAX),
            self.first_retry.map_or("not within a minute".into(), secs),
            verdict(self.first_retry.is_some_and(|d| d <= FIRST_RETRY_MAX))
        );
        let _ = writeln!(
            w,
            "| messages out of order per conversation | 0 | {} | {} |",
            self.out_of_order,
            verdict(self.out_of_order == 0)
        );
        let _ = writeln!(
            w,
            "| duplicates | 0 | {} | {} |",
            self.duplicates,
            verdict(self.duplicates == 0)
        );
        let _ = writeln!(
            w,
            "| lost (never delivered, no dead letter) | 0 | {} | {} |",
            self.missing.saturating_sub(self.dead_letters),
            verdict(self.missing == 0)
        );
        let _ = writeln!(
            w,
            "| peak RSS of a draining instance (`VmHWM`) | ≤ 30 MB | {} | {} |",
            kib(self.peak_rss_kib),
            verdict(self.peak_rss_kib.is_some_and(|k| k * 1024 <= 30_000_000))
        );
        let drained = self.delivered.max(1) as f64;
        let _ = writeln!(
            w,
            "| DynamoDB calls per delivered message, during the drain | — | {:.2} ({}) | |",
            self.drain_dynamo.calls() as f64 / drained,
            by_operation(&self.drain_dynamo, drained),
        );
        if let Some(d) = self.drain {
            let _ = writeln!(
                w,
                "| drain rate | — | {:.0} messages/s | |",
                self.delivered as f64 / d.as_secs_f64().max(0.001)
            );
        }
        let _ = writeln!(
            w,
            "| dead letters / wake-ups in the SQS dead-letter queue | 0 | {} / {} | |\n",
            self.dead_letters, self.wakeup_dead_letters
        );

        let _ = writeln!(w, "#### Where the drain's time goes\n");
        let drain_secs = self.drain.map_or(0.0, |d| d.as_secs_f64());
        let _ = writeln!(
            w,
            "- **The outage.** {} messages arrived in {} (p50 {} / p99 {} per request, \
             {:.2} DynamoDB calls each). At recovery {} messages waited in the outbox and the \
             queue held {} wake-ups due, {} delayed and {} in flight.",
            self.messages,
            secs(self.arrival),
            millis(self.arrival_latency.median()),
            millis(self.arrival_latency.percentile(99.0)),
            self.arrival_dynamo_per_message,
            self.waiting_at_recovery,
            self.queue_at_recovery.0,
            self.queue_at_recovery.1,
            self.queue_at_recovery.2,
        );
        let mut attempts: BTreeMap<u32, usize> = BTreeMap::new();
        for a in &self.head_attempts {
            *attempts.entry(*a).or_default() += 1;
        }
        let attempts: Vec<String> = attempts
            .iter()
            .map(|(a, n)| format!("{n} after {a}"))
            .collect();
        let _ = writeln!(
            w,
            "- **Backoff and recovery.** Each conversation's first message had failed \
             (conversations: {}) and was due again p50 {} s / p90 {} s / max {} s after \
             recovery by its backoff. The first retry that went through brought the others \
             forward: {} recovery sweep(s) made {} conversations due at once ({} stopped \
             before the end of the outbox; the longest took {} ms).",
            attempts.join(", "),
            percentile_secs(&self.head_wait_secs, 50.0),
            percentile_secs(&self.head_wait_secs, 90.0),
            percentile_secs(&self.head_wait_secs, 100.0),
            self.wakeup_log.recoveries,
            self.wakeup_log.brought_forward,
            self.wakeup_log.recoveries_incomplete,
            self.wakeup_log.longest_recovery_ms,
        );
        let _ = writeln!(
            w,
            "- **Per conversation.** First message delivered after recovery (p50 / p90 / \
             max): {}; first → last message of a conversation: {} ({} messages strictly one \
             after another, {} ms each at the fake alone).",
            spread(&self.first_delivery),
            spread(&self.conversation_span),
            per_conversation,
            self.side.speed().as_millis(),
        );
        let _ = writeln!(
            w,
            "- **Instances.** {} wake-up invocations during the drain ({} records, {} \
             listed in `batchItemFailures`); the {} wake-up instances were busy {:.0}% of \
             the drain. Wake-up records by what they found: {} delivered something, {} \
             failed again, {} not due yet, {} leased by another drain, {} nothing waiting; \
             {} unfinished. \
             {} scheduled drains delivered {} messages. The local SQS failed to answer \
             {} receives or deletes over the whole run (polled again).",
            self.wakeup_invocations,
            self.wakeup_records,
            self.wakeup_failed_records,
            WAKEUP_CONCURRENCY,
            100.0 * self.wakeup_busy.as_secs_f64()
                / (WAKEUP_CONCURRENCY as f64 * drain_secs).max(0.001),
            self.wakeup_log.delivered_something,
            self.wakeup_log.failed_again,
            self.wakeup_log.not_due,
            self.wakeup_log.leased_elsewhere,
            self.wakeup_log.nothing_waiting,
            self.wakeup_log.unfinished,
            self.scheduled_runs,
            self.scheduled_delivered,
            self.sqs_errors,
        );
        let _ = writeln!(
            w,
            "- **DynamoDB.** During the drain DynamoDB Local answered {} calls in {} in all \
             (summed over concurrent calls).",
            self.drain_dynamo.calls(),
            secs(self.drain_dynamo.upstream()),
        );
        let timeline: Vec<String> = self
            .timeline
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{}–{} s: {n}", i * 10, i * 10 + 10))
            .collect();
        let _ = writeln!(
            w,
            "- **Deliveries per 10 s after recovery.** {}\n",
            timeline.join(" · ")
        );
        md
    }
}

fn kib(value: Option<u64>) -> String {
    value.map_or("—".into(), |k| {
        format!("{:.1} MB", k as f64 * 1024.0 / 1e6)
    })
}

fn by_operation(tally: &Tally, per: f64) -> String {
    tally
        .0
        .iter()
        .map(|(op, count)| format!("{op} {:.2}", count.calls as f64 / per))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The "## Backlog" section of a BENCHMARKS.md, heading included, up to
/// the next `## ` heading.
pub fn section(markdown: &str) -> Option<String> {
    let (start, end) = section_bounds(markdown)?;
    Some(markdown[start..end].to_string())
}

/// `markdown` with its "## Backlog" section replaced by `section` (or
/// `section` appended), the rest untouched.
pub fn with_section(markdown: &str, section: &str) -> String {
    let section = format!("{}\n", section.trim_end());
    match section_bounds(markdown) {
        Some((start, end)) => {
            let rest = &markdown[end..];
            let gap = if rest.is_empty() { "" } else { "\n" };
            format!("{}{section}{gap}{rest}", &markdown[..start])
        }
        None if markdown.trim().is_empty() => section,
        None => format!("{}\n\n{section}", markdown.trim_end()),
    }
}

/// Byte range of the section: from its heading line to the next `## `
/// heading (or the end).
fn section_bounds(markdown: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    let mut start = None;
    for line in markdown.split_inclusive('\n') {
        let heading = line.trim_end();
        match start {
            None if heading == HEADING => start = Some(offset),
            Some(begin) if heading.starts_with("## ") => return Some((begin, offset)),
            _ => {}
        }
        offset += line.len();
    }
    start.map(|begin| (begin, markdown.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# Benchmarks\n\n## Machine\n\nx\n\n## Backlog\n\nold\n\n## Targets\n\ny\n";

    #[test]
    fn the_section_is_found_up_to_the_next_heading() {
        assert_eq!(section(FILE).as_deref(), Some("## Backlog\n\nold\n\n"));
        assert_eq!(section("# Benchmarks\n\n## Machine\n"), None);
    }

    #[test]
    fn replacing_the_section_leaves_the_rest_alone() {
        let new = with_section(FILE, "## Backlog\n\nnew\n");
        assert_eq!(
            new,
            "# Benchmarks\n\n## Machine\n\nx\n\n## Backlog\n\nnew\n\n## Targets\n\ny\n"
        );
        // Idempotent: the same section again changes nothing.
        assert_eq!(with_section(&new, "## Backlog\n\nnew\n"), new);
    }

    #[test]
    fn a_file_without_the_section_gets_it_at_the_end() {
        let new = with_section("# Benchmarks\n\n## Machine\n\nx\n", "## Backlog\n\nnew\n");
        assert_eq!(
            new,
            "# Benchmarks\n\n## Machine\n\nx\n\n## Backlog\n\nnew\n"
        );
        assert_eq!(section(&new).as_deref(), Some("## Backlog\n\nnew\n"));
    }

    #[test]
    fn message_texts_name_their_place() {
        assert_eq!(parse_text(&text(417, 9)), Some((417, 9)));
        assert_eq!(parse_text("backlog c1"), None);
        assert_eq!(parse_text("hello"), None);
    }
}
