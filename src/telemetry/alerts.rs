//! Alerts: a JSON event to a webhook when a transaction ends `failed`, when it later converges,
//! and when `dtc verify` finds nodes that differ on a key.
//!
//! [`Alerter::send`] never blocks its caller (the data path, the re-drive): it logs the event
//! and hands it to a bounded channel; when the channel is full the event is dropped, counted and
//! warned about. One task drains the channel and POSTs each event, retrying with the shared
//! [`Backoff`] policy. Without a webhook URL, events are only logged.

use crate::retry::{Attempt, Backoff, retry};
use crate::txn::TxnView;
use crate::txn::{NodeReport, TxnState};
use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// What happened to the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// It ended `failed`: the nodes may differ and a re-drive or a person must act.
    TransactionFailed,
    /// A failed transaction converged (the re-drive undid it everywhere).
    TransactionConverged,
    /// `dtc verify` found the nodes holding different things for a key (`txn` is the last
    /// transaction on it, `reason` the evidence).
    DivergenceFound,
}

/// The webhook's JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub kind: AlertKind,
    pub txn: String,
    pub state: TxnState,
    /// The resource key.
    pub key: String,
    pub route: Option<String>,
    /// Why it is in this state, for people.
    pub reason: Option<String>,
    pub nodes: Vec<NodeReport>,
    /// When the event happened, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl AlertEvent {
    /// The event of `kind` about `view`, now.
    pub fn from_view(kind: AlertKind, view: &TxnView) -> AlertEvent {
        AlertEvent {
            kind,
            txn: view.txn.clone(),
            state: view.state,
            key: view.key.clone(),
            route: view.route.clone(),
            reason: view.reason.clone(),
            nodes: view.nodes.clone(),
            at_ms: now_ms(),
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How events are queued and delivered.
#[derive(Debug, Clone)]
pub struct AlertOptions {
    /// Events waiting for delivery at most; more are dropped. Default 1024.
    pub capacity: usize,
    /// Retries of one delivery. Default: 8 attempts, 500ms doubling to 30s, within 5 minutes.
    pub backoff: Backoff,
    /// One POST, until its answer. Default 5s.
    pub timeout: Duration,
}

impl Default for AlertOptions {
    fn default() -> Self {
        AlertOptions {
            capacity: 1024,
            backoff: Backoff {
                attempts: 8,
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
                multiplier: 2.0,
                jitter: 0.2,
                deadline: Duration::from_secs(300),
            },
            timeout: Duration::from_secs(5),
        }
    }
}

/// Sends alert events. Shared as `Arc<Alerter>`.
pub struct Alerter {
    queue: Option<mpsc::Sender<AlertEvent>>,
    dropped: AtomicU64,
}

impl Alerter {
    /// An alerter posting to `url` (an `http://` URL) with default options; `None`: log only.
    pub fn new(url: Option<String>) -> Arc<Alerter> {
        Alerter::with_options(url, AlertOptions::default())
    }

    /// An alerter with explicit queue and retry options. Delivery needs a tokio runtime; outside
    /// one, or with a URL that does not parse, events are only logged (and that is logged once).
    pub fn with_options(url: Option<String>, opts: AlertOptions) -> Arc<Alerter> {
        let queue = url.and_then(|url| start_delivery(&url, opts));
        Arc::new(Alerter {
            queue,
            dropped: AtomicU64::new(0),
        })
    }

    /// Logs the event and queues it for the webhook. Never waits.
    pub fn send(&self, event: AlertEvent) {
        log_event(&event);
        let Some(queue) = &self.queue else { return };
        if let Err(e) = queue.try_send(event) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "queue full (webhook slow or down)",
                mpsc::error::TrySendError::Closed(_) => "delivery task stopped",
            };
            tracing::warn!(dropped = n, why, "alert event dropped");
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn log_event(e: &AlertEvent) {
    let route = e.route.as_deref().unwrap_or("-");
    let reason = e.reason.as_deref().unwrap_or("-");
    match e.kind {
        AlertKind::TransactionFailed => {
            tracing::error!(txn = %e.txn, state = %e.state, key = %e.key, route, reason, "ALERT transaction failed: the nodes may differ")
        }
        AlertKind::TransactionConverged => {
            tracing::info!(txn = %e.txn, state = %e.state, key = %e.key, route, "transaction converged")
        }
        AlertKind::DivergenceFound => {
            tracing::error!(txn = %e.txn, key = %e.key, route, evidence = reason, "ALERT the nodes differ on a key")
        }
    }
}

/// Starts the delivery task; `None` when it cannot run.
fn start_delivery(url: &str, opts: AlertOptions) -> Option<mpsc::Sender<AlertEvent>> {
    let uri = match url.parse::<Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.authority().is_some() => u,
        _ => {
            tracing::error!(
                url,
                "alerts.webhook is not an http:// URL: alerts are only logged"
            );
            return None;
        }
    };
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::error!("no async runtime for alert delivery: alerts are only logged");
        return None;
    };
    let (tx, rx) = mpsc::channel(opts.capacity.max(1));
    handle.spawn(deliver_all(rx, uri, opts));
    Some(tx)
}

type WebhookClient = Client<HttpConnector, Full<Bytes>>;

async fn deliver_all(mut rx: mpsc::Receiver<AlertEvent>, uri: Uri, opts: AlertOptions) {
    let client: WebhookClient = Client::builder(TokioExecutor::new()).build_http();
    while let Some(event) = rx.recv().await {
        deliver(&client, &uri, &opts, &event).await;
    }
}

/// Why one delivery of an alert failed (it is retried).
#[derive(Debug, Clone, thiserror::Error)]
enum AlertError {
    #[error("the alert request cannot be built: {0}")]
    Request(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("webhook answered {0}")]
    Status(http::StatusCode),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// POSTs one event until a 2xx, the attempts, or the deadline run out.
async fn deliver(client: &WebhookClient, uri: &Uri, opts: &AlertOptions, e: &AlertEvent) -> bool {
    let body = Bytes::from(serde_json::to_vec(e).unwrap_or_default());
    let attempt = |_, _| async {
        match post(client, uri, body.clone(), opts.timeout).await {
            Ok(()) => Attempt::Done(Ok(())),
            Err(error) => Attempt::Retry(Err(error)),
        }
    };
    let log_retry = |last: &Result<(), AlertError>, attempt, _| {
        let error = last
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::warn!(txn = %e.txn, attempt, error, "alert webhook failed; retrying");
    };
    match retry(&opts.backoff, attempt, log_retry).await {
        (Ok(()), attempt) => {
            tracing::debug!(txn = %e.txn, attempt, "alert delivered");
            true
        }
        (Err(error), attempts) => {
            let error = error.to_string();
            tracing::error!(txn = %e.txn, attempts, error, "alert webhook unreachable: event not delivered");
            false
        }
    }
}

async fn post(
    client: &WebhookClient,
    uri: &Uri,
    body: Bytes,
    timeout: Duration,
) -> Result<(), AlertError> {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "dtc-alerts")
        .body(Full::new(body))
        .map_err(|e| AlertError::Request(e.to_string()))?;
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| AlertError::Unreachable(crate::upstream::source_text(&e)))?;
        let status = resp.status();
        // Read the answer so the connection can be reused.
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(AlertError::Status(status))
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(AlertError::Timeout(timeout)))
}
