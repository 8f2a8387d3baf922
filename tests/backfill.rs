//! Joining nodes (issue 23): a node a reload adds takes writes at once but serves no read until
//! a backfill has copied onto it every key the journal knows (and every key a route's `list`
//! finds); afterwards every key reads the same from every node. A node `dtc verify` finds behind
//! serves no reads until `dtc verify --repair` backfills it.

mod support;

use dtc::config::Config;
use dtc::node::RefNode;
use dtc::verify::{Options, Verifier};
use http::Method;
use std::time::Duration;
use support::reload::{apply, joining};
use support::*;

/// The test config for `nodes`, after `tweak`.
fn config(nodes: &[RefNode], tweak: impl FnOnce(&mut Config)) -> Config {
    let mut cfg = test_config(nodes);
    tweak(&mut cfg);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_by_reload_serves_no_read_until_its_backfill_copied_every_key() {
    let nodes = three_nodes().await;
    let dtc = start_proxy(config(&nodes, |_| {})).await;
    let admin = dtc.serve_admin().await;
    let ids: Vec<String> = (0..12).map(|i| format!("g{i}")).collect();
    for id in &ids {
        assert_eq!(create_group(&dtc, id).await.status(), 201);
    }
    // One group created and deleted again: absent everywhere, and it must stay so on d.
    assert_eq!(create_group(&dtc, "gone").await.status(), 201);
    assert_eq!(delete_group(&dtc, "gone").await.status(), 200);

    // d joins empty, and slow, so its backfill takes a while.
    let d = start_node("d", 301).await;
    d.set_delay(Duration::from_millis(40));
    let mut all = nodes.clone();
    all.push(d.clone());
    apply(&dtc, config(&all, |_| {}));
    assert!(joining(&dtc, "d"), "a node added by reload starts joining");

    // Writes reach d at once.
    assert_eq!(create_group(&dtc, "new").await.status(), 201);
    assert!(d.groups().contains("new"), "d takes writes while joining");

    // While it joins, no read is answered from d: every group reads back 200.
    let mut reads = 0;
    let mut saw_progress = false;
    while joining(&dtc, "d") {
        for id in &ids {
            let r = read_group(&dtc, id).await;
            assert_eq!(r.status(), 200, "{id} read while d joins: {}", r.text());
            reads += 1;
        }
        let status = send(Method::GET, &format!("{admin}/status"), None, &[]).await;
        let node = &status.json()["nodes"][3];
        if node["state"] == "joining" {
            assert!(node["joining"]["total"].as_u64().unwrap() >= 13, "{node}");
            saw_progress = true;
        }
    }
    assert!(reads >= 12, "reads ran while d joined ({reads})");
    assert!(saw_progress, "/status showed d joining with its progress");

    // Backfilled: every key reads the same everywhere, d included, and reads go to d again.
    for n in &all {
        assert_eq!(n.groups(), nodes[0].groups(), "node {}", n.name());
    }
    assert!(!d.groups().contains("gone"));
    let gets_before = d.requests().len();
    for _ in 0..20 {
        assert_eq!(read_group(&dtc, "g1").await.status(), 200);
    }
    assert!(d.requests().len() > gets_before, "d serves reads again");
    let metrics = send(Method::GET, &format!("{admin}/metrics"), None, &[]).await;
    assert!(
        metrics
            .text()
            .lines()
            .any(|l| l.starts_with("dtc_backfill_keys_total{node=\"d\",result=\"copied\"} 12")),
        "{}",
        metrics.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_journal_never_saw_are_copied_when_a_route_lists_them() {
    let nodes = three_nodes().await;
    // Written before dtc: no journal knows them.
    for n in &nodes {
        n.insert_group("old-1");
        n.insert_group("old-2");
    }
    let listing = |c: &mut Config| c.routes[0].list = Some("/v1/group/".into());
    let dtc = start_proxy(config(&nodes, listing)).await;
    assert_eq!(create_group(&dtc, "g1").await.status(), 201);
    let d = start_node("d", 301).await;
    let mut all = nodes.clone();
    all.push(d.clone());
    apply(&dtc, config(&all, listing));
    wait_until("d is backfilled", || !joining(&dtc, "d")).await;
    assert_eq!(
        d.groups().into_iter().collect::<Vec<_>>(),
        ["g1", "old-1", "old-2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_verify_finds_behind_serves_no_reads_until_verify_repair_backfills_it() {
    let (nodes, dtc) = cluster().await;
    for g in ["g1", "g2", "g3"] {
        assert_eq!(create_group(&dtc, g).await.status(), 201);
    }
    // b loses two groups behind dtc's back.
    let b = nodes.b();
    for g in ["g1", "g2"] {
        let url = format!("{}/v1/group/", b.url());
        send(Method::DELETE, &url, Some(&group(g)), &[]).await;
    }
    let verifier = Verifier::new(&dtc.app.proxy.coordinator).unwrap();
    let mut opts = Options {
        since: Duration::from_secs(60),
        limit: 100,
        repair: false,
    };
    let report = verifier.run(&opts, &|_, _| {}).await;
    assert_eq!(report.divergent_left(), 2, "{:?}", report.findings);
    assert!(joining(&dtc, "b"), "found behind: out of reads");
    for _ in 0..20 {
        let r = read_group(&dtc, "g1").await;
        assert_eq!(r.status(), 200, "never read from b: {}", r.text());
    }
    opts.repair = true;
    let report = verifier.run(&opts, &|_, _| {}).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.backfills.len(), 1, "{report:?}");
    assert!(
        report.backfills[0].complete(),
        "{}",
        report.backfills[0].line()
    );
    assert!(!joining(&dtc, "b"), "b serves reads again");
    assert!(nodes.iter().all(|n| n.groups() == nodes[0].groups()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_reaches_a_joining_node_before_its_backfill_succeeds_and_stays_deleted() {
    let nodes = three_nodes().await;
    let long = |c: &mut Config| {
        // The held copy waits for its release, not for a timeout.
        c.timeouts.attempt = Duration::from_secs(5);
        c.retry.deadline = Duration::from_secs(20);
    };
    let dtc = start_proxy(config(&nodes, long)).await;
    for g in ["g1", "g2"] {
        assert_eq!(create_group(&dtc, g).await.state(), "succeeded");
    }
    let d = start_node("d", 301).await;
    d.hold_next(1);
    let mut all = nodes.clone();
    all.push(d.clone());
    apply(&dtc, config(&all, long));
    wait_until("d holds the backfill's first copy", || d.held_count() == 1).await;
    let held = d.requests().into_iter().find(|r| r.method == Method::POST);
    let held = String::from_utf8_lossy(&held.expect("a held create").body).into_owned();
    let other = if held.contains("g1") { "g2" } else { "g1" };
    // d never had `other`: it answers the delete 404, which is "already absent", and the key's
    // history (present) does not make that a divergence on a node that is catching up.
    let deleted = delete_group(&dtc, other).await;
    assert_eq!(deleted.state(), "succeeded", "{deleted:?}");
    d.release_held();
    wait_until("d is backfilled", || !joining(&dtc, "d")).await;
    for n in &all {
        assert!(
            !n.groups().contains(other),
            "node {} holds {other}",
            n.name()
        );
        assert_eq!(n.groups(), nodes[0].groups(), "node {}", n.name());
    }
}
