//! A held lease: its fencing [`Token`] (key, transaction, epoch, holder) and how long this
//! sidecar may still act on it (a deadline from the store's answers, see [`super::clock`]). A
//! background task renews it every third of the lease; before each node request [`may_send`]
//! checks that the lease outlives the request and renews it first when it does not.
//!
//! The holder is scoped on the task that runs the transaction ([`under`]), so the node-request
//! code checks it without every call site passing it along.
//!
//! **Why fencing holds, even after a lost commit.** A lease row carries three things: the
//! epoch, the holder (this sidecar's name and 64 random bits drawn for each grant) and the
//! transaction. A renewal, an intent, an entry's write and a release each name all three and
//! change the row only when it carries all three, in the statement that makes the change. Epochs
//! come from one sequence, so within one history of the database no two grants share an epoch.
//! A failover to an asynchronous replica can lose the tail of that history: a grant (epoch `e`
//! to holder `h` for transaction `t`) committed on the old primary, and the sequence's advance
//! with it, and the new primary may grant `e` again. It grants it to another holder id (a fresh
//! random suffix per grant; even the same sidecar claiming the same transaction again draws a new
//! one) and, for any new write, another transaction. So the old holder's token never matches
//! the new row: its renewal finds no row, it stops before its next node request, and none of its
//! state changes applies. What a lost commit can still lose is the commit itself: an
//! acknowledged write whose end record was on the lost tail. Run the store with synchronous
//! replication (`synchronous_commit = on` with a synchronous standby) when that matters.

use super::super::record::Entry;
use super::Shared;
use super::StoreError;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// What names one grant of a key's lease: a change applies only while the row carries all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub key: String,
    pub txn: String,
    pub epoch: i64,
    /// The grant's holder: the sidecar's name and a random suffix.
    pub holder: String,
}

/// A lease this sidecar holds.
pub struct Hold {
    pub key: String,
    pub txn: String,
    pub epoch: i64,
    pub holder: String,
    /// Local time until which the lease is surely held: the send time of the last successful
    /// acquire or renewal plus what the store granted, less the margin.
    valid_until: Mutex<Instant>,
    /// The store clock's forward steps seen when `valid_until` was set.
    shift_at: AtomicI64,
    released: AtomicBool,
    /// Entry versions handed out (one per folded record).
    seq: AtomicU64,
    /// Serialises this transaction's writes to the store and holds the version last written,
    /// so an older snapshot of the entry never overwrites a newer one.
    writing: tokio::sync::Mutex<u64>,
    shared: Arc<Shared>,
}

impl Hold {
    pub(super) fn new(shared: &Arc<Shared>, token: Token, deadline: Instant) -> Arc<Hold> {
        let hold = Arc::new(Hold {
            key: token.key,
            txn: token.txn,
            epoch: token.epoch,
            holder: token.holder,
            valid_until: Mutex::new(deadline),
            shift_at: AtomicI64::new(shared.clock.shift_ms()),
            released: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            writing: tokio::sync::Mutex::new(0),
            shared: shared.clone(),
        });
        tokio::spawn(renew_loop(Arc::downgrade(&hold), shared.cfg.lease / 3));
        hold
    }

    /// The grant's fencing token.
    pub fn token(&self) -> Token {
        Token {
            key: self.key.clone(),
            txn: self.txn.clone(),
            epoch: self.epoch,
            holder: self.holder.clone(),
        }
    }

    /// The next version number of the entry (take it when the record is folded).
    pub fn next_version(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Writes version `version` of the entry (skipped when a newer one is already written),
    /// releasing the lease with it when `release`, keeping `answer` (see [`Shared::write`]).
    pub async fn write(
        &self,
        version: u64,
        entry: &Entry,
        release: bool,
        answer: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut last = self.writing.lock().await;
        if *last > version {
            return Ok(());
        }
        self.shared.write(self, entry, release, answer).await?;
        *last = version;
        Ok(())
    }

    /// Stops renewing: the lease is released or given up.
    pub fn release(&self) {
        self.released.store(true, Ordering::Relaxed);
    }

    /// How long the lease surely lasts: to the deadline, less any step of the store's clock seen
    /// since it was set.
    fn remaining(&self) -> Duration {
        let left = self
            .valid_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .saturating_duration_since(Instant::now());
        let stepped = self.shared.clock.shift_ms() - self.shift_at.load(Ordering::Relaxed);
        left.saturating_sub(Duration::from_millis(stepped.max(0) as u64))
    }

    /// Renews the lease once; false when it is lost or the store cannot say.
    pub async fn renew(&self) -> bool {
        if self.released.load(Ordering::Relaxed) {
            return false;
        }
        match self.shared.renew(&self.token()).await {
            Ok(Some(deadline)) => {
                *self.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = deadline;
                self.shift_at
                    .store(self.shared.clock.shift_ms(), Ordering::Relaxed);
                true
            }
            Ok(None) => {
                tracing::error!(txn = %self.txn, key = %self.key, epoch = self.epoch, "lease lost: another sidecar took the key over");
                if let Some(m) = self.shared.pool.metrics() {
                    m.error(super::events::StoreErrorKind::LeaseLost);
                }
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
pub(crate) async fn under<F: std::future::Future>(hold: Option<Arc<Hold>>, f: F) -> F::Output {
    match hold {
        Some(h) => HELD.scope(h, f).await,
        None => f.await,
    }
}

/// Ok when no lease governs this task, or when its lease outlives a request of `need`.
pub(crate) async fn may_send(need: Duration) -> Result<(), LeaseTooShort> {
    let Ok(hold) = HELD.try_with(Arc::clone) else {
        return Ok(());
    };
    hold.ensure(need).await
}
