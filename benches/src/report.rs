//! BENCHMARKS.md, written from the measurements: tables, targets met or
//! missed, and what each number includes.

use std::fmt::Write as _;
use std::time::Duration;

use crate::criterion_results::{duration_ns, MicroResult};
use crate::machine::{utc, Machine};
use crate::measure::{Run, WarmRun};
use crate::scenarios::Function;
use crate::stats::{millis, PerRequest};
use bridge_tests::dynamo_proxy::Tally;

/// Targets from the issue "Benchmarks: cold start, warm latency, memory,
/// round trips" (2-core machine, local fakes).
pub const COLD_START_MAX: Duration = Duration::from_millis(50);
pub const WARM_P50_MAX: Duration = Duration::from_millis(5);
pub const WARM_P99_MAX: Duration = Duration::from_millis(20);
pub const PEAK_RSS_MAX_BYTES: u64 = 30_000_000;
/// Raised from 8 MB with the AWS SDK (issue "One store on the AWS SDK").
pub const BINARY_MAX_BYTES: u64 = 16_000_000;
/// The claim + conversation check in one transaction, then completion
/// (docs/design.md §4 "Delivery pipeline").
pub const DYNAMO_CALLS_MAX: u64 = 2;

/// The same measurements of another build of the functions (`--before`),
/// taken in the same run against the same DynamoDB and fakes.
#[derive(Debug, Clone)]
pub struct Before {
    /// What the other build is, e.g. a commit and what it lacks.
    pub label: String,
    pub functions: Vec<FunctionResult>,
}

/// One function's numbers.
#[derive(Debug, Clone)]
pub struct FunctionResult {
    pub function: Function,
    pub cold: Run,
    pub warm: WarmRun,
    pub in_process: Run,
    pub binary_bytes: Option<u64>,
    pub arm64_bytes: Option<u64>,
    /// The arm64 build is older than the x86_64 one (not rebuilt this run).
    pub arm64_stale: bool,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub cold_runs: usize,
    pub warmup: usize,
    pub requests: usize,
    pub functions: Vec<FunctionResult>,
    /// The no-op function on each Tokio runtime flavour.
    pub noops: Vec<Baseline>,
    pub arm64_note: String,
    pub dynamodb_local: String,
    pub micro: Vec<MicroResult>,
    pub before: Option<Before>,
    /// The "## Backlog" section (backlog.rs), kept from the last
    /// `--backlog` run: this report does not measure it.
    pub backlog: Option<String>,
}

/// The no-op function on one runtime flavour.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub flavour: &'static str,
    pub cold: Run,
    pub warm: WarmRun,
}

impl Baseline {
    fn label(&self) -> String {
        let runtime = match self.flavour {
            "current_thread" => "current-thread Tokio runtime, as the functions' `#[tokio::main]`",
            _ => "multi-thread Tokio runtime",
        };
        format!("no-op function ({runtime})")
    }
}

