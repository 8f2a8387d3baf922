//! Fail-fast over a node set: which writes a down node turns away, and which one is its trial.

use super::*;
use crate::config::HealthConfig;
use health::Reach;
use tokio::time::Instant;

fn node(name: &str) -> Arc<Node> {
    let (url, authority, base_path) = parse_node_url("http://127.0.0.1:9").unwrap();
    let spec = NodeSpec {
        name: name.into(),
        url,
        authority,
        base_path,
        tls: None,
    };
    Node::new(spec, Duration::from_millis(100), HealthConfig::default())
}

fn set(names: &[&str]) -> NodeSet {
    NodeSet {
        nodes: names.iter().map(|n| node(n)).collect::<Vec<_>>().into(),
    }
}

fn take_down(n: &Node) {
    let refused = Reach::Unreachable("connect failed".into());
    for _ in 0..3 {
        n.health
            .record(&refused, Instant::now(), &HealthConfig::default());
    }
    assert!(!n.health.is_up());
}

/// The probe's trial reaches `n`, which is up again.
fn bring_up(n: &Node) {
    let cfg = HealthConfig::default();
    assert_eq!(
        n.health.poll(&cfg),
        health::Step::Probe,
        "the probe's trial"
    );
    n.health.record(&Reach::Reached, Instant::now(), &cfg);
    assert!(n.health.is_up());
}

#[tokio::test(start_paused = true)]
async fn every_node_up_admits_every_write() {
    let s = set(&["a", "b"]);
    assert_eq!(s.admit_write(false), Ok(()));
    assert_eq!(s.admit_write(true), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_down_node_refuses_until_its_trial_which_only_an_undoable_write_may_be() {
    let s = set(&["a", "b", "c"]);
    take_down(&s.all()[2]);
    let refusal = s.admit_write(true).unwrap_err();
    assert_eq!(refusal.node, "c");
    assert!(refusal.retry_in <= HealthConfig::default().trial_initial);
    tokio::time::advance(HealthConfig::default().trial_initial).await;
    assert!(s.admit_write(false).is_err(), "no undo: never a trial");
    assert_eq!(s.admit_write(true), Ok(()), "the trial");
    assert!(s.admit_write(true).is_err(), "one trial at a time");
    assert_eq!(s.all()[2].health_view().state, "half_open");
}

#[tokio::test(start_paused = true)]
async fn with_two_nodes_down_no_write_is_a_trial_and_the_wait_is_the_longer_one() {
    let s = set(&["a", "b", "c"]);
    take_down(&s.all()[1]);
    tokio::time::advance(Duration::from_millis(300)).await;
    take_down(&s.all()[2]);
    tokio::time::advance(HealthConfig::default().trial_initial).await;
    let refusal = s.admit_write(true).unwrap_err();
    assert_eq!(refusal.node, "b");
    assert!(refusal.retry_in.is_zero(), "b's trial is due: {refusal:?}");
    tokio::time::advance(HealthConfig::default().trial_initial).await;
    assert!(
        s.admit_write(true).is_err(),
        "both due, still no trial write"
    );
    assert_eq!(s.all()[1].health_view().state, "down", "not claimed");
}

/// Node c of three goes down; a write that needs it, not undoable (it cannot be the trial, only
/// wait for the probe's), waits under `wait` and `newly`; c comes back `back_after` later. The
/// write must still be waiting then (`why`), and be admitted as c comes back.
async fn admitted_when_c_comes_back(
    wait: Duration,
    newly: Duration,
    back_after: Duration,
    why: &str,
) {
    let s = Arc::new(set(&["a", "b", "c"]));
    take_down(&s.all()[2]);
    let start = Instant::now();
    let waiting = tokio::spawn({
        let s = s.clone();
        async move { s.admit_write_within(false, wait, newly).await }
    });
    tokio::time::advance(back_after).await;
    assert!(!waiting.is_finished(), "{why}");
    bring_up(&s.all()[2]);
    assert_eq!(waiting.await.unwrap(), Ok(()));
    assert_eq!(start.elapsed(), back_after, "admitted when c came back");
}

#[tokio::test(start_paused = true)]
async fn a_write_waits_for_a_down_node_that_comes_back_within_the_wait() {
    admitted_when_c_comes_back(
        Duration::from_secs(1),
        Duration::ZERO,
        Duration::from_millis(300),
        "still waiting while c is down",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_write_for_a_node_that_stays_down_is_refused_when_the_wait_is_over() {
    let s = set(&["a", "b", "c"]);
    take_down(&s.all()[2]);
    let start = Instant::now();
    let refusal = s
        .admit_write_within(false, Duration::from_secs(1), Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(refusal.node, "c");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let at_once = s
        .admit_write_within(false, Duration::ZERO, Duration::ZERO)
        .await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "a zero wait refuses at once"
    );
    assert!(at_once.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_waiting_undoable_write_becomes_the_trial_when_it_is_due() {
    let s = set(&["a", "b", "c"]);
    take_down(&s.all()[2]);
    let start = Instant::now();
    let admitted = s
        .admit_write_within(true, Duration::from_secs(1), Duration::ZERO)
        .await;
    assert_eq!(admitted, Ok(()));
    let waited = start.elapsed();
    assert!(
        !waited.is_zero() && waited <= HealthConfig::default().trial_initial,
        "admitted when the first trial was due (jittered): {waited:?}"
    );
    assert_eq!(
        s.all()[2].health_view().state,
        "half_open",
        "the write is the trial"
    );
}

#[tokio::test(start_paused = true)]
async fn a_write_waits_out_a_node_down_for_less_than_its_retry_budget() {
    admitted_when_c_comes_back(
        Duration::from_secs(1),
        Duration::from_secs(5),
        Duration::from_secs(3),
        "past the 1 s wait, but c has been down for less than the 5 s retry budget",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_node_down_longer_than_the_retry_budget_is_gone_and_its_writes_wait_only_the_wait() {
    let s = set(&["a", "b", "c"]);
    take_down(&s.all()[2]);
    let down = Instant::now();
    // A write arriving 2 s into the outage waits until the budget from the outage's start.
    tokio::time::advance(Duration::from_secs(2)).await;
    let refusal = s
        .admit_write_within(false, Duration::from_secs(1), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(refusal.node, "c");
    assert_eq!(down.elapsed(), Duration::from_secs(5));
    // Down for longer than the budget: really gone, refused once the 1 s wait is over.
    let start = Instant::now();
    let refusal = s
        .admit_write_within(false, Duration::from_secs(1), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(refusal.node, "c");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}
