//! `dtc verify`: divergences planted directly on a node (not through dtc) are found, named with
//! their evidence, and repaired as journaled transactions toward the last acknowledged write; a
//! majority never outvotes it, and what nothing decides is never guessed at.

mod support;

use dtc::config::Config;
use dtc::verify::{Finding, Options, REPAIR_ROUTE, Verifier};
use http::Method;
use std::time::Duration;
use support::*;

/// Runs the real `dtc verify` with `args`; (exit code, stdout, stderr).
async fn verify(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dtc"))
        .arg("verify")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(cfg: &Config, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("dtc.toml");
    std::fs::write(&path, toml::to_string(cfg).unwrap()).unwrap();
    path
}

/// Deletes group `id` on `node` directly, behind dtc's back.
async fn delete_behind_dtc(node: &dtc::node::RefNode, id: &str) {
    assert_eq!(delete_group(node, id).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergence_planted_on_one_node_is_found_and_repaired_through_the_running_sidecar() {
    let (nodes, dtc) = cluster().await;
    let admin = dtc.serve_admin().await;
    let auth = [("authorization", "Bearer client-secret")];
    for g in ["g1", "g2"] {
        let a = send(Method::POST, &dtc.at("/v1/group/"), Some(&group(g)), &auth).await;
        assert_eq!(a.status(), 201);
    }
    let mut cfg = test_config(&nodes);
    cfg.listen.admin = admin.trim_start_matches("http://").to_string();
    cfg.journal.dir = dtc.dir.as_ref().unwrap().path().display().to_string();
    let files = tempfile::tempdir().unwrap();
    let path = write_config(&cfg, files.path());

    let (code, out, err) = verify(&path, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 checked: 2 agree, 0 differ"), "{out}");

    let odd = nodes.b();
    delete_behind_dtc(odd, "g1").await;
    let (code, out, _) = verify(&path, &[]).await;
    assert_eq!(code, 1, "a divergence remains: {out}");
    let line = out.lines().next().unwrap();
    assert!(
        line.starts_with("divergent key=group/g1 odd=b target=present"),
        "{line}"
    );
    assert!(
        line.contains("b=404") && line.contains("succeeded POST /v1/group/"),
        "{line}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .contains("1 differ (0 repaired, 1 left)"),
        "{out}"
    );
    assert!(
        !odd.groups().contains("g1"),
        "not repaired without --repair"
    );

    let (code, out, err) = verify(&path, &["--repair"]).await;
    assert_eq!(code, 0, "repaired: {out}{err}");
    assert!(
        out.contains("succeeded") && out.contains("(1 repaired, 0 left)"),
        "{out}"
    );
    assert!(
        nodes.iter().all(|n| n.groups().contains("g1")),
        "the nodes agree"
    );
    let listed = send(Method::GET, &format!("{admin}/transactions"), None, &[])
        .await
        .json();
    let repair = listed["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["route"] == REPAIR_ROUTE)
        .expect("the repair is a journaled transaction");
    assert_eq!(
        (&repair["key"], &repair["state"], &repair["method"]),
        (&"group/g1".into(), &"succeeded".into(), &"POST".into())
    );
    assert_eq!(
        repair["nodes"].as_array().unwrap().len(),
        1,
        "sent to b only"
    );
    assert_eq!(repair["nodes"][0]["node"], "b");
    let sent = writes(odd, Method::POST).pop().unwrap();
    let h = |name| sent.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(h("x-dtc-transaction-id"), repair["txn"].as_str());
    assert_eq!(
        h("authorization"),
        Some("Bearer client-secret"),
        "the client's auth goes along"
    );
    assert_eq!(
        sent.body,
        group("g1").replace(' ', ""),
        "the majority's representation"
    );
    assert_eq!(verify(&path, &[]).await.0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_acknowledged_write_decides_and_a_contradicted_majority_is_left_alone() {
    let (nodes, dtc) = cluster().await;
    for id in [7, 8] {
        let a = send(
            Method::PUT,
            &dtc.at(&format!("/items/{id}")),
            Some(r#"{"v":0}"#),
            &[],
        )
        .await;
        assert!(a.status().is_success(), "{a:?}");
    }
    // g3: created and deleted through dtc, then planted on a; g4: created, then deleted
    // behind dtc's back on a and b (the majority contradicts the journal).
    for (method, g) in [
        (Method::POST, "g3"),
        (Method::DELETE, "g3"),
        (Method::POST, "g4"),
    ] {
        let a = send(method, &dtc.at("/v1/group/"), Some(&group(g)), &[]).await;
        assert!(a.status().is_success(), "{a:?}");
    }
    nodes.a().insert_group("g3");
    delete_behind_dtc(nodes.a(), "g4").await;
    delete_behind_dtc(nodes.b(), "g4").await;
    // Item 7: three different bodies, c's the last acknowledged one; item 8: c alone differs.
    for (node, id, body) in [
        (0, 7, r#"{"v":1}"#),
        (1, 7, r#"{"v":2}"#),
        (2, 8, r#"{"v":9}"#),
    ] {
        let url = format!("{}/items/{id}", nodes[node].url());
        assert!(
            send(Method::PUT, &url, Some(body), &[])
                .await
                .status()
                .is_success()
        );
    }
    let verifier = Verifier::new(&dtc.app.proxy.coordinator).unwrap();
    let opts = Options {
        since: Duration::from_secs(60),
        limit: 10,
        repair: true,
    };
    let report = verifier.run(&opts, &|_, _| {}).await;
    let find = |key: &str| report.findings.iter().find(|k| k.key == key).unwrap();
    let seven = find("item/7");
    assert_eq!(
        (seven.finding, &seven.odd),
        (Finding::Divergent, &vec!["a".to_string(), "b".to_string()]),
        "no majority, but c holds the last acknowledged body"
    );
    assert!(seven.repaired(), "{}", seven.line());
    let eight = find("item/8");
    assert_eq!(
        (eight.finding, &eight.odd),
        (Finding::Divergent, &vec!["c".to_string()])
    );
    assert!(eight.repaired(), "{}", eight.line());
    let g3 = find("group/g3");
    assert_eq!(
        (g3.finding, &g3.odd),
        (Finding::Divergent, &vec!["a".to_string()])
    );
    assert!(g3.repaired(), "{}", g3.line());
    assert!(
        nodes.iter().all(|n| !n.groups().contains("g3")),
        "deleted again on a"
    );
    let g4 = find("group/g4");
    assert_eq!(g4.finding, Finding::Contradicted, "{}", g4.line());
    assert!(
        g4.repair.is_none() && nodes.c().groups().contains("g4"),
        "left alone"
    );
    let bodies = |id| {
        nodes
            .iter()
            .map(|n| n.items()[&id].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        bodies(7),
        [0, 0, 0].map(|v| serde_json::json!({"v": v})),
        "restored to the last acknowledged write"
    );
    assert_eq!(
        bodies(8),
        [0, 0, 0].map(|v| serde_json::json!({"v": v})),
        "restored"
    );
    assert_eq!(report.exit_code(), 1, "g4 still differs");
    let journal = dtc.app.journal().unwrap();
    let mut repairs: Vec<_> = journal
        .list(None, 100)
        .into_iter()
        .filter(|e| e.begin.route.as_deref() == Some(REPAIR_ROUTE))
        .map(|e| e.begin.key)
        .collect();
    repairs.sort();
    assert_eq!(repairs, ["group/g3", "item/7", "item/8"]);
    let metrics = dtc.app.admin.metrics.encode(&Default::default());
    assert!(
        metrics.lines().any(|l| l == "dtc_divergent_keys 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_holding_an_older_body_never_overwrites_the_last_acknowledged_one() {
    let (nodes, dtc) = cluster().await;
    for v in [1, 2] {
        let body = format!(r#"{{"v": {v}}}"#);
        let a = send(Method::PUT, &dtc.at("/items/9"), Some(&body), &[]).await;
        assert!(a.status().is_success(), "{a:?}");
    }
    // a and b hold the older body again (written behind dtc's back): the majority is older
    // than the last acknowledged write, which c alone holds.
    for node in [nodes.a(), nodes.b()] {
        let url = format!("{}/items/9", node.url());
        let put = send(Method::PUT, &url, Some(r#"{"v": 1}"#), &[]).await;
        assert!(put.status().is_success());
    }
    let verifier = Verifier::new(&dtc.app.proxy.coordinator).unwrap();
    let opts = Options {
        since: Duration::from_secs(60),
        limit: 10,
        repair: true,
    };
    let report = verifier.run(&opts, &|_, _| {}).await;
    let nine = report
        .findings
        .iter()
        .find(|k| k.key == "item/9")
        .expect("item/9 differs");
    assert_eq!(nine.finding, Finding::Contradicted, "{}", nine.line());
    assert!(nine.repair.is_none(), "{}", nine.line());
    assert_eq!(
        nodes.c().items()[&9],
        serde_json::json!({"v": 2}),
        "the last acknowledged body stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_verify_is_refused_beside_a_live_sidecar_and_repairs_once_it_is_gone() {
    let nodes = three_nodes().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&nodes);
    cfg.journal.dir = dir.path().join("journal").display().to_string();
    let path = write_config(&cfg, dir.path());
    let support::process::Process { mut child, url } = support::process::spawn_dtc_at(&path);
    let a = create_group(&url, "g1").await;
    assert_eq!(a.status(), 201);
    let odd = nodes.c();
    delete_behind_dtc(odd, "g1").await;

    let (code, _, err) = verify(&path, &["--repair"]).await;
    assert_eq!(code, 69, "{err}");
    let pid = child.id().to_string();
    assert!(
        err.contains("holds the journal directory") && err.contains(&pid),
        "{err}"
    );
    assert!(
        err.contains("admin API"),
        "says why it cannot go through the sidecar: {err}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let (code, out, _) = verify(&path, &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("divergent key=group/g1 odd=c"), "{out}");
    let (code, out, err) = verify(&path, &["--repair", "--since", "10m"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(odd.groups().contains("g1"));
    let (journal, _) = dtc::journal::Journal::open(&cfg.journal).unwrap();
    let repair = journal
        .list(None, 10)
        .into_iter()
        .find(|e| e.begin.route.as_deref() == Some(REPAIR_ROUTE))
        .expect("the repair is journaled");
    assert_eq!(repair.state, dtc::saga::TxnState::Succeeded);
    assert_eq!(repair.begin.nodes[0].0, "c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_check_sets_the_gauge_and_alerts() {
    let (webhook, alerts) = stub_node(204).await;
    let (nodes, dtc) = cluster_with(|c| {
        c.verify.interval = Duration::from_millis(50);
        c.alerts.webhook = Some(webhook);
    })
    .await;
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.status(), 201);
    let gauge = |n: usize| {
        let text = dtc.app.admin.metrics.encode(&Default::default());
        text.lines().any(|l| l == format!("dtc_divergent_keys {n}"))
    };
    assert!(gauge(0));
    let odd = nodes.a();
    delete_behind_dtc(odd, "g1").await;
    wait_until("the background check found it", || gauge(1)).await;
    wait_until("an alert was posted", || {
        alerts.load(std::sync::atomic::Ordering::SeqCst) > 0
    })
    .await;
    assert!(!odd.groups().contains("g1"), "repair is off by default");
}

#[tokio::test]
async fn bad_flags_exit_64_and_a_missing_or_bad_config_78_saying_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let (code, _, err) = verify(&missing, &[]).await;
    assert_eq!(code, 78);
    assert!(
        err.contains("cannot read config file") && err.contains("nope.toml"),
        "{err}"
    );
    let path = write_config(&Config::default(), dir.path());
    for (args, says) in [
        (&["--bogus"][..], "unexpected argument '--bogus'"),
        (
            &["--since", "soon"][..],
            "invalid value 'soon' for '--since",
        ),
        (&["--limit", "0"][..], "invalid value '0' for '--limit"),
    ] {
        let (code, _, err) = verify(&path, args).await;
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let mut bad = Config::default();
    bad.verify.limit = 0;
    let (code, _, err) = verify(&write_config(&bad, dir.path()), &[]).await;
    assert_eq!(code, 78);
    assert!(err.contains("`verify.limit`: must be at least 1"), "{err}");
}
