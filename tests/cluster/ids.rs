//! The id map in the shared store: a resource one sidecar created (each node naming it by its
//! own id) is read, replaced and deleted through another sidecar by its canonical id, and a
//! store of version 3 is upgraded in place to keep the map.

use super::cluster_config;
use super::support::items::*;
use super::support::pg;
use super::support::*;
use dtc::config::Config;
use dtc::node::RefNode;
use http::{Method, StatusCode};
use serde_json::json;

/// The cluster test config on `url` with the routes of the shipped `config/items.toml`.
fn items_config(nodes: &[RefNode], url: &str) -> Config {
    let mut cfg = cluster_config(nodes, url);
    cfg.routes = shipped_routes();
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_created_through_one_sidecar_is_read_replaced_and_deleted_through_another() {
    let db = "idmaptwo";
    let url = pg::database(db).await;
    let nodes = id_bases().await;
    let a = start_proxy(items_config(&nodes, &url)).await;
    let b = start_proxy(items_config(&nodes, &url)).await;

    let created = create_item(&a, "A").await;
    assert_eq!(
        (created.status(), created.state()),
        (StatusCode::CREATED, "succeeded"),
        "{}",
        created.text()
    );
    assert_eq!(created.json(), json!({"name": "A", "id": 1}));
    assert_eq!(created.header("location"), "/items/1");
    assert_eq!(ids(&nodes), [vec![1], vec![1001], vec![2001]]);
    let rows = "SELECT count(*) FROM dtc_ids";
    assert_eq!(pg::shared().count(db, rows).await, 1, "mapped in the store");

    reads_alike(&b, "/items/1", 10, &json!({"name": "A", "id": 1})).await;
    let all = send(Method::GET, &b.at("/items"), None, &[]).await;
    assert_eq!(
        all.json(),
        json!([{"name": "A", "id": 1}]),
        "B's collection read"
    );
    let own = send(Method::GET, &b.at("/items/1001"), None, &[]).await;
    assert_eq!(own.status(), StatusCode::NOT_FOUND, "{}", own.text());
    assert_eq!(own.problem()["type"], "urn:dtc:problem:unknown-id");

    let replaced = replace_item(&b, 1, "B").await;
    assert_eq!(replaced.status(), StatusCode::OK, "{}", replaced.text());
    assert_eq!(replaced.json(), json!({"id": 1, "name": "B"}));
    assert_eq!(nodes[0].items()[&1], json!({"id": 1, "name": "B"}));
    assert_eq!(nodes[1].items()[&1001], json!({"id": 1001, "name": "B"}));
    assert_eq!(nodes[2].items()[&2001], json!({"id": 2001, "name": "B"}));
    reads_alike(&a, "/items/1", 4, &json!({"id": 1, "name": "B"})).await;

    let deleted = send(Method::DELETE, &a.at("/items/1"), None, &[]).await;
    assert_eq!(
        (deleted.status(), deleted.state()),
        (StatusCode::OK, "succeeded"),
        "{}",
        deleted.text()
    );
    assert_eq!(
        ids(&nodes),
        [Vec::<u64>::new(), vec![], vec![]],
        "every node's copy is gone"
    );
    assert_eq!(pg::shared().count(db, rows).await, 0, "the map is empty");
    let journal = b.app.proxy.coordinator.journal().unwrap();
    assert_eq!(journal.count_ids().await.unwrap(), 0, "B sees it empty");
    for i in 0..4 {
        let r = send(Method::GET, &b.at("/items/1"), None, &[]).await;
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "read {i} through B after the delete"
        );
    }
    // The next create through B is mapped alike, and A reads it.
    let next = create_item(&b, "C").await;
    assert_eq!(
        next.json(),
        json!({"name": "C", "id": 2}),
        "{}",
        next.text()
    );
    reads_alike(&a, "/items/2", 1, &json!({"name": "C", "id": 2})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_store_is_upgraded_to_keep_the_id_map() {
    let db = "idmapupgrade";
    let url = pg::database(db).await;
    let nodes = id_bases().await;
    let old = start_proxy(items_config(&nodes, &url)).await;
    drop(old);
    // The schema a dtc of version 3 made: no id map.
    pg::shared()
        .exec(db, "DROP TABLE dtc_ids; UPDATE dtc_schema SET version = 3")
        .await;
    let dtc = start_proxy(items_config(&nodes, &url)).await;
    let version = "SELECT max(version)::int8 FROM dtc_schema";
    assert_eq!(
        pg::shared().count(db, version).await,
        4,
        "upgraded in place"
    );
    let created = create_item(&dtc, "A").await;
    assert_eq!(created.state(), "succeeded", "{}", created.text());
    let rows = "SELECT count(*) FROM dtc_ids";
    assert_eq!(pg::shared().count(db, rows).await, 1);
    reads_alike(&dtc, "/items/1", 1, &json!({"name": "A", "id": 1})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creates_ids_are_written_only_under_its_lease_and_withdrawn_when_it_ends_without_the_write()
 {
    use dtc::journal::idmap::IdEntry;
    use dtc::journal::record::{Begin, Entry, now_ms};
    use dtc::journal::shared::Shared;
    use dtc::txn::TxnState;
    let db = "idmaplease";
    let url = pg::database(db).await;
    let nodes = id_bases().await;
    let cfg = items_config(&nodes, &url);
    let store = Shared::connect(cfg.cluster.as_ref().unwrap())
        .await
        .unwrap();
    let rows = "SELECT count(*) FROM dtc_ids";
    let create = |txn: &str| {
        let mut e = Entry::new(Begin {
            txn: txn.into(),
            at_ms: now_ms(),
            method: http::Method::POST,
            path: "/items".into(),
            key: format!("txn:{txn}"),
            ..Begin::default()
        });
        e.state = TxnState::InDoubt;
        e
    };
    let ids = |txn: &str, canonical: &str| IdEntry {
        collection: "/items".into(),
        canonical: canonical.into(),
        nodes: vec![("node-1".into(), canonical.into())],
        txn: txn.into(),
        at_ms: now_ms(),
    };
    for (txn, end, kept) in [
        ("t-ok", TxnState::Succeeded, 1),
        ("t-undone", TxnState::RolledBack, 1),
        ("t-retry", TxnState::ToBeRetried, 1),
        ("t-failed", TxnState::Failed, 2),
    ] {
        let mut entry = create(txn);
        let hold = store.begin(&entry, None).await.unwrap();
        let canonical = format!("c-{txn}");
        assert!(store.map_ids(&hold, &ids(txn, &canonical)).await.unwrap());
        assert!(
            !store.map_ids(&hold, &ids(txn, &canonical)).await.unwrap(),
            "a canonical id is given once"
        );
        entry.state = end;
        store.write(&hold, &entry, true, None).await.unwrap();
        assert_eq!(pg::shared().count(db, rows).await, kept, "after {end}");
        // The lease is released: no more map writes under it.
        let late = store.map_ids(&hold, &ids(txn, "late")).await;
        assert!(late.is_err(), "written without the lease: {late:?}");
    }
    assert!(store.ids_of("/items", "c-t-ok").await.unwrap().is_some());
    assert!(
        store
            .ids_of("/items", "c-t-failed")
            .await
            .unwrap()
            .is_some(),
        "failed: still deciding"
    );
    assert!(
        store
            .ids_of("/items", "c-t-undone")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_through_one_sidecar_maps_the_new_id_for_every_sidecar() {
    use dtc::verify::{Finding, Options, Verifier};
    let db = "idmaprepair";
    let url = pg::database(db).await;
    let nodes = id_bases().await;
    let a = start_proxy(items_config(&nodes, &url)).await;
    let b = start_proxy(items_config(&nodes, &url)).await;
    let created = create_item(&a, "A").await;
    assert_eq!(created.state(), "succeeded", "{}", created.text());
    replace_item(&b, 1, "B").await;
    // node-2 loses the item behind dtc's back.
    let lost = format!("{}/items/1001", nodes[1].url());
    assert_eq!(send(Method::DELETE, &lost, None, &[]).await.status(), 200);

    // B's view of the fleet is a scan old: refreshed now, it knows the replace ended.
    let view = b.app.proxy.coordinator.journal().unwrap();
    view.refresh().await.unwrap();
    let verifier = Verifier::new(&b.app.proxy.coordinator).unwrap();
    let opts = Options {
        since: std::time::Duration::from_secs(600),
        limit: 100,
        repair: true,
    };
    let report = verifier.run(&opts, &|_, _| {}).await;
    let k = report.findings.iter().find(|k| k.key == "item/1");
    let k = k.unwrap_or_else(|| panic!("{report:?}"));
    assert_eq!(k.finding, Finding::Divergent, "{report:?}");
    assert_eq!(k.repair.as_ref().unwrap().state, "succeeded", "{report:?}");
    let held: Vec<u64> = nodes[1].items().into_keys().collect();
    assert_eq!(held.len(), 1, "recreated on node-2: {held:?}");
    let new_id = held[0].to_string();
    let journal = a.app.proxy.coordinator.journal().unwrap();
    let entry = journal.lookup_ids("/items", "1").await.unwrap().unwrap();
    assert_eq!(
        entry.node_id("node-2"),
        Some(new_id.as_str()),
        "A sees the new id"
    );
    reads_alike(&a, "/items/1", 10, &json!({"id": 1, "name": "B"})).await;
    let deleted = send(Method::DELETE, &a.at("/items/1"), None, &[]).await;
    assert_eq!(deleted.state(), "succeeded", "{}", deleted.text());
    assert_eq!(ids(&nodes), [Vec::<u64>::new(), vec![], vec![]]);
    assert_eq!(
        pg::shared().count(db, "SELECT count(*) FROM dtc_ids").await,
        0
    );
}
