//! The demo for someone without Slack or Easemob accounts: the local server
//! (the real handlers, over real HTTP) with DynamoDB Local and the fake Slack
//! and Easemob servers, playing one conversation: install, a customer's
//! message, an agent's reply, and the echoes that must not loop.

use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::{json, Value};

use crate::app::{event_callback, user_message, TestApp};
use crate::callback_kit::{agent_reply, echo_of_sent, slack_echoes_of_post};
use crate::local_server;
use crate::oauth_kit::oauth_access_answer;
use crate::signing::{slack_signature, LOCAL_SLACK_SIGNING_SECRET};

const TEAM: &str = "T0ACMECAFE";
const CUSTOMER: &str = "U0CUSTOMER";

/// What each side saw, one line per step.
#[derive(Debug, Default)]
pub struct Transcript {
    pub lines: Vec<String>,
    /// Counted at the end from the fakes' records.
    pub kefu_messages: usize,
    pub slack_posts: usize,
}

impl Transcript {
    fn say(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }
}

pub async fn run() -> Transcript {
    let mut transcript = Transcript::default();
    let app = TestApp::start().await;
    app.add_user(CUSTOMER, "casey", "Casey Customer");
    app.slack
        .add_team(json!({ "id": TEAM, "name": "Acme Cafe", "domain": "acmecafe" }));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(local_server::serve(
        listener,
        Ok(Arc::new(app.another_instance())),
    ));
    let http = reqwest::Client::new();
    transcript.say(format!(
        "Bridge serving every route on {base} (DynamoDB Local at {})",
        app.dynamodb_endpoint
    ));

    // 1. An admin installs the app: install page → Slack → callback.
    let page = http
        .get(format!("{base}/slack/install"))
        .send()
        .await
        .expect("install page");
    let cookie = page
        .headers()
        .get(SET_COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_string();
    let state = cookie
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    transcript.say(format!(
        "[admin]   GET /slack/install → {} \"Add to Slack\" page",
        page.status().as_u16()
    ));
    let mut answer = oauth_access_answer(TEAM, "Acme Cafe", "xoxb-acme-demo-token");
    answer["__redirect_uri"] = json!(format!("{base}/slack/oauth/callback"));
    app.slack_accepts_code_as_is("demo-code", &answer);
    let done = http
        .get(format!(
            "{base}/slack/oauth/callback?code=demo-code&state={state}"
        ))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("callback");
    transcript.say(format!(
        "[admin]   Slack approves → /slack/oauth/callback → {}: installed in Acme Cafe",
        done.status().as_u16()
    ));

    // 2. A customer writes to the bot in a DM.
    let event = event_callback(
        TEAM,
        "Ev0DEMO1",
        user_message(
            "D0CASEY",
            "im",
            CUSTOMER,
            "Hi! Can I get a flat white &amp; a muffin?",
            "1795687200.000100",
        ),
    );
    let status = post_slack_event(&http, &base, &event).await;
    transcript.say(format!("[slack]   Casey writes \"Hi! Can I get a flat white & a muffin?\" → /slack/events → {status}"));
    for message in app.easemob.messages() {
        let visitor = &message["ext"]["weichat"]["visitor"];
        transcript.say(format!(
            "[kefu]    agent sees {} ({}, {}): \"{}\"",
            visitor["userNickname"].as_str().unwrap_or(""),
            visitor["trueName"].as_str().unwrap_or(""),
            visitor["companyName"].as_str().unwrap_or(""),
            message["msg"]["msg"].as_str().unwrap_or("")
        ));
    }

    // 3. Easemob calls back with the visitor's own message: not for Slack.
    let sent = app
        .easemob
        .messages()
        .first()
        .cloned()
        .unwrap_or(Value::Null);
    let status = post_callback(&http, &base, &echo_of_sent(&sent, "900000000000000001")).await;
    transcript.say(format!(
        "[easemob] echo of Casey's own message → /easemob/callback → {status}, not posted"
    ));

    // 4. The agent answers in the Kefu workbench.
    let reply = agent_reply(
        "t0acmecafe_u0customer_d0casey",
        "900000000000000002",
        "Coming right up — 5 minutes <3",
    );
    let status = post_callback(&http, &base, &reply).await;
    transcript.say(format!(
        "[kefu]    Alice Agent replies → /easemob/callback → {status}"
    ));
    for post in app.slack.posts() {
        transcript.say(format!(
            "[slack]   Casey sees in {} from {}: \"{}\"",
            post["channel"].as_str().unwrap_or(""),
            post["username"].as_str().unwrap_or("the bot"),
            // As the Slack client renders it.
            kefu_bridge::slack::markup::unescape(post["text"].as_str().unwrap_or(""))
        ));
    }

    // 5. Slack emits the bot's post as message events: never forwarded.
    for (i, echo) in app
        .slack
        .posts()
        .iter()
        .flat_map(|p| slack_echoes_of_post(p, "Ev0ECHO"))
        .enumerate()
    {
        let status = post_slack_event(&http, &base, &echo).await;
        transcript.say(format!(
            "[slack]   bot post echoed back as event {} ({}) → {status}, not forwarded",
            i + 1,
            echo["event"]["subtype"].as_str().unwrap_or("with bot_id")
        ));
    }

    transcript.kefu_messages = app.easemob.messages().len();
    transcript.slack_posts = app.slack.posts().len();
    transcript.say(format!(
        "Totals: {} message(s) reached Kefu, {} post(s) reached Slack — no loops.",
        transcript.kefu_messages, transcript.slack_posts
    ));
    server.abort();
    transcript
}

async fn post_slack_event(http: &reqwest::Client, base: &str, event: &Value) -> u16 {
    let body = event.to_string();
    let now = kefu_bridge::clock::now_epoch_secs();
    http.post(format!("{base}/slack/events"))
        .header(CONTENT_TYPE, "application/json")
        .header("x-slack-request-timestamp", now.to_string())
        .header(
            "x-slack-signature",
            slack_signature(LOCAL_SLACK_SIGNING_SECRET, now, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn post_callback(http: &reqwest::Client, base: &str, callback: &Value) -> u16 {
    http.post(format!("{base}/easemob/callback"))
        .header(CONTENT_TYPE, "application/json")
        .body(callback.to_string())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
