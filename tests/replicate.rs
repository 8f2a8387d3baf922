//! Writes replicated to every node: the happy path, transient faults that retries absorb, fail
//! fast on a down node, "already" answers, uniform rejections, and transparency.

mod support;

use http::Method;
use support::*;

#[tokio::test]
async fn a_write_lands_on_every_node_with_the_nodes_answer() {
    let (nodes, dtc) = cluster().await;
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.status(), 201);
    assert_eq!(a.json(), serde_json::json!({"groupId": "g1"}));
    assert_eq!(a.state(), "succeeded");
    let txn = a.txn().to_string();
    assert_eq!(txn.len(), 20, "transaction id: {txn}");
    for n in &nodes {
        assert!(n.groups().contains("g1"), "node {} lacks g1", n.name());
        let w = writes(n, Method::POST);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].headers.get("idempotency-key").unwrap(), txn.as_str());
        assert_eq!(w[0].headers.get("host").unwrap(), &n.addr().to_string());
    }
    let r = read_group(&dtc, "g1").await;
    assert_eq!(
        (r.status().as_u16(), r.json()),
        (200, serde_json::json!({"groupId": "g1"}))
    );
}

#[tokio::test]
async fn nodes_get_a_key_of_the_transaction_never_the_clients() {
    let (nodes, dtc) = cluster().await;
    let a = create_group_keyed(&dtc, "g1", "client-key-7").await;
    assert_eq!(a.status(), 201);
    // dtc keeps the client's key (see tests/truth.rs); every node gets the same key of this
    // transaction's own, which no later transaction reuses.
    let keys: Vec<String> = nodes
        .iter()
        .map(|n| {
            let got = &writes(n, Method::POST)[0].headers;
            got.get("idempotency-key")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    assert!(keys[0].starts_with(a.txn()), "{keys:?}");
    assert!(!keys[0].contains("client-key-7"), "{keys:?}");
}

#[tokio::test]
async fn a_500_once_is_retried_and_converges() {
    let (nodes, dtc) = cluster().await;
    let flaky = nodes.b();
    flaky.fail_next(1);
    let a = create_group(&dtc, "g1").await;
    assert_eq!((a.status().as_u16(), a.state()), (201, "succeeded"));
    assert_eq!(flaky.write_count(), 2, "node b was retried once");
    assert!(nodes.iter().all(|n| n.groups().contains("g1")));
}

#[tokio::test]
async fn apply_then_fail_is_retried_and_the_retry_sees_already() {
    let (nodes, dtc) = cluster().await;
    let flaky = nodes.c();
    flaky.apply_then_fail_next(1);
    let a = create_group(&dtc, "g1").await;
    // Node c answered 500 (having applied), then 400 "exists": converged.
    assert_eq!((a.status().as_u16(), a.state()), (201, "succeeded"));
    assert_eq!(flaky.write_count(), 2);
    assert!(nodes.iter().all(|n| n.groups().contains("g1")));
    assert!(
        writes(flaky, Method::DELETE).is_empty(),
        "nothing was undone"
    );
}

#[tokio::test]
async fn already_on_one_node_counts_as_converged_and_is_not_undone() {
    let (nodes, dtc) = cluster().await;
    let already = nodes.a();
    already.insert_group("g1");
    let a = create_group(&dtc, "g1").await;
    assert_eq!(
        (a.status().as_u16(), a.state()),
        (201, "succeeded"),
        "answer of a node that applied"
    );
    assert!(nodes.iter().all(|n| n.groups().contains("g1")));
    assert!(nodes.iter().all(|n| writes(n, Method::DELETE).is_empty()));
}

#[tokio::test]
async fn a_create_that_exists_everywhere_passes_the_400_through() {
    let (nodes, dtc) = cluster().await;
    for n in &nodes {
        n.insert_group("g1");
    }
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.status(), 400, "what a single node would answer");
    assert_eq!(a.state(), "succeeded");
}

#[tokio::test]
async fn all_nodes_rejecting_alike_passes_the_answer_through_unchanged() {
    let (nodes, dtc) = cluster().await;
    for n in &nodes {
        n.reject_next(1, 422);
    }
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.status(), 422);
    assert_eq!(a.state(), "rejected");
    assert_eq!(
        a.header("content-type"),
        "application/json",
        "the node's own body"
    );
    assert!(
        nodes
            .iter()
            .all(|n| n.groups().is_empty() && n.write_count() == 1),
        "not retried, nothing applied"
    );
}

