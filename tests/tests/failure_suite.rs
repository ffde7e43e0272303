//! Nothing lost, nothing doubled: every downstream failure the bridge meets,
//! with real DynamoDB Local and the fakes' fault switches.
//!
//! The fault matrix sends messages across several conversations while one
//! fault holds, drains once mid-outage (once the first retries are due),
//! heals, and drains until the outboxes are empty. Then, from what the fakes
//! recorded: every message is delivered once, in order per conversation,
//! or sits in the dead letters with a reason. The matrix is printed and
//! asserted as data.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::*;
use bridge_tests::dynamodb_local::DedicatedDynamoDb;
use bridge_tests::fake_server::Fault;
use bridge_tests::TestApp;
use kefu_bridge::clock::now_epoch_secs;
use kefu_bridge::dynamo::item::{num_attr, str_attr};
use kefu_bridge::dynamo::ItemExt;
use kefu_bridge::store::{Direction, WorkspaceKey};
use serde_json::{json, Value};

const TEAM: &str = "T0TEAM1";
const SCOPES: &[&str] = &[
    "chat:write",
    "im:history",
    "channels:history",
    "groups:history",
    "users:read",
];
/// (user, channel, channel_type): two DMs, a public and a private channel.
const CONVERSATIONS: [(&str, &str, &str); 4] = [
    ("U0AAA1", "D0AAA1", "im"),
    ("U0AAA2", "D0AAA2", "im"),
    ("U0AAA3", "C0SUPPORT", "channel"),
    ("U0AAA4", "G0PRIVATE", "group"),
];
const PER_CONVERSATION: usize = 3;
/// Long enough for the first retries (≤ 10 s after a failure) to be due.
const UNTIL_FIRST_RETRY: Duration = Duration::from_secs(11);
const DRAIN_EVERY: Duration = Duration::from_secs(1);
const DRAIN_LIMIT: Duration = Duration::from_secs(90);

fn visitor(conversation: usize) -> String {
    let (user, channel, _) = CONVERSATIONS[conversation];
    format!("{TEAM}_{user}_{channel}")
}

async fn app() -> TestApp {
    app_on(None).await
}

async fn app_on(endpoint: Option<&str>) -> TestApp {
    let app = match endpoint {
        Some(endpoint) => TestApp::start_on(endpoint).await,
        None => TestApp::start().await,
    };
    install(&app).await;
    app
}

async fn install(app: &TestApp) {
    app.install(TEAM, SCOPES).await;
    for (user, _, _) in CONVERSATIONS {
        app.add_user(user, &user.to_lowercase(), &format!("Visitor {user}"));
    }
}

// ── The matrix ──────────────────────────────────────────────────────────

/// One fault, held while messages are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    EasemobStatus(u16),
    /// Every token rejected (the one refresh too) for a while.
    EasemobTokensRejected,
    EasemobRateLimited(u64),
    EasemobRefused,
    EasemobSlow,
    /// HTTP 400 on every message: permanent, dead letters.
    EasemobRejects,
    SlackRateLimited(u64),
    SlackStatus(u16),
    SlackError(&'static str),
    SlackSlow,
    SlackRefused,
}

impl Outage {
    fn direction(self) -> Direction {
        match self {
            Outage::EasemobStatus(_)
            | Outage::EasemobTokensRejected
            | Outage::EasemobRateLimited(_)
            | Outage::EasemobRefused
            | Outage::EasemobSlow
            | Outage::EasemobRejects => Direction::ToKefu,
            _ => Direction::ToSlack,
        }
    }

    fn name(self) -> String {
        match self {
            Outage::EasemobStatus(status) => format!("Easemob {status}"),
            Outage::EasemobTokensRejected => "Easemob 401 (every token)".into(),
            Outage::EasemobRateLimited(secs) => format!("Easemob 429, Retry-After {secs}"),
            Outage::EasemobRefused => "Easemob connection refused".into(),
            Outage::EasemobSlow => "Easemob slow (2.5 s)".into(),
            Outage::EasemobRejects => "Easemob 400 (permanent)".into(),
            Outage::SlackRateLimited(secs) => format!("Slack 429, Retry-After {secs}"),
            Outage::SlackStatus(status) => format!("Slack {status}"),
            Outage::SlackError(code) => format!("Slack {code}"),
            Outage::SlackSlow => "Slack slow (2.5 s)".into(),
            Outage::SlackRefused => "Slack connection refused".into(),
        }
    }

