//! Partial writes undone: rolled back on the nodes that applied them, per-node server-assigned
//! ids, snapshot compensation, compensation that cannot converge, writes nothing can undo.

mod support;

use dtc::config::Unmatched;
use http::Method;
use serde_json::json;
use support::*;

#[tokio::test]
async fn a_partial_write_is_rolled_back_where_it_applied() {
    // Not failing fast, so the write reaches nodes while c refuses connections.
    let (nodes, dtc) = cluster_with(|c| c.writes.fail_fast = false).await;
    let (applied, down) = ([nodes.a(), nodes.b()], nodes.c());
    down.set_down(true).await;
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.status(), 503);
    assert_eq!(a.state(), "rolled_back");
    assert_eq!(a.header("retry-after"), "1");
    let p = a.json();
    assert_eq!(p["state"], "rolled_back");
    assert_eq!(p["retryable"], true);
    let per_node = p["nodes"].as_array().unwrap();
    assert_eq!(per_node.len(), 3);
    for (i, n) in per_node.iter().enumerate().take(2) {
        assert_eq!(n["outcome"], "applied", "node {i}: {n}");
        assert_eq!(n["compensation"]["outcome"], "undone", "node {i}: {n}");
    }
    assert_eq!(per_node[2]["outcome"], "transient");
    assert!(
        per_node[2]["error"].as_str().unwrap().contains("connect"),
        "{}",
        per_node[2]
    );
    assert_eq!(per_node[2]["attempts"], 4);
    // A refused connection never reached the node: nothing to undo there.
    assert_eq!(per_node[2]["maybe_applied"], false);
    assert!(per_node[2].get("compensation").is_none());
    assert!(
        nodes.iter().all(|n| n.groups().is_empty()),
        "nothing left anywhere"
    );
    for n in applied {
        let undo = writes(n, Method::DELETE);
        assert_eq!(undo.len(), 1);
        assert_eq!(json(&undo[0].body), json!({"groupId": "g1"}));
    }
}

#[tokio::test]
async fn a_node_answering_500_after_applying_is_read_back_and_the_write_completes() {
    let (nodes, dtc) = cluster().await;
    let failing = nodes.c();
    failing.apply_then_fail_next(1);
    failing.fail_next(3);
    let a = create_group(&dtc, "g1").await;
    // c applied the write but answered 500 four times: a 500 is no evidence either way, so dtc
    // reads the group back on c, finds it, and every node holds the write.
    assert_eq!((a.status().as_u16(), a.state()), (201, "succeeded"));
    assert!(
        nodes.iter().all(|n| n.groups().contains("g1")),
        "the write is on every node"
    );
    assert!(writes(failing, Method::DELETE).is_empty(), "nothing undone");
}

#[tokio::test]
async fn a_node_that_keeps_answering_500_is_read_back_and_left_alone() {
    let (nodes, dtc) = cluster().await;
    let failing = nodes.c();
    failing.fail_next(100);
    let a = create_group(&dtc, "g1").await;
    // A 500 may follow an apply: the read-back shows c never got it; a and b are undone.
    assert_eq!((a.status().as_u16(), a.state()), (503, "rolled_back"));
    let p = a.json();
    assert_eq!(p["nodes"][2]["maybe_applied"], true);
    assert_eq!(p["nodes"][2]["read_back"], "prior (404)");
    assert!(p["nodes"][2].get("compensation").is_none(), "{p}");
    assert_eq!(p["nodes"][0]["compensation"]["outcome"], "undone");
    assert!(
        nodes.iter().all(|n| n.groups().is_empty()),
        "undone on a and b"
    );
    assert!(writes(failing, Method::DELETE).is_empty());
}

#[tokio::test]
async fn a_node_answering_500_that_cannot_be_read_leaves_the_write_failed() {
    let (nodes, dtc) = cluster_with(|c| c.routes.iter_mut().for_each(|r| r.verify = None)).await;
    let (applied, failing) = ([nodes.a(), nodes.b()], nodes.c());
    failing.fail_next(100);
    let a = create_group(&dtc, "g1").await;
    // No read-back: c's prior state is the one a and b had (they applied it), so undoing c is
    // safe, but c keeps failing and its undo cannot be confirmed.
    assert_eq!((a.status().as_u16(), a.state()), (502, "failed"));
    let p = a.json();
    assert_eq!(p["nodes"][2]["maybe_applied"], true);
    assert_eq!(p["nodes"][2]["compensation"]["outcome"], "failed");
    assert_eq!(p["nodes"][2]["compensation"]["status"], 500);
    assert!(
        applied.iter().all(|n| n.groups().is_empty()),
        "a and b were undone"
    );
}

