//! A node's body streamed to the client as a read's answer ([`stream`]).
//!
//! It is bounded in time: `timeouts.read_idle` between two chunks and
//! `timeouts.read_total` overall. A node that stalls past either ends the body with an error,
//! which hyper turns into a closed client connection (the head is already sent, so no status can
//! tell the client), and counts for the node's health like an attempt timeout.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

use crate::upstream::{InFlight, NodeBody};
use crate::wire::{BodyError, ProxyBody};

/// A node's body being streamed to the client.
pub(crate) struct Streamed {
    body: NodeBody,
    /// Keeps the node's in-flight count until the body ends; also names the node to blame.
    guard: Option<InFlight>,
    /// When the body started: a stall is a call that got no complete answer since.
    started: Instant,
    idle_for: Duration,
    total_for: Duration,
    idle: Pin<Box<Sleep>>,
    total: Pin<Box<Sleep>>,
}

/// Why a node's body was cut off.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    #[error("node `{node}` sent no body data for {idle:?} (timeouts.read_idle)")]
    Idle { node: String, idle: Duration },
    #[error("node `{node}` did not finish its body within {total:?} (timeouts.read_total)")]
    Total { node: String, total: Duration },
}

/// A node's body, cut off after `idle` without data or `total` overall.
pub(crate) fn stream(
    body: NodeBody,
    guard: InFlight,
    idle: Duration,
    total: Duration,
) -> ProxyBody {
    let now = Instant::now();
    ProxyBody::Stream(Box::new(Streamed {
        body,
        guard: Some(guard),
        started: now,
        idle_for: idle,
        total_for: total,
        idle: Box::pin(tokio::time::sleep_until(now + idle)),
        total: Box::pin(tokio::time::sleep_until(now + total)),
    }))
}

impl Streamed {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = Instant::now() + self.idle_for;
                self.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.guard.take();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                self.guard.take();
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = self.idle.as_mut().poll(cx).is_ready();
                let total = self.total.as_mut().poll(cx).is_ready();
                if !idle && !total {
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(self.stalled(idle).into())))
            }
        }
    }

    /// Ends the body: the node is blamed once, and its in-flight count released.
    fn stalled(&mut self, idle: bool) -> StreamError {
        let node = match self.guard.take() {
            Some(g) => {
                g.node().timed_out(self.started, self.started.elapsed());
                g.node().name().to_string()
            }
            None => String::new(),
        };
        let e = if idle {
            StreamError::Idle {
                node,
                idle: self.idle_for,
            }
        } else {
            StreamError::Total {
                node,
                total: self.total_for,
            }
        };
        tracing::warn!(error = %e, "read answer cut off: the client connection is closed");
        e
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.get_mut().poll_next(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
