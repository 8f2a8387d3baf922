//! One accept loop for every listener — the proxy, the admin listener, the webhook and the
//! reference node: accept until shutdown, backing off after an accept error instead of spinning;
//! serve each connection on a task of its own; then drain.
//!
//! What differs between listeners comes in as [`Options`] (the HTTP builder with its protocol
//! limits, upgrades, the [`conn`](super::conn) silence timeouts, how to drain) and a
//! [`Connections`] hook (admission, e.g. connection slots; a handshake, e.g. TLS; what to do when
//! a connection ends).

use super::conn::{Activity, Closed, Tracked, Watched, on_silent, supervise};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// An error a connection or a service ends with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long the loop waits after an accept error (out of file descriptors, ...) by default.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Where connections come from: a bound TCP listener (or a test's stand-in).
pub(crate) trait Accept: Send {
    /// The next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// How a listener ends once its shutdown future resolves and it stops accepting.
pub(crate) enum Drain {
    /// Ask open connections to finish their requests, wait for up to the deadline (read when
    /// the drain starts: a reload may have changed it), then leave what is left to end alone.
    Within(Box<dyn FnOnce() -> Duration + Send>),
    /// Close every open connection at once, and return when they are closed.
    Abort,
}

impl Drain {
    /// [`Drain::Within`] a fixed deadline (the webhook's).
    #[cfg(any(feature = "k8s", test))]
    pub(crate) fn within(deadline: Duration) -> Drain {
        Drain::Within(Box::new(move || deadline))
    }

    /// [`Drain::Within`] the deadline `deadline()` gives when the drain starts.
    pub(crate) fn within_at_shutdown(
        deadline: impl FnOnce() -> Duration + Send + 'static,
    ) -> Drain {
        Drain::Within(Box::new(deadline))
    }
}

/// One listener's way of serving, besides its [`Connections`] hook.
pub(crate) struct Options {
    name: String,
    http: auto::Builder<TokioExecutor>,
    upgrades: bool,
    silence: Option<(Duration, Duration)>,
    drain: Drain,
    backoff: Duration,
}

impl Options {
    /// A listener called `name` in logs, serving with `http` (its h1/h2 options and limits), and
    /// ending as `drain` says.
    pub(crate) fn new(
        name: impl Into<String>,
        http: auto::Builder<TokioExecutor>,
        drain: Drain,
    ) -> Self {
        Options {
            name: name.into(),
            http,
            upgrades: false,
            silence: None,
            drain,
            backoff: ACCEPT_BACKOFF,
        }
    }

    /// Serves connections with HTTP upgrades (`CONNECT`, `Upgrade:`) enabled.
    pub(crate) fn with_upgrades(mut self) -> Self {
        self.upgrades = true;
        self
    }

    /// Closes a connection that sends no request head within `header_read` (plus
    /// [`GRACE`](super::conn::GRACE)) of the accept, whose later HTTP/1 head is not complete
    /// `header_read` after its first byte, or that has no request in flight for `idle`.
    pub(crate) fn close_silent(mut self, header_read: Duration, idle: Duration) -> Self {
        self.silence = Some((header_read, idle));
        self
    }

    /// Waits `backoff` after an accept error instead of [`ACCEPT_BACKOFF`].
    pub(crate) fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }
}

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The client or the drain closed it.
    Done,
    /// hyper ended it with an error (a malformed or slow request head, a reset, ...).
    Failed(BoxError),
    /// [`supervise`] closed it for silence (already logged).
    Silent(Closed),
}

