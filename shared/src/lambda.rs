//! The Lambda boundary (docs/design.md §1 "Events a function receives").
//!
//! Functions take the raw invocation payload and classify it themselves:
//! `lambda_http::run` can't take EventBridge Scheduled Events and panics
//! (HTTP 500) on a body flagged `isBase64Encoded` that isn't base64, so every
//! input here gets a deliberate answer instead. SQS events carry retry
//! wake-ups (docs/design.md §1 "Retry wake-ups (SQS)").

use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::bridge::Bridge;
use crate::config::Duties;
use crate::http_types::{HttpRequest, HttpResponse};
use crate::relay::{easemob_callback, interactivity, oauth, outbox, slack_events, wakeups};
use crate::store::Direction;

/// The three functions of docs/design.md §1: what each does with an HTTP request and
/// with a Scheduled Event. `main.rs` of each names its variant; the local
/// server routes by path to the same code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `POST /slack/events`, `POST /slack/interactivity`; drains to Kefu.
    SlackEvents,
    /// `GET /slack/install`, `GET /slack/oauth/callback`.
    SlackOAuth,
    /// `POST /easemob/callback`; drains to Slack.
    EasemobCallback,
}

impl Function {
    /// The outbox this function drains: the direction it delivers in
    /// (docs/design.md §1). slack-oauth delivers nothing.
    pub fn drains(self) -> Option<Direction> {
        match self {
            Function::SlackEvents => Some(Direction::ToKefu),
            Function::EasemobCallback => Some(Direction::ToSlack),
            Function::SlackOAuth => None,
        }
    }

    /// The function that drains `direction`'s outbox: [`Function::drains`]
    /// read backwards.
    pub fn draining(direction: Direction) -> Function {
        match direction {
            Direction::ToKefu => Function::SlackEvents,
            Direction::ToSlack => Function::EasemobCallback,
        }
    }

    /// What this function does, and so the only secrets it is given
    /// (docs/design.md §1; template.yaml sets the same per function).
    pub fn duties(self) -> Duties {
        match self {
            Function::SlackEvents => Duties {
                verifies_slack_requests: true,
                uses_easemob: true,
                verifies_easemob_callbacks: false,
                installs_app: false,
            },
            Function::SlackOAuth => Duties {
                verifies_slack_requests: false,
                uses_easemob: false,
                verifies_easemob_callbacks: false,
                installs_app: true,
            },
            Function::EasemobCallback => Duties {
                verifies_slack_requests: false,
                uses_easemob: true,
                verifies_easemob_callbacks: true,
                installs_app: false,
            },
        }
    }

    /// The function's name, as deployed and as the metrics' `Function`
    /// dimension (docs/design.md §1 "Metrics").
    pub fn name(self) -> &'static str {
        match self {
            Function::SlackEvents => "slack-events",
            Function::SlackOAuth => "slack-oauth",
            Function::EasemobCallback => "easemob-callback",
        }
    }

    /// The function serving `path` (a stage prefix like `/prod` is allowed).
    pub fn for_path(path: &str) -> Option<Self> {
        let path = path.trim_end_matches('/');
        let routes = [
            ("/slack/events", Function::SlackEvents),
            ("/slack/interactivity", Function::SlackEvents),
            ("/slack/install", Function::SlackOAuth),
            ("/slack/oauth/callback", Function::SlackOAuth),
            ("/easemob/callback", Function::EasemobCallback),
        ];
        routes
            .into_iter()
            .find(|(route, _)| path.ends_with(route))
            .map(|(_, function)| function)
    }

    pub async fn handle_http(self, bridge: &Bridge, request: &HttpRequest) -> HttpResponse {
        match self {
            // Slack posts interactivity as a form; an app may give it the
            // Events API URL too (docs/design.md §1).
            Function::SlackEvents
                if interactivity::is_interactivity_path(&request.path)
                    || request.has_media_type("application/x-www-form-urlencoded") =>
            {
                interactivity::handle(bridge, request).await
            }
            Function::SlackEvents => slack_events::handle(bridge, request).await,
            Function::SlackOAuth => oauth::handle(bridge, request).await,
            Function::EasemobCallback => easemob_callback::handle(bridge, request).await,
        }
    }

    /// Scheduled Events drain the outbox of the function's direction
    /// (template.yaml: every minute); slack-oauth has nothing to drain.
    pub async fn handle_scheduled(
        self,
        bridge: &Bridge,
        event: &EventBridgeEvent<Value>,
        deadline: std::time::Instant,
    ) -> Value {
        match self.drains() {
            Some(direction) => outbox::scheduled(bridge, direction, event, deadline).await,
            None => nothing_scheduled(event),
        }
    }

    /// SQS events bring retry wake-ups for the function's own direction
    /// (relay/wakeups.rs); slack-oauth has nothing to drain.
    pub async fn handle_sqs(
        self,
        bridge: &Bridge,
        event: SqsEvent,
        deadline: std::time::Instant,
    ) -> Value {
        match self.drains() {
            Some(direction) => wakeups::handle(bridge, direction, event, deadline).await,
            None => wakeups::nothing_to_drain(&event),
        }
    }
}

