//! The status page and `GET /status` over HTTP: what they show, that client-sent text is
//! escaped, that 1,000 listed transactions are paged, and that a token locks the page.

mod support;

use dtc::saga::{Class, CompOutcome, CompReport, NodeReport, TxnState};
use http::Method;
use support::admin::{start_admin, txn};
use support::*;

fn text(a: &Answer) -> String {
    String::from_utf8(a.body().to_vec()).expect("utf-8 page")
}

/// A failed transaction whose path, key, reason and node error are hostile markup.
fn hostile(id: &str) -> dtc::admin::TxnView {
    let mut t = txn(id, TxnState::Failed);
    t.path = "/v1/group/?q=</td><script>alert('path')</script>".into();
    t.key = "group/<img src=x onerror=alert(1)>".into();
    t.reason = Some("node said \"<b>bold</b>\" & left".into());
    t.nodes = vec![NodeReport {
        node: "node-<1>".into(),
        outcome: Class::Transient,
        status: Some(500),
        error: Some("<iframe src=//evil>".into()),
        attempts: 4,
        maybe_applied: true,
        in_flight: Some(false),
        compensation: Some(CompReport {
            outcome: CompOutcome::Failed,
            status: None,
            error: Some("connect failed: '<x>'".into()),
            attempts: 3,
        }),
        read_back: None,
    }];
    t
}

#[tokio::test]
async fn the_page_shows_failed_transactions_with_everything_escaped() {
    let admin = start_admin(None).await;
    admin.store.add(hostile("t-hostile"));
    admin.store.add(txn("t-ok", TxnState::Succeeded));
    let a = send(Method::GET, &admin.url("/"), None, &[]).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.header("content-type"), "text/html; charset=utf-8");
    let csp = a.header("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'nonce-"),
        "{csp}"
    );
    let page = text(&a);
    for raw in [
        "<script>alert",
        "<img src=x",
        "<b>bold",
        "<iframe",
        "'<x>'",
        "node-<1>",
    ] {
        assert!(!page.contains(raw), "unescaped `{raw}` in the page");
    }
    for escaped in [
        "&lt;/td&gt;&lt;script&gt;alert(&#39;path&#39;)&lt;/script&gt;",
        "group/&lt;img src=x onerror=alert(1)&gt;",
        "node said &quot;&lt;b&gt;bold&lt;/b&gt;&quot; &amp; left",
        "&lt;iframe src=//evil&gt;",
        "<b>node-&lt;1&gt;</b>: transient 500 ×4",
        "undo failed</span> ×3",
    ] {
        assert!(page.contains(escaped), "`{escaped}` missing from the page");
    }
    // Exactly one script and one style: the page's own, under the response's nonce.
    assert_eq!(page.matches("<script").count(), 1);
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert!(page.contains(&format!("<script nonce=\"{nonce}\">")));
    assert!(page.contains("data-act=\"resolve\" data-txn=\"t-hostile\""));
    assert!(
        !page.contains("t-ok"),
        "a succeeded transaction needs no attention"
    );
    assert!(page.contains("1 failed transaction: the nodes may differ"));
    assert!(
        page.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
        "refreshes without JS"
    );
    assert!(
        page.contains("node-1") && page.contains("node-3"),
        "the nodes are listed"
    );
}

#[tokio::test]
async fn a_thousand_transactions_are_paged_fifty_at_a_time() {
    let admin = start_admin(None).await;
    for i in 0..1000 {
        let mut t = txn(&format!("t{i:04}"), TxnState::Failed);
        t.started_ms += i;
        admin.store.add(t);
    }
    let page = text(&send(Method::GET, &admin.url("/"), None, &[]).await);
    assert!(page.contains("Failed and in-doubt transactions (1000)"));
    assert!(page.contains("1–50 of 1000, page 1 of 20"));
    assert_eq!(page.matches("<tr id=\"txn-").count(), 50);
    assert!(page.contains("id=\"txn-t0999\"") && page.contains("id=\"txn-t0950\""));
    assert!(
        !page.contains("id=\"txn-t0949\""),
        "newest first, 50 per page"
    );
    assert!(page.contains("href=\"?page=2\" rel=\"next\""));
    let last = text(&send(Method::GET, &admin.url("/?page=20"), None, &[]).await);
    assert!(last.contains("951–1000 of 1000, page 20 of 20"));
    assert!(last.contains("id=\"txn-t0000\"") && !last.contains("rel=\"next\""));
    let beyond = text(&send(Method::GET, &admin.url("/?page=99"), None, &[]).await);
    assert!(
        beyond.contains("page 20 of 20"),
        "a page past the end shows the last"
    );
    let status = send(Method::GET, &admin.url("/status"), None, &[])
        .await
        .json();
    assert_eq!(status["attention"].as_array().unwrap().len(), 1000);
    assert_eq!(status["failed"], 1000);
}

