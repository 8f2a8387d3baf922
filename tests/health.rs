//! Node health as a client sees it (issue 23): a node that is flaky but talking is never
//! refused for; a node that cannot be reached is, at once and only while it is gone, with a
//! `Retry-After` that says when the next trial is due; a node that comes back is used again.
//! (The half-open schedule itself, on paused time: `src/upstream/health/tests.rs`.)

mod support;

use dtc::config::NodeConfig;
use http::Method;
use std::time::Duration;
use support::*;

/// Whether `a` is a fail-fast refusal naming `node`.
fn refused_for(a: &Answer, node: &str) -> bool {
    a.status() == 503
        && a.state() == "to_be_retried"
        && a.problem()["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("node {node} is down")))
}

#[tokio::test]
async fn a_flaky_node_answering_500s_and_resetting_connections_is_never_marked_down() {
    let (nodes, dtc) = cluster().await;
    let flaky = nodes.c();
    // Half of its writes fail, one in five more has its connection cut (some after applying).
    flaky.set_error_rate(0.5);
    flaky.set_reset_rate(0.2);
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..60 {
        let id = format!("g{}", i % 7);
        let a = if i % 2 == 0 {
            create_group(&dtc, &id).await
        } else {
            delete_group(&dtc, &id).await
        };
        assert!(
            !refused_for(&a, "c"),
            "write {i} refused for a node that answers: {}",
            a.text()
        );
        assert!(dtc.sees_up(flaky), "write {i} left node c marked down");
        *states.entry(a.state().to_string()).or_default() += 1;
    }
    let resets = flaky.requests().len();
    assert!(resets > 60, "node c saw retries: {resets} requests");
    eprintln!("flaky node c: states {states:?}");
}

#[tokio::test]
async fn a_node_answering_500_to_everything_probes_included_is_talking_not_down() {
    let (nodes, _) = cluster().await;
    let (stub, hits) = stub_node(500).await;
    let mut cfg = test_config(&nodes[..2]);
    cfg.nodes.push(NodeConfig {
        name: "stub".into(),
        url: stub,
        tls: None,
    });
    let dtc = start_proxy(cfg).await;
    // Probes every 50 ms (the tests' interval) and writes, all answered 500.
    for i in 0..5 {
        let a = create_group(&dtc, &format!("g{i}")).await;
        assert!(!refused_for(&a, "stub"), "{}", a.text());
    }
    wait_until("a dozen probes and writes reached the stub", || {
        hits.load(std::sync::atomic::Ordering::SeqCst) > 30
    })
    .await;
    assert!(
        dtc.node_up(2),
        "a node that answers is up, whatever it answers"
    );
}

/// A node shedding load answers 503 to every write: dozens of failures in a row, but each is an
/// answer. Only unreachable calls make a row (`health.consecutive_unreachable`), so the node is
/// never marked down and no write is refused for it; the retries and undos handle the 503s.
#[tokio::test]
async fn a_node_shedding_load_with_503s_in_a_row_is_talking_not_down() {
    use support::double::{Behaviour, Double, Write};
    let (nodes, _) = cluster().await;
    let shedding = Double::start("c", Behaviour::default()).await;
    shedding.script(&[Write::Refuse(503); 40]);
    let mut cfg = test_config(&nodes[..2]);
    cfg.nodes.push(NodeConfig {
        name: "c".into(),
        url: shedding.url(),
        tls: None,
    });
    let dtc = start_proxy(cfg).await;
    for i in 0..10 {
        let a = create_group(&dtc, &format!("g{i}")).await;
        assert!(!refused_for(&a, "c"), "write {i}: {}", a.text());
        assert_eq!(a.state(), "rolled_back", "write {i}: {}", a.text());
        assert!(dtc.node_up(2), "write {i} left c marked down");
    }
    let received = shedding.received().len();
    assert!(
        received >= 40,
        "c answered 503 to {received} writes in a row"
    );
}

#[tokio::test]
async fn a_node_refusing_connections_is_down_after_one_write_and_refused_for_while_it_is_gone() {
    let (nodes, dtc) = cluster().await;
    let gone = nodes.c();
    gone.set_down(true).await;
    // The first write's attempts at c are refused: down within the window; the write then
    // waits for c as long as its retries would have lasted (`retry.deadline`), and is rolled back.
    let first = create_group(&dtc, "g1").await;
    assert_eq!(first.state(), "rolled_back", "{}", first.text());
    assert!(!dtc.sees_up(gone), "four refusals in a row mark it down");
    let a = create_group(&dtc, "g2").await;
    assert!(refused_for(&a, "c"), "{}", a.text());
    assert_eq!(
        a.header("retry-after"),
        "1",
        "the next trial is due within a second"
    );
    assert!(
        nodes[..2].iter().all(|n| !n.groups().contains("g2")),
        "a refused write touches no node"
    );
    // Back: a trial reaches it and writes flow again.
    gone.set_down(false).await;
    wait_until("a trial reaches node c", || dtc.sees_up(gone)).await;
    let a = create_group(&dtc, "g2").await;
    assert_eq!(a.status(), 201, "{}", a.text());
    assert!(nodes.iter().all(|n| n.groups().contains("g2")));
}

/// A node restarting — gone for 2 s, longer than `writes.wait_for_down_node` (1 s) but within
/// a write's own retry budget (`retry.deadline`, 3 s here) — costs a write its wait, not a
/// refusal: its retries would have outlasted the outage, so the breaker must not refuse it.
#[tokio::test]
async fn a_write_in_a_short_outage_waits_it_out_instead_of_being_refused() {
    let (nodes, dtc) = cluster().await;
    let gone = nodes.c().clone();
    gone.set_down(true).await;
    wait_until("the probes find c gone", || !dtc.sees_up(&gone)).await;
    // The outage's length is the scenario: c comes back 2 s after it went.
    let restart = tokio::spawn({
        let gone = gone.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            gone.set_down(false).await;
        }
    });
    let started = tokio::time::Instant::now();
    let a = create_group(&dtc, "g2").await;
    assert_eq!(a.status(), 201, "{}", a.text());
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it waited for c: {:?}",
        started.elapsed()
    );
    assert!(nodes.iter().all(|n| n.groups().contains("g2")));
    restart.await.unwrap();
}

