//! DynamoDB answering in part, through a proxy in front of DynamoDB Local
//! (tests/src/dynamo_proxy.rs): a batch of deletes it leaves unprocessed,
//! and an outbox backlog larger than one page of a Query.

use std::time::{Duration, Instant};

use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::agent_reply;
use bridge_tests::dynamo_proxy::CountingProxy;
use bridge_tests::dynamodb_local;
use bridge_tests::fake_server::Fault;
use bridge_tests::oauth_kit::LogRecorder;
use bridge_tests::TestApp;
use kefu_bridge::dynamo::item::str_attr;
use kefu_bridge::relay::outbox;
use kefu_bridge::store::{Direction, WorkspaceKey};
use serde_json::json;

const TEAM: &str = "T0BOUNDS";
const SCOPES: &[&str] = &["chat:write", "im:history", "users:read"];

/// A `TestApp` whose every DynamoDB request goes through a proxy.
async fn app_behind_proxy() -> (TestApp, CountingProxy) {
    let proxy = CountingProxy::start(&dynamodb_local::endpoint())
        .await
        .expect("proxy");
    let app = TestApp::start_on(&proxy.url()).await;
    app.install(TEAM, SCOPES).await;
    (app, proxy)
}

fn dm(event_id: &str, user: &str, text: &str, ts: &str) -> serde_json::Value {
    let channel = format!("D{}", &user[1..]);
    event_callback(TEAM, event_id, user_message(&channel, "im", user, text, ts))
}

/// Deletes DynamoDB keeps handing back are not dropped in silence: the
/// uninstall answers 5xx with a named log line, nothing is lost, and
/// Slack's retry finishes it once DynamoDB takes them.
#[tokio::test]
async fn an_uninstall_whose_deletes_stay_unprocessed_answers_5xx_until_a_retry_finishes_it() {
    let (app, proxy) = app_behind_proxy().await;
    app.add_user("U0UNI", "uni", "Uni Visitor");
    assert_eq!(
        app.slack_event(&dm("EvB1", "U0UNI", "hello", "1.0001"))
            .await
            .status,
        200
    );
    let workspace = WorkspaceKey::Team(TEAM.into());
    let records_before = app.items_in(&workspace.pk()).await.len();
    assert!(records_before > 1, "installation and what the DM cached");

    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    proxy.leave_batch_writes_unprocessed(true);
    let uninstall = event_callback(TEAM, "EvB2", json!({ "type": "app_uninstalled" }));
    let refused = app.slack_event(&uninstall).await;
    assert!(refused.status >= 500, "{refused:?}");
    assert!(
        recorder
            .lines()
            .iter()
            .any(|l| l.contains("workspace_cleanup_incomplete") && l.contains(TEAM)),
        "{:?}",
        recorder.lines()
    );
    // Retried with backoff before giving up, not once.
    assert!(proxy.tally().0["BatchWriteItem"].calls > 1);
    assert_eq!(app.items_in(&workspace.pk()).await.len(), records_before);

    proxy.leave_batch_writes_unprocessed(false);
    let retried = app.slack_event(&uninstall).await;
    assert_eq!(retried.status, 200, "{retried:?}");
    assert!(app.items_in(&workspace.pk()).await.is_empty());
    assert!(app
        .bridge
        .store
        .get_installation(&workspace)
        .await
        .unwrap()
        .is_none());
}

/// A backlog larger than a page: every message arrives once, in order per
/// conversation, over several short drains, and no DynamoDB answer the
/// bridge reads carries more than a page of it.
#[tokio::test]
async fn a_backlog_larger_than_a_page_drains_completely_in_order_across_drains() {
    let (app, proxy) = app_behind_proxy().await;
    // (user, messages): one long conversation and a short one; 125 waiting
    // in all, more than a page (100) of the outbox and of one conversation.
    let backlog = [("U0LONG", 110), ("U0SHORT", 15)];
    for (user, _) in backlog {
        app.add_user(user, &user.to_lowercase(), user);
    }
    app.easemob.fail_always("messages", Fault::Status(500));
    for (user, count) in backlog {
        for i in 0..count {
            let event = dm(
                &format!("Ev{user}{i}"),
                user,
                &format!("{user} {i}"),
                &format!("{i}.0001"),
            );
            assert_eq!(app.slack_event(&event).await.status, 200);
        }
    }
    assert_eq!(app.waiting(Direction::ToKefu).await.len(), 125);
    app.easemob.heal();
    app.make_due().await;

    // Drains with little time each (a send is started only with 2 s
    // left), so the backlog takes several of them.
    let mut drains = 0;
    while !app.waiting(Direction::ToKefu).await.is_empty() {
        drains += 1;
        assert!(drains <= 200, "the backlog never drained");
        let deadline = Instant::now() + Duration::from_millis(2_300);
        outbox::drain(&app.bridge, Direction::ToKefu, deadline).await;
    }
    assert!(drains > 1, "one drain took it all: not a test of paging");
    let texts = app.easemob.texts();
    for (user, count) in backlog {
        let arrived: Vec<&String> = texts.iter().filter(|t| t.starts_with(user)).collect();
        let sent: Vec<String> = (0..count).map(|i| format!("{user} {i}")).collect();
        assert_eq!(arrived, sent.iter().collect::<Vec<_>>(), "{user}");
    }
    assert_eq!(texts.len(), 125, "each message once");
    let largest = proxy.tally().0["Query"].most_items;
    assert!(largest <= 100, "a Query answer carried {largest} items");
}

