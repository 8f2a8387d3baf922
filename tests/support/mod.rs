//! Helpers shared by the integration tests: starting reference nodes, an
//! HTTP client to talk to them (and to the proxy), and polling with a deadline.
//!
//! Each test file includes this with `mod support;`; not every file uses
//! every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod admin;

use bytes::Bytes;
use dtc::node::{NodeOptions, RefNode};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// What a test sees of an answer: status, headers, whole body.
pub type Answer = (StatusCode, HeaderMap, Bytes);

/// How long [`wait_until`] waits before failing the test.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Starts a reference node on a free loopback port, ids from `id_base`, no faults.
pub async fn start_node(name: &str, id_base: u64) -> RefNode {
    let opts = NodeOptions {
        id_base,
        ..NodeOptions::named(name)
    };
    RefNode::bind("127.0.0.1:0", opts)
        .await
        .expect("start reference node")
}

/// A plain HTTP/1.1 client (HTTP/2 prior knowledge with `http2_only`).
pub fn client(http2_only: bool) -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(http2_only)
        .build_http()
}

/// Builds a request; a body without a `content-type` among `headers` is
/// sent as `application/json`.
pub fn request(
    method: Method,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from(body.unwrap_or_default().to_owned())));
    *req.method_mut() = method;
    *req.uri_mut() = url.parse().expect("a valid url");
    for (name, value) in headers {
        let name = header::HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        req.headers_mut().append(
            name,
            HeaderValue::from_str(value).expect("a valid header value"),
        );
    }
    if body.is_some() && !req.headers().contains_key(header::CONTENT_TYPE) {
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    req
}

/// Sends one request on a fresh HTTP/1.1 connection; `Err` when there is no
/// answer (connect refused, connection closed).
pub async fn try_send(
    method: Method,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Answer, hyper_util::client::legacy::Error> {
    send_with(&client(false), request(method, url, body, headers)).await
}

/// Sends one request with `client`; `Err` when there is no answer.
pub async fn send_with(
    client: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<Answer, hyper_util::client::legacy::Error> {
    let response = client.request(req).await?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("read the response body")
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// Sends one request and expects an answer (panics on connection errors).
pub async fn send(
    method: Method,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let what = format!("{method} {url}");
    try_send(method, url, body, headers)
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer: {e:?}"))
}

/// Parses an answer's body as JSON.
pub fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body:?}"))
}

/// Polls `condition` every few milliseconds until it holds; fails the test
/// with `what` if it does not within [`DEADLINE`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
