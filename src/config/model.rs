//! The configuration file's shape: serde types with every default in one place.
//!
//! Every struct denies unknown fields, so a typo is an error that names the field rather than a
//! setting that silently does nothing. Defaults are the `Default` impls below; `dtc check` prints
//! the effective result.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Config {
    /// Listener addresses and worker threads.
    pub listen: Listen,
    /// The replicas. Every write goes to all of them; reads go to one.
    pub nodes: Vec<NodeConfig>,
    /// TLS to `https` nodes: CA, client certificate, name, versions (a node's `tls` overrides).
    #[serde(skip_serializing_if = "is_default")]
    pub tls: super::tls::TlsConfig,
    /// Retry policy for node requests (writes, compensations, snapshots).
    pub retry: RetryConfig,
    /// Connect, per-attempt, header-read and shutdown timeouts.
    pub timeouts: Timeouts,
    /// Body size and connection limits.
    pub limits: Limits,
    /// Active and passive node health checking.
    pub health: HealthConfig,
    /// Which methods are writes and what to do with writes no route matches.
    pub writes: Writes,
    /// Read failover.
    pub reads: Reads,
    /// The durable transaction journal.
    pub journal: JournalConfig,
    /// How long and how many clients' `Idempotency-Key`s dtc remembers.
    pub idempotency: Idempotency,
    /// Where alerts about failed transactions go.
    pub alerts: Alerts,
    /// The optional background check that nodes agree on recently written keys.
    pub verify: super::VerifyTask,
    /// W3C trace context, and spans exported over OTLP. Needs a restart to change.
    pub tracing: super::TracingConfig,
    /// Many sidecars, one PostgreSQL store (leases, shared journal). Absent: the local journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<super::ClusterConfig>,
    /// Compensation rules, first match wins.
    pub routes: Vec<RouteConfig>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Listener settings. Changing any of them needs a restart.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// The proxy listener the client talks to. Default `127.0.0.1:8000`.
    pub address: String,
    /// The admin listener (health, metrics, transactions). Default `127.0.0.1:9901`; `""` disables it.
    pub admin: String,
    /// Bearer token the admin API requires, if set. Redacted in `GET /config`. Prefer
    /// `admin_token_file`: a token written in the config is readable by whoever reads the config.
    pub admin_token: Option<String>,
    /// A file whose content (trailing whitespace trimmed) is the admin token, e.g. a mounted
    /// Kubernetes Secret. Read at start, by `dtc check`, and again at each admin request, so a
    /// rotated Secret takes effect without a reload. Excludes `admin_token`.
    pub admin_token_file: Option<String>,
    /// Worker threads; 0 means one per core, 1 a single-threaded runtime. Default 0.
    pub workers: usize,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            address: "127.0.0.1:8000".into(),
            admin: "127.0.0.1:9901".into(),
            admin_token: None,
            admin_token_file: None,
            workers: 0,
        }
    }
}

/// One replica.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// A short name used in logs, metrics and error bodies. Unique.
    pub name: String,
    /// Base URL, `http://host:port` or `https://host:port`, with an optional path prefix.
    pub url: String,
    /// TLS of an `https` node, over `[tls]` field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::tls::TlsConfig>,
}

/// Exponential backoff with jitter, under an overall deadline. One policy serves node writes,
/// compensations, snapshots and the background re-drive.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per node, the first included. Default 4.
    pub attempts: u32,
    /// Wait before the second attempt. Default `50ms`.
    #[serde(with = "super::duration")]
    pub initial_backoff: Duration,
    /// Upper bound of one wait. Default `1s`.
    #[serde(with = "super::duration")]
    pub max_backoff: Duration,
    /// Growth factor between waits. Default 2.0.
    pub multiplier: f64,
    /// Fraction of each wait that is randomized (0 to 1). Default 0.2.
    pub jitter: f64,
    /// Overall time budget for one node's attempts, waits included. Default `5s`.
    #[serde(with = "super::duration")]
    pub deadline: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.2,
            deadline: Duration::from_secs(5),
        }
    }
}

