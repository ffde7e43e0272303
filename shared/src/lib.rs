//! The Slack ⇄ Easemob Kefu bridge as a library.
//!
//! The three Lambda functions (`slack-events`, `slack-oauth`,
//! `easemob-callback`) are thin: they build a [`Bridge`] once at cold start
//! and hand every invocation to [`lambda`], which turns API Gateway events
//! into plain [`http_types::HttpRequest`]s for the handlers in [`relay`].
//! Nothing below `lambda` knows about Lambda, so tests call the handlers
//! directly against real DynamoDB Local and fake Slack/Easemob servers.

pub mod bridge;
pub mod clock;
pub mod config;
pub mod dynamo;
pub mod easemob;
pub mod http_types;
pub mod lambda;
pub mod logging;
pub mod loop_guard;
pub mod metrics;
pub mod relay;
pub mod secret;
pub mod slack;
pub mod store;
pub mod visitor;
pub mod wakeup;

pub use bridge::Bridge;
pub use config::Config;