#[tokio::test]
async fn a_known_down_node_fails_the_write_fast_touching_no_node() {
    let (nodes, dtc) = cluster().await;
    let down = nodes.c();
    down.set_down(true).await;
    wait_until("the proxy sees node c down", || !dtc.sees_up(down)).await;
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.status(), 503);
    assert_eq!(a.state(), "to_be_retried");
    assert_eq!(a.header("retry-after"), "1");
    let p = a.problem();
    assert_eq!(p["state"], "to_be_retried");
    assert_eq!(p["retryable"], true);
    assert!(
        p["detail"].as_str().unwrap().contains("node c is down"),
        "{p}"
    );
    assert_eq!(p["transaction"], a.txn());
    assert!(
        nodes.iter().all(|n| n.write_count() == 0),
        "no node touched"
    );
    let txn = a.txn().to_string();
    let journal = dtc.app.journal().unwrap().clone();
    wait_until("the refusal is journaled", || journal.get(&txn).is_some()).await;
    let entry = journal.get(&txn).unwrap();
    assert_eq!(entry.state, dtc::saga::TxnState::ToBeRetried);
    let outcomes: Vec<_> = entry.reports().iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, vec![dtc::saga::Class::NotSent; 3]);
    // The node comes back: probes bring it up and writes flow again.
    down.set_down(false).await;
    wait_until("the proxy sees node c up", || dtc.sees_up(down)).await;
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.status(), 201);
}

#[tokio::test]
async fn a_delete_with_a_json_body_reaches_every_node() {
    let (nodes, dtc) = cluster().await;
    for n in &nodes {
        n.insert_group("g1");
    }
    let a = delete_group(&dtc, "g1").await;
    assert_eq!((a.status().as_u16(), a.state()), (200, "succeeded"));
    for n in &nodes {
        let d = writes(n, Method::DELETE);
        assert_eq!(d.len(), 1);
        assert_eq!(json(&d[0].body), serde_json::json!({"groupId": "g1"}));
        assert!(n.groups().is_empty());
    }
    let again = delete_group(&dtc, "g1").await;
    assert_eq!(
        (again.status().as_u16(), again.state()),
        (404, "succeeded"),
        "absent everywhere: converged"
    );
}

#[tokio::test]
async fn headers_pass_through_except_hop_by_hop_and_host() {
    let (nodes, dtc) = cluster().await;
    let hdrs = [
        ("x-request-id", "r-1"),
        ("connection", "x-conn-only"),
        ("x-conn-only", "1"),
        ("authorization", "Bearer t"),
    ];
    let a = send(
        Method::POST,
        &dtc.at("/v1/group/?trace=1"),
        Some(&group("g1")),
        &hdrs,
    )
    .await;
    assert_eq!(a.status(), 201);
    for n in &nodes {
        let w = &writes(n, Method::POST)[0];
        assert_eq!(w.path, "/v1/group/?trace=1", "query passes through");
        assert_eq!(w.headers.get("x-request-id").unwrap(), "r-1");
        assert_eq!(w.headers.get("authorization").unwrap(), "Bearer t");
        assert!(
            w.headers.get("x-conn-only").is_none(),
            "named by Connection: hop-by-hop"
        );
    }
}

#[tokio::test]
async fn http2_prior_knowledge_clients_are_served() {
    let (nodes, dtc) = cluster().await;
    let c = client(true);
    let a = send_with(
        &c,
        request(Method::POST, &dtc.at("/v1/group/"), Some(&group("g2")), &[]),
    )
    .await
    .unwrap();
    assert_eq!(a.status(), 201);
    let r = send_with(
        &c,
        request(Method::GET, &dtc.at("/v1/group/g2/"), None, &[]),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(nodes.iter().all(|n| n.groups().contains("g2")));
}

#[tokio::test]
async fn the_library_api_runs_a_transaction_without_the_listener() {
    let (nodes, dtc) = cluster().await;
    let coordinator = &dtc.app.proxy.coordinator;
    let o = coordinator
        .execute(dtc::saga::WriteRequest::json(
            Method::POST,
            "/v1/group/",
            &group("lib"),
        ))
        .await;
    assert_eq!(o.state, dtc::saga::TxnState::Succeeded);
    assert_eq!(o.nodes.len(), 3);
    assert!(
        o.nodes
            .iter()
            .all(|n| n.status == Some(201) && n.attempts == 1)
    );
    assert!(nodes.iter().all(|n| n.groups().contains("lib")));
}
