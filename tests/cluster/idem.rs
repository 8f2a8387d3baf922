//! Idempotency keys and key history fleet-wide: a retry through another sidecar (a pod
//! restarted, a client that moved) is answered from the shared store as the first one was; a key
//! reused with another request is refused by any sidecar; a retry after a rollback runs anew on
//! every node; a node that lost an acknowledged write is listed, not copied over the others,
//! with the key's history read from the store.

use super::cluster_config;
use super::support::double::{self, Behaviour, Double, Write};
use super::support::pg;
use super::support::*;
use http::{Method, StatusCode};
use std::time::Duration;

fn write_counts(nodes: &[dtc::node::RefNode]) -> Vec<usize> {
    nodes.iter().map(|n| n.write_count()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_through_another_sidecar_gets_the_first_answer_from_the_store() {
    let url = pg::database("idemfleet").await;
    let nodes = three_nodes().await;
    let mut cfg = cluster_config(&nodes, &url);
    cfg.writes.fail_fast = false;
    let a = start_proxy(cfg.clone()).await;
    let b = start_proxy(cfg).await;

    let first = create_group_keyed(&a, "g1", "k-fleet-1").await;
    assert_eq!(first.status(), StatusCode::CREATED, "{}", first.text());
    let writes = write_counts(&nodes);
    let again = create_group_keyed(&b, "g1", "k-fleet-1").await;
    assert_eq!(
        again.status(),
        StatusCode::CREATED,
        "the first answer, not the nodes' 400: {}",
        again.text()
    );
    assert_eq!(again.txn(), first.txn(), "the first transaction's answer");
    assert_eq!(again.body(), first.body());
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(write_counts(&nodes), writes, "no node touched");

    // The same key with another request: refused by any sidecar, nothing sent.
    let reused = send(
        Method::POST,
        &b.at("/v1/group/"),
        Some(&group("g-other")),
        &[("idempotency-key", "k-fleet-1")],
    )
    .await;
    assert_eq!(
        reused.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused.text()
    );
    assert_eq!(write_counts(&nodes), writes, "no node touched");

    // Rolled back through a: the retry through b runs anew and lands on every node.
    nodes.c().set_down(true).await;
    let rolled = create_group_keyed(&a, "g2", "k-fleet-2").await;
    assert_eq!(rolled.state(), "rolled_back", "{}", rolled.text());
    nodes.c().set_down(false).await;
    wait_until("c seen up", || b.sees_up(nodes.c())).await;
    let retry = create_group_keyed(&b, "g2", "k-fleet-2").await;
    assert_eq!(
        (retry.status(), retry.state()),
        (StatusCode::CREATED, "succeeded"),
        "{}",
        retry.text()
    );
    assert_ne!(retry.txn(), rolled.txn(), "a new transaction");
    assert!(nodes.iter().all(|n| n.groups().contains("g2")));

    // A sidecar started after all this (a restarted pod) answers alike.
    drop(a);
    let c = start_proxy(cluster_config(&nodes, &url)).await;
    let late = create_group_keyed(&c, "g1", "k-fleet-1").await;
    assert_eq!(late.status(), StatusCode::CREATED, "{}", late.text());
    assert_eq!(late.txn(), first.txn());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_a_node_that_lost_an_acknowledged_write_is_listed_not_copied() {
    let url = pg::database("idemhistory").await;
    let doubles = [
        Double::start("a", Behaviour::default()).await,
        Double::start("b", Behaviour::default()).await,
        Double::start("c", Behaviour::default()).await,
    ];
    let urls: Vec<(String, String)> = doubles.iter().map(|d| (d.name.clone(), d.url())).collect();
    let mut cfg = double::config_for(&urls);
    cfg.timeouts.attempt = Duration::from_millis(100);
    cfg.cluster = Some(dtc::config::ClusterConfig {
        lease: Duration::from_secs(2),
        scan_every: Duration::from_millis(100),
        ..dtc::config::ClusterConfig::with_url(&url)
    });
    let first = start_proxy(cfg.clone()).await;
    assert_eq!(create_group(&first, "g1").await.state(), "succeeded");
    // Another sidecar, which never saw the create: it learns the key's state from the store.
    let other = start_proxy(cfg).await;

    // c comes back from a crash without g1. A duplicate create follows: a and b answer it 500
    // (as json-server does for a duplicate id), c takes it and never answers.
    doubles[2].lose("g1");
    doubles[0].script(&[Write::Refuse(500); 4]);
    doubles[1].script(&[Write::Refuse(500); 4]);
    doubles[2].script(&[Write::Hang; 4]);
    let dup = create_group(&other, "g1").await;
    assert!(
        doubles[0].has("g1") && doubles[1].has("g1"),
        "the nodes that kept g1 keep it"
    );
    assert_eq!(
        dup.state(),
        "failed",
        "listed, not rolled back: {}",
        dup.text()
    );
    assert!(
        dup.problem()["detail"].as_str().unwrap().contains("node c"),
        "{}",
        dup.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_store_is_upgraded_and_the_prune_keeps_keys_within_their_window() {
    let url = pg::database("idemupgrade").await;
    let nodes = three_nodes().await;
    let old = start_proxy(cluster_config(&nodes, &url)).await;
    assert_eq!(create_group(&old, "g0").await.state(), "succeeded");
    drop(old);
    // The schema a dtc of version 2 made: no idempotency columns, no id map.
    pg::shared()
        .exec(
            "idemupgrade",
            "ALTER TABLE dtc_txns DROP COLUMN idem, DROP COLUMN answer, DROP COLUMN changed; \
             DROP TABLE dtc_ids; UPDATE dtc_schema SET version = 2",
        )
        .await;

    let mut cfg = cluster_config(&nodes, &url);
    cfg.journal.keep_finished = 2;
    let dtc = start_proxy(cfg).await;
    assert_eq!(
        pg::shared()
            .count("idemupgrade", "SELECT max(version)::int8 FROM dtc_schema")
            .await,
        4,
        "upgraded in place (on to the id map's version 4)"
    );
    let first = create_group_keyed(&dtc, "k0", "k-window-0").await;
    assert_eq!(first.status(), StatusCode::CREATED, "{}", first.text());
    for i in 1..6 {
        let a = create_group(&dtc, &format!("u{i}")).await;
        assert!(a.status().is_success(), "{}", a.text());
    }
    // Pruned down to the 2 newest finished transactions — and the one bound to a key.
    let finished = "SELECT count(*) FROM dtc_txns WHERE NOT open";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while pg::shared().count("idemupgrade", finished).await > 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not pruned to 2 + 1"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = create_group_keyed(&dtc, "k0", "k-window-0").await;
    assert_eq!(again.status(), StatusCode::CREATED, "{}", again.text());
    assert_eq!(again.txn(), first.txn(), "still remembered after the prune");
}
