//! The client listener on the [`wire::serve()`] skeleton: HTTP/1.1 and HTTP/2 (prior knowledge),
//! header limits, the `wire::conn` silence timeouts, the connection limit (a client over it is
//! answered 503), and the 408 for a client too slow with its request head.
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests run the real server
//! in-process on port 0 (the mini-redis shape).

use super::Proxy;
use crate::saga::Coordinator;
use crate::wire::conn::Closed;
use crate::wire::{self, Connections, Drain, Ended, Options, problem};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Serves clients on `listener` until `shutdown` resolves, then stops accepting and lets open
/// requests finish for up to the configured shutdown timeout.
pub(crate) async fn serve(listener: TcpListener, proxy: Proxy, shutdown: impl Future<Output = ()>) {
    let current = proxy.coordinator.current().clone();
    let cfg = current.load().settings.config.clone();
    let clients = Clients {
        slots: Arc::new(Semaphore::new(cfg.limits.max_connections)),
        max: cfg.limits.max_connections,
        coordinator: proxy.coordinator.clone(),
    };
    let service = service_fn(move |req: Request<Incoming>| {
        let proxy = proxy.clone();
        async move { Ok::<_, Infallible>(proxy.handle(req).await) }
    });
    let drain = Drain::within_at_shutdown(move || current.load().settings.config.timeouts.shutdown);
    let opts = Options::new("client", server_builder(&cfg), drain)
        .with_upgrades()
        .close_silent(cfg.timeouts.header_read, cfg.timeouts.idle);
    wire::serve(listener, service, shutdown, opts, clients).await;
}

fn server_builder(cfg: &crate::config::Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Not hyper's header timer: it also runs while a kept-alive connection waits for its
        // next request, closing it after header_read instead of timeouts.idle
        // (wire::conn bounds every head from its first byte instead).
        .header_read_timeout(None)
        .max_buf_size(cfg.limits.max_header_bytes)
        .max_headers(cfg.limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(cfg.limits.max_header_bytes as u32);
    builder
}

/// Client connections: at most `limits.max_connections` at a time, counted in the metrics
/// (`/readyz` reports when every slot is taken).
struct Clients {
    slots: Arc<Semaphore>,
    max: usize,
    /// Whose metrics count the connections.
    coordinator: Coordinator,
}

/// An admitted client connection.
struct Admitted {
    _slot: OwnedSemaphorePermit,
    /// A second handle on the socket, to answer 408 after hyper gives up on slow headers.
    spare: Option<std::net::TcpStream>,
}

impl Connections for Clients {
    type Guard = Admitted;
    type Io = TcpStream;

    fn admit(&self, stream: TcpStream, peer: SocketAddr) -> Option<(TcpStream, Admitted)> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = self.max, "connection refused: limits.max_connections reached");
            tokio::spawn(refuse(stream));
            return None;
        };
        self.coordinator.metrics().connection_opened();
        let _ = stream.set_nodelay(true);
        let spare = wire::spare(&stream);
        Some((stream, Admitted { _slot: slot, spare }))
    }

    fn handshake(
        &self,
        stream: TcpStream,
        _: SocketAddr,
    ) -> impl Future<Output = Option<TcpStream>> + Send + 'static {
        std::future::ready(Some(stream))
    }

    fn ended(&self, guard: Admitted, peer: SocketAddr, how: Ended) {
        let Admitted { _slot: slot, spare } = guard;
        match how {
            Ended::Failed(e) => on_connection_error(&*e, peer),
            Ended::Silent(Closed::SlowHead) => wire::answer_408(spare),
            Ended::Done | Ended::Silent(_) => {}
        }
        drop(slot);
        self.coordinator.metrics().connection_closed();
    }
}

/// Tells a client over the connection limit why it is turned away.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let resp = problem::raw(
        StatusCode::SERVICE_UNAVAILABLE,
        "too-many-connections",
        "dtc is serving limits.max_connections connections; retry later",
        Some(1),
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&resp)).await;
    let _ = stream.shutdown().await;
}

fn on_connection_error(e: &(dyn std::error::Error + 'static), peer: SocketAddr) {
    if e.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_parse)
    {
        // hyper has answered 400, 414 or 431 and closed: say why, once per connection.
        tracing::info!(%peer, error = %crate::upstream::source_text(e), "client request refused: malformed or oversized request head");
    } else {
        tracing::debug!(%peer, error = %crate::upstream::source_text(e), "client connection ended with an error");
    }
}
