//! The network side of a reference node: the listener and its connections
//! (HTTP/1.1 keep-alive and h2c through hyper-util's auto builder), the
//! per-request pipeline (record, delay, fault, store), and going down and up.
//!
//! Going down drops the listener, so new connects are refused, and aborts
//! every connection task; requests that wait (delay, hold) also watch the
//! `cut` signal, since h2 streams run on tasks of their own.

use super::api::{self, Reply, ReplyBody};
use super::faults::{Arrival, WriteFault};
use super::{Shared, lock};
use crate::wire;
use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

/// Listen backlog of a node's socket.
const BACKLOG: u32 = 1024;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    /// The node went down while the request waited.
    #[error("the node went down while the request waited")]
    Cut,
    /// The client's body could not be read.
    #[error("cannot read the request body: {0}")]
    Body(#[from] hyper::Error),
    /// A reset was injected: the connection is cut with no answer.
    #[error("injected reset (applied: {applied})")]
    Reset { applied: bool },
}

/// A listener being served: the accept loop and its connections.
pub(super) struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Serving {
    /// Spawns the accept loop on `listener`.
    pub(super) fn spawn(shared: Arc<Shared>, listener: TcpListener) -> Serving {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(shared, listener, stopped));
        Serving { stop, task }
    }

    /// Closes the listener and every connection; returns when they are closed.
    async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            warn!(error = %e, "reference node accept loop ended abnormally");
        }
    }
}

/// Binds `addr` with `SO_REUSEADDR`, so a node can listen again on its port.
pub(super) fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Resolves `addr` (`host:port`) and listens on the first address that binds.
pub(super) async fn listen_any(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for candidate in tokio::net::lookup_host(addr).await? {
        match listen(candidate) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("`{addr}` resolves to no address"))))
}

/// Takes the node down or brings it back up on the same port.
pub(super) async fn set_down(shared: &Arc<Shared>, down: bool) {
    let mut serving = shared.serving.lock().await;
    if down {
        shared.down.store(true, Ordering::SeqCst);
        if let Some(running) = serving.take() {
            running.stop().await;
        }
        // After the connections are gone, so that any h2 stream still
        // running sees either the cut or `down`.
        shared.cut.send_modify(|generation| *generation += 1);
        info!(node = %shared.name, "node down");
        return;
    }
    if serving.is_some() {
        return;
    }
    match listen(shared.addr) {
        Ok(listener) => {
            shared.down.store(false, Ordering::SeqCst);
            *serving = Some(Serving::spawn(shared.clone(), listener));
            info!(node = %shared.name, addr = %shared.addr, "node up");
        }
        Err(e) => {
            error!(node = %shared.name, addr = %shared.addr, error = %e, "cannot listen again; node stays down")
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, stopped: oneshot::Receiver<()>) {
    let name = shared.name.clone();
    let service = service_fn(move |req| serve(shared.clone(), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    // Back off briefly so that, e.g., running out of descriptors does not spin.
    let options = wire::Options::new(name.clone(), builder, wire::Drain::Abort)
        .backoff(Duration::from_millis(10));
    let stopped = async move {
        let _ = stopped.await;
    };
    wire::serve(listener, service, stopped, options, NodeConnections(name)).await;
}

/// A node's connections, named for its logs.
struct NodeConnections(String);

impl wire::Connections for NodeConnections {
    type Guard = ();
    type Io = TcpStream;

    fn admit(&self, stream: TcpStream, peer: SocketAddr) -> Option<(TcpStream, ())> {
        debug!(node = %self.0, %peer, "connection accepted");
        Some((stream, ()))
    }

    fn handshake(
        &self,
        stream: TcpStream,
        _: SocketAddr,
    ) -> impl Future<Output = Option<TcpStream>> + Send + 'static {
        std::future::ready(Some(stream))
    }

    fn ended(&self, (): (), _: SocketAddr, how: wire::Ended) {
        if let wire::Ended::Failed(e) = how {
            debug!(error = %e, "connection ended with an error");
        }
    }
}

/// The request pipeline: record, delay, faults, store, answer.
async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ServeError> {
    let mut cut = shared.cut.subscribe();
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let write = is_write(&parts.method);
    record(&shared, &parts, &body, write);
    let path = parts.uri.path();
    debug!(node = %shared.name, method = %parts.method, path, bytes = body.len(), "request");
    if api::is_healthz(path) {
        return Ok(respond(api::healthz(&parts.method), &parts.method));
    }
    if shared.down.load(Ordering::SeqCst) {
        return Err(ServeError::Cut);
    }
    let delay = shared.faults().delay();
    if !delay.is_zero() {
        until_cut(&mut cut, tokio::time::sleep(delay)).await?;
    }
    let reply = if write {
        handle_write(&shared, &parts, &body, &mut cut).await?
    } else {
        shared.store().handle(&parts.method, path, &body)
    };
    debug!(node = %shared.name, method = %parts.method, path, status = reply.status.as_u16(), "answer");
    Ok(respond(reply, &parts.method))
}

async fn handle_write(
    shared: &Shared,
    parts: &Parts,
    body: &[u8],
    cut: &mut watch::Receiver<u64>,
) -> Result<Reply, ServeError> {
    let arrival = shared.faults().next_write();
    let fault = match arrival {
        Arrival::Now(fault) => fault,
        Arrival::Hold => {
            hold(shared, cut).await?;
            shared.faults().random_write()
        }
    };
    let key = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok());
    let apply = || {
        shared
            .store()
            .handle_once(key, &parts.method, parts.uri.path(), body)
    };
    let reply = match fault {
        WriteFault::None => apply(),
        WriteFault::Fail => Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected failure (not applied)",
        ),
        WriteFault::ApplyThenFail => {
            let applied = apply();
            debug!(node = %shared.name, status = applied.status.as_u16(), "applied before the injected failure");
            Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "injected failure (applied)",
            )
        }
        WriteFault::Reject(status) => Reply::error(status, "injected rejection (not applied)"),
        WriteFault::Reset { applied } => {
            if applied {
                apply();
            }
            debug!(node = %shared.name, applied, "write fault: reset");
            return Err(ServeError::Reset { applied });
        }
    };
    if fault != WriteFault::None {
        debug!(node = %shared.name, ?fault, "write fault");
    }
    let duplicate = parts.method == http::Method::POST && reply.status == StatusCode::BAD_REQUEST;
    if duplicate && shared.faults().duplicate_as_500() {
        return Ok(Reply {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: ReplyBody::Html(
                "<!DOCTYPE html><html><body><pre>Error: Insert failed, duplicate id</pre></body></html>",
            ),
            location: None,
            allow: None,
        });
    }
    Ok(reply)
}

