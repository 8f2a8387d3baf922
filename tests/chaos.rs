//! A seeded randomized run: thousands of creates and deletes under random node faults. Afterwards
//! every node holds the same data, except resources whose transaction ended `failed`, and no
//! acknowledged write is missing anywhere.

mod support;

use dtc::node::{Faults, NodeOptions, RefNode};
use http::Method;
use std::collections::{BTreeMap, BTreeSet};
use support::*;

const WORKERS: u64 = 8;
const KEYS_PER_WORKER: u64 = 3;
const OPS_PER_WORKER: usize = 250;

async fn faulty_node(name: &str, seed: u64) -> RefNode {
    let faults = Faults {
        error_rate: 0.2,
        apply_then_fail_rate: 0.05,
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

/// What a worker saw: the expected presence of each of its keys, and the keys left `failed`.
struct Seen {
    expected: BTreeMap<String, bool>,
    tainted: BTreeSet<String>,
    states: BTreeMap<String, usize>,
    /// Per key, what each write came to (for the failure message).
    history: BTreeMap<String, Vec<String>>,
}

async fn worker(w: u64, url: String) -> Seen {
    let mut rng = fastrand::Rng::with_seed(1000 + w);
    let keys: Vec<String> = (0..KEYS_PER_WORKER).map(|k| format!("w{w}k{k}")).collect();
    let mut seen = Seen {
        expected: keys.iter().map(|k| (k.clone(), false)).collect(),
        tainted: BTreeSet::new(),
        states: BTreeMap::new(),
        history: BTreeMap::new(),
    };
    for _ in 0..OPS_PER_WORKER {
        let key = &keys[rng.usize(..keys.len())];
        let create = rng.bool();
        let method = if create { Method::POST } else { Method::DELETE };
        let a = send(method, &url, Some(&group(key)), &[]).await;
        let state = header(&a, "x-dtc-state").to_string();
        match state.as_str() {
            // 2xx, or the "already" status passed through: the target state holds everywhere.
            "succeeded" => {
                seen.expected.insert(key.clone(), create);
            }
            "rejected" | "to_be_retried" | "rolled_back" => {}
            "failed" => {
                seen.tainted.insert(key.clone());
            }
            other => panic!("unexpected state {other:?}: {} {:?}", a.0, a.2),
        }
        let line = format!(
            "{} {} -> {} {} {}",
            if create { "POST" } else { "DELETE" },
            header(&a, "x-dtc-transaction-id"),
            a.0,
            state,
            String::from_utf8_lossy(&a.2)
                .chars()
                .take(600)
                .collect::<String>()
        );
        seen.history.entry(key.clone()).or_default().push(line);
        *seen.states.entry(state).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_never_leave_acknowledged_writes_missing_or_nodes_divergent() {
    let nodes = vec![
        faulty_node("a", 1).await,
        faulty_node("b", 2).await,
        faulty_node("c", 3).await,
    ];
    let mut cfg = test_config(&nodes);
    cfg.health.unhealthy_threshold = 1000;
    cfg.journal.verify_after = std::time::Duration::from_millis(100);
    let dtc = start_proxy(cfg).await;
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(w, dtc.at("/v1/group/"))))
        .collect();
    let mut seen_all = Vec::new();
    for t in tasks {
        seen_all.push(t.await.unwrap());
    }
    // A rollback whose node never answered is checked again shortly after (a late write may
    // land); the data is final once those checks are done.
    let journal = dtc.app.journal().unwrap().clone();
    wait_until("late-write checks are done", || {
        journal.open_entries().iter().all(|e| !e.verify_pending)
    })
    .await;
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    let mut checked = 0;
    for seen in seen_all {
        for (s, n) in seen.states {
            *states.entry(s).or_default() += n;
        }
        for (key, present) in &seen.expected {
            if seen.tainted.contains(key) {
                continue;
            }
            for n in &nodes {
                assert_eq!(
                    n.groups().contains(key),
                    *present,
                    "node {} disagrees on {key} (states so far {states:?}); its writes:\n{}",
                    n.name(),
                    seen.history
                        .get(key)
                        .map(|h| h.join("\n"))
                        .unwrap_or_default()
                );
            }
            checked += 1;
        }
    }
    let total: usize = states.values().sum();
    assert_eq!(total, (WORKERS as usize) * OPS_PER_WORKER);
    assert!(
        states.get("succeeded").copied().unwrap_or(0) > total / 2,
        "{states:?}"
    );
    assert!(
        states.get("rolled_back").copied().unwrap_or(0) > 0,
        "the run exercised rollbacks: {states:?}"
    );
    assert!(checked > 0);
    eprintln!("chaos: {total} writes, states {states:?}, {checked} keys checked on every node");
}
