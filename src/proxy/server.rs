//! The client listener: accept loop, HTTP/1.1 and HTTP/2 (prior knowledge), header timeouts,
//! the connection limit, and graceful drain.
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests run the real server
//! in-process on port 0 (the mini-redis shape).

use super::{Proxy, ProxyBody};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
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
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = cfg.limits.max_connections, "connection refused: limits.max_connections reached");
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        // A second handle on the socket lets us answer 408 after hyper gives up on slow headers.
        let spare = stream.try_clone_std();
        let proxy = proxy.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let proxy = proxy.clone();
            async move { Ok::<Response<ProxyBody>, Infallible>(proxy.handle(req).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                on_connection_error(&*e, peer, spare);
            }
            drop(permit);
        });
    }
    drop(listener);
    let deadline = current.load().settings.config.timeouts.shutdown;
    tracing::info!(?deadline, "draining open connections");
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
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
    } else {
        tracing::debug!(%peer, error = %crate::upstream::node::source_text(e), "client connection ended with an error");
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
