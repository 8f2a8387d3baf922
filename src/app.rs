//! Wiring: everything `dtc run` and `dtc demo` start, stopped together.
//!
//! [`App::builder`] then [`Builder::start`] opens the journal (the local log, or with `[cluster]`
//! the shared store), recovers what a crash left in doubt (with `[cluster]`: takes over expired
//! leases), and starts the background re-drive and the background verify
//! ([`crate::verify::task`], off by default); [`App::listen`] binds the listeners and
//! [`App::serve`] runs them, with hot reload of the config file, until the shutdown future
//! resolves, then drains and flushes the journal. `dtc run` and `dtc demo` both do exactly that
//! ([`run`]).

use crate::admin::ReloadView;
use crate::admin::{self, AdminState, AlertEvent, AlertKind, Alerter, Metrics};
use crate::config::Settings;
use crate::config::watch::WatchError;
use crate::journal::Journal;
use crate::journal::shared::Shared;
use crate::journal::shared::events::StoreEvents;
use crate::proxy::{Proxy, server};
use crate::runtime::reload::{ReloadHandle, ReloadStatus, Reloader};
use crate::runtime::{Current, Stopper};
use crate::saga::redrive::{self, OnChange};
use crate::saga::takeover;
use crate::saga::txns::{JournalTxns, view};
use crate::saga::{Coordinator, TxnState};
use crate::telemetry::trace::Tracing;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("cannot start cluster mode: {0}")]
    Store(#[from] crate::journal::shared::StoreError),
    #[error(
        "cannot listen on {addr}: {source} (is another dtc or the app itself using it? change listen.address or listen.admin)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running dtc: its runtime, proxy, journal and admin state.
#[derive(Clone)]
pub struct App {
    pub current: Arc<Current>,
    pub proxy: Proxy,
    pub admin: AdminState,
    /// The config file, when running from one (hot reload watches it).
    pub config_path: Option<PathBuf>,
    /// Hot reload: generation, counts, last error (for the admin API).
    pub reload: Arc<ReloadStatus>,
    /// The file content the running config was parsed from, so only real edits reload.
    config_text: Option<String>,
    /// Hot reload was started (by [`App::start_reload`] or [`App::serve`]).
    reload_started: Arc<AtomicBool>,
    /// Stops the background re-drive, takeover and verify when serving ends.
    stopper: Arc<Stopper>,
}

/// The listeners an app serves on: clients, and the admin API when enabled.
pub struct Listeners {
    pub client: TcpListener,
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Only a client listener (no admin API).
    pub fn client(client: TcpListener) -> Listeners {
        Listeners {
            client,
            admin: None,
        }
    }
}

/// How an [`App`] is built: [`App::builder`], then [`Builder::start`].
pub struct Builder {
    settings: Settings,
    config_file: Option<(PathBuf, String)>,
    journal: bool,
    accept_journal_damage: bool,
}

impl Builder {
    /// The config file the settings came from and its text (as [`crate::config::load_file`]
    /// returns them): [`App::serve`] hot-reloads it, and only real edits of `text` reload.
    pub fn config_file(mut self, path: PathBuf, text: String) -> Builder {
        self.config_file = Some((path, text));
        self
    }

    /// Start on a damaged journal: damaged bytes are set aside in side files and dtc starts on
    /// every intact record (`dtc run --accept-journal-damage`). Without it such a journal is
    /// refused ([`crate::journal::JournalError::Damaged`]).
    pub fn accept_journal_damage(mut self, accept: bool) -> Builder {
        self.accept_journal_damage = accept;
        self
    }

    /// No journal, no recovery, no background tasks: the data path alone (library use, tests).
    /// Nothing backfills a node a reload adds, so it takes writes but never reads.
    pub fn without_journal(mut self) -> Builder {
        self.journal = false;
        self
    }

    /// Builds the app. With the journal (the default) it opens it (the local log, or with
    /// `[cluster]` the shared store), decides in-doubt transactions left by a crash before
    /// serving (so no new write races the recovery; with `[cluster]`: takes over expired
    /// leases), and starts the background re-drive and verify. Must run inside a tokio runtime.
    pub async fn start(self) -> Result<App, StartError> {
        for advice in crate::config::advice::advice(&self.settings) {
            tracing::warn!(advice, "config");
        }
        let current = Arc::new(Current::new(self.settings));
        let stopper = Arc::new(Stopper::new());
        let (coordinator, txns, verifier) = if self.journal {
            with_journal(&current, &stopper, self.accept_journal_damage).await?
        } else {
            (Coordinator::new(current.clone()), None, None)
        };
        let metrics = coordinator.metrics().clone();
        let tracing_config = &current.load().settings.config.tracing;
        let coordinator =
            coordinator.with_tracing(Arc::new(Tracing::new(tracing_config, metrics.clone())));
        let reload = reload_status(&current, &metrics);
        let mut admin = AdminState {
            metrics,
            reload: reload_view(&reload),
            verifier,
            ..AdminState::new(coordinator.clone())
        };
        if let Some(txns) = txns {
            admin.txns = txns;
        }
        let (config_path, config_text) = self.config_file.unzip();
        Ok(App {
            current,
            proxy: Proxy::new(coordinator),
            admin,
            config_path,
            reload,
            config_text,
            reload_started: Arc::new(AtomicBool::new(false)),
            stopper,
        })
    }
}

/// Opens the journal, recovers, and starts the background tasks; the coordinator that
/// journals, the admin's view of the journal, and the verifier when `[verify]` is on.
async fn with_journal(
    current: &Arc<Current>,
    stopper: &Stopper,
    accept_damage: bool,
) -> Result<
    (
        Coordinator,
        Option<Arc<JournalTxns>>,
        Option<crate::verify::Verifier>,
    ),
    StartError,
> {
    let cfg = current.load().settings.config.clone();
    let metrics = match cfg.cluster {
        Some(_) => Metrics::with_store(),
        None => Metrics::new(),
    };
    let alerter = Alerter::new(cfg.alerts.webhook.clone());
    let on_change = on_change(metrics.clone(), alerter.clone());
    // One table of key turns for the live writes and every background task on their keys.
    let locks = Arc::new(crate::saga::locks::KeyLocks::default());
    let journal = match &cfg.cluster {
        Some(cluster) => {
            let events = metrics.store().map(|m| m as Arc<dyn StoreEvents>);
            let shared = Shared::connect_metered(cluster, events).await?;
            let journal = Journal::with_shared_store(cfg.journal.keep_finished, shared);
            let taken = takeover::scan_once(&journal, current, Some(&on_change)).await;
            let (in_doubt, failed) = journal.counts();
            tracing::info!(
                taken_over = taken,
                in_doubt,
                failed,
                "cluster mode: journal in the shared store"
            );
            tokio::spawn(takeover::run(
                journal.clone(),
                current.clone(),
                Some(on_change.clone()),
                stopper.signal(),
            ));
            journal
        }
        None => {
            let (journal, _report) = Journal::open_with(&cfg.journal, accept_damage)?;
            let (in_doubt, _) = journal.counts();
            if in_doubt > 0 {
                tracing::warn!(in_doubt, dir = %cfg.journal.dir, "in-doubt transactions found: deciding them from the nodes' state before serving");
            }
            let recovered =
                redrive::recover_at_start(&journal, current, &locks, Some(&on_change)).await;
            let (_, failed) = journal.counts();
            tracing::info!(dir = %cfg.journal.dir, durability = ?cfg.journal.durability, recovered_rolled_back = recovered.rolled_back, recovered_completed = recovered.completed, recovered_unchanged = recovered.unchanged, failed, "journal open");
            journal
        }
    };
    journal.remember_keys(cfg.idempotency.window, cfg.idempotency.max_keys);
    journal.keep_key_states(cfg.journal.key_states);
    tokio::spawn(redrive::run_worker(
        journal.clone(),
        current.clone(),
        locks.clone(),
        Some(on_change.clone()),
        stopper.signal(),
    ));
    let coordinator = Coordinator::new(current.clone())
        .with_locks(locks.clone())
        .with_journal(journal.clone())
        .with_metrics(metrics)
        .with_alerter(alerter);
    let txns = Arc::new(JournalTxns {
        journal,
        current: current.clone(),
        locks,
        on_change: Some(on_change),
    });
    let verifier = crate::verify::Verifier::new(&coordinator);
    if let Some(v) = &verifier {
        tokio::spawn(crate::verify::task::run(v.clone(), stopper.signal()));
        tokio::spawn(crate::verify::catchup::run(v.clone(), stopper.signal()));
    }
    Ok((coordinator, Some(txns), verifier))
}

impl App {
    /// The one way to build an app: `App::builder(settings).start().await`, with
    /// [`Builder::config_file`] for hot reload and [`Builder::without_journal`] for the data path
    /// alone.
    pub fn builder(settings: Settings) -> Builder {
        Builder {
            settings,
            config_file: None,
            journal: true,
            accept_journal_damage: false,
        }
    }

    /// Starts hot reload of the config file (`None` without one, or when it runs already).
    /// The watch is in place when this returns, so edits made afterwards are seen. Dropping the
    /// handle stops it. [`App::serve`] calls it unless it was called before.
    pub fn start_reload(&self) -> Result<Option<ReloadHandle>, WatchError> {
        let Some(path) = &self.config_path else {
            return Ok(None);
        };
        if self.reload_started.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        // Without the text it was parsed from, the file as it is now stands in for it.
        let initial = match &self.config_text {
            Some(text) => text.clone(),
            None => std::fs::read_to_string(path).unwrap_or_default(),
        };
        let reloader = Reloader::new(path.clone(), self.current.clone(), self.reload.clone());
        reloader.start(initial).map(Some)
    }

    /// The journal, when started with one.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.proxy.coordinator.journal()
    }

    /// Binds the configured client listener and, if enabled, the admin listener.
    pub async fn listen(&self) -> Result<Listeners, StartError> {
        let settings = &self.current.load().settings;
        let client = bind(settings.listen).await?;
        let admin = match settings.admin {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners { client, admin })
    }

    /// Serves clients and, if given, the admin API until `shutdown`, hot-reloading the config
    /// file (if any; a watch that cannot start is logged and dtc serves on without reload).
    /// Then drains the client listener, stops the background tasks, flushes the journal, and
    /// stops the admin listener last (probes see dtc until it is done).
    pub async fn serve(self, listeners: Listeners, shutdown: impl Future<Output = ()>) {
        let _reload = self.start_reload().unwrap_or_else(|e| {
            tracing::error!(error = %e, "hot reload is off; restart dtc to apply config edits");
            None
        });
        let Listeners { client, admin } = listeners;
        if let Ok(addr) = client.local_addr() {
            let rt = self.current.load();
            let nodes: Vec<&str> = rt.nodes.all().iter().map(|n| n.name()).collect();
            tracing::info!(%addr, generation = rt.generation, nodes = ?nodes, "dtc listening");
        }
        tokio::spawn(first_contact(self.current.clone()));
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_task = admin.map(|l| {
            tokio::spawn(admin::serve(l, self.admin.clone(), async {
                let _ = admin_stopped.await;
            }))
        });
        let journal = self.journal().cloned();
        let tracing = self.proxy.coordinator.tracing().clone();
        server::serve(client, self.proxy, shutdown).await;
        self.stopper.stop();
        if let Some(j) = journal {
            match j.flush().await {
                Ok(()) => tracing::info!(open = j.open_entries().len(), "journal flushed"),
                Err(e) => tracing::error!(error = %e, "journal flush failed at shutdown"),
            }
        }
        // Joins the exporter's thread, which sends what is queued (bounded by its timeout).
        let _ = tokio::task::spawn_blocking(move || tracing.shutdown()).await;
        let _ = stop_admin.send(());
        if let Some(t) = admin_task {
            let _ = t.await;
        }
    }
}

