//! Bodies: [`ProxyBody`], what the proxy and the admin listener answer with, and
//! [`buffer_body`], a request body read whole within a size and a time limit.

use super::problem;
use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The error a response body can end with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A body streamed from elsewhere (a node's answer to a read), with its own limits.
pub type StreamBody = Box<dyn Body<Data = Bytes, Error = BodyError> + Send + Unpin>;

/// A response body: buffered (problems, write answers, admin documents) or streamed (reads),
/// without boxing the common buffered case.
pub enum ProxyBody {
    /// Fully in memory.
    Full(Full<Bytes>),
    /// Streamed: the proxy's reads (`proxy::stream`), bounded by read timeouts.
    Stream(StreamBody),
}

impl ProxyBody {
    /// A buffered body.
    pub fn full(b: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Full(Full::new(b.into()))
    }

    /// An empty body.
    pub fn empty() -> ProxyBody {
        ProxyBody::Full(Full::default())
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Full(f) => Pin::new(f).poll_frame(cx).map_err(|never| match never {}),
            ProxyBody::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(f) => f.is_end_stream(),
            ProxyBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(f) => f.size_hint(),
            ProxyBody::Stream(s) => s.size_hint(),
        }
    }
}

/// Reads a request body into memory, bounded in size (`max` bytes) and time (`timeout`); the
/// error is the problem answer to give the client (413, 400 or 408).
pub async fn buffer_body(
    body: Incoming,
    headers: &http::HeaderMap,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, http::Response<ProxyBody>> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        tracing::warn!(
            declared = declared.unwrap_or(0),
            max,
            "request body too large"
        );
        return Err(too_large(max));
    }
    // Most reads and many deletes have no body: no timer, no collecting.
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            tracing::warn!(max, "request body too large");
            Err(too_large(max))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not read the request body");
            Err(problem::plain(
                StatusCode::BAD_REQUEST,
                "bad-body",
                format!("could not read the request body: {e}"),
            ))
        }
        Err(_) => {
            tracing::warn!(timeout = ?timeout, "client too slow sending the request body");
            Err(problem::plain(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                format!(
                    "the request body did not arrive within {}",
                    humantime::format_duration(timeout)
                ),
            ))
        }
    }
}

fn too_large(max: usize) -> http::Response<ProxyBody> {
    problem::plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        format!("the request body is larger than the limit of {max} bytes (limits.max_body)"),
    )
}
