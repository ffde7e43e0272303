//! template.yaml holds what the code relies on at run time (docs/design.md §1
//! "Retry wake-ups (SQS)" and "Metrics"): each draining function is woken by
//! its own queue and answers per record, the alarms watch the metrics the
//! code writes under the names it writes them, and the dashboard shows all of
//! them. `scripts/lint-template` checks the template is valid; this checks it
//! is wired to this code.

use std::collections::BTreeSet;

use bridge_tests::template::{get_att, if_parts, ref_target, sub_text, Template};
use kefu_bridge::metrics::{direction_dimension, Metric, DEFAULT_NAMESPACE};
use kefu_bridge::store::Direction;
use serde_yaml::Value;

/// Every metric the bridge writes (docs/design.md §1 "Metrics").
const METRICS: [Metric; 9] = [
    Metric::MessagesDelivered,
    Metric::DuplicatesDropped,
    Metric::LoopsPrevented,
    Metric::OutboxQueued,
    Metric::DeadLettered,
    Metric::DeliveryFailed,
    Metric::DeliveryLatency,
    Metric::OutboxDepth,
    Metric::OutboxOldestAgeSeconds,
];

/// The functions that drain one direction each, and the queue that wakes
/// them.
struct Drain {
    function: &'static str,
    queue: &'static str,
    direction: Direction,
}

const DRAINS: [Drain; 2] = [
    Drain {
        function: "SlackEventsFunction",
        queue: "ToKefuRetryQueue",
        direction: Direction::ToKefu,
    },
    Drain {
        function: "EasemobCallbackFunction",
        queue: "ToSlackRetryQueue",
        direction: Direction::ToSlack,
    },
];

const FUNCTIONS: [&str; 3] = [
    "SlackEventsFunction",
    "SlackOAuthFunction",
    "EasemobCallbackFunction",
];

/// The binary (and so the `Function` metric dimension) a function runs.
fn binary(template: &Template, function: &str) -> String {
    template.resource(function)["Metadata"]["BuildProperties"]["Binary"]
        .as_str()
        .unwrap_or_else(|| panic!("{function} names no Binary"))
        .to_string()
}

fn number(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {value:?}"))
}

