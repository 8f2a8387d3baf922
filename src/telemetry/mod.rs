//! What dtc tells about itself as it runs, below every module that records it: the Prometheus
//! [`Metrics`] the data path, config reload and the background tasks bump, and the [`Alerter`]
//! that sends failed/converged events to a webhook without ever blocking the caller, in cluster
//! mode the shared store's [`StoreMetrics`], and the W3C trace context and spans of writes
//! ([`trace`]), exported over OTLP without ever blocking a write either. The admin listener
//! only serves them (`/metrics`).

pub(crate) mod alerts;
pub(crate) mod metrics;
pub(crate) mod store;
pub(crate) mod trace;

pub use alerts::{AlertEvent, AlertKind, AlertOptions, Alerter};
pub use metrics::{Metrics, ScrapeView};
