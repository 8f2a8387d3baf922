//! The reference node: the in-memory HTTP service that dtc replicates to.
//! The demo and the integration tests run three of them, each with its own
//! fault knobs.
//!
//! - `api.rs`: the reference API (groups, items, health) over an in-memory store;
//! - `faults.rs`: standing faults (rates, delay) and one-shot faults;
//! - `server.rs`: the listener, the connections (HTTP/1.1 and h2c), going down and up;
//! - `control.rs`: the fault switch, an HTTP API that changes a running node's faults
//!   (`dtc node --admin`, the demo's `--node-admin`);
//! - `cli.rs`: `dtc node`.
//!
//! A request goes: accepted connection → recorded in [`RefNode::requests`] →
//! delay → for writes (POST, PUT, PATCH, DELETE) the fault decision (fail,
//! apply-then-fail, reject, hold, or the seeded rates) → the store → answer.
//! `/healthz` skips delay and faults; a node that is down answers nothing at
//! all: connects are refused.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use dtc::node::{NodeOptions, RefNode};
//! let node = RefNode::bind("127.0.0.1:0", NodeOptions::named("a")).await?;
//! node.fail_next(1); // the next write answers 500 and changes nothing
//! println!("{}", node.url());
//! # Ok(()) }
//! ```

mod api;
mod cli;
pub(crate) mod control;
mod faults;
mod server;

pub use cli::{NodeArgs, node_main};
pub use control::{FaultChange, NodeView};
pub use faults::Faults;

use api::Store;
use bytes::Bytes;
use faults::FaultState;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Name used in logs and by tests (`a`, `b`, `c`).
    pub name: String,
    /// First id assigned by `POST /items`; give nodes different bases so
    /// they assign different ids to the same create.
    pub id_base: u64,
    /// Standing faults at start.
    pub faults: Faults,
}

impl NodeOptions {
    /// Options for a node called `name`, ids from 1, no faults.
    pub fn named(name: impl Into<String>) -> NodeOptions {
        NodeOptions {
            name: name.into(),
            ..NodeOptions::default()
        }
    }
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            name: "node".to_owned(),
            id_base: 1,
            faults: Faults::default(),
        }
    }
}

/// One request as the node received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The request method.
    pub method: Method,
    /// Path with query, e.g. `/items?x=1`.
    pub path: String,
    /// All request headers.
    pub headers: HeaderMap,
    /// The whole request body.
    pub body: Bytes,
}

/// A running reference node; a cheap [`Clone`] handle to its shared state.
#[derive(Clone)]
pub struct RefNode {
    shared: Arc<Shared>,
}

/// The state every connection of a node shares.
struct Shared {
    name: String,
    addr: SocketAddr,
    store: Mutex<Store>,
    faults: Mutex<FaultState>,
    requests: Mutex<Vec<RecordedRequest>>,
    writes: AtomicUsize,
    /// Requests currently held by `hold_next`.
    held: AtomicUsize,
    /// Bumped by `release_held`: held requests wait for a change.
    release: watch::Sender<u64>,
    /// Bumped when the node goes down: requests waiting (delay, hold) give up.
    cut: watch::Sender<u64>,
    down: AtomicBool,
    serving: tokio::sync::Mutex<Option<server::Serving>>,
}

/// Locks a mutex, ignoring poisoning: the data stays usable for tests.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn faults(&self) -> MutexGuard<'_, FaultState> {
        lock(&self.faults)
    }
}

impl RefNode {
    /// Starts serving on `listener` (its address is the node's for good)
    /// and returns at once; the server runs on spawned tasks.
    pub async fn start(listener: TcpListener, opts: NodeOptions) -> std::io::Result<RefNode> {
        let addr = listener.local_addr()?;
        let down = opts.faults.down;
        let shared = Arc::new(Shared {
            addr,
            store: Mutex::new(Store::new(opts.id_base)),
            faults: Mutex::new(FaultState::new(&opts.faults)),
            requests: Mutex::new(Vec::new()),
            writes: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            release: watch::Sender::new(0),
            cut: watch::Sender::new(0),
            down: AtomicBool::new(down),
            serving: tokio::sync::Mutex::new(None),
            name: opts.name,
        });
        if !down {
            *shared.serving.lock().await = Some(server::Serving::spawn(shared.clone(), listener));
        }
        let node = RefNode { shared };
        info!(node = %node.name(), url = %node.url(), down, "reference node started");
        Ok(node)
    }

    /// Binds `addr` (with `SO_REUSEADDR`; use `127.0.0.1:0` in tests) and starts.
    pub async fn bind(addr: &str, opts: NodeOptions) -> std::io::Result<RefNode> {
        let listener = server::listen_any(addr).await?;
        RefNode::start(listener, opts).await
    }

