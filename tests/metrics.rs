//! `GET /metrics` parses as Prometheus text, and its numbers are exactly what was recorded.

mod support;

use dtc::admin::ScrapeView;
use dtc::saga::{Class, TxnState};
use http::{Method, StatusCode, header};
use prometheus_parse::{Scrape, Value};
use support::admin::{start_admin, txn};
use support::{Trio, create_group, read_group, send, wait_until};

/// The value of the sample `metric` whose labels include all of `labels`; histograms give
/// their `+Inf` bucket (the observation count).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {metric} {labels:?}"));
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets
            .iter()
            .find(|b| b.less_than.is_infinite())
            .map(|b| b.count)
            .expect("a +Inf bucket"),
        Value::Summary(_) => panic!("{metric} is a summary"),
    }
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

#[tokio::test]
async fn metrics_parse_and_count_exactly_what_happened() {
    let admin = start_admin(None).await;
    admin.nodes[2].set_down(true).await;
    let node_3_down = || !admin.app.current.load().nodes.all()[2].health.is_up();
    wait_until("the probes mark node-3 down", node_3_down).await;
    admin.store.add(txn("t1", TxnState::Failed));
    admin.store.add(txn("t2", TxnState::InDoubt));
    admin.store.add(txn("t3", TxnState::Failed));
    let m = &admin.metrics;
    for seconds in [0.002, 0.004, 0.5] {
        m.txn_finished(TxnState::Succeeded, seconds);
    }
    m.txn_finished(TxnState::Failed, 3.0);
    for outcome in [
        Class::Applied,
        Class::Applied,
        Class::Transient,
        Class::NotSent,
    ] {
        m.node_request("node-1", outcome);
    }
    m.node_request("node-2", Class::Already);
    m.retry("node-1");
    m.retry("node-1");
    m.compensation("node-1", true);
    m.compensation("node-2", false);
    m.read_finished(0.001, true);
    m.read_finished(0.010, false);
    m.reload(true);
    m.reload(false);
    m.reload(false);
    m.redrive(true);

    let scrape = send(Method::GET, &admin.url("/metrics"), None, &[]).await;
    assert_eq!(scrape.status(), StatusCode::OK);
    assert!(
        scrape.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let s = parse(std::str::from_utf8(scrape.body()).expect("UTF-8"));

    let t = "dtc_transactions_total";
    assert_eq!(value(&s, t, &[("state", "succeeded")]), 3.0);
    assert_eq!(value(&s, t, &[("state", "failed")]), 1.0);
    assert_eq!(value(&s, t, &[("state", "rolled_back")]), 0.0);
    assert_eq!(value(&s, "dtc_write_duration_seconds", &[]), 4.0);
    assert_eq!(value(&s, "dtc_write_duration_seconds_count", &[]), 4.0);
    let n = "dtc_node_requests_total";
    assert_eq!(
        value(&s, n, &[("node", "node-1"), ("outcome", "applied")]),
        2.0
    );
    assert_eq!(
        value(&s, n, &[("node", "node-1"), ("outcome", "transient")]),
        1.0
    );
    assert_eq!(
        value(&s, n, &[("node", "node-1"), ("outcome", "already")]),
        0.0
    );
    assert_eq!(
        value(&s, n, &[("node", "node-2"), ("outcome", "already")]),
        1.0
    );
    assert_eq!(value(&s, "dtc_retries_total", &[("node", "node-1")]), 2.0);
    let c = "dtc_compensations_total";
    assert_eq!(
        value(&s, c, &[("node", "node-1"), ("result", "undone")]),
        1.0
    );
    assert_eq!(
        value(&s, c, &[("node", "node-2"), ("result", "failed")]),
        1.0
    );
    assert_eq!(value(&s, "dtc_reads_total", &[("result", "ok")]), 1.0);
    assert_eq!(value(&s, "dtc_reads_total", &[("result", "failed")]), 1.0);
    assert_eq!(value(&s, "dtc_read_duration_seconds", &[]), 2.0);
    assert_eq!(
        value(&s, "dtc_config_reloads_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        value(&s, "dtc_config_reloads_total", &[("result", "failed")]),
        2.0
    );
    assert_eq!(
        value(&s, "dtc_redrives_total", &[("result", "converged")]),
        1.0
    );
    assert_eq!(
        value(&s, "dtc_redrives_total", &[("result", "not_converged")]),
        0.0
    );

    assert_eq!(value(&s, "dtc_transactions_in_doubt", &[]), 1.0);
    assert_eq!(value(&s, "dtc_transactions_failed", &[]), 2.0);
    assert_eq!(value(&s, "dtc_config_generation", &[]), 1.0);
    assert_eq!(value(&s, "dtc_node_up", &[("node", "node-1")]), 1.0);
    assert_eq!(value(&s, "dtc_node_up", &[("node", "node-3")]), 0.0);
}

#[test]
fn every_metric_is_typed_and_documented() {
    let m = dtc::admin::Metrics::new();
    m.node_request("a", Class::Applied);
    let text = m.encode(&ScrapeView {
        generation: 1,
        nodes: vec![("a".into(), true)],
        ..ScrapeView::default()
    });
    let s = parse(&text);
    for name in [
        "dtc_transactions_total",
        "dtc_node_requests_total",
        "dtc_retries_total",
        "dtc_compensations_total",
        "dtc_reads_total",
        "dtc_config_reloads_total",
        "dtc_redrives_total",
    ] {
        let sample = s.samples.iter().find(|x| x.metric == name);
        assert!(
            matches!(sample.map(|x| &x.value), Some(Value::Counter(_))),
            "{name} is not a counter in\n{text}"
        );
        assert!(s.docs.contains_key(name), "{name} has no HELP");
    }
    for name in [
        "dtc_transactions_failed",
        "dtc_node_up",
        "dtc_config_generation",
    ] {
        let sample = s.samples.iter().find(|x| x.metric == name);
        assert!(
            matches!(sample.map(|x| &x.value), Some(Value::Gauge(_))),
            "{name}"
        );
    }
}

/// Real transactions through the proxy, then `GET /metrics` on the admin listener.
#[tokio::test]
async fn counters_match_the_transactions_the_proxy_ran() {
    let (nodes, dtc) = support::cluster_with(|c| c.writes.fail_fast = false).await;
    let admin_url = dtc.serve_admin().await;
    for g in ["m1", "m2", "m3"] {
        assert_eq!(create_group(&dtc, g).await.status(), 201);
    }
    for n in &nodes {
        n.reject_next(1, 422);
    }
    assert_eq!(create_group(&dtc, "m4").await.status(), 422);
    nodes.c().set_down(true).await;
    let rb = create_group(&dtc, "m5").await;
    assert_eq!(rb.state(), "rolled_back");
    for _ in 0..5 {
        assert_eq!(read_group(&dtc, "m1").await.status(), 200);
    }
    let scrape = send(Method::GET, &format!("{admin_url}/metrics"), None, &[]).await;
    assert_eq!(scrape.status(), StatusCode::OK);
    let s = parse(std::str::from_utf8(scrape.body()).unwrap());
    let count = |metric: &str, labels: &[(&str, &str)]| value(&s, metric, labels);
    assert_eq!(
        count("dtc_transactions_total", &[("state", "succeeded")]),
        3.0
    );
    assert_eq!(
        count("dtc_transactions_total", &[("state", "rejected")]),
        1.0
    );
    assert_eq!(
        count("dtc_transactions_total", &[("state", "rolled_back")]),
        1.0
    );
    assert_eq!(count("dtc_transactions_total", &[("state", "failed")]), 0.0);
    assert_eq!(count("dtc_write_duration_seconds", &[]), 5.0);
    assert_eq!(
        count(
            "dtc_node_requests_total",
            &[("node", "a"), ("outcome", "applied")]
        ),
        4.0
    );
    assert_eq!(
        count(
            "dtc_node_requests_total",
            &[("node", "a"), ("outcome", "rejected")]
        ),
        1.0
    );
    assert_eq!(
        count(
            "dtc_node_requests_total",
            &[("node", "c"), ("outcome", "transient")]
        ),
        1.0
    );
    assert_eq!(
        count("dtc_retries_total", &[("node", "c")]),
        3.0,
        "4 attempts on c: 3 retries"
    );
    assert_eq!(
        count(
            "dtc_compensations_total",
            &[("node", "a"), ("result", "undone")]
        ),
        1.0
    );
    assert_eq!(
        count(
            "dtc_compensations_total",
            &[("node", "b"), ("result", "undone")]
        ),
        1.0
    );
    assert_eq!(count("dtc_reads_total", &[("result", "ok")]), 5.0);
    assert_eq!(count("dtc_transactions_failed", &[]), 0.0);
    assert_eq!(count("dtc_transactions_in_doubt", &[]), 0.0);
}
