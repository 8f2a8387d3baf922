//! Pipelined writes (`pipeline`): several writers queue on one resource, so a write goes to the
//! nodes while the ends of up to three writes before it are not yet durable.
//!
//! - The real binary is SIGKILLed while they do, several times; a last dtc recovers the journal.
//!   Then every acknowledged write is on every node, no write is left in doubt, every write
//!   recovery calls never sent is on no node, and the nodes agree on every write that is not
//!   listed `failed`.
//! - The shipped group routes (read-back and undo) pipelined, writers alternating create and
//!   delete of the same groups: recovery judges a key's writes in journal order, one at a
//!   time, and undoes only where a write went.
//! - A SIGKILL keeps what the log wrote and loses what still waited in its writer's queue, and
//!   on a fast disk little waits there. So the journal's files are also copied while writes run
//!   on a slow disk (syncs stalled): each copy is what a SIGKILL at that moment leaves, with
//!   many ends still queued. Recovery of each copy must find every write answered before the
//!   copy succeeded, and call never sent only writes no node held when the copy began.
//! - A second crash, during the recovery of such a copy (at its first undos, or just after one
//!   applied): the recovery of what that crash left keeps the same promises and undoes nothing
//!   twice.

mod support;

use dtc::config::Config;
use dtc::journal::record::Entry;
use dtc::saga::TxnState;
use dtc::txn::Reason;
use http::Method;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::process;
use support::*;

const SEEDS: [u64; 2] = [21, 22];
const WRITERS: u64 = 8;
const CRASHES: usize = 3;
/// Writes between two crashes, over all writers.
const WRITES_PER_CRASH: usize = 80;

/// Creates keyed by a batch, not by the group: every writer queues on the batch's one key.
const ROUTES: &str = r#"
[[routes]]
method = "POST"
path = "/v1/group/"
key = "batch/{body:/batch}"
pipeline = true
"#;

/// What a client saw of one create.
#[derive(Debug)]
enum Seen {
    /// The answer's status and `x-dtc-state`.
    Answered(u16, String),
    /// The connection failed before dtc took the request.
    NotSent,
    /// dtc died with the request in flight.
    NoAnswer,
}

/// One writer: creates of fresh groups, one send each, on the key of the running dtc's batch
/// (its port: each restart starts a new batch, so a crash's `failed` writes fence only theirs).
async fn writer(w: u64, seed: u64, writer: process::Writer) -> Vec<(String, Seen)> {
    let process::Writer {
        mut url,
        done,
        stop,
    } = writer;
    let mut seen = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = format!("s{seed}w{w}n{n}");
        let base = url.borrow_and_update().clone();
        let batch = base.rsplit(':').next().unwrap_or_default().to_string();
        let body = format!(r#"{{"groupId": "{id}", "batch": "{batch}"}}"#);
        let r = try_send(
            Method::POST,
            &format!("{base}/v1/group/"),
            Some(&body),
            &[("idempotency-key", &id)],
        )
        .await;
        let s = match &r {
            Ok(a) => Seen::Answered(a.status().as_u16(), a.state().to_string()),
            Err(e) if e.is_connect() => Seen::NotSent,
            Err(_) => Seen::NoAnswer,
        };
        seen.push((id, s));
        done.fetch_add(1, Ordering::SeqCst);
        if r.is_err() && !stop.load(Ordering::SeqCst) {
            // dtc is down: wait for the next one (or the end of the run).
            let _ = tokio::time::timeout(DEADLINE, url.changed()).await;
        }
    }
    seen
}

/// The config of these runs: pipelined creates on `nodes`, journal in `dir`, every finished
/// transaction kept for the checks.
fn pipelined_config(nodes: &[dtc::node::RefNode], dir: &std::path::Path) -> Config {
    let mut cfg = test_config(nodes);
    cfg.routes = toml::from_str::<Config>(ROUTES).unwrap().routes;
    cfg.health.unhealthy_threshold = 1000;
    cfg.health.consecutive_unreachable = 1000;
    cfg.journal.dir = dir.display().to_string();
    cfg.journal.keep_finished = 100_000;
    cfg
}

/// Each transaction of a journal by the client's idempotency key (the group it creates).
fn by_group(journal: &dtc::journal::Journal) -> BTreeMap<String, Entry> {
    journal
        .list(None, 1_000_000)
        .into_iter()
        .filter_map(|e| Some((e.begin.idem.as_ref()?.key.clone(), e)))
        .collect()
}

