//! A Lambda Runtime API emulator: runs a real function binary the way AWS
//! does (`AWS_LAMBDA_RUNTIME_API`, `/2018-06-01/runtime/invocation/next`,
//! `…/{id}/response`, `…/{id}/error`, `/runtime/init/error`), so tests and
//! benchmarks exercise each binary's wiring — main.rs, config from the
//! environment — and not only the library.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

/// How an invocation ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Response(Value),
    /// The function reported an invocation error (`…/error`).
    Error(Value),
}

type Pending = (String, Value, oneshot::Sender<Outcome>);

struct Shared {
    queue: AsyncMutex<mpsc::Receiver<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<String>>,
}

/// One function process under the emulator.
pub struct LambdaProcess {
    pub name: String,
    child: tokio::process::Child,
    sender: mpsc::Sender<Pending>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    server: tokio::task::JoinHandle<()>,
    /// When the process was spawned (for cold-start measurements).
    pub spawned_at: Instant,
    /// What the function wrote to stdout, line by line (its log lines and
    /// metric documents, as CloudWatch Logs would receive them).
    stdout: Arc<Mutex<Vec<String>>>,
}

impl LambdaProcess {
    /// Starts `binary` with `env` (plus the variables Lambda sets).
    pub async fn spawn(binary: &Path, name: &str, env: &[(String, String)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime api");
        let addr = listener.local_addr().expect("addr");
        let (sender, receiver) = mpsc::channel::<Pending>(1024);
        let shared = Arc::new(Shared {
            queue: AsyncMutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
        });
        let server_shared = shared.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = server_shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| runtime_api(shared.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_SESSION_TOKEN", "local-session")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("SHOW_FUNCTION_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let lines = stdout.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut reader = tokio::io::BufReader::new(out).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        Self {
            name: name.to_string(),
            child,
            sender,
            shared,
            next_id: AtomicU64::new(1),
            server,
            spawned_at,
            stdout,
        }
    }

    /// The lines the function has written to stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends one event and waits for the function's answer.
    pub async fn invoke(&self, event: Value) -> Result<Outcome, String> {
        let id = format!("req-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let (tx, rx) = oneshot::channel();
        self.sender
            .send((id, event, tx))
            .await
            .map_err(|_| "emulator closed".to_string())?;
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err("invocation dropped".into()),
            Err(_) => Err(self
                .init_error()
                .map(|e| format!("function failed to initialise: {e}"))
                .unwrap_or_else(|| "no answer within 30 s".into())),
        }
    }

    /// What the function reported to `/runtime/init/error`, if anything.
    pub fn init_error(&self) -> Option<String> {
        self.shared.init_error.lock().unwrap().clone()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Peak resident set size so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Waits for the process to exit on its own (e.g. after an init error).
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()?
            .ok()
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.server.abort();
    }
}

async fn runtime_api(
    shared: Arc<Shared>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = |status: u16, body: Vec<u8>| {
        Ok(hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("response"))
    };
    if method == hyper::Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        let next = shared.queue.lock().await.recv().await;
        let Some((id, event, done)) = next else {
            return reply(500, b"{}".to_vec());
        };
        shared.waiting.lock().unwrap().insert(id.clone(), done);
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() + 10_000)
            .unwrap_or(0);
        return Ok(hyper::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", &id)
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:local",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0",
            )
            .body(Full::new(Bytes::from(event.to_string())))
            .expect("response"));
    }
    if method == hyper::Method::POST && path == "/2018-06-01/runtime/init/error" {
        *shared.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
        return reply(202, b"{}".to_vec());
    }
    if method == hyper::Method::POST {
        if let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") {
            let (id, kind) = rest.split_once('/').unwrap_or((rest, ""));
            let value: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
            let outcome = match kind {
                "response" => Outcome::Response(value),
                "error" => Outcome::Error(value),
                _ => return reply(404, b"{}".to_vec()),
            };
            if let Some(done) = shared.waiting.lock().unwrap().remove(id) {
                let _ = done.send(outcome);
            }
            return reply(202, b"{}".to_vec());
        }
    }
    reply(404, b"{}".to_vec())
}

/// Where the function binaries are: `$BRIDGE_BIN_DIR`, else the workspace's
/// target/<profile> folder after building them with cargo.
pub fn function_binaries(release: bool) -> PathBuf {
    if let Ok(dir) = std::env::var("BRIDGE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    built_binaries(
        &["slack-events", "slack-oauth", "easemob-callback"],
        release,
    )
}

/// Builds the binaries of the workspace `packages` with cargo and returns
/// the target/<profile> folder holding them.
pub fn built_binaries(packages: &[&str], release: bool) -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cargo =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(&workspace).args(["build", "--quiet"]);
    for package in packages {
        cargo.args(["-p", package]);
    }
    if release {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("run cargo build");
    assert!(status.success(), "cargo build of {packages:?} failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    target.join(if release { "release" } else { "debug" })
}

/// An API Gateway HTTP API (payload v2.0) event for `method path`.
pub fn apigw_event(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    base64: bool,
) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": "local.execute-api.localhost",
            "domainPrefix": "local", "requestId": "local-request", "routeKey": format!("{method} {path}"),
            "stage": "$default", "time": "26/Nov/2026:10:00:00 +0000", "timeEpoch": 1795000000000u64,
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "local" }
        },
        "body": body,
        "isBase64Encoded": base64,
    })
}