    /// The address the node listens on (also while down).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (an unspecified bind
    /// address is shown as loopback).
    pub fn url(&self) -> String {
        let mut addr = self.addr();
        if addr.ip().is_unspecified() {
            let loopback = if addr.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            addr.set_ip(loopback);
        }
        format!("http://{addr}")
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The next `n` writes answer 500 without being applied (adds to pending).
    pub fn fail_next(&self, n: usize) {
        self.shared.faults().fail_next(n);
        info!(node = %self.name(), n, "fault: fail next writes");
    }

    /// The next `n` writes are applied, then answer 500 (adds to pending).
    pub fn apply_then_fail_next(&self, n: usize) {
        self.shared.faults().apply_then_fail_next(n);
        info!(node = %self.name(), n, "fault: apply then fail next writes");
    }

    /// The next `n` writes answer `status` with a JSON error body, without
    /// being applied. An invalid status code is replaced by 422.
    pub fn reject_next(&self, n: usize, status: u16) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
        self.shared.faults().reject_next(n, status);
        info!(node = %self.name(), n, status = status.as_u16(), "fault: reject next writes");
    }

    /// The next `n` writes are held open, unanswered, until [`release_held`](Self::release_held).
    pub fn hold_next(&self, n: usize) {
        self.shared.faults().hold_next(n);
        info!(node = %self.name(), n, "fault: hold next writes");
    }

    /// Lets every held write proceed normally (apply and answer).
    pub fn release_held(&self) {
        self.shared
            .release
            .send_modify(|generation| *generation += 1);
        info!(node = %self.name(), held = self.held_count(), "fault: release held writes");
    }

    /// Ends every held write unapplied, its connection cut (a server giving up on requests
    /// whose client is gone); so do requests waiting out a delay. The node stays up.
    pub fn drop_held(&self) {
        info!(node = %self.name(), held = self.held_count(), "fault: drop held writes");
        self.shared.cut.send_modify(|generation| *generation += 1);
    }

    /// How many requests are held right now.
    pub fn held_count(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Drops every pending one-shot fault (rates, delay and down stay).
    pub fn clear_faults(&self) {
        self.shared.faults().clear_one_shots();
        info!(node = %self.name(), "fault: one-shot faults cleared");
    }

    /// Sets the latency added before each request (`/healthz` excepted).
    pub fn set_delay(&self, d: Duration) {
        self.shared.faults().set_delay(d);
        info!(node = %self.name(), delay = ?d, "fault: delay");
    }

    /// Sets the probability that a write answers 500 without being applied.
    pub fn set_error_rate(&self, rate: f64) {
        self.shared.faults().set_error_rate(rate);
        info!(node = %self.name(), rate, "fault: error rate");
    }

    /// Answers a create of an existing group with `500 text/html` "Insert failed, duplicate id"
    /// (json-server 0.17's way) instead of 400.
    pub fn set_duplicate_as_500(&self, on: bool) {
        self.shared.faults().set_duplicate_as_500(on);
        info!(node = %self.name(), on, "fault: duplicate create answers 500");
    }

    /// The next `n` writes have their connection cut with no answer, not applied (adds to
    /// pending).
    pub fn reset_next(&self, n: usize) {
        self.shared.faults().reset_next(n);
        info!(node = %self.name(), n, "fault: reset next writes");
    }

    /// Sets the probability that a write's connection is cut with no answer (half of them after
    /// the write was applied).
    pub fn set_reset_rate(&self, rate: f64) {
        self.shared.faults().set_reset_rate(rate);
        info!(node = %self.name(), rate, "fault: reset rate");
    }

    /// Sets the probability that a write is applied, then answers 500.
    pub fn set_apply_then_fail_rate(&self, rate: f64) {
        self.shared.faults().set_apply_then_fail_rate(rate);
        info!(node = %self.name(), rate, "fault: apply-then-fail rate");
    }

    /// Down: stop listening (connects are refused) and close every open
    /// connection, held requests included. Up: listen again on the same
    /// port. Returns once the change is done; if the port cannot be bound
    /// again the error is logged and the node stays down ([`is_down`](Self::is_down)).
    pub async fn set_down(&self, down: bool) {
        server::set_down(&self.shared, down).await;
    }

    /// Whether the node is down.
    pub fn is_down(&self) -> bool {
        self.shared.down.load(Ordering::SeqCst)
    }

    /// The groups the node holds.
    pub fn groups(&self) -> BTreeSet<String> {
        self.shared.store().groups.clone()
    }

    /// The items the node holds, by id.
    pub fn items(&self) -> BTreeMap<u64, Value> {
        self.shared.store().items.clone()
    }

    /// Adds a group directly, bypassing HTTP and faults.
    pub fn insert_group(&self, id: &str) {
        self.shared.store().groups.insert(id.to_owned());
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many write requests (POST, PUT, PATCH, DELETE) were received.
    pub fn write_count(&self) -> usize {
        self.shared.writes.load(Ordering::SeqCst)
    }

    /// Stops the node for good: the listener and every connection close.
    pub async fn shutdown(self) {
        server::set_down(&self.shared, true).await;
        info!(node = %self.name(), "reference node shut down");
    }
}

impl std::fmt::Debug for RefNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefNode")
            .field("name", &self.name())
            .field("addr", &self.addr())
            .finish()
    }
}
