//! Nothing forgotten: a crash mid-write is undone at the next start, a failed compensation is
//! re-driven until it converges, late writes are caught, a damaged journal tail is cut, and a
//! SIGTERM drains in-flight writes.

mod support;

use dtc::config::Config;
use dtc::saga::TxnState;
use http::{Method, StatusCode};
use std::process::Command;
use std::time::Duration;
use support::process::spawn_dtc;
use support::*;

/// Re-drive and read-back checks that run within a test's patience; writes are not refused
/// while a node is down, so a compensation can fail.
fn quick_redrive(c: &mut Config) {
    c.journal.redrive_initial = Duration::from_millis(50);
    c.journal.redrive_max = Duration::from_millis(100);
    c.journal.verify_after = Duration::from_millis(100);
    c.writes.fail_fast = false;
}

/// A create of `id` that a and b apply while c holds it; a and c then go down, so the rollback
/// cannot reach a and the transaction ends `failed`. Returns its transaction id.
async fn failed_create(nodes: &[dtc::node::RefNode], dtc: &Dtc, id: &str) -> String {
    let client = half_done_create(nodes, &dtc.url, id).await;
    let (unreachable, holder) = (nodes.a(), nodes.c());
    unreachable.set_down(true).await;
    holder.set_down(true).await;
    let a = client.await.unwrap().expect("an answer");
    assert_eq!(a.state(), "failed");
    a.txn().to_string()
}

/// Brings a and c back and waits for the background re-drive to roll `txn` back.
async fn nodes_back_and_rolled_back(nodes: &[dtc::node::RefNode], dtc: &Dtc, txn: &str) {
    let (unreachable, holder) = (nodes.a(), nodes.c());
    unreachable.set_down(false).await;
    holder.set_down(false).await;
    let journal = dtc.app.journal().unwrap().clone();
    wait_until("the re-drive rolled it back", || {
        journal
            .get(txn)
            .is_some_and(|e| e.state == TxnState::RolledBack)
    })
    .await;
}

fn journal_config(nodes: &[dtc::node::RefNode], dir: &std::path::Path) -> Config {
    let mut cfg = test_config(nodes);
    cfg.journal.dir = dir.join("journal").display().to_string();
    cfg
}

/// Starts the real binary on `cfg`, lets a and b apply a create of g1 while c holds it, and
/// SIGKILLs dtc: the client never gets an answer.
async fn crashed_mid_create(nodes: &[dtc::node::RefNode], cfg: &Config, dir: &std::path::Path) {
    let mut first = spawn_dtc(cfg, dir);
    let client = half_done_create(nodes, first.url.as_str(), "g1").await;
    first.child.kill().unwrap(); // SIGKILL: no chance to clean up
    first.child.wait().unwrap();
    assert!(
        client.await.unwrap().is_err(),
        "the client never got an answer"
    );
}

/// Makes `node` drop the write it holds, unapplied.
async fn cut_held(node: &dtc::node::RefNode) {
    node.drop_held();
    wait_until("the held write dropped", || node.held_count() == 0).await;
}

