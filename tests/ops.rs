//! `dtc status` and `dtc txn`, run as the real binary against a dtc serving its admin API: the
//! tables, `--output json`, the exit codes, and one clear line for each mistake.

mod support;

use serde_json::{Value, json};
use support::*;

/// What a run of the binary left: exit code, stdout, stderr.
struct Run {
    code: i32,
    out: String,
    err: String,
}

async fn dtc_cli(args: &[&str], token: Option<&str>) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dtc"));
    cmd.args(args)
        .env_remove("DTC_ADMIN")
        .env_remove("DTC_ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("DTC_ADMIN_TOKEN", t);
    }
    let o = cmd.output().await.expect("run dtc");
    Run {
        code: o.status.code().expect("an exit code"),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A cluster whose node c answers 500 to everything (its undo too), so a create ends failed.
async fn failing_cluster(token: Option<&str>) -> (Vec<dtc::node::RefNode>, Dtc, String) {
    let (nodes, dtc) = cluster_with(|c| {
        c.listen.admin_token = token.map(String::from);
        c.writes.fail_fast = false;
        // Without a read-back, c's 500s leave its state open: it is undone, and that undo fails.
        c.routes.iter_mut().for_each(|r| r.verify = None);
    })
    .await;
    let admin = dtc.serve_admin().await;
    (nodes, dtc, admin)
}

async fn failed_write(nodes: &[dtc::node::RefNode], dtc: &Dtc) -> String {
    nodes.c().fail_next(1_000_000);
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.state(), "failed");
    a.txn().to_string()
}

#[tokio::test]
async fn status_is_a_healthy_table_and_exit_0_then_names_a_stopped_node_and_a_failed_write() {
    let (nodes, dtc, admin) = failing_cluster(None).await;
    let ok = create_group(&dtc, "g0").await;
    assert_eq!(ok.status(), 201);
    let healthy = dtc_cli(&["status", "--admin", &admin], None).await;
    assert_eq!(healthy.code, 0, "{}{}", healthy.out, healthy.err);
    assert!(
        healthy.out.contains("config generation 1"),
        "{}",
        healthy.out
    );
    assert!(healthy.out.contains("NODE  URL"), "{}", healthy.out);
    for n in ["a", "b", "c"] {
        assert!(healthy.out.lines().any(|l| l.starts_with(&format!("{n}     http://127.0.0.1:")) && l.contains(" up ")), "{}", healthy.out);
    }
    assert!(healthy.out.contains("succeeded 1"), "{}", healthy.out);
    assert!(
        healthy
            .out
            .ends_with("OK: every node is up, nothing needs attention\n")
    );

    let txn = failed_write(&nodes, &dtc).await;
    let down = nodes.b();
    down.set_down(true).await;
    wait_until("dtc sees b down", || !dtc.sees_up(down)).await;
    let bad = dtc_cli(&["status", "--admin", &admin], None).await;
    assert_eq!(bad.code, 1, "{}{}", bad.out, bad.err);
    assert!(bad.out.contains("NEEDS ATTENTION:"), "{}", bad.out);
    assert!(
        bad.out
            .contains(&format!("  - node b ({}) is down", down.url())),
        "{}",
        bad.out
    );
    assert!(
        bad.out
            .contains("  - 1 failed transaction: the nodes may differ"),
        "{}",
        bad.out
    );
    let row = bad
        .out
        .lines()
        .find(|l| l.starts_with(&txn))
        .expect("the failed transaction's row");
    assert!(
        row.contains("failed") && row.contains("group/g1") && row.contains("c=500x"),
        "{row}"
    );

    let as_json = dtc_cli(&["status", "--admin", &admin, "--output", "json"], None).await;
    assert_eq!(as_json.code, 1);
    let v: Value = serde_json::from_str(&as_json.out).expect("JSON output");
    assert_eq!(v["failed"], 1);
    assert_eq!(v["attention"][0]["txn"], json!(txn));
    assert_eq!(v["problems"].as_array().unwrap().len(), 2, "{v}");
}