    /// Requests the fake processed although the bridge gave up waiting:
    /// the bridge cannot tell them from lost ones, so it sends again.
    fn is_ambiguous(self) -> bool {
        matches!(self, Outage::EasemobSlow | Outage::SlackSlow)
    }

    /// Failures no retry can fix: every message ends as a dead letter.
    fn is_permanent(self) -> bool {
        matches!(self, Outage::EasemobRejects | Outage::SlackError(_))
    }

    async fn start(self, app: &TestApp) {
        let slow = Fault::Slow(Duration::from_millis(2_500));
        match self {
            Outage::EasemobStatus(status) => {
                app.easemob.fail_always("messages", Fault::Status(status))
            }
            Outage::EasemobTokensRejected => {
                app.easemob.fail_always("messages", Fault::Status(401))
            }
            Outage::EasemobRateLimited(secs) => app
                .easemob
                .fail_always("messages", Fault::RateLimited(secs)),
            Outage::EasemobRefused => app.easemob.server.stop(),
            Outage::EasemobSlow => app.easemob.fail_always("messages", slow),
            Outage::EasemobRejects => app
                .easemob
                .fail_always("messages", Fault::Error("illegal_argument".into())),
            Outage::SlackRateLimited(secs) => app
                .slack
                .fail_always("chat.postMessage", Fault::RateLimited(secs)),
            Outage::SlackStatus(status) => app
                .slack
                .fail_always("chat.postMessage", Fault::Status(status)),
            Outage::SlackError(code) => app
                .slack
                .fail_always("chat.postMessage", Fault::Error(code.into())),
            Outage::SlackSlow => app.slack.fail_always("chat.postMessage", slow),
            Outage::SlackRefused => app.slack.server.stop(),
        }
    }

    async fn heal(self, app: &TestApp) {
        match self {
            Outage::EasemobRefused => app.easemob.server.restart().await,
            Outage::SlackRefused => app.slack.server.restart().await,
            _ => {}
        }
        app.easemob.heal();
        app.slack.heal();
    }
}

/// One row of the matrix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Row {
    fault: String,
    sent: usize,
    /// Distinct messages that arrived (at least once).
    delivered: usize,
    /// Extra arrivals of messages that had arrived already.
    duplicated: usize,
    dead_lettered: usize,
    /// Neither arrived nor dead-lettered.
    lost: usize,
    /// Conversations whose arrivals are not in the order sent.
    out_of_order: usize,
    /// Requests the fake processed after the bridge had given up on them.
    ambiguous_sends: usize,
    /// Answers the sender got that were not 200.
    not_200: usize,
    /// Messages still in the outbox when it was over.
    still_waiting: usize,
}

/// What was sent, per conversation, in order.
type Sent = Vec<(usize, String)>;

/// The message texts as they reached the other side, per conversation.
fn arrivals(app: &TestApp, direction: Direction, tag: &str) -> Vec<(usize, String)> {
    let by_visitor: HashMap<String, usize> = (0..CONVERSATIONS.len())
        .map(|c| (visitor(c).to_ascii_lowercase(), c))
        .collect();
    let by_channel: HashMap<&str, usize> = CONVERSATIONS
        .iter()
        .enumerate()
        .map(|(c, (_, channel, _))| (*channel, c))
        .collect();
    match direction {
        Direction::ToKefu => app
            .easemob
            .messages()
            .iter()
            .filter_map(|m| {
                let text = m["msg"]["msg"].as_str()?;
                let from = m["from"].as_str()?.to_ascii_lowercase();
                Some((*by_visitor.get(&from)?, text.to_string()))
            })
            .filter(|(_, text)| text.starts_with(tag))
            .collect(),
        Direction::ToSlack => app
            .slack
            .posts()
            .iter()
            .filter_map(|p| {
                let text = p["text"].as_str()?;
                let text = text.strip_prefix("*Alice Agent:* ").unwrap_or(text);
                Some((*by_channel.get(p["channel"].as_str()?)?, text.to_string()))
            })
            .filter(|(_, text)| text.starts_with(tag))
            .collect(),
    }
}

