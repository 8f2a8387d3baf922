//! What a journal file holds, judged offline: its transactions (in doubt, failed, to verify),
//! its damaged stretches and what each may have held, and whether dtc may start on it by itself.
//! [`super::Journal::open`] refuses damage with [`super::damage::summary`]; `dtc journal check` prints
//! the whole [`Check`].
//!
//! The rule: a torn write (at the end, or a batch cut short by a power loss) was never
//! acknowledged, so nothing dtc must remember depends on it: it is set aside without asking.
//! Any other damaged record may have been a transaction's intent — one in doubt or failed,
//! which dtc would then never recover or fence —, so dtc starts on it only when a person says
//! so (`dtc journal repair`, or `dtc run --accept-journal-damage`).

use super::damage::{DamageView, damage_views};
use super::log::{Format, Found};
use super::store::{Backend, Journal};
use crate::txn::TxnState;
use serde::Serialize;

/// What a journal holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Check {
    /// The active segment's path.
    pub path: String,
    /// The active segment's format: 0 (no header), 1, 2, or `None` for an empty file.
    pub format: Option<u32>,
    /// Segment files: the sealed ones and the active one.
    pub segments: usize,
    /// Intact records in every segment.
    pub records: usize,
    /// Records of a shape this dtc does not know (skipped when dtc starts).
    pub unreadable_records: usize,
    /// Transactions dtc would keep: the open ones and the last `journal.keep_finished` (its
    /// default) finished ones.
    pub transactions: usize,
    pub in_doubt: Vec<String>,
    pub failed: Vec<String>,
    pub to_verify: Vec<String>,
    pub damage: Vec<DamageView>,
    /// Transactions with records after the damage but no intent: known to be affected.
    pub orphans: Vec<String>,
}

impl Check {
    /// Judges a file read back (nothing is changed).
    pub(crate) fn of(found: &Found) -> Check {
        let keep = crate::config::JournalConfig::default().keep_finished;
        let journal = Journal::bare(Backend::Memory, keep);
        let loaded = journal.load(&found.payloads());
        let entries = journal.list(None, usize::MAX);
        let ids = |keep: &dyn Fn(&super::record::Entry) -> bool| {
            let mut v: Vec<String> = entries
                .iter()
                .filter(|e| keep(e))
                .map(|e| e.begin.txn.clone())
                .collect();
            v.sort();
            v
        };
        Check {
            path: found.path.display().to_string(),
            format: match found.format {
                Format::Empty => None,
                Format::Legacy => Some(0),
                Format::V1 { version, .. } => Some(version),
            },
            segments: found.sealed.len() + 1,
            records: found.all_records().count(),
            unreadable_records: loaded.skipped,
            transactions: entries.len(),
            in_doubt: ids(&|e| e.state == TxnState::InDoubt),
            failed: ids(&|e| e.state == TxnState::Failed && e.resolution.is_none()),
            to_verify: ids(&|e| e.verify_pending && e.resolution.is_none()),
            damage: damage_views(found),
            orphans: loaded.orphans.into_iter().collect(),
        }
    }

    /// Whether some damage needs a person's word before dtc starts.
    pub(crate) fn needs_a_person(&self) -> bool {
        self.damage.iter().any(|d| d.needs_a_person)
    }
}
