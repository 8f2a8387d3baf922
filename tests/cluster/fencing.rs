//! Fencing that survives a lost commit: a lease is renewed and changed only by the grant that
//! holds it (epoch, holder and transaction, all three), even when a failover to a replica that
//! lost the grant hands the same epoch out again.

use super::lease::entry;
use super::support::pg;
use dtc::config::ClusterConfig;
use dtc::journal::shared::{Shared, StoreError};
use std::time::Duration;

fn cfg(url: &str) -> ClusterConfig {
    ClusterConfig {
        lease: Duration::from_secs(5),
        wait: Duration::from_millis(200),
        ..ClusterConfig::with_url(url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_by_another_holder_or_for_another_transaction_is_refused() {
    let url = pg::database("wrongholder").await;
    let a = Shared::connect(&cfg(&url)).await.unwrap();
    let b = Shared::connect(&cfg(&url)).await.unwrap();
    let hold = a.begin(&entry("k"), None).await.unwrap();
    let mut stolen = hold.token();
    stolen.holder = format!("{}/0000000000000001", b.owner);
    assert_eq!(b.renew(&stolen).await.unwrap(), None, "b renewed a's lease");
    let mut other = hold.token();
    other.txn = "another-transaction".into();
    assert_eq!(
        a.renew(&other).await.unwrap(),
        None,
        "renewed for another transaction"
    );
    assert!(
        a.renew(&hold.token()).await.unwrap().is_some(),
        "the holder renews"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_reused_after_a_lost_commit_cannot_be_renewed_by_the_old_holder() {
    let url = pg::database("lostcommit").await;
    let a = Shared::connect(&cfg(&url)).await.unwrap();
    let b = Shared::connect(&cfg(&url)).await.unwrap();
    let first = entry("k");
    let old = a.begin(&first, None).await.unwrap();
    // A failover to a replica that never saw a's grant: the row, the intent and the sequence's
    // advance are gone.
    pg::shared()
        .exec(
            "lostcommit",
            &format!(
                "DELETE FROM dtc_leases WHERE key = 'k'; DELETE FROM dtc_txns WHERE txn = '{}';
                 SELECT setval('dtc_epochs', {}, false)",
                first.begin.txn, old.epoch
            ),
        )
        .await;
    let second = entry("k");
    let new = b.begin(&second, None).await.unwrap();
    assert_eq!(
        new.epoch, old.epoch,
        "the simulated failover reused the epoch"
    );
    assert!(
        !old.renew().await,
        "the old holder renewed the new holder's lease"
    );
    let late = a.write(&old, &first, true, None).await;
    assert!(
        matches!(late, Err(StoreError::LeaseLost { .. })),
        "the old holder's end is refused: {late:?}"
    );
    assert!(new.renew().await, "the new holder keeps its lease");
    b.write(&new, &second, true, None)
        .await
        .expect("the new holder ends its write");
}
