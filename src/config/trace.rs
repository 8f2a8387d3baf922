//! `[tracing]`: W3C trace context on every write, and, when a collector is named, its spans
//! exported over OTLP/HTTP. What runs on it is [`crate::telemetry::trace`].

use super::checker::Checker;
use serde::{Deserialize, Serialize};

/// Trace context and span export. Needs a restart to change.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// OTLP/HTTP collector, `http://collector:4318`: spans are sent, batched, to
    /// `{otlp}/v1/traces` as protobuf. Unset (default): nothing is exported, but each write
    /// still continues its caller's trace and passes trace context on to the nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp: Option<String>,
    /// Share of the traces dtc starts itself (no caller's decision to follow) that are
    /// sampled, 0 to 1. Default 1. Without `otlp` dtc starts no sampled trace.
    pub sample_ratio: f64,
    /// Follow the sampled flag of an incoming `traceparent`. Default true; false lets
    /// `sample_ratio` decide every write.
    pub follow_parent: bool,
    /// Spans waiting for export at most; beyond it (a slow or dead collector) spans are
    /// dropped and counted in `dtc_trace_spans_total{result="dropped"}`. Default 2048.
    pub max_queue: usize,
    /// `service.name` of dtc's spans. Default `dtc`.
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp: None,
            sample_ratio: 1.0,
            follow_parent: true,
            max_queue: 2048,
            service_name: "dtc".into(),
        }
    }
}

/// Checks `[tracing]`.
pub(super) fn check(c: &mut Checker, t: &TracingConfig) {
    if let Some(url) = &t.otlp
        && let Err(e) = super::url::parse_http_url(url)
    {
        c.problem("tracing.otlp", e);
    }
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        c.problem(
            "tracing.sample_ratio",
            format!("{} is not a share: use 0 to 1", t.sample_ratio),
        );
    }
    if !(1..=1_000_000).contains(&t.max_queue) {
        c.problem(
            "tracing.max_queue",
            format!("{} is out of range: use 1 to 1000000", t.max_queue),
        );
    }
    if t.service_name.trim().is_empty() {
        c.problem("tracing.service_name", "must not be empty");
    }
}