/// One invocation of `function`; `deadline_ms` is the invocation's deadline
/// (epoch ms, `LambdaEvent::context.deadline`).
pub async fn invoke(
    bridge: &Bridge,
    function: Function,
    payload: Value,
    deadline_ms: u64,
) -> Value {
    let deadline = outbox::drain_deadline(deadline_ms);
    dispatch_with_wakeups(
        payload,
        |request| async move { function.handle_http(bridge, &request).await },
        |event| async move { function.handle_scheduled(bridge, &event, deadline).await },
        |event| async move { function.handle_sqs(bridge, event, deadline).await },
    )
    .await
}

/// What an invocation carries.
#[derive(Debug)]
pub enum Incoming {
    Http(Box<ApiGatewayV2httpRequest>),
    Scheduled(Box<EventBridgeEvent<Value>>),
    /// Retry wake-ups from the function's SQS event source.
    Sqs(Box<SqsEvent>),
    /// Neither: answered with a 400-shaped response and a log line.
    Unrecognised(String),
}

pub fn classify(mut payload: Value) -> Incoming {
    let is_sqs = payload
        .get("Records")
        .and_then(|records| records.get(0))
        .and_then(|record| record.get("eventSource"))
        .is_some_and(|source| source == "aws:sqs");
    if is_sqs {
        return match serde_json::from_value(payload) {
            Ok(event) => Incoming::Sqs(Box::new(event)),
            Err(e) => Incoming::Unrecognised(format!("SQS event: {e}")),
        };
    }
    let is_scheduled = payload.get("detail-type").is_some() && payload.get("source").is_some();
    if is_scheduled {
        // EventBridge always sends `detail` ({} for a schedule); a caller
        // that leaves it out still means a scheduled run.
        if let Some(event) = payload.as_object_mut() {
            event
                .entry("detail")
                .or_insert_with(|| Value::Object(Default::default()));
        }
        return match serde_json::from_value(payload) {
            Ok(event) => Incoming::Scheduled(Box::new(event)),
            Err(e) => Incoming::Unrecognised(format!("scheduled event: {e}")),
        };
    }
    if payload.get("requestContext").is_some() || payload.get("routeKey").is_some() {
        return match serde_json::from_value(payload) {
            Ok(event) => Incoming::Http(Box::new(event)),
            Err(e) => Incoming::Unrecognised(format!("API Gateway v2 event: {e}")),
        };
    }
    Incoming::Unrecognised(
        "neither an API Gateway v2 request, a Scheduled Event nor an SQS event".into(),
    )
}

