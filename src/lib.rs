//! dtc: a replicating sidecar proxy — every write on all nodes or on none, reads from one
//! healthy node.
//!
//! # The map
//!
//! The path of one client request through the modules:
//!
//! 1. [`proxy::server`] accepts the connection (HTTP/1.1 or HTTP/2 prior knowledge), enforcing
//!    the header size and connection limits, on [`wire::serve()`], the accept-serve-drain loop
//!    every listener shares; [`wire::conn`] closes a connection that sends no request head
//!    within the header timeout, or sits idle, whatever its protocol.
//! 2. [`proxy::Proxy::handle`] loads the [`runtime`] snapshot (the config generation in effect)
//!    and sorts the request:
//!    - a **read** goes to one healthy node picked by [`upstream::NodeSet::pick`], streamed back;
//!      every node request, read or write, goes out on a connection from that node's
//!      [`upstream::pool`];
//!    - a **write** is buffered and handed to [`saga::Coordinator::execute`] on its own task.
//! 3. The saga ([`saga`]) matches a route ([`config::validate::Route`]), resolves the resource
//!    key, waits for earlier writes to that key ([`saga::locks`]), checks the [`journal`]'s fences,
//!    journals its intent, sends the write to every node with retries ([`saga::attempt`]),
//!    reads the resource back where an answer is ambiguous ([`saga::readback`]), judges
//!    ([`saga::evidence`]), and undoes partial writes ([`saga::undo`]); the end state is journaled
//!    before the answer ([`answer`] turns it into a status and a [`wire::problem`] document).
//!    With `[cluster]` the journal's records go to a PostgreSQL store shared by the fleet
//!    ([`journal::shared`]): the intent takes the key's lease for every sidecar at once, and each
//!    node request waits for the lease to outlive it.
//! 4. At start, [`saga::redrive::recover`] decides in-doubt transactions (with `[cluster]`,
//!    [`saga::takeover`] does, for the transactions of expired leases); in the background,
//!    [`saga::redrive`] re-drives failed ones and checks rollbacks — all with
//!    [`saga::recover::resolve`], the same judgement as the live path; [`upstream::health`]
//!    probes nodes; [`runtime::reload`] swaps in edited configs; [`verify::task`] (when
//!    `[verify] interval` is set) reads recently written keys on every node and reports keys on
//!    which they differ — the same check `dtc verify` runs ([`verify`]).
//!
//! Every listener — the proxy, the admin API, the webhook, the reference node — is built on
//! [`wire`], the HTTP toolkit below them all (answer body, problem+json, connection timeouts,
//! the serve loop); it imports nothing of dtc.
//!
//! # The invariant
//!
//! **An undo never destroys what was there before.** dtc never runs an undo on a node unless it
//! knows the write changed that node; "may have applied" is not knowledge: when the journal
//! cannot tell, dtc reads the nodes before it acts, and when they cannot tell either, the
//! transaction ends `failed` (fenced, listed, alerted) rather than guessing. See [`saga`].
//!
//! Around it: [`admin`] (health, readiness, metrics, transactions API, the status page, alerts), [`k8s`]
//! (`dtc inject`, the admission webhook; behind the `k8s` cargo feature, on by default: without
//! it dtc builds without the Kubernetes and TLS crates), [`node`] (the reference node the demo
//! and tests run), [`app`] (wiring), [`cli`] (the command line), [`exit`] (every command's exit
//! codes), [`ops`] (`dtc status` and `dtc txn`, clients of the admin API), [`logging`] (stderr
//! through a batching writer thread), [`demo`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod answer;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod exit;
pub mod headers;
pub mod journal;
#[cfg(feature = "k8s")]
pub mod k8s;
pub mod logging;
pub mod node;
pub mod ops;
pub mod process;
pub mod proxy;
pub mod retry;
pub mod runtime;
pub mod saga;
pub mod telemetry;
pub mod txn;
pub mod upstream;
pub mod verify;
pub mod wire;