#[tokio::test]
async fn a_rejection_on_one_node_rolls_back_with_409() {
    let (nodes, dtc) = cluster().await;
    let rejecting = nodes.b();
    rejecting.reject_next(1, 422);
    let a = create_group(&dtc, "g1").await;
    assert_eq!((a.status().as_u16(), a.state()), (409, "rolled_back"));
    let p = a.json();
    assert_eq!(p["retryable"], false);
    assert_eq!(p["nodes"][1]["outcome"], "rejected");
    assert!(
        p["nodes"][1].get("compensation").is_none(),
        "a rejecting node changed nothing"
    );
    assert!(nodes.iter().all(|n| n.groups().is_empty()));
}

#[tokio::test]
async fn a_compensation_that_cannot_reach_its_node_ends_failed() {
    let (nodes, dtc) = cluster().await;
    let client = half_done_create(&nodes, &dtc.url, "g1").await;
    // Node a goes away before it can be undone; c drops the write it holds.
    let (unreachable, undone, holder) = (nodes.a(), nodes.b(), nodes.c());
    unreachable.set_down(true).await;
    holder.set_down(true).await;
    let a = client.await.unwrap().expect("an answer");
    assert_eq!(a.status(), 502);
    assert_eq!(a.state(), "failed");
    let p = a.json();
    assert_eq!(p["state"], "failed");
    assert!(p["detail"].as_str().unwrap().contains("may differ"), "{p}");
    assert_eq!(p["nodes"][0]["outcome"], "applied");
    assert_eq!(p["nodes"][0]["compensation"]["outcome"], "failed");
    assert!(
        p["nodes"][0]["compensation"]["error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{p}"
    );
    assert_eq!(p["nodes"][1]["compensation"]["outcome"], "undone");
    assert_eq!(
        p["nodes"][2]["maybe_applied"], true,
        "the held write's outcome is unknown"
    );
    assert!(undone.groups().is_empty());
    assert!(
        unreachable.groups().contains("g1"),
        "a still holds it: that is why the state is failed"
    );
}

#[tokio::test]
async fn a_partial_write_without_a_compensation_rule_ends_failed() {
    let (nodes, dtc) = cluster_with(|c| c.routes.clear()).await;
    nodes.c().fail_next(100);
    let a = send(
        Method::POST,
        &dtc.at("/items"),
        Some(r#"{"name": "x"}"#),
        &[],
    )
    .await;
    assert_eq!((a.status().as_u16(), a.state()), (502, "failed"));
    let p = a.json();
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("no compensation rule"),
        "{p}"
    );
    assert_eq!(
        p["nodes"][0]["compensation"]["error"],
        "no compensation rule"
    );
}

#[tokio::test]
async fn unmatched_writes_can_be_refused_before_touching_any_node() {
    let (nodes, dtc) = cluster_with(|c| c.writes.unmatched = Some(Unmatched::Refuse)).await;
    let a = send(Method::POST, &dtc.at("/unknown/"), Some("{}"), &[]).await;
    assert_eq!((a.status().as_u16(), a.state()), (501, "rejected"));
    assert!(a.json()["detail"].as_str().unwrap().contains("no route"));
    assert!(nodes.iter().all(|n| n.write_count() == 0));
}

#[tokio::test]
async fn server_assigned_ids_are_undone_per_node() {
    let (nodes, dtc) = cluster().await;
    nodes.c().reject_next(1, 422);
    let a = send(
        Method::POST,
        &dtc.at("/items"),
        Some(r#"{"name": "x"}"#),
        &[],
    )
    .await;
    assert_eq!((a.status().as_u16(), a.state()), (409, "rolled_back"));
    // a assigned id 1, b id 101: each is undone with its own id.
    assert_eq!(writes(nodes.a(), Method::DELETE)[0].path, "/items/1");
    assert_eq!(writes(nodes.b(), Method::DELETE)[0].path, "/items/101");
    assert!(nodes.iter().all(|n| n.items().is_empty()));
}

#[tokio::test]
async fn a_rolled_back_delete_recreates_the_identical_representation() {
    let (nodes, dtc) = cluster().await;
    let put = send(
        Method::PUT,
        &dtc.at("/items/5"),
        Some(r#"{"name": "x", "tags": [1, 2]}"#),
        &[],
    )
    .await;
    assert_eq!((put.status().as_u16(), put.state()), (201, "succeeded"));
    let before: Vec<_> = nodes.iter().map(|n| n.items()).collect();
    nodes.c().reject_next(1, 409);
    let a = send(Method::DELETE, &dtc.at("/items/5"), None, &[]).await;
    assert_eq!((a.status().as_u16(), a.state()), (409, "rolled_back"));
    let after: Vec<_> = nodes.iter().map(|n| n.items()).collect();
    assert_eq!(
        before, after,
        "every node holds exactly what it held before"
    );
    let undo = writes(nodes.a(), Method::PUT);
    assert_eq!(undo.len(), 2, "the create, then the undo");
    assert_eq!(undo[1].path, "/items/5");
}

#[tokio::test]
async fn a_rolled_back_create_by_put_deletes_what_was_not_there_before() {
    let (nodes, dtc) = cluster().await;
    nodes.b().reject_next(1, 422);
    let a = send(
        Method::PUT,
        &dtc.at("/items/9"),
        Some(r#"{"name": "new"}"#),
        &[],
    )
    .await;
    assert_eq!((a.status().as_u16(), a.state()), (409, "rolled_back"));
    assert!(
        nodes.iter().all(|n| n.items().is_empty()),
        "absent before, absent after"
    );
}

#[tokio::test]
async fn concurrent_writes_to_one_key_leave_all_nodes_identical() {
    let (nodes, dtc) = cluster().await;
    for (i, n) in nodes.iter().enumerate() {
        n.set_delay(std::time::Duration::from_millis(i as u64));
    }
    let mut tasks = Vec::new();
    for i in 0..30 {
        let url = dtc.at("/v1/group/");
        let method = if i % 2 == 0 {
            Method::POST
        } else {
            Method::DELETE
        };
        tasks.push(tokio::spawn(async move {
            send(method, &url, Some(&group("same")), &[]).await.status()
        }));
    }
    for t in tasks {
        let status = t.await.unwrap();
        assert!([200, 201, 400, 404].contains(&status.as_u16()), "{status}");
    }
    let first = nodes.a().groups();
    assert!(nodes.iter().all(|n| n.groups() == first), "nodes diverged");
    // Same order everywhere: each node saw the same sequence of writes.
    let seq = |n: &dtc::node::RefNode| {
        n.requests()
            .iter()
            .filter(|r| r.method != Method::GET)
            .map(|r| r.method.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        nodes.iter().all(|n| seq(n) == seq(nodes.a())),
        "nodes saw writes in different orders"
    );
}

/// Found by the seeded chaos run: a create of a group every node already held, while node a
/// kept answering 500 and c answered 500 once before "already". Undoing on a and c (they "may
/// have applied" it) deleted the group they held before; the others show it was there all along.
#[tokio::test]
async fn a_write_that_changed_nothing_is_not_undone_where_a_500_made_it_ambiguous() {
    let (nodes, dtc) = cluster().await;
    for n in &nodes {
        n.insert_group("g1");
    }
    let (failing, failing_once) = (nodes.a(), nodes.c());
    failing.fail_next(100);
    failing_once.fail_next(1);
    let a = create_group(&dtc, "g1").await;
    // a's 500s are no evidence; reading g1 back on a finds it: every node holds the target state,
    // and b's "already" goes to the client.
    assert_eq!((a.status().as_u16(), a.state()), (400, "succeeded"));
    let p = a.json();
    assert!(p.get("nodes").is_none(), "the node's own answer: {p}");
    let a_reads = failing.requests();
    assert!(
        a_reads
            .iter()
            .any(|r| r.method == Method::GET && r.path == "/v1/group/g1/"),
        "a was read back"
    );
    assert!(
        nodes.iter().all(|n| writes(n, Method::DELETE).is_empty()),
        "nothing undone"
    );
    assert!(
        nodes.iter().all(|n| n.groups().contains("g1")),
        "what was there before stays"
    );
}
