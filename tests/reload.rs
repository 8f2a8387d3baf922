//! Hot reload end to end: a proxy running from a config file in a temporary directory, reference
//! nodes behind it, and the file edited the ways operators, editors and the kubelet edit it.
//! Each test asserts on what a client and the nodes see: which nodes hold a write, the answer's
//! state and per-node attempts, and the reload status the admin API shows.

mod support;

use dtc::node::RefNode;
use http::StatusCode;
use support::reload::{
    ReloadingProxy, config_of, config_with, kubelet_publish, rename_over, write_in_place,
};
use support::{Answer, start_node, wait_until};
use tempfile::TempDir;

/// Four nodes: the tests swap `c` for `d` and back.
async fn four_nodes() -> [RefNode; 4] {
    [
        start_node("a", 1).await,
        start_node("b", 1001).await,
        start_node("c", 2001).await,
        start_node("d", 3001).await,
    ]
}

/// Creates `group` through the proxy and asserts it landed on exactly `on` among `all`.
async fn assert_write_lands_on(
    proxy: &ReloadingProxy,
    group: &str,
    on: &[&RefNode],
    all: &[RefNode],
) {
    let a = proxy.create_group(group).await;
    assert_eq!(a.status(), StatusCode::CREATED, "{:?}", a.body());
    assert_eq!(a.headers()["x-dtc-state"], "succeeded");
    for node in all {
        let expected = on.iter().any(|n| n.name() == node.name());
        let holds = node.groups().contains(group);
        assert_eq!(holds, expected, "node {} holding {group}", node.name());
    }
}

#[tokio::test]
async fn in_place_write_takes_effect() {
    let all = four_nodes().await;
    let [a, b, c, d] = &all;
    let proxy = ReloadingProxy::start(&config_of(&[a, b, c])).await;
    assert_write_lands_on(&proxy, "g1", &[a, b, c], &all).await;

    write_in_place(&proxy.path, &config_of(&[a, b, d]));
    proxy.wait_generation(2).await;
    assert_write_lands_on(&proxy, "g2", &[a, b, d], &all).await;
}

#[tokio::test]
async fn rename_over_takes_effect() {
    let all = four_nodes().await;
    let [a, b, c, d] = &all;
    let proxy = ReloadingProxy::start(&config_of(&[a, b, c])).await;

    rename_over(&proxy.path, &config_of(&[a, b, c, d]));
    proxy.wait_generation(2).await;
    assert_write_lands_on(&proxy, "g1", &[a, b, c, d], &all).await;

    rename_over(&proxy.path, &config_of(&[d]));
    proxy.wait_generation(3).await;
    assert_write_lands_on(&proxy, "g2", &[d], &all).await;
}

#[tokio::test]
async fn configmap_symlink_swap_takes_effect() {
    let all = four_nodes().await;
    let [a, b, c, d] = &all;
    let dir = TempDir::new().unwrap();
    kubelet_publish(dir.path(), "2026_01_01_00_00_00.1", &config_of(&[a, b, c]));
    let path = dir.path().join("dtc.toml");
    let proxy = ReloadingProxy::start_on(dir, path.clone()).await;
    let root = path.parent().unwrap();

    kubelet_publish(root, "2026_01_01_00_05_00.2", &config_of(&[a, b, d]));
    proxy.wait_generation(2).await;
    assert_write_lands_on(&proxy, "g1", &[a, b, d], &all).await;

    kubelet_publish(root, "2026_01_01_00_10_00.3", &config_of(&[b, c, d]));
    proxy.wait_generation(3).await;
    assert_write_lands_on(&proxy, "g2", &[b, c, d], &all).await;
}

#[tokio::test]
async fn invalid_files_keep_the_running_config_until_a_valid_one() {
    let all = four_nodes().await;
    let [a, b, c, d] = &all;
    let abc = config_of(&[a, b, c]);
    let proxy = ReloadingProxy::start(&abc).await;
    let no_scheme = d.addr().to_string();
    let bad_url = config_with(&[a, b, d], |cfg| cfg.nodes[2].url.clone_from(&no_scheme));
    let bad_line = 1 + bad_url
        .lines()
        .position(|l| l.contains(&format!("\"{no_scheme}\"")))
        .unwrap();
    let bad_url_problem =
        format!("line {bad_line}: `nodes[2].url`: url `{no_scheme}` has no scheme");
    let invalid = [
        ("[[nodes]\nname = \"a\"\n".to_owned(), "line 1"),
        (
            format!("retries = 3\n{abc}"),
            "line 1: `retries`: unknown field `retries`",
        ),
        (bad_url, bad_url_problem.as_str()),
        (config_with(&[], |_| {}), "`nodes`: no nodes"),
    ];
    for (n, (text, expected)) in invalid.iter().enumerate() {
        rename_over(&proxy.path, text);
        let failed = n as u64 + 1;
        wait_until("the reload is refused", || {
            proxy.app.reload.get().reloads_failed == failed
        })
        .await;
        let status = proxy.app.reload.get();
        let error = status.last_error.expect("the refusal's error");
        assert!(error.contains(expected), "{expected:?} not in {error}");
        assert!(error.contains(&proxy.path.display().to_string()), "{error}");
        assert_eq!((status.generation, status.reloads_ok), (1, 0));
        assert_write_lands_on(&proxy, &format!("kept{n}"), &[a, b, c], &all).await;
    }

    rename_over(&proxy.path, &config_of(&[a, b, d]));
    proxy.wait_generation(2).await;
    let status = proxy.app.reload.get();
    assert_eq!(
        (
            status.generation,
            status.reloads_ok,
            status.reloads_failed,
            status.last_error
        ),
        (2, 1, 4, None)
    );
    assert_write_lands_on(&proxy, "fixed", &[a, b, d], &all).await;
}