/// API Gateway v2 request → [`HttpRequest`]; a body flagged base64 that isn't
/// is answered 400 here.
pub fn to_http_request(event: ApiGatewayV2httpRequest) -> Result<HttpRequest, HttpResponse> {
    let body = match (event.body, event.is_base64_encoded) {
        (None, _) => Vec::new(),
        (Some(body), false) => body.into_bytes(),
        (Some(body), true) => base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|_| {
                tracing::warn!("request_body_not_base64");
                HttpResponse::text(400, "body is flagged isBase64Encoded but is not base64")
            })?,
    };
    let method = event.request_context.http.method.as_str().to_string();
    let path = event
        .raw_path
        .or(event.request_context.http.path)
        .unwrap_or_else(|| "/".to_string());
    let query = event
        .raw_query_string
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let public_base_url = event.request_context.domain_name.as_deref().map(|domain| {
        match event.request_context.stage.as_deref() {
            Some(stage) if !stage.is_empty() && stage != "$default" => {
                format!("https://{domain}/{stage}")
            }
            _ => format!("https://{domain}"),
        }
    });
    Ok(HttpRequest {
        method,
        path,
        headers: event.headers,
        query,
        cookies: event.cookies.unwrap_or_default(),
        body,
        public_base_url,
    })
}

pub fn to_apigw_response(response: HttpResponse) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(response.status);
    out.headers = headers;
    out.body = Some(Body::Text(response.body));
    out.is_base64_encoded = false;
    out.cookies = response.cookies;
    out
}

/// [`dispatch_with_wakeups`] for a caller that drains no wake-ups: an SQS
/// event is answered with nothing to see again.
pub async fn dispatch<H, HF, S, SF>(payload: Value, http: H, scheduled: S) -> Value
where
    H: FnOnce(HttpRequest) -> HF,
    HF: Future<Output = HttpResponse>,
    S: FnOnce(EventBridgeEvent<Value>) -> SF,
    SF: Future<Output = Value>,
{
    dispatch_with_wakeups(payload, http, scheduled, |event| async move {
        wakeups::nothing_to_drain(&event)
    })
    .await
}

/// One invocation: HTTP requests go to `http`, Scheduled Events to
/// `scheduled`, SQS events to `sqs`, anything else gets a 400 and a log
/// line. Never an `Err`, so API Gateway never turns a handler error into an
/// anonymous 500.
pub async fn dispatch_with_wakeups<H, HF, S, SF, Q, QF>(
    payload: Value,
    http: H,
    scheduled: S,
    sqs: Q,
) -> Value
where
    H: FnOnce(HttpRequest) -> HF,
    HF: Future<Output = HttpResponse>,
    S: FnOnce(EventBridgeEvent<Value>) -> SF,
    SF: Future<Output = Value>,
    Q: FnOnce(SqsEvent) -> QF,
    QF: Future<Output = Value>,
{
    match classify(payload) {
        Incoming::Http(event) => {
            let response = match to_http_request(*event) {
                Ok(request) => http(request).await,
                Err(response) => response,
            };
            serde_json::to_value(to_apigw_response(response)).unwrap_or(Value::Null)
        }
        Incoming::Scheduled(event) => scheduled(*event).await,
        Incoming::Sqs(event) => sqs(*event).await,
        Incoming::Unrecognised(reason) => {
            tracing::warn!(reason, "invocation_unrecognised");
            serde_json::to_value(to_apigw_response(HttpResponse::text(
                400,
                "unrecognised event",
            )))
            .unwrap_or(Value::Null)
        }
    }
}

/// Tells Lambda why the function could not start (`/runtime/init/error`),
/// logs it, and hands the error back for `main` to return: Lambda then shows
/// the named missing variable instead of a bare "Runtime exited".
pub async fn report_init_error(
    error: impl std::fmt::Display,
) -> Box<dyn std::error::Error + Send + Sync> {
    let message = error.to_string();
    tracing::error!(error = %message, "init_error");
    if let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") {
        let body =
            serde_json::json!({ "errorType": "Runtime.ConfigError", "errorMessage": message });
        let sent = reqwest::Client::new()
            .post(format!("http://{api}/2018-06-01/runtime/init/error"))
            .header("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
            .json(&body)
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await;
        if let Err(e) = sent {
            tracing::error!(error = %crate::http_types::describe_http(&e), "init_error_not_reported");
        }
    }
    message.into()
}