/// DynamoDB requests one message costs on the warm path (docs/design.md §4
/// "Delivery pipeline"): a second message in a conversation with nothing
/// waiting, caches warm, makes the claim-and-check transaction and the
/// completion — two round trips — in each direction, in a DM and in a
/// channel thread.
#[tokio::test]
async fn a_warm_message_costs_two_dynamodb_round_trips_each_way() {
    let (app, proxy) = app_behind_proxy().await;
    app.add_user("U0WARM", "warm", "Warm Visitor");
    let channel_message = |event_id: &str, text: &str, ts: &str| {
        let mut message = user_message("C0WARM", "channel", "U0WARM", text, ts);
        message["thread_ts"] = json!("100.0001");
        event_callback(TEAM, event_id, message)
    };
    let slack_round_trips = |event: serde_json::Value| {
        let (app, proxy) = (&app, &proxy);
        async move {
            let before = proxy.tally();
            let answer = app.slack_event(&event).await;
            assert_eq!(answer.status, 200, "{answer:?}");
            proxy.tally().since(&before)
        }
    };
    let callback_round_trips = |callback: serde_json::Value| {
        let (app, proxy) = (&app, &proxy);
        async move {
            let before = proxy.tally();
            let answer = app.easemob_callback(&callback).await;
            assert_eq!(answer.status, 200, "{answer:?}");
            proxy.tally().since(&before)
        }
    };
    for (first, second) in [
        (
            dm("EvWarm1", "U0WARM", "first", "1.0001"),
            dm("EvWarm2", "U0WARM", "second", "2.0001"),
        ),
        (
            channel_message("EvWarm3", "first in thread", "101.0001"),
            channel_message("EvWarm4", "second in thread", "102.0001"),
        ),
    ] {
        slack_round_trips(first).await;
        let warm = slack_round_trips(second).await;
        assert_eq!(warm.calls(), 2, "Slack → Kefu, warm: {warm:?}");
    }
    for (visitor, id) in [
        ("t0bounds_u0warm_d0warm", "dm"),
        ("t0bounds_u0warm_c0warm", "ch"),
    ] {
        callback_round_trips(agent_reply(visitor, &format!("m-warm-{id}-1"), "one")).await;
        let warm =
            callback_round_trips(agent_reply(visitor, &format!("m-warm-{id}-2"), "two")).await;
        assert_eq!(warm.calls(), 2, "Kefu → Slack ({id}), warm: {warm:?}");
    }
    assert_eq!(app.easemob.texts().len(), 4);
    let posted = app.slack.posts();
    assert_eq!(posted.len(), 4, "{posted:?}");
    assert!(
        posted
            .iter()
            .filter(|p| p["channel"] == "C0WARM")
            .all(|p| p["thread_ts"] == "100.0001"),
        "channel replies go to the visitor's thread: {posted:?}"
    );
}

/// A conversation record lost while its messages wait (its counter with
/// it): the next message continues after the last one stored, never
/// overwriting it, and all go in order (store/outbox.rs, the sequence
/// reseeded from the conversation's last waiting message).
#[tokio::test]
async fn a_lost_conversation_counter_continues_after_the_last_waiting_message() {
    let app = TestApp::start().await;
    app.install(TEAM, SCOPES).await;
    app.add_user("U0SEQ", "seq", "Seq Visitor");
    app.easemob.fail_always("messages", Fault::Status(503));
    for (i, text) in ["one", "two"].into_iter().enumerate() {
        let event = dm(&format!("EvSEQ{i}"), "U0SEQ", text, &format!("{i}.5"));
        assert_eq!(app.slack_event(&event).await.status, 200);
    }
    let visitor = app.waiting(Direction::ToKefu).await[0].visitor.clone();
    bridge_tests::app::local_dynamodb(&app.dynamodb_endpoint)
        .delete_item()
        .table_name(&app.table)
        .key("pk", str_attr(format!("WORKSPACE#{TEAM}")))
        .key("sk", str_attr(format!("CONVERSATION#{visitor}")))
        .send()
        .await
        .expect("conversation record deleted");

    let event = dm("EvSEQ2", "U0SEQ", "three", "2.5");
    assert_eq!(app.slack_event(&event).await.status, 200);
    let seqs: Vec<u64> = app
        .waiting(Direction::ToKefu)
        .await
        .iter()
        .map(|item| item.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    app.easemob.heal();
    app.make_due().await;
    app.drain(Direction::ToKefu).await;
    assert_eq!(app.easemob.texts(), vec!["one", "two", "three"]);
}
