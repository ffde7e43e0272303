//! A small DynamoDB client: the JSON protocol over HTTPS, signed with SigV4.
//!
//! Why not the AWS SDK: the bridge uses six DynamoDB operations. The SDK
//! (aws-config + aws-sdk-dynamodb + its HTTP stack) roughly triples cold build
//! time on CI's 2 cores, adds megabytes to each binary and milliseconds to
//! every cold start. This client reuses the one `reqwest` client the bridge
//! already has, so its timeouts are the bridge's own (docs/design.md §2: connect ≈1 s,
//! read ≈2 s), and it honours the standard `AWS_ENDPOINT_URL_DYNAMODB`
//! override and the credentials Lambda puts in the environment.

mod client;
pub mod item;
pub mod sigv4;

pub use client::{condition_held, Credentials, DynamoClient, DynamoError};
pub use item::{Item, ItemExt};
