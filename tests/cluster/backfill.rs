//! A node a reload adds, in cluster mode: the backfill copies every key the shared store knows
//! (also keys only another sidecar wrote, which this sidecar's own journal never saw), under each
//! key's lease; a write that reaches the joining node before its key was copied ends as it
//! should (a delete of a key the node never had is "already absent" there), and the backfill
//! never brings that key back.

use super::patient_cluster_config;
use super::support::pg;
use super::support::reload::{apply, joining};
use super::support::*;
use http::Method;
use std::collections::BTreeSet;

/// The group id in a create's body, e.g. `{"groupId":"b1"}`.
fn group_of(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
    v["groupId"].as_str().expect("groupId").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_gets_every_key_of_the_store_and_a_write_that_overtakes_its_backfill() {
    let url = pg::database("backfill").await;
    let nodes = three_nodes().await;
    // The held copy waits for its release, not for a timeout or a lost lease.
    let cfg = patient_cluster_config(&nodes, &url);
    let a = start_proxy(cfg.clone()).await;
    let b = start_proxy(cfg.clone()).await;
    // b1..b3 only through sidecar B: A's own journal never saw them.
    for g in ["b1", "b2", "b3", "gone"] {
        assert_eq!(create_group(&b, g).await.state(), "succeeded");
    }
    assert_eq!(create_group(&a, "a1").await.state(), "succeeded");
    assert_eq!(delete_group(&a, "gone").await.state(), "succeeded");

    // d joins A (empty); its first write, a backfill copy, is held.
    let d = start_node("d", 301).await;
    d.hold_next(1);
    let mut all = nodes.clone();
    all.push(d.clone());
    apply(&a, patient_cluster_config(&all, &url));
    assert!(joining(&a, "d"), "a node added by reload starts joining");
    wait_until("d holds the backfill's first copy", || d.held_count() == 1).await;
    let held = d
        .requests()
        .iter()
        .find(|r| r.method == Method::POST)
        .map(|r| group_of(&r.body))
        .expect("the held copy is a create");

    // A delete of another key reaches d before the backfill copied it: d answers 404, which
    // the route counts as already absent.
    let overtaken = ["b1", "b2", "b3", "a1"]
        .into_iter()
        .find(|g| *g != held)
        .unwrap();
    let deleted = delete_group(&a, overtaken).await;
    assert_eq!(deleted.state(), "succeeded", "{deleted:?}");
    let deletes_on_d = d
        .requests()
        .iter()
        .filter(|r| r.method == Method::DELETE && group_of(&r.body) == overtaken)
        .count();
    assert_eq!(deletes_on_d, 1, "the delete went to the joining node too");
    // While d joins, reads never come from it (the backfill, stalled on its held copy, reads
    // nothing meanwhile).
    let gets = || {
        let reads = d.requests().into_iter();
        reads
            .filter(|r| r.method == Method::GET && r.path.starts_with("/v1/group/"))
            .count()
    };
    let before = gets();
    for _ in 0..10 {
        let r = read_group(&a, &held).await;
        assert_eq!(r.status(), 200, "{held}: {}", r.text());
    }
    assert_eq!(gets(), before, "no client read reached d while it joined");

    d.release_held();
    wait_until("d is backfilled", || !joining(&a, "d")).await;
    let want: BTreeSet<String> = ["b1", "b2", "b3", "a1"]
        .into_iter()
        .filter(|g| *g != overtaken)
        .map(String::from)
        .collect();
    for n in &all {
        assert_eq!(n.groups(), want, "node {}", n.name());
    }
    let metrics = send(
        Method::GET,
        &format!("{}/metrics", a.serve_admin().await),
        None,
        &[],
    )
    .await;
    assert!(
        metrics
            .text()
            .lines()
            .any(|l| l.starts_with("dtc_backfill_keys_total{node=\"d\",result=\"copied\"} 3")),
        "copied b1..b3 and a1 but the deleted one: {}",
        metrics.text()
    );
}