#[test]
fn each_draining_function_is_woken_by_its_own_queue_and_answers_per_record() {
    let template = Template::load();
    let timeout = number(&template.section("Globals")["Function"]["Timeout"]);
    let mappings = template.resources_of_type("AWS::Lambda::EventSourceMapping");
    for drain in DRAINS {
        let env = template.environment(drain.function);
        assert_eq!(
            env.get("RETRY_QUEUE_URL").and_then(ref_target),
            Some(drain.queue),
            "{} must send its wake-ups to its own queue",
            drain.function
        );

        // Exactly one event source: its own queue, answered record by record
        // (batchItemFailures), in small batches, at a bounded concurrency.
        let own: Vec<&Value> = mappings
            .iter()
            .map(|(_, m)| &m["Properties"])
            .filter(|p| ref_target(&p["FunctionName"]) == Some(drain.function))
            .collect();
        assert_eq!(own.len(), 1, "{}: {own:?}", drain.function);
        let mapping = own[0];
        assert_eq!(
            get_att(&mapping["EventSourceArn"]),
            Some((drain.queue, "Arn"))
        );
        let responses: Vec<&str> = mapping["FunctionResponseTypes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(responses, ["ReportBatchItemFailures"]);
        assert!((1..=10).contains(&number(&mapping["BatchSize"])));
        assert_eq!(
            ref_target(&mapping["ScalingConfig"]["MaximumConcurrency"]),
            Some("RetryMaximumConcurrency")
        );
        // A SAM `SQS` event would attach a policy for every queue.
        let events = &template.resource(drain.function)["Properties"]["Events"];
        for (name, event) in events.as_mapping().into_iter().flatten() {
            assert_ne!(event["Type"].as_str(), Some("SQS"), "{name:?}");
        }

        // IAM: SQS actions on this queue only, and the ones it needs.
        let mut sqs_actions = BTreeSet::new();
        for policy in template.resource(drain.function)["Properties"]["Policies"]
            .as_sequence()
            .unwrap()
        {
            let document = if_parts(policy).map_or(policy, |(_, then, _)| then);
            for statement in document["Statement"].as_sequence().into_iter().flatten() {
                let actions: Vec<&str> = statement["Action"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|a| a.starts_with("sqs:"))
                    .collect();
                if actions.is_empty() {
                    continue;
                }
                assert_eq!(
                    get_att(&statement["Resource"]),
                    Some((drain.queue, "Arn")),
                    "{}: SQS actions on another resource",
                    drain.function
                );
                sqs_actions.extend(actions);
            }
        }
        for needed in [
            "sqs:SendMessage",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        ] {
            assert!(sqs_actions.contains(needed), "{}: {needed}", drain.function);
        }

        // The queue: encrypted, its own dead-letter queue, and a visibility
        // timeout of at least six function timeouts.
        let queue = &template.resource(drain.queue)["Properties"];
        assert_eq!(queue["SqsManagedSseEnabled"].as_bool(), Some(true));
        assert!(number(&queue["VisibilityTimeout"]) >= 6 * timeout);
        let (dead_letter_queue, _) = get_att(&queue["RedrivePolicy"]["deadLetterTargetArn"])
            .unwrap_or_else(|| panic!("{} has no dead-letter queue", drain.queue));
        assert!(number(&queue["RedrivePolicy"]["maxReceiveCount"]) >= 1);
        assert_eq!(
            template.resource(dead_letter_queue)["Properties"]["SqsManagedSseEnabled"].as_bool(),
            Some(true)
        );
    }
    assert_ne!(DRAINS[0].queue, DRAINS[1].queue);
    assert!(!template
        .environment("SlackOAuthFunction")
        .contains_key("RETRY_QUEUE_URL"));
}

/// One metric an alarm reads, with `!Ref X` / `!GetAtt X.Y` spelled out.
#[derive(Debug)]
struct Watched {
    alarm: String,
    namespace: String,
    metric: String,
    dimensions: Vec<(String, String)>,
}

/// What one alarm watches: each metric it reads, directly or inside metric
/// math.
fn watched(id: &str, alarm: &Value) -> Vec<Watched> {
    let describe = |namespace: &Value, name: &Value, dimensions: &Value| {
        let namespace = ref_target(namespace)
            .map(|p| format!("!Ref {p}"))
            .or_else(|| namespace.as_str().map(str::to_string))
            .unwrap_or_default();
        let dimensions = dimensions
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|d| {
                let value = &d["Value"];
                let value = ref_target(value)
                    .map(|r| format!("!Ref {r}"))
                    .or_else(|| get_att(value).map(|(r, a)| format!("!GetAtt {r}.{a}")))
                    .or_else(|| value.as_str().map(str::to_string))
                    .unwrap_or_default();
                (d["Name"].as_str().unwrap_or_default().to_string(), value)
            })
            .collect();
        Watched {
            alarm: id.to_string(),
            namespace,
            metric: name.as_str().unwrap_or_default().to_string(),
            dimensions,
        }
    };
    let properties = &alarm["Properties"];
    if properties["MetricName"].is_string() {
        return vec![describe(
            &properties["Namespace"],
            &properties["MetricName"],
            &properties["Dimensions"],
        )];
    }
    properties["Metrics"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let metric = m.get("MetricStat")?.get("Metric")?;
            Some(describe(
                &metric["Namespace"],
                &metric["MetricName"],
                &metric["Dimensions"],
            ))
        })
        .collect()
}

