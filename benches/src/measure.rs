//! The end-to-end measurements: each function's release binary under the
//! Lambda Runtime API emulator (cold starts, a warm run, peak RSS), the same
//! handler called in-process, and a no-op function as the baseline — all
//! against the fake Slack and Easemob servers and DynamoDB Local behind the
//! counting proxy.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bridge_tests::app::{local_dynamodb, local_env};
use bridge_tests::runtime_emulator::{LambdaProcess, Outcome};
use bridge_tests::TestApp;
use kefu_bridge::Bridge;
use serde_json::Value;

use crate::fixtures::{self, CONVERSATIONS, TEAM};
use crate::noop::NOOP_ENV;
use crate::scenarios::Function;
use crate::stats::{Latencies, PerRequest};
use bridge_tests::dynamo_proxy::{CountingProxy, Tally};

/// What one request did, seen from outside the function.
struct Sample {
    /// From the invoke (or, for a cold start, the spawn) to the answer.
    latency: Duration,
    status: i64,
    dynamo: Tally,
    slack: u64,
    easemob: u64,
}

/// Everything measured over a run of requests.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub latencies: Latencies,
    /// Per request: how long DynamoDB Local took to answer its calls, and
    /// the rest of the latency (the function, the fakes, the emulator, the
    /// scheduler).
    pub dynamo_time: Latencies,
    pub rest: Latencies,
    pub dynamo: PerRequest,
    /// Calls per operation over the whole run.
    pub dynamo_ops: Tally,
    pub slack: PerRequest,
    pub easemob: PerRequest,
}

impl Run {
    fn record(&mut self, sample: Sample) {
        self.latencies.push(sample.latency);
        let dynamo_time = sample.dynamo.upstream();
        self.dynamo_time.push(dynamo_time);
        self.rest.push(sample.latency.saturating_sub(dynamo_time));
        self.dynamo.add(sample.dynamo.calls());
        for (op, count) in sample.dynamo.0 {
            let total = self.dynamo_ops.0.entry(op).or_default();
            total.calls += count.calls;
            total.upstream += count.upstream;
        }
        self.slack.add(sample.slack);
        self.easemob.add(sample.easemob);
    }

    pub fn requests(&self) -> usize {
        self.latencies.len()
    }
}

/// A warm run of a function binary, and its memory afterwards.
#[derive(Debug, Clone, Default)]
pub struct WarmRun {
    pub run: Run,
    pub peak_rss_kib: Option<u64>,
    /// CPU time (user + system, all threads) the function process spent per
    /// measured request: its own work, whatever else the machine was doing.
    pub cpu_per_request: Option<Duration>,
}

pub struct Bench {
    pub app: TestApp,
    pub proxy: CountingProxy,
    env: Vec<(String, String)>,
}

