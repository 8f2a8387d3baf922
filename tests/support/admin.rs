//! An admin listener over three reference nodes, and a fake journal that records what the admin
//! API asks of it.

use super::start_node;
use dtc::admin::{self, AdminState, Metrics, TxnActionError, TxnStore, TxnView};
use dtc::app::App;
use dtc::node::RefNode;
use dtc::saga::TxnState;
use futures_util::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running admin listener and what it serves.
pub struct AdminHarness {
    /// `http://127.0.0.1:port` of the admin listener.
    pub base: String,
    /// The three reference nodes, `node-1` to `node-3`.
    pub nodes: Vec<RefNode>,
    pub app: App,
    pub store: Arc<FakeStore>,
    pub metrics: Arc<Metrics>,
    _stop: oneshot::Sender<()>,
}

impl AdminHarness {
    /// The URL of `path` on the admin listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Whether every node is marked down by the proxy's health checks.
    pub fn all_nodes_down(&self) -> bool {
        let rt = self.app.current.load();
        rt.nodes.all().iter().all(|n| !n.health.is_up())
    }
}

/// The config for three nodes named `node-1` to `node-3`: probes every 20ms, two failures take
/// a node down.
pub fn config(nodes: &[RefNode], token: Option<&str>) -> dtc::config::Config {
    let mut cfg = super::test_config(nodes);
    for (i, n) in cfg.nodes.iter_mut().enumerate() {
        n.name = format!("node-{}", i + 1);
    }
    cfg.listen.admin_token = token.map(String::from);
    cfg.health.interval = Duration::from_millis(20);
    cfg.health.timeout = Duration::from_millis(200);
    cfg.health.healthy_threshold = 1;
    cfg.health.unhealthy_threshold = 2;
    cfg.retry.attempts = 2;
    cfg.retry.initial_backoff = Duration::from_millis(10);
    cfg
}

/// Starts three nodes, the app on them, and its admin listener with an open [`FakeStore`].
pub async fn start_admin(token: Option<&str>) -> AdminHarness {
    let mut nodes = Vec::new();
    for (name, base) in [("a", 1), ("b", 1000), ("c", 2000)] {
        nodes.push(start_node(name, base).await);
    }
    let settings = super::settings(config(&nodes, token));
    let app = App::builder(settings)
        .without_journal()
        .start()
        .await
        .expect("app builds");
    let store = Arc::new(FakeStore::default());
    store.set_open(true);
    let mut state = AdminState::new(app.proxy.coordinator.clone());
    state.txns = store.clone();
    let metrics = state.metrics.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let base = format!("http://{}", listener.local_addr().expect("admin address"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(admin::serve(listener, state, async {
        let _ = stopped.await;
    }));
    AdminHarness {
        base,
        nodes,
        app,
        store,
        metrics,
        _stop: stop,
    }
}

/// A transaction as the fake journal holds it.
pub fn txn(id: &str, state: TxnState) -> TxnView {
    TxnView {
        txn: id.to_string(),
        state,
        method: "POST".into(),
        path: "/v1/group/".into(),
        route: Some("POST /v1/group/".into()),
        key: format!("group/{id}"),
        generation: 1,
        started_ms: 1_700_000_000_000,
        finished_ms: Some(1_700_000_000_050),
        reason: None,
        nodes: Vec::new(),
        redrives: 0,
        next_redrive_ms: None,
        resolution: None,
        resolved_by: None,
        resolved_ms: None,
    }
}

/// A journal in memory: newest transaction first; records every retry and resolve it is asked
/// for as `retry ID` or `resolve ID: REASON`.
#[derive(Default)]
pub struct FakeStore {
    open: AtomicBool,
    txns: Mutex<Vec<TxnView>>,
    calls: Mutex<Vec<String>>,
}

impl FakeStore {
    /// Opens or closes the fake journal.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }

    /// Adds a transaction as the newest.
    pub fn add(&self, view: TxnView) {
        self.txns.lock().unwrap().insert(0, view);
    }

    /// The retries and resolves asked for so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// Applies `change` to a failed transaction, as a retry or resolve would.
    fn act(&self, id: &str, change: impl FnOnce(&mut TxnView)) -> Result<TxnView, TxnActionError> {
        let mut txns = self.txns.lock().unwrap();
        let view = txns
            .iter_mut()
            .find(|t| t.txn == id)
            .ok_or_else(|| TxnActionError::NotFound(id.to_string()))?;
        if view.state != TxnState::Failed {
            return Err(TxnActionError::NotActionable {
                txn: id.to_string(),
                state: view.state,
            });
        }
        change(view);
        Ok(view.clone())
    }
}

impl TxnStore for FakeStore {
    fn journal_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    fn list(&self, state: Option<TxnState>, limit: usize) -> Vec<TxnView> {
        let txns = self.txns.lock().unwrap();
        let wanted = txns.iter().filter(|t| state.is_none_or(|s| t.state == s));
        wanted.take(limit).cloned().collect()
    }

    fn get(&self, txn: &str) -> Option<TxnView> {
        self.txns
            .lock()
            .unwrap()
            .iter()
            .find(|t| t.txn == txn)
            .cloned()
    }

    fn counts(&self) -> (usize, usize) {
        let txns = self.txns.lock().unwrap();
        let count = |s| txns.iter().filter(|t| t.state == s).count();
        (count(TxnState::InDoubt), count(TxnState::Failed))
    }

    fn retry(&self, txn: &str) -> BoxFuture<'static, Result<TxnView, TxnActionError>> {
        self.calls.lock().unwrap().push(format!("retry {txn}"));
        let result = self.act(txn, |v| v.redrives += 1);
        Box::pin(std::future::ready(result))
    }

    fn resolve(
        &self,
        txn: &str,
        reason: String,
        _by: String,
    ) -> BoxFuture<'static, Result<TxnView, TxnActionError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("resolve {txn}: {reason}"));
        let result = self.act(txn, |v| v.resolution = Some(reason));
        Box::pin(std::future::ready(result))
    }
}
