//! Reading the journal's entries: one transaction, lists, the open ones, counts (for the admin
//! API, the re-drive and the metrics). With `[cluster]` these read the fleet's view in memory.

use super::record::Entry;
use super::store::Journal;
use crate::txn::TxnState;

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
