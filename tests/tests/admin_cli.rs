//! `kefu-bridge-admin` end to end (docs/design.md §1 "Admin CLI"): the real
//! binary, run as a process against DynamoDB Local with placeholder
//! credentials, on dead letters the real handlers made. List → two replays
//! at once → exactly one outbox item per dead letter → the real drain
//! delivers each once, in order → purge; bad input exits non-zero with one
//! line and changes nothing.

use bridge_tests::admin_kit::{admin_command, finish, AdminRun};
use bridge_tests::app::{event_callback, user_message};
use bridge_tests::callback_kit::agent_reply;
use bridge_tests::fake_server::Fault;
use bridge_tests::TestApp;
use kefu_bridge::store::{Direction, NoticeLanguage, WorkspaceKey};
use serde_json::Value;

const TEAM: &str = "T0ADMIN1";
const SCOPES: &[&str] = &["chat:write", "im:history", "users:read"];
const USER: &str = "U0CASEY";
const DM: &str = "D0CASEY";

fn visitor() -> String {
    format!("{TEAM}_{USER}_{DM}")
}

async fn app() -> TestApp {
    let app = TestApp::start().await;
    app.install(TEAM, SCOPES).await;
    app.add_user(USER, "casey", "Casey Customer");
    app
}

/// Sends a DM from the customer through the real `slack-events` handler.
async fn customer_says(app: &TestApp, event_id: &str, text: &str, ts: &str) {
    let event = event_callback(TEAM, event_id, user_message(DM, "im", USER, text, ts));
    assert_eq!(app.slack_event(&event).await.status, 200);
}

/// Two messages to Kefu and one reply to Slack that can never be delivered
/// (Easemob 400, Slack `channel_not_found`): three dead letters, made by the
/// real handlers. The fakes are healed afterwards.
async fn three_dead_letters(app: &TestApp) {
    app.easemob
        .fail_always("messages", Fault::Error("illegal_argument".into()));
    app.slack
        .fail_always("chat.postMessage", Fault::Error("channel_not_found".into()));
    customer_says(app, "EvFIRST", "first", "1.1").await;
    customer_says(app, "EvSECOND", "second", "1.2").await;
    let reply = agent_reply(&visitor(), "m-reply-1", "an answer");
    assert_eq!(app.easemob_callback(&reply).await.status, 200);
    app.easemob.heal();
    app.slack.heal();
    assert_eq!(app.dead_letters().await.len(), 3);
    assert!(app.easemob.texts().is_empty());
    assert!(app.slack.posts().is_empty());
}

fn assert_success(run: &AdminRun) {
    assert!(run.status.success(), "{run:?}");
}

