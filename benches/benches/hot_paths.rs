//! Criterion micro-benchmarks of the pure code every warm request runs.
//! `scripts/bench` runs them (`cargo bench -p bridge-benches --bench
//! hot_paths -- --noplot`) and BENCHMARKS.md summarises the medians.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use bridge_benches::criterion_results::GROUP;
use bridge_benches::fixtures::{self, CONVERSATIONS};
use bridge_tests::callback_kit::agent_message;
use bridge_tests::signing::{slack_signature, LOCAL_EASEMOB_CALLBACK_SECRET};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kefu_bridge::easemob::callback::{verify_security, Callback};
use kefu_bridge::easemob::{TextMessage, VisitorInfo};
use kefu_bridge::loop_guard::{not_forwarded, BridgeIdentity};
use kefu_bridge::secret::Secret;
use kefu_bridge::slack::events::{Envelope, Event, MessageEvent};
use kefu_bridge::slack::markup::to_plain_text;
use kefu_bridge::slack::signature::SlackVerifier;
use serde_json::{json, Value};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const NOW: i64 = 1_795_687_200;

fn event_body() -> String {
    fixtures::slack_event_body("Ev0BENCH00000001", &CONVERSATIONS[0], "1795687200.000100")
}

fn parse_message(body: &[u8]) -> MessageEvent {
    let Ok(Envelope::EventCallback(callback)) = serde_json::from_slice(body) else {
        panic!("not an event_callback")
    };
    match serde_json::from_value(callback.event) {
        Ok(Event::Message(message)) => *message,
        _ => panic!("not a message event"),
    }
}

fn hot_paths(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let body = event_body();
    let body = body.as_bytes();

    // Every Slack request: HMAC-SHA256 over the raw body, constant-time compare.
    let verifier = SlackVerifier::new(Secret::new(SIGNING_SECRET));
    let signature = slack_signature(SIGNING_SECRET, NOW, body);
    let timestamp = NOW.to_string();
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("slack_signature_verify", |b| {
        b.iter(|| {
            verifier
                .verify(
                    Some(black_box(&timestamp)),
                    Some(black_box(&signature)),
                    black_box(body),
                    NOW,
                )
                .expect("valid signature")
        })
    });

    // The envelope, then its event, exactly as `slack_events::handle` does.
    group.bench_function("slack_envelope_parse", |b| {
        b.iter(|| {
            let Ok(Envelope::EventCallback(callback)) = serde_json::from_slice(black_box(body))
            else {
                panic!("not an event_callback")
            };
            let event: Event = serde_json::from_value(callback.event.clone()).expect("event");
            event
        })
    });

    // A person's message: every loop rule is checked and none matches.
    let message = parse_message(body);
    let me = BridgeIdentity {
        bot_id: "BT0BENCH01",
        bot_user_id: "UT0BENCH01BOT",
        app_id: "A0KEFUAPP",
    };
    group.throughput(Throughput::Elements(1));
    group.bench_function("loop_guard_own_message", |b| {
        b.iter(|| not_forwarded(black_box(&message), me))
    });

    // Slack markup → the agent's text: a mention, two links, <!here>, entities.
    let names: HashMap<String, String> = [("U0CUSTOMER2".to_string(), "robin".to_string())].into();
    group.throughput(Throughput::Bytes(fixtures::SLACK_TEXT.len() as u64));
    group.bench_function("markup_to_plain_text", |b| {
        b.iter(|| to_plain_text(black_box(fixtures::SLACK_TEXT), &names))
    });

    // 12 KB of visitor text → ordered Easemob bodies of at most 5,120 bytes.
    let visitor = VisitorInfo {
        user_nickname: "casey".into(),
        true_name: "Casey Customer".into(),
        company_name: "Team T0BENCH01".into(),
        phone: "+44 20 7946 0000".into(),
        email: "casey@example.com".into(),
        description: "Slack workspace Team T0BENCH01 (t0bench01.slack.com), direct message \
                      D0BENCHDM1, user U0CUSTOMER1, title: Customer, time zone: Europe/London"
            .into(),
    };
    let from = CONVERSATIONS[0].visitor();
    let outgoing = TextMessage {
        from: &from,
        service_number: "kefuchannelimid_local",
        visitor: &visitor,
        queue: None,
    };
    let long_text = fixtures::long_text(12 * 1024);
    assert!(outgoing.bodies(&long_text).len() >= 3);
    group.throughput(Throughput::Bytes(long_text.len() as u64));
    group.bench_function("easemob_bodies_12kb", |b| {
        b.iter(|| outgoing.bodies(black_box(&long_text)))
    });

    // Every Easemob callback: JSON, `security` (MD5), the typed callback.
    let callback = agent_message(
        &CONVERSATIONS[0].visitor(),
        "1234567890000000001",
        json!([{ "type": "txt", "msg": fixtures::AGENT_TEXT }]),
        fixtures::agent_ext(),
    )
    .to_string();
    let callback_secret = Secret::new(LOCAL_EASEMOB_CALLBACK_SECRET);
    group.throughput(Throughput::Bytes(callback.len() as u64));
    group.bench_function("easemob_callback_verify_parse", |b| {
        b.iter(|| {
            let document: Value = serde_json::from_str(black_box(&callback)).expect("json");
            verify_security(&document, &callback_secret).expect("valid security");
            Callback::parse(document).expect("callback")
        })
    });

    group.finish();
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