#[tokio::test]
async fn txn_lists_shows_and_resolves_and_says_what_is_wrong() {
    let (nodes, dtc, admin) = failing_cluster(None).await;
    let txn = failed_write(&nodes, &dtc).await;
    let list = dtc_cli(
        &["txn", "--admin", &admin, "list", "--state", "failed"],
        None,
    )
    .await;
    assert_eq!(list.code, 0, "{}", list.err);
    assert!(list.out.starts_with("TRANSACTION"), "{}", list.out);
    assert!(list.out.contains(&txn));
    let show = dtc_cli(&["txn", "--admin", &admin, "show", &txn], None).await;
    assert_eq!(show.code, 0, "{}", show.err);
    assert!(show.out.contains("state        failed"), "{}", show.out);
    let c = show
        .out
        .lines()
        .find(|l| l.starts_with("c "))
        .expect("node c's row");
    assert!(
        c.contains("transient") && c.contains("500") && c.contains("FAILED"),
        "{c}"
    );

    // c still fails: the re-drive runs and the transaction stays failed.
    let retried = dtc_cli(&["txn", "--admin", &admin, "retry", &txn], None).await;
    assert_eq!(retried.code, 1, "still failed: {}", retried.err);
    assert!(
        retried
            .out
            .starts_with(&format!("transaction  {txn}\nstate        failed\n")),
        "{}",
        retried.out
    );

    let unknown = dtc_cli(&["txn", "--admin", &admin, "show", "no-such-txn"], None).await;
    assert_eq!(unknown.code, 66);
    assert_eq!(unknown.err.lines().count(), 1, "{}", unknown.err);
    assert!(
        unknown.err.contains("no transaction no-such-txn"),
        "{}",
        unknown.err
    );

    let resolve = [
        "txn",
        "--admin",
        &admin,
        "--output",
        "json",
        "resolve",
        &txn,
        "--reason",
        "fixed on c",
    ];
    let done = dtc_cli(&resolve, None).await;
    assert_eq!(done.code, 0, "{}", done.err);
    let v: Value = serde_json::from_str(&done.out).unwrap();
    assert_eq!(v["resolution"], "fixed on c");
    let again = dtc_cli(&["txn", "--admin", &admin, "retry", "no-such-txn"], None).await;
    assert_eq!(again.code, 66, "{}", again.err);
    // Resolved, it no longer fences its resource: there is nothing to re-drive.
    let refused = dtc_cli(&["txn", "--admin", &admin, "retry", &txn], None).await;
    assert_eq!(
        (refused.code, refused.err.lines().count()),
        (65, 1),
        "{}",
        refused.err
    );
    assert!(
        refused.err.contains("the admin API refused (409)")
            && refused.err.contains("already resolved by"),
        "{}",
        refused.err
    );
    let bad_state = dtc_cli(
        &["txn", "--admin", &admin, "list", "--state", "broken"],
        None,
    )
    .await;
    assert_eq!(bad_state.code, 64, "a usage error: {}", bad_state.err);
}