#[tokio::test]
async fn restart_only_settings_and_comment_edits_swap_nothing() {
    let all = four_nodes().await;
    let [a, b, c, _] = &all;
    let abc = config_of(&[a, b, c]);
    let proxy = ReloadingProxy::start(&abc).await;

    write_in_place(&proxy.path, &format!("# a comment\n{abc}"));
    wait_until("the comment edit is read", || {
        proxy.app.reload.get().reloads_unchanged == 1
    })
    .await;
    assert_eq!(proxy.generation(), 1);
    assert_eq!(
        proxy.app.reload.get().reloads_ok,
        0,
        "a no-op is not applied"
    );

    write_in_place(
        &proxy.path,
        &config_with(&[a, b, c], |cfg| {
            cfg.listen.address = "127.0.0.1:1".into();
            cfg.retry.attempts = 3;
        }),
    );
    proxy.wait_generation(2).await;
    let settings = proxy.app.current.load().settings.clone();
    assert_eq!(
        settings.config.listen.address, "127.0.0.1:0",
        "restart-only"
    );
    assert_eq!(settings.config.retry.attempts, 3, "the rest applies");
    assert_eq!(
        proxy.app.reload.get().restart_pending,
        ["listen.address"],
        "the views say a restart is pending"
    );
    assert_write_lands_on(&proxy, "still-served", &[a, b, c], &all).await;
}

/// A's attempts at the write and at its undo, from the answer's problem document.
fn attempts_on_a(answer: &Answer) -> (u64, u64) {
    let doc = answer.json();
    let a = doc["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node"] == "a"))
        .unwrap_or_else(|| panic!("no report of node a in {doc}"));
    let undo = a["compensation"]["attempts"].as_u64().unwrap_or(0);
    (a["attempts"].as_u64().expect("attempts"), undo)
}

