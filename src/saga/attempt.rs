//! One request to one node, retried under the policy: the building block of writes, undos and
//! snapshots.

use crate::retry::{Attempt, Backoff, retry};
use crate::runtime::Runtime;
use crate::telemetry::trace;
use crate::txn::outcome::{Class, NodeResponse, classify};
use crate::upstream::{Node, SendError};
use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Limited};
use opentelemetry::context::FutureExt as _;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

/// A request to send to one node.
pub(crate) struct Call<'a> {
    pub node: &'a Arc<Node>,
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Statuses that mean "already in the target state".
    pub already: &'a [u16],
    /// Whether the request may be sent again after an attempt whose outcome is unknown (the
    /// route's `idempotent`); when not, such an attempt ends the call ([`CallResult::halted`]).
    pub resend: bool,
    /// With `writes.fail_fast` (the breaker), `retry.deadline`: an attempt that could not
    /// connect while the breaker holds the node down, and has for less than this, waits for the
    /// node to come back (within the call's own deadline) and is sent again, uncounted — the
    /// node never saw it. A node restarting costs the write its wait, not its attempts and a
    /// rollback. `None` (the breaker off, and undos and reads): every attempt counts.
    pub wait_down: Option<Duration>,
}

/// What the retries of one call came to.
#[derive(Debug)]
pub struct CallResult {
    pub class: Class,
    pub answer: Result<NodeResponse, SendError>,
    pub attempts: u32,
    /// Some attempt may have been applied without saying so (a 5xx, or no answer).
    pub ambiguous: bool,
    /// Some attempt may still be under way at the node, to land later: no answer came (a
    /// timeout, a cut connection), or a gateway's 502/504 answered for it. Implies `ambiguous`;
    /// a node's own 5xx is a finished request, which may have applied but will not land later.
    pub in_flight: bool,
    /// Stopped after an ambiguous attempt, with attempts left, because the request may not be
    /// sent again blindly (a read of the resource decides whether it may).
    pub halted: bool,
}

impl CallResult {
    /// Last status, if an answer came.
    pub fn status(&self) -> Option<u16> {
        self.answer.as_ref().ok().map(|r| r.status.as_u16())
    }

    /// Last error, if no answer came.
    pub fn error(&self) -> Option<String> {
        self.answer.as_ref().err().map(|e| e.to_string())
    }
}

/// Limits of one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallLimits {
    pub attempt_timeout: Duration,
    pub max_body: usize,
}

impl CallLimits {
    /// The limits of every node call in config generation `rt`: `timeouts.attempt` and
    /// `limits.max_body`.
    pub(crate) fn of(rt: &Runtime) -> CallLimits {
        CallLimits {
            attempt_timeout: rt.settings.config.timeouts.attempt,
            max_body: rt.settings.config.limits.max_body,
        }
    }
}

