//! A node's connection pool: connections driven by hyper's low-level client
//! (`hyper::client::conn`), HTTP/1.1 ones kept idle on a last-in-first-out stack, and for an
//! https node that agreed to HTTP/2 by ALPN, one shared HTTP/2 connection that carries many
//! requests at once.
//!
//! Why not hyper-util's pooled client: it spawns a task per request to put the connection
//! back once it is idle again, and races connects against checkouts. Here a connection goes
//! back to the stack when its response body has been read to the end ([`NodeBody`]), so a
//! request costs no task, and a request that a pooled connection could not even send (the node
//! had closed it while idle) is sent again on another one — it never reached the node, so
//! this is safe for writes too.
//!
//! An https node's connections are TLS ([`super::tls`], through hyper-rustls's connector): the
//! connect timeout bounds the TCP connect and, once more, the TLS handshake. A handshake that
//! fails (an untrusted certificate, a wrong name, a client certificate refused) is a connect
//! error: no request was sent.

use super::error::{SendError, source_text};
use super::resolve::Resolver;
use super::tls::NodeTls;
use crate::config::duration::Human;
use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt as _;

type H1 = http1::SendRequest<Full<Bytes>>;
type H2 = http2::SendRequest<Full<Bytes>>;

/// A connection's sending half.
enum Sender {
    H1(H1),
    /// Shared: a clone of the pool's HTTP/2 connection.
    H2(H2),
}

/// Idle connections of one node, and how to make new ones.
pub(crate) struct Pool {
    connector: HttpConnector<Resolver>,
    /// For an https node: its TLS settings and the name it is verified by.
    tls: Option<(NodeTls, Arc<FixedServerNameResolver>)>,
    /// `http://authority` or `https://authority`, what the connector dials.
    target: Uri,
    host: HeaderValue,
    connect_timeout: Duration,
    idle: Mutex<VecDeque<Idle>>,
    /// The HTTP/2 connection, once an https node chose HTTP/2.
    h2: Mutex<Option<H2>>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    tx: H1,
    since: Instant,
}

impl Pool {
    /// A plain-HTTP pool for the node at `authority` (`host:port`).
    pub(crate) fn new(
        authority: &str,
        connect_timeout: Duration,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Arc<Pool> {
        Pool::with_tls(authority, None, connect_timeout, max_idle, idle_timeout)
    }

    /// A pool for the node at `authority` (`host:port`), over TLS when `tls` is given.
    pub(crate) fn with_tls(
        authority: &str,
        tls: Option<NodeTls>,
        connect_timeout: Duration,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Arc<Pool> {
        // Not libc's getaddrinfo: it cannot resolve anything in the scratch image.
        let resolver = Resolver::shared().with_timeout(connect_timeout);
        let mut connector = HttpConnector::new_with_resolver(resolver);
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(tls.is_none());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let target = format!("{scheme}://{authority}")
            .parse()
            .unwrap_or_else(|_| Uri::from_static("http://invalid"));
        let host = HeaderValue::from_str(authority)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        let tls = tls.map(|t| {
            let name = Arc::new(FixedServerNameResolver::new(t.server_name()));
            (t, name)
        });
        Arc::new(Pool {
            connector,
            tls,
            target,
            host,
            connect_timeout,
            idle: Mutex::new(VecDeque::new()),
            h2: Mutex::new(None),
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
            let (tx, fresh) = match self.checkout() {
                Some(tx) => (tx, false),
                None => (self.connect().await?, true),
            };
            let (sent, lease) = match tx {
                Sender::H1(mut tx) => {
                    let sent = tx.try_send_request(req).await;
                    (sent, Some(tx))
                }
                Sender::H2(mut tx) => (tx.try_send_request(req).await, None),
            };
            match sent {
                Ok(resp) => {
                    let lease = lease.map(|tx| Lease {
                        pool: self.clone(),
                        tx,
                    });
                    return Ok(resp.map(|body| NodeBody { inner: body, lease }));
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

    /// The HTTP/2 connection if there is a live one, else the most recently used idle
    /// HTTP/1.1 connection that can take a request now.
    fn checkout(&self) -> Option<Sender> {
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        match h2.as_ref() {
            Some(tx) if tx.is_closed() => *h2 = None,
            Some(tx) => return Some(Sender::H2(tx.clone())),
            None => {}
        }
        drop(h2);
        self.checkout_h1().map(Sender::H1)
    }

    /// The most recently used idle HTTP/1.1 connection that can take a request now.
    fn checkout_h1(&self) -> Option<H1> {
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

    fn checkin(&self, tx: H1) {
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
        let Some((tls, name)) = &self.tls else {
            let io = self
                .connector
                .clone()
                .oneshot(self.target.clone())
                .await
                .map_err(|e| SendError::Connect(source_text(&e)))?;
            return self.handshake_h1(io).await;
        };
        let config = tls
            .config()
            .map_err(|e| SendError::Connect(e.to_string()))?;
        let https = HttpsConnector::new(self.connector.clone(), config, true, name.clone());
        // The TCP connect has its own bound inside; this one is for the TLS handshake.
        let io = tokio::time::timeout(self.connect_timeout * 2, https.oneshot(self.target.clone()))
            .await
            .map_err(|_| {
                SendError::Connect(format!(
                    "TLS handshake: no answer within {}",
                    Human(self.connect_timeout)
                ))
            })?
            .map_err(|e| SendError::Connect(format!("TLS: {}", source_text(&*e))))?;
        if !io.connected().is_negotiated_h2() {
            return self.handshake_h1(io).await;
        }
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(source_text(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %source_text(&e), "node HTTP/2 connection closed with an error");
            }
        });
        *self.h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx.clone());
        Ok(Sender::H2(tx))
    }

    async fn handshake_h1<T>(&self, io: T) -> Result<Sender, SendError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(source_text(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %source_text(&e), "node connection closed with an error");
            }
        });
        Ok(Sender::H1(tx))
    }

    /// Idle connections (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
    }
}

/// An HTTP/1.1 connection lent to one request until its response body ends.
struct Lease {
    pool: Arc<Pool>,
    tx: H1,
}

/// A node's response body. When it has been read to the end, its HTTP/1.1 connection goes back
/// to the pool; dropped earlier, the connection is closed instead (it still carries unread
/// bytes). An HTTP/2 stream has no connection of its own to return.
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
