//! Reading the journal's entries: one transaction, lists, the open ones, counts (for the admin
//! API, the re-drive and the metrics). With `[cluster]` these read the fleet's view in memory.

use super::JournalError;
use super::idem::Remembered;
use super::record::{Entry, IdEntry, Known, now_ms};
use super::store::Journal;
use crate::txn::TxnState;
use std::collections::HashMap;

impl Journal {
    /// One transaction.
    pub fn get(&self, txn: &str) -> Option<Entry> {
        self.lock().entries.get(txn).cloned()
    }

    /// Transactions, newest first, optionally of one state.
    pub fn list(&self, state: Option<TxnState>, limit: usize) -> Vec<Entry> {
        let mut out = self.newest_first(|e| state.is_none_or(|s| e.state == s));
        out.truncate(limit);
        out
    }

    /// The transactions on resource `key`, newest first.
    pub fn of_key(&self, key: &str) -> Vec<Entry> {
        self.newest_first(|e| e.begin.key == key)
    }

    /// The entries `keep` accepts, newest first (ties by transaction id).
    fn newest_first(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        let mut out: Vec<Entry> = self
            .lock()
            .entries
            .values()
            .filter(|e| keep(e))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.begin
                .at_ms
                .cmp(&a.begin.at_ms)
                .then_with(|| b.begin.txn.cmp(&a.begin.txn))
        });
        out
    }

    /// How long until the late-write check of `txn` is due (at least a moment: the check itself
    /// takes one), when `txn` is a rollback waiting for one rather than a failed transaction.
    pub fn check_due_in(
        &self,
        txn: &str,
        verify_after: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let st = self.lock();
        let e = st.entries.get(txn)?;
        if e.state == TxnState::Failed || !e.verify_pending {
            return None;
        }
        let due = e.finished_ms.unwrap_or(0) + verify_after.as_millis() as u64;
        let left = due.saturating_sub(crate::journal::record::now_ms());
        Some(std::time::Duration::from_millis(left + 250))
    }

    /// The in-doubt transactions this process decides at start, before it serves: every one of
    /// a local journal (this process is its only writer, so none has a write running); none
    /// with `[cluster]`, where they may be other sidecars' writes in flight, decided by
    /// whoever takes over their expired leases.
    pub fn in_doubt_to_recover(&self) -> Vec<Entry> {
        if self.shared_by_fleet() {
            return Vec::new();
        }
        self.lock()
            .entries
            .values()
            .filter(|e| e.state == TxnState::InDoubt)
            .cloned()
            .collect()
    }

    /// The entry of `txn` when it is in doubt and no other process can own it: with a local
    /// journal either a write of this process runs it or nobody does. `None` with `[cluster]`,
    /// where it may be another sidecar's write in flight (its lease's expiry decides).
    pub fn own_in_doubt(&self, txn: &str) -> Option<Entry> {
        if self.shared_by_fleet() {
            return None;
        }
        self.get(txn).filter(|e| e.state == TxnState::InDoubt)
    }

    /// Transactions with unfinished business (in doubt, failed and unresolved, to verify).
    pub fn open_entries(&self) -> Vec<Entry> {
        self.lock()
            .entries
            .values()
            .filter(|e| e.is_open())
            .cloned()
            .collect()
    }

    /// (in doubt, failed and unresolved) counts.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        let in_doubt = st
            .entries
            .values()
            .filter(|e| e.state == TxnState::InDoubt)
            .count();
        let failed = st
            .entries
            .values()
            .filter(|e| e.state == TxnState::Failed && e.resolution.is_none())
            .count();
        (in_doubt, failed)
    }
}

/// Each key's last acknowledged state ([`super::history`]).
impl Journal {
    /// What `key` held after its last acknowledged write, if the journal knows. With
    /// `[cluster]` other sidecars write the key too and this sidecar's view of them is a scan
    /// old, so it knows nothing it could stand on.
    pub fn last_acknowledged(&self, key: &str) -> Option<Known> {
        if self.shared_by_fleet() {
            return None;
        }
        self.lock().known.by_key.get(key).cloned()
    }

    /// How many keys' last acknowledged state is kept (`journal.key_states`).
    pub fn keep_key_states(&self, max: usize) {
        let mut st = self.lock();
        st.known.max = max;
        if st.known.by_key.len() > max {
            let mut all: Vec<Known> = st.known.by_key.drain().map(|(_, k)| k).collect();
            all.sort_by_key(|k| std::cmp::Reverse(k.at_ms));
            all.truncate(max);
            st.known.order.clear();
            for k in all.into_iter().rev() {
                st.known.set(k);
            }
        }
    }
}

/// Clients' idempotency keys ([`super::idem`]).
impl Journal {
    /// What `key` is bound to, if the journal remembers it (within the window). In cluster mode
    /// the shared store answers, so any sidecar answers a retry alike.
    pub async fn idempotency_key(&self, key: &str) -> Result<Option<Remembered>, JournalError> {
        let window = self.lock().idem.window;
        let oldest = now_ms().saturating_sub(window.as_millis() as u64);
        if let Some(shared) = self.shared() {
            let Some((entry, answer)) = shared.idempotency(key, oldest as i64).await? else {
                return Ok(None);
            };
            let answer = answer.and_then(|a| serde_json::from_str(&a).ok());
            return Ok(super::idem::remembered_of(&entry, answer));
        }
        let st = self.lock();
        Ok(st
            .idem
            .by_key
            .get(key)
            .filter(|s| s.at_ms >= oldest)
            .map(Remembered::from))
    }

