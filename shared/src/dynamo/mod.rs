//! DynamoDB through the AWS SDK (`aws-config` + `aws-sdk-dynamodb`): the one
//! client a cold start builds, its bounds, and the kinds of failure the
//! store tells apart. Only `store/` sends requests with it.
//!
//! Region, credentials and endpoint come the standard way (`aws-config`:
//! environment — what Lambda sets for the function's role —, profiles,
//! container and instance credentials; `AWS_ENDPOINT_URL_DYNAMODB` honoured).
//!
//! Bounds (docs/design.md §2 "When Easemob fails": when DynamoDB is
//! unreachable, send nothing and answer 5xx so the sender retries; every
//! outbound call bounded so every answer leaves within Slack's 3 s):
//! - connect 1 s, read 2 s, and 2 s for the whole operation, retries
//!   included — the same per-call bound as every other outbound request
//!   (`bridge::CONNECT_TIMEOUT`, `bridge::REQUEST_TIMEOUT`);
//! - the SDK's standard retry mode, at most 2 attempts, backoff ≤ 50 ms:
//!   the second attempt catches a stale pooled connection, one 5xx or one
//!   throttle (the retry quota stops it during a real outage); a timed-out
//!   attempt has used the operation's 2 s, so it is never repeated. Longer
//!   retrying is the sender's (Slack, Easemob) or the outbox drain's job,
//!   after this invocation has answered 5xx. Writes are safe to repeat:
//!   conditional ones fail their condition the second time (read as "taken"
//!   or "in progress", never as done twice), counters only leave a gap, and
//!   the SDK gives `TransactWriteItems` one idempotency token for all
//!   attempts.

pub mod item;

use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation;

pub use aws_sdk_dynamodb::Client as DynamoClient;
pub use item::{Item, ItemExt};

use crate::bridge::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use crate::config::ConfigError;

/// At most this many attempts per DynamoDB operation.
const MAX_ATTEMPTS: u32 = 2;
/// The pause before the second attempt is drawn below this.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Region, credential providers and endpoint overrides from the standard
/// places (environment, profiles, and whatever providers the binary's
/// `aws-config` features enable — the admin CLI adds SSO). The credential
/// providers (container, instance, SSO) use the same HTTPS client.
pub async fn aws_config_from_env() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::v2026_01_12())
        .http_client(https_client())
        .load()
        .await
}

/// The AWS configuration a cold start reads once. Every AWS client of the
/// instance (DynamoDB here, SQS in `wakeup.rs`) is built from it. A missing
/// region is a configuration error here rather than a failed call on every
/// event.
pub async fn sdk_config_from_env() -> Result<aws_config::SdkConfig, ConfigError> {
    let shared = aws_config_from_env().await;
    require_region(&shared)?;
    Ok(shared)
}

fn require_region(shared: &aws_config::SdkConfig) -> Result<(), ConfigError> {
    match shared.region() {
        Some(_) => Ok(()),
        None => Err(ConfigError::Missing(vec!["AWS_REGION"])),
    }
}

/// A client over `shared`, with the bridge's bounds; none without a region.
pub fn client_with(shared: &aws_config::SdkConfig) -> Result<DynamoClient, ConfigError> {
    require_region(shared)?;
    Ok(client_from_config(shared))
}

/// A DynamoDB client over `shared`, with the bridge's bounds.
pub fn client_from_config(shared: &aws_config::SdkConfig) -> DynamoClient {
    DynamoClient::from_conf(bounded(aws_sdk_dynamodb::config::Builder::from(shared)).build())
}

/// A client for the DynamoDB at `endpoint` with fixed credentials and
/// nothing read from the environment (DynamoDB Local in tests and local
/// tools, which accepts any credentials), with the same bounds.
pub fn client_for_endpoint(endpoint: &str, access_key_id: &str, secret: &str) -> DynamoClient {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::v2026_01_12())
        .region(Region::from_static("us-east-1"))
        .credentials_provider(Credentials::new(access_key_id, secret, None, None, "fixed"))
        .endpoint_url(endpoint);
    DynamoClient::from_conf(bounded(config).build())
}