async fn crash_run(seed: u64) -> (String, usize) {
    let nodes = three_nodes().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = pipelined_config(&nodes, &dir.path().join("journal"));
    let crashes = process::Crashes {
        count: CRASHES,
        every: WRITES_PER_CRASH,
        at_once: false,
    };
    let (seen, writes) = process::crash_loop(&cfg, dir.path(), crashes, WRITERS, |w, wr| {
        writer(w, seed, wr)
    })
    .await;
    let seen: BTreeMap<String, Seen> = seen.into_iter().flatten().collect();
    // A last dtc on the same journal recovers what the last crash left in doubt.
    let last = start_proxy(cfg).await;
    let journal = last.app.journal().unwrap().clone();
    wait_until("no write is left in doubt", || journal.counts().0 == 0).await;
    let entries = by_group(&journal);
    let held = |id: &str| -> Vec<bool> { nodes.iter().map(|n| n.groups().contains(id)).collect() };
    let mut never_sent = 0;
    let mut failed = 0;
    for (id, s) in &seen {
        let h = held(id);
        let entry = entries.get(id);
        let state = entry.map(|e| e.state);
        if let Seen::Answered(status, st) = s
            && (200..300).contains(status)
        {
            assert_eq!(
                h, [true; 3],
                "seed {seed}: {id} was acknowledged ({st}) but the nodes hold {h:?}"
            );
            assert_eq!(state, Some(TxnState::Succeeded), "seed {seed}: {id}");
        }
        let Some(e) = entry else {
            // dtc never took it: on no node.
            assert_eq!(
                h, [false; 3],
                "seed {seed}: {id} has no transaction ({s:?})"
            );
            continue;
        };
        assert_ne!(
            e.state,
            TxnState::InDoubt,
            "seed {seed}: {id} left in doubt"
        );
        if matches!(e.reason, Some(Reason::NeverSent(_))) {
            never_sent += 1;
            assert_eq!(
                h, [false; 3],
                "seed {seed}: {id} was called never sent ({:?}) but the nodes hold {h:?} ({s:?})",
                e.reason
            );
        }
        match e.state {
            TxnState::Succeeded => assert_eq!(h, [true; 3], "seed {seed}: {id} {e:?}"),
            TxnState::ToBeRetried | TxnState::Rejected | TxnState::RolledBack => {
                assert_eq!(h, [false; 3], "seed {seed}: {id} {e:?}")
            }
            // Listed for an operator, with the nodes it could not tell: not silent.
            TxnState::Failed => failed += 1,
            TxnState::InDoubt => unreachable!(),
        }
    }
    let unanswered = seen
        .values()
        .filter(|s| matches!(s, Seen::NoAnswer))
        .count();
    assert!(
        unanswered > 0,
        "seed {seed}: a crash caught no write in flight"
    );
    (
        format!(
            "seed {seed}: {writes} writes, {unanswered} unanswered at {CRASHES} SIGKILLs, {never_sent} recovered as never sent, {failed} listed failed"
        ),
        never_sent,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_writers_queued_on_one_key_loses_no_acknowledged_write_and_decides_every_one_in_doubt()
 {
    let mut never_sent = 0;
    for seed in SEEDS {
        let (line, n) = crash_run(seed).await;
        eprintln!("pipelined writes with crashes: {line}");
        never_sent += n;
    }
    assert!(
        never_sent > 0,
        "no crash left a queued write beyond the window: the never-sent rule was not exercised"
    );
}

/// What the copy test's writers share: the groups acknowledged so far, the writes done, stop.
#[derive(Default)]
struct Shared {
    acked: Mutex<BTreeSet<String>>,
    done: AtomicUsize,
    stop: AtomicBool,
}

async fn copy_writer(w: u64, url: String, shared: Arc<Shared>) {
    let mut n = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        n += 1;
        let id = format!("w{w}n{n}");
        let body = format!(r#"{{"groupId": "{id}", "batch": "1"}}"#);
        let a = send(Method::POST, &url, Some(&body), &[("idempotency-key", &id)]).await;
        if a.status().is_success() {
            shared.acked.lock().unwrap().insert(id);
        }
        shared.done.fetch_add(1, Ordering::SeqCst);
    }
}

/// Copies the journal directory's files as they are now (a torn last record is what a crash
/// mid-write leaves too).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
}

/// A pipelined dtc on `config`, on a busy disk (syncs stalled 20 ms: ends queue, unwritten,
/// while pipelined writes go to the nodes), with `writers` tasks running `writer`; `copies`
/// times, once 40 more writes are done, `copy(c, shared)` takes a copy. Answers come as a sync
/// ends, so each copy is taken at a different moment of the next sync (a moment to sample, not
/// something waited for). Stops the writers, clears the faults and drops the dtc before it
/// returns the copies.
async fn copies_on_a_slow_disk<W, T>(
    config: Config,
    writers: u64,
    writer: impl Fn(u64, String, Arc<Shared>) -> W,
    copies: usize,
    mut copy: impl AsyncFnMut(usize, &Shared) -> T,
) -> Vec<T>
where
    W: std::future::Future<Output = ()> + Send + 'static,
{
    let dtc = start_proxy(config).await;
    let faults = dtc.app.journal().unwrap().log().unwrap().faults().clone();
    faults.slow_syncs(std::time::Duration::from_millis(20));
    let shared = Arc::new(Shared::default());
    let tasks: Vec<_> = (0..writers)
        .map(|w| tokio::spawn(writer(w, dtc.at("/v1/group/"), shared.clone())))
        .collect();
    let mut out = Vec::new();
    for c in 1..=copies {
        let target = c * 40;
        wait_until("writes go on", || {
            shared.done.load(Ordering::SeqCst) >= target
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(3 * c as u64)).await;
        out.push(copy(c, &shared).await);
    }
    shared.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    faults.clear();
    drop(dtc);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journals_copied_mid_run_on_a_slow_disk_recover_with_never_sent_writes_on_no_node() {
    const COPIES: usize = 6;
    // Enough that writes queue behind the window while the disk syncs.
    const COPY_WRITERS: u64 = 24;
    let nodes = three_nodes().await;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("journal");
    let config = pipelined_config(&nodes, &live);
    let copies = copies_on_a_slow_disk(
        config,
        COPY_WRITERS,
        copy_writer,
        COPIES,
        async |c, shared| {
            // What the nodes held and the clients heard before the copy began.
            let acked = shared.acked.lock().unwrap().clone();
            let held: Vec<BTreeSet<String>> = nodes.iter().map(|n| n.groups()).collect();
            let to = dir.path().join(format!("copy{c}"));
            copy_dir(&live, &to);
            (to, acked, held)
        },
    )
    .await;
    let mut never_sent = 0;
    for (to, acked, held) in copies {
        let copy = start_proxy(pipelined_config(&nodes, &to)).await;
        let journal = copy.app.journal().unwrap().clone();
        wait_until("no write is left in doubt", || journal.counts().0 == 0).await;
        let entries = by_group(&journal);
        for id in &acked {
            let state = entries.get(id).map(|e| e.state);
            assert_eq!(
                state,
                Some(TxnState::Succeeded),
                "{}: {id} was acknowledged",
                to.display()
            );
        }
        for (id, e) in &entries {
            if !matches!(e.reason, Some(Reason::NeverSent(_))) {
                continue;
            }
            never_sent += 1;
            let on: Vec<bool> = held.iter().map(|h| h.contains(id)).collect();
            assert_eq!(
                on,
                [false; 3],
                "{}: recovery called {id} never sent ({:?}), yet the nodes held it before the copy",
                to.display(),
                e.reason
            );
        }
    }
    eprintln!("{COPIES} copies of a running journal: {never_sent} writes recovered as never sent");
    assert!(
        never_sent > 0,
        "no copy caught a queued write beyond the window: the never-sent rule was not exercised"
    );
}

/// The fields of each problem `text` has.
fn problems(text: &str) -> Vec<String> {
    let cfg: Config = toml::from_str(text).unwrap();
    match dtc::config::validate::validate(cfg, text) {
        Ok(_) => Vec::new(),
        Err(p) => p
            .into_iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect(),
    }
}

const NODE: &str = "[[nodes]]\nname = \"a\"\nurl = \"http://127.0.0.1:5000\"\n";

#[test]
fn pipeline_is_allowed_with_read_back_and_undo_and_refused_with_a_snapshot_an_id_or_a_cluster() {
    assert!(problems(&format!("{NODE}{ROUTES}")).is_empty());
    let route = |extra: &str| {
        format!(
            "{NODE}[[routes]]\nmethod = \"PUT\"\npath = \"/items/{{id}}\"\npipeline = true\n{extra}"
        )
    };
    // A read-back and an undo are judged in journal order: allowed.
    let judged = "verify = { path = \"/items/{id}\", prior = [404] }\ncompensation = { method = \"DELETE\", path = \"/items/{id}\" }\n";
    assert_eq!(problems(&route(judged)), Vec::<String>::new());
    let shipped =
        include_str!("../config/dtc.toml").replace("verify = {", "pipeline = true\nverify = {");
    assert_eq!(shipped.matches("pipeline = true").count(), 2);
    assert_eq!(problems(&shipped), Vec::<String>::new());
    let p = problems(&route(
        "snapshot = { method = \"GET\" }\ncompensation = { method = \"PUT\", path = \"/items/{id}\", body = \"snapshot\" }\n",
    ));
    assert!(
        p.iter()
            .any(|p| p.starts_with("routes[0].pipeline") && p.contains("`snapshot`")),
        "snapshot: {p:?}"
    );
    let ids = format!(
        "{NODE}[[routes]]\nmethod = \"POST\"\npath = \"/items\"\npipeline = true\nid = {{ path = \"/items/{{id}}\", body = \"/id\" }}\n"
    );
    let p = problems(&ids);
    assert!(
        p.iter()
            .any(|p| p.starts_with("routes[0].pipeline") && p.contains("`id`")),
        "id: {p:?}"
    );
    let cluster = "[cluster]\ndatabase_url = \"postgresql://dtc@db/dtc\"\nlease = \"10s\"\n";
    let p = problems(&format!(
        "{NODE}[writes]\npipeline_unmatched = true\n{cluster}{ROUTES}"
    ));
    assert!(
        p.iter().any(|p| p.starts_with("writes.pipeline_unmatched")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|p| p.starts_with("routes[0].pipeline")),
        "{p:?}"
    );
}

#[tokio::test]
async fn entries_keep_their_journal_order_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default().journal;
    cfg.dir = dir.path().display().to_string();
    let begin = |txn: &str| dtc::journal::record::Begin {
        txn: txn.into(),
        key: "k".into(),
        method: Method::POST,
        path: "/v1/group/".into(),
        early: Some(4),
        ..Default::default()
    };
    // Names in another order than the log's, so neither name nor a map's order can pass for it.
    let order = ["t3", "t1", "t4", "t2"];
    {
        let (journal, _) = dtc::journal::Journal::open(&cfg).unwrap();
        for t in order {
            journal.begin(begin(t)).await.unwrap();
        }
        journal
            .end("t1", TxnState::Succeeded, None, vec![], None)
            .await
            .unwrap();
    }
    let (journal, _) = dtc::journal::Journal::open(&cfg).unwrap();
    let mut open = journal.in_doubt_to_recover();
    open.sort_by_key(|e| e.seq);
    let txns: Vec<&str> = open.iter().map(|e| e.begin.txn.as_str()).collect();
    assert_eq!(txns, ["t3", "t4", "t2"]);
    assert!(open.iter().all(|e| e.begin.early == Some(4)));
}

#[tokio::test]
async fn a_compaction_keeps_an_intent_still_waiting_for_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default().journal;
    cfg.dir = dir.path().display().to_string();
    cfg.durability = dtc::config::DurabilityMode::None;
    cfg.keep_finished = 10;
    let begin = |txn: &str, key: &str| dtc::journal::record::Begin {
        txn: txn.into(),
        key: key.into(),
        method: Method::POST,
        path: "/v1/group/".into(),
        ..Default::default()
    };
    {
        let (journal, _) = dtc::journal::Journal::open(&cfg).unwrap();
        // A pipelined write's intent: enqueued, then not looked at until its turn.
        let waiting = dtc::journal::record::Begin {
            early: Some(4),
            ..begin("queued", "k")
        };
        let _unpolled = journal.begin(waiting);
        // Enough other records for a compaction (one runs every 8192 appends).
        for i in 0..4200 {
            let txn = format!("t{i}");
            journal.begin(begin(&txn, &txn)).await.unwrap();
            journal
                .end(&txn, TxnState::Succeeded, None, vec![], None)
                .await
                .unwrap();
        }
        journal.flush().await.unwrap();
    }
    let (journal, _) = dtc::journal::Journal::open(&cfg).unwrap();
    assert!(journal.size_bytes() < 1_000_000, "the log was compacted");
    let open = journal.in_doubt_to_recover();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].begin.txn, "queued");
    assert_eq!(open[0].begin.early, Some(4));
}

