//! A node's state as the operator sees it (`/status`, `dtc status`, the page): up, down since
//! when and why, half-open (a trial under way) — from [`crate::upstream::health`] — and joining
//! (no reads until its backfill finished) with the backfill's progress, from
//! [`crate::upstream::catchup`].

use crate::upstream::Node;
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// The health part of one node's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeState {
    /// `up`, `down`, `half_open`, or `joining` (up, but no reads until its backfill finished).
    pub state: String,
    /// Since when it is down (also while half-open), in milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_since_ms: Option<u64>,
    /// Why it was marked down, and the latest failed trial's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the next half-open trial is due, in milliseconds from now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_trial_ms: Option<u64>,
    /// Why it is joining and how far its backfill got (also while it is down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joining: Option<JoinView>,
}

/// A joining node's backfill.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JoinView {
    /// Since when, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// `added by a config reload`, or `dtc verify found it behind on KEY`.
    pub reason: String,
    /// Keys in the current pass, and how many are done, copied, pending.
    pub total: usize,
    pub done: usize,
    pub copied: usize,
    pub pending: usize,
    /// Passes finished.
    pub passes: u32,
    /// What the backfill cannot see, or why keys are pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl JoinView {
    fn of(j: crate::upstream::catchup::Joining) -> JoinView {
        let p = j.progress;
        JoinView {
            since_ms: epoch_ms(j.since).unwrap_or(0),
            reason: j.reason.describe(),
            total: p.total,
            done: p.done,
            copied: p.copied,
            pending: p.pending,
            passes: p.passes,
            note: p.note,
        }
    }
}

fn epoch_ms(t: std::time::SystemTime) -> Option<u64> {
    u64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
}

impl NodeState {
    /// The state of `node` now.
    pub fn of(node: &Node) -> NodeState {
        let v = node.health_view();
        let joining = node.catch_up.view().map(JoinView::of);
        let state = match (v.state, &joining) {
            ("up", Some(_)) => "joining",
            (s, _) => s,
        };
        NodeState {
            state: state.to_string(),
            joining,
            down_since_ms: v.down_since.and_then(epoch_ms),
            reason: v.reason,
            next_trial_ms: v
                .next_trial_in
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// A word for a table cell: `up`, `down`, `half-open`, `joining 45/120`.
    pub fn short(&self) -> String {
        match (self.state.as_str(), &self.joining) {
            ("", _) => "up".into(),
            ("joining", Some(j)) => format!("joining {}/{}", j.done, j.total),
            (other, _) => other.replace('_', "-"),
        }
    }

    /// What needs saying about a node that is not up (`None` when it is): since when, why, and
    /// when it is tried again.
    pub fn problem(&self) -> Option<String> {
        if self.state == "joining" {
            return self.joining.as_ref().map(JoinView::problem);
        }
        if matches!(self.state.as_str(), "up" | "") {
            return None;
        }
        let mut s = String::from(match self.state.as_str() {
            "half_open" => "is down, a trial is under way",
            _ => "is down",
        });
        if let Some(ms) = self.down_since_ms {
            s.push_str(&format!(" since {}", format_ms(ms)));
        }
        if let Some(r) = &self.reason {
            s.push_str(&format!(": {r}"));
        }
        if let Some(ms) = self.next_trial_ms {
            s.push_str(&format!("; next trial in {ms} ms"));
        }
        s.push_str("; writes that need it are refused until a trial reaches it");
        Some(s)
    }
}

/// A time in milliseconds since the Unix epoch as `2026-12-02T01:02:03Z`.
pub(crate) fn format_ms(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

impl JoinView {
    /// `is joining (added by a config reload, since ...): no reads until ...; 45 of 120 keys ...`.
    fn problem(&self) -> String {
        let mut s = format!(
            "is joining ({}, since {}): it takes writes but serves no reads until its backfill has copied every key; pass {}: {} of {} keys done, {} copied, {} pending",
            self.reason,
            format_ms(self.since_ms),
            self.passes + 1,
            self.done,
            self.total,
            self.copied,
            self.pending
        );
        if let Some(n) = &self.note {
            s.push_str(&format!(" ({n})"));
        }
        if self.reason.starts_with("dtc verify") {
            s.push_str("; `dtc verify --repair` runs its backfill");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_node_says_since_when_why_and_when_it_is_tried() {
        let s = NodeState {
            state: "down".into(),
            down_since_ms: Some(1_700_000_000_000),
            reason: Some("3 of 3 calls within 2s found it unreachable".into()),
            next_trial_ms: Some(400),
            joining: None,
        };
        assert_eq!(s.short(), "down");
        let p = s.problem().unwrap();
        assert!(
            p.starts_with("is down since 2023-11-14T22:13:20Z: 3 of 3 calls"),
            "{p}"
        );
        assert!(p.contains("next trial in 400 ms"), "{p}");
        assert_eq!(NodeState::default().problem(), None);
        let joining = NodeState {
            state: "joining".into(),
            joining: Some(JoinView {
                reason: "added by a config reload".into(),
                total: 120,
                done: 45,
                copied: 3,
                ..JoinView::default()
            }),
            ..NodeState::default()
        };
        assert_eq!(joining.short(), "joining 45/120");
        let p = joining.problem().unwrap();
        assert!(
            p.contains("serves no reads") && p.contains("45 of 120 keys done, 3 copied"),
            "{p}"
        );
        assert_eq!(NodeState::default().short(), "up");
    }
}