/// Timeouts.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// TCP connect to a node. Default `500ms`.
    #[serde(with = "super::duration")]
    pub connect: Duration,
    /// One request to a node, until its whole response is read. Default `2s`.
    #[serde(with = "super::duration")]
    pub attempt: Duration,
    /// How long a client may take to send its request headers. Default `10s`.
    #[serde(with = "super::duration")]
    pub header_read: Duration,
    /// How long in-flight requests may take to finish on SIGTERM. Default `10s`.
    #[serde(with = "super::duration")]
    pub shutdown: Duration,
    /// How long a client connection with no request in flight stays open (an HTTP/2
    /// connection with no open stream, an HTTP/1 connection between requests). Default `60s`.
    #[serde(with = "super::duration")]
    pub idle: Duration,
    /// A read's answer body: longest wait for the next chunk from the node; past it the client
    /// connection is closed and the node counts a failure. Default `10s`.
    #[serde(with = "super::duration")]
    pub read_idle: Duration,
    /// A read's answer body: longest time to stream it whole. Default `60s`.
    #[serde(with = "super::duration")]
    pub read_total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(500),
            attempt: Duration::from_secs(2),
            header_read: Duration::from_secs(10),
            shutdown: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            read_idle: Duration::from_secs(10),
            read_total: Duration::from_secs(60),
        }
    }
}

/// Limits.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted, in bytes (413 beyond). Node responses to writes are
    /// bounded by the same number. Default 1 MiB.
    pub max_body: usize,
    /// Client connections served at once; more get 503 and are closed. Default 4096.
    pub max_connections: usize,
    /// Largest request head (request line + headers), in bytes (431 beyond). Default 64 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in one HTTP/1 request (431 beyond). Default 100.
    pub max_headers: usize,
    /// Longest request target (path and query), in bytes (414 beyond). Default 8 KiB.
    pub max_uri_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 1024 * 1024,
            max_connections: 4096,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
        }
    }
}

/// Node health: when a node counts as down for fail-fast and reads, and how it comes back
/// (`src/upstream/health.rs` has the state machine and the reasons behind the numbers).
///
/// Down means unreachable: a node is marked down when, within the last `window`, at least
/// `unhealthy_threshold` of its calls (writes, undos, reads, probes) found it unreachable —
/// connection refused or failed, connect timeout, no answer within the attempt timeout — and they
/// are at least `failure_rate` of all its calls — or when its last `consecutive_unreachable` calls
/// in a row did. Any HTTP answer, 5xx included, means the node is
/// talking: that is the retry loop's business, not a reason to stop sending. A down node gets
/// half-open trials (a probe of `path`, or a write whose route can be undone) after
/// `trial_initial`, doubling up to `trial_max`; `healthy_threshold` trials that reach it bring
/// it back.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Probe path. Default `/healthz`. An empty string disables probing, and then a node is never
    /// marked down (nothing would bring it back).
    pub path: String,
    /// Time between probes of a node that is up. Default `2s`.
    #[serde(with = "super::duration")]
    pub interval: Duration,
    /// Probe timeout; also how long a half-open trial may take before it counts as failed.
    /// Default `1s`.
    #[serde(with = "super::duration")]
    pub timeout: Duration,
    /// Trials in a row that must reach a down node to bring it up. Default 1.
    pub healthy_threshold: u32,
    /// The fewest unreachable calls within `window` that can mark a node down. Default 3.
    pub unhealthy_threshold: u32,
    /// Calls in a row that found the node unreachable, with no answer between them, that mark
    /// it down whatever the window holds (a busy node that just went away). Default 5.
    pub consecutive_unreachable: u32,
    /// The sliding window over which a node's calls are counted. Default `2s`.
    #[serde(with = "super::duration")]
    pub window: Duration,
    /// The share (0 to 1) of a node's calls within `window` that must have found it unreachable
    /// for it to be marked down. Default 0.5.
    pub failure_rate: f64,
    /// The first half-open trial of a down node comes this long after it was marked down; after
    /// each failed trial the wait doubles. Default `100ms`.
    #[serde(with = "super::duration")]
    pub trial_initial: Duration,
    /// The longest wait between two trials: a node that returns is used again within about this
    /// long. Default `500ms`.
    #[serde(with = "super::duration")]
    pub trial_max: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: "/healthz".into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            healthy_threshold: 1,
            unhealthy_threshold: 3,
            consecutive_unreachable: 5,
            window: Duration::from_secs(2),
            failure_rate: 0.5,
            trial_initial: Duration::from_millis(100),
            trial_max: Duration::from_millis(500),
        }
    }
}

