//! Every way a command can fail, each with the one line the operator reads
//! (docs/design.md §1 "Admin CLI": non-zero exit with a one-line reason).
//! Nothing here names a token or a secret.

use aws_credential_types::provider::error::CredentialsError;
use kefu_bridge::config::ConfigError;
use kefu_bridge::dynamo::DynamoError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no table: pass --table or set TABLE_NAME (the stack's TableName output)")]
    NoTable,
    #[error("no AWS region: set AWS_REGION or give your AWS profile a region")]
    NoRegion,
    #[error("no usable AWS credentials ({0}): run `aws sso login`, set AWS_PROFILE, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    NoCredentials(String),
    #[error("table {0:?} does not exist in this account and region (check --table / TABLE_NAME and AWS_REGION)")]
    TableNotFound(String),
    #[error("AWS refused the request ({0}): check the credentials' permissions on the table")]
    AccessDenied(String),
    #[error("not a dead letter id: {0:?} (ids look like TO_KEFU#<visitor>#<seq>, as `dead-letters list` shows them)")]
    BadDeadLetterId(String),
    #[error("no such dead letter: {}; nothing changed", .0.join(", "))]
    UnknownDeadLetters(Vec<String>),
    #[error("not a workspace id: {0:?} (a Slack team id T… or enterprise id E…)")]
    BadWorkspace(String),
    #[error("not a channel id: {0:?} (a Slack channel id C…, G… or D…)")]
    BadChannel(String),
    #[error("not a Kefu skill group name: {0:?} (one short line of text)")]
    BadQueue(String),
    #[error("{0:?} is not a notice language: en or zh")]
    BadLanguage(String),
    #[error("workspace {0} has not installed the app (see `installations list`); nothing changed")]
    NotInstalled(String),
    #[error("{done} of {total} done, then: {cause}")]
    Interrupted {
        done: usize,
        total: usize,
        cause: Box<AdminError>,
    },
    #[error("{0}")]
    Config(ConfigError),
    #[error("DynamoDB: {0}")]
    Store(DynamoError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl AdminError {
    /// The AWS setup could not be read: no region or no credentials get
    /// their own line.
    pub fn from_config(error: ConfigError) -> Self {
        match &error {
            ConfigError::Missing(names) if names.contains(&"AWS_REGION") => AdminError::NoRegion,
            ConfigError::Missing(names) if names.contains(&"AWS_ACCESS_KEY_ID") => {
                AdminError::NoCredentials("none found".into())
            }
            _ => AdminError::Config(error),
        }
    }

    /// No credentials from the standard chain, or a provider that failed
    /// (an expired SSO session, a broken profile), on one line.
    pub fn from_credentials(error: CredentialsError) -> Self {
        match error {
            CredentialsError::CredentialsNotLoaded(_) => {
                AdminError::NoCredentials("none found".into())
            }
            other => AdminError::NoCredentials(one_line(&other)),
        }
    }

    /// A store failure in the operator's words: a missing table, refused
    /// credentials and missing credentials each get their own line.
    pub fn from_store(table: &str, error: DynamoError) -> Self {
        match &error {
            DynamoError::Rejected { kind, .. } if kind == "ResourceNotFoundException" => {
                AdminError::TableNotFound(table.to_string())
            }
            DynamoError::Rejected { kind, .. }
                if matches!(
                    kind.as_str(),
                    "UnrecognizedClientException"
                        | "InvalidSignatureException"
                        | "ExpiredTokenException"
                        | "MissingAuthenticationTokenException"
                ) =>
            {
                AdminError::NoCredentials(kind.clone())
            }
            DynamoError::Rejected { kind, .. } if kind == "AccessDeniedException" => {
                AdminError::AccessDenied(kind.clone())
            }
            _ => AdminError::Store(error),
        }
    }
}

/// An error and its causes on one line: `outer: inner: innermost`.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
