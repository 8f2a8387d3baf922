//! Wiring: everything `dtc run` and `dtc demo` start, stopped together.

use crate::config::Settings;
use crate::journal::{Journal, redrive};
use crate::proxy::{Proxy, server};
use crate::runtime::Current;
use crate::saga::Coordinator;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error(
        "cannot listen on {addr}: {source} (is another dtc or the app itself using it? change listen.address)"
    )]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A running dtc: its runtime and proxy.
#[derive(Clone)]
pub struct App {
    pub current: Arc<Current>,
    pub proxy: Proxy,
    /// The config file, when running from one (hot reload watches it).
    pub config_path: Option<PathBuf>,
}

impl App {
    /// Builds the app from validated settings. Must run inside a tokio runtime.
    pub fn new(settings: Settings, config_path: Option<PathBuf>) -> App {
        let current = Arc::new(Current::new(settings));
        let proxy = Proxy::new(Coordinator::new(current.clone()));
        App {
            current,
            proxy,
            config_path,
        }
    }

    /// Builds the app with its durable journal: opens it, undoes in-doubt transactions left by
    /// a crash (before serving, so no new write races the recovery), and starts the background
    /// re-drive. Must run inside a tokio runtime.
    pub async fn start(
        settings: Settings,
        config_path: Option<PathBuf>,
    ) -> Result<App, StartError> {
        let current = Arc::new(Current::new(settings));
        let jcfg = current.load().settings.config.journal.clone();
        let (journal, _tail) = Journal::open(&jcfg)?;
        let (in_doubt, failed) = journal.counts();
        if in_doubt > 0 {
            tracing::warn!(in_doubt, dir = %jcfg.dir, "in-doubt transactions found: undoing them before serving");
        }
        let recovered = redrive::recover(&journal, &current, None).await;
        tracing::info!(dir = %jcfg.dir, durability = ?jcfg.durability, rolled_back = recovered.rolled_back, failed = recovered.failed + failed, "journal open");
        tokio::spawn(redrive::run_worker(journal.clone(), current.clone(), None));
        let proxy = Proxy::new(Coordinator::new(current.clone()).with_journal(journal));
        Ok(App {
            current,
            proxy,
            config_path,
        })
    }

    /// The journal, when started with one.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.proxy.coordinator.journal()
    }

    /// Binds the configured client listener.
    pub async fn bind(&self) -> Result<TcpListener, StartError> {
        let addr = self.current.load().settings.listen;
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    }

    /// Serves on `listener` until `shutdown`, then drains.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        if let Ok(addr) = listener.local_addr() {
            let rt = self.current.load();
            let nodes: Vec<&str> = rt.nodes.all().iter().map(|n| n.name()).collect();
            tracing::info!(%addr, generation = rt.generation, nodes = ?nodes, "dtc listening");
        }
        let journal = self.journal().cloned();
        server::serve(listener, self.proxy, shutdown).await;
        if let Some(j) = journal {
            match j.flush().await {
                Ok(()) => tracing::info!(open = j.open_entries().len(), "journal flushed"),
                Err(e) => tracing::error!(error = %e, "journal flush failed at shutdown"),
            }
        }
    }
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
