//! The journal's side of cluster mode: records go to the shared store under the key's lease
//! instead of the local log, and the entries in memory are this sidecar's transactions in flight
//! plus the fleet's view, refreshed by [`crate::saga::takeover`].
//!
//! Every record after the intent is written as the whole folded entry, epoch-checked; the end
//! (and a re-drive's, check's or resolution's record) releases the lease in the same statement.

use super::JournalError;
use super::record::{Begin, Entry, IdEntry, Record, now_ms};
use super::shared::{Hold, Shared, StoreError};
use super::store::{Backend, Journal, State, refence};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// How many finished transactions of the fleet the view keeps (the admin API lists them).
const FLEET_FINISHED: usize = 200;

impl Journal {
    /// A journal whose records go to the shared store (`[cluster]`).
    pub fn with_shared_store(keep_finished: usize, shared: Arc<Shared>) -> Arc<Journal> {
        Arc::new(Journal::bare(Backend::Shared(shared), keep_finished))
    }

    /// True with `[cluster]`: other sidecars write the same keys, so what this journal holds in
    /// memory is a view a scan old, and a decision on a key needs its lease and the store's
    /// history of it. False with a local journal, whose only writer is this process: the
    /// key's local turn keeps every other writer out.
    pub fn shared_by_fleet(&self) -> bool {
        matches!(self.backend, Backend::Shared(_))
    }

    /// The shared store, in cluster mode.
    pub(super) fn shared(&self) -> Option<&Arc<Shared>> {
        match &self.backend {
            Backend::Shared(shared) => Some(shared),
            Backend::Memory | Backend::Log(_) => None,
        }
    }

    /// The lease this sidecar holds for `txn`.
    pub fn hold(&self, txn: &str) -> Option<Arc<Hold>> {
        self.holds().get(txn).cloned()
    }

