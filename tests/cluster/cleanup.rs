//! A store that cleans up after itself: 100,000 distinct keys written through one sidecar leave
//! neither a lease row per key nor more finished transactions than `journal.keep_finished`.
//!
//! The first keys go through the proxy end to end (client, nodes, store); the rest, in
//! concurrent batches, through the same sidecar's journal — the two store statements of every
//! write (lease + intent, end + release) without the node requests, which have nothing to do
//! with the store's rows and would make the run take minutes in a debug build.

use super::support::pg;
use super::support::*;
use dtc::config::ClusterConfig;
use dtc::journal::record::{Begin, now_ms};
use dtc::saga::TxnState;
use futures_util::StreamExt;
use http::Method;
use std::time::Duration;
use tokio::time::Instant;

/// Distinct keys written in all, and how many of them go through the proxy
/// (`DTC_CLEANUP_KEYS=total,proxied` overrides, for runs by hand).
fn counts() -> (usize, usize) {
    let env = std::env::var("DTC_CLEANUP_KEYS").unwrap_or_default();
    let mut it = env.split(',').filter_map(|v| v.trim().parse().ok());
    (it.next().unwrap_or(100_000), it.next().unwrap_or(2_000))
}

/// Rows and bytes (table, indexes, TOAST) of `table`.
async fn size(db: &str, table: &str) -> (i64, i64) {
    let rows = pg::shared()
        .count(db, &format!("SELECT count(*) FROM {table}"))
        .await;
    let bytes = pg::shared()
        .count(db, &format!("SELECT pg_total_relation_size('{table}')"))
        .await;
    (rows, bytes)
}

fn begin(key: &str) -> Begin {
    Begin {
        txn: dtc::saga::new_txn_id(),
        at_ms: now_ms(),
        generation: 1,
        method: http::Method::POST,
        path: "/v1/group/".into(),
        key: key.to_string(),
        route: Some("create group".into()),
        nodes: Vec::new(),
        headers: Vec::new(),
        undo: Vec::new(),
        verify: None,
        pre: Vec::new(),
        ..Begin::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_keys_through_one_sidecar_leave_no_lease_row_per_key() {
    let (total, proxied) = counts();
    let keep = 1000;
    let url = pg::database("cleanup").await;
    let nodes = three_nodes().await;
    let mut cfg = test_config(&nodes);
    cfg.journal.keep_finished = keep;
    cfg.cluster = Some(ClusterConfig {
        scan_every: Duration::from_millis(200),
        ..ClusterConfig::with_url(&url)
    });
    let dtc = start_proxy(cfg).await;
    let before = (
        size("cleanup", "dtc_leases").await,
        size("cleanup", "dtc_txns").await,
    );
    let started = Instant::now();
    let client = client(false);
    let at = dtc.at("/v1/group/");
    let refused = futures_util::stream::iter(0..proxied)
        .map(|i| {
            let req = request(Method::POST, &at, Some(&group(&format!("k{i}"))), &[]);
            let client = &client;
            async move { send_with(client, req).await.map(|a| a.status().as_u16()) }
        })
        .buffer_unordered(32)
        .filter(|r| std::future::ready(!matches!(r, Ok(201))))
        .count()
        .await;
    assert_eq!(refused, 0, "every create through the proxy succeeds");
    let journal = dtc.app.journal().unwrap().clone();
    let failed = futures_util::stream::iter(proxied..total)
        .map(|i| {
            let journal = journal.clone();
            async move {
                let b = begin(&format!("group/k{i}"));
                let txn = b.txn.clone();
                journal.begin(b).await?;
                journal
                    .end(&txn, TxnState::Succeeded, None, Vec::new(), None)
                    .await
            }
        })
        .buffer_unordered(64)
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    assert_eq!(failed, 0, "every write through the journal is recorded");
    let took = started.elapsed();
    // Every transaction row, open ones too: the final count below takes them all, and a row
    // counted between a transaction's end and the next trim made it read keep + 1 once in a
    // full run under load.
    let rows = "SELECT count(*) FROM dtc_txns";
    eventually(
        "the scan trims finished transactions to journal.keep_finished, and no lease row is left",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            pg::shared().count("cleanup", rows).await <= keep as i64
                && pg::shared()
                    .count("cleanup", "SELECT count(*) FROM dtc_leases")
                    .await
                    == 0
        },
    )
    .await;
    let after = (
        size("cleanup", "dtc_leases").await,
        size("cleanup", "dtc_txns").await,
    );
    eprintln!(
        "{total} keys ({proxied} through the proxy) in {took:?}: dtc_leases {} rows {} B -> {} rows {} B; dtc_txns {} rows {} B -> {} rows {} B",
        before.0.0, before.0.1, after.0.0, after.0.1, before.1.0, before.1.1, after.1.0, after.1.1
    );
    // What (auto)vacuum makes of the dead rows: space the tables reuse.
    pg::shared()
        .exec("cleanup", "VACUUM dtc_leases, dtc_txns")
        .await;
    let (leases, txns) = (
        size("cleanup", "dtc_leases").await,
        size("cleanup", "dtc_txns").await,
    );
    eprintln!(
        "after VACUUM: dtc_leases {} B, dtc_txns {} B",
        leases.1, txns.1
    );
    assert_eq!(
        after.0.0, 0,
        "lease rows left after {total} keys, all released"
    );
    assert!(after.1.0 <= keep as i64, "{} transactions kept", after.1.0);
}
