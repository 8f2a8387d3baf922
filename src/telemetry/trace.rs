//! W3C trace context and spans: one trace across a write's fan-out.
//!
//! A write continues its caller's trace (`traceparent`, `tracestate`) or starts one, as a
//! server span ([`Tracing::write`]) that the saga's future runs under
//! ([`opentelemetry::context::FutureExt::with_context`]). Below it, without the saga passing
//! anything along, each node request attempt is a client span ([`NodeSpan`]), each read-back
//! and undo a span of its own ([`step`]) with its attempts beneath it, and every node request
//! carries its own span's `traceparent` ([`inject`]). The trace id is in the write's log line
//! and problem document.
//!
//! Sampling is the SDK's: the caller's sampled flag when there is one (`follow_parent`), else
//! `sample_ratio` of the traces dtc starts. Without a collector (`tracing.otlp` unset) dtc
//! starts no sampled trace and records nothing of its own, but still continues its caller's
//! decision, so the nodes' spans join the caller's trace. Export is [`export`]'s: batched,
//! bounded, never in a write's way.
//!
//! Why the OpenTelemetry API directly rather than `tracing-opentelemetry`: the `tracing`
//! subscriber is process-wide and installed before the config is read, while the exporter
//! follows the config and a test process runs many dtcs, each with its own; and the log
//! lines' spans would all pay for OpenTelemetry's bookkeeping.

pub(crate) mod export;

use crate::config::trace::TracingConfig;
use crate::telemetry::Metrics;
use http::{HeaderMap, Method};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Tracer};
use std::sync::Arc;

/// Spans of a dtc: its tracer, and the exporter behind it when a collector is configured.
pub struct Tracing {
    provider: SdkTracerProvider,
    scope: Scope,
}

/// What a write's context carries for the spans below it.
#[derive(Clone)]
struct Scope {
    tracer: Tracer,
}

/// The transaction a span belongs to, carried in the write's context.
struct Txn(Arc<str>);

impl Tracing {
    /// Spans as `cfg` says, counting exports in `metrics`. Export needs a Tokio runtime (it
    /// sends from it); outside one, or without `otlp`, nothing is exported.
    pub fn new(cfg: &TracingConfig, metrics: Arc<Metrics>) -> Tracing {
        let exporting = cfg.otlp.is_some();
        let root = match exporting {
            true => Sampler::TraceIdRatioBased(cfg.sample_ratio),
            false => Sampler::AlwaysOff,
        };
        let sampler = match cfg.follow_parent {
            true => Sampler::ParentBased(Box::new(root)),
            false => root,
        };
        let resource = Resource::builder_empty()
            .with_service_name(cfg.service_name.clone())
            .build();
        let mut builder = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_resource(resource);
        if let Some(url) = &cfg.otlp {
            match export::processor(url, cfg.max_queue, metrics) {
                Ok(processor) => builder = builder.with_span_processor(processor),
                Err(error) => tracing::error!(%url, %error, "spans will not be exported"),
            }
        }
        let provider = builder.build();
        let tracer = provider.tracer("dtc");
        Tracing {
            provider,
            scope: Scope { tracer },
        }
    }

    /// No export: continues callers' traces, starts none sampled.
    pub fn disabled() -> Tracing {
        Tracing::new(&TracingConfig::default(), Metrics::new())
    }

    /// The span of one write (`name`: its route, or its method when none matched), continuing
    /// the trace of `headers` (the client's), with the transaction id `txn`: the context to
    /// run the write in.
    pub fn write(&self, headers: &HeaderMap, name: &str, method: &Method, txn: &str) -> WriteTrace {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let tracer = &self.scope.tracer;
        let mut span = tracer
            .span_builder(name.to_string())
            .with_kind(SpanKind::Server)
            .start_with_context(tracer, &parent);
        // An unsampled span records nothing: its attributes would only cost.
        if span.is_recording() {
            span.set_attribute(KeyValue::new("dtc.txn", txn.to_string()));
            span.set_attribute(KeyValue::new("http.request.method", method.to_string()));
        }
        let cx = parent
            .with_span(span)
            .with_value(self.scope.clone())
            .with_value(Txn(txn.into()));
        WriteTrace { cx }
    }