/// The module doc's bounds, on top of whatever else `builder` has.
fn bounded(builder: aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder {
    builder
        .http_client(https_client())
        .timeout_config(timeouts())
        .retry_config(retries())
}

/// The module doc's per-call bounds, for every AWS client of the bridge.
pub(crate) fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(REQUEST_TIMEOUT)
        .operation_attempt_timeout(REQUEST_TIMEOUT)
        .operation_timeout(REQUEST_TIMEOUT)
        .build()
}

/// The module doc's retries, for every AWS client of the bridge.
pub(crate) fn retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(RETRY_BACKOFF)
        .with_max_backoff(RETRY_BACKOFF)
}

/// smithy's hyper + rustls client on `ring`, the crypto reqwest already
/// links (the SDK's default would add aws-lc, a large C build).
pub(crate) fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    /// No answer in time, no connection, a 5xx, or a transaction that lost
    /// a race with another write: the caller answers 5xx so the sender
    /// retries, and sends nothing meanwhile (docs/design.md §2).
    #[error("DynamoDB unavailable: {0}")]
    Unavailable(String),
    /// The table's throughput is exceeded (still, after the SDK's retry):
    /// handled like [`DynamoError::Unavailable`], told apart in logs.
    #[error("DynamoDB throttled: {0}")]
    Throttled(String),
    /// A `ConditionExpression` did not hold; carries the item as it was when
    /// the request asked for `ReturnValuesOnConditionCheckFailure: ALL_OLD`.
    #[error("conditional check failed")]
    ConditionalCheckFailed(Option<Item>),
    /// The request itself is wrong (validation, missing table, …).
    #[error("DynamoDB refused the request: {kind}: {message}")]
    Rejected { kind: String, message: String },
}

impl DynamoError {
    /// Worth trying again later: unavailable or throttled.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DynamoError::Unavailable(_) | DynamoError::Throttled(_)
        )
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

/// An operation's error type, as [`DynamoError`] reads it.
pub trait OperationError: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static {
    /// `Some` when a condition did not hold, with the old item if it came.
    fn failed_condition(&self) -> Option<Option<Item>> {
        None
    }
}

impl<E: OperationError> From<SdkError<E, HttpResponse>> for DynamoError {
    fn from(error: SdkError<E, HttpResponse>) -> Self {
        let described = DisplayErrorContext(&error).to_string();
        let SdkError::ServiceError(context) = error else {
            // Timeouts, refused or broken connections, unreadable answers:
            // nothing (or nothing readable) came back.
            return DynamoError::Unavailable(described);
        };
        let server_error = context.raw().status().is_server_error();
        let error = context.into_err();
        if let Some(old) = error.failed_condition() {
            return DynamoError::ConditionalCheckFailed(old);
        }
        let kind = error.code().unwrap_or_default().to_string();
        match kind.as_str() {
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded" => DynamoError::Throttled(kind),
            // A transaction that lost a race with another write is worth
            // retrying like an outage; one whose condition failed is not
            // (its cancellation reasons were read above).
            "TransactionCanceledException"
            | "TransactionConflictException"
            | "TransactionInProgressException"
            | "InternalServerError"
            | "ServiceUnavailable" => DynamoError::Unavailable(described),
            _ if server_error => DynamoError::Unavailable(described),
            _ => DynamoError::Rejected {
                message: error.message().unwrap_or_default().to_string(),
                kind,
            },
        }
    }
}

impl OperationError for operation::get_item::GetItemError {}
impl OperationError for operation::query::QueryError {}
impl OperationError for operation::scan::ScanError {}
impl OperationError for operation::batch_write_item::BatchWriteItemError {}
impl OperationError for operation::create_table::CreateTableError {}
impl OperationError for operation::update_time_to_live::UpdateTimeToLiveError {}