/// Waits for `release_held` (or for the node to go down), counted in `held`.
async fn hold(shared: &Shared, cut: &mut watch::Receiver<u64>) -> Result<(), ServeError> {
    let mut release = shared.release.subscribe();
    let _held = HeldGuard::enter(&shared.held);
    debug!(node = %shared.name, "write held");
    until_cut(cut, release.changed())
        .await?
        .map_err(|_| ServeError::Cut)?;
    debug!(node = %shared.name, "held write released");
    Ok(())
}

/// Runs `fut` unless the node goes down first.
async fn until_cut<F: Future>(
    cut: &mut watch::Receiver<u64>,
    fut: F,
) -> Result<F::Output, ServeError> {
    tokio::select! {
        out = fut => Ok(out),
        _ = cut.changed() => Err(ServeError::Cut),
    }
}

/// Counts a held request for as long as it lives, however it ends.
struct HeldGuard<'a>(&'a AtomicUsize);

impl<'a> HeldGuard<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        HeldGuard(count)
    }
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

fn record(shared: &Shared, parts: &Parts, body: &Bytes, write: bool) {
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.to_string());
    lock(&shared.requests).push(super::RecordedRequest {
        method: parts.method.clone(),
        path,
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    if write {
        shared.writes.fetch_add(1, Ordering::SeqCst);
    }
}

fn respond(reply: Reply, method: &Method) -> Response<Full<Bytes>> {
    let (content_type, bytes) = match reply.body {
        ReplyBody::Json(value) => ("application/json", Bytes::from(value.to_string())),
        ReplyBody::Text(text) => (
            "text/plain; charset=utf-8",
            Bytes::from_static(text.as_bytes()),
        ),
        ReplyBody::Html(text) => (
            "text/html; charset=utf-8",
            Bytes::from_static(text.as_bytes()),
        ),
    };
    let bytes = if *method == Method::HEAD {
        Bytes::new()
    } else {
        bytes
    };
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    if let Some(location) = reply
        .location
        .and_then(|l| header::HeaderValue::try_from(l).ok())
    {
        headers.insert(header::LOCATION, location);
    }
    if let Some(allow) = reply.allow {
        headers.insert(header::ALLOW, header::HeaderValue::from_static(allow));
    }
    response
}