/// What a function answers a Scheduled Event when it has nothing to drain.
pub fn nothing_scheduled(event: &EventBridgeEvent<Value>) -> Value {
    tracing::info!(source = %event.source, outcome = "nothing_to_do", "scheduled_event");
    serde_json::json!({ "drained": 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outbox_is_drained_by_the_function_that_drains_it() {
        for direction in [Direction::ToKefu, Direction::ToSlack] {
            assert_eq!(Function::draining(direction).drains(), Some(direction));
        }
        assert_eq!(Function::SlackOAuth.drains(), None);
    }

    fn apigw(body: &str, base64: bool) -> Value {
        serde_json::json!({
            "version": "2.0", "routeKey": "POST /slack/events", "rawPath": "/slack/events",
            "rawQueryString": "a=1&b=x%20y", "cookies": ["c=1"],
            "headers": { "Content-Type": "application/json" },
            "requestContext": {
                "domainName": "abc.execute-api.us-east-1.amazonaws.com", "stage": "$default",
                "http": { "method": "POST", "path": "/slack/events" }
            },
            "body": body, "isBase64Encoded": base64
        })
    }

    #[test]
    fn api_gateway_events_become_requests() {
        let Incoming::Http(event) = classify(apigw("eyJhIjoxfQ==", true)) else {
            panic!()
        };
        let request = to_http_request(*event).unwrap();
        assert_eq!(request.body, br#"{"a":1}"#);
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/slack/events");
        assert_eq!(request.query_param("b"), Some("x y"));
        assert_eq!(request.cookie("c"), Some("1"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            request.public_base_url.as_deref(),
            Some("https://abc.execute-api.us-east-1.amazonaws.com")
        );
    }

    #[test]
    fn a_base64_flag_that_lies_is_a_400() {
        let Incoming::Http(event) = classify(apigw("not base64!", true)) else {
            panic!()
        };
        assert_eq!(to_http_request(*event).unwrap_err().status, 400);
    }

    #[test]
    fn every_route_of_the_contract_has_its_function() {
        assert_eq!(
            Function::for_path("/slack/events"),
            Some(Function::SlackEvents)
        );
        assert_eq!(
            Function::for_path("/prod/slack/interactivity"),
            Some(Function::SlackEvents)
        );
        assert_eq!(
            Function::for_path("/slack/install"),
            Some(Function::SlackOAuth)
        );
        assert_eq!(
            Function::for_path("/slack/oauth/callback/"),
            Some(Function::SlackOAuth)
        );
        assert_eq!(
            Function::for_path("/easemob/callback"),
            Some(Function::EasemobCallback)
        );
        assert_eq!(Function::for_path("/slack/eventsX"), None);
        assert_eq!(Function::for_path("/"), None);
    }

    #[test]
    fn scheduled_events_are_recognised() {
        let payload = serde_json::json!({
            "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "1", "time": "2026-11-26T10:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {}
        });
        assert!(matches!(classify(payload), Incoming::Scheduled(_)));
        // As the contract writes it, without `detail` or the envelope.
        let minimal =
            serde_json::json!({ "source": "aws.events", "detail-type": "Scheduled Event" });
        assert!(matches!(classify(minimal), Incoming::Scheduled(_)));
        assert!(matches!(
            classify(serde_json::json!({"x": 1})),
            Incoming::Unrecognised(_)
        ));
    }

    #[test]
    fn sqs_events_are_recognised() {
        let payload = serde_json::json!({ "Records": [{
            "messageId": "m1", "receiptHandle": "r1", "body": "{}",
            "attributes": {}, "messageAttributes": {}, "md5OfBody": "x",
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
            "awsRegion": "us-east-1"
        }]});
        let Incoming::Sqs(event) = classify(payload) else {
            panic!()
        };
        assert_eq!(event.records[0].message_id.as_deref(), Some("m1"));
        let other = serde_json::json!({ "Records": [{ "eventSource": "aws:s3" }] });
        assert!(matches!(classify(other), Incoming::Unrecognised(_)));
    }
}
