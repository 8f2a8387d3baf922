//! The admin API's bodies: JSON answers, and reading a request's small JSON body.

use super::AdminState;
use crate::wire::{ProxyBody, buffer_body, problem};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

/// Largest admin request body: these are small JSON documents.
const MAX_BODY: usize = 64 * 1024;

/// A JSON answer.
pub(super) fn json(status: StatusCode, value: &impl Serialize) -> Response<ProxyBody> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => {
            let mut resp = Response::new(ProxyBody::full(body));
            *resp.status_mut() = status;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => problem::plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("could not encode the answer: {e}"),
        ),
    }
}

/// The request's body, within [`MAX_BODY`] and the header-read timeout; `Err` is the answer.
pub(super) async fn read_body(
    state: &AdminState,
    req: Request<Incoming>,
) -> Result<Bytes, Response<ProxyBody>> {
    let timeout = state.current.load().settings.config.timeouts.header_read;
    let (parts, body) = req.into_parts();
    buffer_body(body, &parts.headers, MAX_BODY, timeout).await
}

pub(super) fn bad_json(e: &serde_json::Error) -> Response<ProxyBody> {
    problem::plain(
        StatusCode::BAD_REQUEST,
        "bad-json",
        format!("the request body is not the expected JSON: {e}"),
    )
}