/// The write in flight when its node goes away (a restart): its attempt is cut, the next ones
/// are refused. With the breaker on, once the node is held down its refused attempts are not
/// spent: the write waits for the node's return (within `retry.deadline`, 3 s here) and lands
/// there, instead of being rolled back — and fenced for its late-write check, since the cut
/// attempt may still land. Without the breaker the same write spends its attempts in
/// milliseconds and is rolled back.
async fn write_in_flight_when_its_node_restarts(
    fail_fast: bool,
) -> (Answer, Vec<dtc::node::RefNode>) {
    let (nodes, dtc) = cluster_with(|c| c.writes.fail_fast = fail_fast).await;
    let c = nodes.c();
    c.hold_next(1);
    let outage = async {
        wait_until("node c holds the write", || c.held_count() == 1).await;
        c.set_down(true).await;
        // The outage's length is the scenario: c is back 500 ms after it went.
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.set_down(false).await;
    };
    let (a, ()) = tokio::join!(create_group(&dtc, "g1"), outage);
    (a, nodes)
}

#[tokio::test]
async fn with_the_breaker_a_write_cut_by_its_nodes_restart_waits_for_it_and_lands() {
    let (a, nodes) = write_in_flight_when_its_node_restarts(true).await;
    assert_eq!(a.status(), 201, "{}", a.text());
    assert_eq!(a.state(), "succeeded", "{}", a.text());
    assert!(nodes.iter().all(|n| n.groups().contains("g1")));
}

#[tokio::test]
async fn without_the_breaker_the_same_write_spends_its_attempts_and_is_rolled_back() {
    let (a, _) = write_in_flight_when_its_node_restarts(false).await;
    // Rolled back, or `failed` when c's undo too found it gone (re-driven in the background).
    assert!(
        matches!(a.state(), "rolled_back" | "failed") && a.status().is_server_error(),
        "{}",
        a.text()
    );
}

#[tokio::test]
async fn status_names_the_down_node_and_why() {
    let (nodes, dtc) = cluster().await;
    let admin = dtc.serve_admin().await;
    nodes.b().set_down(true).await;
    wait_until("the probes find node b gone", || !dtc.sees_up(nodes.b())).await;
    let status = send(Method::GET, &format!("{admin}/status"), None, &[]).await;
    let b = &status.json()["nodes"][1];
    assert_eq!(b["name"], "b");
    assert!(
        matches!(b["state"].as_str(), Some("down" | "half_open")),
        "{b}"
    );
    assert!(b["down_since_ms"].as_u64().is_some(), "{b}");
    let reason = b["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("unreachable"), "{b}");
    assert_eq!(status.json()["nodes"][0]["state"], "up");
}