/// The shipped config's routes (`config/dtc.toml`: group create and delete, each with its
/// read-back and its undo), every one pipelined.
fn shipped_routes_pipelined() -> Vec<dtc::config::RouteConfig> {
    let shipped: Config = toml::from_str(include_str!("../config/dtc.toml")).unwrap();
    assert!(
        shipped
            .routes
            .iter()
            .all(|r| r.verify.is_some() && r.compensation.is_some()),
        "the shipped routes read back and undo"
    );
    shipped
        .routes
        .into_iter()
        .map(|r| dtc::config::RouteConfig {
            pipeline: true,
            ..r
        })
        .collect()
}

fn shipped_pipelined_config(nodes: &[dtc::node::RefNode], dir: &std::path::Path) -> Config {
    let mut cfg = pipelined_config(nodes, dir);
    cfg.routes = shipped_routes_pipelined();
    cfg
}

/// Groups the alternating writers share: each group's key has `PER_GROUP` writers queued on it.
const GROUPS: u64 = 2;
const PER_GROUP: u64 = 12;

/// One writer on group `w / PER_GROUP`: a create, a delete, a create... of the same group (the
/// odd writers start with a delete), one send each, each write named by its idempotency key.
async fn alternating_writer(w: u64, url: String, shared: Arc<Shared>) {
    let group = format!("g{}", w / PER_GROUP);
    let body = format!(r#"{{"groupId": "{group}"}}"#);
    let mut n = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        n += 1;
        let id = format!("w{w}n{n}");
        let method = match (w + n) % 2 {
            0 => Method::POST,
            _ => Method::DELETE,
        };
        let a = send(method, &url, Some(&body), &[("idempotency-key", &id)]).await;
        if a.status().is_success() {
            shared.acked.lock().unwrap().insert(id);
        }
        shared.done.fetch_add(1, Ordering::SeqCst);
    }
}