#[test]
fn alarms_watch_every_failure_signal_under_the_names_the_code_writes() {
    let template = Template::load();
    let alarms = template.resources_of_type("AWS::CloudWatch::Alarm");
    let all: Vec<Watched> = alarms
        .iter()
        .flat_map(|(id, alarm)| watched(id, alarm))
        .collect();
    let alarm_on = |namespace: &str, metric: &str, dimensions: &[(&str, String)]| -> String {
        all.iter()
            .find(|w| {
                // CloudWatch keys a metric by its whole dimension set.
                w.namespace == namespace
                    && w.metric == metric
                    && w.dimensions.len() == dimensions.len()
                    && dimensions
                        .iter()
                        .all(|(k, v)| w.dimensions.iter().any(|(dk, dv)| dk == k && dv == v))
            })
            .map(|w| w.alarm.clone())
            .unwrap_or_else(|| {
                panic!("no alarm on {namespace} {metric} {dimensions:?}; alarms watch {all:#?}")
            })
    };

    for function in FUNCTIONS {
        for metric in ["Errors", "Throttles"] {
            alarm_on(
                "AWS/Lambda",
                metric,
                &[("FunctionName", format!("!Ref {function}"))],
            );
        }
    }

    // The bridge's own metrics: namespace from the parameter the functions
    // get as METRICS_NAMESPACE, dimensions as the drains write them.
    let own = "!Ref MetricsNamespace";
    let mut dead_letter_alarms = BTreeSet::new();
    for drain in DRAINS {
        let dimensions = [
            ("Function", binary(&template, drain.function)),
            (
                "Direction",
                direction_dimension(drain.direction).to_string(),
            ),
        ];
        dead_letter_alarms.insert(alarm_on(own, Metric::DeadLettered.name(), &dimensions));
        let age = alarm_on(own, Metric::OutboxOldestAgeSeconds.name(), &dimensions);
        let properties = &template.resource(&age)["Properties"];
        assert_eq!(properties["Statistic"].as_str(), Some("Maximum"));
        assert_eq!(
            ref_target(&properties["Threshold"]),
            Some("OutboxAgeAlarmSeconds")
        );

        let dead_letter_queue = get_att(
            &template.resource(drain.queue)["Properties"]["RedrivePolicy"]["deadLetterTargetArn"],
        )
        .unwrap()
        .0;
        alarm_on(
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            &[(
                "QueueName",
                format!("!GetAtt {dead_letter_queue}.QueueName"),
            )],
        );
    }
    // One alarm for any dead letter, whichever direction.
    assert_eq!(dead_letter_alarms.len(), 1, "{dead_letter_alarms:?}");
    let dead = &template.resource(dead_letter_alarms.first().unwrap())["Properties"];
    assert_eq!(dead["TreatMissingData"].as_str(), Some("notBreaching"));
    assert_eq!(number(&dead["Threshold"]), 1);

    alarm_on(
        "AWS/ApiGateway",
        "5xx",
        &[("ApiId", "!Ref HttpApi".to_string())],
    );

    // Every metric an alarm reads from our namespace is one the code writes.
    let written: BTreeSet<&str> = METRICS.iter().map(|m| m.name()).collect();
    for w in all.iter().filter(|w| w.namespace == own) {
        assert!(written.contains(w.metric.as_str()), "{w:?}");
    }

    // Each alarm notifies the topic when AlarmEmail is given, nothing else.
    for (id, alarm) in &alarms {
        for key in ["AlarmActions", "OKActions"] {
            let (condition, then, otherwise) = if_parts(&alarm["Properties"][key])
                .unwrap_or_else(|| panic!("{id}: {key} is not conditional"));
            assert_eq!(condition, "HasAlarmEmail");
            assert_eq!(
                then.as_sequence()
                    .map(|s| s.iter().filter_map(ref_target).collect::<Vec<_>>()),
                Some(vec!["AlarmTopic"])
            );
            assert_eq!(ref_target(otherwise), Some("AWS::NoValue"));
        }
    }
}

#[test]
fn the_functions_write_metrics_to_the_namespace_the_alarms_and_dashboard_read() {
    let template = Template::load();
    for function in FUNCTIONS {
        assert_eq!(
            template
                .environment(function)
                .get("METRICS_NAMESPACE")
                .and_then(ref_target),
            Some("MetricsNamespace"),
            "{function}"
        );
    }
    assert_eq!(
        template.section("Parameters")["MetricsNamespace"]["Default"].as_str(),
        Some(DEFAULT_NAMESPACE)
    );
}

