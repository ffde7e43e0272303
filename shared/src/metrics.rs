//! Metrics as CloudWatch Embedded Metric Format (docs/design.md §1
//! "Metrics"): one JSON document per line on stdout, which CloudWatch Logs
//! turns into metrics — no network call on the request path, and the numbers
//! sit in the same log stream as the structured log lines that explain them.
//!
//! Every document carries the dimension `Function` and, where a message moves
//! in one direction, `Direction` (`ToKefu` | `ToSlack`); `DeliveryFailed`
//! adds `Reason` (a failure kind, never free text, so the metric's
//! cardinality stays small).

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::clock::now_epoch_millis;
use crate::store::Direction;

/// The namespace when `METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "KefuBridge";

/// Every metric the bridge writes, with its CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    MessagesDelivered,
    DuplicatesDropped,
    LoopsPrevented,
    OutboxQueued,
    DeadLettered,
    DeliveryFailed,
    DeliveryLatency,
    OutboxDepth,
    OutboxOldestAgeSeconds,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::MessagesDelivered => "MessagesDelivered",
            Metric::DuplicatesDropped => "DuplicatesDropped",
            Metric::LoopsPrevented => "LoopsPrevented",
            Metric::OutboxQueued => "OutboxQueued",
            Metric::DeadLettered => "DeadLettered",
            Metric::DeliveryFailed => "DeliveryFailed",
            Metric::DeliveryLatency => "DeliveryLatency",
            Metric::OutboxDepth => "OutboxDepth",
            Metric::OutboxOldestAgeSeconds => "OutboxOldestAgeSeconds",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Metric::DeliveryLatency => "Milliseconds",
            Metric::OutboxOldestAgeSeconds => "Seconds",
            _ => "Count",
        }
    }
}

/// The `Direction` dimension's value.
pub fn direction_dimension(direction: Direction) -> &'static str {
    match direction {
        Direction::ToKefu => "ToKefu",
        Direction::ToSlack => "ToSlack",
    }
}

/// Who a set of values is about: the function, and the direction and failure
/// kind where they apply.
#[derive(Debug, Clone, Copy)]
pub struct Dimensions<'a> {
    pub function: &'static str,
    pub direction: Option<Direction>,
    pub reason: Option<&'a str>,
}

/// One EMF document: `_aws` metadata naming the metrics and their dimension
/// set, then the dimension values and the metric values as top-level members.
pub fn document(
    namespace: &str,
    timestamp_ms: i64,
    dimensions: Dimensions<'_>,
    values: &[(Metric, f64)],
) -> Value {
    let mut names = vec!["Function"];
    let mut root = Map::new();
    root.insert("Function".into(), json!(dimensions.function));
    if let Some(direction) = dimensions.direction {
        names.push("Direction");
        root.insert("Direction".into(), json!(direction_dimension(direction)));
    }
    if let Some(reason) = dimensions.reason {
        names.push("Reason");
        root.insert("Reason".into(), json!(reason));
    }
    let definitions: Vec<Value> = values
        .iter()
        .map(|(metric, _)| json!({ "Name": metric.name(), "Unit": metric.unit() }))
        .collect();
    for (metric, value) in values {
        root.insert(metric.name().into(), json!(value));
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [names],
                "Metrics": definitions,
            }]
        }),
    );
    Value::Object(root)
}

/// Where documents go: stdout in Lambda and local runs; a buffer the test kit
/// reads (the documents are the same bytes either way).
#[derive(Clone)]
enum Sink {
    Stdout,
    Memory(Arc<Mutex<Vec<String>>>),
}

/// The metrics writer, built once per cold start with the bridge.
#[derive(Clone)]
pub struct Metrics {
    namespace: String,
    sink: Sink,
}