/// Warns, right at start, about each node that cannot be reached: a node that is gone should be
/// in the log before the first client's write fails on it. Each node's probe loop asks it at
/// once when it starts ([`crate::upstream::probe`]); this waits for that first word (at most
/// `health.timeout` and a little) instead of asking again, which would open a second connection
/// beside the probe's. (An answer also makes the node count for readiness at once.)
async fn first_contact(current: Arc<crate::runtime::Current>) {
    let rt = current.load();
    let health = rt.settings.config.health.clone();
    if health.path.is_empty() {
        return;
    }
    let nodes = rt.nodes.all();
    let heard =
        |n: &Arc<crate::upstream::Node>| n.stats.answered() || n.stats.last_error().is_some();
    let deadline =
        tokio::time::Instant::now() + health.timeout + std::time::Duration::from_millis(200);
    while !nodes.iter().all(heard) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for n in nodes.iter().filter(|n| !n.stats.answered()) {
        let error = match n.stats.last_error() {
            Some(e) => e.error,
            None => format!(
                "no answer within {}",
                crate::config::duration::Human(health.timeout)
            ),
        };
        tracing::warn!(node = %n.name(), url = %n.spec.url, %error, "node cannot be reached at start: writes fail until it answers (dtc status shows it)");
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn reload_status(current: &Current, metrics: &Arc<Metrics>) -> Arc<ReloadStatus> {
    Arc::new(ReloadStatus::new(current.load().generation).with_metrics(metrics.clone()))
}

fn reload_view(status: &Arc<ReloadStatus>) -> Arc<dyn Fn() -> ReloadView + Send + Sync> {
    let status = status.clone();
    Arc::new(move || {
        let s = status.get();
        ReloadView {
            generation: s.generation,
            reloads_ok: s.reloads_ok,
            reloads_unchanged: s.reloads_unchanged,
            reloads_failed: s.reloads_failed,
            restart_pending: s.restart_pending,
            last_error: s.last_error,
            last_reload_ms: s.last_reload_at.and_then(|t| {
                let since = t.duration_since(std::time::UNIX_EPOCH).ok()?;
                u64::try_from(since.as_millis()).ok()
            }),
        }
    })
}

/// Metrics and alerts for what recovery and the re-drive do.
fn on_change(metrics: Arc<Metrics>, alerter: Arc<Alerter>) -> OnChange {
    Arc::new(move |before: TxnState, e| {
        let converged = e.state != TxnState::Failed;
        if before == TxnState::Failed {
            metrics.redrive(converged);
        }
        let kind = match (before, e.state) {
            (TxnState::Failed, s) if s != TxnState::Failed => AlertKind::TransactionConverged,
            (TxnState::InDoubt | TxnState::RolledBack, TxnState::Failed) => {
                AlertKind::TransactionFailed
            }
            _ => return,
        };
        alerter.send(AlertEvent::from_view(kind, &view(e)));
    })
}

/// What `dtc run` and `dtc demo` do once the app is built: bind, call `ready` with the client
/// address (the demo prints its banner), serve until SIGINT/SIGTERM.
pub async fn run(app: App, ready: impl FnOnce(SocketAddr)) -> Result<(), StartError> {
    let listeners = app.listen().await?;
    if let Ok(addr) = listeners.client.local_addr() {
        ready(addr);
    }
    app.serve(listeners, shutdown_signal()).await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
