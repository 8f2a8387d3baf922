//! Two sidecars never both hold a key: a property test of the store's leases over fixed seeds.

use super::support::pg;
use dtc::config::ClusterConfig;
use dtc::journal::record::{Begin, Entry};
use dtc::journal::shared::{Shared, StoreError};
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One lease use: a sidecar takes `key`, keeps it `hold_ms` (or stalls past its lease), and
/// ends its transaction.
#[derive(Debug, Clone)]
struct Use {
    sidecar: usize,
    key: usize,
    hold_ms: u64,
    stall: bool,
}

/// Per key: the holder the model believes current (epoch, stalled) and every epoch granted.
#[derive(Default)]
struct Model {
    current: HashMap<String, (i64, bool)>,
    granted: HashMap<String, Vec<i64>>,
}

impl Model {
    /// Whether a later epoch of `key` was already seen. Epochs are unique but not ordered by
    /// grant time: `nextval` is drawn when the statement starts, and a statement that waited
    /// (a loaded store, a conflicting insert) may grant its epoch after a later one was granted
    /// and released. So a late epoch is one of two things, which the caller tells apart with
    /// the hold itself: granted earlier and lost before its answer arrived (the hold is no
    /// longer valid and the store refuses its write), or granted after the later one ended (a
    /// valid hold, counted like any other: no one else may hold the key meanwhile).
    fn late(&self, key: &str, epoch: i64) -> bool {
        self.granted
            .get(key)
            .and_then(|g| g.iter().max())
            .is_some_and(|&last| epoch < last)
    }

    fn grant(&mut self, key: &str, epoch: i64, stalled: bool) {
        if let Some((holder, was_stalled)) = self.current.get(key) {
            assert!(
                *was_stalled,
                "{key}: epoch {epoch} granted while epoch {holder} held it"
            );
        }
        let granted = self.granted.entry(key.to_string()).or_default();
        assert!(
            !granted.contains(&epoch),
            "{key}: epoch {epoch} granted twice: {granted:?}"
        );
        granted.push(epoch);
        self.current.insert(key.to_string(), (epoch, stalled));
    }
}

/// A hold whose epoch came after a later one: true (and its write checked refused) when the
/// hold is no longer valid; false when it is valid, to be counted as a grant.
async fn lost_late(shared: &Shared, hold: &dtc::journal::shared::Hold, e: &Entry) -> bool {
    if hold.ensure(Duration::ZERO).await.is_ok() {
        return false;
    }
    let late = shared.write(hold, e, true, None).await;
    assert!(
        matches!(late, Err(StoreError::LeaseLost { .. })),
        "{}: a stale epoch {} must be refused: {late:?}",
        hold.key,
        hold.epoch
    );
    true
}

pub(super) fn entry(key: &str) -> Entry {
    Entry::new(Begin {
        txn: dtc::saga::new_txn_id(),
        at_ms: dtc::journal::record::now_ms(),
        generation: 1,
        method: http::Method::POST,
        path: "/v1/group/".into(),
        key: key.to_string(),
        route: None,
        nodes: Vec::new(),
        headers: Vec::new(),
        undo: Vec::new(),
        verify: None,
        pre: Vec::new(),
        ..Begin::default()
    })
}

async fn one_use(shared: Arc<Shared>, model: Arc<Mutex<Model>>, u: Use, lease: Duration) {
    let key = format!("k{}", u.key);
    let e = entry(&key);
    let hold = shared
        .begin(&e, None)
        .await
        .expect("the lease is granted within the wait");
    let late = model.lock().unwrap().late(&key, hold.epoch);
    if late && lost_late(&shared, &hold, &e).await {
        return;
    }
    model.lock().unwrap().grant(&key, hold.epoch, u.stall);
    if u.stall {
        // Paused past its lease (renewal stops too, as in a paused process): by now another
        // sidecar took the key over.
        hold.release();
        tokio::time::sleep(lease * 2 + Duration::from_millis(100)).await;
        let late = shared.write(&hold, &e, true, None).await;
        assert!(
            matches!(late, Err(StoreError::LeaseLost { .. })),
            "a stale epoch must be refused: {late:?}"
        );
        return;
    }
    tokio::time::sleep(Duration::from_millis(u.hold_ms)).await;
    {
        let mut m = model.lock().unwrap();
        assert_eq!(
            m.current.get(&key),
            Some(&(hold.epoch, false)),
            "{key}: still ours"
        );
        m.current.remove(&key);
    }
    shared
        .write(&hold, &e, true, None)
        .await
        .expect("a current epoch is accepted");
}

/// What the takeover of an expired lease does, stripped of recovery: claim, end, release.
async fn take_overs(shared: Arc<Shared>, model: Arc<Mutex<Model>>, stop: Arc<tokio::sync::Notify>) {
    loop {
        for (hold, e) in shared.take_over(16).await.expect("takeover scan") {
            let late = model.lock().unwrap().late(&hold.key, hold.epoch);
            if late && lost_late(&shared, &hold, &e).await {
                continue;
            }
            model.lock().unwrap().grant(&hold.key, hold.epoch, false);
            model.lock().unwrap().current.remove(&hold.key);
            shared
                .write(&hold, &e, true, None)
                .await
                .expect("the new epoch is accepted");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
            () = stop.notified() => return,
        }
    }
}

#[test]
fn two_sidecars_never_both_hold_a_key() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Long against the holds (0-3 ms) so that a loaded machine's scheduling delay does not
    // expire a lease its holder still renews (200 ms failed 3 runs in 3 at load 12 on 2 cores).
    let lease = Duration::from_millis(1000);
    let sidecars: Vec<Arc<Shared>> = rt.block_on(async {
        let url = pg::database("leases").await;
        let cfg = ClusterConfig {
            lease,
            wait: Duration::from_secs(3),
            ..ClusterConfig::with_url(&url)
        };
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(Shared::connect(&cfg).await.expect("store"));
        }
        out
    });
    let uses = prop::collection::vec(
        (0..3usize, 0..2usize, 0..4u64, prop::bool::weighted(0.1)).prop_map(
            |(sidecar, key, hold_ms, stall)| Use {
                sidecar,
                key,
                hold_ms,
                stall,
            },
        ),
        4..10,
    );
    let config = proptest::test_runner::Config {
        cases: 16,
        failure_persistence: None,
        ..Default::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    runner
        .run(&uses, |uses| {
            rt.block_on(async {
                let model = Arc::new(Mutex::new(Model::default()));
                let stop = Arc::new(tokio::sync::Notify::new());
                let scanner =
                    tokio::spawn(take_overs(sidecars[0].clone(), model.clone(), stop.clone()));
                let tasks: Vec<_> = uses
                    .into_iter()
                    .map(|u| {
                        tokio::spawn(one_use(
                            sidecars[u.sidecar].clone(),
                            model.clone(),
                            u,
                            lease,
                        ))
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("no lease violation");
                }
                stop.notify_one();
                scanner.await.expect("no takeover violation");
            });
            Ok(())
        })
        .unwrap();
}
