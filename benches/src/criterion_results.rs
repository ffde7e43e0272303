//! Reads the medians criterion left in `target/criterion/hot_paths/*/new/`
//! (`estimates.json`, `benchmark.json`) for the BENCHMARKS.md summary.

use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

/// The criterion group `benches/hot_paths.rs` puts every benchmark in.
pub const GROUP: &str = "hot_paths";

#[derive(Debug, Clone)]
pub struct MicroResult {
    pub id: String,
    /// Median time per iteration and its 95% confidence interval, in ns.
    pub median_ns: f64,
    pub lower_ns: f64,
    pub upper_ns: f64,
    /// Input bytes per iteration, when the benchmark declared them.
    pub bytes: Option<u64>,
    pub measured_at: Option<SystemTime>,
}

impl MicroResult {
    /// Throughput in MB/s (10^6 bytes), when the input size is known.
    pub fn megabytes_per_sec(&self) -> Option<f64> {
        self.bytes
            .filter(|_| self.median_ns > 0.0)
            .map(|b| b as f64 / self.median_ns * 1_000.0)
    }
}

/// Every benchmark of [`GROUP`] under `target_dir/criterion`, by id.
pub fn read(target_dir: &Path) -> Vec<MicroResult> {
    let group = target_dir.join("criterion").join(GROUP);
    let Ok(entries) = std::fs::read_dir(&group) else {
        return Vec::new();
    };
    let mut results: Vec<MicroResult> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| read_one(&entry.path().join("new")))
        .collect();
    results.sort_by(|a, b| a.id.cmp(&b.id));
    results
}

fn read_one(dir: &Path) -> Option<MicroResult> {
    let estimates_path = dir.join("estimates.json");
    let estimates: Value = serde_json::from_slice(&std::fs::read(&estimates_path).ok()?).ok()?;
    let benchmark: Value =
        serde_json::from_slice(&std::fs::read(dir.join("benchmark.json")).ok()?).ok()?;
    let median = &estimates["median"];
    Some(MicroResult {
        id: benchmark["function_id"]
            .as_str()
            .or(benchmark["full_id"].as_str())?
            .to_string(),
        median_ns: median["point_estimate"].as_f64()?,
        lower_ns: median["confidence_interval"]["lower_bound"].as_f64()?,
        upper_ns: median["confidence_interval"]["upper_bound"].as_f64()?,
        bytes: benchmark["throughput"]["Bytes"]
            .as_u64()
            .or(benchmark["throughput"]["BytesDecimal"].as_u64()),
        measured_at: std::fs::metadata(&estimates_path)
            .and_then(|m| m.modified())
            .ok(),
    })
}

/// `812 ns`, `4.31 µs`, `1.20 ms`.
pub fn duration_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}
