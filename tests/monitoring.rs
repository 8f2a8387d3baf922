//! `manifests/monitoring/`: the alert rules and the Grafana dashboard only use metrics a live
//! dtc exports, the rules hold every metric of the README's alert table, and the
//! `PrometheusRule` carries exactly the plain rules file's groups. (`promtool check rules` and
//! `promtool test rules` run in `.ci/run`.)

mod support;

use http::Method;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use support::*;

fn read(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &str) -> Value {
    let text = read(path);
    Value::deserialize(serde_norway::Deserializer::from_str(&text)).expect("YAML")
}

/// Every `dtc_...` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("dtc_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The PromQL of every rule.
fn rule_exprs(rules: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            out.push(rule["expr"].as_str().expect("an expr").to_string());
        }
    }
    out
}

/// Every query string in a dashboard: targets, variables, annotations.
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_queries(i, out)),
        _ => {}
    }
}

/// The metric names a dtc serves on `/metrics` after a failed write (retries, undos) and a read,
/// in cluster mode (which adds the store's metrics to all the others).
async fn exported() -> BTreeSet<String> {
    let url = support::pg::database("monitoring").await;
    let (nodes, dtc) = cluster_with(|c| {
        c.cluster = Some(dtc::config::ClusterConfig::with_url(&url));
        c.writes.fail_fast = false;
        // Without a read-back, c's 500s leave its state open: it is undone, and that undo fails.
        c.routes.iter_mut().for_each(|r| r.verify = None);
    })
    .await;
    let admin = dtc.serve_admin().await;
    nodes.c().fail_next(1_000_000);
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.state(), "failed");
    read_group(&dtc, "g1").await;
    let m = send(Method::GET, &format!("{admin}/metrics"), None, &[]).await;
    assert_eq!(m.status(), 200);
    let text = String::from_utf8(m.body().to_vec()).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// The metric names only a dtc with a local journal (no `[cluster]`) serves: the journal's.
async fn exported_with_a_local_journal() -> BTreeSet<String> {
    let (_nodes, dtc) = cluster().await;
    let admin = dtc.serve_admin().await;
    assert_eq!(create_group(&dtc, "g1").await.status(), 201);
    let m = send(Method::GET, &format!("{admin}/metrics"), None, &[]).await;
    String::from_utf8(m.body().to_vec())
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("dtc_journal_"))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_rules_and_the_dashboard_use_only_metrics_dtc_exports() {
    let mut exported = exported().await;
    let local = exported_with_a_local_journal().await;
    assert!(local.contains("dtc_journal_writable"), "{local:?}");
    exported.extend(local);
    let rules = yaml("manifests/monitoring/dtc-rules.yaml");
    let mut used: BTreeSet<String> = rule_exprs(&rules)
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    let dashboard: Value =
        serde_json::from_str(&read("manifests/monitoring/grafana-dashboard.json")).unwrap();
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    assert!(
        queries.len() > 15,
        "the dashboard has its queries: {queries:?}"
    );
    let dashboard_names: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    for wanted in [
        "dtc_transactions_total",
        "dtc_write_duration_seconds_bucket",
        "dtc_read_duration_seconds_bucket",
        "dtc_node_up",
        "dtc_node_requests_total",
        "dtc_retries_total",
        "dtc_compensations_total",
        "dtc_config_reloads_total",
        "dtc_store_up",
        "dtc_store_round_trip_seconds_bucket",
        "dtc_lease_wait_seconds_bucket",
        "dtc_lease_takeovers_total",
        "dtc_store_errors_total",
    ] {
        assert!(
            dashboard_names.contains(wanted),
            "the dashboard shows no {wanted}"
        );
    }
    used.extend(dashboard_names);
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "not exported by dtc: {unknown:?}\nexported: {exported:?}"
    );
}

#[test]
fn the_rules_cover_the_readme_alert_table() {
    let readme = read("docs/operating.md");
    let at = readme
        .find("**What to alert on:**")
        .expect("the alert table of docs/operating.md");
    let table: String = readme[at..]
        .lines()
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n");
    let in_readme = metric_names(&table);
    assert!(in_readme.len() >= 7, "{in_readme:?}");
    let rules = yaml("manifests/monitoring/dtc-rules.yaml");
    let in_rules: BTreeSet<String> = rule_exprs(&rules)
        .iter()
        .flat_map(|e| metric_names(e))
        .map(|n| n.trim_end_matches("_bucket").to_string())
        .collect();
    let missing: Vec<&String> = in_readme.difference(&in_rules).collect();
    assert!(
        missing.is_empty(),
        "alerts of docs/operating.md without a rule: {missing:?}"
    );
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = &rule["alert"];
            assert!(
                name.as_str().is_some_and(|n| n.starts_with("Dtc")),
                "{rule}"
            );
            assert!(
                rule["labels"]["severity"].is_string(),
                "{name}: no severity"
            );
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{name}: no summary"
            );
        }
    }
}

#[test]
fn the_prometheus_rule_holds_the_plain_rules_file() {
    let crd = yaml("manifests/monitoring/prometheusrule.yaml");
    assert_eq!(crd["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(crd["kind"], "PrometheusRule");
    assert_eq!(crd["metadata"]["name"], "dtc");
    let keys: Vec<&String> = crd.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec"]);
    assert_eq!(
        crd["spec"],
        yaml("manifests/monitoring/dtc-rules.yaml"),
        "prometheusrule.yaml's spec must be dtc-rules.yaml, unchanged"
    );
}
