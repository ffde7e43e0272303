//! Slack: ids, request signatures, Events API and interactivity payloads,
//! markup, Block Kit, Web API (with the bot token it is called with) and files.

pub mod blocks;
pub mod bot_token;
pub mod events;
pub mod files;
pub mod ids;
pub mod interactivity;
pub mod markup;
pub mod signature;
pub mod web;

pub use ids::{ChannelId, EnterpriseId, TeamId, UserId};
