//! One client connection's lifetime, whatever its protocol: closed when no request head has
//! arrived within `timeouts.header_read` of the accept, when an HTTP/1 request head begun
//! between requests is not complete within `timeouts.header_read` of its first byte, and when
//! no request has been in flight for `timeouts.idle`.
//!
//! hyper's own header timer is not used: it starts as soon as hyper waits for the next head,
//! so it also closes a kept-alive connection that is merely idle — after `header_read`, not
//! `idle` — and a client re-using that connection just then (one that waited out a
//! `Retry-After` of about that length, say) had its request cut. Here the head's clock starts
//! at its first byte ([`Watched`] tells [`Activity`] when bytes arrive), and a socket that sends
//! nothing, an HTTP/2 preface with no stream, or a HEADERS frame that never ends is still bounded.
//! The [`Activity`] of a connection counts the requests its service has seen and still answers;
//! [`supervise`] watches it beside the connection and drops the connection (closing the socket)
//! when it has been silent too long.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a connection is doing: requests in flight, and since when it has been idle.
#[derive(Debug)]
pub(crate) struct Activity {
    open: AtomicUsize,
    /// `None` until the first request head arrives.
    idle_since: Mutex<Option<Instant>>,
    /// When the first byte of a request head arrived with no request in flight; cleared when
    /// the head is complete.
    head_since: Mutex<Option<Instant>>,
    /// The connection speaks HTTP/2 (its first bytes were the preface): frames between
    /// requests (PING, SETTINGS) are not the start of a head.
    h2: AtomicBool,
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
    /// An HTTP/1 request head begun but not complete within `timeouts.header_read` (of the
    /// accept for the first, of its first byte for later ones): the client is answered 408.
    SlowHead,
}

