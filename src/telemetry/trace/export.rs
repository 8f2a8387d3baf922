//! Spans to an OTLP/HTTP collector, never in a write's way.
//!
//! The SDK's batch processor queues ended spans and its own thread sends them in batches
//! through `opentelemetry-otlp`'s protobuf exporter. Two wrappers bound and count that:
//! - [`Bounded`] refuses a span while `max_queue` are waiting to be sent, so a dead or slow
//!   collector costs a write one atomic add and a counter, never a wait or a growing queue;
//! - [`Counted`] counts each batch as exported or, when the collector refused it or did not
//!   answer, dropped.
//!
//! Both land in `dtc_trace_spans_total{result}`. (The SDK's processor also drops spans when
//! its queue is full, but only logs how many at shutdown; its queue is sized so that
//! [`Bounded`] always refuses first.)
//!
//! The HTTP client is hyper's (hyper-util's pooled client, the stack the rest of dtc speaks):
//! the exporter thread hands each request to the Tokio runtime dtc runs on ([`OtlpClient`]).

use crate::telemetry::Metrics;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::Context;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How long one export may take, retries included.
pub(crate) const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a span waits before its batch is sent.
pub(crate) const BATCH_DELAY: Duration = Duration::from_secs(1);
/// Spans per export request at most.
pub(crate) const BATCH_SIZE: usize = 512;
/// Largest collector answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportSetupError {
    /// Export sends from the Tokio runtime, and there was none.
    #[error("no Tokio runtime to send spans from")]
    NoRuntime,
    /// The OTLP exporter refused its settings.
    #[error("{0}")]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// What [`Bounded`] and [`Counted`] share: spans queued and not yet sent or dropped.
struct Shared {
    queued: AtomicUsize,
    max_queue: usize,
    metrics: Arc<Metrics>,
    /// The last export failed (a failure is logged when it starts, not per batch).
    failing: AtomicBool,
}

/// The processor for a collector at `otlp` (`http://host:4318`): batched, bounded to
/// `max_queue` spans, counted in `metrics`.
pub(crate) fn processor(
    otlp: &str,
    max_queue: usize,
    metrics: Arc<Metrics>,
) -> Result<Bounded, ExportSetupError> {
    let client = OtlpClient::new(EXPORT_TIMEOUT)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", otlp.trim_end_matches('/')))
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        max_queue,
        metrics,
        failing: AtomicBool::new(false),
    });
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(max_queue.saturating_mul(2).max(BATCH_SIZE))
        .with_max_export_batch_size(BATCH_SIZE)
        .with_scheduled_delay(BATCH_DELAY)
        .build();
    let counted = Counted {
        inner: exporter,
        shared: shared.clone(),
        endpoint: otlp.to_string(),
    };
    let inner = BatchSpanProcessor::builder(counted)
        .with_batch_config(config)
        .build();
    Ok(Bounded { inner, shared })
}

/// Refuses (and counts) a span while `max_queue` spans wait for export.
#[derive(Debug)]
pub(crate) struct Bounded {
    inner: BatchSpanProcessor,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queued", &self.queued)
            .finish()
    }
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let s = &self.shared;
        if s.queued.fetch_add(1, Ordering::Relaxed) >= s.max_queue {
            s.queued.fetch_sub(1, Ordering::Relaxed);
            s.metrics.spans_dropped(1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting each batch as exported or dropped.
#[derive(Debug)]
struct Counted {
    inner: opentelemetry_otlp::SpanExporter,
    shared: Arc<Shared>,
    endpoint: String,
}

impl SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        let s = &self.shared;
        s.queued
            .fetch_sub(n.min(s.queued.load(Ordering::Relaxed)), Ordering::Relaxed);
        match &result {
            Ok(()) => {
                s.metrics.spans_exported(n as u64);
                if s.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(otlp = %self.endpoint, "span export works again");
                }
            }
            Err(error) => {
                s.metrics.spans_dropped(n as u64);
                if !s.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(otlp = %self.endpoint, %error, spans = n, "span export failed: spans are dropped (dtc_trace_spans_total) until the collector answers");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter's HTTP client: hyper-util's pooled client, run on dtc's Tokio runtime (the
/// exporter calls it from the SDK's own thread).
#[derive(Debug, Clone)]
pub(crate) struct OtlpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl OtlpClient {
    /// A client whose requests, answer included, end within `timeout`.
    pub(crate) fn new(timeout: Duration) -> Result<OtlpClient, ExportSetupError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| ExportSetupError::NoRuntime)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(OtlpClient {
            client,
            runtime,
            timeout,
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (client, timeout) = (self.client.clone(), self.timeout);
        let exchange = async move {
            let resp = client.request(request.map(Full::new)).await?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        let task = self
            .runtime
            .spawn(async move { tokio::time::timeout(timeout, exchange).await });
        match task.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(format!("no answer within {timeout:?}").into()),
            Err(e) => Err(e.into()),
        }
    }
}
