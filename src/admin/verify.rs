//! `POST /verify`: the check of `dtc verify`, run by this sidecar under its own key locks, so
//! reads and repairs never interleave with its writes to the same key.

use super::AdminState;
use super::body::json;
use super::body::{bad_json, read_body};
use crate::verify::cli::VerifyRequest;
use crate::wire::{ProxyBody, problem};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

/// Runs the check and answers the [`crate::verify::Report`] as JSON.
pub(super) async fn verify(state: &AdminState, req: Request<Incoming>) -> Response<ProxyBody> {
    let Some(verifier) = &state.verifier else {
        return problem::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-journal",
            "this dtc runs without a journal, so it knows no recently written keys",
        );
    };
    let body = match read_body(state, req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request: VerifyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_json(&e),
    };
    let opts = match request.options() {
        Ok(o) => o,
        Err(e) => {
            return problem::plain(StatusCode::BAD_REQUEST, "bad-request", e.to_string());
        }
    };
    tracing::info!(repair = opts.repair, since = ?opts.since, limit = opts.limit, "verify requested through the admin API");
    // Its own task: a client that goes away does not cancel a repair half done.
    let verifier = verifier.clone();
    match tokio::spawn(async move { verifier.run(&opts, &|_, _| {}).await }).await {
        Ok(report) => json(StatusCode::OK, &report),
        Err(e) => problem::plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the check stopped: {e}"),
        ),
    }
}
