//! A counting HTTP proxy in front of DynamoDB Local: every request is
//! tallied by its `X-Amz-Target` operation (`GetItem`, `UpdateItem`, …) and
//! forwarded unchanged (Host and SigV4 headers included) to the real server,
//! so the benchmark counts the DynamoDB round trips a function makes without
//! touching the function, and tests see how many items one answer carried.
//!
//! One fault switch: DynamoDB may process none of a `BatchWriteItem` and
//! hand every write back as `UnprocessedItems` (under load, or throttled);
//! DynamoDB Local never does, so the proxy can answer that way itself.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Calls to one DynamoDB operation, and how long DynamoDB Local took to
/// answer them (measured at the proxy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCount {
    pub calls: u64,
    pub upstream: Duration,
    /// The most items one answer carried (its `Count`).
    pub most_items: u64,
}

/// Calls per DynamoDB operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally(pub BTreeMap<String, OpCount>);

impl Tally {
    pub fn calls(&self) -> u64 {
        self.0.values().map(|c| c.calls).sum()
    }

    pub fn upstream(&self) -> Duration {
        self.0.values().map(|c| c.upstream).sum()
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Tally) -> Tally {
        Tally(
            self.0
                .iter()
                .map(|(op, now)| {
                    let before = earlier.0.get(op).copied().unwrap_or_default();
                    let count = OpCount {
                        calls: now.calls - before.calls,
                        upstream: now.upstream.saturating_sub(before.upstream),
                        most_items: now.most_items,
                    };
                    (op.clone(), count)
                })
                .filter(|(_, c)| c.calls > 0)
                .collect(),
        )
    }
}

pub struct CountingProxy {
    addr: SocketAddr,
    counts: Arc<Mutex<Tally>>,
    unprocessed_batches: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

type Upstream = Client<HttpConnector, Full<Bytes>>;

impl CountingProxy {
    /// Listens on 127.0.0.1 and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts: Arc<Mutex<Tally>> = Arc::default();
        let unprocessed_batches: Arc<AtomicBool> = Arc::default();
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
        let task_counts = counts.clone();
        let task_unprocessed = unprocessed_batches.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (counts, upstream, client) =
                    (task_counts.clone(), upstream.clone(), client.clone());
                let unprocessed = task_unprocessed.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let proxy = Forward {
                            counts: counts.clone(),
                            upstream: upstream.clone(),
                            client: client.clone(),
                            unprocessed_batches: unprocessed.load(Ordering::SeqCst),
                        };
                        proxy.forward(request)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            counts,
            unprocessed_batches,
            task,
        })
    }

    /// From now on every `BatchWriteItem` is answered "nothing processed"
    /// (`true`) or forwarded again (`false`).
    pub fn leave_batch_writes_unprocessed(&self, on: bool) {
        self.unprocessed_batches.store(on, Ordering::SeqCst);
    }

    /// What the functions get as `AWS_ENDPOINT_URL_DYNAMODB`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn tally(&self) -> Tally {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request's way through the proxy.
struct Forward {
    counts: Arc<Mutex<Tally>>,
    upstream: Arc<str>,
    client: Upstream,
    unprocessed_batches: bool,
}

impl Forward {
    async fn forward(
        self,
        request: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
            .unwrap_or_else(|| "(no X-Amz-Target)".to_string());
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let started = Instant::now();
        let answer = if self.unprocessed_batches && operation == "BatchWriteItem" {
            nothing_processed(&body)
        } else {
            self.upstream_answer(parts, body).await
        };
        let took = started.elapsed();
        let items = answer_count(answer.body());
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.0.entry(operation).or_default();
        count.calls += 1;
        count.upstream += took;
        count.most_items = count.most_items.max(items);
        Ok(answer.map(Full::new))
    }

    async fn upstream_answer(
        &self,
        parts: hyper::http::request::Parts,
        body: Bytes,
    ) -> hyper::Response<Bytes> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut outgoing = hyper::Request::builder()
            .method(parts.method)
            .uri(format!("{}{path}", self.upstream));
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name, value);
        }
        let outgoing = match outgoing.body(Full::new(body)) {
            Ok(outgoing) => outgoing,
            Err(error) => return failure(format!("proxy: bad request: {error}")),
        };
        match self.client.request(outgoing).await {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                hyper::Response::from_parts(parts, body)
            }
            Err(error) => failure(format!("proxy: upstream: {error}")),
        }
    }
}

/// DynamoDB's answer to a `BatchWriteItem` it processed none of: every
/// write handed back under `UnprocessedItems`.
fn nothing_processed(request: &[u8]) -> hyper::Response<Bytes> {
    let request: serde_json::Value = serde_json::from_slice(request).unwrap_or_default();
    let answer = serde_json::json!({ "UnprocessedItems": request["RequestItems"] });
    let mut response = hyper::Response::new(Bytes::from(answer.to_string()));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}

/// The `Count` of an answer (Query, Scan), 0 for any other.
fn answer_count(body: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["Count"].as_u64())
        .unwrap_or(0)
}

fn failure(message: String) -> hyper::Response<Bytes> {
    let mut response = hyper::Response::new(Bytes::from(message));
    *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    response
}
