//! The crash run of `chaos.rs` on routes shaped like `config/items.toml` (the file's own routes):
//! replaces and deletes of client-chosen item ids, undone from the pre-image read before each
//! write. The real binary is SIGKILLed three times per seed while writes — many of them putting
//! the value an item already holds, or deleting an absent one — are in flight; afterwards every
//! item reads alike on every node, holds a value its history explains, and nothing is `failed`.
//!
//! `POST /items` (server-assigned ids) is not in the run: a create whose answer was lost with
//! dtc leaves an item whose id nobody knows; recovery ends it `failed` and lists it, by design.

mod support;

use dtc::config::Config;
use dtc::node::{Faults, NodeOptions, RefNode};
use http::Method;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use support::*;
use support::{model, process};

const SEEDS: [u64; 2] = [21, 22];
const WORKERS: u64 = 4;
const ITEMS_PER_WORKER: u64 = 3;
const CRASHES: usize = 3;
const WRITES_PER_CRASH: usize = 50;

/// An item's state: the `v` it holds, `None` when absent.
type Held = Option<u64>;

async fn node(name: &str, seed: u64) -> RefNode {
    let faults = Faults {
        error_rate: 0.2,
        apply_then_fail_rate: 0.05,
        delay: std::time::Duration::from_millis(2),
        seed,
        ..Faults::default()
    };
    RefNode::bind(
        "127.0.0.1:0",
        NodeOptions {
            faults,
            ..NodeOptions::named(name)
        },
    )
    .await
    .unwrap()
}

/// The test config with the routes of `config/items.toml`.
fn items_config(nodes: &[RefNode], dir: &std::path::Path) -> Config {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/items.toml")).unwrap();
    let shipped: Config = toml::from_str(&text).unwrap();
    let mut cfg = test_config(nodes);
    cfg.routes = shipped.routes;
    cfg.health.unhealthy_threshold = 1000;
    cfg.health.consecutive_unreachable = 1000;
    cfg.journal.dir = dir.join("journal").display().to_string();
    cfg.journal.redrive_initial = std::time::Duration::from_millis(50);
    cfg.journal.redrive_max = std::time::Duration::from_millis(100);
    cfg.journal.verify_after = std::time::Duration::from_millis(100);
    cfg
}

async fn worker(w: u64, seed: u64, writer: process::Writer) -> BTreeMap<u64, model::Key<Held>> {
    let process::Writer {
        mut url,
        done,
        stop,
    } = writer;
    let mut rng = fastrand::Rng::with_seed(seed * 100 + w);
    let ids: Vec<u64> = (0..ITEMS_PER_WORKER).map(|k| 1000 + w * 10 + k).collect();
    let mut items: BTreeMap<u64, model::Key<Held>> = ids
        .iter()
        .map(|&id| (id, model::Key::known(None)))
        .collect();
    while !stop.load(Ordering::SeqCst) {
        let id = ids[rng.usize(..ids.len())];
        // Two values only, so a replace often puts what the item already holds.
        let target = rng.bool().then(|| rng.u64(0..2));
        let base = url.borrow_and_update().clone();
        let path = format!("{base}/items/{id}");
        let r = match target {
            Some(v) => try_send(Method::PUT, &path, Some(&format!(r#"{{"v": {v}}}"#)), &[]).await,
            None => try_send(Method::DELETE, &path, None, &[]).await,
        };
        let seen = match &r {
            Ok(a) => model::Seen::Answered(a),
            Err(e) if e.is_connect() => model::Seen::NotSent,
            Err(_) => model::Seen::NoAnswer,
        };
        items.get_mut(&id).unwrap().write(target, seen);
        done.fetch_add(1, Ordering::SeqCst);
        if r.is_err() && !stop.load(Ordering::SeqCst) {
            let _ = tokio::time::timeout(DEADLINE, url.changed()).await;
        }
    }
    items
}

fn held(n: &RefNode, id: u64) -> Held {
    n.items().get(&id).map(|v| v["v"].as_u64().expect("a v"))
}

async fn run(seed: u64) -> String {
    let nodes = vec![
        node("a", seed * 10 + 1).await,
        node("b", seed * 10 + 2).await,
        node("c", seed * 10 + 3).await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let cfg = items_config(&nodes, dir.path());
    let crashes = process::Crashes {
        count: CRASHES,
        every: WRITES_PER_CRASH,
        at_once: false,
    };
    let (written, writes) = process::crash_loop(&cfg, dir.path(), crashes, WORKERS, |w, writer| {
        worker(w, seed, writer)
    })
    .await;
    let items: BTreeMap<_, _> = written.into_iter().flatten().collect();
    for n in &nodes {
        n.set_error_rate(0.0);
        n.set_apply_then_fail_rate(0.0);
    }
    let last = start_proxy(cfg).await;
    let journal = last.app.journal().unwrap().clone();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !journal.open_entries().is_empty() {
        let open = journal.open_entries();
        assert!(
            tokio::time::Instant::now() < deadline,
            "seed {seed}: still open: {open:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let failed = journal.list(Some(dtc::saga::TxnState::Failed), 100);
    assert!(failed.is_empty(), "seed {seed}: listed failed: {failed:?}");
    let mut unanswered = 0;
    for (id, k) in &items {
        unanswered += k.history.iter().filter(|h| h.contains("no_answer")).count();
        let first = held(&nodes[0], *id);
        for n in &nodes {
            assert_eq!(
                held(n, *id),
                first,
                "seed {seed}: item {id} differs:\n{}",
                k.history.join("\n")
            );
        }
        assert!(
            k.possible.contains(&first),
            "seed {seed}: item {id} holds {first:?}, its history allows {:?}:\n{}",
            k.possible,
            k.history.join("\n")
        );
    }
    assert!(
        unanswered > 0,
        "seed {seed}: a crash caught no write in flight"
    );
    let redundant: usize = items.values().map(|k| k.redundant).sum();
    format!(
        "seed {seed}: {} writes ({redundant} to the item's own state, {unanswered} unanswered), {CRASHES} SIGKILLs, {} items alike and explained",
        writes,
        items.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_restarts_on_items_routes_leave_every_item_alike_and_explained() {
    for seed in seeds(&SEEDS) {
        eprintln!("items chaos with crashes: {}", run(seed).await);
    }
}

/// The seeds to run: `DTC_CHAOS_SEEDS=1,2,3` overrides the fixed ones (for longer runs by hand).
fn seeds(fixed: &[u64]) -> Vec<u64> {
    match std::env::var("DTC_CHAOS_SEEDS") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().parse().expect("a seed"))
            .collect(),
        Err(_) => fixed.to_vec(),
    }
}