/// What a listener does around the shared loop with each connection.
pub(crate) trait Connections: Send + Sync + 'static {
    /// What an admitted connection holds until it ends (a connection slot, ...).
    type Guard: Send + 'static;
    /// The stream HTTP runs on: the TCP stream, or TLS over it.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// On the accept loop, for each new connection: the stream and its guard to serve it, or
    /// `None` to turn it away (this hook answers it, if at all).
    fn admit(&self, stream: TcpStream, peer: SocketAddr) -> Option<(TcpStream, Self::Guard)>;

    /// Readies an admitted stream on the connection's own task (a TLS handshake); `None`
    /// drops the connection. Called on the accept loop; the future runs on the task.
    fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = Option<Self::Io>> + Send + 'static;

    /// After the connection ended; by default logs an error at debug level.
    fn ended(&self, guard: Self::Guard, peer: SocketAddr, how: Ended) {
        drop(guard);
        if let Ended::Failed(error) = how {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// Plain TCP connections, all admitted, named for the log (e.g. `"admin"`).
pub(crate) struct Plain(pub &'static str);

impl Connections for Plain {
    /// The socket's second handle, to answer 408 to a slow request head ([`answer_408`]).
    type Guard = Option<std::net::TcpStream>;
    type Io = TcpStream;

    fn admit(&self, stream: TcpStream, _: SocketAddr) -> Option<(TcpStream, Self::Guard)> {
        let spare = spare(&stream);
        Some((stream, spare))
    }

    fn handshake(
        &self,
        stream: TcpStream,
        _: SocketAddr,
    ) -> impl Future<Output = Option<TcpStream>> + Send + 'static {
        std::future::ready(Some(stream))
    }

    fn ended(&self, spare: Self::Guard, peer: SocketAddr, how: Ended) {
        match how {
            Ended::Failed(e) => {
                tracing::debug!(%peer, error = %e, "{} connection ended with an error", self.0);
            }
            Ended::Silent(Closed::SlowHead) => answer_408(spare),
            Ended::Done | Ended::Silent(_) => {}
        }
    }
}

/// A second handle on a client socket (no unsafe: tokio → socket2 → std), kept so that a
/// connection closed because its request head was too slow can still be answered 408: the
/// listeners bound a head themselves ([`super::conn`]) rather than with hyper's header timer,
/// which also closes a kept-alive connection that is merely idle.
pub(crate) fn spare(stream: &TcpStream) -> Option<std::net::TcpStream> {
    let sock = socket2::SockRef::from(stream);
    sock.try_clone().ok().map(std::net::TcpStream::from)
}

/// Answers 408 on the socket of a connection closed because its request head was too slow
/// (already logged by the listener).
pub(crate) fn answer_408(spare: Option<std::net::TcpStream>) {
    use std::io::Write as _;
    if let Some(mut s) = spare {
        let resp = super::problem::raw(
            http::StatusCode::REQUEST_TIMEOUT,
            "header-timeout",
            "the request headers did not arrive in time",
            None,
        );
        let _ = s.write_all(&resp);
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

/// Serves `service` on the connections `listener` accepts until `shutdown` resolves, then stops
/// accepting (the listener is closed) and drains as `opts` says.
pub(crate) async fn serve<L, S, B, C>(
    mut listener: L,
    service: S,
    shutdown: impl Future<Output = ()>,
    opts: Options,
    conns: C,
) where
    L: Accept,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
    C: Connections,
{
    let conn = Arc::new(Conn {
        http: opts.http,
        upgrades: opts.upgrades,
        silence: opts.silence,
        hooks: conns,
    });
    let graceful = GracefulShutdown::new();
    let mut open = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Some((stream, guard)) = conn.hooks.admit(stream, peer) {
                        let io = conn.hooks.handshake(stream, peer);
                        let run = conn.clone().run(io, guard, peer, service.clone(), graceful.watcher());
                        open.spawn(run);
                    }
                }
                Err(e) => {
                    tracing::warn!(listener = %opts.name, error = %e, "accept failed");
                    tokio::time::sleep(opts.backoff).await;
                }
            },
            Some(_) = open.join_next(), if !open.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    match opts.drain {
        Drain::Within(deadline) => {
            drain(graceful, deadline(), &opts.name).await;
            open.detach_all();
        }
        Drain::Abort => open.shutdown().await,
    }
}

/// Lets open connections finish their requests for up to `deadline`, then gives up on them.
async fn drain(graceful: GracefulShutdown, deadline: Duration, what: &str) {
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

/// What every connection of one listener shares.
struct Conn<C> {
    http: auto::Builder<TokioExecutor>,
    upgrades: bool,
    silence: Option<(Duration, Duration)>,
    hooks: C,
}

impl<C: Connections> Conn<C> {
    /// One connection's task: handshake, serve (watched for the drain and, if configured, for
    /// silence), then the `ended` hook.
    async fn run<S, B>(
        self: Arc<Self>,
        io: impl Future<Output = Option<C::Io>>,
        guard: C::Guard,
        peer: SocketAddr,
        service: S,
        watcher: Watcher,
    ) where
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let Some(io) = io.await else {
            return;
        };
        let activity = Activity::new();
        let seen = activity.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let open = seen.begin();
            let answer = service.call(req);
            async move { Ok::<_, S::Error>(answer.await?.map(|b| Tracked::new(b, open))) }
        });
        let io = TokioIo::new(Watched::new(io, activity.clone()));
        let how = if self.upgrades {
            let conn = self.http.serve_connection_with_upgrades(io, service);
            self.watch(watcher.watch(conn.into_owned()), &activity)
                .await
        } else {
            let conn = self.http.serve_connection(io, service);
            self.watch(watcher.watch(conn.into_owned()), &activity)
                .await
        };
        if let Ended::Silent(closed) = how {
            on_silent(closed, peer);
        }
        self.hooks.ended(guard, peer, how);
    }

    /// Runs a connection to its end, closing it when [`supervise`] finds it silent.
    async fn watch(
        &self,
        conn: impl Future<Output = Result<(), BoxError>>,
        activity: &Activity,
    ) -> Ended {
        let out = match self.silence {
            Some((header_read, idle)) => match supervise(conn, activity, header_read, idle).await {
                Ok(out) => out,
                Err(closed) => return Ended::Silent(closed),
            },
            None => conn.await,
        };
        match out {
            Ok(()) => Ended::Done,
            Err(e) => Ended::Failed(e),
        }
    }
}

#[cfg(test)]
mod tests;