/// What the nodes were at a copy: the groups each held, and the transactions whose write each
/// had received (applied or still held unanswered).
#[derive(Clone)]
struct NodesAt {
    groups: Vec<BTreeSet<String>>,
    received: Vec<BTreeSet<String>>,
}

/// The transactions of the writes (not undos: those carry another method, or come later) each
/// node received from `from` on, with their method.
fn writes_received(nodes: &[dtc::node::RefNode], from: &[usize]) -> Vec<Vec<(String, Method)>> {
    nodes
        .iter()
        .zip(from)
        .map(|(n, &from)| {
            n.requests()
                .into_iter()
                .skip(from)
                .filter(|r| r.method == Method::POST || r.method == Method::DELETE)
                .filter_map(|r| {
                    let txn = r.headers.get("x-dtc-transaction-id")?.to_str().ok()?;
                    Some((txn.to_string(), r.method))
                })
                .collect()
        })
        .collect()
}

/// Puts each node back into the state it held at a copy (directly, not through dtc).
async fn restore(nodes: &[dtc::node::RefNode], at: &NodesAt) {
    for (n, want) in nodes.iter().zip(&at.groups) {
        let now = n.groups();
        for g in now.difference(want) {
            let body = format!(r#"{{"groupId": "{g}"}}"#);
            let a = send(
                Method::DELETE,
                &format!("{}/v1/group/", n.url()),
                Some(&body),
                &[],
            )
            .await;
            assert_eq!(a.status(), 200, "{}: delete {g}", n.name());
        }
        for g in want.difference(&now) {
            let body = format!(r#"{{"groupId": "{g}"}}"#);
            let a = send(
                Method::POST,
                &format!("{}/v1/group/", n.url()),
                Some(&body),
                &[],
            )
            .await;
            assert_eq!(a.status(), 201, "{}: create {g}", n.name());
        }
        assert_eq!(&n.groups(), want, "{}", n.name());
    }
}

/// Whether the nodes hold the group, as a write leaves it once it took effect.
fn target(e: &Entry) -> bool {
    e.begin.method == Method::POST
}

/// A journal copied mid-run: where, the writes acknowledged before it, the nodes at it.
struct Copied {
    dir: std::path::PathBuf,
    acked: BTreeSet<String>,
    at: NodesAt,
}

/// The shipped routes pipelined (read-back and undo), writers alternating create and delete of
/// the same groups, on nodes of different speeds and a slow disk: the journal is copied
/// `copies` times mid-run, each time with the nodes frozen and their state recorded. Returns
/// once the run ended (the live dtc dropped, the nodes' delays and faults cleared).
async fn run_and_copy(
    nodes: &[dtc::node::RefNode],
    dir: &std::path::Path,
    copies: usize,
) -> Vec<Copied> {
    let live = dir.join("journal");
    let config = shipped_pipelined_config(nodes, &live);
    // Nodes of different speeds: a copy catches a write applied on some nodes and not others.
    for (n, ms) in nodes.iter().zip([0, 1, 30]) {
        n.set_delay(std::time::Duration::from_millis(ms));
    }
    let writers = GROUPS * PER_GROUP;
    let out = copies_on_a_slow_disk(
        config,
        writers,
        alternating_writer,
        copies,
        async |c, shared| {
            // The nodes stop applying writes while the copy is taken (later writes wait unapplied,
            // as a crash's would be lost), so their state matches what the copy's records say.
            for n in nodes {
                n.hold_next(1_000_000);
            }
            let mut groups: Vec<BTreeSet<String>> = nodes.iter().map(|n| n.groups()).collect();
            wait_until("no write is applying", || {
                let again: Vec<BTreeSet<String>> = nodes.iter().map(|n| n.groups()).collect();
                std::mem::replace(&mut groups, again) == groups
            })
            .await;
            let lens: Vec<usize> = nodes.iter().map(|_| 0).collect();
            let received = writes_received(nodes, &lens)
                .into_iter()
                .map(|w| w.into_iter().map(|(t, _)| t).collect())
                .collect();
            let acked = shared.acked.lock().unwrap().clone();
            let to = dir.join(format!("copy{c}"));
            copy_dir(&live, &to);
            for n in nodes {
                n.clear_faults();
                n.release_held();
            }
            Copied {
                dir: to,
                acked,
                at: NodesAt { groups, received },
            }
        },
    )
    .await;
    for n in nodes {
        n.set_delay(std::time::Duration::ZERO);
    }
    out
}

/// How many writes the journal in `dir` has in doubt (read without recovering them).
fn in_doubt_in(dir: &std::path::Path) -> usize {
    let (journal, _) = dtc::journal::Journal::open(&{
        let mut j = Config::default().journal;
        j.dir = dir.display().to_string();
        j.durability = dtc::config::DurabilityMode::None;
        j
    })
    .unwrap();
    journal.counts().0
}

/// What the recoveries of copies came to, over all copies.
#[derive(Default)]
struct Tally {
    in_doubt: usize,
    never_sent: usize,
    undos: usize,
    failed: usize,
}

/// The checks on a copy recovered against the nodes put back as `at` says (the nodes' request
/// logs from `from` on are what recovery sent): every write in `acked` is `succeeded`; none is
/// left in doubt; no write called never sent had reached a node; every request recovery sent
/// is an undo, to a node that had received the write it undoes; and per group, unless a write
/// is listed `failed`, the three nodes agree and hold what the decided writes, replayed in
/// journal order, leave.
async fn check_recovered(
    name: &str,
    nodes: &[dtc::node::RefNode],
    journal: &dtc::journal::Journal,
    acked: &BTreeSet<String>,
    at: &NodesAt,
    from: &[usize],
    tally: &mut Tally,
) {
    wait_until("no write is left in doubt", || journal.counts().0 == 0).await;
    let entries = by_group(journal);
    for id in acked {
        let state = entries.get(id).map(|e| e.state);
        assert_eq!(
            state,
            Some(TxnState::Succeeded),
            "{name}: {id} was acknowledged"
        );
    }
    let txns: BTreeMap<&str, &Entry> = entries
        .values()
        .map(|e| (e.begin.txn.as_str(), e))
        .collect();
    for e in entries.values() {
        if !matches!(e.reason, Some(Reason::NeverSent(_))) {
            continue;
        }
        tally.never_sent += 1;
        let on: Vec<bool> = at
            .received
            .iter()
            .map(|r| r.contains(&e.begin.txn))
            .collect();
        assert_eq!(
            on, [false; 3],
            "{name}: recovery called {} never sent ({:?}), yet the nodes had received it before the copy",
            e.begin.txn, e.reason
        );
    }
    // An undo only where the node had received the write it undoes.
    for (i, writes) in writes_received(nodes, from).into_iter().enumerate() {
        for (txn, method) in writes {
            tally.undos += 1;
            let e = txns.get(txn.as_str()).unwrap_or_else(|| {
                panic!("{name}: node {i} got {method} {txn} during recovery, of no transaction")
            });
            assert_ne!(e.begin.method, method, "{name}: recovery re-sent {txn}");
            assert!(
                at.received[i].contains(&txn),
                "{name}: recovery undid {txn} ({} {}, now {:?}: {:?}) on node {i}, which never received it",
                e.begin.method,
                e.begin.key,
                e.state,
                e.reason
            );
        }
    }
    // Per group: the nodes agree, and hold what the decided writes, replayed in journal
    // order, leave.
    let mut by_key: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries.values() {
        by_key.entry(e.begin.key.as_str()).or_default().push(e);
    }
    for (key, mut list) in by_key {
        list.sort_by_key(|e| e.seq);
        let group = key.trim_start_matches("group/");
        let held: Vec<bool> = nodes.iter().map(|n| n.groups().contains(group)).collect();
        if list.iter().any(|e| e.state == TxnState::Failed) {
            // Listed for an operator and fenced: not silent.
            tally.failed += list.iter().filter(|e| e.state == TxnState::Failed).count();
            continue;
        }
        assert!(
            held.iter().all(|&h| h == held[0]),
            "{name}: the nodes disagree on {group}: {held:?}"
        );
        let mut replay = false;
        for e in &list {
            let took = matches!(
                (e.state, &e.reason),
                (TxnState::Succeeded, _) | (TxnState::Rejected, Some(Reason::TargetStateHolds))
            );
            if took {
                replay = target(e);
            }
        }
        let story: Vec<String> = list
            .iter()
            .map(|e| format!("{} {} {:?}", e.begin.txn, e.begin.method, e.state))
            .collect();
        assert_eq!(
            held[0], replay,
            "{name}: {group} is {} on the nodes, but its writes' ends say {}: {story:?}",
            held[0], replay
        );
    }
}

/// The shipped routes pipelined (read-back and undo), writers alternating create and delete
/// of the same groups, on nodes of different speeds and a slow disk; the journal copied six
/// times mid-run with the nodes' state at that moment. Each copy is recovered by a fresh dtc
/// against the nodes put back as they were. Then: every write acknowledged before the copy is
/// `succeeded`; none is left in doubt; no write called never sent had reached a node; recovery
/// undid a write only on nodes that had received it (judged out of journal order, a later
/// write's undo lands where it never went); and per group, unless a write is listed `failed`,
/// the three nodes agree and hold what the decided writes, replayed in journal order, leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_group_routes_pipelined_recover_in_journal_order_from_journals_copied_mid_run() {
    const COPIES: usize = 6;
    let nodes = three_nodes().await;
    let dir = tempfile::tempdir().unwrap();
    let copies = run_and_copy(&nodes, dir.path(), COPIES).await;
    let mut tally = Tally::default();
    for Copied { dir: to, acked, at } in copies {
        let name = to.display().to_string();
        // Each copy is recovered against the nodes as they were when it was taken.
        restore(&nodes, &at).await;
        let from: Vec<usize> = nodes.iter().map(|n| n.requests().len()).collect();
        tally.in_doubt += in_doubt_in(&to);
        let copy = start_proxy(shipped_pipelined_config(&nodes, &to)).await;
        let journal = copy.app.journal().unwrap().clone();
        check_recovered(&name, &nodes, &journal, &acked, &at, &from, &mut tally).await;
    }
    let Tally {
        in_doubt,
        never_sent,
        undos,
        failed,
    } = tally;
    eprintln!(
        "{COPIES} copies with alternating create/delete on {GROUPS} groups: {in_doubt} in doubt, {never_sent} recovered as never sent, {undos} undos, {failed} listed failed"
    );
    assert!(
        never_sent > 0,
        "no copy caught a queued write beyond the window: the never-sent rule was not exercised"
    );
    assert!(in_doubt > COPIES, "the copies caught few writes in doubt");
    assert!(
        undos > 0,
        "no copy caught a write applied on some nodes only: no undo was judged"
    );
}

/// The groups each node holds once the writes it received from `from` on (undos, held) are
/// applied to `groups`: a delete takes its group away, a create adds it.
fn with_applied(
    nodes: &[dtc::node::RefNode],
    groups: &[BTreeSet<String>],
    from: &[usize],
) -> Vec<BTreeSet<String>> {
    nodes
        .iter()
        .zip(groups)
        .zip(from)
        .map(|((n, groups), &from)| {
            let mut groups = groups.clone();
            for r in n.requests().into_iter().skip(from) {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                let Some(g) = body.get("groupId").and_then(|g| g.as_str()) else {
                    continue;
                };
                if r.method == Method::DELETE {
                    groups.remove(g);
                } else if r.method == Method::POST {
                    groups.insert(g.to_string());
                }
            }
            groups
        })
        .collect()
}

/// A second crash, during recovery. Each journal copied mid-run (as in the test above) is
/// recovered by a fresh dtc with the nodes' writes held: the first undos recovery sends wait,
/// unanswered, on their nodes. There that dtc dies (its recovery dropped), and its journal is
/// copied again. In turn, the held undos are then dropped unapplied; or put on their nodes (the
/// crash came after they reached them, before their answers); or released first, and the crash
/// comes as soon as one applied (its answer and decision racing to the journal). A fresh dtc
/// recovers the second copy against the nodes in that state. Then the checks of one crash hold
/// (the writes acknowledged before the first copy `succeeded`, none left in doubt, undos only
/// where the write went, the nodes agree and hold what the decided writes replayed in journal
/// order leave), and no undo that reached its node before the crash is sent there again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_crash_during_recovery_of_pipelined_writes_loses_nothing_and_undoes_nothing_twice()
{
    const COPIES: usize = 12;
    let nodes = three_nodes().await;
    let dir = tempfile::tempdir().unwrap();
    let copies = run_and_copy(&nodes, dir.path(), COPIES).await;
    let mut tally = Tally::default();
    let (mut interrupted, mut applied, mut decided) = (0, 0, 0);
    for (c, Copied { dir: to, acked, at }) in copies.into_iter().enumerate() {
        restore(&nodes, &at).await;
        let in_doubt = in_doubt_in(&to);
        tally.in_doubt += in_doubt;
        // The first recovery: every write it sends (an undo) waits on its node.
        for n in &nodes {
            n.hold_next(1_000_000);
        }
        let from: Vec<usize> = nodes.iter().map(|n| n.requests().len()).collect();
        let first = tokio::spawn(start_proxy(shipped_pipelined_config(&nodes, &to)));
        wait_until("recovery sends an undo, or ends", || {
            first.is_finished() || nodes.iter().any(|n| n.held_count() > 0)
        })
        .await;
        if first.is_finished() && nodes.iter().all(|n| n.held_count() == 0) {
            // Recovery ended with nothing to undo: no crash to take during it.
            drop(first.await.unwrap());
            for n in &nodes {
                n.clear_faults();
            }
            continue;
        }
        // Where the crash comes, in turn: at the first undos, which are then lost; at the
        // first undos, which reached their nodes (the answers lost); as soon as the first undo
        // is applied once released (its answer and decision on their way to the journal).
        let mode = interrupted % 3;
        interrupted += 1;
        let apply = mode == 1;
        if mode == 2 {
            for n in &nodes {
                n.release_held();
            }
            wait_until("an undo applies, or recovery ends", || {
                first.is_finished()
                    || nodes
                        .iter()
                        .map(|n| n.groups())
                        .ne(at.groups.iter().cloned())
            })
            .await;
        }
        // The crash: recovery stops where it is, its undos held unanswered. Then what its
        // journal holds is copied (with whatever its writer was still writing: a torn end).
        first.abort();
        if let Err(e) = first.await {
            assert!(e.is_cancelled(), "{e}");
        }
        let second = dir.path().join(format!("second{c}"));
        copy_dir(&to, &second);
        let name = second.display().to_string();
        decided += in_doubt - in_doubt_in(&second);
        // What recovery sent before the crash; the writes still held are dropped unapplied.
        let sent = writes_received(&nodes, &from);
        for n in &nodes {
            n.clear_faults();
            n.drop_held();
        }
        wait_until("the held undos are dropped", || {
            nodes.iter().all(|n| n.held_count() == 0)
        })
        .await;
        let mut now: Vec<BTreeSet<String>> = nodes.iter().map(|n| n.groups()).collect();
        if mode == 2 {
            // The undos released before the crash applied as they were answered.
            wait_until("no undo is applying", || {
                let again: Vec<BTreeSet<String>> = nodes.iter().map(|n| n.groups()).collect();
                std::mem::replace(&mut now, again) == now
            })
            .await;
        } else {
            assert_eq!(now, at.groups, "{name}: a held undo applied");
        }
        let at2 = NodesAt {
            // With `apply`, the crash came after the undos reached their nodes, before their
            // answers: the nodes hold what the undos left.
            groups: match apply {
                true => with_applied(&nodes, &at.groups, &from),
                false => now,
            },
            received: at.received.clone(),
        };
        if apply {
            applied += sent.iter().map(Vec::len).sum::<usize>();
            restore(&nodes, &at2).await;
        }
        let from2: Vec<usize> = nodes.iter().map(|n| n.requests().len()).collect();
        let copy = start_proxy(shipped_pipelined_config(&nodes, &second)).await;
        let journal = copy.app.journal().unwrap().clone();
        check_recovered(&name, &nodes, &journal, &acked, &at2, &from2, &mut tally).await;
        // An undo that reached its node is not sent there again.
        if apply {
            let again = writes_received(&nodes, &from2);
            for (i, (sent, again)) in sent.iter().zip(&again).enumerate() {
                for (txn, method) in again {
                    assert!(
                        !sent.contains(&(txn.clone(), method.clone())),
                        "{name}: {txn} was undone ({method}) on node {i} twice, across the crash"
                    );
                }
            }
        }
    }
    let Tally {
        in_doubt,
        never_sent,
        undos,
        failed,
    } = tally;
    eprintln!(
        "{COPIES} copies, {interrupted} recoveries interrupted at their first undo ({decided} writes decided and {applied} undos applied before the second crash): {in_doubt} in doubt, {never_sent} recovered as never sent, {undos} undos after the second crash, {failed} listed failed"
    );
    assert!(
        interrupted >= 3,
        "fewer than three copies had a write to undo: the crash during recovery was not exercised every way"
    );
}

/// Two `failed` writes on one resource, the older one undecidable (its read-back tells
/// nothing): the re-drive does not take the newer one up while the older is undecided (its
/// read would see what the older left), and does once a person resolved the older.
#[tokio::test]
async fn the_redrive_takes_a_resources_failed_writes_oldest_first() {
    let nodes = three_nodes().await;
    for n in &nodes {
        n.insert_group("g");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&nodes);
    cfg.journal.dir = dir.path().display().to_string();
    cfg.journal.redrive_initial = std::time::Duration::from_millis(10);
    cfg.journal.redrive_max = std::time::Duration::from_millis(40);
    let write = |txn: &str, target: u16| dtc::journal::record::Begin {
        txn: txn.into(),
        at_ms: dtc::journal::record::now_ms(),
        key: "group/g".into(),
        method: Method::POST,
        path: "/v1/group/".into(),
        nodes: nodes.iter().map(|n| (n.name().into(), n.url())).collect(),
        undo: vec![None; 3],
        verify: Some(dtc::journal::record::VerifyPlan {
            method: Method::GET,
            path: "/v1/group/g/".into(),
            prior: vec![404],
            target: vec![target],
            node_paths: Vec::new(),
        }),
        ..Default::default()
    };
    {
        let (journal, _) = dtc::journal::Journal::open(&cfg.journal).unwrap();
        // The older: its read-back's 200 is neither of its states, and no node answered it.
        journal.begin(write("older", 201)).await.unwrap();
        journal
            .end("older", TxnState::Failed, None, vec![], None)
            .await
            .unwrap();
        // The newer: every node reads back in its target state.
        journal.begin(write("newer", 200)).await.unwrap();
        journal
            .end("newer", TxnState::Failed, None, vec![], None)
            .await
            .unwrap();
    }
    let dtc = start_proxy(cfg).await;
    let journal = dtc.app.journal().unwrap().clone();
    let redrives = |txn: &str| journal.get(txn).map_or(0, |e| e.redrives);
    wait_until("the older write was re-driven three times", || {
        redrives("older") >= 3
    })
    .await;
    let newer = journal.get("newer").unwrap();
    assert_eq!(
        (newer.state, newer.redrives),
        (TxnState::Failed, 0),
        "re-driven while the older write of its resource was undecided"
    );
    assert_eq!(journal.get("older").unwrap().state, TxnState::Failed);
    journal
        .resolve("older", "checked by hand".into())
        .await
        .unwrap();
    wait_until("the newer write converged", || {
        journal.get("newer").map(|e| e.state) == Some(TxnState::Succeeded)
    })
    .await;
}

/// What a writer of the SIGKILL test on the shipped routes saw of each write: its idempotency
/// key and whether it was answered 2xx.
async fn alternating_crash_writer(
    w: u64,
    seed: u64,
    writer: process::Writer,
) -> Vec<(String, bool)> {
    let process::Writer {
        mut url,
        done,
        stop,
    } = writer;
    let body = format!(r#"{{"groupId": "s{seed}g{}"}}"#, w / (WRITERS / 2));
    let mut seen = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = format!("s{seed}w{w}n{n}");
        let method = match (w + n) % 2 {
            0 => Method::POST,
            _ => Method::DELETE,
        };
        let base = url.borrow_and_update().clone();
        let r = try_send(
            method,
            &format!("{base}/v1/group/"),
            Some(&body),
            &[("idempotency-key", &id)],
        )
        .await;
        seen.push((id, r.as_ref().is_ok_and(|a| a.status().is_success())));
        // A refusal to retry later (the key waits for a rollback's check) is not a write done:
        // a client waits as told before it tries again (a client's pace, not a synchronization).
        if let Ok(a) = &r
            && a.state() == "to_be_retried"
            && let Ok(secs) = a.header("retry-after").parse::<u64>()
        {
            let wait =
                std::time::Duration::from_secs(secs).min(std::time::Duration::from_millis(20));
            tokio::time::sleep(wait).await;
            continue;
        }
        done.fetch_add(1, Ordering::SeqCst);
        if r.is_err() && !stop.load(Ordering::SeqCst) {
            let _ = tokio::time::timeout(DEADLINE, url.changed()).await;
        }
    }
    seen
}

/// The real binary on the shipped routes pipelined, two groups with four writers each
/// alternating create and delete, nodes of different speeds, SIGKILLed three times; a last dtc
/// recovers. Then every 2xx is `succeeded`, nothing is in doubt, no write called never sent
/// reached a node, every undo reached a node after the write it undoes, and per group (unless
/// a write is listed `failed`) the nodes agree and hold what the decided writes leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_on_the_shipped_routes_pipelined_with_creates_and_deletes_of_one_group() {
    let mut recovered = 0;
    for seed in SEEDS {
        let nodes = three_nodes().await;
        for (n, ms) in nodes.iter().zip([0, 1, 10]) {
            n.set_delay(std::time::Duration::from_millis(ms));
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = shipped_pipelined_config(&nodes, &dir.path().join("journal"));
        // A write recovered as not applied fences its key until the late-write check: soon.
        cfg.journal.verify_after = std::time::Duration::from_millis(50);
        let crashes = process::Crashes {
            count: CRASHES,
            every: WRITES_PER_CRASH,
            at_once: false,
        };
        let (seen, writes) = process::crash_loop(&cfg, dir.path(), crashes, WRITERS, |w, wr| {
            alternating_crash_writer(w, seed, wr)
        })
        .await;
        for n in &nodes {
            n.set_delay(std::time::Duration::ZERO);
        }
        let last = start_proxy(cfg).await;
        let journal = last.app.journal().unwrap().clone();
        wait_until("no write is left in doubt", || journal.counts().0 == 0).await;
        let entries = by_group(&journal);
        for (id, acked) in seen.iter().flatten() {
            if *acked {
                let state = entries.get(id).map(|e| e.state);
                assert_eq!(
                    state,
                    Some(TxnState::Succeeded),
                    "seed {seed}: {id} was acknowledged"
                );
            }
        }
        let txns: BTreeMap<&str, &Entry> = entries
            .values()
            .map(|e| (e.begin.txn.as_str(), e))
            .collect();
        // Each node's log: a write first, then (maybe) its undo; never an undo alone.
        let logs = writes_received(&nodes, &[0, 0, 0]);
        let mut undos = 0;
        for (i, log) in logs.iter().enumerate() {
            let mut got = BTreeSet::new();
            for (txn, method) in log {
                let Some(e) = txns.get(txn.as_str()) else {
                    continue;
                };
                if e.begin.method == *method {
                    got.insert(txn.as_str());
                } else {
                    undos += 1;
                    assert!(
                        got.contains(txn.as_str()),
                        "seed {seed}: node {i} got the undo of {txn} ({:?}: {:?}) before, or without, the write",
                        e.state,
                        e.reason
                    );
                }
            }
        }
        let mut never_sent = 0;
        for e in entries.values() {
            if matches!(e.reason, Some(Reason::NeverSent(_))) {
                never_sent += 1;
                let on: Vec<bool> = logs
                    .iter()
                    .map(|l| l.iter().any(|(t, _)| *t == e.begin.txn))
                    .collect();
                assert_eq!(
                    on, [false; 3],
                    "seed {seed}: {} called never sent",
                    e.begin.txn
                );
            }
        }
        let mut by_key: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in entries.values() {
            by_key.entry(e.begin.key.as_str()).or_default().push(e);
        }
        let mut failed = 0;
        for (key, mut list) in by_key {
            list.sort_by_key(|e| e.seq);
            let group = key.trim_start_matches("group/");
            let held: Vec<bool> = nodes.iter().map(|n| n.groups().contains(group)).collect();
            if list.iter().any(|e| e.state == TxnState::Failed) {
                failed += list.iter().filter(|e| e.state == TxnState::Failed).count();
                continue;
            }
            assert!(
                held.iter().all(|&h| h == held[0]),
                "seed {seed}: the nodes disagree on {group}: {held:?}"
            );
            let mut replay = false;
            for e in &list {
                if matches!(
                    (e.state, &e.reason),
                    (TxnState::Succeeded, _) | (TxnState::Rejected, Some(Reason::TargetStateHolds))
                ) {
                    replay = target(e);
                }
            }
            assert_eq!(held[0], replay, "seed {seed}: {group}");
        }
        let completed = entries
            .values()
            .filter(|e| matches!(e.reason, Some(Reason::CompletedUnanswered)))
            .count();
        recovered += completed + never_sent;
        eprintln!(
            "pipelined shipped routes with crashes, seed {seed}: {writes} writes, {completed} found complete after a crash, {never_sent} recovered as never sent, {undos} undos, {failed} listed failed"
        );
    }
    assert!(recovered > 0, "no crash caught a write in doubt");
}

/// A pipelined create in doubt behind a create of the same group that had failed before the
/// crash (applied on node a only; its outcome elsewhere unknown): the write behind it was
/// refused at its turn, and that refusal was lost. Judged by itself, the read-backs (a holds
/// the group, b and c do not) would say it landed on a, and its undo would delete the older
/// write's group there; recovery ends it `failed` behind the older one instead, touching no
/// node.
#[tokio::test]
async fn a_write_in_doubt_behind_a_failed_one_of_its_key_is_listed_not_undone() {
    let nodes = three_nodes().await;
    nodes[0].insert_group("g");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = shipped_pipelined_config(&nodes, &dir.path().join("journal"));
    // No background re-drive during the test: only startup recovery decides.
    cfg.journal.redrive_initial = std::time::Duration::from_secs(600);
    cfg.journal.redrive_max = std::time::Duration::from_secs(600);
    {
        let (journal, _) = dtc::journal::Journal::open(&cfg.journal).unwrap();
        journal
            .begin(group_create(&nodes, "older", "g"))
            .await
            .unwrap();
        journal
            .end("older", TxnState::Failed, None, vec![], None)
            .await
            .unwrap();
        journal
            .begin(group_create(&nodes, "behind", "g"))
            .await
            .unwrap();
    }
    let from: Vec<usize> = nodes.iter().map(|n| n.requests().len()).collect();
    let dtc = start_proxy(cfg).await;
    let journal = dtc.app.journal().unwrap().clone();
    wait_until("no write is left in doubt", || journal.counts().0 == 0).await;
    let e = journal.get("behind").unwrap();
    assert_eq!(e.state, TxnState::Failed, "{:?}", e.reason);
    assert!(
        e.reason
            .as_ref()
            .is_some_and(|r| r.describe().contains("older")),
        "{:?}",
        e.reason
    );
    assert!(
        nodes[0].groups().contains("g"),
        "the older write's group was deleted"
    );
    let writes = writes_received(&nodes, &from);
    assert!(writes.iter().all(|w| w.is_empty()), "{writes:?}");
}

/// The intent of a create of `group` on `nodes`, with its read-back and its undo on each node.
fn group_create(
    nodes: &[dtc::node::RefNode],
    txn: &str,
    group: &str,
) -> dtc::journal::record::Begin {
    let body = format!(r#"{{"groupId": "{group}"}}"#);
    dtc::journal::record::Begin {
        txn: txn.into(),
        at_ms: dtc::journal::record::now_ms(),
        key: format!("group/{group}"),
        method: Method::POST,
        path: "/v1/group/".into(),
        nodes: nodes.iter().map(|n| (n.name().into(), n.url())).collect(),
        undo: vec![
            Some(dtc::txn::UndoPlan {
                method: Method::DELETE,
                path: "/v1/group/".into(),
                content_type: Some("application/json".into()),
                body: body.into(),
                already: vec![404],
            });
            3
        ],
        verify: Some(dtc::journal::record::VerifyPlan {
            method: Method::GET,
            path: format!("/v1/group/{group}/"),
            prior: vec![404],
            target: vec![200],
            node_paths: Vec::new(),
        }),
        early: Some(4),
        ..Default::default()
    }
}

/// A rollback's late-write check waits while an older write of its key is `failed`: node a
/// holds the group the older create left there, which the check would take for a late copy of
/// the rolled-back create and delete. A rollback of another key is checked meanwhile.
#[tokio::test]
async fn a_rollbacks_check_waits_behind_an_older_failed_write_of_its_key() {
    let nodes = three_nodes().await;
    nodes[0].insert_group("g");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = shipped_pipelined_config(&nodes, &dir.path().join("journal"));
    cfg.journal.redrive_initial = std::time::Duration::from_secs(600);
    cfg.journal.redrive_max = std::time::Duration::from_secs(600);
    cfg.journal.verify_after = std::time::Duration::from_millis(20);
    {
        let (journal, _) = dtc::journal::Journal::open(&cfg.journal).unwrap();
        for (txn, group, state) in [
            ("older", "g", TxnState::Failed),
            ("newer", "g", TxnState::RolledBack),
            ("other", "h", TxnState::RolledBack),
        ] {
            journal
                .begin(group_create(&nodes, txn, group))
                .await
                .unwrap();
            // No node answer recorded: every node may still receive it, so a check is due.
            journal.end(txn, state, None, vec![], None).await.unwrap();
        }
    }
    let from: Vec<usize> = nodes.iter().map(|n| n.requests().len()).collect();
    let dtc = start_proxy(cfg).await;
    let journal = dtc.app.journal().unwrap().clone();
    assert!(journal.get("newer").unwrap().verify_pending);
    wait_until("the other key's rollback was checked", || {
        journal.get("other").is_some_and(|e| !e.verify_pending)
    })
    .await;
    assert!(
        nodes[0].groups().contains("g"),
        "the older write's group was deleted"
    );
    assert!(journal.get("newer").unwrap().verify_pending);
    let writes = writes_received(&nodes, &from);
    assert!(writes.iter().all(|w| w.is_empty()), "{writes:?}");
}
