//! The client listener: accept loop, HTTP/1.1 and HTTP/2 (prior knowledge), header timeouts,
//! the connection limit, and graceful drain.
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests run the real server
//! in-process on port 0 (the mini-redis shape).

use super::Proxy;
use super::conn::{Activity, Closed, Tracked, supervise};
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Serves clients on `listener` until `shutdown` resolves, then stops accepting and lets open
/// requests finish for up to the configured shutdown timeout.
pub async fn serve(listener: TcpListener, proxy: Proxy, shutdown: impl Future<Output = ()>) {
    let current = proxy.coordinator.current().clone();
    let cfg = current.load().settings.config.clone();
    let slots = Arc::new(Semaphore::new(cfg.limits.max_connections));
    let graceful = GracefulShutdown::new();
    let builder = server_builder(&cfg);
    let metrics = proxy.coordinator.metrics().clone();
    accept_loop(&listener, shutdown, "client", |stream, peer| {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = cfg.limits.max_connections, "connection refused: limits.max_connections reached");
            tokio::spawn(refuse(stream));
            return;
        };
        metrics.connection_opened();
        let _ = stream.set_nodelay(true);
        // A second handle on the socket lets us answer 408 after hyper gives up on slow headers.
        let spare = stream.try_clone_std();
        let proxy = proxy.clone();
        let activity = Activity::new();
        let seen = activity.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let proxy = proxy.clone();
            let open = seen.begin();
            async move {
                let resp = proxy.handle(req).await;
                Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, open)))
            }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        let metrics = metrics.clone();
        let t = cfg.timeouts.clone();
        tokio::spawn(async move {
            match supervise(conn, &activity, t.header_read, t.idle).await {
                Ok(Err(e)) => on_connection_error(&*e, peer, spare),
                Ok(Ok(())) => {}
                Err(closed) => on_silent(closed, peer),
            }
            drop(permit);
            metrics.connection_closed();
        });
    })
    .await;
    drop(listener);
    drain(
        graceful,
        current.load().settings.config.timeouts.shutdown,
        "client",
    )
    .await;
}

/// Logs a connection [`supervise`] closed for silence.
pub(crate) fn on_silent(closed: Closed, peer: SocketAddr) {
    match closed {
        Closed::NoRequest => {
            tracing::info!(%peer, "closed a connection that sent no complete request head within timeouts.header_read")
        }
        Closed::Idle => tracing::debug!(%peer, "closed a connection idle for timeouts.idle"),
    }
}

/// Accepts connections until `shutdown` resolves, handing each to `on_accept`. Accept errors
/// (out of file descriptors and the like) back off briefly instead of spinning.
pub(crate) async fn accept_loop(
    listener: &TcpListener,
    shutdown: impl Future<Output = ()>,
    what: &str,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => on_accept(stream, peer),
                Err(e) => {
                    tracing::warn!(listener = what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => return,
        }
    }
}

/// Lets open connections finish their requests for up to `deadline`, then gives up on them.
pub(crate) async fn drain(graceful: GracefulShutdown, deadline: Duration, what: &str) {
    tracing::info!(listener = what, ?deadline, "draining open connections");
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = what,
            ?deadline,
            "connections still open at the shutdown deadline; closing them"
        );
    }
}

fn server_builder(cfg: &crate::config::Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.timeouts.header_read)
        .max_buf_size(cfg.limits.max_header_bytes)
        .max_headers(cfg.limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(cfg.limits.max_header_bytes as u32);
    builder
}

/// Tells a client over the connection limit why it is turned away.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = r#"{"type":"urn:dtc:problem:too-many-connections","title":"Service Unavailable","status":503,"detail":"dtc is serving limits.max_connections connections; retry later","retryable":true}"#;
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(resp.as_bytes())).await;
    let _ = stream.shutdown().await;
}

fn on_connection_error(
    e: &(dyn std::error::Error + 'static),
    peer: std::net::SocketAddr,
    spare: Option<std::net::TcpStream>,
) {
    let timed_out = e
        .downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout);
    if timed_out {
        tracing::warn!(%peer, "client did not send its request headers in time (timeouts.header_read): answered 408");
        if let Some(mut s) = spare {
            let body = r#"{"type":"urn:dtc:problem:header-timeout","title":"Request Timeout","status":408,"detail":"the request headers did not arrive in time","retryable":true}"#;
            let resp = format!(
                "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    } else if e
        .downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_parse)
    {
        // hyper has answered 400, 414 or 431 and closed: say why, once per connection.
        tracing::info!(%peer, error = %crate::upstream::source_text(e), "client request refused: malformed or oversized request head");
    } else {
        tracing::debug!(%peer, error = %crate::upstream::source_text(e), "client connection ended with an error");
    }
}

/// Duplicates a socket handle (no unsafe): `TcpStream` → std → clone.
trait TryCloneStd {
    fn try_clone_std(&self) -> Option<std::net::TcpStream>;
}

impl TryCloneStd for TcpStream {
    fn try_clone_std(&self) -> Option<std::net::TcpStream> {
        let sock = socket2::SockRef::from(self);
        sock.try_clone().ok().map(std::net::TcpStream::from)
    }
}
