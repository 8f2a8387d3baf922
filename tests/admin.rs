//! The admin listener over real HTTP: health and readiness, nodes, the redacted config, the
//! bearer token, the transactions API against a fake journal, and the original `POST /dtc/`
//! against three reference nodes.

mod support;

use dtc::saga::TxnState;
use http::{Method, StatusCode, header};
use serde_json::json;
use support::admin::{start_admin, txn};
use support::answer::PROBLEM_JSON;
use support::{Answer, send, wait_until};

fn assert_problem(answer: &Answer, status: StatusCode) -> serde_json::Value {
    assert_eq!(answer.status(), status, "{:?}", answer.body());
    assert_eq!(answer.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    let doc = answer.json();
    assert!(
        doc["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{doc}"
    );
    doc
}

#[tokio::test]
async fn healthz_answers_while_alive() {
    let admin = start_admin(None).await;
    let a = send(Method::GET, &admin.url("/healthz"), None, &[]).await;
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(a.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(a.json()["status"], "alive");
}

#[tokio::test]
async fn readyz_needs_an_open_journal_and_a_node_up() {
    let admin = start_admin(None).await;
    // Ready once a node answered (the first probe).
    let url = admin.url("/readyz");
    support::eventually(
        "dtc is ready",
        support::DEADLINE,
        std::time::Duration::from_millis(10),
        || async { send(Method::GET, &url, None, &[]).await.status() == StatusCode::OK },
    )
    .await;
    let a = send(Method::GET, &admin.url("/readyz"), None, &[]).await;
    assert_eq!(
        (a.status(), a.json()["ready"].clone()),
        (StatusCode::OK, json!(true))
    );

    admin.store.set_open(false);
    let a = send(Method::GET, &admin.url("/readyz"), None, &[]).await;
    let missing = a.json()["missing"].clone();
    assert_eq!(a.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(missing.as_array().map(Vec::len), Some(1), "{missing}");
    assert!(
        missing[0].as_str().unwrap().contains("journal"),
        "{missing}"
    );

    admin.store.set_open(true);
    for node in &admin.nodes {
        node.set_down(true).await;
    }
    wait_until("the probes mark every node down", || admin.all_nodes_down()).await;
    let a = send(Method::GET, &admin.url("/readyz"), None, &[]).await;
    let missing = a.json()["missing"].clone();
    assert_eq!(a.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        missing[0].as_str().unwrap().contains("no node is up"),
        "{missing}"
    );
}

#[tokio::test]
async fn nodes_shows_each_nodes_health() {
    let admin = start_admin(None).await;
    admin.nodes[1].set_down(true).await;
    let node_2_down = || !admin.app.current.load().nodes.all()[1].health.is_up();
    wait_until("the probes mark node-2 down", node_2_down).await;
    let a = send(Method::GET, &admin.url("/nodes"), None, &[]).await;
    assert_eq!(a.status(), StatusCode::OK);
    let nodes = a.json()["nodes"].clone();
    let seen: Vec<(String, String, bool, u64)> = nodes
        .as_array()
        .expect("a list of nodes")
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            (
                s("name"),
                s("url"),
                n["up"].as_bool().unwrap(),
                n["in_flight"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, bool, u64)> = admin
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("node-{}", i + 1), n.url(), i != 1, 0))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_token_guards_everything_but_the_probes_and_is_redacted() {
    let admin = start_admin(Some("s3cret")).await;
    for path in ["/config", "/nodes", "/metrics", "/transactions", "/nowhere"] {
        let answer = send(Method::GET, &admin.url(path), None, &[]).await;
        assert_problem(&answer, StatusCode::UNAUTHORIZED);
        assert!(
            answer.headers().contains_key(header::WWW_AUTHENTICATE),
            "{path}"
        );
    }
    let wrong = [("authorization", "Bearer s3cres")];
    assert_problem(
        &send(Method::GET, &admin.url("/config"), None, &wrong).await,
        StatusCode::UNAUTHORIZED,
    );
    for path in ["/healthz", "/readyz"] {
        // Ready or not (before the first probe answers), never a 401.
        assert_ne!(
            send(Method::GET, &admin.url(path), None, &[])
                .await
                .status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }

    let auth = [("authorization", "Bearer s3cret")];
    let a = send(Method::GET, &admin.url("/config"), None, &auth).await;
    assert_eq!(a.status(), StatusCode::OK);
    let config = a.json();
    assert_eq!(config["config"]["listen"]["admin_token"], "***");
    assert_eq!(config["generation"], 1);
    assert_eq!(config["last_reload_error"], serde_json::Value::Null);
    assert_eq!(config["config"]["nodes"][0]["url"], admin.nodes[0].url());
    assert!(!a.text().contains("s3cret"));
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_bad_queries_are_problems() {
    let admin = start_admin(None).await;
    assert_problem(
        &send(Method::GET, &admin.url("/nowhere"), None, &[]).await,
        StatusCode::NOT_FOUND,
    );
    let answer = send(Method::POST, &admin.url("/nodes"), Some("{}"), &[]).await;
    assert_problem(&answer, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers()[header::ALLOW], "GET, HEAD");
    let answer = send(Method::GET, &admin.url("/transactions/t1/retry"), None, &[]).await;
    assert_problem(&answer, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers()[header::ALLOW], "POST");
    for query in ["state=bogus", "limit=many"] {
        let url = admin.url(&format!("/transactions?{query}"));
        assert_problem(
            &send(Method::GET, &url, None, &[]).await,
            StatusCode::BAD_REQUEST,
        );
    }
}

#[tokio::test]
async fn transactions_are_listed_and_inspected_from_the_journal() {
    let admin = start_admin(None).await;
    admin.store.add(txn("t1", TxnState::Failed));
    admin.store.add(txn("t2", TxnState::Succeeded));
    let ids = |a: &Answer| -> Vec<String> {
        let list = a.json()["transactions"].clone();
        list.as_array()
            .unwrap()
            .iter()
            .map(|t| t["txn"].as_str().unwrap().to_string())
            .collect()
    };
    let a = send(Method::GET, &admin.url("/transactions"), None, &[]).await;
    assert_eq!(
        (a.status(), ids(&a)),
        (StatusCode::OK, vec!["t2".to_string(), "t1".to_string()])
    );
    let a = send(
        Method::GET,
        &admin.url("/transactions?state=failed"),
        None,
        &[],
    )
    .await;
    assert_eq!(ids(&a), vec!["t1".to_string()]);
    let a = send(Method::GET, &admin.url("/transactions?limit=1"), None, &[]).await;
    assert_eq!(ids(&a), vec!["t2".to_string()]);

    let a = send(Method::GET, &admin.url("/transactions/t1"), None, &[]).await;
    assert_eq!(a.status(), StatusCode::OK);
    let view: dtc::admin::TxnView = serde_json::from_slice(a.body()).expect("a TxnView");
    assert_eq!(view, txn("t1", TxnState::Failed));
    assert_problem(
        &send(Method::GET, &admin.url("/transactions/nope"), None, &[]).await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn retry_and_resolve_reach_the_journal() {
    let admin = start_admin(None).await;
    admin.store.add(txn("t1", TxnState::Failed));
    admin.store.add(txn("t2", TxnState::Succeeded));
    let post = |path: &str, body: Option<&'static str>| {
        let url = admin.url(path);
        async move { send(Method::POST, &url, body, &[]).await }
    };
    let a = post("/transactions/t1/retry", None).await;
    assert_eq!(
        (a.status(), a.json()["redrives"].clone()),
        (StatusCode::OK, json!(1))
    );
    assert_problem(
        &post("/transactions/nope/retry", None).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &post("/transactions/t2/retry", None).await,
        StatusCode::CONFLICT,
    );

    for body in [None, Some("{}"), Some(r#"{"reason": "  "}"#)] {
        let doc = assert_problem(
            &post("/transactions/t1/resolve", body).await,
            StatusCode::BAD_REQUEST,
        );
        assert!(
            doc["type"].as_str().unwrap().ends_with("reason-required"),
            "{doc}"
        );
    }
    assert_problem(
        &post("/transactions/t1/resolve", Some("{")).await,
        StatusCode::BAD_REQUEST,
    );
    let a = post(
        "/transactions/t1/resolve",
        Some(r#"{"reason": "fixed by hand"}"#),
    )
    .await;
    assert_eq!(
        (a.status(), a.json()["resolution"].clone()),
        (StatusCode::OK, json!("fixed by hand"))
    );
    assert_problem(
        &post("/transactions/nope/resolve", Some(r#"{"reason": "x"}"#)).await,
        StatusCode::NOT_FOUND,
    );

    assert_eq!(
        admin.store.calls(),
        [
            "retry t1",
            // An unknown id is answered before the journal is asked to act.
            "retry t2",
            "resolve t1: fixed by hand",
        ]
    );
}

#[tokio::test]
async fn dtc_creates_and_deletes_a_group_on_every_node() {
    let admin = start_admin(None).await;
    let url = admin.url("/dtc/");
    let a = send(
        Method::POST,
        &url,
        Some(r#"{"groupId": "g1", "action": "create"}"#),
        &[],
    )
    .await;
    let answer = a.json();
    assert_eq!(
        (a.status(), answer["State"].clone()),
        (StatusCode::OK, json!("succeeded")),
        "{answer}"
    );
    assert_eq!(
        answer["transaction"],
        a.headers()["x-dtc-transaction-id"].to_str().unwrap()
    );
    for node in &admin.nodes {
        assert!(node.groups().contains("g1"), "{} lacks g1", node.name());
    }

    let a = send(
        Method::POST,
        &url,
        Some(r#"{"groupId": "g1", "action": "delete"}"#),
        &[],
    )
    .await;
    assert_eq!(
        (a.status(), a.json()["State"].clone()),
        (StatusCode::OK, json!("succeeded"))
    );
    for node in &admin.nodes {
        assert!(node.groups().is_empty(), "{} still has g1", node.name());
    }
}

#[tokio::test]
async fn dtc_refuses_bad_requests_without_touching_a_node() {
    let admin = start_admin(None).await;
    let url = admin.url("/dtc/");
    let doc = assert_problem(
        &send(
            Method::POST,
            &url,
            Some(r#"{"groupId": "g1", "action": "rename"}"#),
            &[],
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert!(doc["detail"].as_str().unwrap().contains("rename"), "{doc}");
    for body in [
        r#"{"action": "create"}"#,
        r#"{"groupId": 7, "action": "create"}"#,
        "not json",
        r#"{"groupId": "", "action": "create"}"#,
    ] {
        assert_problem(
            &send(Method::POST, &url, Some(body), &[]).await,
            StatusCode::BAD_REQUEST,
        );
    }
    assert!(admin.nodes.iter().all(|n| n.write_count() == 0));
}

#[tokio::test]
async fn dtc_answers_the_proxys_status_when_a_write_cannot_run() {
    let admin = start_admin(None).await;
    admin.nodes[2].set_down(true).await;
    let node_3_down = || !admin.app.current.load().nodes.all()[2].health.is_up();
    wait_until("the probes mark node-3 down", node_3_down).await;
    let body = r#"{"groupId": "g1", "action": "create"}"#;
    let a = send(Method::POST, &admin.url("/dtc/"), Some(body), &[]).await;
    let answer = a.json();
    assert_eq!(
        (a.status(), answer["State"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!("to_be_retried")),
        "{answer}"
    );
    assert!(a.headers().contains_key(header::RETRY_AFTER));
    assert!(
        answer["detail"].as_str().unwrap().contains("node-3"),
        "{answer}"
    );
    assert!(admin.nodes.iter().all(|n| n.groups().is_empty()));
}

/// Nodes that cannot be reached from the start are not up for readiness, long before the
/// probes would mark them down.
#[tokio::test]
async fn readyz_is_503_at_once_when_no_node_can_be_reached() {
    let mut urls = Vec::new();
    for _ in 0..3 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}", l.local_addr().unwrap()));
    }
    let mut cfg = support::test_config(&[]);
    cfg.nodes = urls
        .iter()
        .enumerate()
        .map(|(i, url)| dtc::config::NodeConfig {
            name: format!("node-{}", i + 1),
            url: url.clone(),
            tls: None,
        })
        .collect();
    // Probes far apart: only a probe's failures would mark a node down.
    cfg.health.interval = std::time::Duration::from_secs(60);
    let dtc = support::start_proxy(cfg).await;
    let admin = dtc.serve_admin().await;
    let a = send(Method::GET, &format!("{admin}/readyz"), None, &[]).await;
    assert_eq!(
        a.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        a.body()
    );
    let missing = a.json()["missing"].clone();
    assert!(
        missing[0]
            .as_str()
            .unwrap()
            .contains("no node is up: node-1 not reached"),
        "{missing}"
    );
}