#[tokio::test]
async fn retry_policy_change_applies_to_the_next_transaction_not_the_one_in_flight() {
    let [a, b, c, _] = four_nodes().await;
    // Without probes, a node that is down still gets every attempt the policy allows.
    let attempts = |n: u32| {
        config_with(&[&a, &b, &c], |cfg| {
            cfg.retry.attempts = n;
            cfg.health.path = String::new();
        })
    };
    let proxy = ReloadingProxy::start(&attempts(1)).await;
    a.hold_next(1);
    let url = proxy.groups_url();
    let in_flight = tokio::spawn(async move {
        support::send(http::Method::POST, &url, Some(r#"{"groupId": "g1"}"#), &[]).await
    });
    wait_until("node a holds the write", || a.held_count() == 1).await;

    rename_over(&proxy.path, &attempts(5));
    proxy.wait_generation(2).await;
    // Cut the held write; a stays down, so every attempt the policy allows fails.
    a.set_down(true).await;
    let a1 = in_flight.await.unwrap();
    assert_eq!(a1.status(), StatusCode::BAD_GATEWAY, "{:?}", a1.body());
    assert_eq!(a1.headers()["x-dtc-state"], "failed");
    assert_eq!(attempts_on_a(&a1), (1, 1), "the old policy: one attempt");

    let a2 = proxy.create_group("g2").await;
    assert_eq!(
        a2.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        a2.body()
    );
    assert_eq!(a2.headers()["x-dtc-state"], "rolled_back");
    assert_eq!(attempts_on_a(&a2).0, 5, "the new policy: five attempts");
    assert!(b.groups().is_empty() && c.groups().is_empty());
}

mod traffic {
    //! Reloads under continuous writes: what each client saw, and what each node holds.

    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// One write as its client saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        create: bool,
        group: String,
        answer: Result<(u16, String, String), String>,
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    /// Creates `t{task}-{i}` for i = 0, 1, ... and deletes every odd one right after, until `stop`.
    async fn client(url: String, task: usize, stop: Arc<AtomicBool>, log: Log) {
        let http = support::client(false);
        for i in 0.. {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let group = format!("t{task}-{i}");
            let body = format!(r#"{{"groupId": "{group}"}}"#);
            let methods: &[http::Method] = if i % 2 == 1 {
                &[http::Method::POST, http::Method::DELETE]
            } else {
                &[http::Method::POST]
            };
            for method in methods {
                let req = support::request(method.clone(), &url, Some(&body), &[]);
                let answer = support::send_with(&http, req).await.map(|a| {
                    let header = |name: &str| {
                        a.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_owned()
                    };
                    (
                        a.status().as_u16(),
                        header("x-dtc-state"),
                        header("x-dtc-transaction-id"),
                    )
                });
                let seen = Seen {
                    create: *method == http::Method::POST,
                    group: group.clone(),
                    answer: answer.map_err(|e| format!("{e:?}")),
                };
                log.lock().unwrap().push(seen);
            }
        }
    }

    /// The nodes that received a request of each transaction, by transaction id.
    fn nodes_by_txn(all: &[RefNode]) -> BTreeMap<String, BTreeSet<String>> {
        let mut by_txn: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for node in all {
            for req in node.requests() {
                if let Some(txn) = req.headers.get("x-dtc-transaction-id") {
                    let txn = txn.to_str().unwrap().to_owned();
                    by_txn
                        .entry(txn)
                        .or_default()
                        .insert(node.name().to_owned());
                }
            }
        }
        by_txn
    }

    /// The node list swaps between `a,b,c` and `a,b,d` (a node replaced). A write runs on the
    /// snapshot it started with, so none fails: `a` and `b`, in every set, always apply it, and
    /// a DELETE that finds the group missing on the new node counts as converged (404 is its
    /// "already"). "Failed" is therefore any answer other than 2xx with state `succeeded`.
    #[tokio::test]
    async fn twenty_node_list_swaps_under_traffic_fail_and_diverge_nothing() {
        let all = four_nodes().await;
        let [a, b, c, d] = &all;
        let sets = [config_of(&[a, b, c]), config_of(&[a, b, d])];
        let proxy = ReloadingProxy::start(&sets[0]).await;
        let (stop, log): (Arc<AtomicBool>, Log) = Default::default();
        let clients: Vec<_> = (0..4)
            .map(|t| tokio::spawn(client(proxy.groups_url(), t, stop.clone(), log.clone())))
            .collect();
        for reload in 1..=20u64 {
            let served = log.lock().unwrap().len();
            wait_until("writes between reloads", || {
                log.lock().unwrap().len() >= served + 4
            })
            .await;
            rename_over(&proxy.path, &sets[reload as usize % 2]);
            proxy.wait_generation(reload + 1).await;
        }
        let served = log.lock().unwrap().len();
        wait_until("writes after the last reload", || {
            log.lock().unwrap().len() >= served + 4
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
        let seen = log.lock().unwrap().clone();
        assert_no_failed_answer(&seen);
        assert_no_divergence(&seen, &all);
        assert_eq!(proxy.app.reload.get().reloads_ok, 20);
    }

    /// Every write answered 2xx with state `succeeded`.
    fn assert_no_failed_answer(seen: &[Seen]) {
        let failed: Vec<&Seen> = seen
            .iter()
            .filter(|s| !matches!(&s.answer, Ok((200..=299, state, _)) if state == "succeeded"))
            .collect();
        assert!(
            failed.is_empty(),
            "{} of {} writes failed: {failed:#?}",
            failed.len(),
            seen.len()
        );
    }

    /// Each write ran on exactly one configured node set, and each node holds exactly the
    /// groups created on a set it was in and not deleted on a set it was in.
    fn assert_no_divergence(seen: &[Seen], all: &[RefNode]) {
        let sets: [BTreeSet<String>; 2] = [["a", "b", "c"], ["a", "b", "d"]]
            .map(|set| set.iter().map(|n| n.to_string()).collect());
        let ran_on = nodes_by_txn(all);
        let mut holders: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut used = BTreeSet::new();
        for s in seen {
            let (_, _, txn) = s.answer.as_ref().unwrap();
            let nodes = ran_on.get(txn).cloned().unwrap_or_default();
            let set = sets.iter().position(|set| *set == nodes);
            assert!(
                set.is_some(),
                "{s:?} ran on {nodes:?}, not on a configured set"
            );
            used.extend(set);
            let held = holders.entry(&s.group).or_default();
            if s.create {
                held.extend(nodes);
            } else {
                held.retain(|n| !nodes.contains(n));
            }
        }
        assert_eq!(used.len(), 2, "both node sets served writes");
        for node in all {
            let expected: BTreeSet<String> = holders
                .iter()
                .filter(|(_, held)| held.contains(node.name()))
                .map(|(g, _)| g.to_string())
                .collect();
            assert_eq!(node.groups(), expected, "groups on node {}", node.name());
        }
    }
}