    fn holds(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Hold>>> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn adopt(&self, hold: Arc<Hold>, entry: Option<Entry>) {
        let txn = hold.txn.clone();
        if let Some(e) = entry {
            let mut st = self.lock();
            self.fold(&mut st, &Record::Entry(e));
            refence(&mut st, &txn);
        }
        self.holds().insert(txn, hold);
    }

    /// Takes `key`'s lease for transaction `txn` before it reads anything it decides on (a
    /// write's pre-images, verify's second look); a no-op without `[cluster]`, where the key's
    /// local turn already keeps every other writer out.
    pub async fn take_lease(&self, key: &str, txn: &str) -> Result<(), JournalError> {
        let Some(shared) = self.shared() else {
            return Ok(());
        };
        let hold = shared.acquire(key, txn).await?;
        self.adopt(hold, None);
        Ok(())
    }

    pub(super) fn begin_shared(
        self: &Arc<Self>,
        shared: Arc<Shared>,
        b: Begin,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        let journal = self.clone();
        async move {
            let entry = Entry::new(b);
            let pre = journal.hold(&entry.begin.txn);
            match shared.begin(&entry, pre.clone()).await {
                Ok(hold) => {
                    journal.adopt(hold, Some(entry));
                    Ok(())
                }
                Err(e) => {
                    if pre.is_some() {
                        journal.release(&entry.begin.txn).await;
                    }
                    Err(e.into())
                }
            }
        }
        .boxed()
    }

    /// Folds `rec` and writes the entry under the transaction's lease.
    pub(super) fn append_shared(
        &self,
        rec: Record,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        let txn = rec.txn().to_string();
        let release = !matches!(rec, Record::Node { .. } | Record::Begin(_));
        // The answer a retry with the client's idempotency key gets: kept in its own column,
        // which later records (a re-drive's, a resolution's) leave as it is.
        let answer = match &rec {
            Record::End {
                answer: Some(a), ..
            } => serde_json::to_string(a).ok(),
            _ => None,
        };
        let Some(hold) = self.hold(&txn) else {
            let e = StoreError::Query(format!(
                "transaction {txn} is not held by this sidecar: claim its key first"
            ));
            return std::future::ready(Err(e.into())).boxed();
        };
        let (entry, version) = {
            let mut st = self.lock();
            self.fold(&mut st, &rec);
            refence(&mut st, &txn);
            self.trim(&mut st);
            (st.entries.get(&txn).cloned(), hold.next_version())
        };
        if release {
            self.holds().remove(&txn);
        }
        async move {
            let Some(entry) = entry else {
                return Ok(());
            };
            hold.write(version, &entry, release, answer.as_deref())
                .await
                .map_err(|e| {
                    hold.release();
                    e.into()
                })
        }
        .boxed()
    }

    /// Claims the key of `txn` for work on it (re-drive, check, resolve) and loads its latest
    /// entry. True when this sidecar may go on; always true without `[cluster]`.
    pub async fn claim(&self, txn: &str) -> Result<bool, JournalError> {
        let Some(shared) = self.shared() else {
            return Ok(true);
        };
        let key = match self.get(txn) {
            Some(e) => e.begin.key,
            None => match shared.load(txn).await? {
                Some(e) => e.begin.key,
                None => return Ok(false),
            },
        };
        match shared.claim(&key, txn).await? {
            Some((hold, entry)) => {
                self.adopt(hold, Some(entry));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Releases a claimed key without changing its transaction.
    pub async fn release(&self, txn: &str) {
        let Some(hold) = self.holds().remove(txn) else {
            return;
        };
        let Some(entry) = self.get(txn) else {
            if let Some(shared) = self.shared()
                && let Err(e) = shared.free(&hold).await
            {
                tracing::warn!(txn, error = %e, "cannot free a lease; it expires and is taken over");
            }
            return;
        };
        let version = hold.next_version();
        if let Err(e) = hold.write(version, &entry, true, None).await {
            tracing::warn!(txn, error = %e, "cannot release a lease; it expires by itself");
        }
        hold.release();
    }

    /// Every transaction on `key`, newest first: in cluster mode the store's (complete when read
    /// under the key's lease), else the journal's own.
    pub async fn key_history(&self, key: &str) -> Result<Vec<Entry>, JournalError> {
        match &self.backend {
            Backend::Shared(shared) => Ok(shared.history(key).await?),
            Backend::Memory | Backend::Log(_) => Ok(self.of_key(key)),
        }
    }

    /// Takes over expired leases; returns the entries now held.
    pub async fn take_over(&self) -> Result<Vec<Entry>, JournalError> {
        let Some(shared) = self.shared() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (hold, entry) in shared.take_over(16).await? {
            tracing::warn!(txn = %hold.txn, key = %hold.key, epoch = hold.epoch, state = %entry.state, "lease expired: transaction taken over");
            out.push(entry.clone());
            self.adopt(hold, Some(entry));
        }
        Ok(out)
    }

    /// Drops the fleet's finished transactions beyond `journal.keep_finished` from the store,
    /// but none bound to an idempotency key within `idempotency.window`.
    pub async fn prune(&self) -> Result<u64, JournalError> {
        let Some(shared) = self.shared() else {
            return Ok(0);
        };
        let window = self.lock().idem.window;
        let since = now_ms().saturating_sub(window.as_millis() as u64) as i64;
        Ok(shared.prune(self.keep_finished as i64, since).await?)
    }

    /// With `[cluster]`, every key the fleet's store holds a transaction for (the view in memory
    /// holds only the latest); `None` with a local journal, whose memory holds every key it knows.
    pub async fn store_keys(&self) -> Option<Result<Vec<String>, JournalError>> {
        let shared = self.shared()?;
        Some(shared.keys().await.map_err(JournalError::from))
    }

    /// Replaces the fleet's view with the store's: its open transactions and latest finished
    /// ones; this sidecar's transactions in flight stay as they are.
    pub async fn refresh(&self) -> Result<(), JournalError> {
        let Some(shared) = self.shared() else {
            return Ok(());
        };
        let keep = FLEET_FINISHED.min(self.keep_finished.max(1)) as i64;
        let rows = shared.fleet(keep).await?;
        let held: Vec<String> = self.holds().keys().cloned().collect();
        let mut st = self.lock();
        let mut next = State::default();
        // The limits set from the config stay.
        next.idem = std::mem::take(&mut st.idem);
        next.known = std::mem::take(&mut st.known);
        for txn in &held {
            if let Some(e) = st.entries.remove(txn) {
                next.entries.insert(txn.clone(), e);
            }
        }
        let mut finished: Vec<&Entry> = Vec::new();
        for e in &rows {
            if !next.entries.contains_key(&e.begin.txn) {
                next.entries.insert(e.begin.txn.clone(), e.clone());
                if !e.is_open() {
                    finished.push(e);
                }
            }
        }
        finished.sort_by_key(|e| e.begin.at_ms);
        next.finished = finished.iter().map(|e| e.begin.txn.clone()).collect();
        let txns: Vec<String> = next.entries.keys().cloned().collect();
        for txn in txns {
            refence(&mut next, &txn);
        }
        *st = next;
        Ok(())
    }

    /// [`Journal::map_ids`] in the shared store, under the create's lease.
    pub(super) fn map_ids_shared(
        &self,
        e: IdEntry,
    ) -> BoxFuture<'static, Result<bool, JournalError>> {
        let (shared, hold) = match self.held_store(&e.txn) {
            Ok(held) => held,
            Err(e) => return std::future::ready(Err(e)).boxed(),
        };
        async move { Ok(shared.map_ids(&hold, &e).await?) }.boxed()
    }

    /// [`Journal::set_ids`] in the shared store, under the repair's lease.
    pub(super) fn set_ids_shared(
        &self,
        txn: &str,
        e: IdEntry,
    ) -> BoxFuture<'static, Result<bool, JournalError>> {
        let (shared, hold) = match self.held_store(txn) {
            Ok(held) => held,
            Err(e) => return std::future::ready(Err(e)).boxed(),
        };
        async move { Ok(shared.set_ids(&hold, &e).await?) }.boxed()
    }

    /// [`Journal::unmap_ids`] in the shared store, under the delete's lease.
    pub(super) fn unmap_ids_shared(
        &self,
        txn: &str,
        collection: &str,
        canonical: &str,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        let (shared, hold) = match self.held_store(txn) {
            Ok(held) => held,
            Err(e) => return std::future::ready(Err(e)).boxed(),
        };
        let (collection, canonical) = (collection.to_string(), canonical.to_string());
        async move { Ok(shared.unmap_ids(&hold, &collection, &canonical).await?) }.boxed()
    }

    /// The store and the lease this sidecar holds for `txn`.
    fn held_store(&self, txn: &str) -> Result<(Arc<Shared>, Arc<Hold>), JournalError> {
        let shared = self.shared().cloned().expect("cluster mode");
        match self.hold(txn) {
            Some(hold) => Ok((shared, hold)),
            None => Err(StoreError::Query(format!(
                "transaction {txn} is not held by this sidecar: claim its key first"
            ))
            .into()),
        }
    }
}