#[tokio::test]
async fn a_missing_or_wrong_token_and_an_unreachable_admin_are_one_line_each() {
    let (_nodes, _dtc, admin) = failing_cluster(Some("s3cret")).await;
    let missing = dtc_cli(&["status", "--admin", &admin], None).await;
    assert_eq!(
        (missing.code, missing.err.lines().count()),
        (77, 1),
        "{}",
        missing.err
    );
    assert!(
        missing.err.contains("needs a token: set DTC_ADMIN_TOKEN"),
        "{}",
        missing.err
    );
    let wrong = dtc_cli(&["txn", "--admin", &admin, "list"], Some("nope")).await;
    assert_eq!(
        (wrong.code, wrong.err.lines().count()),
        (77, 1),
        "{}",
        wrong.err
    );
    assert!(
        wrong
            .err
            .contains("refused the token in DTC_ADMIN_TOKEN: it is wrong")
    );
    let right = dtc_cli(&["status", "--admin", &admin], Some("s3cret")).await;
    assert_eq!(right.code, 0, "{}{}", right.out, right.err);

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = dtc_cli(&["status", "--admin", &gone], None).await;
    assert_eq!(
        (unreachable.code, unreachable.err.lines().count()),
        (69, 1),
        "{}",
        unreachable.err
    );
    assert!(
        unreachable
            .err
            .contains(&format!("the admin listener at {gone} is unreachable"))
    );
    let bad_url = dtc_cli(&["status", "--admin", "localhost:9901"], None).await;
    assert_eq!(bad_url.code, 64, "{}", bad_url.err);
    assert!(
        bad_url.err.contains("write it as http://HOST:PORT"),
        "{}",
        bad_url.err
    );
}

#[tokio::test]
async fn retry_waits_for_the_verdict_and_exits_1_while_still_failed_then_0_once_converged() {
    let (nodes, dtc, admin) = failing_cluster(None).await;
    let txn = failed_write(&nodes, &dtc).await;
    // c still fails: the verdict says so, with the latest evidence, and the exit code is 1.
    let still = dtc_cli(&["txn", "--admin", &admin, "retry", &txn], None).await;
    assert_eq!(still.code, 1, "{}{}", still.out, still.err);
    assert!(
        still.out.contains("verdict: STILL FAILED after 1 re-drive"),
        "{}",
        still.out
    );
    assert!(still.out.contains("c: undo failed"), "{}", still.out);
    // c heals: the re-drive converges, exit 0, and c's old failed undo shows as history.
    nodes.c().clear_faults();
    let prefix = &txn[..12];
    let healed = dtc_cli(&["txn", "--admin", &admin, "retry", prefix], None).await;
    assert_eq!(healed.code, 0, "{}{}", healed.out, healed.err);
    assert!(healed.out.contains("verdict: converged"), "{}", healed.out);
    assert!(!healed.out.contains("FAILED"), "{}", healed.out);
}

#[tokio::test]
async fn resolving_twice_says_who_resolved_it_and_why_and_prefixes_find_transactions() {
    let (nodes, dtc, admin) = failing_cluster(None).await;
    let txn = failed_write(&nodes, &dtc).await;
    let prefix = &txn[..10];
    let shown = dtc_cli(&["txn", "--admin", &admin, "show", prefix], None).await;
    assert_eq!(shown.code, 0, "{}", shown.err);
    assert!(
        shown.out.starts_with(&format!("transaction  {txn}\n")),
        "{}",
        shown.out
    );
    let by_key = dtc_cli(
        &["txn", "--admin", &admin, "list", "--key", "group/g1"],
        None,
    )
    .await;
    assert!(by_key.out.contains(&txn), "{}", by_key.out);
    let none = dtc_cli(
        &["txn", "--admin", &admin, "list", "--key", "group/zz"],
        None,
    )
    .await;
    assert_eq!(none.out, "no transactions\n");
    let resolve = |by: &'static str| {
        let admin = admin.clone();
        let txn = txn.clone();
        async move {
            dtc_cli(
                &[
                    "txn",
                    "--admin",
                    &admin,
                    "resolve",
                    &txn,
                    "--reason",
                    "fixed on c",
                    "--by",
                    by,
                ],
                None,
            )
            .await
        }
    };
    let first = resolve("alice").await;
    assert_eq!(first.code, 0, "{}", first.err);
    assert!(
        first.out.contains("fixed on c (by alice at "),
        "{}",
        first.out
    );
    let second = resolve("bob").await;
    assert_eq!(second.code, 65, "{}", second.err);
    assert!(
        second.err.contains("is already resolved by alice at ")
            && second.err.contains("(fixed on c)"),
        "{}",
        second.err
    );
}
