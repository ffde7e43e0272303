//! One-time OAuth `state` records.