#[test]
fn the_dashboard_shows_every_metric_the_bridge_writes() {
    let template = Template::load();
    let dashboards = template.resources_of_type("AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1);
    let (id, dashboard) = &dashboards[0];
    let body = sub_text(&dashboard["Properties"]["DashboardBody"]).expect("a !Sub body");

    // After substitution the body is JSON: put a value in for every ${…}
    // (`${!…}` stays literal, as CloudFormation leaves it).
    let mut substituted = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        substituted.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("closed ${");
        let inner = &rest[start + 2..end];
        match inner.strip_prefix('!') {
            Some(literal) => substituted.push_str(&format!("${{{literal}}}")),
            None if inner == "OutboxAgeAlarmSeconds" => substituted.push_str("900"),
            None => {
                let reference = inner.split('.').next().unwrap();
                let known = reference.starts_with("AWS::")
                    || template.section("Parameters").get(reference).is_some()
                    || template.section("Resources").get(reference).is_some();
                assert!(known, "the dashboard names an unknown {inner}");
                substituted.push('x');
            }
        }
        rest = &rest[end + 1..];
    }
    substituted.push_str(rest);
    let json: serde_json::Value =
        serde_json::from_str(&substituted).expect("the dashboard body is JSON");
    let widgets = json["widgets"].as_array().expect("widgets");
    let text_of = |w: &serde_json::Value| w["properties"].to_string();

    for metric in METRICS {
        let needle = format!("MetricName=\\\"{}\\\"", metric.name());
        assert!(
            widgets.iter().any(|w| text_of(w).contains(&needle)),
            "no widget shows {}",
            metric.name()
        );
    }
    assert!(
        body.contains("SEARCH('{${MetricsNamespace},"),
        "{id}: SEARCH in the metrics namespace"
    );
    let latency = format!("MetricName=\"{}\"", Metric::DeliveryLatency.name());
    for stat in ["'p50'", "'p99'"] {
        assert!(
            body.lines()
                .any(|l| l.contains(&latency.replace('"', "\\\"")) && l.contains(stat)),
            "latency {stat}"
        );
    }
    assert!(
        body.contains(&format!(
            "Direction,Function,Reason}} MetricName=\\\"{}\\\"",
            Metric::DeliveryFailed.name()
        )),
        "failures by reason"
    );
    for function in FUNCTIONS {
        for metric in ["Errors", "Throttles", "Duration"] {
            assert!(
                widgets.iter().any(|w| {
                    w["properties"]["metrics"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|m| m[1] == metric && m[3] == "x")
                }),
                "{function} {metric}"
            );
        }
        assert!(body.contains(&format!("${{{function}}}")), "{function}");
    }
    for drain in DRAINS {
        assert!(body.contains(&format!("${{{}.QueueName}}", drain.queue)));
    }
    // The alarm widget lists every alarm.
    for (alarm, _) in template.resources_of_type("AWS::CloudWatch::Alarm") {
        assert!(body.contains(&format!("${{{alarm}.Arn}}")), "{alarm}");
    }
    let url = sub_text(&template.section("Outputs")["DashboardUrl"]["Value"]).unwrap();
    assert!(url.contains(&format!("dashboards:name=${{{id}}}")), "{url}");
}

