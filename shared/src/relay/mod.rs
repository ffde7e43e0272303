//! The two directions of the bridge as plain async functions over
//! [`HttpRequest`](crate::http_types::HttpRequest)s. Nothing here knows Lambda.

pub mod easemob_callback;
pub mod files;
pub mod interactivity;
pub mod oauth;
pub mod outbox;
pub mod outcome;
pub mod pipeline;
pub mod prompts;
pub mod recalls;
pub mod reply_parts;
pub mod routing;
pub mod session_notices;
pub mod slack_events;
pub mod to_kefu;
pub mod to_slack;
pub mod visitor_profile;
pub mod wakeups;