impl Metrics {
    pub fn stdout(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            sink: Sink::Stdout,
        }
    }

    /// A writer keeping its lines in memory, and the handle to read them.
    pub fn in_memory(namespace: &str) -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let metrics = Self {
            namespace: namespace.to_string(),
            sink: Sink::Memory(lines.clone()),
        };
        (metrics, lines)
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Writes one document with `values` under `dimensions`.
    pub fn emit(&self, dimensions: Dimensions<'_>, values: &[(Metric, f64)]) {
        if values.is_empty() {
            return;
        }
        let line = document(&self.namespace, now_epoch_millis(), dimensions, values).to_string();
        match &self.sink {
            Sink::Stdout => {
                // One write of the whole line, so lines from concurrent
                // drains never interleave.
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(format!("{line}\n").as_bytes());
                let _ = out.flush();
            }
            Sink::Memory(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
        }
    }

    /// A count of one.
    pub fn count(&self, function: &'static str, direction: Option<Direction>, metric: Metric) {
        let dimensions = Dimensions {
            function,
            direction,
            reason: None,
        };
        self.emit(dimensions, &[(metric, 1.0)]);
    }
}

/// Sums of each metric (by name, dimension values included) over EMF lines,
/// for tests and the benchmark: `("MessagesDelivered", "ToKefu", None) → 3`.
pub fn totals(lines: &[String]) -> std::collections::BTreeMap<(String, String, String), f64> {
    let mut totals = std::collections::BTreeMap::new();
    for line in lines {
        let Ok(document) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(definitions) = document["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array()
        else {
            continue;
        };
        let direction = document["Direction"].as_str().unwrap_or("").to_string();
        let reason = document["Reason"].as_str().unwrap_or("").to_string();
        for definition in definitions {
            let Some(name) = definition["Name"].as_str() else {
                continue;
            };
            let value = document[name].as_f64().unwrap_or(0.0);
            *totals
                .entry((name.to_string(), direction.clone(), reason.clone()))
                .or_insert(0.0) += value;
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_names_its_metrics_dimensions_and_values_the_emf_way() {
        let dimensions = Dimensions {
            function: "slack-events",
            direction: Some(Direction::ToKefu),
            reason: Some("EasemobUnavailable"),
        };
        let document = document(
            "KefuBridge",
            1_700_000_000_000,
            dimensions,
            &[
                (Metric::DeliveryFailed, 1.0),
                (Metric::DeliveryLatency, 12.5),
            ],
        );
        assert_eq!(document["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "KefuBridge");
        assert_eq!(
            directive["Dimensions"],
            json!([["Function", "Direction", "Reason"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([
                { "Name": "DeliveryFailed", "Unit": "Count" },
                { "Name": "DeliveryLatency", "Unit": "Milliseconds" }
            ])
        );
        assert_eq!(document["Function"], "slack-events");
        assert_eq!(document["Direction"], "ToKefu");
        assert_eq!(document["Reason"], "EasemobUnavailable");
        assert_eq!(document["DeliveryFailed"], 1.0);
        assert_eq!(document["DeliveryLatency"], 12.5);
    }

    #[test]
    fn without_a_direction_only_the_function_is_a_dimension() {
        let dimensions = Dimensions {
            function: "slack-oauth",
            direction: None,
            reason: None,
        };
        let document = document("Ns", 1, dimensions, &[(Metric::DuplicatesDropped, 1.0)]);
        assert_eq!(
            document["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert!(document.get("Direction").is_none());
    }

    #[test]
    fn totals_add_up_lines_by_metric_direction_and_reason() {
        let (metrics, lines) = Metrics::in_memory("Ns");
        metrics.count(
            "slack-events",
            Some(Direction::ToKefu),
            Metric::MessagesDelivered,
        );
        metrics.count(
            "slack-events",
            Some(Direction::ToKefu),
            Metric::MessagesDelivered,
        );
        metrics.count(
            "easemob-callback",
            Some(Direction::ToSlack),
            Metric::MessagesDelivered,
        );
        metrics.emit(
            Dimensions {
                function: "slack-events",
                direction: None,
                reason: None,
            },
            &[],
        );
        let lines = lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 3, "an empty emit writes nothing");
        let totals = totals(&lines);
        let key = |d: &str| {
            (
                "MessagesDelivered".to_string(),
                d.to_string(),
                String::new(),
            )
        };
        assert_eq!(totals[&key("ToKefu")], 2.0);
        assert_eq!(totals[&key("ToSlack")], 1.0);
    }
}