impl Activity {
    /// A connection just accepted.
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            open: AtomicUsize::new(0),
            idle_since: Mutex::new(None),
            head_since: Mutex::new(None),
            h2: AtomicBool::new(false),
            idled: Notify::new(),
        })
    }

    /// `bytes` were read from the client. With no request in flight they begin a request head
    /// (unless the connection is HTTP/2), whose clock starts now. No wake-up: an idle
    /// connection's supervisor looks every `header_read` (see [`Activity::check`]), which keeps
    /// the hot path of a kept-alive connection free of one.
    fn arrived(&self, bytes: &[u8]) {
        const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        if bytes.is_empty()
            || self.h2.load(Ordering::Relaxed)
            || self.open.load(Ordering::Relaxed) > 0
        {
            return;
        }
        let mut head = self.head_since.lock().unwrap_or_else(|p| p.into_inner());
        if head.is_some() {
            return;
        }
        // Only a connection's first bytes can be the preface: before its first request head.
        let first = || {
            self.idle_since
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none()
        };
        let n = bytes.len().min(PREFACE.len());
        if bytes[..n] == PREFACE[..n] && first() {
            self.h2.store(true, Ordering::Relaxed);
            return;
        }
        *head = Some(Instant::now());
    }

    /// A request head arrived; the request counts as open until the guard (moved into the
    /// response body) drops.
    pub(crate) fn begin(self: &Arc<Self>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::Relaxed);
        *self.head_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut since = self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        since.get_or_insert_with(Instant::now);
        OpenRequest(self.clone())
    }

    /// When to look again, or why to close now: `first` is the first head's deadline. While the
    /// connection is idle it looks again every `header_read`.
    fn check(
        &self,
        now: Instant,
        first: Instant,
        header_read: Duration,
        idle: Duration,
    ) -> Result<Instant, Closed> {
        if self.open.load(Ordering::Relaxed) > 0 {
            return Ok(now + idle);
        }
        let head = *self.head_since.lock().unwrap_or_else(|p| p.into_inner());
        let since = *self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        match (since, head) {
            (None, None) if now >= first => Err(Closed::NoRequest),
            (None, Some(_)) if now >= first => Err(Closed::SlowHead),
            (None, _) => Ok(first),
            (Some(_), Some(h)) if now >= h + header_read => Err(Closed::SlowHead),
            (Some(_), Some(h)) => Ok(h + header_read),
            (Some(t), None) if now >= t + idle => Err(Closed::Idle),
            // Idle: look again within header_read, so a head begun meanwhile (whose arrival
            // wakes no one) still ends header_read after its first byte.
            (Some(t), None) => Ok((t + idle).min(now + header_read)),
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

/// How long after `timeouts.header_read` a connection with no first request is dropped: where
/// hyper's own header timer runs (the admin listener), it answers an HTTP/1 client 408 first.
pub(crate) const GRACE: Duration = Duration::from_millis(250);

/// Runs `conn` until it ends, or closes it (by dropping it) when `activity` says it is silent:
/// no complete request head `header_read` + [`GRACE`] after the accept, a later head not
/// complete `header_read` after its first byte, or no request in flight for `idle`.
pub(crate) async fn supervise<F: Future>(
    conn: F,
    activity: &Activity,
    header_read: Duration,
    idle: Duration,
) -> Result<F::Output, Closed> {
    tokio::pin!(conn);
    let first = Instant::now() + header_read + GRACE;
    let check = |now| activity.check(now, first, header_read, idle);
    let mut at = first;
    loop {
        tokio::select! {
            out = &mut conn => return Ok(out),
            () = tokio::time::sleep_until(at) => at = check(Instant::now())?,
            () = activity.idled.notified() => at = check(Instant::now())?,
        }
    }
}

/// A client stream that tells its connection's [`Activity`] when bytes arrive.
pub(crate) struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Watched<T> {
        Watched { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let out = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = out {
            this.activity.arrived(&buf.filled()[before..]);
        }
        out
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Logs a connection [`supervise`] closed for silence.
pub(crate) fn on_silent(closed: Closed, peer: std::net::SocketAddr) {
    match closed {
        Closed::NoRequest => {
            tracing::info!(%peer, "closed a connection that sent no complete request head within timeouts.header_read")
        }
        Closed::Idle => tracing::debug!(%peer, "closed a connection idle for timeouts.idle"),
        Closed::SlowHead => {
            tracing::warn!(%peer, "client did not send its request headers in time (timeouts.header_read)")
        }
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

    /// A connection that never ends by itself, watched with a 2 s `header_read`.
    async fn watched(a: &Activity, idle: Duration) -> Result<(), Closed> {
        supervise(
            std::future::pending::<()>(),
            a,
            Duration::from_secs(2),
            idle,
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_closes_at_the_header_deadline() {
        let a = Activity::new();
        let started = Instant::now();
        let out = watched(&a, Duration::from_secs(60)).await;
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
        let watched = watched(&a, Duration::from_secs(5));
        let (out, ()) = tokio::join!(watched, release);
        assert_eq!(out, Err(Closed::Idle));
        assert_eq!(started.elapsed(), Duration::from_secs(35));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_waiting_for_its_next_request_is_idle_not_slow() {
        let a = Activity::new();
        drop(a.begin());
        let started = Instant::now();
        let out = watched(&a, Duration::from_secs(60)).await;
        assert_eq!(out, Err(Closed::Idle));
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_begun_between_requests_has_header_read_from_its_first_byte() {
        let a = Activity::new();
        drop(a.begin());
        let started = Instant::now();
        let later = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            a.arrived(b"POST /v1/gr");
            // More bytes of the same head do not restart its clock.
            tokio::time::sleep(Duration::from_secs(1)).await;
            a.arrived(b"oup/ HTTP/1.1");
        };
        let watched = watched(&a, Duration::from_secs(60));
        let (out, ()) = tokio::join!(watched, later);
        assert_eq!(out, Err(Closed::SlowHead));
        assert_eq!(started.elapsed(), Duration::from_secs(32));
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_head_begun_and_not_finished_is_slow_at_the_accepts_deadline() {
        let a = Activity::new();
        a.arrived(b"GET / HTTP/1.1\r\n");
        let started = Instant::now();
        let out = watched(&a, Duration::from_secs(60)).await;
        assert_eq!(out, Err(Closed::SlowHead));
        assert_eq!(started.elapsed(), Duration::from_secs(2) + GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_streams_are_not_a_head() {
        let a = Activity::new();
        a.arrived(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        drop(a.begin());
        let started = Instant::now();
        let later = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            a.arrived(&[0, 0, 8, 6, 0, 0, 0, 0, 0]); // a PING
        };
        let watched = watched(&a, Duration::from_secs(60));
        let (out, ()) = tokio::join!(watched, later);
        assert_eq!(out, Err(Closed::Idle));
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }
}
