//! The proxy service: reads go to one healthy node (`read`, its answer streamed by [`stream`]),
//! writes go to the saga (`write`); every error answer is a problem document
//! ([`crate::wire::problem`]).

mod ids;
mod read;
pub(crate) mod server;
pub(crate) mod stream;
mod write;

use crate::wire::{ProxyBody, buffer_body, problem};

use crate::saga::Coordinator;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

/// The hyper service behind the client listener. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    pub coordinator: Coordinator,
}

impl Proxy {
    /// A proxy running writes through `coordinator`.
    pub fn new(coordinator: Coordinator) -> Proxy {
        Proxy { coordinator }
    }

    /// Answers one client request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let rt = self.coordinator.current().load();
        if let Some(refused) = refuse_target(&req, &rt.settings.config.limits) {
            return refused;
        }
        if rt.settings.write_methods.contains(req.method()) {
            write::handle(self, &rt, req).await
        } else if req.method() == http::Method::CONNECT {
            problem::plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "CONNECT is not proxied",
            )
        } else if !READS.contains(req.method()) {
            not_a_read(req.method(), &rt.settings.write_methods)
        } else {
            let started = tokio::time::Instant::now();
            let resp = read::handle(&rt, self.coordinator.journal(), req).await;
            let ok = !resp.status().is_server_error();
            self.coordinator
                .metrics()
                .read_finished(started.elapsed().as_secs_f64(), ok);
            resp
        }
    }
}

/// The methods that go to one node as a read; a method that is neither one of them nor in
/// `writes.methods` is refused: sent to one node it would change that node alone.
const READS: [http::Method; 3] = [http::Method::GET, http::Method::HEAD, http::Method::OPTIONS];

fn not_a_read(method: &http::Method, writes: &[http::Method]) -> Response<ProxyBody> {
    let upper = method.as_str().to_ascii_uppercase();
    let hint = if upper != method.as_str() {
        format!(" (methods are case-sensitive: did you mean {upper}?)")
    } else {
        String::new()
    };
    let writes: Vec<&str> = writes.iter().map(http::Method::as_str).collect();
    tracing::info!(%method, "request refused: the method is neither a read nor a write");
    problem::plain(
        StatusCode::NOT_IMPLEMENTED,
        "method-not-supported",
        format!(
            "{method} is neither a read (GET, HEAD, OPTIONS) nor one of writes.methods ({}){hint}",
            writes.join(", ")
        ),
    )
}

/// A request target dtc will not forward: an HTTP/2 request without `:path` (400), or one
/// longer than `limits.max_uri_bytes` (414).
fn refuse_target(
    req: &Request<Incoming>,
    limits: &crate::config::Limits,
) -> Option<Response<ProxyBody>> {
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    if has_no_path(req.uri()) && req.method() != http::Method::CONNECT {
        tracing::info!(method = %req.method(), "request refused: no :path");
        return Some(problem::plain(
            StatusCode::BAD_REQUEST,
            "no-path",
            "the request has no path (an HTTP/2 request needs a `:path`)",
        ));
    }
    let len = target.len();
    if len > limits.max_uri_bytes {
        tracing::info!(
            len,
            max = limits.max_uri_bytes,
            "request refused: URI too long"
        );
        return Some(problem::plain(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            format!(
                "the request target is {len} bytes, more than limits.max_uri_bytes ({})",
                limits.max_uri_bytes
            ),
        ));
    }
    None
}

/// Whether the request came without a path (an HTTP/2 request with no `:path`). `http` shows
/// an empty path as `/`, but compares path values by what was received, so an empty one is
/// the `/` that is not equal to a received `/`.
fn has_no_path(uri: &http::Uri) -> bool {
    match uri.path_and_query() {
        None => true,
        Some(p) => p.as_str() == "/" && *p != http::uri::PathAndQuery::from_static("/"),
    }
}

/// Splits a request into its head and its whole body, read within `limits.max_body` and
/// `timeouts.header_read`; the error is the answer to give the client.
pub(crate) async fn buffered(
    req: Request<Incoming>,
    cfg: &crate::config::Config,
) -> Result<(http::request::Parts, Bytes), Response<ProxyBody>> {
    let (parts, body) = req.into_parts();
    let body = buffer_body(
        body,
        &parts.headers,
        cfg.limits.max_body,
        cfg.timeouts.header_read,
    )
    .await?;
    Ok((parts, body))
}
