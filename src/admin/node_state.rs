//! A node's state as the operator sees it (`/status`, `dtc status`, the page): up, down since
//! when and why, half-open (a trial under way) — from [`crate::upstream::health`].

use crate::upstream::Node;
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// The health part of one node's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeState {
    /// `up`, `down` or `half_open`.
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
}

impl NodeState {
    /// The state of `node` now.
    pub fn of(node: &Node) -> NodeState {
        let v = node.health_view();
        NodeState {
            state: v.state.to_string(),
            down_since_ms: v.down_since.and_then(|t| {
                let ms = t.duration_since(UNIX_EPOCH).ok()?.as_millis();
                u64::try_from(ms).ok()
            }),
            reason: v.reason,
            next_trial_ms: v
                .next_trial_in
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// A word for a table cell: `up`, `down`, `half-open`.
    pub fn short(&self) -> String {
        match self.state.as_str() {
            "" => "up".into(),
            other => other.replace('_', "-"),
        }
    }

    /// What needs saying about a node that is not up (`None` when it is): since when, why, and
    /// when it is tried again.
    pub fn problem(&self) -> Option<String> {
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
pub fn format_ms(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
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
        };
        assert_eq!(s.short(), "down");
        let p = s.problem().unwrap();
        assert!(
            p.starts_with("is down since 2023-11-14T22:13:20Z: 3 of 3 calls"),
            "{p}"
        );
        assert!(p.contains("next trial in 400 ms"), "{p}");
        assert_eq!(NodeState::default().problem(), None);
        assert_eq!(NodeState::default().short(), "up");
    }
}
