//! The request each function is measured with, as an API Gateway v2 event
//! (for the binary under the emulator) and as the library's `HttpRequest`
//! (for the handler called in-process).

use std::sync::atomic::{AtomicU64, Ordering};

use bridge_tests::callback_kit::agent_message;
use bridge_tests::runtime_emulator::apigw_event;
use bridge_tests::signing::{slack_signature, LOCAL_SLACK_SIGNING_SECRET};
use kefu_bridge::clock::now_epoch_secs;
use kefu_bridge::http_types::{HttpRequest, HttpResponse};
use kefu_bridge::lambda::{classify, to_http_request, Incoming};
use kefu_bridge::relay::{easemob_callback, oauth, slack_events};
use kefu_bridge::Bridge;
use serde_json::{json, Value};

use crate::fixtures::{self, Conversation};

/// One of the three functions, and what it is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    SlackEvents,
    EasemobCallback,
    SlackOauth,
}

pub const FUNCTIONS: [Function; 3] = [
    Function::SlackEvents,
    Function::EasemobCallback,
    Function::SlackOauth,
];

/// Every Slack `event_id` and Easemob `msg_id` of a run is new: the claims
/// are real, so a repeated id would be answered as a duplicate.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl Function {
    /// Cargo package and binary name.
    pub fn name(self) -> &'static str {
        match self {
            Function::SlackEvents => "slack-events",
            Function::EasemobCallback => "easemob-callback",
            Function::SlackOauth => "slack-oauth",
        }
    }

    pub fn request(self) -> &'static str {
        match self {
            Function::SlackEvents => "Slack message forwarded to Kefu",
            Function::EasemobCallback => "agent reply posted to Slack",
            Function::SlackOauth => "install page `GET /slack/install`",
        }
    }

    /// The `i`-th request of a run, as API Gateway hands it to Lambda,
    /// signed now. The cold start always uses `i = 0`: the first DM.
    pub fn event(self, i: usize) -> Value {
        let conversation = fixtures::conversation(i);
        match self {
            Function::SlackEvents => slack_message_event(conversation, next_id()),
            Function::EasemobCallback => agent_reply_event(conversation, next_id()),
            Function::SlackOauth => apigw_event(
                "GET",
                "/slack/install",
                "",
                &[("accept", "text/html"), ("user-agent", "Mozilla/5.0")],
                None,
                false,
            ),
        }
    }

    /// The same request as the handler sees it, converted exactly as the
    /// function's `lambda::dispatch` converts it.
    pub fn http_request(self, i: usize) -> HttpRequest {
        match classify(self.event(i)) {
            Incoming::Http(event) => to_http_request(*event).expect("a valid request"),
            other => panic!("{}: not an HTTP event: {other:?}", self.name()),
        }
    }

    /// The library's handler for this function, called in-process.
    pub async fn handle(self, bridge: &Bridge, request: &HttpRequest) -> HttpResponse {
        match self {
            Function::SlackEvents => slack_events::handle(bridge, request).await,
            Function::EasemobCallback => easemob_callback::handle(bridge, request).await,
            Function::SlackOauth => oauth::handle(bridge, request).await,
        }
    }
}

fn slack_message_event(conversation: &Conversation, id: u64) -> Value {
    let event_id = format!("Ev0BENCH{id:08}");
    let ts = format!("1795687200.{:06}", id % 1_000_000);
    let body = fixtures::slack_event_body(&event_id, conversation, &ts);
    signed_slack_event(&body)
}

/// A Slack Events API `body` as API Gateway hands it to `slack-events`,
/// signed now with the local signing secret.
pub fn signed_slack_event(body: &str) -> Value {
    let timestamp = now_epoch_secs();
    let signature = slack_signature(LOCAL_SLACK_SIGNING_SECRET, timestamp, body.as_bytes());
    apigw_event(
        "POST",
        "/slack/events",
        "",
        &[
            ("content-type", "application/json"),
            ("user-agent", "Slackbot 1.0 (+https://api.slack.com/robots)"),
            ("x-slack-request-timestamp", &timestamp.to_string()),
            ("x-slack-signature", &signature),
        ],
        Some(body),
        false,
    )
}

fn agent_reply_event(conversation: &Conversation, id: u64) -> Value {
    // Easemob message ids are long decimal numbers.
    let msg_id = format!("{}", 1_234_567_890_000_000_000u64 + id);
    let callback = agent_message(
        &conversation.visitor(),
        &msg_id,
        json!([{ "type": "txt", "msg": fixtures::AGENT_TEXT }]),
        fixtures::agent_ext(),
    );
    apigw_event(
        "POST",
        "/easemob/callback",
        "",
        &[
            ("content-type", "application/json;charset=UTF-8"),
            ("user-agent", "Apache-HttpClient/4.5.13 (Java/1.8.0_292)"),
        ],
        Some(&callback.to_string()),
        false,
    )
}
