//! The repair race: a verify with repair on must never bring back what another sidecar's
//! acknowledged write just removed. Sidecar B deletes `g1`; node a applies it at once, nodes b
//! and c hold it (a slow node double); sidecar A's verify reads `404, 200, 200` meanwhile, with
//! a fleet view too old to know of B's delete.

use super::patient_cluster_config;
use super::support::pg;
use super::support::*;
use dtc::verify::{Options, Verifier};
use http::Method;
use std::time::Duration;

/// GETs of `path` a node received.
fn reads(node: &dtc::node::RefNode, path: &str) -> usize {
    node.requests()
        .iter()
        .filter(|r| r.method == Method::GET && r.path == path)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_never_resurrects_a_delete_another_sidecar_had_acknowledged() {
    let url = pg::database("repairrace").await;
    let nodes = three_nodes().await;
    // Held writes wait for their release, not for a timeout.
    let mut cfg = patient_cluster_config(&nodes, &url);
    let b = start_proxy(cfg.clone()).await;
    // A's view of the fleet is refreshed once, at its start: it knows its own create only.
    if let Some(c) = cfg.cluster.as_mut() {
        c.scan_every = Duration::from_secs(600);
    }
    let a = start_proxy(cfg).await;
    assert_eq!(create_group(&a, "g1").await.state(), "succeeded");
    nodes.b().hold_next(1);
    nodes.c().hold_next(1);
    let delete = tokio::spawn({
        let url = b.at("/v1/group/");
        async move { send(Method::DELETE, &url, Some(&group("g1")), &[]).await }
    });
    wait_until("a applied the delete and b and c hold it", || {
        !nodes.a().groups().contains("g1")
            && nodes.b().held_count() == 1
            && nodes.c().held_count() == 1
    })
    .await;
    let path = "/v1/group/g1/";
    let read_before: Vec<usize> = nodes.iter().map(|n| reads(n, path)).collect();
    let verifier = Verifier::new(&a.app.proxy.coordinator).unwrap();
    let check = tokio::spawn(async move {
        let opts = Options {
            since: Duration::from_secs(600),
            limit: 10,
            repair: true,
        };
        verifier.run(&opts, &|_, _| {}).await
    });
    wait_until("A's verify read g1 on every node", || {
        nodes
            .iter()
            .zip(&read_before)
            .all(|(n, before)| reads(n, path) > *before)
    })
    .await;
    nodes.b().release_held();
    nodes.c().release_held();
    let deleted = delete.await.unwrap();
    assert_eq!(deleted.state(), "succeeded", "{deleted:?}");
    let report = check.await.unwrap();
    let held: Vec<bool> = nodes.iter().map(|n| n.groups().contains("g1")).collect();
    assert_eq!(
        held,
        [false, false, false],
        "the acknowledged delete survives the repair: {:?}",
        report.findings.iter().map(|k| k.line()).collect::<Vec<_>>()
    );
    assert!(
        report.findings.iter().all(|k| k.repair.is_none()),
        "nothing was repaired: {:?}",
        report.findings.iter().map(|k| k.line()).collect::<Vec<_>>()
    );
}