impl Bench {
    /// DynamoDB Local (started unless `AWS_ENDPOINT_URL_DYNAMODB` names one),
    /// the counting proxy in front of it, the fakes, a table with an
    /// installed workspace and its Slack users.
    pub async fn start() -> Result<Self, String> {
        let app = TestApp::start().await;
        let proxy = CountingProxy::start(&app.dynamodb_endpoint)
            .await
            .map_err(|e| format!("counting proxy: {e}"))?;
        app.install(TEAM, fixtures::SCOPES).await;
        for c in &CONVERSATIONS {
            app.add_user(c.user, c.display_name, c.real_name);
        }
        let mut env = local_env(
            &app.table,
            &app.slack.api_base_url(),
            &app.easemob.base_url(),
        );
        env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), proxy.url()));
        Ok(Self { app, proxy, env })
    }

    /// A bridge with empty memory caches, through the counting proxy.
    pub fn fresh_bridge(&self) -> Bridge {
        let http = kefu_bridge::bridge::http_client();
        let db = local_dynamodb(&self.proxy.url());
        Bridge::new(self.app.bridge.config.clone(), db, http)
    }

    /// Puts in the table what a workspace that has been talking for a while
    /// has there — visitors registered in Easemob, cached Slack profiles and
    /// team, the Easemob token — by sending each conversation's first
    /// message through another instance. A cold start then finds everything
    /// it needs in the table and nothing in memory.
    pub async fn prepare_table(&self) -> Result<(), String> {
        for i in 0..2 * CONVERSATIONS.len() {
            let request = Function::SlackEvents.http_request(i);
            let response = Function::SlackEvents
                .handle(&self.app.bridge, &request)
                .await;
            if response.status != 200 {
                return Err(format!("preparing the table: {response:?}"));
            }
        }
        if self.app.easemob.messages().len() != 2 * CONVERSATIONS.len() {
            return Err("preparing the table: messages did not reach the fake Kefu".into());
        }
        Ok(())
    }

    /// Watches one request: clears the fakes' records, notes the proxy's
    /// tally, runs `call` (which answers a status) and collects what it did.
    async fn observe<T>(&self, call: impl Future<Output = (i64, T)>) -> (Sample, T, Instant) {
        self.app.slack.server.clear();
        self.app.easemob.server.clear();
        let before = self.proxy.tally();
        let started = Instant::now();
        let (status, extra) = call.await;
        let answered_at = Instant::now();
        let sample = Sample {
            latency: answered_at - started,
            status,
            dynamo: self.proxy.tally().since(&before),
            slack: self.app.slack.server.requests().len() as u64,
            easemob: self.app.easemob.server.requests().len() as u64,
        };
        (sample, extra, answered_at)
    }

    /// `runs` fresh processes of `binary`; each one's first request is the
    /// measured one, from spawn to answer.
    pub async fn cold_starts(
        &self,
        binary: &Path,
        name: &str,
        extra_env: &[(String, String)],
        event: impl Fn() -> Value,
        runs: usize,
    ) -> Result<Run, String> {
        let env = self.env_with(extra_env);
        let mut result = Run::default();
        for _ in 0..runs {
            let event = event();
            let (mut sample, process, answered_at) = self
                .observe(async {
                    let process = LambdaProcess::spawn(binary, name, &env).await;
                    let status = status_of(&process, event).await;
                    (status, process)
                })
                .await;
            sample.latency = answered_at - process.spawned_at;
            check(name, "cold start", &sample)?;
            result.record(sample);
            drop(process);
            // Let the killed process go before the next one starts.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(result)
    }

    /// One process: a first (cold) request, `warmup` unmeasured ones, then
    /// `requests` measured ones; then its peak RSS.
    pub async fn warm_run(
        &self,
        binary: &Path,
        name: &str,
        extra_env: &[(String, String)],
        event: impl Fn(usize) -> Value,
        warmup: usize,
        requests: usize,
    ) -> Result<WarmRun, String> {
        let env = self.env_with(extra_env);
        let process = LambdaProcess::spawn(binary, name, &env).await;
        for i in 0..=warmup {
            let status = status_of(&process, event(i)).await;
            if status != 200 {
                return Err(format!("{name}: warm-up request answered {status}"));
            }
        }
        let mut run = Run::default();
        let cpu_before = process.pid().and_then(cpu_time);
        for i in 0..requests {
            let event = event(i);
            let (sample, (), _) = self
                .observe(async { (status_of(&process, event).await, ()) })
                .await;
            check(name, "warm request", &sample)?;
            run.record(sample);
        }
        let cpu_after = process.pid().and_then(cpu_time);
        let cpu_per_request = cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after.saturating_sub(before) / requests.max(1) as u32);
        Ok(WarmRun {
            run,
            peak_rss_kib: process.peak_rss_kib(),
            cpu_per_request,
        })
    }

    /// The library handler called directly on a fresh bridge: no Lambda
    /// runtime, no emulator, the same fakes and DynamoDB.
    pub async fn in_process_run(
        &self,
        function: Function,
        warmup: usize,
        requests: usize,
    ) -> Result<Run, String> {
        let bridge = self.fresh_bridge();
        let mut run = Run::default();
        for i in 0..warmup + requests {
            let request = function.http_request(i);
            let (sample, (), _) = self
                .observe(async {
                    let response = function.handle(&bridge, &request).await;
                    (i64::from(response.status), ())
                })
                .await;
            check(function.name(), "in-process request", &sample)?;
            if i >= warmup {
                run.record(sample);
            }
        }
        Ok(run)
    }

    fn env_with(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        self.env.iter().chain(extra).cloned().collect()
    }
}

/// User + system CPU time of a process, all its threads, from
/// `/proc/<pid>/stat` (clock ticks of 10 ms: fine over a thousand requests).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces: state is the
    // 3rd field of the line, utime the 14th and stime the 15th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The no-op function: this very binary, told by [`NOOP_ENV`] to be one
/// on a Tokio runtime of `flavour`.
pub fn noop_binary(flavour: &str) -> Result<(PathBuf, Vec<(String, String)>), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    Ok((exe, vec![(NOOP_ENV.to_string(), flavour.to_string())]))
}

/// The HTTP status the function answered, or a negative code for an
/// invocation error (-1) or no answer (-2).
async fn status_of(process: &LambdaProcess, event: Value) -> i64 {
    match process.invoke(event).await {
        Ok(Outcome::Response(value)) => value["statusCode"].as_i64().unwrap_or(0),
        Ok(Outcome::Error(_)) => -1,
        Err(_) => -2,
    }
}

fn check(name: &str, what: &str, sample: &Sample) -> Result<(), String> {
    if sample.status == 200 {
        Ok(())
    } else {
        Err(format!(
            "{name}: {what} answered {} (a benchmark of failing requests measures nothing)",
            sample.status
        ))
    }
}
