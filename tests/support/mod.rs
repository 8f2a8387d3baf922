//! Helpers shared by the integration tests: starting reference nodes, an
//! HTTP client to talk to them (and to the proxy), and polling with a deadline.
//!
//! Each test file includes this with `mod support;`; not every file uses
//! every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod admin;
pub mod answer;
pub mod double;
pub mod items;
pub mod model;
pub mod pg;
pub mod process;
pub mod raw;
pub mod reload;
pub mod tls;
pub mod webdriver;

use bytes::Bytes;
use dtc::node::{NodeOptions, RefNode};
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

pub use answer::Answer;

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
    Ok(Answer::new(parts.status, parts.headers, body))
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

/// Polls the async `check` every `every` until it holds; fails the test with `what` if it does
/// not within `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, every: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(every).await;
    }
}

// ---- the group API, through dtc or straight to a node ----

/// Something the group API can be reached at: a proxy under test, a node, a base URL.
pub trait At {
    /// The base URL followed by `path`.
    fn at(&self, path: &str) -> String;
}

impl<T: At + ?Sized> At for &T {
    fn at(&self, path: &str) -> String {
        (**self).at(path)
    }
}

impl At for str {
    fn at(&self, path: &str) -> String {
        format!("{self}{path}")
    }
}

impl At for String {
    fn at(&self, path: &str) -> String {
        format!("{self}{path}")
    }
}

impl At for RefNode {
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }
}

impl At for Dtc {
    fn at(&self, path: &str) -> String {
        Dtc::at(self, path)
    }
}

/// `POST /v1/group/` with `{"groupId": id}`.
pub async fn create_group(at: &(impl At + ?Sized), id: &str) -> Answer {
    send(Method::POST, &at.at("/v1/group/"), Some(&group(id)), &[]).await
}

/// `POST /v1/group/` with `{"groupId": id}` and the client's `Idempotency-Key: key`.
pub async fn create_group_keyed(at: &(impl At + ?Sized), id: &str, key: &str) -> Answer {
    let body = group(id);
    send(
        Method::POST,
        &at.at("/v1/group/"),
        Some(&body),
        &[("idempotency-key", key)],
    )
    .await
}

/// `DELETE /v1/group/` with `{"groupId": id}`.
pub async fn delete_group(at: &(impl At + ?Sized), id: &str) -> Answer {
    send(Method::DELETE, &at.at("/v1/group/"), Some(&group(id)), &[]).await
}

/// `GET /v1/group/{id}/`.
pub async fn read_group(at: &(impl At + ?Sized), id: &str) -> Answer {
    send(Method::GET, &at.at(&format!("/v1/group/{id}/")), None, &[]).await
}

// ---- the proxy under test ----

use dtc::app::{App, Listeners};
use dtc::config::{Config, NodeConfig, Settings};

/// The routes the tests run with: the shipped reference-API rules plus the items example.
pub const TEST_ROUTES: &str = r#"
[[routes]]
method = "POST"
path = "/v1/group/"
key = "group/{body:/groupId}"
already = [400]
compensation = { method = "DELETE", path = "/v1/group/", body = "original", already = [404] }
verify = { path = "/v1/group/{body:/groupId}/", prior = [404], target = [200] }

[[routes]]
method = "DELETE"
path = "/v1/group/"
key = "group/{body:/groupId}"
already = [404]
compensation = { method = "POST", path = "/v1/group/", body = "original", already = [400] }
verify = { path = "/v1/group/{body:/groupId}/", prior = [200], target = [404] }

[[routes]]
method = "POST"
path = "/items"
compensation = { method = "DELETE", path = "/items/{response:/id}", already = [404] }

[[routes]]
method = "PUT"
path = "/items/{id}"
key = "item/{id}"
snapshot = { method = "GET" }
compensation = { method = "PUT", path = "/items/{id}", body = "snapshot" }

[[routes]]
method = "DELETE"
path = "/items/{id}"
key = "item/{id}"
already = [404]
snapshot = { method = "GET" }
compensation = { method = "PUT", path = "/items/{id}", body = "snapshot" }
"#;

/// A config for `nodes` with quick retries and probes, so fault tests finish fast.
pub fn test_config(nodes: &[RefNode]) -> Config {
    let mut cfg: Config = toml::from_str(TEST_ROUTES).expect("test routes parse");
    cfg.listen.address = "127.0.0.1:0".into();
    cfg.listen.admin = String::new();
    cfg.nodes = nodes
        .iter()
        .map(|n| NodeConfig {
            name: n.name().to_string(),
            url: n.url(),
            tls: None,
        })
        .collect();
    cfg.retry.attempts = 4;
    cfg.retry.initial_backoff = Duration::from_millis(5);
    cfg.retry.max_backoff = Duration::from_millis(20);
    cfg.retry.deadline = Duration::from_secs(3);
    cfg.timeouts.attempt = Duration::from_millis(1500);
    cfg.health.interval = Duration::from_millis(50);
    cfg.health.timeout = Duration::from_millis(200);
    cfg
}