#[test]
fn api_access_logs_are_json_lines_without_bodies_and_tracing_is_a_parameter() {
    let template = Template::load();
    let settings = &template.resource("HttpApi")["Properties"]["AccessLogSettings"];
    let (group, _) = get_att(&settings["DestinationArn"]).expect("a log group");
    assert_eq!(
        ref_target(&template.resource(group)["Properties"]["RetentionInDays"]),
        Some("LogRetentionInDays")
    );
    let format: serde_json::Value =
        serde_json::from_str(settings["Format"].as_str().unwrap()).expect("a JSON format");
    for field in [
        "requestId",
        "ip",
        "routeKey",
        "status",
        "responseLength",
        "integrationLatency",
    ] {
        assert!(format.get(field).is_some(), "{field}");
    }
    let values = format.to_string().to_lowercase();
    for secret_bearing in ["body", "querystring", "header", "authorizer"] {
        assert!(!values.contains(secret_bearing), "{secret_bearing}");
    }

    assert_eq!(
        ref_target(&template.section("Globals")["Function"]["Tracing"]),
        Some("XRayTracing")
    );
    let allowed: Vec<&str> = template.section("Parameters")["XRayTracing"]["AllowedValues"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(allowed, ["Active", "PassThrough"]);
}

/// A URL parameter admits only https://: its pattern says so and rejects
/// the obvious others (the pattern is anchored and starts with the scheme,
/// optionally inside a group that may be empty).
fn https_only(pattern: &str) -> bool {
    (pattern.starts_with("^https://") || pattern.starts_with("^(https://"))
        && !pattern.contains("http:")
        && !pattern.contains('|')
}

#[test]
fn least_privilege_in_the_deployment_is_wired() {
    let template = Template::load();
    let parameters = template.section("Parameters");

    // Every URL a function is given comes from a parameter that takes only
    // https:// (tokens and secrets are sent there).
    let mut url_parameters = BTreeSet::new();
    for function in FUNCTIONS {
        for (name, value) in template.environment(function) {
            if name.ends_with("_URL") || name.ends_with("_URI") {
                if let Some(parameter) = ref_target(&value) {
                    if parameters.get(parameter).is_some() {
                        url_parameters.insert(parameter.to_string());
                    }
                }
            }
        }
    }
    for expected in ["SlackApiBaseUrl", "EasemobApiBaseUrl", "SlackRedirectUri"] {
        assert!(url_parameters.contains(expected), "{url_parameters:?}");
    }
    for parameter in &url_parameters {
        let pattern = parameters[parameter.as_str()]["AllowedPattern"]
            .as_str()
            .unwrap_or_default();
        assert!(https_only(pattern), "{parameter}: {pattern:?}");
        if let Some(default) = parameters[parameter.as_str()]["Default"].as_str() {
            assert!(
                default.is_empty() || default.starts_with("https://"),
                "{parameter} defaults to {default}"
            );
        }
    }

    // Stage throttling from its parameters.
    let route_settings = &template.resource("HttpApi")["Properties"]["DefaultRouteSettings"];
    assert_eq!(
        ref_target(&route_settings["ThrottlingRateLimit"]),
        Some("ApiThrottlingRateLimit")
    );
    assert_eq!(
        ref_target(&route_settings["ThrottlingBurstLimit"]),
        Some("ApiThrottlingBurstLimit")
    );

    // Reserved concurrency for every function when the parameter is set,
    // and no function sets its own.
    let reserved = &template.section("Globals")["Function"]["ReservedConcurrentExecutions"];
    let (condition, then, _) = if_parts(reserved).expect("an !If on the parameter");
    assert_eq!(condition, "HasReservedConcurrency");
    assert_eq!(ref_target(then), Some("ReservedConcurrency"));
    for function in FUNCTIONS {
        assert!(
            template.resource(function)["Properties"]["ReservedConcurrentExecutions"].is_null(),
            "{function} overrides the reserved concurrency"
        );
    }

    // The table is encrypted with the customer-managed key when one is named.
    let sse = &template.resource("Table")["Properties"]["SSESpecification"];
    let (condition, with_key, without) = if_parts(sse).expect("an !If on the key");
    assert_eq!(condition, "HasTableKmsKey");
    assert_eq!(
        ref_target(&with_key["KMSMasterKeyId"]),
        Some("TableKmsKeyArn")
    );
    assert_eq!(with_key["SSEType"].as_str(), Some("KMS"));
    assert_eq!(without["SSEEnabled"].as_bool(), Some(true));
}
