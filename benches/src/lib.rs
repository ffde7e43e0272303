//! Benchmarks of the bridge: criterion micro-benchmarks of the hot pure code
//! (`benches/hot_paths.rs`) and a command (`src/main.rs`, run by
//! `scripts/bench`) that measures each function's release binary under the
//! Lambda Runtime API emulator against the local fakes and DynamoDB Local
//! and writes BENCHMARKS.md; with `--backlog`, the backlog drain
//! (`src/backlog.rs`).

pub mod backlog;
pub mod criterion_results;
pub mod fixtures;
pub mod machine;
pub mod measure;
pub mod noop;
pub mod report;
pub mod scenarios;
pub mod stats;
