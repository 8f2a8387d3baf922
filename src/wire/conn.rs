//! One client connection's lifetime, whatever its protocol: closed when no request head has
//! arrived within `timeouts.header_read` of the accept, and when no request has been in flight
//! for `timeouts.idle`.
//!
//! hyper bounds the head of each HTTP/1 request itself, but only once it knows the connection is
//! HTTP/1: a socket that sends nothing, an HTTP/2 preface with no stream, or a HEADERS frame that
//! never ends would hold a `limits.max_connections` slot forever. The [`Activity`] of a
//! connection counts the requests its service has seen and still answers; [`supervise`] watches
//! it beside the connection and drops the connection (closing the socket) when it has been
//! silent too long.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a connection is doing: requests in flight, and since when it has been idle.
#[derive(Debug)]
pub(crate) struct Activity {
    open: AtomicUsize,
    /// `None` until the first request head arrives.
    idle_since: Mutex<Option<Instant>>,
    /// Wakes the supervisor when the connection falls idle, to set its idle deadline.
    idled: Notify,
}

/// Why [`supervise`] closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// No complete request head within `timeouts.header_read` of the accept.
    NoRequest,
    /// No request in flight for `timeouts.idle`.
    Idle,
}

impl Activity {
    /// A connection just accepted.
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            open: AtomicUsize::new(0),
            idle_since: Mutex::new(None),
            idled: Notify::new(),
        })
    }

    /// A request head arrived; the request counts as open until the guard (moved into the
    /// response body) drops.
    pub(crate) fn begin(self: &Arc<Self>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::Relaxed);
        let mut since = self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        since.get_or_insert_with(Instant::now);
        OpenRequest(self.clone())
    }

    /// When to look again, or why to close now.
    fn check(&self, now: Instant, idle: Duration) -> Result<Instant, Closed> {
        if self.open.load(Ordering::Relaxed) > 0 {
            return Ok(now + idle);
        }
        let since = *self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        match since {
            None => Err(Closed::NoRequest),
            Some(t) if now >= t + idle => Err(Closed::Idle),
            Some(t) => Ok(t + idle),
        }
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub(crate) struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if self.0.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            *since = Some(Instant::now());
            self.0.idled.notify_one();
        }
    }
}

/// How long after `timeouts.header_read` a connection with no request is dropped: hyper's own
/// header timer, which answers an HTTP/1 client 408, goes first.
pub(crate) const GRACE: Duration = Duration::from_millis(250);

/// Runs `conn` until it ends, or closes it (by dropping it) when `activity` says it is silent:
/// no request `header_read` + [`GRACE`] after the accept, or none in flight for `idle`.
pub(crate) async fn supervise<F: Future>(
    conn: F,
    activity: &Activity,
    header_read: Duration,
    idle: Duration,
) -> Result<F::Output, Closed> {
    tokio::pin!(conn);
    let mut at = Instant::now() + header_read + GRACE;
    loop {
        tokio::select! {
            out = &mut conn => return Ok(out),
            () = tokio::time::sleep_until(at) => at = activity.check(Instant::now(), idle)?,
            () = activity.idled.notified() => at = activity.check(Instant::now(), idle)?,
        }
    }
}

/// Logs a connection [`supervise`] closed for silence.
pub(crate) fn on_silent(closed: Closed, peer: std::net::SocketAddr) {
    match closed {
        Closed::NoRequest => {
            tracing::info!(%peer, "closed a connection that sent no complete request head within timeouts.header_read")
        }
        Closed::Idle => tracing::debug!(%peer, "closed a connection idle for timeouts.idle"),
    }
}

/// A response body that keeps its request counted as open until it is dropped.
pub(crate) struct Tracked<B> {
    inner: B,
    _open: OpenRequest,
}

impl<B> Tracked<B> {
    /// `inner`, counted as open until it is dropped.
    pub(crate) fn new(inner: B, open: OpenRequest) -> Tracked<B> {
        Tracked { inner, _open: open }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_closes_at_the_header_deadline() {
        let a = Activity::new();
        let started = Instant::now();
        let out = supervise(
            std::future::pending::<()>(),
            &a,
            Duration::from_secs(2),
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(out, Err(Closed::NoRequest));
        assert_eq!(started.elapsed(), Duration::from_secs(2) + GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_request_keeps_it_and_idleness_after_it_closes_it() {
        let a = Activity::new();
        let open = a.begin();
        let started = Instant::now();
        let release = async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(open);
        };
        let watched = supervise(
            std::future::pending::<()>(),
            &a,
            Duration::from_secs(2),
            Duration::from_secs(5),
        );
        let (out, ()) = tokio::join!(watched, release);
        assert_eq!(out, Err(Closed::Idle));
        assert_eq!(started.elapsed(), Duration::from_secs(35));
    }
}
