//! Test kit shared by the integration tests, the demo and the benchmarks:
//! Amazon DynamoDB Local (the real jar), fake Slack and Easemob servers on
//! 127.0.0.1 that check auth headers and record every request, request
//! signing, and a `TestApp` that wires a real `Bridge` to all of them.

pub mod admin_kit;
pub mod app;
pub mod blockkit_preview;
pub mod callback_kit;
pub mod demo;
pub mod dynamo_proxy;
pub mod dynamodb_local;
pub mod events;
pub mod fake_easemob;
pub mod fake_server;
pub mod fake_slack;
pub mod fake_sqs;
pub mod local_server;
pub mod local_sqs;
pub mod oauth_kit;
pub mod outbox_kit;
pub mod rich_kit;
pub mod runtime_emulator;
pub mod signing;
pub mod template;

pub use app::TestApp;
pub use fake_server::{Recorded, Reply};
