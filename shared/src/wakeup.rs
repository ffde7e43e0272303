//! Retry wake-ups through Amazon SQS (docs/design.md §1 "Retry wake-ups
//! (SQS)").
//!
//! When a message goes to the outbox, the function sends one SQS message
//! to its own `RETRY_QUEUE_URL`, delayed until the conversation's next
//! attempt; Lambda hands it back as an SQS event and the function drains
//! that one conversation (relay/wakeups.rs). Wake-ups may be duplicated,
//! late or lost: the outbox in DynamoDB stays the truth and the minute
//! schedule stays the safety net, so a wake-up that cannot be sent is
//! logged and never fails the message.
//!
//! The client is built once per cold start from the same AWS configuration
//! as DynamoDB's, with the same bounds (dynamo/mod.rs); `AWS_ENDPOINT_URL_SQS`
//! is honoured by `aws-config` itself.

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::DisplayErrorContext;
use serde::{Deserialize, Serialize};

pub use aws_sdk_sqs::Client as SqsClient;

use crate::dynamo;
use crate::slack::ids::is_slack_id;
use crate::store::{Direction, WorkspaceKey};
use crate::visitor::VisitorId;

/// SQS delays a message by at most 15 minutes; later attempts are left to
/// the minute schedule.
pub const MAX_DELAY_SECS: i64 = 900;

/// What a wake-up names: one conversation of one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeUp {
    pub direction: Direction,
    pub workspace: WorkspaceKey,
    /// The visitor id exactly as the outbox keys it.
    pub visitor: String,
}

/// The body of the SQS message, e.g.
/// `{"direction":"ToKefu","workspace":"T1","visitor":"T1_U2_C3"}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    direction: BodyDirection,
    workspace: String,
    visitor: String,
}

#[derive(Debug, Serialize, Deserialize)]
enum BodyDirection {
    ToKefu,
    ToSlack,
}

/// Why a record's body is not a wake-up. It never gets better, so such a
/// record is logged and not retried.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WakeUpError {
    #[error("body is not a wake-up: {0}")]
    Unreadable(String),
    #[error("workspace {0:?} is not a Slack workspace id")]
    Workspace(String),
    #[error("visitor {0:?} is not a visitor id of that workspace")]
    Visitor(String),
}

impl WakeUp {
    pub fn to_body(&self) -> String {
        let body = Body {
            direction: match self.direction {
                Direction::ToKefu => BodyDirection::ToKefu,
                Direction::ToSlack => BodyDirection::ToSlack,
            },
            workspace: self.workspace.id().to_string(),
            visitor: self.visitor.clone(),
        };
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// Reads and checks a record's body: the workspace is a Slack id and the
    /// visitor id is one of that workspace's.
    pub fn parse(body: &str) -> Result<Self, WakeUpError> {
        let body: Body =
            serde_json::from_str(body).map_err(|e| WakeUpError::Unreadable(e.to_string()))?;
        if !is_slack_id(&body.workspace) {
            return Err(WakeUpError::Workspace(body.workspace));
        }
        match VisitorId::decode(&body.visitor) {
            Ok(visitor) if visitor.workspace() == body.workspace => {}
            _ => return Err(WakeUpError::Visitor(body.visitor)),
        }
        Ok(Self {
            direction: match body.direction {
                BodyDirection::ToKefu => Direction::ToKefu,
                BodyDirection::ToSlack => Direction::ToSlack,
            },
            workspace: WorkspaceKey::from_id(&body.workspace),
            visitor: body.visitor,
        })
    }
}

/// Where this function sends its wake-ups; off without `RETRY_QUEUE_URL`
/// (the minute schedule alone then).
#[derive(Debug, Clone, Default)]
pub struct RetryQueue {
    target: Option<(SqsClient, String)>,
}

impl RetryQueue {
    pub fn off() -> Self {
        Self::default()
    }

    /// Sends to `queue_url` with `client`; `None` is off.
    pub fn new(client: SqsClient, queue_url: Option<String>) -> Self {
        Self {
            target: queue_url.map(|url| (client, url)),
        }
    }

    pub fn is_on(&self) -> bool {
        self.target.is_some()
    }

    /// Asks SQS to wake this function in `delay_secs` (clamped to what SQS
    /// allows) for `wake_up`'s conversation. Best effort: a failure is
    /// logged, never returned.
    pub async fn send(&self, wake_up: &WakeUp, delay_secs: i64) {
        let Some((client, url)) = &self.target else {
            return;
        };
        let delay = delay_secs.clamp(0, MAX_DELAY_SECS) as i32;
        let sent = client
            .send_message()
            .queue_url(url)
            .message_body(wake_up.to_body())
            .delay_seconds(delay)
            .send()
            .await;
        match sent {
            Ok(_) => tracing::info!(
                direction = wake_up.direction.tag(),
                visitor = %wake_up.visitor,
                delay,
                "retry_wakeup_sent"
            ),
            Err(error) => tracing::warn!(
                direction = wake_up.direction.tag(),
                visitor = %wake_up.visitor,
                error = %DisplayErrorContext(&error),
                "retry_wakeup_not_sent"
            ),
        }
    }
}

/// The SQS client of a cold start, from the same configuration as
/// DynamoDB's and with the same bounds.
pub fn client_from_config(shared: &aws_config::SdkConfig) -> SqsClient {
    SqsClient::from_conf(bounded(aws_sdk_sqs::config::Builder::from(shared)).build())
}

/// A client for the SQS at `endpoint` with fixed credentials and nothing
/// read from the environment (a local SQS in tests and `scripts/dev`).
pub fn client_for_endpoint(endpoint: &str) -> SqsClient {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::v2026_01_12())
        .region(Region::from_static("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "fixed"))
        .endpoint_url(endpoint);
    SqsClient::from_conf(bounded(config).build())
}

fn bounded(builder: aws_sdk_sqs::config::Builder) -> aws_sdk_sqs::config::Builder {
    builder
        .http_client(dynamo::https_client())
        .timeout_config(dynamo::timeouts())
        .retry_config(dynamo::retries())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_up_reads_back_what_was_sent() {
        let wake_up = WakeUp {
            direction: Direction::ToSlack,
            workspace: WorkspaceKey::Team("T1".into()),
            visitor: "T1_U2_C3".into(),
        };
        let body = wake_up.to_body();
        assert_eq!(
            body,
            r#"{"direction":"ToSlack","workspace":"T1","visitor":"T1_U2_C3"}"#
        );
        assert_eq!(WakeUp::parse(&body), Ok(wake_up));
    }

    #[test]
    fn bodies_that_are_not_wake_ups_are_refused() {
        let refused = |body: &str| WakeUp::parse(body).is_err();
        assert!(refused("not json"));
        assert!(refused(
            r#"{"direction":"Sideways","workspace":"T1","visitor":"T1_U2_C3"}"#
        ));
        assert!(refused(
            r#"{"direction":"ToKefu","workspace":"t1!","visitor":"T1_U2_C3"}"#
        ));
        assert!(refused(
            r#"{"direction":"ToKefu","workspace":"T9","visitor":"T1_U2_C3"}"#
        ));
        assert!(refused(
            r#"{"direction":"ToKefu","workspace":"T1","visitor":"../x"}"#
        ));
    }
}
