//! `dtc webhook`: the mutating admission webhook, served over HTTPS.
//!
//! Routes: `POST /mutate` (pods annotated `dtc.io/inject: "enabled"`),
//! `POST /mutate-namespace` (every pod of a namespace labelled
//! `dtc.io/inject=enabled`, unless the pod says `disabled`) and
//! `GET /healthz`. [`serve`] takes a bound listener and a shutdown future, so
//! tests run the real server in-process on `127.0.0.1:0`.

pub(crate) mod review;
pub mod tls;

use crate::k8s::sidecar::SidecarOptions;
use crate::wire;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use review::Mode;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tls::CertReloader;
use tokio::net::{TcpListener, TcpStream};

/// Largest AdmissionReview body accepted (the API server sends far less).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for open connections to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the webhook on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    certs: Arc<CertReloader>,
    opts: SidecarOptions,
    shutdown: impl Future<Output = ()>,
) {
    let opts = Arc::new(opts);
    let service = hyper::service::service_fn(move |req| handle(req, opts.clone()));
    let builder = auto::Builder::new(TokioExecutor::new());
    let options = wire::Options::new("webhook", builder, wire::Drain::within(DRAIN_TIMEOUT));
    wire::serve(listener, service, shutdown, options, Tls(certs)).await;
}

/// Webhook connections: all admitted, over TLS with the current certificate.
struct Tls(Arc<CertReloader>);

impl wire::Connections for Tls {
    type Guard = ();
    type Io = tokio_rustls::server::TlsStream<TcpStream>;

    fn admit(&self, tcp: TcpStream, _: SocketAddr) -> Option<(TcpStream, ())> {
        Some((tcp, ()))
    }

    fn handshake(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = Option<Self::Io>> + Send + 'static {
        let acceptor = self.0.acceptor();
        async move {
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            let Ok(Ok(tls)) = tls else {
                tracing::debug!(%peer, "TLS handshake failed");
                return None;
            };
            Some(tls)
        }
    }

    fn ended(&self, (): (), peer: SocketAddr, how: wire::Ended) {
        if let wire::Ended::Failed(error) = how {
            tracing::debug!(%peer, %error, "webhook connection ended");
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    opts: Arc<SidecarOptions>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let mode = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => return Ok(text(StatusCode::OK, "ok\n".into())),
        (&Method::POST, "/mutate") => Mode::Annotated,
        (&Method::POST, "/mutate-namespace") => Mode::Namespace,
        (_, path) => {
            let message = format!("no route {path}: POST /mutate or /mutate-namespace\n");
            return Ok(text(StatusCode::NOT_FOUND, message));
        }
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            let message =
                format!("cannot read the request body (at most {MAX_BODY} bytes): {error}\n");
            return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, message));
        }
    };
    Ok(match review::answer(&body, mode, &opts) {
        Ok(answer) => {
            let json = serde_json::to_vec(&answer).expect("JSON values serialize");
            let mut response = Response::new(Full::new(Bytes::from(json)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                "application/json".parse().expect("valid"),
            );
            response
        }
        Err(error) => {
            tracing::warn!(%error, "malformed admission review");
            text(StatusCode::BAD_REQUEST, format!("{error}\n"))
        }
    })
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("valid"),
    );
    response
}
