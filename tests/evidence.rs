//! An undo never destroys what was there before: a write that changed nothing — a redundant
//! create answered 500 the way json-server answers a duplicate id, or a redundant create and
//! delete caught in flight by a SIGKILL — leaves every node holding exactly what it held.

mod support;

use dtc::journal::Journal;
use dtc::saga::{Reason, TxnState};
use http::Method;
use std::time::Duration;
use support::process::spawn_dtc;
use support::*;

/// Three nodes that answer a duplicate create the way json-server 0.17 does (500 text/html),
/// each holding `g1`.
async fn json_server_like_nodes_holding_g1() -> Vec<dtc::node::RefNode> {
    let nodes = three_nodes().await;
    for n in &nodes {
        n.set_duplicate_as_500(true);
        n.insert_group("g1");
    }
    nodes
}

#[tokio::test]
async fn a_duplicate_create_answered_500_everywhere_is_not_undone_and_the_answer_says_so() {
    let nodes = json_server_like_nodes_holding_g1().await;
    let dtc = start_proxy(test_config(&nodes)).await;
    let a = create_group(&dtc, "g1").await;
    assert_eq!((a.status().as_u16(), a.state()), (409, "rejected"));
    let p = a.json();
    assert_eq!(p["retryable"], false, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("nothing was undone and the nodes agree"),
        "{detail}"
    );
    for n in p["nodes"].as_array().unwrap() {
        assert_eq!(n["status"], 500, "what the node said: {n}");
        assert_eq!(n["read_back"], "target (200)", "{n}");
        assert!(n.get("compensation").is_none(), "{n}");
    }
    for n in &nodes {
        assert!(
            n.groups().contains("g1"),
            "node {} still holds g1",
            n.name()
        );
        assert!(
            writes(n, Method::DELETE).is_empty(),
            "no undo on {}",
            n.name()
        );
    }
    // The 500s count against the nodes' health (passive checks); once the probes bring them
    // back, a new group goes through as usual.
    wait_until("the nodes are up again", || {
        nodes.iter().all(|n| dtc.sees_up(n))
    })
    .await;
    let b = create_group(&dtc, "g2").await;
    assert_eq!(b.status(), 201);
    assert!(nodes.iter().all(|n| n.groups().contains("g2")));
}