/// A target and whether it was met.
struct Verdict {
    target: String,
    measured: String,
    met: bool,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let w = &mut md;
        let _ = writeln!(w, "# Benchmarks\n");
        let _ = writeln!(
            w,
            "Written by `scripts/bench` (the `bridge-benches` crate); re-run it rather than \
             editing this file.\n"
        );
        self.machine_section(w);
        self.latency_section(w);
        self.split_section(w);
        self.round_trip_section(w);
        self.size_section(w);
        self.before_section(w);
        self.targets_section(w);
        self.micro_section(w);
        self.notes_section(w);
        if let Some(backlog) = &self.backlog {
            md = crate::backlog::with_section(&md, backlog);
        }
        md
    }

    fn machine_section(&self, w: &mut String) {
        let m = &self.machine;
        let _ = writeln!(w, "## Machine\n");
        let _ = writeln!(w, "| | |\n|---|---|");
        let _ = writeln!(w, "| date | {} |", m.date);
        let _ = writeln!(w, "| commit | {} |", m.commit);
        let _ = writeln!(w, "| CPU | {} × {} (`nproc`) |", m.cpus, m.cpu_model);
        let _ = writeln!(w, "| memory | {} |", m.memory);
        let _ = writeln!(
            w,
            "| load average (1, 5, 15 min) | {} at start, {} at the end |",
            m.load_at_start, m.load_at_end
        );
        let _ = writeln!(w, "| kernel | {} |", m.kernel);
        let _ = writeln!(w, "| toolchain | {} |", m.rustc);
        let _ = writeln!(
            w,
            "| DynamoDB | {} (JVM, in memory, same machine) behind a counting proxy |",
            self.dynamodb_local
        );
        let _ = writeln!(
            w,
            "| Slack, Easemob | fake servers on 127.0.0.1 (`tests/src/fake_*.rs`) |\n"
        );
    }

    fn latency_section(&self, w: &mut String) {
        let _ = writeln!(w, "## Latency and memory\n");
        let _ = writeln!(
            w,
            "Release binaries under the Lambda Runtime API emulator. Cold start: process \
             spawn → first response, median of {} fresh processes, each first request doing \
             the real work with the workspace installed in the table and empty memory caches. \
             Warm: invoke → response over {} requests with distinct ids (after {} unmeasured), \
             half in one conversation and half over three others (two DMs, one channel); \
             it includes the emulator's loopback round trip, which the no-op row measures. \
             In-process: the library handler called directly, same fakes and DynamoDB. \
             Peak RSS: `VmHWM` of the function process after the warm run.\n",
            self.cold_runs, self.requests, self.warmup
        );
        let _ = writeln!(
            w,
            "| function | request | cold start | warm p50 | warm p99 | in-process p50 | in-process p99 | peak RSS |"
        );
        let _ = writeln!(w, "|---|---|--:|--:|--:|--:|--:|--:|");
        for f in &self.functions {
            let _ = writeln!(
                w,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
                f.function.name(),
                f.function.request(),
                millis(f.cold.latencies.median()),
                millis(f.warm.run.latencies.median()),
                millis(f.warm.run.latencies.percentile(99.0)),
                millis(f.in_process.latencies.median()),
                millis(f.in_process.latencies.percentile(99.0)),
                rss(f.warm.peak_rss_kib),
            );
        }
        for noop in &self.noops {
            let _ = writeln!(
                w,
                "| {} | `lambda_runtime` answering a constant, same event as `slack-events` | {} | {} | {} | — | — | {} |",
                noop.label(),
                millis(noop.cold.latencies.median()),
                millis(noop.warm.run.latencies.median()),
                millis(noop.warm.run.latencies.percentile(99.0)),
                rss(noop.warm.peak_rss_kib),
            );
        }
        let _ = writeln!(w);
    }

    fn split_section(&self, w: &mut String) {
        let _ = writeln!(w, "## Where the warm time goes\n");
        let _ = writeln!(
            w,
            "Each warm request's latency split in two: the time DynamoDB Local took to answer \
             its calls (timed at the proxy) and the rest (the function's own work, the fakes, \
             the emulator, waiting for a core). Percentiles of each part over the same {} \
             requests, and the CPU time the function process used per request (all its \
             threads, from `/proc/<pid>/stat`).\n",
            self.requests
        );
        let _ = writeln!(
            w,
            "| function | latency p50 / p99 | DynamoDB Local p50 / p99 | rest p50 / p99 | function CPU per request |"
        );
        let _ = writeln!(w, "|---|--:|--:|--:|--:|");
        for f in &self.functions {
            let run = &f.warm.run;
            let _ = writeln!(
                w,
                "| `{}` | {} / {} | {} / {} | {} / {} | {} |",
                f.function.name(),
                millis(run.latencies.median()),
                millis(run.latencies.percentile(99.0)),
                millis(run.dynamo_time.median()),
                millis(run.dynamo_time.percentile(99.0)),
                millis(run.rest.median()),
                millis(run.rest.percentile(99.0)),
                f.warm.cpu_per_request.map_or_else(|| "n/a".into(), millis),
            );
        }
        for noop in &self.noops {
            let _ = writeln!(
                w,
                "| {} | {} / {} | — | — | {} |",
                noop.label(),
                millis(noop.warm.run.latencies.median()),
                millis(noop.warm.run.latencies.percentile(99.0)),
                noop.warm
                    .cpu_per_request
                    .map_or_else(|| "n/a".into(), millis),
            );
        }
        let _ = writeln!(w);
    }

    fn round_trip_section(&self, w: &mut String) {
        let _ = writeln!(w, "## Outbound round trips per request\n");
        let _ = writeln!(
            w,
            "Averaged over the {} warm requests (the most any one request made in brackets). \
             DynamoDB calls are counted by `X-Amz-Target` at a proxy in front of DynamoDB \
             Local, which also times DynamoDB Local's answers; Easemob and Slack calls are \
             the fake servers' recorded requests. The cold column is the first request of a \
             fresh process (memory caches empty).\n",
            self.requests
        );
        let _ = writeln!(
            w,
            "| function | DynamoDB calls | by operation | DynamoDB Local time | Easemob calls | Slack calls | cold: DynamoDB / Easemob / Slack |"
        );
        let _ = writeln!(w, "|---|--:|---|--:|--:|--:|--:|");
        for f in &self.functions {
            let run = &f.warm.run;
            let _ = writeln!(
                w,
                "| `{}` | {} | {} | {} | {} | {} | {} / {} / {} |",
                f.function.name(),
                per_request(&run.dynamo),
                by_operation(&run.dynamo_ops, run.requests()),
                millis(run.dynamo_ops.upstream() / run.requests().max(1) as u32),
                per_request(&run.easemob),
                per_request(&run.slack),
                f.cold.dynamo.max(),
                f.cold.easemob.max(),
                f.cold.slack.max(),
            );
        }
        let _ = writeln!(w);
    }

    fn size_section(&self, w: &mut String) {
        let _ = writeln!(w, "## Release binaries\n");
        let _ = writeln!(
            w,
            "`cargo build --release` (profile in the root `Cargo.toml`: thin LTO, \
             stripped). arm64: {}\n",
            self.arm64_note
        );
        let _ = writeln!(
            w,
            "| function | x86_64 | arm64 (`cargo lambda build --release --arm64`) |"
        );
        let _ = writeln!(w, "|---|--:|--:|");
        for f in &self.functions {
            let _ = writeln!(
                w,
                "| `{}` | {} | {}{} |",
                f.function.name(),
                bytes(f.binary_bytes),
                bytes(f.arm64_bytes),
                if f.arm64_stale {
                    " (stale: built before the sources last changed)"
                } else {
                    ""
                },
            );
        }
        let _ = writeln!(w);
    }

    fn before_section(&self, w: &mut String) {
        let Some(before) = &self.before else {
            return;
        };
        let _ = writeln!(w, "## Before and after\n");
        let _ = writeln!(
            w,
            "Both builds measured in this run, one function after the other, against the same \
             DynamoDB Local, proxy and fakes (cold: median of {} fresh processes; warm: {} \
             requests). Before: {}. After: this commit.\n",
            self.cold_runs, self.requests, before.label
        );
        let _ = writeln!(
            w,
            "| function | build | cold start | warm p50 | warm p99 | CPU per request | peak RSS | DynamoDB calls | x86_64 | arm64 |"
        );
        let _ = writeln!(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        for after in &self.functions {
            let Some(old) = before
                .functions
                .iter()
                .find(|b| b.function == after.function)
            else {
                continue;
            };
            for (build, f) in [("before", old), ("after", after)] {
                let _ = writeln!(
                    w,
                    "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    f.function.name(),
                    build,
                    millis(f.cold.latencies.median()),
                    millis(f.warm.run.latencies.median()),
                    millis(f.warm.run.latencies.percentile(99.0)),
                    f.warm.cpu_per_request.map_or_else(|| "n/a".into(), millis),
                    rss(f.warm.peak_rss_kib),
                    per_request(&f.warm.run.dynamo),
                    bytes(f.binary_bytes),
                    bytes(f.arm64_bytes),
                );
            }
        }
        let _ = writeln!(w);
    }

    fn verdicts(&self) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        let list = |value: &dyn Fn(&FunctionResult) -> String| {
            self.functions
                .iter()
                .map(|f| format!("{} {}", f.function.name(), value(f)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        verdicts.push(Verdict {
            target: format!("cold start ≤ {}", millis(COLD_START_MAX)),
            measured: list(&|f| millis(f.cold.latencies.median())),
            met: self
                .functions
                .iter()
                .all(|f| f.cold.latencies.median() <= COLD_START_MAX),
        });
        verdicts.push(Verdict {
            target: format!("warm p50 ≤ {}", millis(WARM_P50_MAX)),
            measured: list(&|f| millis(f.warm.run.latencies.median())),
            met: self
                .functions
                .iter()
                .all(|f| f.warm.run.latencies.median() <= WARM_P50_MAX),
        });
        verdicts.push(Verdict {
            target: format!("warm p99 ≤ {}", millis(WARM_P99_MAX)),
            measured: list(&|f| millis(f.warm.run.latencies.percentile(99.0))),
            met: self
                .functions
                .iter()
                .all(|f| f.warm.run.latencies.percentile(99.0) <= WARM_P99_MAX),
        });
        verdicts.push(Verdict {
            target: "peak RSS ≤ 30 MB".into(),
            measured: list(&|f| rss(f.warm.peak_rss_kib)),
            met: self.functions.iter().all(|f| {
                f.warm
                    .peak_rss_kib
                    .is_some_and(|kib| kib * 1024 <= PEAK_RSS_MAX_BYTES)
            }),
        });
        verdicts.push(Verdict {
            target: format!("release binary ≤ {}", bytes(Some(BINARY_MAX_BYTES))),
            measured: list(&|f| match f.arm64_bytes {
                Some(_) => format!("{} (arm64 {})", bytes(f.binary_bytes), bytes(f.arm64_bytes)),
                None => bytes(f.binary_bytes),
            }),
            met: self.functions.iter().all(|f| {
                f.binary_bytes.is_some_and(|b| b <= BINARY_MAX_BYTES)
                    && f.arm64_bytes.is_none_or(|b| b <= BINARY_MAX_BYTES)
            }),
        });
        for f in &self.functions {
            let run = &f.warm.run;
            let (message, easemob, slack) = match f.function {
                Function::SlackEvents => ("forwarded Slack message", 1, 0),
                Function::EasemobCallback => ("agent reply", 0, 1),
                Function::SlackOauth => continue,
            };
            verdicts.push(Verdict {
                target: format!(
                    "{message}: ≤ {DYNAMO_CALLS_MAX} DynamoDB, {easemob} Easemob, {slack} Slack calls"
                ),
                measured: format!(
                    "DynamoDB {}, Easemob {}, Slack {}",
                    per_request(&run.dynamo),
                    per_request(&run.easemob),
                    per_request(&run.slack)
                ),
                met: run.dynamo.max() <= DYNAMO_CALLS_MAX
                    && exactly(&run.easemob, easemob)
                    && exactly(&run.slack, slack),
            });
        }
        verdicts
    }

    fn targets_section(&self, w: &mut String) {
        let _ = writeln!(w, "## Targets\n");
        let _ = writeln!(w, "| target | measured | |\n|---|---|---|");
        for v in self.verdicts() {
            let _ = writeln!(
                w,
                "| {} | {} | {} |",
                v.target,
                v.measured,
                if v.met { "met" } else { "**missed**" }
            );
        }
        let _ = writeln!(w);
    }

    fn micro_section(&self, w: &mut String) {
        let _ = writeln!(w, "## Micro-benchmarks (criterion)\n");
        if self.micro.is_empty() {
            let _ = writeln!(
                w,
                "Not run: `scripts/bench` runs them (`cargo bench -p bridge-benches --bench \
                 hot_paths -- --noplot`).\n"
            );
            return;
        }
        let measured = self
            .micro
            .iter()
            .filter_map(|m| m.measured_at)
            .min()
            .map_or_else(
                || "at an unknown time".into(),
                |at| format!("on {}", utc(at)),
            );
        let _ = writeln!(
            w,
            "`benches/benches/hot_paths.rs`, median time per call with its 95% confidence \
             interval, read from `target/criterion/hot_paths/*/new/estimates.json` (measured \
             {measured}, one benchmark at a time, nothing else of the bench running).\n"
        );
        let _ = writeln!(w, "| benchmark | what | median | 95% CI | throughput |");
        let _ = writeln!(w, "|---|---|--:|--:|--:|");
        for m in &self.micro {
            let _ = writeln!(
                w,
                "| `{}` | {} | {} | {} – {} | {} |",
                m.id,
                describe_micro(&m.id),
                duration_ns(m.median_ns),
                duration_ns(m.lower_ns),
                duration_ns(m.upper_ns),
                m.megabytes_per_sec()
                    .map_or_else(|| "—".to_string(), |mbs| format!("{mbs:.0} MB/s")),
            );
        }
        let _ = writeln!(w);
    }

    fn notes_section(&self, w: &mut String) {
        let _ = writeln!(w, "## Reading these numbers\n");
        let _ = writeln!(
            w,
            "- Everything shares {} cores: the function, the emulator, the fakes, the proxy \
             and DynamoDB Local's JVM. DynamoDB Local is not DynamoDB: in a Lambda, each call \
             goes over TLS to the regional endpoint (typically a few ms), so production warm \
             latency is roughly the in-process figure minus DynamoDB Local time plus the real \
             DynamoDB time per call (see the round-trip table).",
            self.machine.cpus
        );
        let busiest = [&self.machine.load_at_start, &self.machine.load_at_end]
            .iter()
            .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        if busiest >= 1.0 {
            let _ = writeln!(
                w,
                "- The machine was busy with other work during this run (1-minute load \
                 average up to {busiest:.2} on {} cores): every process here waited for a \
                 core now and then, which shows most in the p99 columns.",
                self.machine.cpus
            );
        }
        let _ = writeln!(
            w,
            "- Cold start here is the process's own start-up (exec, runtime, configuration, \
             HTTP client with its TLS roots) plus the first request's round trips; Lambda adds \
             its sandbox and code download, which no local run can show."
        );
        if let [multi, current] = &self.noops[..] {
            let cpu = |b: &Baseline| b.warm.cpu_per_request.map_or_else(|| "n/a".into(), millis);
            let _ = writeln!(
                w,
                "- Tokio runtime flavour: the no-op function used {} of CPU per invocation on \
                 a multi-thread runtime, {} on the current-thread runtime the functions start \
                 with (p50 {} vs {}). A Lambda instance serves one invocation at a time, so a \
                 multi-thread runtime's cross-thread wake-ups would buy nothing here.",
                cpu(multi),
                cpu(current),
                millis(multi.warm.run.latencies.median()),
                millis(current.warm.run.latencies.median()),
            );
        }
        let _ = writeln!(
            w,
            "- Warm latency includes the emulator's loopback exchange (`/next` long poll and \
             `/response`): the no-op row is that overhead alone."
        );
    }
}

fn exactly(calls: &PerRequest, expected: u64) -> bool {
    calls.max() == expected && (calls.average() - expected as f64).abs() < 1e-9
}

fn per_request(calls: &PerRequest) -> String {
    format!("{:.2} ({})", calls.average(), calls.max())
}

fn by_operation(ops: &Tally, requests: usize) -> String {
    if ops.0.is_empty() {
        return "—".into();
    }
    ops.0
        .iter()
        .map(|(op, count)| format!("{op} {:.2}", count.calls as f64 / requests.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rss(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".into(),
        |kib| format!("{:.1} MB", (kib * 1024) as f64 / 1e6),
    )
}

fn bytes(size: Option<u64>) -> String {
    size.map_or_else(
        || "not built".into(),
        |b| format!("{:.2} MB", b as f64 / 1e6),
    )
}

fn describe_micro(id: &str) -> &'static str {
    match id {
        "slack_signature_verify" => "Slack signature check of a 1.5 KB event body",
        "slack_envelope_parse" => "`Envelope` + `Event` of a 1.5 KB message event",
        "loop_guard_own_message" => "`loop_guard::not_forwarded`, a person's message (all rules)",
        "markup_to_plain_text" => "`to_plain_text`: mention, links, `<!here>`, entities",
        "easemob_bodies_12kb" => "`TextMessage::bodies` of 12 KB text (≤ 5,120 B each)",
        "easemob_callback_verify_parse" => "agent-reply callback: JSON, MD5 `security`, `Callback`",
        _ => "",
    }
}
