//! Easemob IM REST and Kefu (docs/design.md §3).

pub mod callback;
pub mod chatfiles;
pub mod client;
pub mod message;
pub mod session_event;
pub mod token;
pub mod visitor_message;

pub use client::{EasemobClient, EasemobError};
pub use message::{TextMessage, VisitorInfo};
pub use token::TokenProvider;
