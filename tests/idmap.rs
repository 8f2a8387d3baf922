//! Server-assigned ids: three nodes whose id sequences differ (`--id-base` 1, 1001, 2001) behind
//! dtc with the shipped `config/items.toml`. A create answers one canonical id; every later read,
//! replace and delete by that id reaches each node under its own id; a collection read shows
//! canonical ids only; an undo of a create deletes each node's own id; the map survives a
//! SIGKILL and compaction; a crash mid-create is listed, not guessed; recovery judges a cut
//! delete by the map (a node's 404 is a loss, a delete done everywhere unmaps); verify compares
//! through the map and its repair, like a joining node's backfill, recreates a lost copy and
//! maps the node's new id. Cluster mode (two sidecars, one store) is in `tests/cluster/ids.rs`.

mod support;

use dtc::config::Config;
use dtc::node::RefNode;
use http::{Method, StatusCode};
use serde_json::json;
use support::double::{Behaviour, Double};
use support::items::*;
use support::*;

/// The test config with the routes of the shipped `config/items.toml`.
fn items_config(nodes: &[RefNode]) -> Config {
    let mut cfg = test_config(nodes);
    cfg.routes = shipped_routes();
    cfg
}

#[tokio::test]
async fn one_canonical_id_reaches_the_resource_on_every_node_through_create_read_replace_delete() {
    let nodes = id_bases().await;
    let dtc = start_proxy(items_config(&nodes)).await;

    let a = create_item(&dtc.url, "A").await;
    assert_eq!(
        (a.status(), a.state()),
        (StatusCode::CREATED, "succeeded"),
        "{}",
        a.text()
    );
    assert_eq!(
        a.json(),
        json!({"name": "A", "id": 1}),
        "the client sees the canonical id"
    );
    assert_eq!(a.header("location"), "/items/1");
    assert_eq!(
        ids(&nodes),
        [vec![1], vec![1001], vec![2001]],
        "each node's own id"
    );

    reads_alike(&dtc, "/items/1", 10, &json!({"name": "A", "id": 1})).await;

    let b = send(
        Method::PUT,
        &dtc.at("/items/1"),
        Some(r#"{"id": 1, "name": "B"}"#),
        &[],
    )
    .await;
    assert_eq!(
        (b.status(), b.state()),
        (StatusCode::OK, "succeeded"),
        "{}",
        b.text()
    );
    assert_eq!(b.json(), json!({"id": 1, "name": "B"}));
    assert_eq!(
        nodes[1].items()[&1001],
        json!({"id": 1001, "name": "B"}),
        "node-2 in its ids"
    );
    assert_eq!(nodes[2].items()[&2001], json!({"id": 2001, "name": "B"}));

    reads_alike(&dtc, "/items", 6, &json!([{"id": 1, "name": "B"}])).await;

    let d = send(Method::DELETE, &dtc.at("/items/1"), None, &[]).await;
    assert_eq!(
        (d.status(), d.state()),
        (StatusCode::OK, "succeeded"),
        "{}",
        d.text()
    );
    assert_eq!(
        ids(&nodes),
        [Vec::<u64>::new(), vec![], vec![]],
        "gone from every node"
    );
    for i in 0..6 {
        let r = send(Method::GET, &dtc.at("/items/1"), None, &[]).await;
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "read {i} after the delete"
        );
    }
    let journal = dtc.app.proxy.coordinator.journal().unwrap();
    assert_eq!(journal.ids_len(), 0, "the map forgets a deleted resource");
}

#[tokio::test]
async fn a_create_undone_deletes_each_nodes_own_id_and_maps_nothing() {
    let nodes = id_bases().await;
    let dtc = start_proxy(items_config(&nodes)).await;
    nodes[2].reject_next(1, 422);
    let a = create_item(&dtc.url, "A").await;
    assert_eq!(a.state(), "rolled_back", "{}", a.text());
    let undone: Vec<String> = nodes[..2]
        .iter()
        .map(|n| writes(n, Method::DELETE)[0].path.clone())
        .collect();
    assert_eq!(undone, ["/items/1", "/items/1001"]);
    assert_eq!(ids(&nodes), [Vec::<u64>::new(), vec![], vec![]]);
    let journal = dtc.app.proxy.coordinator.journal().unwrap();
    assert_eq!(journal.ids_len(), 0);
    let all = send(Method::GET, &dtc.at("/items"), None, &[]).await;
    assert_eq!(all.json(), json!([]));

    // The sequences drifted (node-3 assigned nothing): the next create still reads alike.
    let b = create_item(&dtc.url, "B").await;
    assert_eq!(b.state(), "succeeded", "{}", b.text());
    let id = b.json()["id"].as_u64().unwrap();
    assert_eq!(ids(&nodes), [vec![2], vec![1002], vec![2001]]);
    let b_at = format!("/items/{id}");
    reads_alike(&dtc, &b_at, 6, &json!({"name": "B", "id": id})).await;
}

