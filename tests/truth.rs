//! The truth under real clients and real nodes: what a client retrying with its
//! `Idempotency-Key` is told matches what every node holds; a node that applies a write late,
//! after answering 503, is caught; two spellings of one resource take one turn; a create is not
//! sent twice to a node that ignores idempotency keys; background work takes the key's turn; a
//! node that lost data is not copied over the others; one undecidable create blocks no other.

mod support;

use http::{Method, StatusCode};
use std::time::Duration;
use support::double::{Behaviour, Double, Write};
use support::*;

const KEY: &str = "client-retry-7f3a";

fn holders(nodes: &[dtc::node::RefNode], id: &str) -> Vec<bool> {
    nodes.iter().map(|n| n.groups().contains(id)).collect()
}

// ---- idempotency keys ----

#[tokio::test]
async fn a_retry_with_the_same_key_after_a_rollback_applies_on_every_node() {
    let (nodes, dtc) = cluster_with(|c| c.writes.fail_fast = false).await;
    nodes.c().set_down(true).await;
    let first = create_group_keyed(&dtc, "g1", KEY).await;
    assert_eq!(first.state(), "rolled_back", "{}", first.text());
    assert_eq!(holders(&nodes, "g1"), [false, false, false]);

    nodes.c().set_down(false).await;
    wait_until("c seen up", || dtc.sees_up(nodes.c())).await;
    let retry = create_group_keyed(&dtc, "g1", KEY).await;
    // The nodes that undid the first attempt must apply the retry for real, not answer it from
    // their idempotency cache: the client is told 201 only when every node holds g1.
    assert_eq!(
        (retry.status(), retry.state()),
        (StatusCode::CREATED, "succeeded"),
        "{}",
        retry.text()
    );
    assert_ne!(retry.txn(), first.txn(), "a new transaction");
    assert_eq!(holders(&nodes, "g1"), [true, true, true]);
}

