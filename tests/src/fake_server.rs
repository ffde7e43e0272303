//! A tiny HTTP/1 server on 127.0.0.1 that records every request and answers
//! through a handler closure. The fakes are built on it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Form or query parameters (Slack accepts both, like the real API).
    pub fn param(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.query.iter().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        let is_form = self
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            return url::form_urlencoded::parse(&self.body)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned());
        }
        self.json()
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }
}

/// What the handler answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (a slow dependency).
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, value: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body,
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

pub struct FakeServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    handler: Handler,
    /// The accept loop and every connection it opened, so `stop` can close
    /// them all (pooled keep-alive connections included).
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl FakeServer {
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on("127.0.0.1:0", handler).await
    }

    pub async fn start_on(
        addr: &str,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind fake server");
        let addr = listener.local_addr().expect("local addr");
        let server = Self {
            addr,
            requests: Arc::default(),
            handler: Arc::new(handler),
            tasks: Arc::default(),
        };
        server.serve(listener);
        server
    }

    /// Closes the port and every open connection: calls now fail with
    /// "connection refused", like a service that is down.
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same address, with the same handler and record.
    pub async fn restart(&self) {
        self.stop();
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("rebind {}: {error}", self.addr),
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let handler = self.handler.clone();
        let recorded = self.requests.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let recorded = recorded.clone();
                let connection = tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        let handler = handler.clone();
                        let recorded = recorded.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let query = parts
                                .uri
                                .query()
                                .map(|q| {
                                    url::form_urlencoded::parse(q.as_bytes())
                                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                                        .collect()
                                })
                                .unwrap_or_default();
                            let request = Recorded {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                query,
                                headers: parts.headers,
                                body,
                            };
                            let reply = handler(&request);
                            recorded.lock().unwrap().push(request);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            let mut response = hyper::Response::builder().status(reply.status);
                            for (name, value) in &reply.headers {
                                response = response.header(name, value);
                            }
                            Ok::<_, Infallible>(
                                response
                                    .body(Full::new(Bytes::from(reply.body)))
                                    .expect("valid response"),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                let mut open = tasks.lock().unwrap();
                open.retain(|task| !task.is_finished());
                open.push(connection.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn requests_to(&self, path_suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .collect()
    }

    pub fn clear(&self) {
        self.requests.lock().unwrap().clear();
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fault a fake can be told to answer with, once or until cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A bare HTTP status (500, 503, 401…).
    Status(u16),
    /// HTTP 429 with `Retry-After` seconds.
    RateLimited(u64),
    /// Slack: HTTP 200 `{"ok": false, "error": code}`; Easemob: HTTP 400 with `error`.
    Error(String),
    /// Answer normally, but only after this long.
    Slow(Duration),
    /// Answer normally: queued before a fault, lets earlier calls through.
    Pass,
}

/// Faults per route: queued one-shot faults first, then a standing one.
#[derive(Debug, Default)]
pub struct Faults {
    queued: Vec<(String, Fault)>,
    standing: Vec<(String, Fault)>,
}

impl Faults {
    pub fn once(&mut self, route: &str, fault: Fault) {
        self.queued.push((route.into(), fault));
    }

    pub fn always(&mut self, route: &str, fault: Fault) {
        self.standing.retain(|(r, _)| r != route);
        self.standing.push((route.into(), fault));
    }

    pub fn clear(&mut self) {
        self.queued.clear();
        self.standing.clear();
    }

    pub fn take(&mut self, route: &str) -> Option<Fault> {
        if let Some(i) = self.queued.iter().position(|(r, _)| r == route) {
            return Some(self.queued.remove(i).1);
        }
        self.standing
            .iter()
            .find(|(r, _)| r == route)
            .map(|(_, f)| f.clone())
    }
}