/// Texts of the dead letters (the payloads they keep).
async fn dead_texts(app: &TestApp) -> Vec<(String, String)> {
    app.dead_letters()
        .await
        .into_iter()
        .flat_map(|letter| {
            let reason = letter.reason.clone();
            letter
                .item
                .parts
                .iter()
                .filter_map(|part| {
                    let value: Value = serde_json::from_str(part).ok()?;
                    let text = value["msg"]["msg"]
                        .as_str()
                        .or(value["text"].as_str())?
                        .to_string();
                    let text = text
                        .strip_prefix("*Alice Agent:* ")
                        .map(str::to_string)
                        .unwrap_or(text);
                    Some((text, reason.clone()))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn tally(
    app: &TestApp,
    fault: String,
    direction: Direction,
    tag: &str,
    sent: &Sent,
    not_200: usize,
) -> Row {
    let arrived = arrivals(app, direction, tag);
    let dead = dead_texts(app).await;
    let mut row = Row {
        fault,
        sent: sent.len(),
        not_200,
        still_waiting: app.waiting(direction).await.len(),
        ..Row::default()
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (_, text) in &arrived {
        *seen.entry(text.as_str()).or_default() += 1;
    }
    for (_, text) in sent {
        let arrivals = seen.get(text.as_str()).copied().unwrap_or(0);
        let dead = dead
            .iter()
            .any(|(t, reason)| t == text && !reason.is_empty());
        if arrivals > 0 {
            row.delivered += 1;
            row.duplicated += arrivals - 1;
        }
        if dead {
            row.dead_lettered += 1;
        }
        if arrivals == 0 && !dead {
            row.lost += 1;
        }
    }
    // Order: first arrivals per conversation follow the order sent.
    for conversation in 0..CONVERSATIONS.len() {
        let expected: Vec<&str> = sent
            .iter()
            .filter(|(c, t)| *c == conversation && seen.contains_key(t.as_str()))
            .map(|(_, t)| t.as_str())
            .collect();
        let mut firsts: Vec<&str> = Vec::new();
        for (c, text) in &arrived {
            if *c == conversation && !firsts.contains(&text.as_str()) {
                firsts.push(text);
            }
        }
        if firsts != expected {
            row.out_of_order += 1;
        }
    }
    row
}

/// Sends `PER_CONVERSATION` messages in each conversation, interleaved,
/// each delivered twice (Slack's retry / Easemob's `chat_offline`).
/// Returns what was sent and how many answers were not 200.
async fn send_all(app: &TestApp, direction: Direction, tag: &str) -> (Sent, usize) {
    let mut sent = Vec::new();
    let mut not_200 = 0;
    for round in 0..PER_CONVERSATION {
        for (c, (user, channel, kind)) in CONVERSATIONS.iter().enumerate() {
            let text = format!("{tag} c{c} m{round}");
            let id = format!("{tag}-{c}-{round}").replace(' ', "_");
            let statuses = match direction {
                Direction::ToKefu => {
                    let ts = format!("{}.{:06}", 1_700_000_000 + round, c);
                    let event = event_callback(
                        TEAM,
                        &format!("Ev{id}"),
                        user_message(channel, kind, user, &text, &ts),
                    );
                    vec![
                        app.slack_event(&event).await.status,
                        app.slack_event(&event).await.status,
                    ]
                }
                Direction::ToSlack => {
                    let reply = agent_reply(&visitor(c), &format!("m-{id}"), &text);
                    vec![
                        app.easemob_callback(&reply).await.status,
                        app.easemob_callback(&as_event_type(reply, "chat_offline"))
                            .await
                            .status,
                    ]
                }
            };
            not_200 += statuses.iter().filter(|s| **s != 200).count();
            sent.push((c, text));
        }
    }
    (sent, not_200)
}

/// A healthy message first, so tokens and registrations are warm.
async fn warm_up(app: &TestApp, direction: Direction) {
    let status = match direction {
        Direction::ToKefu => {
            let (user, channel, kind) = CONVERSATIONS[0];
            let event = event_callback(
                TEAM,
                "EvWarmUp",
                user_message(channel, kind, user, "warm up", "1.000001"),
            );
            app.slack_event(&event).await.status
        }
        Direction::ToSlack => {
            app.easemob_callback(&agent_reply(&visitor(0), "m-warm-up", "warm up"))
                .await
                .status
        }
    };
    assert_eq!(status, 200);
}

async fn fault_row(outage: Outage) -> Row {
    let app = app().await;
    let direction = outage.direction();
    let tag = outage.name();
    warm_up(&app, direction).await;
    let before = requests_to(&app, direction);
    outage.start(&app).await;
    let (sent, not_200) = send_all(&app, direction, &tag).await;
    // Mid-outage: once retries are due, a drain tries again and fails again.
    app.clock.advance(UNTIL_FIRST_RETRY.as_secs() as i64);
    let mid = app.drain(direction).await;
    assert_eq!(
        mid.delivered, 0,
        "{tag}: delivered during the outage: {mid:?}"
    );
    let during = requests_to(&app, direction) - before;
    outage.heal(&app).await;
    app.drain_until_empty(DRAIN_EVERY, DRAIN_LIMIT).await;
    let mut row = tally(&app, tag.clone(), direction, &tag, &sent, not_200).await;
    if outage.is_ambiguous() {
        row.ambiguous_sends = during;
    }
    // Every conversation's pending count is back to zero.
    for c in 0..CONVERSATIONS.len() {
        let conversation = app
            .bridge
            .store
            .get_conversation(&WorkspaceKey::Team(TEAM.into()), &visitor(c))
            .await
            .unwrap();
        assert_eq!(conversation.lane(direction).pending, 0, "{tag}: c{c}");
    }
    row
}

/// Message requests the fake on that side received (processed or not).
fn requests_to(app: &TestApp, direction: Direction) -> usize {
    match direction {
        Direction::ToKefu => app.easemob.calls("messages").len(),
        Direction::ToSlack => app.slack.calls("chat.postMessage").len(),
    }
}

/// DynamoDB Local stopped mid-run: every answer 5xx and nothing sent while
/// it is down; after a restart (in memory: table and installation created
/// again) the senders' retries deliver each message once.
async fn dynamodb_row() -> Row {
    let dynamodb = tokio::task::spawn_blocking(DedicatedDynamoDb::start)
        .await
        .unwrap()
        .expect("dedicated DynamoDB Local");
    let app = app_on(Some(&dynamodb.endpoint())).await;
    warm_up(&app, Direction::ToKefu).await;
    warm_up(&app, Direction::ToSlack).await;
    let tag = "DynamoDB down";
    let kefu_before = app.easemob.calls("messages").len();
    let slack_before = app.slack.calls("chat.postMessage").len();

    let dynamodb = std::sync::Arc::new(dynamodb);
    let stopping = dynamodb.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap();
    let (to_kefu, kefu_not_200) = send_all(&app, Direction::ToKefu, tag).await;
    let (to_slack, slack_not_200) = send_all(&app, Direction::ToSlack, tag).await;
    let attempts = 2 * (to_kefu.len() + to_slack.len());
    assert_eq!(
        kefu_not_200 + slack_not_200,
        attempts,
        "every answer is 5xx while DynamoDB is down"
    );
    assert_eq!(
        app.easemob.calls("messages").len(),
        kefu_before,
        "nothing sent"
    );
    assert_eq!(
        app.slack.calls("chat.postMessage").len(),
        slack_before,
        "nothing posted"
    );
    // A drain while it is down does nothing and fails nothing.
    let drained = app.drain(Direction::ToKefu).await;
    assert!(drained.stopped_early && drained.delivered == 0);

    let restarting = dynamodb.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .expect("restart DynamoDB Local");
    // A fresh JVM may take longer than one request's 2 s to create it.
    bridge_tests::app::create_table_patiently(&app.bridge).await;
    install(&app).await;
    // The senders retry: Slack up to three times, Easemob once.
    let (retried_kefu, _) = send_all(&app, Direction::ToKefu, tag).await;
    let (retried_slack, _) = send_all(&app, Direction::ToSlack, tag).await;
    assert_eq!(
        (retried_kefu.len(), retried_slack.len()),
        (to_kefu.len(), to_slack.len())
    );
    app.drain_until_empty(DRAIN_EVERY, DRAIN_LIMIT).await;

    let kefu = tally(&app, tag.into(), Direction::ToKefu, tag, &to_kefu, 0).await;
    let slack = tally(&app, tag.into(), Direction::ToSlack, tag, &to_slack, 0).await;
    Row {
        fault: "DynamoDB stopped, restarted".into(),
        sent: kefu.sent + slack.sent,
        delivered: kefu.delivered + slack.delivered,
        duplicated: kefu.duplicated + slack.duplicated,
        dead_lettered: kefu.dead_lettered + slack.dead_lettered,
        lost: kefu.lost + slack.lost,
        out_of_order: kefu.out_of_order + slack.out_of_order,
        ambiguous_sends: 0,
        not_200: kefu_not_200 + slack_not_200,
        still_waiting: kefu.still_waiting + slack.still_waiting,
    }
}

fn print_matrix(rows: &[Row]) {
    println!();
    println!(
        "| fault | sent | delivered | duplicated | dead-lettered | lost | out of order | ambiguous sends | non-200 answers |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.fault,
            row.sent,
            row.delivered,
            row.duplicated,
            row.dead_lettered,
            row.lost,
            row.out_of_order,
            row.ambiguous_sends,
            row.not_200
        );
    }
    println!();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_matrix_nothing_lost_nothing_doubled_order_kept() {
    let started = Instant::now();
    let outages = [
        Outage::EasemobStatus(500),
        Outage::EasemobTokensRejected,
        Outage::EasemobRateLimited(3),
        Outage::EasemobRefused,
        Outage::EasemobSlow,
        Outage::EasemobRejects,
        Outage::SlackRateLimited(3),
        Outage::SlackStatus(500),
        Outage::SlackError("invalid_auth"),
        Outage::SlackSlow,
        Outage::SlackRefused,
    ];
    let faults = futures_util::future::join_all(outages.iter().map(|o| fault_row(*o)));
    let (mut rows, dynamodb) = tokio::join!(faults, dynamodb_row());
    rows.push(dynamodb);
    print_matrix(&rows);
    println!("matrix took {:?}", started.elapsed());

    for (row, outage) in rows.iter().zip(outages.iter().map(Some).chain([None])) {
        let name = &row.fault;
        assert_eq!(row.lost, 0, "{name}: {row:?}");
        assert_eq!(row.out_of_order, 0, "{name}: {row:?}");
        assert_eq!(row.still_waiting, 0, "{name}: {row:?}");
        match outage {
            Some(o) if o.is_permanent() => {
                assert_eq!(row.dead_lettered, row.sent, "{name}: {row:?}");
                assert_eq!(row.delivered, 0, "{name}: {row:?}");
            }
            Some(o) if o.is_ambiguous() => {
                // At least once: a request the bridge timed out on may have
                // been processed; those (and only those) can arrive twice.
                assert_eq!(row.delivered, row.sent, "{name}: {row:?}");
                assert!(row.duplicated <= row.ambiguous_sends, "{name}: {row:?}");
            }
            _ => {
                assert_eq!(row.delivered, row.sent, "{name}: {row:?}");
                assert_eq!(row.duplicated, 0, "{name}: {row:?}");
                assert_eq!(row.dead_lettered, 0, "{name}: {row:?}");
            }
        }
        if outage.is_some() {
            assert_eq!(row.not_200, 0, "{name}: durably accepted → 200: {row:?}");
        }
    }
}

// ── Ordering, leases, limits ────────────────────────────────────────────

/// Once a conversation has a message waiting, later ones queue behind it
/// even when Kefu is back, and the drain delivers them in order.
#[tokio::test]
async fn later_messages_wait_behind_a_failed_one_and_arrive_in_order() {
    let app = app().await;
    let (user, channel, kind) = CONVERSATIONS[0];
    let send = |id: &str, text: &str, ts: &str| {
        event_callback(TEAM, id, user_message(channel, kind, user, text, ts))
    };
    app.easemob.fail_once("messages", Fault::Status(503));
    assert_eq!(
        app.slack_event(&send("EvO1", "first", "1.1")).await.status,
        200
    );
    // Kefu is fine again, but these must not overtake "first".
    assert_eq!(
        app.slack_event(&send("EvO2", "second", "1.2")).await.status,
        200
    );
    assert_eq!(
        app.slack_event(&send("EvO3", "third", "1.3")).await.status,
        200
    );
    assert!(app.easemob.messages().is_empty());
    let waiting = app.waiting(Direction::ToKefu).await;
    assert_eq!(waiting.len(), 3);
    assert_eq!(waiting[0].attempts, 1);
    assert!(waiting[0].next_attempt_at <= now_epoch_secs() + 10);
    assert_eq!((waiting[1].attempts, waiting[2].attempts), (0, 0));
    // Not due yet: a drain leaves the whole conversation alone.
    let early = app.drain(Direction::ToKefu).await;
    assert_eq!((early.delivered, early.not_due), (0, 1));
    // The first retry comes no later than 10 s after the failure.
    app.clock.advance(10);
    let summary = app.drain(Direction::ToKefu).await;
    assert_eq!(summary.delivered, 3, "{summary:?}");
    assert_eq!(app.easemob.texts(), vec!["first", "second", "third"]);
    // A new message goes straight through again.
    assert_eq!(
        app.slack_event(&send("EvO4", "fourth", "1.4")).await.status,
        200
    );
    assert_eq!(app.easemob.texts().len(), 4);
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
}

/// Five drains at once (overlapping invocations): leases make each message
/// go exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_drains_deliver_each_message_once() {
    let app = app().await;
    app.slack
        .fail_always("chat.postMessage", Fault::Status(500));
    let mut expected = Vec::new();
    for round in 0..4 {
        for c in 0..CONVERSATIONS.len() {
            let text = format!("reply c{c} m{round}");
            let reply = agent_reply(&visitor(c), &format!("m-cd-{c}-{round}"), &text);
            assert_eq!(app.easemob_callback(&reply).await.status, 200);
            expected.push(text);
        }
    }
    app.slack.heal();
    app.make_due().await;
    let instances: Vec<_> = (0..5).map(|_| app.another_instance()).collect();
    let drains = instances.iter().map(|bridge| {
        kefu_bridge::relay::outbox::drain(
            bridge,
            Direction::ToSlack,
            Instant::now() + kefu_bridge::relay::outbox::DRAIN_BUDGET,
        )
    });
    let summaries = futures_util::future::join_all(drains).await;
    let delivered: usize = summaries.iter().map(|s| s.delivered).sum();
    assert_eq!(delivered, expected.len(), "{summaries:?}");
    let mut posted: Vec<String> = app
        .slack
        .posts()
        .iter()
        .map(|p| {
            p["text"]
                .as_str()
                .unwrap()
                .trim_start_matches("*Alice Agent:* ")
                .to_string()
        })
        .collect();
    assert_eq!(posted.len(), expected.len(), "no post twice");
    posted.sort();
    expected.sort();
    assert_eq!(posted, expected);
}

/// The same reply ten times at once while replies wait: queued once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_callback_ten_times_at_once_is_accepted_once() {
    let app = app().await;
    app.slack
        .fail_always("chat.postMessage", Fault::Status(503));
    let callback = agent_reply(&visitor(0), "m-ten-1", "ten at once");
    let attempts = (0..10).map(|_| app.easemob_callback(&callback));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(app.easemob_callback(&callback).await.status, 200);
    assert_eq!(app.waiting(Direction::ToSlack).await.len(), 1);
    assert_eq!(app.slack.calls("chat.postMessage").len(), 1, "one attempt");
    app.slack.heal();
    app.make_due().await;
    app.drain(Direction::ToSlack).await;
    assert_eq!(app.slack.posts().len(), 1);
}

/// The same Slack event ten times at once while Kefu is down: queued once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_event_ten_times_at_once_is_accepted_once() {
    let app = app().await;
    app.easemob.fail_always("messages", Fault::Status(503));
    let (user, channel, kind) = CONVERSATIONS[1];
    let event = event_callback(
        TEAM,
        "EvTen",
        user_message(channel, kind, user, "ten", "2.1"),
    );
    let attempts = (0..10).map(|_| app.slack_event(&event));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert_eq!(app.waiting(Direction::ToKefu).await.len(), 1);
    app.easemob.heal();
    app.make_due().await;
    app.drain(Direction::ToKefu).await;
    assert_eq!(app.easemob.texts(), vec!["ten"]);
}

/// A message still waiting after 48 h is given up, with the last error.
#[tokio::test]
async fn a_message_waiting_48_hours_becomes_a_dead_letter() {
    let app = app().await;
    app.slack
        .fail_always("chat.postMessage", Fault::Status(502));
    let reply = agent_reply(&visitor(0), "m-old-1", "too late");
    assert_eq!(app.easemob_callback(&reply).await.status, 200);
    let item = app.waiting(Direction::ToSlack).await.remove(0);
    app.bridge
        .store
        .db()
        .update_item()
        .table_name(&app.table)
        .key("pk", str_attr("OUTBOX"))
        .key("sk", str_attr(item.sort_key()))
        .update_expression("SET created_at = :then, next_attempt_at = :zero")
        .expression_attribute_values(":then", num_attr(now_epoch_secs() - 48 * 3_600 - 1))
        .expression_attribute_values(":zero", num_attr(0))
        .send()
        .await
        .unwrap();
    let summary = app.drain(Direction::ToSlack).await;
    assert_eq!(summary.dead_lettered, 1, "{summary:?}");
    let letters = app.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.starts_with("gave up after 48 h"),
        "{:?}",
        letters[0]
    );
    assert!(letters[0].reason.contains("HTTP 502"), "{:?}", letters[0]);
    assert_eq!(letters[0].item.origin, "m-old-1");
    assert!(app.waiting(Direction::ToSlack).await.is_empty());
    let conversation = app
        .bridge
        .store
        .get_conversation(&WorkspaceKey::Team(TEAM.into()), &visitor(0))
        .await
        .unwrap();
    assert_eq!(conversation.to_slack.pending, 0);
}

/// Uninstalled while replies wait: they become dead letters at drain time;
/// messages to Kefu still go (they need nothing from Slack).
#[tokio::test]
async fn after_an_uninstall_waiting_replies_are_dead_letters_and_messages_still_reach_kefu() {
    let app = app().await;
    app.slack
        .fail_always("chat.postMessage", Fault::Status(500));
    app.easemob.fail_always("messages", Fault::Status(500));
    let (user, channel, kind) = CONVERSATIONS[2];
    let event = event_callback(
        TEAM,
        "EvU1",
        user_message(channel, kind, user, "to kefu", "3.1"),
    );
    assert_eq!(app.slack_event(&event).await.status, 200);
    let reply = agent_reply(&visitor(2), "m-u-1", "to slack");
    assert_eq!(app.easemob_callback(&reply).await.status, 200);
    let uninstall = event_callback(TEAM, "EvU2", json!({ "type": "app_uninstalled" }));
    assert_eq!(app.slack_event(&uninstall).await.status, 200);
    app.slack.heal();
    app.easemob.heal();
    app.make_due().await;
    let to_slack = app.drain(Direction::ToSlack).await;
    let to_kefu = app.drain(Direction::ToKefu).await;
    assert_eq!((to_slack.dead_lettered, to_kefu.delivered), (1, 1));
    assert_eq!(app.easemob.texts(), vec!["to kefu"]);
    assert!(app.slack.posts().is_empty());
    let letters = app.dead_letters().await;
    assert_eq!(letters[0].reason, "workspace uninstalled");
    // The conversation record outlived the uninstall only while it had to.
    let conversation = app
        .bridge
        .store
        .get_conversation(&WorkspaceKey::Team(TEAM.into()), &visitor(2))
        .await
        .unwrap();
    assert_eq!(
        (conversation.to_kefu.pending, conversation.to_slack.pending),
        (0, 0)
    );
}

/// A drain with no time left starts nothing; leases are given back.
#[tokio::test]
async fn a_drain_out_of_time_starts_nothing_and_releases_its_leases() {
    let app = app().await;
    app.easemob.fail_always("messages", Fault::Status(500));
    for (c, (user, channel, kind)) in CONVERSATIONS.iter().take(2).enumerate() {
        let event = event_callback(
            TEAM,
            &format!("EvT{c}"),
            user_message(channel, kind, user, "later", &format!("4.{c}")),
        );
        assert_eq!(app.slack_event(&event).await.status, 200);
    }
    app.easemob.heal();
    app.make_due().await;
    let calls = app.easemob.calls("messages").len();
    let summary =
        kefu_bridge::relay::outbox::drain(&app.bridge, Direction::ToKefu, Instant::now()).await;
    assert!(
        summary.stopped_early && summary.delivered == 0,
        "{summary:?}"
    );
    assert_eq!(app.easemob.calls("messages").len(), calls);
    // Nothing is left leased: the next drain delivers both right away.
    assert_eq!(app.drain(Direction::ToKefu).await.delivered, 2);
    for c in 0..2 {
        let conversation = app
            .bridge
            .store
            .get_conversation(&WorkspaceKey::Team(TEAM.into()), &visitor(c))
            .await
            .unwrap();
        assert_eq!(conversation.to_kefu.lease_until, 0);
    }
}

/// The scheduled answer is the drain's summary, through `lambda::dispatch`.
#[tokio::test]
async fn a_scheduled_event_drains_and_answers_a_summary() {
    let app = app().await;
    app.slack.fail_once("chat.postMessage", Fault::Status(500));
    let reply = agent_reply(&visitor(1), "m-sched-1", "scheduled");
    assert_eq!(app.easemob_callback(&reply).await.status, 200);
    app.make_due().await;
    let payload = json!({
        "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-26T10:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/drain"], "detail": {}
    });
    let bridge = &app.bridge;
    let answer = kefu_bridge::lambda::dispatch(
        payload,
        |_request| async { unreachable!("not an HTTP request") },
        |event| async move {
            kefu_bridge::relay::outbox::scheduled(
                bridge,
                Direction::ToSlack,
                &event,
                kefu_bridge::relay::outbox::drain_deadline(0),
            )
            .await
        },
    )
    .await;
    assert_eq!(answer["direction"], "TO_SLACK", "{answer}");
    assert_eq!(answer["delivered"], 1, "{answer}");
    assert_eq!(answer["dead_lettered"], 0, "{answer}");
    assert_eq!(answer["conversations"], 1, "{answer}");
    assert!(answer.get("statusCode").is_none());
    assert_eq!(app.slack.posts().len(), 1);
}

/// Dead letters keep the payload, the origin and the reason, readable with
/// one Query on pk = DEADLETTER (the README's command).
#[tokio::test]
async fn dead_letters_are_one_query_with_payload_origin_and_reason() {
    let app = app().await;
    app.easemob
        .fail_once("messages", Fault::Error("illegal_argument".into()));
    let (user, channel, kind) = CONVERSATIONS[0];
    let event = event_callback(
        TEAM,
        "EvDead",
        user_message(channel, kind, user, "bad", "5.1"),
    );
    assert_eq!(app.slack_event(&event).await.status, 200);
    let out = app
        .bridge
        .store
        .db()
        .query()
        .table_name(&app.table)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", str_attr("DEADLETTER"))
        .send()
        .await
        .unwrap();
    let items = out.items();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert!(item
        .s("sk")
        .unwrap()
        .starts_with(&format!("TO_KEFU#{}#", visitor(0))));
    assert_eq!(item.s("origin"), Some("EvDead"));
    assert!(item
        .s("reason")
        .unwrap()
        .contains("HTTP 400 illegal_argument"));
    let body: Value = serde_json::from_str(&item.str_list("parts").unwrap()[0]).unwrap();
    assert_eq!(body["msg"]["msg"], "bad");
    assert!(item.n("expires_at").is_some(), "dead letters expire (TTL)");
    // A permanent failure is not retried: nothing waits.
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
}