/// Failed with exactly one line on stderr containing `says`, nothing on
/// stdout.
fn assert_refused(run: &AdminRun, says: &str) {
    assert!(!run.status.success(), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains(says), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn list_replay_twice_at_once_deliver_once_in_order_then_purge() {
    let app = app().await;
    three_dead_letters(&app).await;

    // The list, as JSON: the contract's fields, in the store's order.
    let listed = app.admin(&["dead-letters", "list", "--json"]).await;
    assert_success(&listed);
    let rows = listed.json();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        for field in [
            "id",
            "direction",
            "visitor",
            "origin",
            "reason",
            "failed_at",
        ] {
            assert!(
                row[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field} in {row}"
            );
        }
        assert_eq!(row["visitor"], visitor().as_str());
        assert!(row["failed_at"].as_str().unwrap().ends_with('Z'), "{row}");
    }
    let origins: Vec<&str> = rows.iter().map(|r| r["origin"].as_str().unwrap()).collect();
    assert_eq!(origins, ["EvFIRST", "EvSECOND", "m-reply-1"]);
    // Each was tried once, live, and refused.
    let attempts: Vec<u64> = rows
        .iter()
        .map(|r| r["attempts"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 1, 1]);
    let directions: Vec<&str> = rows
        .iter()
        .map(|r| r["direction"].as_str().unwrap())
        .collect();
    assert_eq!(directions, ["ToKefu", "ToKefu", "ToSlack"]);
    assert!(rows[2]["reason"]
        .as_str()
        .unwrap()
        .contains("channel_not_found"));

    // The same as a table a person reads.
    let table = app.admin(&["dead-letters", "list"]).await;
    assert_success(&table);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("REASON"),
        "{table:?}"
    );
    assert_eq!(lines.len(), 4, "{table:?}");
    for id in ids(&rows) {
        assert!(table.stdout.contains(&id), "{id} in {table:?}");
    }

    // A dry run changes nothing.
    let dry = app
        .admin(&["dead-letters", "replay", "--all", "--dry-run", "--json"])
        .await;
    assert_success(&dry);
    assert!(dry
        .json()
        .iter()
        .all(|row| row["outcome"] == "would_replay"));
    assert_eq!(app.dead_letters().await.len(), 3);
    assert!(app.waiting(Direction::ToKefu).await.is_empty());

    // Two replays at once, as two operators would.
    let mut one = app.admin_command(&["dead-letters", "replay", "--all", "--json"]);
    let mut two = app.admin_command(&["dead-letters", "replay", "--all", "--json"]);
    let (one, two) = tokio::join!(finish(&mut one), finish(&mut two));
    assert_success(&one);
    assert_success(&two);
    let mut replayed: Vec<String> = one
        .json()
        .iter()
        .chain(two.json().iter())
        .filter(|row| row["outcome"] == "replayed")
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect();
    replayed.sort();
    let mut expected = ids(&rows);
    expected.sort();
    assert_eq!(
        replayed, expected,
        "each replayed exactly once: {one:?} {two:?}"
    );

    // Named, as the loser of such a race finds it: already back in the
    // outbox — success, "already gone", nothing written twice.
    let late = app
        .admin(&["dead-letters", "replay", &ids(&rows)[0], "--json"])
        .await;
    assert_success(&late);
    assert_eq!(late.json()[0]["outcome"], "already_gone", "{late:?}");
    assert_eq!(late.json()[0]["id"], ids(&rows)[0].as_str());

    // Exactly one outbox item per dead letter, due now, counted as pending.
    assert!(app.dead_letters().await.is_empty());
    let to_kefu = app.waiting(Direction::ToKefu).await;
    let to_slack = app.waiting(Direction::ToSlack).await;
    let origins: Vec<&str> = to_kefu.iter().map(|i| i.origin.as_str()).collect();
    assert_eq!(origins, ["EvFIRST", "EvSECOND"]);
    assert_eq!(to_slack.len(), 1);
    assert_eq!(to_slack[0].origin, "m-reply-1");
    let conversation = app
        .bridge
        .store
        .get_conversation(&WorkspaceKey::Team(TEAM.into()), &visitor())
        .await
        .unwrap();
    assert_eq!(
        (conversation.to_kefu.pending, conversation.to_slack.pending),
        (2, 1)
    );
    let outbox = app.admin(&["outbox", "list", "--json"]).await;
    assert_success(&outbox);
    assert_eq!(outbox.json().len(), 3);

    // A message written now queues behind the replayed ones, so the drain
    // delivers all three in the order they were first sent.
    customer_says(&app, "EvTHIRD", "third", "1.3").await;
    assert!(app.easemob.texts().is_empty(), "jumped the queue");
    app.drain(Direction::ToKefu).await;
    app.drain(Direction::ToSlack).await;
    assert_eq!(app.easemob.texts(), ["first", "second", "third"]);
    let posts = app.slack.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(posts[0]["text"].as_str().unwrap().contains("an answer"));
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
    assert!(app.waiting(Direction::ToSlack).await.is_empty());
    let empty = app.admin(&["outbox", "list"]).await;
    assert_success(&empty);
    assert_eq!(empty.stdout.trim(), "The outbox is empty.");

    // Purge: one by id, then the rest; a second purge finds nothing.
    app.easemob
        .fail_always("messages", Fault::Error("illegal_argument".into()));
    customer_says(&app, "EvFOURTH", "fourth", "1.4").await;
    customer_says(&app, "EvFIFTH", "fifth", "1.5").await;
    let letters = app.admin(&["dead-letters", "list", "--json"]).await.json();
    assert_eq!(letters.len(), 2);
    let first = letters[0]["id"].as_str().unwrap();
    let purged = app.admin(&["dead-letters", "purge", first]).await;
    assert_success(&purged);
    assert!(purged.stdout.contains("purged"), "{purged:?}");
    let left = app.dead_letters().await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].item.origin, "EvFIFTH");
    let all = app
        .admin(&["dead-letters", "purge", "--all", "--json"])
        .await;
    assert_success(&all);
    assert_eq!(all.json().len(), 1);
    assert!(app.dead_letters().await.is_empty());
    let again = app.admin(&["dead-letters", "purge", "--all"]).await;
    assert_success(&again);
    assert_eq!(again.stdout.trim(), "No dead letters.");
    // Purged letters went nowhere.
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
}

#[tokio::test]
async fn bad_input_exits_non_zero_with_one_line_and_changes_nothing() {
    let app = app().await;
    three_dead_letters(&app).await;
    let before = ids(&app.admin(&["dead-letters", "list", "--json"]).await.json());
    let known = before[0].clone();
    let unknown = format!("TO_KEFU#{}#000000000099", visitor());

    // One unknown id among known ones: nothing is replayed or purged.
    for action in ["replay", "purge"] {
        let run = app.admin(&["dead-letters", action, &known, &unknown]).await;
        assert_refused(&run, "no such dead letter");
        assert!(run.stderr.contains(&unknown), "{run:?}");
    }
    let run = app.admin(&["dead-letters", "replay", "not-an-id"]).await;
    assert_refused(&run, "not a dead letter id");
    // Neither --all nor an id, or both: a usage error, in one line, exit 2.
    for args in [
        &["dead-letters", "replay"][..],
        &["dead-letters", "purge", "--all", &known][..],
        &["dead-letters", "resurrect"][..],
    ] {
        let run = app.admin(args).await;
        assert_refused(&run, "see --help");
        assert_eq!(run.status.code(), Some(2), "{run:?}");
    }

    // A table that does not exist.
    let run = app
        .admin(&[
            "--table",
            "no-such-table",
            "dead-letters",
            "replay",
            "--all",
        ])
        .await;
    assert_refused(&run, "does not exist");

    // No table at all.
    let env: Vec<(&str, String)> = app
        .admin_env()
        .into_iter()
        .filter(|(k, _)| *k != "TABLE_NAME")
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = finish(&mut admin_command(&["dead-letters", "list"], &env)).await;
    assert_refused(&run, "no table");

    // No credentials anywhere (no keys, no profile, no config file).
    let env: Vec<(&str, String)> = app
        .admin_env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = finish(&mut admin_command(
        &["dead-letters", "replay", "--all"],
        &env,
    ))
    .await;
    assert_refused(&run, "credentials");

    // Nothing changed through all of it.
    let after = ids(&app.admin(&["dead-letters", "list", "--json"]).await.json());
    assert_eq!(after, before);
    assert!(app.waiting(Direction::ToKefu).await.is_empty());
    assert!(app.waiting(Direction::ToSlack).await.is_empty());
}

