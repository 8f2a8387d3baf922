//! The admin listener: health, readiness, metrics, nodes, the effective config, the transactions
//! API, the original project's `POST /dtc/`, and the alert webhook sender.
//!
//! - it serves the [`crate::telemetry`] the data path records ([`Metrics`] at `/metrics`) and
//!   reads transactions through [`TxnStore`] (defined in [`crate::txn`], implemented by the saga
//!   over the journal);
//! - [`report`]: [`StatusReport`], the operator's summary that the page and `dtc status` show;
//!   [`node_state`]: each node's health in it (up, down since when and why, half-open);
//! - `page`: the HTML status page at `GET /`;
//! - `routes`, `status`, `actions`, `verify`: the HTTP endpoints (listed in [`serve`]).
//!
//! [`serve`] takes an already-bound listener and a shutdown future, like the proxy listener, so
//! tests run it in-process on port 0.

mod actions;
mod body;
pub(crate) mod node_state;
mod page;
pub(crate) mod report;
mod routes;
pub(crate) mod sampler;
mod status;
mod verify;

pub use crate::telemetry::{AlertEvent, AlertKind, AlertOptions, Alerter, Metrics, ScrapeView};
pub use crate::txn::{NoJournal, TxnActionError, TxnStore, TxnView};
pub use report::{NodeStatus, StateCount, StatusReport};

use crate::runtime::Current;
use crate::saga::Coordinator;
use crate::wire::{self, Drain, Options};
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::future::Future;

use std::sync::Arc;
use tokio::net::TcpListener;

/// Config reload status, as `GET /config` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadView {
    /// The generation in effect.
    pub generation: u64,
    /// Reloads that changed the running config since start.
    pub reloads_ok: u64,
    /// Valid files whose effective config equals the running one (a comment edit, or only a
    /// restart-only setting changed): nothing applied.
    #[serde(default)]
    pub reloads_unchanged: u64,
    /// Reloads refused (the file was invalid; the last good config stayed).
    pub reloads_failed: u64,
    /// Why the last refused reload was refused, if the last attempt failed.
    pub last_error: Option<String>,
    /// When the latest file, valid or not, was processed, in milliseconds since the Unix epoch;
    /// `None` before the first reload.
    pub last_reload_ms: Option<u64>,
    /// Settings the config file changes that only a restart applies (e.g. `listen.address`):
    /// they keep their running values until then.
    #[serde(default)]
    pub restart_pending: Vec<String>,
}

/// Everything the admin endpoints read or act on. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub current: Arc<Current>,
    /// Runs `POST /dtc/` transactions.
    pub coordinator: Coordinator,
    pub metrics: Arc<Metrics>,
    /// The journal's view of transactions.
    pub txns: Arc<dyn TxnStore>,
    /// Reload status, read at each `GET /config`.
    pub reload: Arc<dyn Fn() -> ReloadView + Send + Sync>,
    /// Runs `POST /verify`; `None` without a journal.
    pub verifier: Option<crate::verify::Verifier>,
    /// Readings of the node counters, for rates.
    pub sampler: Arc<sampler::Sampler>,
    /// When this dtc started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
}

impl AdminState {
    /// A state with fresh metrics, no journal, and reload status that only knows the generation.
    pub fn new(coordinator: Coordinator) -> AdminState {
        let current = coordinator.current().clone();
        let for_reload = current.clone();
        AdminState {
            current,
            coordinator,
            metrics: Metrics::new(),
            txns: Arc::new(NoJournal),
            reload: Arc::new(move || ReloadView {
                generation: for_reload.load().generation,
                ..ReloadView::default()
            }),
            verifier: None,
            sampler: Arc::default(),
            started_ms: report::now_ms(),
        }
    }
}

/// Serves the admin API on `listener` until `shutdown` resolves, then lets open requests finish
/// for up to `timeouts.shutdown`.
///
/// Endpoints: `GET /` (the status page, HTML), `GET /status` (its facts as JSON), `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /nodes`, `GET /config`,
/// `GET /transactions?state=&limit=`, `GET /transactions/{id}`, `POST /transactions/{id}/retry`,
/// `POST /transactions/{id}/resolve` (`{"reason": "..."}`), `POST /verify`
/// (`{"since": "1h", "limit": 1000, "repair": false}`, the check of `dtc verify`), and `POST /dtc/`
/// (`{"groupId": "...", "action": "create"|"delete"}`). With `listen.admin_token` set, all but
/// `/healthz` and `/readyz` need `Authorization: Bearer <token>`.
pub async fn serve(listener: TcpListener, state: AdminState, shutdown: impl Future<Output = ()>) {
    let cfg = state.current.load().settings.config.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A request head is bounded by the listener (`close_silent` below), from its first byte: hyper's
    // header timer would also close a kept-alive connection merely idle for `header_read` (a
    // scraper's, between two scrapes).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    if let Ok(addr) = listener.local_addr() {
        let token = cfg.listen.admin_token.is_some() || cfg.listen.admin_token_file.is_some();
        tracing::info!(%addr, token, "admin listening");
        if !token && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the admin API is reachable from other hosts without a token: anyone who reaches it can write to every node; set listen.admin_token_file or listen on 127.0.0.1");
        }
    }
    let current = state.current.clone();
    let drain = Drain::within_at_shutdown(move || current.load().settings.config.timeouts.shutdown);
    let opts = Options::new("admin", builder, drain)
        .close_silent(cfg.timeouts.header_read, cfg.timeouts.idle);
    let (stop_sampler, sampler_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sampler::run(state.clone(), async {
        let _ = sampler_stopped.await;
    }));
    let service = service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(routes::handle(&state, req).await) }
    });
    wire::serve(listener, service, shutdown, opts, wire::Plain("admin")).await;
    let _ = stop_sampler.send(());
}