/// What a write no route matches does.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// Replicate it anyway; if it ends partial nothing can undo it (state `failed`).
    Replicate,
    /// Refuse it with 501 before touching any node.
    Refuse,
}

/// Writes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Writes {
    /// Methods that are replicated to every node. Default POST, PUT, PATCH, DELETE.
    pub methods: Vec<String>,
    /// Writes that match no route: `refuse` (501, no node touched) or `replicate` (keyed by the
    /// path's normal form; nothing can undo such a write). Default: `refuse` when the config
    /// declares routes (a write they do not name is most likely a typo or an endpoint nobody
    /// described), `replicate` when it declares none (dtc as a plain fan-out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched: Option<Unmatched>,
    /// Refuse a write with 503 `to_be_retried`, touching no node, while a node it needs is down
    /// (unreachable, see [`HealthConfig`]); `Retry-After` says when that node's next trial is due.
    /// Default true.
    pub fail_fast: bool,
    /// With `fail_fast`, how long a write that needs a down node waits for it to come back (its
    /// half-open trials are due every `health.trial_initial` to `health.trial_max`) before it is
    /// refused; `0s` refuses at once. A node back within this wait costs the write that wait,
    /// not a refusal the client must retry. Default `1s`.
    #[serde(with = "super::duration")]
    pub wait_for_down_node: Duration,
    /// `Retry-After` sent with 503 answers. Default `1s`.
    #[serde(with = "super::duration")]
    pub retry_after: Duration,
    /// Writes that match no route (with `unmatched = "replicate"`) share journal syncs while
    /// they queue on one resource, as a route's `pipeline` does (see `docs/writes.md`).
    /// Refused under `[cluster]`. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pipeline_unmatched: bool,
}

impl Default for Writes {
    fn default() -> Self {
        Writes {
            methods: ["POST", "PUT", "PATCH", "DELETE"].map(String::from).into(),
            unmatched: None,
            fail_fast: true,
            wait_for_down_node: Duration::from_secs(1),
            retry_after: Duration::from_secs(1),
            pipeline_unmatched: false,
        }
    }
}

/// Reads (every method that is not a write).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Reads {
    /// Node statuses after which a read is tried on another node. Default 502, 503, 504.
    pub retry_statuses: Vec<u16>,
    /// Nodes tried at most for one read. Default 3.
    pub max_tries: u32,
}

impl Default for Reads {
    fn default() -> Self {
        Reads {
            retry_statuses: vec![502, 503, 504],
            max_tries: 3,
        }
    }
}

/// How durable a journal record is before the write proceeds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityMode {
    /// fsync after every record.
    Fsync,
    /// One fsync shared by the records of concurrent transactions (default).
    #[default]
    Group,
    /// No fsync: survives a crash of dtc, not of the machine.
    None,
    /// No journal file: transactions are kept in memory only (fences, re-drive and the admin
    /// list still work); a crash of dtc forgets those in flight and those that failed.
    Off,
}