#[tokio::test]
async fn installations_and_routes_as_json_and_tables_without_tokens() {
    let app = app().await;
    let installations = app.admin(&["installations", "list", "--json"]).await;
    assert_success(&installations);
    let rows = installations.json();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["workspace"], TEAM);
    assert_eq!(rows[0]["team_id"], TEAM);
    assert!(
        rows[0]["bot_id"]
            .as_str()
            .is_some_and(|id| id.starts_with('B')),
        "{rows:?}"
    );
    assert_eq!(rows[0]["needs_reinstall"], false);
    assert!(
        !installations.stdout.contains("xoxb") && !installations.stdout.contains("xoxe"),
        "a token was printed: {installations:?}"
    );
    let table = app.admin(&["installations", "list"]).await;
    assert_success(&table);
    assert!(
        table.stdout.lines().nth(1).unwrap().starts_with(TEAM),
        "{table:?}"
    );

    // Routes: workspace-wide and one channel; the relay reads the same records.
    assert_success(&app.admin(&["routes", "set", TEAM, "售前"]).await);
    let set = app
        .admin(&["routes", "set", TEAM, "C0SUPPORT", "after-sales", "--json"])
        .await;
    assert_success(&set);
    let routes = set.json();
    assert_eq!(routes.len(), 2, "{routes:?}");
    let stored = app
        .bridge
        .store
        .routes(&WorkspaceKey::Team(TEAM.into()))
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored
        .iter()
        .any(|r| r.channel.as_deref() == Some("C0SUPPORT") && r.queue == "after-sales"));
    assert!(stored
        .iter()
        .any(|r| r.channel.is_none() && r.queue == "售前"));
    let listed = app.admin(&["routes", "list"]).await;
    assert_success(&listed);
    assert!(listed.stdout.contains("after-sales") && listed.stdout.contains("售前"));

    // A workspace that never installed, a bad channel, an empty queue: refused,
    // nothing stored.
    assert_refused(
        &app.admin(&["routes", "set", "T0NOBODY", "sales"]).await,
        "has not installed",
    );
    assert_refused(
        &app.admin(&["routes", "set", TEAM, "U0PERSON", "sales"])
            .await,
        "not a channel id",
    );
    assert_refused(
        &app.admin(&["routes", "set", TEAM, "  "]).await,
        "not a Kefu skill group name",
    );
    assert!(app
        .bridge
        .store
        .routes(&WorkspaceKey::Team("T0NOBODY".into()))
        .await
        .unwrap()
        .is_empty());

    assert_success(&app.admin(&["routes", "unset", TEAM, "C0SUPPORT"]).await);
    let left = app.admin(&["routes", "list", TEAM, "--json"]).await.json();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["queue"], "售前");
}

#[tokio::test]
async fn a_workspaces_notice_language_is_set_and_listed() {
    let app = app().await;
    let key = WorkspaceKey::Team(TEAM.into());
    let before = app.admin(&["language", "list", "--json"]).await;
    assert_success(&before);
    assert_eq!(before.json()[0]["language"], "en");

    let set = app.admin(&["language", "set", TEAM, "zh", "--json"]).await;
    assert_success(&set);
    assert_eq!(set.json()[0]["language"], "zh");
    // The session notices read the same record.
    assert_eq!(
        app.bridge.store.notice_language(&key).await.unwrap(),
        NoticeLanguage::Chinese
    );
    let table = app.admin(&["language", "list", TEAM]).await;
    assert_success(&table);
    assert!(
        table.stdout.lines().nth(1).unwrap().contains("zh"),
        "{table:?}"
    );

    // Unknown language, unknown workspace: refused, nothing changed.
    assert_refused(
        &app.admin(&["language", "set", TEAM, "fr"]).await,
        "not a notice language",
    );
    assert_refused(
        &app.admin(&["language", "set", "T0NOBODY", "en"]).await,
        "has not installed",
    );
    assert_eq!(
        app.bridge.store.notice_language(&key).await.unwrap(),
        NoticeLanguage::Chinese
    );
}
