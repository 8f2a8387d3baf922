//! A held lease: the key, its fencing epoch, and how long this sidecar may still act on it by
//! its own clock. A background task renews it every third of the lease; before each node request
//! [`may_send`] checks that the lease outlives the request and renews it first when it does not.
//!
//! The holder is scoped on the task that runs the transaction ([`under`]), so the node-request
//! code checks it without every call site passing it along.

use super::super::record::Entry;
use super::Shared;
use super::StoreError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// A lease this sidecar holds.
pub struct Hold {
    pub key: String,
    pub txn: String,
    pub epoch: i64,
    /// Local time until which the lease is surely held: the send time of the last successful
    /// acquire or renewal plus the lease (the database's `now()` came later than the send).
    valid_until: Mutex<Instant>,
    released: AtomicBool,
    /// Entry versions handed out (one per folded record).
    seq: AtomicU64,
    /// Serialises this transaction's writes to the store and holds the version last written,
    /// so an older snapshot of the entry never overwrites a newer one.
    writing: tokio::sync::Mutex<u64>,
    shared: Arc<Shared>,
}

impl Hold {
    pub(super) fn new(
        shared: &Arc<Shared>,
        key: &str,
        txn: &str,
        epoch: i64,
        sent: Instant,
    ) -> Arc<Hold> {
        let hold = Arc::new(Hold {
            key: key.to_string(),
            txn: txn.to_string(),
            epoch,
            valid_until: Mutex::new(sent + shared.cfg.lease),
            released: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            writing: tokio::sync::Mutex::new(0),
            shared: shared.clone(),
        });
        tokio::spawn(renew_loop(Arc::downgrade(&hold), shared.cfg.lease / 3));
        hold
    }

    /// The next version number of the entry (take it when the record is folded).
    pub fn next_version(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Writes version `version` of the entry (skipped when a newer one is already written),
    /// releasing the lease with it when `release`.
    pub async fn write(
        &self,
        version: u64,
        entry: &Entry,
        release: bool,
    ) -> Result<(), StoreError> {
        let mut last = self.writing.lock().await;
        if *last > version {
            return Ok(());
        }
        self.shared.write(self, entry, release).await?;
        *last = version;
        Ok(())
    }

    /// Stops renewing: the lease is released or given up.
    pub fn release(&self) {
        self.released.store(true, Ordering::Relaxed);
    }

    fn remaining(&self) -> Duration {
        self.valid_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .saturating_duration_since(Instant::now())
    }

    /// Renews the lease once; false when it is lost or the store cannot say.
    pub async fn renew(&self) -> bool {
        if self.released.load(Ordering::Relaxed) {
            return false;
        }
        let sent = Instant::now();
        match self.shared.renew(&self.key, self.epoch).await {
            Ok(true) => {
                *self.valid_until.lock().unwrap_or_else(|p| p.into_inner()) =
                    sent + self.shared.cfg.lease;
                true
            }
            Ok(false) => {
                tracing::error!(txn = %self.txn, key = %self.key, epoch = self.epoch, "lease lost: another sidecar took the key over");
                self.release();
                false
            }
            Err(e) => {
                tracing::warn!(txn = %self.txn, key = %self.key, error = %e, "cannot renew the lease");
                false
            }
        }
    }

    /// Ok when the lease will outlive `need` from now (renewing it when it would not).
    pub async fn ensure(&self, need: Duration) -> Result<(), LeaseTooShort> {
        if self.remaining() > need {
            return Ok(());
        }
        if self.renew().await && self.remaining() > need {
            return Ok(());
        }
        Err(LeaseTooShort {
            txn: self.txn.clone(),
            key: self.key.clone(),
        })
    }
}

/// A node request was not started: the key's lease would not outlive it (the node never saw it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not sent: the lease of {txn} on {key} would not outlive the request")]
pub struct LeaseTooShort {
    pub txn: String,
    pub key: String,
}

async fn renew_loop(hold: Weak<Hold>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(h) = hold.upgrade() else { return };
        if h.released.load(Ordering::Relaxed) {
            return;
        }
        h.renew().await;
    }
}

tokio::task_local! {
    static HELD: Arc<Hold>;
}

/// Runs `f` with `hold` as the lease its node requests must respect.
pub async fn under<F: std::future::Future>(hold: Option<Arc<Hold>>, f: F) -> F::Output {
    match hold {
        Some(h) => HELD.scope(h, f).await,
        None => f.await,
    }
}

/// Ok when no lease governs this task, or when its lease outlives a request of `need`.
pub async fn may_send(need: Duration) -> Result<(), LeaseTooShort> {
    let Ok(hold) = HELD.try_with(Arc::clone) else {
        return Ok(());
    };
    hold.ensure(need).await
}