/// Default `journal.segment_bytes`: 64 MiB, etcd's WAL segment size.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// The journal.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Directory of the journal. Default `./data`. Needs a restart to change.
    pub dir: String,
    /// `fsync`, `group` (default) or `none`.
    pub durability: DurabilityMode,
    /// Finished transactions kept for inspection. Default 1000.
    pub keep_finished: usize,
    /// First wait of the background re-drive of failed transactions. Default `1s`.
    #[serde(with = "super::duration")]
    pub redrive_initial: Duration,
    /// Longest wait of the re-drive. Default `5m`.
    #[serde(with = "super::duration")]
    pub redrive_max: Duration,
    /// How long after a rollback that involved a node with an unknown outcome (its request may
    /// still land) the rollback is checked again on that node. Default `10s`.
    #[serde(with = "super::duration")]
    pub verify_after: Duration,
    /// How many resource keys' last acknowledged state is kept (the newest): the prior state of
    /// the next write on the key, which outranks what the nodes show. Default 100000.
    pub key_states: usize,
    /// How long `dtc run` waits at start for the journal directory's lock while another process
    /// holds it (a predecessor killed a moment ago may still be exiting). Default `10s`.
    #[serde(with = "super::duration")]
    pub lock_wait: Duration,
    /// The client request headers a transaction's journal record keeps, for an undo that runs
    /// after a restart (the re-drive). Names are case-insensitive; `["*"]` keeps every
    /// end-to-end header. Default `["authorization"]`: the rest are dropped, never written.
    pub headers: Vec<String>,
    /// Size of a journal segment file in bytes: a batch that would take the active segment
    /// past it starts a new one, and compaction drops whole segments. Default 67108864
    /// (64 MiB). Needs a restart to change.
    pub segment_bytes: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            dir: "./data".into(),
            durability: DurabilityMode::Group,
            keep_finished: 1000,
            redrive_initial: Duration::from_secs(1),
            redrive_max: Duration::from_secs(300),
            verify_after: Duration::from_secs(10),
            lock_wait: Duration::from_secs(10),
            key_states: 100_000,
            headers: vec!["authorization".into()],
            segment_bytes: SEGMENT_BYTES,
        }
    }
}

/// Clients' `Idempotency-Key`s (see docs/writes.md). dtc owns the key: a
/// retry of a finished write gets the first answer again without touching the nodes, a retry
/// after `rolled_back` or `to_be_retried` runs anew, a reused key with another request is
/// refused (422). Kept in the journal (with `[cluster]`, in the shared store).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Idempotency {
    /// How long a key is remembered after its transaction began. Default `24h`.
    #[serde(with = "super::duration")]
    pub window: Duration,
    /// At most this many keys are remembered; the oldest go first. Default 100000.
    pub max_keys: usize,
    /// An answer body longer than this is not kept for replay: a retry of that write runs again
    /// (and the nodes' own "already" answers make it converge). Default 65536.
    pub max_answer: usize,
}

impl Default for Idempotency {
    fn default() -> Self {
        Idempotency {
            window: Duration::from_secs(24 * 3600),
            max_keys: 100_000,
            max_answer: 64 * 1024,
        }
    }
}

/// Alerting.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// `http://` URL that receives a JSON event when a transaction ends `failed` and when it later
    /// converges. Unset: events are only logged.
    pub webhook: Option<String>,
}

/// Where a compensation's body comes from.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BodySource {
    /// The client's original request body.
    Original,
    /// The representation the snapshot request read on that node before the write.
    Snapshot,
    /// No body.
    None,
}

/// A compensation rule: how to undo a write that one node applied.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CompensationConfig {
    /// Method of the undo request.
    pub method: String,
    /// Path template of the undo request.
    pub path: String,
    /// Body of the undo request: `original`, `snapshot` or `none`. Default `none`.
    #[serde(default = "default_body_source")]
    pub body: BodySource,
    /// A body template instead (e.g. `{"groupId": "{body:/groupId}"}`); excludes `body`.
    #[serde(default)]
    pub body_template: Option<String>,
    /// Statuses of the undo that mean "already undone" (e.g. 404 for a DELETE).
    #[serde(default)]
    pub already: Vec<u16>,
}

