use serde_json::Value;

use super::sigv4::{self, SigningInput};
use super::Item;
use crate::clock::now_epoch_secs;
use crate::secret::Secret;

#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    /// Network error, timeout, throttling or a 5xx: the caller answers 5xx so
    /// the sender retries, and sends nothing meanwhile (docs/design.md §2).
    #[error("DynamoDB unavailable: {0}")]
    Unavailable(String),
    /// A `ConditionExpression` did not hold; carries the item as it was when
    /// the request asked for `ReturnValuesOnConditionCheckFailure: ALL_OLD`.
    #[error("conditional check failed")]
    ConditionalCheckFailed(Option<Item>),
    #[error("DynamoDB refused the request: {kind}: {message}")]
    Rejected { kind: String, message: String },
}

impl DynamoError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DynamoError::Unavailable(_))
    }
}

/// The outcome of a conditional write: `Ok(true)` written, `Ok(false)` the
/// condition did not hold, `Err` anything else.
pub fn condition_held<T>(result: Result<T, DynamoError>) -> Result<bool, DynamoError> {
    match result {
        Ok(_) => Ok(true),
        Err(DynamoError::ConditionalCheckFailed(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// A failed connection is retried once only when it failed this fast.
const QUICK_FAILURE: std::time::Duration = std::time::Duration::from_millis(500);
const CONNECT_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// How one HTTP exchange with DynamoDB ended, when not with an answer.
enum Attempt {
    /// No connection was made: the request never reached DynamoDB.
    NotConnected(String),
    Failed(DynamoError),
}

impl Attempt {
    fn into_error(self) -> DynamoError {
        match self {
            Attempt::NotConnected(reason) => DynamoError::Unavailable(reason),
            Attempt::Failed(error) => error,
        }
    }
}

#[derive(Clone)]
pub struct DynamoClient {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    region: String,
    credentials: Credentials,
}

impl DynamoClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        region: &str,
        credentials: Credentials,
    ) -> Result<Self, String> {
        let url = url::Url::parse(endpoint).map_err(|e| format!("{endpoint}: {e}"))?;
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => return Err(format!("{endpoint}: no host")),
        };
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string() + "/",
            host,
            region: region.to_string(),
            credentials,
        })
    }

    /// Endpoint, region and credentials from the standard AWS variables:
    /// `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`), `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN` — what Lambda sets for the function's role.
    pub fn from_env(http: reqwest::Client) -> Result<Self, crate::config::ConfigError> {
        Self::from_lookup(http, |name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        http: reqwest::Client,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::config::ConfigError> {
        use crate::config::ConfigError;
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let endpoint_override =
            get("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| get("AWS_ENDPOINT_URL"));
        let credentials = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Credentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
            },
            // DynamoDB Local accepts any credentials; don't make local runs
            // invent some. Real AWS always gets the role's.
            _ if endpoint_override.is_some() => Credentials {
                access_key_id: "local".into(),
                secret_access_key: Secret::new("local"),
                session_token: None,
            },
            _ => {
                return Err(ConfigError::Missing(vec![
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                ]))
            }
        };
        let endpoint =
            endpoint_override.unwrap_or_else(|| format!("https://dynamodb.{region}.amazonaws.com"));
        Self::new(http, &endpoint, &region, credentials).map_err(|reason| ConfigError::Invalid {
            name: "AWS_ENDPOINT_URL_DYNAMODB",
            reason,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One DynamoDB operation (`GetItem`, `PutItem`, …) with its JSON input.
    ///
    /// A connection that could not be opened (refused, reset before the
    /// request left) is tried once more after a short pause: the request
    /// never reached DynamoDB, so repeating it is safe even for writes, and
    /// a Lambda instance's pooled connection going stale is common. Nothing
    /// else is retried here (a timeout may have been applied; throttling and
    /// 5xx go back to the caller, which answers 5xx so the sender retries),
    /// and the retry is only taken when the failure was quick, so the whole
    /// call stays inside the client's connect + request bounds (docs/design.md §2).
    pub async fn call(&self, operation: &str, input: &Value) -> Result<Value, DynamoError> {
        let body = serde_json::to_vec(input).map_err(|e| DynamoError::Rejected {
            kind: "SerializationException".into(),
            message: e.to_string(),
        })?;
        let started = std::time::Instant::now();
        match self.attempt(operation, &body).await {
            Err(Attempt::NotConnected(reason)) if started.elapsed() < QUICK_FAILURE => {
                tracing::info!(operation, reason, "dynamodb_connection_retry");
                tokio::time::sleep(CONNECT_RETRY_PAUSE).await;
                self.attempt(operation, &body)
                    .await
                    .map_err(Attempt::into_error)
            }
            other => other.map_err(Attempt::into_error),
        }
    }

    /// One HTTP exchange with DynamoDB.
    async fn attempt(&self, operation: &str, body: &[u8]) -> Result<Value, Attempt> {
        let body = body.to_vec();
        let now = now_epoch_secs();
        let amz_date = sigv4::amz_date(now);
        let target = format!("DynamoDB_20120810.{operation}");
        let content_type = "application/x-amz-json-1.0";
        let mut headers: Vec<(&str, &str)> = vec![
            ("content-type", content_type),
            ("host", &self.host),
            ("x-amz-date", &amz_date),
            ("x-amz-target", &target),
        ];
        if let Some(token) = &self.credentials.session_token {
            headers.push(("x-amz-security-token", token.expose()));
        }
        let authorization = sigv4::authorization(
            &SigningInput {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body: &body,
                region: &self.region,
                service: "dynamodb",
                epoch_secs: now,
            },
            &self.credentials.access_key_id,
            self.credentials.secret_access_key.expose(),
        );
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("content-type", content_type)
            .header("x-amz-date", &amz_date)
            .header("x-amz-target", &target)
            .header("authorization", authorization)
            .body(body);
        if let Some(token) = &self.credentials.session_token {
            request = request.header("x-amz-security-token", token.expose());
        }
        let response = request.send().await.map_err(|e| {
            let reason = format!("{operation}: {}", crate::http_types::describe_http(&e));
            if e.is_connect() && !e.is_timeout() {
                Attempt::NotConnected(reason)
            } else {
                Attempt::Failed(DynamoError::Unavailable(reason))
            }
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            Attempt::Failed(DynamoError::Unavailable(format!(
                "{operation}: {}",
                crate::http_types::describe_http(&e)
            )))
        })?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        Err(Attempt::Failed(Self::error_from(operation, status, &value)))
    }

    /// DynamoDB's error document → [`DynamoError`].
    fn error_from(operation: &str, status: reqwest::StatusCode, value: &Value) -> DynamoError {
        let kind = value
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
            .unwrap_or_default();
        let message = value
            .get("message")
            .or_else(|| value.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if kind == "ConditionalCheckFailedException" {
            let old = value.get("Item").and_then(Value::as_object).cloned();
            return DynamoError::ConditionalCheckFailed(old);
        }
        // A transaction that lost a race with another write is worth
        // retrying like throttling; one whose condition failed is not.
        let conflict = kind == "TransactionInProgressException"
            || (kind == "TransactionCanceledException" && message.contains("TransactionConflict"));
        if conflict
            || status.is_server_error()
            || matches!(
                kind.as_str(),
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
            )
        {
            return DynamoError::Unavailable(format!("{operation}: {status} {kind}"));
        }
        DynamoError::Rejected { kind, message }
    }

    /// Every item a `Query` matches, following `LastEvaluatedKey` page by page.
    pub async fn query_all(&self, mut input: Value) -> Result<Vec<Item>, DynamoError> {
        let mut items = Vec::new();
        loop {
            let out = self.call("Query", &input).await?;
            items.extend(
                out.get("Items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .cloned(),
            );
            match out.get("LastEvaluatedKey") {
                Some(key) if !key.is_null() => input["ExclusiveStartKey"] = key.clone(),
                _ => return Ok(items),
            }
        }
    }

    pub async fn get_item(&self, table: &str, key: Value) -> Result<Option<Item>, DynamoError> {
        let out = self
            .call(
                "GetItem",
                &serde_json::json!({ "TableName": table, "Key": key, "ConsistentRead": true }),
            )
            .await?;
        Ok(out.get("Item").and_then(Value::as_object).cloned())
    }
}