/// Validates a config built in a test.
pub fn settings(cfg: Config) -> Settings {
    dtc::config::validate::validate(cfg, "")
        .unwrap_or_else(|p| panic!("test config invalid: {p:?}"))
}

/// A running proxy; stops when dropped.
pub struct Dtc {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub app: App,
    /// The journal's directory, when the test did not choose one.
    pub dir: Option<tempfile::TempDir>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Dtc {
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Starts this proxy's admin listener on a free port; its base URL, `http://127.0.0.1:PORT`.
    pub async fn serve_admin(&self) -> String {
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind admin");
        let url = format!("http://{}", admin.local_addr().expect("admin addr"));
        tokio::spawn(dtc::admin::serve(
            admin,
            self.app.admin.clone(),
            std::future::pending(),
        ));
        url
    }

    /// Whether the proxy currently sees node `i` (in config order) as up.
    pub fn node_up(&self, i: usize) -> bool {
        self.app.current.load().nodes.all()[i].health.is_up()
    }

    /// Whether the proxy currently sees `node` as up.
    pub fn sees_up(&self, node: &RefNode) -> bool {
        let rt = self.app.current.load();
        let n = rt.nodes.all().iter().find(|n| n.spec.name == node.name());
        n.unwrap_or_else(|| panic!("node {} is not configured", node.name()))
            .health
            .is_up()
    }
}

/// Starts the proxy in-process on a free port, with its journal (in a fresh temporary directory
/// unless the config names one).
pub async fn start_proxy(mut cfg: Config) -> Dtc {
    let dir = (cfg.journal.dir == Config::default().journal.dir)
        .then(|| tempfile::tempdir().expect("journal dir"));
    if let Some(d) = &dir {
        cfg.journal.dir = d.path().display().to_string();
    }
    let app = App::builder(settings(cfg))
        .start()
        .await
        .expect("dtc starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = app.clone();
    tokio::spawn(async move {
        serving
            .serve(Listeners::client(listener), async {
                let _ = rx.await;
            })
            .await
    });
    Dtc {
        url: format!("http://{addr}"),
        addr,
        app,
        dir,
        _stop: tx,
    }
}

/// Reference nodes `a`, `b`, `c`, assigning item ids from 1, 101 and 201.
pub async fn three_nodes() -> Vec<RefNode> {
    vec![
        start_node("a", 1).await,
        start_node("b", 101).await,
        start_node("c", 201).await,
    ]
}

/// The three nodes of [`three_nodes`] by name, so a test can bind each to the part it plays
/// (`let holder = nodes.c();`).
pub trait Trio {
    fn a(&self) -> &RefNode;
    fn b(&self) -> &RefNode;
    fn c(&self) -> &RefNode;
}

impl Trio for [RefNode] {
    fn a(&self) -> &RefNode {
        &self[0]
    }
    fn b(&self) -> &RefNode {
        &self[1]
    }
    fn c(&self) -> &RefNode {
        &self[2]
    }
}

/// Three reference nodes `a`, `b`, `c` (item ids from 1, 101, 201) and a proxy in front.
pub async fn cluster() -> (Vec<RefNode>, Dtc) {
    cluster_with(|_| {}).await
}

/// Like [`cluster`], with the config adjusted by `tweak` first.
pub async fn cluster_with(tweak: impl FnOnce(&mut Config)) -> (Vec<RefNode>, Dtc) {
    let nodes = three_nodes().await;
    let mut cfg = test_config(&nodes);
    tweak(&mut cfg);
    let dtc = start_proxy(cfg).await;
    (nodes, dtc)
}

/// `{"groupId": "<id>"}`.
pub fn group(id: &str) -> String {
    format!(r#"{{"groupId": "{id}"}}"#)
}

/// Write requests a node received with `method`.
pub fn writes(node: &RefNode, method: Method) -> Vec<dtc::node::RecordedRequest> {
    node.requests()
        .into_iter()
        .filter(|r| r.method == method)
        .collect()
}

/// A node stand-in that answers every request with `status` and counts them.
pub async fn stub_node(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use hyper::service::service_fn;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stub");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let mut resp =
                            http::Response::new(Full::new(Bytes::from_static(b"{\"stub\":true}")));
                        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, count)
}

/// Starts `POST {base}/v1/group/` for `id` while node c holds its copy open, and returns once
/// a and b applied it and c holds it: a write caught half-done. The task yields the client's
/// answer (`Err` when dtc went away).
pub async fn half_done_create(
    nodes: &[RefNode],
    base: &str,
    id: &str,
) -> tokio::task::JoinHandle<Result<Answer, hyper_util::client::legacy::Error>> {
    let (applied, holder) = ([nodes.a(), nodes.b()], nodes.c());
    holder.hold_next(1);
    let (url, body) = (format!("{base}/v1/group/"), group(id));
    let client = tokio::spawn(async move { try_send(Method::POST, &url, Some(&body), &[]).await });
    wait_until("a and b applied, c holds the write", || {
        holder.held_count() == 1 && applied.iter().all(|n| n.groups().contains(id))
    })
    .await;
    client
}
