//! Clients' idempotency keys: which transaction each key is bound to and what it came to, folded
//! from the same records as the transactions (a `Begin` carrying the key binds it, the records
//! after it update it), kept for `idempotency.window` and at most `idempotency.max_keys`, and
//! written out whole by compaction (`Record::Idem`) so they outlive the transactions' entries.
//! The rule that reads them is the saga's (`saga::idem`).

use super::record::{Entry, IdemSlot, Record, StoredAnswer};
use crate::txn::{NodeReport, Reason, TxnState};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// The keys in memory.
pub(super) struct Slots {
    pub(super) by_key: HashMap<String, IdemSlot>,
    /// `(at_ms, key)` in binding order; a key bound again leaves a stale pair behind, skipped.
    order: VecDeque<(u64, String)>,
    pub(super) window: Duration,
    pub(super) max_keys: usize,
}

impl Default for Slots {
    /// The widest limits the config allows, until [`Journal::remember_keys`] sets the real ones
    /// (a journal opens before it knows them, and must not forget a key the config keeps).
    fn default() -> Self {
        Slots {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            window: Duration::from_secs(30 * 24 * 3600),
            max_keys: 10_000_000,
        }
    }
}

impl Slots {
    /// Forgets every key, keeping the limits (before the journal is rebuilt from the disk).
    pub(super) fn clear(&mut self) {
        self.by_key.clear();
        self.order.clear();
    }

    fn bind(&mut self, slot: IdemSlot) {
        if self
            .by_key
            .get(&slot.key)
            .is_some_and(|old| old.at_ms > slot.at_ms)
        {
            return;
        }
        self.order.push_back((slot.at_ms, slot.key.clone()));
        self.by_key.insert(slot.key.clone(), slot);
    }

    /// Forgets keys older than the window and the oldest beyond `max_keys`.
    pub(super) fn trim(&mut self, now_ms: u64) {
        let oldest = now_ms.saturating_sub(self.window.as_millis() as u64);
        while let Some((at, key)) = self.order.front().cloned() {
            let live = self.by_key.get(&key).is_some_and(|s| s.at_ms == at);
            if live && at >= oldest && self.by_key.len() <= self.max_keys {
                break;
            }
            self.order.pop_front();
            if live {
                self.by_key.remove(&key);
            }
        }
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &IdemSlot> {
        self.by_key.values()
    }
}

/// A slot for a transaction that just began.
fn slot_of(e: &Entry) -> Option<IdemSlot> {
    let idem = e.begin.idem.as_ref()?;
    Some(IdemSlot {
        key: idem.key.clone(),
        fingerprint: idem.fingerprint.clone(),
        txn: e.begin.txn.clone(),
        at_ms: e.begin.at_ms,
        state: e.state,
        reason: e.reason.clone(),
        resolved: e.resolution.is_some(),
        nodes: e.reports(),
        answer: None,
        route: e.begin.route.clone(),
        resource: e.begin.key.clone(),
        generation: e.begin.generation,
    })
}

/// Folds one record into the keys; `entry` is the transaction's entry after the record.
pub(super) fn fold(slots: &mut Slots, rec: &Record, entry: Option<&Entry>) {
    match rec {
        Record::Idem(slot) => slots.bind(slot.clone()),
        Record::Begin(_) | Record::Entry(_) => {
            if let Some(slot) = entry.and_then(slot_of) {
                slots.bind(slot);
            }
        }
        other => {
            let Some(e) = entry else { return };
            let Some(idem) = &e.begin.idem else { return };
            let Some(slot) = slots.by_key.get_mut(&idem.key) else {
                return;
            };
            if slot.txn != e.begin.txn {
                return;
            }
            slot.state = e.state;
            slot.reason = e.reason.clone();
            slot.resolved = e.resolution.is_some();
            slot.nodes = e.reports();
            if let Record::End { answer, .. } = other {
                slot.answer = answer.clone();
            }
        }
    }
}

/// What the journal remembers of a key, for the saga's rule.
#[derive(Debug, Clone)]
pub struct Remembered {
    pub txn: String,
    pub fingerprint: String,
    pub state: TxnState,
    pub reason: Option<Reason>,
    pub resolved: bool,
    pub nodes: Vec<NodeReport>,
    pub answer: Option<StoredAnswer>,
    pub route: Option<String>,
    pub resource: String,
    pub generation: u64,
}

impl From<&IdemSlot> for Remembered {
    fn from(s: &IdemSlot) -> Remembered {
        Remembered {
            txn: s.txn.clone(),
            fingerprint: s.fingerprint.clone(),
            state: s.state,
            reason: s.reason.clone(),
            resolved: s.resolved,
            nodes: s.nodes.clone(),
            answer: s.answer.clone(),
            route: s.route.clone(),
            resource: s.resource.clone(),
            generation: s.generation,
        }
    }
}

/// What a transaction bound to a key (as the shared store holds it) tells a retry with the key.
pub(super) fn remembered_of(e: &Entry, answer: Option<StoredAnswer>) -> Option<Remembered> {
    let mut slot = slot_of(e)?;
    slot.answer = answer;
    Some(Remembered::from(&slot))
}

/// The slots compaction writes after the entries.
pub(super) fn records(slots: &Slots) -> Vec<Record> {
    slots.all().cloned().map(Record::Idem).collect()
}