impl OperationError for operation::put_item::PutItemError {
    fn failed_condition(&self) -> Option<Option<Item>> {
        match self {
            Self::ConditionalCheckFailedException(e) => Some(e.item().cloned()),
            _ => None,
        }
    }
}

impl OperationError for operation::update_item::UpdateItemError {
    fn failed_condition(&self) -> Option<Option<Item>> {
        match self {
            Self::ConditionalCheckFailedException(e) => Some(e.item().cloned()),
            _ => None,
        }
    }
}

impl OperationError for operation::delete_item::DeleteItemError {
    fn failed_condition(&self) -> Option<Option<Item>> {
        match self {
            Self::ConditionalCheckFailedException(e) => Some(e.item().cloned()),
            _ => None,
        }
    }
}

impl OperationError for operation::transact_write_items::TransactWriteItemsError {
    /// A transaction cancelled because one of its conditions did not hold.
    fn failed_condition(&self) -> Option<Option<Item>> {
        let Self::TransactionCanceledException(e) = self else {
            return None;
        };
        e.cancellation_reasons()
            .iter()
            .any(|reason| reason.code() == Some("ConditionalCheckFailed"))
            .then_some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::CancellationReason;

    fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
        let mut exception = TransactionCanceledException::builder();
        for code in codes {
            exception =
                exception.cancellation_reasons(CancellationReason::builder().code(*code).build());
        }
        TransactWriteItemsError::TransactionCanceledException(exception.build())
    }

    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;

    /// What a service error with `code` and HTTP `status` reads as.
    fn read(error: PutItemError, status: u16) -> DynamoError {
        let raw = HttpResponse::new(status.try_into().unwrap(), "{}".into());
        DynamoError::from(SdkError::service_error(error, raw))
    }

    fn coded(code: &str) -> PutItemError {
        PutItemError::generic(ErrorMetadata::builder().code(code).message("m").build())
    }

    #[test]
    fn service_errors_read_as_their_kind() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
        ] {
            let error = read(coded(code), 400);
            assert!(
                matches!(error, DynamoError::Throttled(_)),
                "{code}: {error:?}"
            );
            assert!(error.is_unavailable());
        }
        for (code, status) in [
            ("InternalServerError", 500),
            ("TransactionConflictException", 400),
            ("Anything", 503),
        ] {
            let error = read(coded(code), status);
            assert!(
                matches!(error, DynamoError::Unavailable(_)),
                "{code}: {error:?}"
            );
        }
        match read(coded("ValidationException"), 400) {
            DynamoError::Rejected { kind, message } => {
                assert_eq!(
                    (kind.as_str(), message.as_str()),
                    ("ValidationException", "m")
                )
            }
            other => panic!("{other:?}"),
        }
        let old: Item = [("status".to_string(), item::str_attr("completed"))].into();
        let failed = ConditionalCheckFailedException::builder()
            .set_item(Some(old.clone()))
            .build();
        match read(PutItemError::ConditionalCheckFailedException(failed), 400) {
            DynamoError::ConditionalCheckFailed(Some(item)) => assert_eq!(item, old),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_answer_is_unavailable() {
        let timeout: SdkError<PutItemError, HttpResponse> =
            SdkError::timeout_error("operation timed out");
        let error = DynamoError::from(timeout);
        assert!(matches!(error, DynamoError::Unavailable(_)), "{error:?}");
        assert!(!DynamoError::Rejected {
            kind: String::new(),
            message: String::new()
        }
        .is_unavailable());
    }

    #[test]
    fn a_transaction_cancelled_by_a_condition_is_a_failed_condition() {
        assert_eq!(
            cancelled(&["None", "ConditionalCheckFailed"]).failed_condition(),
            Some(None)
        );
        // Lost a race: retried later, not read as "the condition failed".
        assert_eq!(
            cancelled(&["None", "TransactionConflict"]).failed_condition(),
            None
        );
    }
}