#[tokio::test]
async fn a_nodes_own_id_is_not_a_canonical_one() {
    let nodes = id_bases().await;
    let dtc = start_proxy(items_config(&nodes)).await;
    assert_eq!(create_item(&dtc.url, "A").await.state(), "succeeded");
    let r = send(Method::GET, &dtc.at("/items/1001"), None, &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:dtc:problem:unknown-id");
    let d = send(Method::DELETE, &dtc.at("/items/1001"), None, &[]).await;
    assert_eq!(
        (d.status(), d.state()),
        (StatusCode::NOT_FOUND, "rejected"),
        "{}",
        d.text()
    );
    assert_eq!(
        ids(&nodes),
        [vec![1], vec![1001], vec![2001]],
        "nothing deleted"
    );
    // A client-chosen id that names no mapped resource passes through as it is.
    let p = send(Method::PUT, &dtc.at("/items/7"), Some(r#"{"v": 1}"#), &[]).await;
    assert_eq!(p.state(), "succeeded", "{}", p.text());
    assert!(nodes.iter().all(|n| n.items().contains_key(&7)));
}

#[tokio::test]
async fn a_delete_that_a_node_answers_404_for_its_mapped_id_is_listed_not_already_absent() {
    let nodes = id_bases().await;
    let dtc = start_proxy(items_config(&nodes)).await;
    assert_eq!(create_item(&dtc.url, "A").await.state(), "succeeded");
    // node-2 loses the item behind dtc's back.
    let lost = send(
        Method::DELETE,
        &format!("{}/items/1001", nodes[1].url()),
        None,
        &[],
    )
    .await;
    assert_eq!(lost.status(), StatusCode::OK);
    let d = send(Method::DELETE, &dtc.at("/items/1"), None, &[]).await;
    assert_eq!(d.state(), "failed", "{}", d.text());
    assert!(
        d.json()["detail"].as_str().unwrap().contains("node node-2"),
        "{}",
        d.text()
    );
}

#[tokio::test]
async fn nodes_that_name_the_new_resource_only_in_location_are_mapped_too() {
    let mut doubles = Vec::new();
    for (name, first) in [("node-1", 1), ("node-2", 1001), ("node-3", 2001)] {
        let b = Behaviour {
            first_item: first,
            location_only: true,
            ..Behaviour::default()
        };
        doubles.push(Double::start(name, b).await);
    }
    let urls: Vec<(String, String)> = doubles.iter().map(|d| (d.name.clone(), d.url())).collect();
    let mut cfg = double::config_for(&urls);
    cfg.routes = items_config(&[]).routes;
    let dtc = start_proxy(cfg).await;
    let a = create_item(&dtc.url, "A").await;
    assert_eq!(
        (a.status(), a.state()),
        (StatusCode::CREATED, "succeeded"),
        "{}",
        a.text()
    );
    assert_eq!(a.header("location"), "/items/1");
    let held: Vec<Vec<u64>> = doubles
        .iter()
        .map(|d| d.items().into_keys().collect())
        .collect();
    assert_eq!(held, [vec![1], vec![1001], vec![2001]]);
    reads_alike(&dtc, "/items/1", 6, &json!({"name": "A", "id": 1})).await;
    let d = send(Method::DELETE, &dtc.at("/items/1"), None, &[]).await;
    assert_eq!(d.state(), "succeeded", "{}", d.text());
    assert!(doubles.iter().all(|d| d.items().is_empty()));
}

#[tokio::test]
async fn a_create_whose_answers_carry_no_id_is_listed_and_blocks_no_other() {
    let nodes = id_bases().await;
    let mut cfg = items_config(&nodes);
    // Where the nodes put the id, told wrong: no answer carries it there.
    let id = cfg.routes[0].id.as_mut().unwrap();
    id.body = Some("/uuid".into());
    id.location = false;
    id.list = None;
    let dtc = start_proxy(cfg).await;
    let a = create_item(&dtc.url, "A").await;
    assert_eq!(
        (a.status(), a.state()),
        (StatusCode::BAD_GATEWAY, "failed"),
        "{}",
        a.text()
    );
    assert!(
        a.json()["detail"].as_str().unwrap().contains("carry no id"),
        "{}",
        a.text()
    );
    assert_eq!(
        ids(&nodes),
        [vec![1], vec![1001], vec![2001]],
        "not guessed away"
    );
    let b = create_item(&dtc.url, "B").await;
    assert_eq!(
        b.state(),
        "failed",
        "a create of its own, not fenced: {}",
        b.text()
    );
    assert!(b.json()["detail"].as_str().unwrap().contains("carry no id"));
}

#[tokio::test]
async fn a_client_retrying_with_its_idempotency_key_gets_the_canonical_answer_again() {
    let nodes = id_bases().await;
    let dtc = start_proxy(items_config(&nodes)).await;
    let key = [("idempotency-key", "k-1")];
    let body = Some(r#"{"name":"A"}"#);
    let a = send(Method::POST, &dtc.at("/items"), body, &key).await;
    let again = send(Method::POST, &dtc.at("/items"), body, &key).await;
    assert_eq!(a.json(), json!({"name": "A", "id": 1}));
    assert_eq!(again.json(), a.json());
    assert_eq!(again.header("location"), "/items/1");
    assert_eq!(ids(&nodes), [vec![1], vec![1001], vec![2001]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_compares_each_nodes_copy_under_its_own_id() {
    use dtc::verify::{Finding, Options, Verifier};
    let nodes = id_bases().await;
    let dtc = start_proxy(items_config(&nodes)).await;
    assert_eq!(create_item(&dtc.url, "A").await.state(), "succeeded");
    replace_item(&dtc, 1, "B").await;
    let verifier = Verifier::new(&dtc.app.proxy.coordinator).unwrap();
    let opts = Options {
        since: std::time::Duration::from_secs(600),
        limit: 100,
        repair: true,
    };
    let report = verifier.run(&opts, &|_, _| {}).await;
    assert_eq!(report.checked, 1, "{report:?}");
    assert_eq!(report.agreed, 1, "alike under their own ids: {report:?}");

    // node-2's copy changed behind dtc's back: found under node-2's id, not repaired blindly.
    let url = format!("{}/items/1001", nodes[1].url());
    send(Method::PUT, &url, Some(r#"{"id":1001,"name":"X"}"#), &[]).await;
    let report = verifier.run(&opts, &|_, _| {}).await;
    let k = &report.findings[0];
    assert_eq!(
        (k.finding, k.odd.clone()),
        (Finding::Divergent, vec!["node-2".to_string()]),
        "{report:?}"
    );
    assert_eq!(k.repair.as_ref().unwrap().state, "not_started");
    assert_eq!(nodes[1].items()[&1001]["name"], "X");
}

#[tokio::test]
async fn the_map_survives_compaction_and_forgets_what_ended_without_the_write() {
    use dtc::journal::Journal;
    use dtc::journal::idmap::IdEntry;
    use dtc::journal::record::{Begin, now_ms};
    use dtc::txn::TxnState;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = dtc::config::JournalConfig {
        dir: dir.path().display().to_string(),
        keep_finished: 10,
        ..Default::default()
    };
    cfg.durability = dtc::config::DurabilityMode::None;
    let (journal, _) = Journal::open(&cfg).unwrap();
    let begin = |txn: &str| Begin {
        txn: txn.into(),
        at_ms: now_ms(),
        method: http::Method::POST,
        path: "/items".into(),
        key: format!("txn:{txn}"),
        nodes: vec![("a".into(), "http://127.0.0.1:1".into())],
        undo: vec![None],
        ..Begin::default()
    };
    let entry = |txn: &str, canonical: &str| IdEntry {
        collection: "/items".into(),
        canonical: canonical.into(),
        nodes: vec![
            ("a".into(), canonical.into()),
            ("b".into(), format!("10{canonical}")),
        ],
        txn: txn.into(),
        at_ms: now_ms(),
    };
    for (txn, canonical, end) in [
        ("kept", "1", TxnState::Succeeded),
        ("undone", "2", TxnState::RolledBack),
        ("deleted", "3", TxnState::Succeeded),
    ] {
        journal.begin(begin(txn)).await.unwrap();
        journal.map_ids(entry(txn, canonical)).await.unwrap();
        journal.end(txn, end, None, vec![], None).await.unwrap();
    }
    journal.unmap_ids("d", "/items", "3").await.unwrap();
    for i in 0..5000 {
        let txn = format!("t{i:05}");
        journal.begin(begin(&txn)).await.unwrap();
        journal
            .end(&txn, TxnState::Succeeded, None, vec![], None)
            .await
            .unwrap();
    }
    journal.flush().await.unwrap();
    drop(journal);
    let (journal, _) = Journal::open(&cfg).unwrap();
    assert!(
        journal.get("kept").is_none(),
        "the create itself was compacted away"
    );
    assert_eq!(
        journal.ids_of("/items", "1"),
        Some(entry("kept", "1")).map(|mut e| {
            e.at_ms = journal.ids_of("/items", "1").unwrap().at_ms;
            e
        })
    );
    assert_eq!(
        journal.canonical_of("/items", "b", "101").as_deref(),
        Some("1")
    );
    assert_eq!(
        journal.ids_of("/items", "2"),
        None,
        "rolled back: withdrawn"
    );
    assert_eq!(journal.ids_of("/items", "3"), None, "deleted: gone");
    assert_eq!(journal.ids_len(), 1);
}

#[test]
fn config_check_takes_an_id_map_with_cluster_and_advises_a_bare_create() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/items.toml")).unwrap();
    let clustered = format!("{text}\n[cluster]\ndatabase_url = \"postgres://dtc@127.0.0.1/dtc\"\n");
    let settings = dtc::config::parse(&clustered, "items.toml").unwrap();
    assert_eq!(
        settings.id_rules().count(),
        1,
        "the map is kept in the shared store"
    );
    let bare = text.replace(
        "id = { path = \"/items/{id}\", body = \"/id\", location = true, list = \"\" }\n",
        "",
    );
    assert_ne!(bare, text);
    let settings = dtc::config::parse(&bare, "items.toml").unwrap();
    let advice = dtc::config::advice::advice(&settings).join("\n");
    assert!(advice.contains("declare `id`"), "{advice}");
    let shipped = dtc::config::parse(&text, "items.toml").unwrap();
    let advice = dtc::config::advice::advice(&shipped).join("\n");
    assert!(!advice.contains("declare `id`"), "{advice}");
}

/// The config of a `dtc run` child process with its journal in `dir`.
fn process_config(nodes: &[RefNode], dir: &std::path::Path) -> Config {
    let mut cfg = items_config(nodes);
    cfg.journal.dir = dir.join("journal").display().to_string();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_survives_a_sigkill() {
    let nodes = id_bases().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = process_config(&nodes, dir.path());
    let dtc = process::spawn_dtc(&cfg, dir.path());
    assert_eq!(create_item(&dtc.url, "A").await.state(), "succeeded");
    dtc.crash();
    let dtc = process::spawn_dtc(&cfg, dir.path());
    // After the restart.
    reads_alike(&dtc.url, "/items/1", 6, &json!({"name": "A", "id": 1})).await;
    let d = send(Method::DELETE, &format!("{}/items/1", dtc.url), None, &[]).await;
    assert_eq!(d.state(), "succeeded", "{}", d.text());
    assert_eq!(ids(&nodes), [Vec::<u64>::new(), vec![], vec![]]);
    dtc.crash();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_cut_by_a_sigkill_is_listed_with_the_node_ids_it_learned_never_guessed() {
    let nodes = id_bases().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = process_config(&nodes, dir.path());
    let dtc = process::spawn_dtc(&cfg, dir.path());
    nodes[2].hold_next(1);
    let url = format!("{}/items", dtc.url);
    let client =
        tokio::spawn(
            async move { try_send(Method::POST, &url, Some(r#"{"name":"A"}"#), &[]).await },
        );
    wait_until("node-1 and node-2 applied, node-3 holds the create", || {
        nodes[2].held_count() == 1 && nodes[..2].iter().all(|n| !n.items().is_empty())
    })
    .await;
    // The node answers are journaled as they come: wait until both are on disk.
    let log = dir.path().join("journal");
    eventually(
        "node-1's and node-2's own ids are in the journal",
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(10),
        || {
            let log = log.clone();
            async move {
                let text = journal_text(&log);
                text.contains(r#""/items/1""#) && text.contains(r#""/items/1001""#)
            }
        },
    )
    .await;
    dtc.crash();
    assert!(client.await.unwrap().is_err(), "the client got no answer");

    let dtc = process::spawn_dtc(&cfg, dir.path());
    // Nothing was mapped: the client never learned an id, and no read shows one.
    let all = send(Method::GET, &format!("{}/items", dtc.url), None, &[]).await;
    assert_eq!(all.json(), json!([]));
    // The cut create blocks no other.
    let b = create_item(&dtc.url, "B").await;
    assert_eq!(b.state(), "succeeded", "{}", b.text());
    let id = b.json()["id"].as_u64().unwrap();
    let b_at = format!("/items/{id}");
    reads_alike(&dtc.url, &b_at, 6, &json!({"name": "B", "id": id})).await;
    dtc.crash();

    let journal_cfg = dtc::config::JournalConfig {
        dir: log.display().to_string(),
        ..Default::default()
    };
    let (journal, _) = dtc::journal::Journal::open(&journal_cfg).unwrap();
    let cut: Vec<_> = journal
        .list(None, 100)
        .into_iter()
        .filter(|e| e.begin.path == "/items" && e.state != dtc::txn::TxnState::Succeeded)
        .collect();
    assert_eq!(cut.len(), 1, "{cut:?}");
    let e = &cut[0];
    let undo: Vec<Option<String>> = e
        .nodes
        .iter()
        .map(|n| n.undo.as_ref().map(|u| u.path.clone()))
        .collect();
    assert_eq!(
        undo[..2],
        [
            Some("/items/1".to_string()),
            Some("/items/1001".to_string())
        ],
        "the node ids it learned are listed: {e:?}"
    );
    // Recovery undid it where the journal knew each node's id, and guessed nothing where it
    // did not (node-3 never answered): failed, listed, fenced — its own key only.
    assert_eq!(e.state, dtc::txn::TxnState::Failed, "{e:?}");
    assert!(format!("{:?}", e.reason).contains("node-3"), "{e:?}");
    assert_eq!(
        journal.fence_of(&e.begin.key).as_deref(),
        Some(e.begin.txn.as_str())
    );
    assert_eq!(
        ids(&nodes),
        [vec![2], vec![1002], vec![2001]],
        "A undone by node-1's and node-2's own ids"
    );
}

/// The journal directory's log files as text (records are JSON).
fn journal_text(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(bytes) = std::fs::read(entry.path()) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_cut_by_a_sigkill_where_a_node_had_lost_the_item_is_recovered_as_divergent() {
    let nodes = id_bases().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = process_config(&nodes, dir.path());
    let dtc = process::spawn_dtc(&cfg, dir.path());
    assert_eq!(create_item(&dtc.url, "A").await.state(), "succeeded");
    // node-2 loses the item behind dtc's back.
    let lost = send(
        Method::DELETE,
        &format!("{}/items/1001", nodes[1].url()),
        None,
        &[],
    )
    .await;
    assert_eq!(lost.status(), StatusCode::OK);
    nodes[0].hold_next(1);
    nodes[2].hold_next(1);
    let url = format!("{}/items/1", dtc.url);
    let client = tokio::spawn(async move { try_send(Method::DELETE, &url, None, &[]).await });
    wait_until("node-1 and node-3 hold the delete", || {
        nodes[0].held_count() == 1 && nodes[2].held_count() == 1
    })
    .await;
    // node-2's 404 is journaled as it comes: the create's three answers and this one.
    let log = dir.path().join("journal");
    eventually(
        "node-2's answer to the delete is in the journal",
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(10),
        || {
            let log = log.clone();
            async move { journal_text(&log).matches(r#""t":"node""#).count() >= 4 }
        },
    )
    .await;
    dtc.crash();
    assert!(client.await.unwrap().is_err(), "the client got no answer");
    // Held writes whose connection is gone are never applied.
    nodes[0].release_held();
    nodes[2].release_held();

    // Recovery reads node-1 and node-3 holding the item, node-2 not. The key has no history,
    // but the map says the item was there: node-2's 404 was not "already absent", it had lost
    // the item.
    let dtc = process::spawn_dtc(&cfg, dir.path());
    let deleted = recovered(&log, dtc, "/items/1").await;
    assert_eq!(deleted.state, dtc::txn::TxnState::Failed, "{deleted:?}");
    assert!(
        format!("{:?}", deleted.reason).contains("node-2"),
        "{deleted:?}"
    );
    assert_eq!(
        ids(&nodes),
        [vec![1], vec![], vec![2001]],
        "the held deletes never applied; nothing was deleted to match node-2"
    );
}

/// The newest transaction on `path` once `dtc`'s start-up recovery decided it (it serves only
/// after), read from the journal after `dtc` is stopped.
async fn recovered(
    log: &std::path::Path,
    dtc: process::Process,
    path: &str,
) -> dtc::journal::record::Entry {
    let _ = send(Method::GET, &format!("{}/items", dtc.url), None, &[]).await;
    dtc.crash();
    let journal_cfg = dtc::config::JournalConfig {
        dir: log.display().to_string(),
        ..Default::default()
    };
    let (journal, _) = dtc::journal::Journal::open(&journal_cfg).unwrap();
    journal
        .list(None, 100)
        .into_iter()
        .find(|e| e.begin.path == path)
        .expect("the delete is journaled")
}

/// GETs of `path` a node received.
fn reads_of(node: &RefNode, path: &str) -> usize {
    node.requests()
        .iter()
        .filter(|r| r.method == Method::GET && r.path == path)
        .count()
}

#[tokio::test]
async fn verify_repair_recreates_a_lost_mapped_resource_and_maps_the_nodes_new_id() {
    use dtc::verify::{Finding, Options, Verifier};
    let nodes = id_bases().await;
    let dtc = start_proxy(items_config(&nodes)).await;
    assert_eq!(create_item(&dtc.url, "A").await.state(), "succeeded");
    replace_item(&dtc, 1, "B").await;
    // node-2 loses the item behind dtc's back.
    let url = format!("{}/items/1001", nodes[1].url());
    assert_eq!(send(Method::DELETE, &url, None, &[]).await.status(), 200);

    let verifier = Verifier::new(&dtc.app.proxy.coordinator).unwrap();
    let opts = Options {
        since: std::time::Duration::from_secs(600),
        limit: 100,
        repair: true,
    };
    let report = verifier.run(&opts, &|_, _| {}).await;
    let k = &report.findings[0];
    assert_eq!(
        (k.finding, k.odd.clone()),
        (Finding::Divergent, vec!["node-2".to_string()]),
        "{report:?}"
    );
    let repair = k.repair.as_ref().unwrap();
    assert_eq!(repair.state, "succeeded", "{report:?}");

    // Recreated by a create: node-2 named it afresh, and the map has that id.
    let held: Vec<(u64, serde_json::Value)> = nodes[1].items().into_iter().collect();
    assert_eq!(held.len(), 1, "{held:?}");
    let (new_id, copy) = &held[0];
    assert_ne!(*new_id, 1001);
    assert_eq!(*copy, json!({"id": new_id, "name": "B"}));
    let journal = dtc.app.proxy.coordinator.journal().unwrap();
    let entry = journal.ids_of("/items", "1").unwrap();
    assert_eq!(entry.node_id("node-2"), Some(new_id.to_string().as_str()));

    // Reads of the canonical id reach node-2's new copy.
    let on_node_2 = format!("/items/{new_id}");
    let mut tries = 0;
    while reads_of(&nodes[1], &on_node_2) < 2 {
        let r = send(Method::GET, &dtc.at("/items/1"), None, &[]).await;
        assert_eq!(r.json(), json!({"id": 1, "name": "B"}), "read {tries}");
        tries += 1;
        assert!(tries < 60, "no read reached node-2");
    }
    let report = verifier.run(&opts, &|_, _| {}).await;
    assert_eq!(report.agreed, 1, "alike again: {report:?}");
    let d = send(Method::DELETE, &dtc.at("/items/1"), None, &[]).await;
    assert_eq!(d.state(), "succeeded", "{}", d.text());
    assert_eq!(ids(&nodes), [Vec::<u64>::new(), vec![], vec![]]);
}

#[tokio::test]
async fn a_joining_nodes_backfill_creates_a_mapped_resource_and_maps_its_id() {
    use dtc::runtime::reload::{Applied, ReloadStatus, Reloader};
    use std::sync::Arc;
    let nodes = id_bases().await;
    let dtc = start_proxy(items_config(&nodes)).await;
    assert_eq!(create_item(&dtc.url, "A").await.state(), "succeeded");
    replace_item(&dtc, 1, "B").await;

    // node-4 joins, assigning ids from 3001.
    let mut all = nodes.clone();
    all.push(start_node("node-4", 3001).await);
    let text = toml::to_string(&items_config(&all)).unwrap();
    let status = Arc::new(ReloadStatus::new(dtc.app.current.load().generation));
    let r = Reloader::new("dtc.toml".into(), dtc.app.current.clone(), status);
    assert!(matches!(r.apply(&text), Applied::Swapped(_)), "reloaded");

    let verifier = dtc::verify::Verifier::new(&dtc.app.proxy.coordinator).unwrap();
    let report = verifier.backfill("node-4", &|_| {}).await;
    assert_eq!(report.copied, 1, "{}: {report:?}", report.line());
    assert!(report.complete(), "{}", report.line());
    let held: Vec<(u64, serde_json::Value)> = all[3].items().into_iter().collect();
    assert_eq!(held, [(3001, json!({"id": 3001, "name": "B"}))]);
    let journal = dtc.app.proxy.coordinator.journal().unwrap();
    let entry = journal.ids_of("/items", "1").unwrap();
    assert_eq!(entry.node_id("node-4"), Some("3001"));
    // A second pass finds it in line; writes of the resource reach node-4 by its own id.
    let again = verifier.backfill("node-4", &|_| {}).await;
    assert_eq!((again.copied, again.in_line), (0, 1), "{}", again.line());
    let d = send(Method::DELETE, &dtc.at("/items/1"), None, &[]).await;
    assert_eq!(d.state(), "succeeded", "{}", d.text());
    assert_eq!(all[3].items().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_recovery_finds_done_on_every_node_takes_the_resource_out_of_the_map() {
    let nodes = id_bases().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = process_config(&nodes, dir.path());
    let dtc = process::spawn_dtc(&cfg, dir.path());
    assert_eq!(create_item(&dtc.url, "A").await.state(), "succeeded");
    nodes[2].hold_next(1);
    let url = format!("{}/items/1", dtc.url);
    let client = tokio::spawn(async move { try_send(Method::DELETE, &url, None, &[]).await });
    wait_until("node-1 and node-2 deleted, node-3 holds the delete", || {
        nodes[2].held_count() == 1 && nodes[..2].iter().all(|n| n.items().is_empty())
    })
    .await;
    dtc.crash();
    assert!(client.await.unwrap().is_err(), "the client got no answer");
    nodes[2].release_held();
    // node-3's copy goes too (as if the held delete had applied before the crash; released,
    // the held delete may apply first, and then this one finds nothing: 404).
    let direct = format!("{}/items/2001", nodes[2].url());
    let status = send(Method::DELETE, &direct, None, &[]).await.status();
    assert!(status == 200 || status == 404, "{status}");
    assert!(nodes[2].items().is_empty(), "node-3's copy is gone");

    let dtc = process::spawn_dtc(&cfg, dir.path());
    let log = dir.path().join("journal");
    let deleted = recovered(&log, dtc, "/items/1").await;
    assert_eq!(deleted.state, dtc::txn::TxnState::Succeeded, "{deleted:?}");
    let journal_cfg = dtc::config::JournalConfig {
        dir: log.display().to_string(),
        ..Default::default()
    };
    let (journal, _) = dtc::journal::Journal::open(&journal_cfg).unwrap();
    assert_eq!(
        journal.ids_of("/items", "1"),
        None,
        "deleted everywhere: unmapped"
    );
    assert_eq!(journal.ids_len(), 0);
}
