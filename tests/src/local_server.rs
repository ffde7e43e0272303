//! All routes of the three functions on one local port, served by the same
//! library handlers the Lambda binaries call — for `make dev` and the demo.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kefu_bridge::http_types::{HttpRequest, HttpResponse};
use kefu_bridge::lambda::Function;
use kefu_bridge::Bridge;
use tokio::net::TcpListener;

/// The routes of docs/design.md §1, each to its function's handler.
pub async fn route(bridge: &Bridge, request: &HttpRequest) -> HttpResponse {
    match Function::for_path(&request.path) {
        Some(function) => function.handle_http(bridge, request).await,
        None => HttpResponse::text(404, "no such route"),
    }
}

/// Serves `bridge` (or, when it could not be configured, an answer naming
/// what is missing) on `addr` until the process ends.
pub async fn serve(listener: TcpListener, bridge: Result<Arc<Bridge>, String>) {
    let bridge = Arc::new(bridge);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let bridge = bridge.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let bridge = bridge.clone();
                async move { Ok::<_, Infallible>(handle(&bridge, req, peer).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    bridge: &Result<Arc<Bridge>, String>,
    request: hyper::Request<Incoming>,
    _peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    let request = HttpRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        public_base_url: Some(format!("{scheme}://{host}")),
        headers: parts.headers,
        cookies: Vec::new(),
        body,
    };
    let response = match bridge {
        Ok(bridge) => route(bridge, &request).await,
        Err(missing) => {
            HttpResponse::text(503, format!("the bridge is not configured: {missing}\n"))
        }
    };
    tracing::debug!(method = %request.method, path = %request.path, status = response.status, "local_request");
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    for cookie in &response.cookies {
        builder = builder.header("set-cookie", cookie);
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::from_static(b"bad response"))))
}
