//! Helpers for OAuth flow tests.