#[tokio::test]
async fn a_retry_after_success_gets_the_first_answer_and_touches_no_node() {
    let (nodes, dtc) = cluster().await;
    let first = create_group_keyed(&dtc, "g1", KEY).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let writes: Vec<usize> = nodes.iter().map(|n| n.write_count()).collect();

    let again = create_group_keyed(&dtc, "g1", KEY).await;
    assert_eq!(again.status(), StatusCode::CREATED, "not the nodes' 400");
    assert_eq!(again.body(), first.body());
    assert_eq!(again.txn(), first.txn(), "the first transaction's answer");
    assert_eq!(again.state(), "succeeded");
    assert_eq!(again.header("idempotent-replayed"), "true");
    let after: Vec<usize> = nodes.iter().map(|n| n.write_count()).collect();
    assert_eq!(after, writes, "no node touched");

    // Without the key the same request is a new write: the nodes say it exists already.
    let unkeyed = create_group(&dtc, "g1").await;
    assert_eq!(unkeyed.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn requests_with_one_key_at_once_run_one_transaction() {
    let (nodes, dtc) = cluster().await;
    nodes.c().hold_next(1);
    let url = dtc.at("/v1/group/");
    let send_one = || {
        let url = url.clone();
        tokio::spawn(async move {
            send(
                Method::POST,
                &url,
                Some(&group("g2")),
                &[("idempotency-key", KEY)],
            )
            .await
        })
    };
    let first = send_one();
    wait_until("c holds the first", || nodes.c().held_count() == 1).await;
    let second = send_one();
    // The second waits for the first's turn (it shows as queued on the key) rather than writing.
    let coordinator = dtc.app.proxy.coordinator.clone();
    wait_until("the second request waits behind the first", || {
        coordinator.idempotency_queued(KEY) == 2
    })
    .await;
    nodes.c().release_held();
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(a.status(), StatusCode::CREATED, "{}", a.text());
    assert_eq!((b.status(), b.txn()), (StatusCode::CREATED, a.txn()));
    for n in &nodes {
        assert_eq!(
            writes(n, Method::POST).len(),
            1,
            "node {} got one create",
            n.name()
        );
    }
}

#[tokio::test]
async fn a_key_reused_with_another_request_is_refused_with_422() {
    let (nodes, dtc) = cluster().await;
    let first = create_group_keyed(&dtc, "g1", KEY).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let other = create_group_keyed(&dtc, "g2", KEY).await;
    assert_eq!(
        other.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.text()
    );
    assert_eq!(other.problem()["blocking_transaction"], first.txn());
    assert_eq!(
        holders(&nodes, "g2"),
        [false, false, false],
        "no node touched"
    );
}

// ---- a node that applies a write late ----

/// dtc in front of two reference nodes and a double that takes the first write, answers
/// nothing, applies it `late` later, and answers every write meanwhile 503 (shedding load).
async fn with_late_node(late: Duration) -> (Vec<dtc::node::RefNode>, Double, Dtc) {
    let refs = vec![start_node("a", 1).await, start_node("b", 101).await];
    let double = Double::start(
        "c",
        Behaviour {
            shed_while_late: true,
            ..Behaviour::default()
        },
    )
    .await;
    double.script(&[Write::Late(late)]);
    let mut cfg = test_config(&refs);
    cfg.nodes.push(dtc::config::NodeConfig {
        name: "c".into(),
        url: double.url(),
        tls: None,
    });
    cfg.writes.fail_fast = false;
    cfg.timeouts.attempt = Duration::from_millis(150);
    cfg.journal.verify_after = Duration::from_millis(800);
    let dtc = start_proxy(cfg).await;
    (refs, double, dtc)
}

#[tokio::test]
async fn a_write_a_node_applies_after_answering_503_is_caught_by_the_late_write_check() {
    let (refs, c, dtc) = with_late_node(Duration::from_millis(400)).await;
    let a = create_group(&dtc, "g1").await;
    // c timed out once, then shed load with 503: dtc cannot know the first attempt is queued.
    assert_eq!(a.state(), "rolled_back", "{}", a.text());
    wait_until("c applied the held write", || c.pending_late() == 0).await;
    assert!(c.has("g1"), "the late write landed on c");
    let journal = dtc.app.journal().unwrap().clone();
    eventually(
        "the late write is undone (or the key listed failed)",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            let settled = journal.open_entries().is_empty();
            let agree = !c.has("g1") && refs.iter().all(|n| !n.groups().contains("g1"));
            let listed = !journal
                .list(Some(dtc::saga::TxnState::Failed), 10)
                .is_empty();
            async move { (settled && agree) || listed }
        },
    )
    .await;
    assert!(!c.has("g1") && refs.iter().all(|n| !n.groups().contains("g1")));
}

// ---- one resource, one key ----

#[tokio::test]
async fn two_spellings_of_one_resource_take_one_turn() {
    let (nodes, dtc) =
        cluster_with(|c| c.writes.unmatched = Some(dtc::config::Unmatched::Replicate)).await;
    nodes.c().hold_next(1);
    // The create without the trailing slash, then the delete with it, at once.
    let url = dtc.at("/v1/group");
    let create =
        tokio::spawn(async move { send(Method::POST, &url, Some(&group("g")), &[]).await });
    wait_until("c holds the create", || nodes.c().held_count() == 1).await;
    let url = dtc.at("/v1/group/");
    let delete =
        tokio::spawn(async move { send(Method::DELETE, &url, Some(&group("g")), &[]).await });
    let coordinator = dtc.app.proxy.coordinator.clone();
    let a_saw_delete = || !writes(nodes.a(), Method::DELETE).is_empty();
    wait_until(
        "the delete either reached a node or waits for the create",
        || a_saw_delete() || coordinator.queued("group/g") == 2,
    )
    .await;
    nodes.c().release_held();
    let (create, delete) = (create.await.unwrap(), delete.await.unwrap());
    assert_eq!(create.state(), "succeeded", "{}", create.text());
    assert_eq!(delete.state(), "succeeded", "{}", delete.text());
    assert_eq!(
        holders(&nodes, "g"),
        [false, false, false],
        "the delete came last everywhere"
    );
}

#[tokio::test]
async fn a_write_no_route_names_is_refused_by_default_when_routes_are_declared() {
    let (nodes, dtc) = cluster().await;
    let a = send(Method::PUT, &dtc.at("/v1/group/g1/"), Some("{}"), &[]).await;
    assert_eq!(a.status(), StatusCode::NOT_IMPLEMENTED, "{}", a.text());
    assert!(nodes.iter().all(|n| n.write_count() == 0));
}

// ---- no blind re-send; a create without a key fences nothing else ----

#[tokio::test]
async fn a_create_is_not_sent_again_to_a_node_that_ignores_idempotency_keys() {
    let doubles = [
        Double::start("a", Behaviour::default()).await,
        Double::start("b", Behaviour::default()).await,
        Double::start("c", Behaviour::default()).await,
    ];
    // c applies the create, then its answer is lost (500): the node holds one item.
    doubles[2].script(&[Write::ApplyThenFail(500)]);
    let urls: Vec<(String, String)> = doubles.iter().map(|d| (d.name.clone(), d.url())).collect();
    let dtc = start_proxy(double::config_for(&urls)).await;
    let a = send(
        Method::POST,
        &dtc.at("/items"),
        Some(r#"{"name":"A"}"#),
        &[],
    )
    .await;
    for d in &doubles {
        let posts = d
            .received()
            .iter()
            .filter(|r| r.method == Method::POST)
            .count();
        assert_eq!(posts, 1, "node {} got the create once", d.name);
    }
    assert_eq!(doubles[2].items().len(), 1, "exactly one copy on c");
    // dtc cannot read an item whose id it never learned: the create is listed, not guessed.
    assert_eq!(a.state(), "failed", "{}", a.text());

    // That undecidable create fences nothing else: the next create goes through.
    let b = send(
        Method::POST,
        &dtc.at("/items"),
        Some(r#"{"name":"B"}"#),
        &[],
    )
    .await;
    assert_eq!(
        (b.status(), b.state()),
        (StatusCode::CREATED, "succeeded"),
        "{}",
        b.text()
    );
}

// ---- background work takes the key's turn ----

#[tokio::test]
async fn a_redrive_holds_the_resource_so_a_resolve_and_a_new_write_wait_for_it() {
    let nodes = [
        Double::start("a", Behaviour::default()).await,
        Double::start("b", Behaviour::default()).await,
        Double::start("c", Behaviour::default()).await,
    ];
    let urls: Vec<(String, String)> = nodes.iter().map(|d| (d.name.clone(), d.url())).collect();
    let mut cfg = double::config_for(&urls);
    cfg.writes.fail_fast = false;
    cfg.journal.redrive_initial = Duration::from_millis(100);
    cfg.journal.redrive_max = Duration::from_millis(200);
    let dtc = start_proxy(cfg).await;
    let admin = dtc.serve_admin().await;

    // a and b apply the create but their answers are lost (500; the retry says "already"); c
    // refuses it (503) and cannot be read: no node's prior state is known, nothing is undone,
    // the write is failed. The re-drive reads c (absent), so it undoes a and b; a holds that
    // undo until the test lets it go.
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    a.script(&[Write::ApplyThenFail(500), Write::Normal, Write::Held]);
    b.script(&[Write::ApplyThenFail(500)]);
    c.script(&[Write::Refuse(503); 4]);
    c.fail_reads(8);
    let failed = create_group(&dtc, "g1").await;
    assert_eq!(failed.state(), "failed", "{}", failed.text());
    wait_until("the re-drive's undo is held on a", || a.held() == 1).await;

    let resolve_url = format!("{admin}/transactions/{}/resolve", failed.txn());
    let resolve = tokio::spawn(async move {
        send(
            Method::POST,
            &resolve_url,
            Some(r#"{"reason":"checked by hand"}"#),
            &[],
        )
        .await
    });
    let url = dtc.at("/v1/group/");
    let create =
        tokio::spawn(async move { send(Method::POST, &url, Some(&group("g1")), &[]).await });
    let coordinator = dtc.app.proxy.coordinator.clone();
    wait_until(
        "the new create finished, or it and the resolve wait for the re-drive",
        || create.is_finished() || coordinator.queued("group/g1") == 3,
    )
    .await;
    a.release();
    let created = create.await.unwrap();
    resolve.await.unwrap();
    let journal = dtc.app.journal().unwrap().clone();
    wait_until("the re-drive recorded what its undo did", || {
        a.held() == 0 && journal.get(failed.txn()).is_some_and(|e| e.redrives >= 1)
    })
    .await;
    assert_eq!(created.state(), "succeeded", "{}", created.text());
    let held: Vec<bool> = nodes.iter().map(|n| n.has("g1")).collect();
    assert_eq!(
        held,
        [true, true, true],
        "the acknowledged create survives the re-drive's undo"
    );
}

// ---- a node that lost data ----

#[tokio::test]
async fn a_node_that_lost_an_acknowledged_write_is_listed_and_the_others_keep_it() {
    let doubles = [
        Double::start("a", Behaviour::default()).await,
        Double::start("b", Behaviour::default()).await,
        Double::start("c", Behaviour::default()).await,
    ];
    let urls: Vec<(String, String)> = doubles.iter().map(|d| (d.name.clone(), d.url())).collect();
    let mut cfg = double::config_for(&urls);
    cfg.timeouts.attempt = Duration::from_millis(100);
    let dtc = start_proxy(cfg).await;
    assert_eq!(create_group(&dtc, "g1").await.state(), "succeeded");

    // c comes back from a crash without g1. A duplicate create follows: a and b answer it 500
    // (as json-server does for a duplicate id), c takes it and never answers.
    doubles[2].lose("g1");
    doubles[0].script(&[Write::Refuse(500); 4]);
    doubles[1].script(&[Write::Refuse(500); 4]);
    doubles[2].script(&[Write::Hang; 4]);
    let dup = create_group(&dtc, "g1").await;
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
    let journal = dtc.app.journal().unwrap().clone();
    assert!(
        journal
            .list(Some(dtc::saga::TxnState::Failed), 10)
            .iter()
            .any(|e| e.begin.txn == dup.txn()),
        "the divergence is listed"
    );
}

// ---- a node's own 500 against a gateway's 504 ----

/// c answers every attempt of the next create `status`, unapplied; a and b apply it, so the
/// create is rolled back. Returns the answer.
async fn rolled_back_over(nodes: &[dtc::node::RefNode], dtc: &Dtc, status: u16) -> Answer {
    nodes.c().reject_next(10, status);
    let a = create_group(dtc, "g1").await;
    assert_eq!(a.state(), "rolled_back", "{}", a.text());
    assert_eq!(holders(nodes, "g1"), [false, false, false]);
    nodes.c().clear_faults();
    a
}

#[tokio::test]
async fn a_rollback_over_a_nodes_own_500s_leaves_the_resource_open() {
    let (nodes, dtc) = cluster().await;
    rolled_back_over(&nodes, &dtc, 500).await;
    // The 500s were finished requests: maybe applied (the rollback read and undid), but none is
    // left to land later, so the key waits for no check.
    let again = create_group(&dtc, "g1").await;
    assert_eq!(again.state(), "succeeded", "{}", again.text());
    assert_eq!(holders(&nodes, "g1"), [true, true, true]);
}

#[tokio::test]
async fn a_gateways_504_whose_backend_applies_late_fences_the_resource_until_its_check_undoes_it() {
    let refs = vec![start_node("a", 1).await, start_node("b", 101).await];
    let c = Double::start("c", Behaviour::default()).await;
    // Every attempt: 504 at once from the gateway, applied 300 ms later by its backend.
    c.script(&[Write::GatewayTimeout(Duration::from_millis(300)); 4]);
    let mut cfg = test_config(&refs);
    cfg.nodes.push(dtc::config::NodeConfig {
        name: "c".into(),
        url: c.url(),
        tls: None,
    });
    cfg.journal.verify_after = Duration::from_millis(800);
    let dtc = start_proxy(cfg).await;
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.state(), "rolled_back", "{}", a.text());
    // The 504s speak for requests still under way behind the gateway: the key waits.
    let writes = || refs.iter().map(|n| n.write_count()).sum::<usize>() + c.received().len();
    let before = writes();
    let fenced = create_group(&dtc, "g1").await;
    assert_eq!(fenced.state(), "to_be_retried", "{}", fenced.text());
    assert!(
        !fenced.header("retry-after").is_empty(),
        "says when to retry"
    );
    assert_eq!(writes(), before, "no node touched");
    wait_until("the backend applied the late writes", || {
        c.pending_late() == 0
    })
    .await;
    assert!(c.has("g1"), "a late write landed on c");
    let undone = || {
        let deleted = c
            .received()
            .iter()
            .any(|r| r.method == Method::DELETE && r.group == "g1");
        deleted && !c.has("g1")
    };
    eventually(
        "the late-write check undid it on c",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let done = undone();
            async move { done }
        },
    )
    .await;
    assert!(refs.iter().all(|n| !n.groups().contains("g1")));
    eventually(
        "the key is open again",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let dtc = &dtc;
            async move { create_group(dtc, "g1").await.state() == "succeeded" }
        },
    )
    .await;
    assert!(c.has("g1") && refs.iter().all(|n| n.groups().contains("g1")));
}