    /// The state the last acknowledged write on `key` left, if known: the journal's, or in
    /// cluster mode the store's (read under the key's lease by transaction `txn`; a store that
    /// cannot be read leaves it unknown).
    pub async fn key_state(&self, key: &str, txn: &str) -> Option<Known> {
        let Some(shared) = self.shared() else {
            return self.last_acknowledged(key);
        };
        match shared.finished_of_key(key, txn).await {
            Ok(Some(entries)) => super::history::last_known(&entries),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot read the key's history from the shared store: its prior state is taken from the nodes");
                None
            }
        }
    }

    /// How long and how many keys are remembered (`[idempotency]`).
    pub fn remember_keys(&self, window: std::time::Duration, max_keys: usize) {
        let mut st = self.lock();
        st.idem.window = window;
        st.idem.max_keys = max_keys;
        st.idem.trim(crate::journal::record::now_ms());
    }

    /// Keys remembered now.
    pub fn idempotency_keys(&self) -> usize {
        self.lock().idem.by_key.len()
    }
}

/// The id map ([`super::idmap`]): the journal's, or with `[cluster]` the shared store's, which
/// every sidecar reads alike (the in-memory map then stays empty).
impl Journal {
    /// The ids of the resource `canonical` of `collection`, if the map holds it.
    pub async fn lookup_ids(
        &self,
        collection: &str,
        canonical: &str,
    ) -> Result<Option<IdEntry>, JournalError> {
        match self.shared() {
            Some(shared) => Ok(shared.ids_of(collection, canonical).await?),
            None => Ok(self.ids_of(collection, canonical)),
        }
    }

    /// Whether `id` names no mapped resource of `collection` but is one of `nodes`' own ids of
    /// one: the canonical id of that resource, if so. Such an id passed through as it is would
    /// reach another resource on that node.
    pub async fn shadowing(
        &self,
        collection: &str,
        id: &str,
        nodes: &[&str],
    ) -> Result<Option<String>, JournalError> {
        let Some(shared) = self.shared() else {
            return Ok(self.shadowed(collection, id, nodes));
        };
        if shared.ids_of(collection, id).await?.is_some() {
            return Ok(None);
        }
        Ok(shared.canonical_of_any(collection, nodes, id).await?)
    }

    /// Node `node`'s ids of `collection`'s mapped resources → their canonical ids.
    pub async fn canonicals_on(
        &self,
        collection: &str,
        node: &str,
    ) -> Result<HashMap<String, String>, JournalError> {
        let entries: Vec<IdEntry> = match self.shared() {
            Some(shared) => shared.ids_all(collection).await?,
            None => {
                let st = self.lock();
                let of = st.ids.by_canonical.values();
                of.filter(|e| e.collection == collection).cloned().collect()
            }
        };
        Ok(entries
            .into_iter()
            .filter_map(|e| Some((e.node_id(node)?.to_string(), e.canonical)))
            .collect())
    }

    /// How many resources the map holds.
    pub async fn count_ids(&self) -> Result<u64, JournalError> {
        match self.shared() {
            Some(shared) => Ok(shared.ids_count().await?),
            None => Ok(self.ids_len() as u64),
        }
    }
}

/// The local journal's id map in memory (empty with `[cluster]`).
impl Journal {
    /// The ids of the resource `canonical` of `collection`, if the map holds it.
    pub fn ids_of(&self, collection: &str, canonical: &str) -> Option<IdEntry> {
        let st = self.lock();
        st.ids
            .by_canonical
            .get(&(collection.to_string(), canonical.to_string()))
            .cloned()
    }

    /// The canonical id of node `node`'s resource `id` of `collection`.
    pub fn canonical_of(&self, collection: &str, node: &str, id: &str) -> Option<String> {
        let st = self.lock();
        st.ids
            .by_node
            .get(&(collection.to_string(), node.to_string(), id.to_string()))
            .cloned()
    }

    /// Whether `id` names no mapped resource of `collection` but is one of `nodes`' own ids of
    /// one: the canonical id of that resource, if so. Such an id passed through as it is would
    /// reach another resource on that node.
    pub fn shadowed(&self, collection: &str, id: &str, nodes: &[&str]) -> Option<String> {
        let st = self.lock();
        if st
            .ids
            .by_canonical
            .contains_key(&(collection.to_string(), id.to_string()))
        {
            return None;
        }
        nodes.iter().find_map(|n| {
            st.ids
                .by_node
                .get(&(collection.to_string(), n.to_string(), id.to_string()))
                .cloned()
        })
    }

    /// How many resources the map holds.
    pub fn ids_len(&self) -> usize {
        self.lock().ids.len()
    }
}
