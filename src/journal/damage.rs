//! Judging damaged stretches of a journal file: which need a person before dtc starts, what
//! their bytes still read as, and which transactions are known to be affected. The rule is in
//! [`super::check`]'s docs; [`super::store::Journal::open`] refuses with [`refusal`].

use super::log::{DamageKind, Found};
use super::record::Record;
use serde::Serialize;
use std::collections::BTreeSet;

/// One damaged stretch, as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DamageView {
    /// The sealed segment file it is in; absent for the active one (`journal.log`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    pub start: u64,
    pub end: u64,
    pub kind: DamageKind,
    pub reason: String,
    /// What the damaged bytes still read as, if anything (unverified: the checksum failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads_as: Option<String>,
    /// Whether dtc needs a person's word before it starts on the file.
    pub needs_a_person: bool,
}

/// The damaged stretches of `found`, judged.
pub(crate) fn damage_views(found: &Found) -> Vec<DamageView> {
    found
        .all_damage()
        .map(|(segment, d)| DamageView {
            segment: segment
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            start: d.start,
            end: d.end,
            kind: d.kind,
            reason: d.reason.clone(),
            reads_as: reads_as(&d.bytes),
            needs_a_person: d.kind == DamageKind::Damaged,
        })
        .collect()
}

/// The damage of `found` that needs a person, in one line; `None` when dtc may start.
pub(crate) fn refusal(found: &Found) -> Option<String> {
    let views = damage_views(found);
    if !views.iter().any(|d| d.needs_a_person) {
        return None;
    }
    Some(summary(&views, &orphans(found)))
}

pub(super) fn summary(damage: &[DamageView], orphans: &[String]) -> String {
    let mut parts: Vec<String> = damage
        .iter()
        .filter(|d| d.needs_a_person)
        .map(|d| {
            let reads = d
                .reads_as
                .as_ref()
                .map(|r| format!("; its bytes read as {r}, unverified"))
                .unwrap_or_default();
            let of = d
                .segment
                .as_ref()
                .map(|s| format!(" of {s}"))
                .unwrap_or_default();
            format!("bytes {}..{}{of} ({}{reads})", d.start, d.end, d.reason)
        })
        .collect();
    if !orphans.is_empty() {
        parts.push(format!(
            "transactions with records after the damage but no intent: {}",
            orphans.join(", ")
        ));
    }
    parts.join("; ")
}

/// What the first frame of damaged bytes still reads as: `a \`begin\` record of txn X`.
fn reads_as(bytes: &[u8]) -> Option<String> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let payload = bytes.get(8..8usize.checked_add(len)?)?;
    let kind = serde_json::from_slice::<serde_json::Value>(payload).ok()?["t"]
        .as_str()?
        .to_owned();
    let rec: Record = serde_json::from_slice(payload).ok()?;
    Some(format!("a `{kind}` record of transaction {}", rec.txn()))
}

/// Transactions with records but no intent in `found`: their intent was lost to damage.
fn orphans(found: &Found) -> Vec<String> {
    let mut begun = BTreeSet::new();
    let mut named = BTreeSet::new();
    for bytes in found.all_records() {
        match serde_json::from_slice::<Record>(bytes) {
            Ok(rec @ (Record::Begin(_) | Record::Entry(_))) => {
                begun.insert(rec.txn().to_owned());
            }
            Ok(rec) if !begun.contains(rec.txn()) => {
                named.insert(rec.txn().to_owned());
            }
            _ => {}
        }
    }
    named.into_iter().collect()
}
