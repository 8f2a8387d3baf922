//! A node's connection pool: HTTP/1.1 connections driven by hyper's low-level client
//! (`hyper::client::conn::http1`), kept idle on a last-in-first-out stack.
//!
//! Why not hyper-util's pooled client: it spawns a task per request to put the connection
//! back once it is idle again, and races connects against checkouts. Here a connection goes
//! back to the stack when its response body has been read to the end ([`NodeBody`]), so a
//! request costs no task, and a request that a pooled connection could not even send (the node
//! had closed it while idle) is sent again on another one — it never reached the node, so
//! this is safe for writes too.

use super::error::{SendError, source_text};
use super::resolve::Resolver;
use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt as _;

type Sender = SendRequest<Full<Bytes>>;

/// Idle connections of one node, and how to make new ones.
pub(crate) struct Pool {
    connector: HttpConnector<Resolver>,
    /// `http://authority`, what the connector dials.
    target: Uri,
    host: HeaderValue,
    idle: Mutex<VecDeque<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    tx: Sender,
    since: Instant,
}

impl Pool {
    /// A pool for the node at `authority` (`host:port`).
    pub(crate) fn new(
        authority: &str,
        connect_timeout: Duration,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Arc<Pool> {
        // Not libc's getaddrinfo: it cannot resolve anything in the scratch image.
        let resolver = Resolver::shared().with_timeout(connect_timeout);
        let mut connector = HttpConnector::new_with_resolver(resolver);
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let target = format!("http://{authority}")
            .parse()
            .unwrap_or_else(|_| Uri::from_static("http://invalid"));
        let host = HeaderValue::from_str(authority)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        Arc::new(Pool {
            connector,
            target,
            host,
            idle: Mutex::new(VecDeque::new()),
            max_idle,
            idle_timeout,
        })
    }

    /// Sends `req` (origin-form URI) and waits for the response head. The connection returns to
    /// the pool when the response body has been read to its end.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<NodeBody>, SendError> {
        if !req.headers().contains_key(HOST) {
            req.headers_mut().insert(HOST, self.host.clone());
        }
        loop {
            let (mut tx, fresh) = match self.checkout() {
                Some(tx) => (tx, false),
                None => (self.connect().await?, true),
            };
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    let lease = Lease {
                        pool: self.clone(),
                        tx,
                    };
                    return Ok(resp.map(|body| NodeBody {
                        inner: body,
                        lease: Some(lease),
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // The request never left: an idle connection the node had closed.
                    Some(back) if !fresh => req = back,
                    Some(_) => {
                        return Err(SendError::Connect(format!(
                            "connection closed before the request was sent: {}",
                            source_text(&e.into_error())
                        )));
                    }
                    None => return Err(SendError::Broken(source_text(&e.into_error()))),
                },
            }
        }
    }

    /// The most recently used idle connection that can take a request now.
    fn checkout(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while idle
            .front()
            .is_some_and(|i| now.duration_since(i.since) > self.idle_timeout)
        {
            idle.pop_front();
        }
        let mut found = None;
        let mut busy = Vec::new();
        while let Some(i) = idle.pop_back() {
            if i.tx.is_closed() {
                continue;
            }
            if i.tx.is_ready() {
                found = Some(i.tx);
                break;
            }
            busy.push(i);
        }
        // Not ready yet (the connection is still finishing its last response): keep it.
        idle.extend(busy.into_iter().rev());
        found
    }

    fn checkin(&self, tx: Sender) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            tx,
            since: Instant::now(),
        });
    }

    async fn connect(&self) -> Result<Sender, SendError> {
        let io = self
            .connector
            .clone()
            .oneshot(self.target.clone())
            .await
            .map_err(|e| SendError::Connect(source_text(&e)))?;
        let (tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(source_text(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %source_text(&e), "node connection closed with an error");
            }
        });
        Ok(tx)
    }

    /// Idle connections (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
    }
}

/// A connection lent to one request until its response body ends.
struct Lease {
    pool: Arc<Pool>,
    tx: Sender,
}

/// A node's response body. When it has been read to the end, its connection goes back to the
/// pool; dropped earlier, the connection is closed instead (it still carries unread bytes).
pub struct NodeBody {
    inner: Incoming,
    lease: Option<Lease>,
}

impl NodeBody {
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.pool.checkin(lease.tx);
        }
    }
}

impl Body for NodeBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Err(_))) => self.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for NodeBody {
    fn drop(&mut self) {
        // hyper's server stops polling once `is_end_stream` says so: that is a clean end too.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests;