/// Sends `call`, retrying transient failures with backoff until an answer that is not transient,
/// the attempts run out, or the policy's deadline would pass.
pub(crate) async fn call_with_retries(
    call: &Call<'_>,
    policy: &Backoff,
    limits: CallLimits,
) -> CallResult {
    // Whether some attempt so far may have applied the write without saying so.
    let ambiguous = AtomicBool::new(false);
    let ambiguous = &ambiguous;
    // Whether some attempt so far may still land later.
    let in_flight = AtomicBool::new(false);
    let in_flight = &in_flight;
    let attempt = |n: u32, remaining: Duration| async move {
        // `remaining` is `Duration::MAX` under a policy with no deadline: no instant then.
        let until = Instant::now().checked_add(remaining);
        let (answer, class) = loop {
            let remaining =
                until.map_or(remaining, |u| u.saturating_duration_since(Instant::now()));
            let timeout = limits
                .attempt_timeout
                .min(remaining.max(Duration::from_millis(1)));
            // With `[cluster]`, a request is started only while the key's lease outlives it.
            if let Err(why) = crate::journal::shared::lease::may_send(timeout).await {
                return Attempt::Done(CallResult {
                    class: Class::Transient,
                    answer: Err(SendError::NotSent(why.to_string())),
                    attempts: n - 1,
                    ambiguous: ambiguous.load(Relaxed),
                    in_flight: in_flight.load(Relaxed),
                    halted: false,
                });
            }
            let span = trace::NodeSpan::start(call.node.name(), &call.method, n);
            let answer = send_once(call, timeout, limits.max_body)
                .with_context(span.context())
                .await;
            let class = match &answer {
                Ok(r) => classify(r.status.as_u16(), call.already),
                Err(_) => Class::Transient,
            };
            let error = answer.as_ref().err().map(ToString::to_string);
            span.end(
                answer.as_ref().ok().map(|r| r.status.as_u16()),
                error.as_deref(),
                class.as_str(),
            );
            if matches!(answer, Err(SendError::Connect(_)))
                && let Some(newly) = call.wait_down
                && call.node.health.back_within(newly, until).await
            {
                tracing::debug!(node = %call.node.name(), "node back after a refused connection: sending the write again");
                continue;
            }
            break (answer, class);
        };
        if class != Class::Transient {
            return Attempt::Done(CallResult {
                class,
                answer,
                attempts: n,
                ambiguous: ambiguous.load(Relaxed),
                in_flight: in_flight.load(Relaxed),
                halted: false,
            });
        }
        let (maybe_applied, late) = match &answer {
            Ok(r) => (may_have_applied(r.status), may_be_under_way(r.status)),
            Err(e) => (e.maybe_applied(), e.under_way()),
        };
        ambiguous.fetch_or(maybe_applied, Relaxed);
        in_flight.fetch_or(late, Relaxed);
        let result = CallResult {
            class,
            answer,
            attempts: n,
            ambiguous: ambiguous.load(Relaxed),
            in_flight: in_flight.load(Relaxed),
            halted: maybe_applied && !call.resend,
        };
        // No blind re-send: the node may hold this write; sending it again could apply it twice.
        match result.halted {
            true => Attempt::Done(result),
            false => Attempt::Retry(result),
        }
    };
    retry(policy, attempt, |_, _, _| {}).await.0
}

/// Whether a transient answer may come after the node applied the write: 503 says "not
/// processed"; any other 5xx may come after it applied it.
fn may_have_applied(status: http::StatusCode) -> bool {
    status.is_server_error() && status != http::StatusCode::SERVICE_UNAVAILABLE
}

/// Whether a transient answer leaves the request possibly still under way behind it, to land
/// later: a gateway's 502 (its upstream broke off) or 504 (its upstream did not answer in
/// time) speaks for a request it lost track of. A node's own 500 (or 501, 505…) ends the
/// request: it may have applied, and a read tells, but nothing of it is left to land.
fn may_be_under_way(status: http::StatusCode) -> bool {
    matches!(
        status,
        http::StatusCode::BAD_GATEWAY | http::StatusCode::GATEWAY_TIMEOUT
    )
}

/// One attempt: the whole response, body included, within `timeout`.
pub(crate) async fn send_once(
    call: &Call<'_>,
    timeout: Duration,
    max_body: usize,
) -> Result<NodeResponse, SendError> {
    let mut req = call.node.request(
        call.method.clone(),
        &call.path_and_query,
        call.headers.clone(),
        call.body.clone(),
    );
    trace::inject(req.headers_mut());
    let _in_flight = call.node.track();
    let sent = Instant::now();
    let exchange = async {
        let resp = call.node.send(req).await?;
        let (parts, body) = resp.into_parts();
        let body = match Limited::new(body, max_body).collect().await {
            Ok(body) => body.to_bytes(),
            // The status already says what the node did: an applied write stays applied, and
            // sending it again would not make its answer any shorter. Only the body is lost.
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                tracing::warn!(node = %call.node.name(), status = %parts.status, max_body, "node answer body larger than limits.max_body: classified by its status, body dropped");
                Bytes::new()
            }
            Err(e) => return Err(SendError::Broken(e.to_string())),
        };
        Ok(NodeResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => {
            call.node.timed_out(sent, timeout);
            Err(SendError::Timeout(timeout))
        }
    }
}
