//! [`buffer_body`]: a request body read whole within a size and a time limit, or the problem
//! answer that says why not.

use super::body::ProxyBody;
use super::problem;
use bytes::Bytes;
use http::StatusCode;
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::time::Duration;

/// Reads a request body into memory, bounded in size (`max` bytes) and time (`timeout`); the
/// error is the problem answer to give the client (413, 400 or 408).
pub(crate) async fn buffer_body(
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
