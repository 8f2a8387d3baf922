//! Wiring: everything `dtc run` and `dtc demo` start, stopped together.

use crate::config::Settings;
use crate::config::reload::{ReloadHandle, ReloadStatus, Reloader};
use crate::config::watch::WatchError;
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
    /// Hot reload: generation, counts, last error (for the admin API).
    pub reload: Arc<ReloadStatus>,
    /// The file content the running config was parsed from, so only real edits reload.
    config_text: Option<String>,
}

impl App {
    /// Builds the app from validated settings. Must run inside a tokio runtime.
    pub fn new(settings: Settings, config_path: Option<PathBuf>) -> App {
        let current = Arc::new(Current::new(settings));
        let proxy = Proxy::new(Coordinator::new(current.clone()));
        App {
            reload: Arc::new(ReloadStatus::new(current.load().generation)),
            current,
            proxy,
            config_path,
            config_text: None,
        }
    }

    /// Builds the app from a config file's validated settings and its `text` (as
    /// [`crate::config::load_file`] returns them), ready to hot-reload that file.
    pub fn from_file(settings: Settings, path: PathBuf, text: String) -> App {
        App {
            config_text: Some(text),
            ..App::new(settings, Some(path))
        }
    }

    /// Starts hot reload of the config file (`None` without one). The watch is in place when
    /// this returns, so edits made afterwards are seen. Dropping the handle stops it.
    pub fn start_reload(&self) -> Result<Option<ReloadHandle>, WatchError> {
        let Some(path) = &self.config_path else {
            return Ok(None);
        };
        // Without the text it was parsed from, the file as it is now stands in for it.
        let initial = match &self.config_text {
            Some(text) => text.clone(),
            None => std::fs::read_to_string(path).unwrap_or_default(),
        };
        let reloader = Reloader::new(path.clone(), self.current.clone(), self.reload.clone());
        reloader.start(initial).map(Some)
    }

    /// Hot-reloads the config file (if any) and serves on `listener` until `shutdown`. A watch
    /// that cannot start is logged and the proxy serves on without reload.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let _reload = self.start_reload().unwrap_or_else(|e| {
            tracing::error!(error = %e, "hot reload is off; restart dtc to apply config edits");
            None
        });
        self.serve(listener, shutdown).await;
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
        server::serve(listener, self.proxy, shutdown).await;
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
