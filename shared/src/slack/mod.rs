//! Slack: ids, request signatures, Events API payloads, markup, Web API.

pub mod events;
pub mod ids;
pub mod markup;
pub mod signature;
pub mod web;

pub use ids::{ChannelId, EnterpriseId, TeamId, UserId};
