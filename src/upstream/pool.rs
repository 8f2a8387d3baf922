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
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A node that answers every request with a small 200 and counts its connections.
    async fn counting_node(
        close_after_first: bool,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let head: &'static [u8] = if close_after_first {
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        };
        canned_node(head, close_after_first).await
    }

    /// A node that answers every request with `answer` (closing the connection after it when
    /// `close`) and counts its connections.
    async fn canned_node(
        answer: &'static [u8],
        close: bool,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = conns.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let _ = s.write_all(answer).await;
                            if close {
                                let _ = s.shutdown().await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, conns)
    }

    fn get(path: &str) -> Request<Full<Bytes>> {
        Request::builder().uri(path).body(Full::default()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_body_is_read() {
        let (addr, conns) = counting_node(false).await;
        let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
        for _ in 0..5 {
            let resp = pool.send(get("/x")).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    async fn body_of(pool: &Arc<Pool>, method: http::Method) -> Bytes {
        let mut req = get("/x");
        *req.method_mut() = method;
        let resp = pool.send(req).await.expect("an answer");
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn chunked_and_empty_bodies_return_their_connection() {
        for (answer, expected) in [
            (
                &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"[..],
                &b"ok"[..],
            ),
            (&b"HTTP/1.1 204 No Content\r\n\r\n"[..], &b""[..]),
        ] {
            let (addr, conns) = canned_node(answer, false).await;
            let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
            for _ in 0..3 {
                assert_eq!(&body_of(&pool, http::Method::GET).await[..], expected);
            }
            assert_eq!(
                conns.load(std::sync::atomic::Ordering::SeqCst),
                1,
                "{answer:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_body_read_until_the_node_closes_is_whole_and_its_connection_not_reused() {
        // No length: the body ends when the node closes the connection.
        let (addr, conns) = canned_node(b"HTTP/1.1 200 OK\r\n\r\nuntil close", true).await;
        let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
        for _ in 0..3 {
            assert_eq!(&body_of(&pool, http::Method::GET).await[..], b"until close");
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn at_most_max_idle_connections_are_kept() {
        let (addr, conns) = counting_node(false).await;
        let pool = Pool::new(&addr, Duration::from_secs(1), 2, Duration::from_secs(30));
        // Five at once need five connections; only two stay idle afterwards.
        let answers = futures_util::future::join_all((0..5).map(|_| pool.send(get("/x")))).await;
        for resp in answers {
            let _ = resp.unwrap().into_body().collect().await.unwrap();
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 5);
        assert_eq!(pool.idle_count(), 2);
    }

    #[tokio::test]
    async fn a_body_dropped_unread_does_not_return_its_connection() {
        let (addr, _) = counting_node(false).await;
        let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
        // The 2-byte body is not read: the connection may still carry it and is not reused.
        let resp = pool.send(get("/x")).await.unwrap();
        drop(resp);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_node_closing_each_connection_after_one_answer_costs_no_request() {
        // The node says `connection: close` and closes: the next request must not be lost on
        // that connection, whether or not the close has been seen when it is checked out.
        let (addr, conns) = counting_node(true).await;
        let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
        for i in 0..20 {
            let resp = pool.send(get("/x")).await.unwrap_or_else(|e| {
                panic!("request {i} failed although the node was up: {e}");
            });
            let _ = resp.into_body().collect().await.unwrap();
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn a_node_that_refuses_connections_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
        match pool.send(get("/x")).await {
            Err(e @ SendError::Connect(_)) => assert!(!e.maybe_applied()),
            other => panic!(
                "expected a connect error, got {:?}",
                other.map(|r| r.status())
            ),
        }
    }
}