#[tokio::test]
async fn with_a_token_the_page_shows_only_the_token_field_until_it_is_sent() {
    let admin = start_admin(Some("s3cret")).await;
    admin.store.add(hostile("t-secret-path"));
    let locked = send(Method::GET, &admin.url("/"), None, &[]).await;
    assert_eq!(locked.status(), 401);
    assert_eq!(locked.header("content-type"), "text/html; charset=utf-8");
    let page = text(&locked);
    assert!(page.contains("data-locked=\"1\"") && page.contains("name=\"token\""));
    assert!(
        !page.contains("t-secret-path"),
        "nothing is shown without the token"
    );
    let wrong = send(
        Method::GET,
        &admin.url("/"),
        None,
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(text(&wrong).contains("The token this tab sent is wrong."));
    let json_denied = send(Method::GET, &admin.url("/status"), None, &[]).await;
    assert_eq!(json_denied.status(), 401, "GET /status needs the token too");
    let open = send(
        Method::GET,
        &admin.url("/"),
        None,
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(open.status(), 200);
    assert!(text(&open).contains("t-secret-path"));
}

#[tokio::test]
async fn status_reports_nodes_counts_and_reload_as_json() {
    let admin = start_admin(None).await;
    admin.metrics.txn_finished(TxnState::Succeeded, 0.01);
    admin.metrics.txn_finished(TxnState::RolledBack, 0.02);
    admin.store.add(txn("t-doubt", TxnState::InDoubt));
    let s = send(Method::GET, &admin.url("/status"), None, &[])
        .await
        .json();
    let nodes = s["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["name"], "node-1");
    assert_eq!(nodes[0]["up"], true);
    assert_eq!(s["reload"]["generation"], 1);
    assert_eq!(s["in_doubt"], 1);
    assert_eq!(s["attention"][0]["txn"], "t-doubt");
    let finished = s["finished"].as_array().unwrap();
    let count =
        |state: &str| finished.iter().find(|c| c["state"] == state).unwrap()["count"].clone();
    assert_eq!(
        (count("succeeded"), count("rolled_back"), count("failed")),
        (1.into(), 1.into(), 0.into())
    );
    // Probes give every node a recent latency soon.
    wait_until("node latency is known", || {
        admin
            .app
            .current
            .load()
            .nodes
            .all()
            .iter()
            .all(|n| n.recent_latency().is_some())
    })
    .await;
    let s = send(Method::GET, &admin.url("/status"), None, &[])
        .await
        .json();
    assert!(s["nodes"][2]["latency_ms"].as_f64().unwrap() > 0.0, "{s}");
}

#[tokio::test]
async fn the_page_searches_by_key_and_shows_rolled_back_transactions_and_node_traffic() {
    let admin = start_admin(None).await;
    admin.store.add(txn("t-back", TxnState::RolledBack));
    admin.store.add(txn("t-other", TxnState::Succeeded));
    let page = text(&send(Method::GET, &admin.url("/"), None, &[]).await);
    assert!(
        page.contains("Recently rolled back (1)"),
        "rolled back listed"
    );
    assert!(page.contains("<code class=\"id\">t-back</code>"));
    for column in ["p50 / p99", "requests", "errors", "retries", "last error"] {
        assert!(page.contains(&format!("{column}</th>")), "{column}");
    }
    let version = format!("dtc {}, up ", env!("CARGO_PKG_VERSION"));
    assert!(page.contains(&version), "version and uptime");
    let found = text(&send(Method::GET, &admin.url("/?key=group%2Ft-other"), None, &[]).await);
    assert!(
        found.contains("value=\"group/t-other\""),
        "the form keeps the key"
    );
    assert!(
        found.contains("<code class=\"id\">t-other</code>"),
        "the key's transaction is listed"
    );
    let none = text(&send(Method::GET, &admin.url("/?key=nope"), None, &[]).await);
    assert!(none.contains("No transaction on key <code>nope</code>"));
    let status = send(Method::GET, &admin.url("/status"), None, &[])
        .await
        .json();
    assert_eq!(status["rolled_back"][0]["txn"], "t-back");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
}
