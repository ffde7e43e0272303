//! Helpers for Easemob callback tests: signed callback bodies, echo loops.
