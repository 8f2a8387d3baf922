//! Where `dtc verify` learns which keys were written lately: [`RecentKeys`], a small interface
//! over the journal's records. The local [`Journal`] implements it; a shared store (cluster mode)
//! plugs in by implementing it over its own rows.

use crate::journal::Journal;
use crate::journal::record::Entry;

/// One key written within the window, with the transactions that touched it, newest first.
#[derive(Debug, Clone)]
pub struct KeyHistory {
    pub key: String,
    pub txns: Vec<Entry>,
}

/// A source of recently written keys.
pub trait RecentKeys: Send + Sync {
    /// Keys with a transaction that started at or after `since_ms` (milliseconds since the
    /// epoch), the most recently written first, at most `limit` of them. Each key carries every
    /// transaction the source still holds for it (older ones too: they are evidence).
    fn recent(&self, since_ms: u64, limit: usize) -> Vec<KeyHistory>;

    /// Every transaction the source holds for `key`, newest first (read again under the key's
    /// lock, just before the nodes are read).
    fn history(&self, key: &str) -> KeyHistory;
}

impl RecentKeys for Journal {
    /// The journal keeps open transactions and the last `journal.keep_finished` finished ones,
    /// so "recent" is bounded by that window as well.
    fn recent(&self, since_ms: u64, limit: usize) -> Vec<KeyHistory> {
        group_by_key(self.list(None, usize::MAX), since_ms, limit)
    }

    fn history(&self, key: &str) -> KeyHistory {
        KeyHistory {
            key: key.to_string(),
            txns: self.of_key(key),
        }
    }
}

/// Groups `entries` (newest first) by key, keeping keys written since `since_ms`.
pub(crate) fn group_by_key(entries: Vec<Entry>, since_ms: u64, limit: usize) -> Vec<KeyHistory> {
    let mut out: Vec<KeyHistory> = Vec::new();
    let mut index = std::collections::HashMap::<String, usize>::new();
    for e in entries {
        match index.get(&e.begin.key) {
            Some(&i) => out[i].txns.push(e),
            None if e.begin.at_ms >= since_ms && out.len() < limit => {
                index.insert(e.begin.key.clone(), out.len());
                out.push(KeyHistory {
                    key: e.begin.key.clone(),
                    txns: vec![e],
                });
            }
            // Too old, or beyond the cap: a key first seen here is not checked.
            None => {}
        }
    }
    out
}