/// Starts dtc again (recovery runs before the listener opens), stops it, and returns the one
/// transaction its journal holds.
fn recovered(cfg: &Config, dir: &std::path::Path) -> dtc::journal::record::Entry {
    spawn_dtc(cfg, dir).crash();
    let (journal, _) = dtc::journal::Journal::open(&cfg.journal).unwrap();
    let txns = journal.list(None, 10);
    assert_eq!(txns.len(), 1, "none lost");
    let txn = txns.into_iter().next().unwrap();
    assert_eq!(
        journal.counts(),
        (0, 0),
        "nothing left in doubt or failed: {:?} {:?} {:?}",
        txn.state,
        txn.reason,
        txn.nodes
    );
    txn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_write_is_undone_at_the_next_start() {
    let nodes = three_nodes().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = journal_config(&nodes, dir.path());
    crashed_mid_create(&nodes, &cfg, dir.path()).await;
    // c's held request dies with its connection, unapplied. Whether a server still runs a
    // request whose client is gone is up to the server (the reference node's hyper drops it
    // once it notices the closed connection; once in CI it had not yet when c was released, c
    // applied, and recovery rightly completed the write): the test decides it.
    cut_held(nodes.c()).await;
    let txn = recovered(&cfg, dir.path());
    assert!(
        nodes.iter().all(|n| !n.groups().contains("g1")),
        "undone everywhere: {:?}",
        nodes.iter().map(|n| n.groups()).collect::<Vec<_>>()
    );
    assert_eq!(
        txn.state,
        TxnState::RolledBack,
        "{:?} {:?}",
        txn.reason,
        txn.nodes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_every_node_applied_completes_the_write_at_the_next_start() {
    let nodes = three_nodes().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = journal_config(&nodes, dir.path());
    crashed_mid_create(&nodes, &cfg, dir.path()).await;
    // c's server ran the held request although its client was gone (the reference node's
    // hyper drops it once it notices the closed connection, which it may not do in time): every
    // node now holds g1.
    let holder = nodes.c();
    cut_held(holder).await;
    holder.insert_group("g1");
    let txn = recovered(&cfg, dir.path());
    assert!(
        nodes.iter().all(|n| n.groups().contains("g1")),
        "kept everywhere: {:?}",
        nodes.iter().map(|n| n.groups()).collect::<Vec<_>>()
    );
    assert_eq!(
        txn.state,
        TxnState::Succeeded,
        "{:?} {:?}",
        txn.reason,
        txn.nodes
    );
    assert_eq!(txn.reason, Some(dtc::txn::Reason::CompletedUnanswered));
}

#[tokio::test]
async fn a_failed_compensation_is_re_driven_when_the_node_comes_back_and_fences_its_resource() {
    let (nodes, dtc) = cluster_with(quick_redrive).await;
    let txn = failed_create(&nodes, &dtc, "g1").await;
    let journal = dtc.app.journal().unwrap().clone();
    assert_eq!(journal.get(&txn).unwrap().state, TxnState::Failed);
    let txn_url = format!("{}/transactions/{txn}", dtc.serve_admin().await);
    let shown = send(Method::GET, &txn_url, None, &[]).await;
    assert_eq!(shown.json()["state"], "failed", "the admin API lists it");
    let listed = send(
        Method::GET,
        &txn_url.replace(&format!("/{txn}"), "?state=failed"),
        None,
        &[],
    )
    .await;
    assert_eq!(listed.json()["transactions"][0]["txn"], txn.as_str());
    // While it is unresolved, the resource is fenced.
    let fenced = delete_group(&dtc, "g1").await;
    assert_eq!(fenced.status(), 409);
    assert_eq!(fenced.json()["blocking_transaction"], txn.as_str());
    // The nodes come back; no client does anything; the re-drive converges.
    nodes_back_and_rolled_back(&nodes, &dtc, &txn).await;
    assert!(nodes.iter().all(|n| !n.groups().contains("g1")));
    assert!(journal.get(&txn).unwrap().redrives >= 1);
    let shown = send(Method::GET, &txn_url, None, &[]).await;
    assert_eq!(
        shown.json()["state"],
        "rolled_back",
        "the admin API shows the change"
    );
    // c's write was cut mid-flight (unknown outcome): the rollback is checked once more there.
    wait_until("the rollback is verified", || {
        journal.fence_of("group/g1").is_none()
    })
    .await;
    let after = create_group(&dtc, "g1").await;
    assert_eq!(after.status(), 201, "unfenced once converged");
}

#[tokio::test]
async fn a_late_write_after_a_rollback_is_caught_and_undone() {
    let (nodes, dtc) = cluster_with(|c| {
        c.retry.attempts = 1;
        c.timeouts.attempt = Duration::from_millis(300);
        c.journal.verify_after = Duration::from_millis(500);
    })
    .await;
    let late = nodes.c();
    late.hold_next(1);
    let a = create_group(&dtc, "g1").await;
    // c never answered: its outcome is unknown; the read-back found it in the prior state (404).
    assert_eq!(a.state(), "rolled_back");
    assert_eq!(a.json()["nodes"][2]["maybe_applied"], true);
    let txn = a.txn().to_string();
    let journal = dtc.app.journal().unwrap().clone();
    // The held write lands late on c, after the rollback (as a node that processed it slowly would).
    late.insert_group("g1");
    // Until the check, the resource is fenced: writes to it are refused, touching no node, with
    // a Retry-After that points past the check (503, not a 409 that asks for a person).
    let fenced = create_group(&dtc, "g1").await;
    assert_eq!(
        (fenced.status(), fenced.state()),
        (StatusCode::SERVICE_UNAVAILABLE, "to_be_retried")
    );
    assert_eq!(fenced.problem()["blocking_transaction"], txn.as_str());
    assert!(fenced.header("retry-after").parse::<u64>().unwrap() >= 1);
    wait_until("the check undid the late write", || {
        !late.groups().contains("g1")
    })
    .await;
    wait_until("the rollback is verified", || {
        journal.get(&txn).is_some_and(|e| !e.verify_pending)
    })
    .await;
    let read_back = late
        .requests()
        .iter()
        .any(|r| r.method == Method::GET && r.path == "/v1/group/g1/");
    assert!(read_back, "the check read the group back on c");
    let again = create_group(&dtc, "g1").await;
    assert_eq!(again.status(), 201, "unfenced once verified");
}

#[tokio::test]
async fn a_damaged_journal_tail_is_cut_and_the_rest_recovered() {
    for damage in ["torn", "garbage"] {
        let nodes = three_nodes().await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = journal_config(&nodes, dir.path());
        let len = {
            let dtc = start_proxy(cfg.clone()).await;
            for g in ["g1", "g2", "g3"] {
                assert_eq!(create_group(&dtc, g).await.status(), 201);
            }
            dtc.app.journal().unwrap().flush().await.unwrap();
            // Where the records end; the file goes on with the zeros it was grown by.
            dtc.app.journal().unwrap().size_bytes()
        };
        let file = std::path::Path::new(&cfg.journal.dir).join("journal.log");
        match damage {
            "torn" => std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len(len - 5)
                .unwrap(),
            _ => {
                use std::os::unix::fs::FileExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&file)
                    .unwrap()
                    .write_all_at(b"\x07\x00\x00\x00garbage!!", len)
                    .unwrap();
            }
        }
        let (journal, tail) = dtc::journal::Journal::open(&cfg.journal).unwrap();
        assert!(tail.cut_bytes > 0, "{damage}: the damage is reported");
        let ok = journal.list(Some(TxnState::Succeeded), 10).len();
        let expected = if damage == "torn" { 2 } else { 3 };
        assert_eq!(ok, expected, "{damage}: intact transactions recovered");
        drop(journal);
        // The proxy starts on it and serves.
        let dtc = start_proxy(cfg.clone()).await;
        assert_eq!(read_group(&dtc, "g1").await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_writes_finish_and_exits_0() {
    let nodes = three_nodes().await;
    for n in &nodes {
        n.set_delay(Duration::from_millis(300));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = journal_config(&nodes, dir.path());
    let mut p = spawn_dtc(&cfg, dir.path());
    let mut clients = Vec::new();
    for i in 0..8 {
        let url = format!("{}/v1/group/", p.url);
        clients.push(tokio::spawn(async move {
            send(Method::POST, &url, Some(&group(&format!("t{i}"))), &[]).await
        }));
    }
    wait_until("the writes reached the nodes", || {
        nodes.a().write_count() == 8
    })
    .await;
    let pid = p.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    for c in clients {
        let a = c.await.unwrap();
        assert_eq!((a.status().as_u16(), a.state()), (201, "succeeded"));
    }
    let status = p.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(nodes.iter().all(|n| n.groups().len() == 8));
    let (journal, _) = dtc::journal::Journal::open(&cfg.journal).unwrap();
    assert_eq!(journal.counts(), (0, 0), "no in-doubt or failed entries");
    assert_eq!(journal.list(Some(TxnState::Succeeded), 100).len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_transactions_are_compacted_away_keeping_a_window() {
    use dtc::journal::record::{Begin, now_ms};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = dtc::config::JournalConfig {
        dir: dir.path().display().to_string(),
        keep_finished: 10,
        ..Default::default()
    };
    cfg.durability = dtc::config::DurabilityMode::None;
    let (journal, _) = dtc::journal::Journal::open(&cfg).unwrap();
    let begin = |i: usize| Begin {
        txn: format!("t{i:05}"),
        at_ms: now_ms(),
        generation: 1,
        method: http::Method::POST,
        path: "/v1/group/".into(),
        key: format!("group/{i}"),
        route: None,
        nodes: vec![("a".into(), "http://127.0.0.1:1".into())],
        headers: vec![],
        undo: vec![None],
        verify: None,
        pre: vec![],
        ..Begin::default()
    };
    // One failed transaction stays open across compactions.
    journal.begin(begin(0)).await.unwrap();
    journal
        .end("t00000", TxnState::Failed, None, vec![], None)
        .await
        .unwrap();
    for i in 1..=5000 {
        journal.begin(begin(i)).await.unwrap();
        journal
            .end(&format!("t{i:05}"), TxnState::Succeeded, None, vec![], None)
            .await
            .unwrap();
    }
    journal.flush().await.unwrap();
    let bytes_now = journal.size_bytes();
    drop(journal);
    let (journal, tail) = dtc::journal::Journal::open(&cfg).unwrap();
    assert_eq!(tail.cut_bytes, 0);
    assert_eq!(
        journal.get("t00000").unwrap().state,
        TxnState::Failed,
        "open business is never compacted away"
    );
    assert!(
        journal.get("t05000").is_some(),
        "the newest finished ones are kept"
    );
    assert!(
        journal.get("t00001").is_none(),
        "old finished ones are gone"
    );
    let kept = journal.list(None, 100_000).len();
    assert_eq!(kept, 1 + 10, "the open one and the window of 10");
    assert!(
        bytes_now < 1_500_000,
        "the log was rewritten, not grown without bound: {bytes_now} bytes"
    );
}

/// The kinds of record (`begin`, `node`, `end`, ...) the journal in `dir` holds for `txn`, and
/// for each `node` record the node's index, in file order.
fn records_of(dir: &std::path::Path, txn: &str) -> Vec<String> {
    let opts = dtc::journal::log::LogOptions::new(dir, dtc::journal::log::Durability::None);
    let (_log, records, _) = dtc::journal::log::Log::open(opts).unwrap();
    records
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(r).unwrap())
        .filter(|v| v["txn"] == txn || v["begin"]["txn"] == txn)
        .map(|v| match v["t"].as_str().unwrap() {
            "node" => format!("node {}", v["node"]),
            t => t.to_string(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_records_are_written_only_when_they_tell_recovery_something_new() {
    let nodes = three_nodes().await;
    let dir = tempfile::tempdir().unwrap();
    let dtc = start_proxy(journal_config(&nodes, dir.path())).await;

    // Every node applies at once: the intent's undo is all recovery would need; the end record
    // carries the answers.
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.status(), 201);
    let clean = a.txn().to_string();

    // Node c fails once and succeeds on the retry: its answer is journaled, the others are not.
    nodes.c().fail_next(1);
    let a = create_group(&dtc, "g2").await;
    assert_eq!(a.status(), 201);
    let retried = a.txn().to_string();

    dtc.app.journal().expect("journal").flush().await.unwrap();
    let journal_dir = dir.path().join("journal");
    assert_eq!(records_of(&journal_dir, &clean), ["begin", "end"]);
    assert_eq!(
        records_of(&journal_dir, &retried),
        ["begin", "node 2", "end"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_off_writes_nothing_but_still_fences_and_re_drives() {
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    let (nodes, dtc) = cluster_with(|c| {
        quick_redrive(c);
        c.journal.dir = journal_dir.display().to_string();
        c.journal.durability = dtc::config::DurabilityMode::Off;
    })
    .await;
    let ok = create_group(&dtc, "g0").await;
    assert_eq!(ok.status(), 201);
    let txn = failed_create(&nodes, &dtc, "g1").await;
    let fenced = delete_group(&dtc, "g1").await;
    assert_eq!(fenced.status(), 409, "the fence is kept in memory");
    nodes_back_and_rolled_back(&nodes, &dtc, &txn).await;
    let journal = dtc.app.journal().unwrap().clone();
    assert!(nodes.iter().all(|n| !n.groups().contains("g1")));
    assert_eq!(journal.size_bytes(), 0);
    assert!(
        !journal_dir.exists(),
        "durability = \"off\" never touches the disk"
    );
}