#[tokio::test]
async fn without_a_read_back_a_duplicate_answered_500_is_failed_never_guessed() {
    let nodes = json_server_like_nodes_holding_g1().await;
    let mut cfg = test_config(&nodes);
    cfg.routes.iter_mut().for_each(|r| r.verify = None);
    let dtc = start_proxy(cfg).await;
    let a = create_group(&dtc, "g1").await;
    // Nothing tells whether the 500s changed anything: nothing is undone, the key is fenced.
    assert_eq!((a.status().as_u16(), a.state()), (502, "failed"));
    let detail = a.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("nothing was undone there"), "{detail}");
    for n in &nodes {
        assert!(n.groups().contains("g1"));
        assert!(writes(n, Method::DELETE).is_empty());
    }
    let txn = a.txn().to_string();
    let e = dtc.app.journal().unwrap().get(&txn).unwrap();
    assert!(matches!(e.reason, Some(Reason::OutcomeUnknown(_))), "{e:?}");
    assert!(dtc.app.journal().unwrap().fence_of("group/g1").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_a_redundant_create_and_delete_leaves_every_node_as_it_was() {
    let nodes = three_nodes().await;
    for n in &nodes {
        n.insert_group("g1"); // present everywhere: creating it again changes nothing
        n.hold_next(2); // both writes are held at every node: no answer reaches the journal
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&nodes);
    cfg.journal.dir = dir.path().join("journal").display().to_string();
    let first = spawn_dtc(&cfg, dir.path());
    let (create, delete) = (first.url.clone(), first.url.clone());
    let create = tokio::spawn(async move {
        try_send(
            Method::POST,
            &format!("{create}/v1/group/"),
            Some(&group("g1")),
            &[],
        )
        .await
    });
    let delete = tokio::spawn(async move {
        try_send(
            Method::DELETE,
            &format!("{delete}/v1/group/"),
            Some(&group("g2")),
            &[],
        )
        .await
    });
    wait_until("both writes are held at every node", || {
        nodes.iter().all(|n| n.held_count() == 2)
    })
    .await;
    first.crash();
    assert!(create.await.unwrap().is_err() && delete.await.unwrap().is_err());
    for n in &nodes {
        n.release_held();
    }
    let writes_before: Vec<usize> = nodes.iter().map(|n| n.write_count()).collect();
    // Recovery runs before the listener opens.
    let second = spawn_dtc(&cfg, dir.path());
    for n in &nodes {
        assert_eq!(
            n.groups().into_iter().collect::<Vec<_>>(),
            ["g1"],
            "node {}",
            n.name()
        );
    }
    let writes_after: Vec<usize> = nodes.iter().map(|n| n.write_count()).collect();
    assert_eq!(
        writes_before, writes_after,
        "recovery sent no undo, it read"
    );
    second.crash();
    let (journal, _) = Journal::open(&cfg.journal).unwrap();
    let txns = journal.list(None, 10);
    assert_eq!(txns.len(), 2);
    for t in &txns {
        assert_eq!(t.state, TxnState::Succeeded, "{t:?}");
        assert_eq!(t.reason, Some(Reason::CompletedUnanswered));
    }
    assert_eq!(journal.counts(), (0, 0), "nothing in doubt, nothing failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_doubt_write_recovery_cannot_judge_is_left_alone_until_the_re_drive_can() {
    let nodes = three_nodes().await;
    for n in &nodes {
        n.hold_next(1);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&nodes);
    cfg.journal.dir = dir.path().join("journal").display().to_string();
    cfg.journal.redrive_initial = Duration::from_millis(50);
    cfg.journal.redrive_max = Duration::from_millis(100);
    cfg.journal.verify_after = Duration::from_millis(100);
    let first = spawn_dtc(&cfg, dir.path());
    let url = format!("{}/v1/group/", first.url);
    let create =
        tokio::spawn(async move { try_send(Method::POST, &url, Some(&group("g1")), &[]).await });
    wait_until("the create is held at every node", || {
        nodes.iter().all(|n| n.held_count() == 1)
    })
    .await;
    first.crash();
    assert!(create.await.unwrap().is_err());
    // The copies held at a and b had landed (a node that processed them before dtc died); c
    // goes down.
    let (landed, down) = ([nodes.a(), nodes.b()], nodes.c());
    landed.iter().for_each(|n| n.insert_group("g1"));
    down.set_down(true).await;
    // At recovery a and b hold g1 and c cannot be read: whether g1 was there before is unknown,
    // so nothing is undone.
    let second = spawn_dtc(&cfg, dir.path());
    assert!(landed.iter().all(|n| n.groups().contains("g1")));
    assert!(writes(nodes.a(), Method::DELETE).is_empty());
    let fenced = delete_group(&second.url, "g1").await;
    assert_eq!(
        fenced.status(),
        409,
        "the key is fenced while it is undecided"
    );
    // c comes back: the re-drive reads it (absent: the prior state), so a and b are undone.
    down.set_down(false).await;
    wait_until("the re-drive undid the create on a and b", || {
        nodes.iter().all(|n| n.groups().is_empty())
    })
    .await;
    // The undo shows on the nodes before its end is journaled: the fence lifts only once the
    // rollback is recorded (and checked), so wait for that before the crash.
    eventually(
        "the rollback is journaled and the key writable again",
        DEADLINE,
        Duration::from_millis(20),
        async || delete_group(&second.url, "g1").await.status() != 409,
    )
    .await;
    second.crash();
    let (journal, _) = Journal::open(&cfg.journal).unwrap();
    let txns = journal.list(None, 10);
    let t = txns.iter().find(|t| t.begin.method == "POST").unwrap();
    assert_eq!(t.state, TxnState::RolledBack, "{t:?}");
    assert!(
        t.redrives >= 2,
        "recovery, then at least one re-drive: {}",
        t.redrives
    );
}