fn default_body_source() -> BodySource {
    BodySource::None
}

/// A read of the resource on each node before the write, for snapshot compensation.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Method, default GET.
    #[serde(default = "default_get")]
    pub method: String,
    /// Path template; default: the write's own path.
    #[serde(default)]
    pub path: Option<String>,
}

fn default_get() -> String {
    "GET".into()
}

/// A route: which writes it matches and how they are undone.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Method of the write.
    pub method: String,
    /// Path template: literal segments and `{name}` segments that capture one segment.
    pub path: String,
    /// Resource key template. Writes with the same key are serialized. Default: the request
    /// path's normal form, except for a `POST`, which creates a resource the node names and
    /// gets a key of its own per request.
    #[serde(default)]
    pub key: Option<String>,
    /// Whether sending the write to a node again, after an attempt whose outcome is unknown
    /// (a timeout, a cut connection, a 5xx other than 503), is safe: `already` (a duplicate
    /// answers one of `already`), `replace` (it sets the same state again, as a PUT does), `key`
    /// (the nodes honour `Idempotency-Key`), or `no`: then dtc re-sends only after reading the
    /// resource back shows the write did not land (with `verify`), and otherwise stops.
    /// Default: `already` when `already` lists statuses, `replace` for PUT, else `no`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<Idempotent>,
    /// Statuses of the write meaning "the node is already in the target state".
    #[serde(default)]
    pub already: Vec<u16>,
    /// Optional pre-image read.
    #[serde(default)]
    pub snapshot: Option<SnapshotConfig>,
    /// How to undo the write; none means a partial write cannot be undone.
    #[serde(default)]
    pub compensation: Option<CompensationConfig>,
    /// How to read the resource's state on a node (target or prior), where the answers do not
    /// tell. Without it a node whose answer is ambiguous or missing cannot be judged unless
    /// another node's answer or a pre-image tells its prior state.
    #[serde(default)]
    pub verify: Option<VerifyConfig>,
    /// A path on the nodes that lists the resources this route creates: a `GET` of it answers a
    /// JSON array, each element the resource as this route's body takes it (e.g.
    /// `{"groupId": "g1"}`). A joining node's backfill uses it to find keys the journal does not
    /// know (written before dtc, or before the journal's oldest record). Needs `key`, `verify`
    /// and a path without `{name}` segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// On a create (`POST`): the nodes assign the new resource's id themselves, so dtc maps the
    /// id the client sees to each node's own (see `docs/ids.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<super::ids::IdConfig>,
    /// Writes queued on one resource share journal syncs: a queued write journals its intent
    /// before its turn and goes to the nodes while up to three writes before it on the resource
    /// still wait for their end to be durable (see `docs/writes.md`). Refused with `snapshot`,
    /// `id`, and under `[cluster]`. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pipeline: bool,
}

/// Why sending a write again is safe (see [`RouteConfig::idempotent`]).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Idempotent {
    Already,
    Replace,
    Key,
    No,
}

/// A read of the resource that tells a node's state: the write's target state or the prior one.
/// Recovery, the re-drive, the late-write check and a live write whose answers are ambiguous
/// read it instead of guessing. Give one list and the other is derived: a `404`/`410` on one
/// side means `200` on the other, a `2xx` means `[404, 410]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Method, default GET.
    #[serde(default = "default_get")]
    pub method: String,
    /// Path template (request values only: it is rendered before the write).
    pub path: String,
    /// Statuses that mean the node is in the state before the write (e.g. 404 for a create).
    /// `expect` is the old name of this field.
    #[serde(default, alias = "expect", skip_serializing_if = "Vec::is_empty")]
    pub prior: Vec<u16>,
    /// Statuses that mean the node is in the write's target state (e.g. 200 for a create).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<u16>,
}
