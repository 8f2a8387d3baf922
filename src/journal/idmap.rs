//! The id map: for each resource a node named itself (a route's `id`, [`crate::config::ids`]),
//! the canonical id the client sees and each node's own id. Folded from its records like the
//! transactions (`Record::Ids` when a create succeeds, `Record::IdsGone` when a delete leaves the
//! resource absent on every node), written out whole by compaction, so it lives exactly as long
//! as the resource. A create's ids recorded but its transaction then ending without the write
//! (rolled back, rejected, to be retried: recovery's word after a crash) are withdrawn.
//! The rule that builds and reads the map is the saga's (`saga::ids`) and the proxy's; the
//! journal's reads of it are in [`super::query`], its appends in [`super::store`].

pub use super::record::IdEntry;

use super::record::{Entry, Record};
use crate::txn::TxnState;
use std::collections::HashMap;

/// The map in memory.
#[derive(Default)]
pub(super) struct Ids {
    /// `(collection, canonical)` → the resource's ids.
    pub(super) by_canonical: HashMap<(String, String), IdEntry>,
    /// `(collection, node, node id)` → canonical id.
    pub(super) by_node: HashMap<(String, String, String), String>,
    /// A create still open → its resource, withdrawn if the create ends without the write.
    open: HashMap<String, (String, String)>,
}

impl Ids {
    /// Forgets everything (before the journal is rebuilt from the disk).
    pub(super) fn clear(&mut self) {
        *self = Ids::default();
    }

    fn insert(&mut self, e: IdEntry) {
        let at = (e.collection.clone(), e.canonical.clone());
        self.remove(&at);
        for (node, id) in &e.nodes {
            self.by_node.insert(
                (e.collection.clone(), node.clone(), id.clone()),
                e.canonical.clone(),
            );
        }
        self.by_canonical.insert(at, e);
    }

    fn remove(&mut self, at: &(String, String)) {
        if let Some(old) = self.by_canonical.remove(at) {
            for (node, id) in old.nodes {
                let k = (old.collection.clone(), node, id);
                if self.by_node.get(&k) == Some(&old.canonical) {
                    self.by_node.remove(&k);
                }
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_canonical.len()
    }
}

/// Folds one record into the map; `entry` is the transaction's entry after the record.
pub(super) fn fold(ids: &mut Ids, rec: &Record, entry: Option<&Entry>) {
    match rec {
        Record::Ids(e) => {
            if entry.is_some_and(Entry::is_open) {
                ids.open
                    .insert(e.txn.clone(), (e.collection.clone(), e.canonical.clone()));
            }
            ids.insert(e.clone());
        }
        Record::IdsGone {
            collection,
            canonical,
            ..
        } => ids.remove(&(collection.clone(), canonical.clone())),
        Record::End { txn, state, .. } | Record::Redrive { txn, state, .. } => {
            let Some(at) = ids.open.remove(txn) else {
                return;
            };
            let withdrawn = matches!(
                state,
                TxnState::RolledBack | TxnState::Rejected | TxnState::ToBeRetried
            );
            if withdrawn {
                tracing::info!(txn = %txn, collection = %at.0, canonical = %at.1, state = %state, "the create ended without its write: its ids leave the map");
                ids.remove(&at);
            } else if *state == TxnState::Failed {
                // Still deciding (recovery, the re-drive): the next word may withdraw it.
                ids.open.insert(txn.clone(), at);
            }
        }
        _ => {}
    }
}

/// The map compaction writes after the entries.
pub(super) fn records(ids: &Ids) -> Vec<Record> {
    ids.by_canonical
        .values()
        .cloned()
        .map(Record::Ids)
        .collect()
}
