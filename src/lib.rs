//! dtc: a replicating sidecar proxy — every write on all nodes or on none, reads from one
//! healthy node.
//!
//! # The map
//!
//! Dependencies go one way, from the command line down to the transaction types
//! (`tests/layers.rs` fails on an import that points back up):
//!
//! - [`cli`] parses the command line and starts a subcommand on [`process`]'s tokio runtime;
//!   [`exit`] is every command's exit-code table.
//! - [`app`] wires a running dtc ([`app::App::builder`], then [`app::App::serve`]): the journal,
//!   recovery and the background tasks, the client listener and the admin listener. `dtc run`
//!   and [`demo`] both go through [`app::run`].
//! - [`admin`] serves health, readiness, `/metrics`, the transactions API and the status page;
//!   [`ops`] (`dtc status`, `dtc txn`) is its client; [`verify`] is anti-entropy (`dtc verify`,
//!   `POST /verify`, the background check) and the backfill of joining nodes
//!   ([`verify::backfill`]).
//! - [`proxy`] is the client listener: a **read** goes to one healthy node that is not joining,
//!   picked by [`upstream::NodeSet::pick`], streamed back; a **write** is buffered and handed to
//!   [`saga::Coordinator::execute`]. [`answer`] turns a write's outcome into the client's status
//!   and problem document. A read of a resource whose id the nodes assign goes to the node
//!   under that node's own id, its answer shown with the canonical one (the id map,
//!   [`journal::idmap`], [`config::ids`]).
//! - [`saga`] runs one write, a driver calling its steps in order (idempotency key, admission,
//!   preparation, send, judgement, conclusion, end): route ([`config::validate::Route`]) and key,
//!   the key's turn ([`saga::locks`]), fences, the journaled intent, the write to every node with
//!   retries ([`saga::attempt`], on [`retry`]), read-backs where answers are ambiguous
//!   ([`saga::readback`]), the judgement ([`txn::evidence`]), undos ([`saga::undo`]), the end;
//!   a create whose nodes assign the id journals each node's id with the canonical one, and
//!   every later request to the resource speaks each node's ids. A pipelined write (`pipeline`)
//!   journals its intent with its ticket and goes within the key's window ([`saga::locks`]).
//!   A repair is a write too: [`verify`] chooses it and hands it to
//!   [`saga::Coordinator::submit`].
//!   The same saga runs again at start ([`saga::redrive::recover_at_start`]: a key's writes in
//!   doubt one at a time, in journal order; keys at once), in the background
//!   ([`saga::redrive`]: failed transactions, the late-write check of rollbacks) and, with
//!   `[cluster]`, for a lost sidecar's transactions ([`saga::takeover`]) — all deciding with
//!   [`saga::recover::resolve`], the live path's judgement. [`saga::txns`] is the admin's view of
//!   the journal, with retry and resolve.
//! - Below the saga: [`journal`] only stores (the local log, or with `[cluster]` the PostgreSQL
//!   store shared by the fleet, [`journal::shared`], whose leases fence every node request);
//!   [`upstream`] holds the nodes (a connection pool each, over TLS for `https` nodes, health —
//!   down when unreachable, half-open trials — and probes, whether a node is joining); [`runtime`] the config generation in effect and the reload loop
//!   ([`runtime::reload`]); [`telemetry`] the metrics and alerts that the saga, reload and the
//!   admin record, and the W3C trace of each write ([`telemetry::trace`]: a span per node
//!   request, read-back and undo, exported over OTLP).
//! - At the bottom: [`config`] (the file, validated into settings, the TLS files it names
//!   checked; the watcher), [`retry`] (the
//!   backoff policy and the one retry loop), [`wire`] (the HTTP toolkit of every listener: the
//!   answer body, problem+json, connection timeouts, the accept-serve-drain loop), [`headers`],
//!   and [`txn`], the transaction vocabulary (states, reasons, node reports, undo plans,
//!   evidence), which imports nothing else of dtc.
//!
//! Beside the data path: [`k8s`] (`dtc inject`, the admission webhook; behind the `k8s` cargo
//! feature, on by default), [`node`] (the reference node the demo and the tests run), [`logging`]
//! (stderr through a batching writer thread). Neither `k8s` nor `node` imports the data path.
//!
//! # What is public and why
//!
//! dtc is a program, not a library: its only outside users are `src/main.rs` (it calls
//! [`cli::main`]) and the integration tests in `tests/`, which start dtc in-process and reach
//! into it the way an operator's tools cannot. So items are `pub(crate)` by default
//! (`#![warn(unreachable_pub)]`, denied in CI through clippy's `-D warnings`, keeps a `pub` from
//! slipping into a crate-private module), and a module is `pub` only because a test needs it:
//!
//! - [`app`], [`config`] (the config types, [`config::parse`], [`config::load_file`], the
//!   validation and advice, hot reload) and [`runtime`]: tests build a config and start dtc on
//!   port 0, reload it, and read what it runs on.
//! - [`node`] (the reference node and its named faults), [`upstream`] (node handles, name
//!   resolution): the nodes the tests break.
//! - [`saga`], [`txn`], [`journal`] (the store, its records, the log and its disk-fault switch, the
//!   shared store, the id map), [`retry`]: tests drive writes and recoveries and open, damage and
//!   read journals directly.
//! - [`verify`], [`admin`], [`k8s`]: anti-entropy, the admin listener and the sidecar injection,
//!   each tested through its own entry points.
//!
//! Inside these, a submodule no test names is `pub(crate)`. The rest — [`proxy`], [`answer`],
//! [`wire`], [`telemetry`], [`headers`], [`logging`], [`ops`], [`demo`], [`process`], [`exit`] —
//! is reached only through the modules above (a type a test sees through them, like
//! `admin::Metrics`, is re-exported there). Making something public is a change to this list.
//!
//! # The invariant
//!
//! **An undo never destroys what was there before.** dtc never runs an undo on a node unless it
//! knows the write changed that node; "may have applied" is not knowledge: when the journal
//! cannot tell, dtc reads the nodes before it acts, and when they cannot tell either, the
//! transaction ends `failed` (fenced, listed, alerted) rather than guessing. See [`saga`] and
//! [`txn::evidence`].
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod admin;
pub(crate) mod answer;
pub mod app;
pub mod cli;
pub mod config;
pub(crate) mod demo;
pub(crate) mod exit;
pub(crate) mod headers;
pub mod journal;
#[cfg(feature = "k8s")]
pub mod k8s;
pub(crate) mod logging;
pub mod node;
pub(crate) mod ops;
pub(crate) mod process;
pub(crate) mod proxy;
pub mod retry;
pub mod runtime;
pub mod saga;
pub(crate) mod telemetry;
pub mod txn;
pub mod upstream;
pub mod verify;
pub(crate) mod wire;
