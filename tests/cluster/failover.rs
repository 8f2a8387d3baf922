//! The store killed (`pg_ctl -m immediate`) under traffic from two sidecars while their leases
//! are held (node c answers slowly, so every write holds its key for a while), then restarted:
//! every acknowledged create is on every node, every refused one on none, and the rest converge.

use super::support::pg::PgServer;
use super::support::*;
use super::{alike, cluster_config, groups};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_killed_while_leases_are_held_loses_nothing_acknowledged() {
    let server = PgServer::start();
    let url = server.database("killed").await;
    let nodes = three_nodes().await;
    nodes.c().set_delay(Duration::from_millis(80));
    let mut cfg = cluster_config(&nodes, &url);
    if let Some(c) = cfg.cluster.as_mut() {
        c.statement_timeout = Duration::from_millis(500);
    }
    let sidecars = [start_proxy(cfg.clone()).await, start_proxy(cfg).await];
    let (acked, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut writers = Vec::new();
    for (s, dtc) in sidecars.iter().enumerate() {
        for w in 0..2 {
            let (url, acked, refused) = (dtc.url.clone(), acked.clone(), refused.clone());
            writers.push(tokio::spawn(async move {
                let mut answers = BTreeMap::new();
                for i in 0..30 {
                    let id = format!("s{s}w{w}k{i}");
                    let a = create_group(&url, &id).await;
                    match (a.status().as_u16(), a.state()) {
                        (201, _) => acked.fetch_add(1, Ordering::SeqCst),
                        (503, "to_be_retried") => refused.fetch_add(1, Ordering::SeqCst),
                        _ => 0,
                    };
                    answers.insert(id, (a.status().as_u16(), a.state().to_string()));
                }
                answers
            }));
        }
    }
    wait_until("some writes are acknowledged", || {
        acked.load(Ordering::SeqCst) >= 12
    })
    .await;
    // Counted before the stop: once the store is gone refusals take no time, and every writer
    // may be through all its writes before `stop` returns.
    let refused_before = refused.load(Ordering::SeqCst);
    server.stop();
    wait_until("writes are refused while the store is down", || {
        refused.load(Ordering::SeqCst) >= refused_before + 4
    })
    .await;
    server.restart();
    let mut answers = BTreeMap::new();
    for w in writers {
        answers.extend(w.await.unwrap());
    }
    eventually(
        "the nodes agree and the store holds nothing open",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            alike(&nodes)
                && server
                    .count("killed", "SELECT count(*) FROM dtc_txns WHERE open")
                    .await
                    == 0
        },
    )
    .await;
    let held = nodes[0].groups();
    let mut counts = BTreeMap::<String, usize>::new();
    for (id, (status, state)) in &answers {
        *counts.entry(format!("{status} {state}")).or_default() += 1;
        match status {
            201 => assert!(
                held.contains(id),
                "{id} was acknowledged: {:?}",
                groups(&nodes)
            ),
            503 if state == "to_be_retried" => {
                assert!(
                    !held.contains(id),
                    "{id} was refused, yet it is on the nodes"
                )
            }
            _ => {}
        }
    }
    eprintln!("answers: {counts:?}");
    assert!(acked.load(Ordering::SeqCst) >= 12 && refused.load(Ordering::SeqCst) >= 4);
    assert_eq!(
        server
            .count(
                "killed",
                "SELECT count(*) FROM dtc_leases WHERE txn IS NOT NULL"
            )
            .await,
        0,
        "no lease left held"
    );
}