    /// Exports what is still queued and stops the exporter.
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

/// A write's span and the context its steps run in.
pub struct WriteTrace {
    cx: Context,
}

impl WriteTrace {
    /// The context to run the write's future in.
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
    }

    /// Ends the span with the transaction's end `state` and the node answer passed on, if any.
    pub fn end(&self, state: &str, status: Option<u16>) {
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new("dtc.state", state.to_string()));
            if let Some(status) = status {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
            }
            if matches!(state, "failed" | "in_doubt") {
                span.set_status(Status::error(state.to_string()));
            }
        }
        span.end();
    }
}

/// The span of one request attempt to a node, child of the current context's span (a write,
/// read-back or undo); inert outside a traced write (recovery, the re-drive).
pub(crate) struct NodeSpan {
    cx: Option<Context>,
}

impl NodeSpan {
    /// Starts the span of attempt `attempt` of `method` to `node`.
    pub(crate) fn start(node: &str, method: &Method, attempt: u32) -> NodeSpan {
        let parent = Context::current();
        let Some(scope) = parent.get::<Scope>() else {
            return NodeSpan { cx: None };
        };
        let mut attributes = Vec::new();
        if parent.span().is_recording() {
            attributes.extend([
                KeyValue::new("dtc.node", node.to_string()),
                KeyValue::new("dtc.attempt", i64::from(attempt)),
                KeyValue::new("http.request.method", method.to_string()),
            ]);
            if let Some(Txn(txn)) = parent.get::<Txn>() {
                attributes.push(KeyValue::new("dtc.txn", txn.to_string()));
            }
        }
        let span = scope
            .tracer
            .span_builder(method.to_string())
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&scope.tracer, &parent);
        NodeSpan {
            cx: Some(parent.with_span(span)),
        }
    }

    /// The context the attempt runs in (its requests carry this span's `traceparent`).
    pub(crate) fn context(&self) -> Context {
        self.cx.clone().unwrap_or_else(Context::current)
    }

    /// Ends the span: the node's `status` or `error`, and what the answer meant (`outcome`).
    pub(crate) fn end(self, status: Option<u16>, error: Option<&str>, outcome: &str) {
        let Some(cx) = self.cx else { return };
        let span = cx.span();
        if !span.is_recording() {
            return span.end();
        }
        if let Some(status) = status {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        span.set_attribute(KeyValue::new("dtc.outcome", outcome.to_string()));
        if let Some(error) = error {
            span.set_attribute(KeyValue::new("error.type", error.to_string()));
            span.set_status(Status::error(error.to_string()));
        } else if status.is_some_and(|s| s >= 500) {
            span.set_status(Status::error(outcome.to_string()));
        }
        span.end();
    }
}

/// A step of a write that makes node requests of its own (`dtc.read_back`, `dtc.undo`) on
/// `node`: its span, child of the current one; its attempts run beneath it.
pub(crate) fn step(name: &'static str, node: &str) -> NodeSpan {
    let parent = Context::current();
    let Some(scope) = parent.get::<Scope>() else {
        return NodeSpan { cx: None };
    };
    let mut attributes = Vec::new();
    if parent.span().is_recording() {
        attributes.push(KeyValue::new("dtc.node", node.to_string()));
        if let Some(Txn(txn)) = parent.get::<Txn>() {
            attributes.push(KeyValue::new("dtc.txn", txn.to_string()));
        }
    }
    let span = scope
        .tracer
        .span_builder(name)
        .with_kind(SpanKind::Internal)
        .with_attributes(attributes)
        .start_with_context(&scope.tracer, &parent);
    NodeSpan {
        cx: Some(parent.with_span(span)),
    }
}

/// Sets `traceparent` (and `tracestate`) of `headers` to the current span's, when a write is
/// being traced: the node request is the current span's child.
pub(crate) fn inject(headers: &mut HeaderMap) {
    let cx = Context::current();
    if cx.get::<Scope>().is_none() {
        return;
    }
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}
