//! What a verify found: one [`KeyReport`] per key that is not in order, counts, the lines the
//! command prints (one per key, a summary last) and the exit code they add up to.

use crate::exit;
use serde::{Deserialize, Serialize};

/// What was found on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// The nodes differ and the target is known.
    Divergent,
    /// The nodes differ and no majority or journaled outcome says who is right.
    NoMajority,
    /// A majority holds what the journal's last outcome contradicts.
    Contradicted,
    /// A node could not be read.
    Unreadable,
    /// A failed transaction fences the key: the re-drive or a person owns it.
    Fenced,
}

impl Finding {
    /// The name in lines and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Divergent => "divergent",
            Finding::NoMajority => "no_majority",
            Finding::Contradicted => "contradicted",
            Finding::Unreadable => "unreadable",
            Finding::Fenced => "fenced",
        }
    }

    /// Whether the nodes are known to differ.
    pub fn differs(self) -> bool {
        matches!(
            self,
            Finding::Divergent | Finding::NoMajority | Finding::Contradicted
        )
    }
}

/// One node's part of the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHeld {
    pub node: String,
    /// `200 crc32=... 21B`, `404`, or `unknown (...)`.
    pub holds: String,
}

/// A transaction that touched the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnBrief {
    pub txn: String,
    pub state: String,
    pub method: String,
    pub path: String,
}

/// The repair of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairBrief {
    /// The repair's transaction id (`None`: it never started).
    pub txn: Option<String>,
    /// `succeeded` when every odd node now holds the target.
    pub state: String,
    pub detail: Option<String>,
}

/// One key that is not in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReport {
    pub key: String,
    pub finding: Finding,
    /// The read each node answered.
    pub read: String,
    pub nodes: Vec<NodeHeld>,
    /// The nodes that differ from the target.
    pub odd: Vec<String>,
    /// What they should hold and why (`present crc32=... (majority)`).
    pub target: Option<String>,
    /// Why nothing was decided or repaired, when so.
    pub note: Option<String>,
    /// Newest first.
    pub txns: Vec<TxnBrief>,
    pub repair: Option<RepairBrief>,
}

impl KeyReport {
    /// Whether a repair brought every odd node in line.
    pub fn repaired(&self) -> bool {
        self.repair.as_ref().is_some_and(|r| r.state == "succeeded")
    }

    /// One line: `divergent key=group/g1 odd=b target=... nodes=[a=200 ..., b=404] txns=[...]`.
    pub fn line(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}={}", n.node, n.holds))
            .collect();
        let txns: Vec<String> = self
            .txns
            .iter()
            .map(|t| format!("{} {} {} {}", t.txn, t.state, t.method, t.path))
            .collect();
        let mut line = format!("{} key={}", self.finding.as_str(), self.key);
        if !self.odd.is_empty() {
            line.push_str(&format!(" odd={}", self.odd.join(",")));
        }
        if let Some(t) = &self.target {
            line.push_str(&format!(" target={t}"));
        }
        line.push_str(&format!(
            " read=\"{}\" nodes=[{}]",
            self.read,
            nodes.join(", ")
        ));
        line.push_str(&format!(" txns=[{}]", txns.join(", ")));
        if let Some(r) = &self.repair {
            line.push_str(&format!(
                " repair={} {}",
                r.txn.as_deref().unwrap_or("-"),
                r.state
            ));
            if let Some(d) = &r.detail {
                line.push_str(&format!(" ({d})"));
            }
        }
        if let Some(n) = &self.note {
            line.push_str(&format!(" note=\"{n}\""));
        }
        line
    }
}

/// The whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Keys written within the window.
    pub keys: usize,
    /// Keys read on every node.
    pub checked: usize,
    /// Keys on which every node agrees.
    pub agreed: usize,
    /// Keys whose routes define no `verify` or `snapshot` read.
    pub skipped: usize,
    /// Every key that is not in order.
    pub findings: Vec<KeyReport>,
    /// The backfills of joining nodes a `--repair` run ran.
    #[serde(default)]
    pub backfills: Vec<super::backfill::Backfill>,
}

impl Report {
    /// Keys on which the nodes differ and still do (not repaired).
    pub fn divergent_left(&self) -> usize {
        self.findings
            .iter()
            .filter(|k| k.finding.differs() && !k.repaired())
            .count()
    }

    fn count(&self, f: Finding) -> usize {
        self.findings.iter().filter(|k| k.finding == f).count()
    }

    /// The last line.
    pub fn summary(&self) -> String {
        let differ = self.findings.iter().filter(|k| k.finding.differs()).count();
        let repaired = self.findings.iter().filter(|k| k.repaired()).count();
        format!(
            "verify: {} keys written in the window, {} checked: {} agree, {} differ ({} repaired, {} left), {} unreadable, {} fenced, {} skipped (no verify or snapshot read)",
            self.keys,
            self.checked,
            self.agreed,
            differ,
            repaired,
            self.divergent_left(),
            self.count(Finding::Unreadable),
            self.count(Finding::Fenced),
            self.skipped
        )
    }

    /// [`exit::OK`], [`exit::DIVERGENT`] (also: a backfill left keys pending) or
    /// [`exit::INCOMPLETE`].
    pub fn exit_code(&self) -> u8 {
        if self.divergent_left() > 0 || self.backfills.iter().any(|b| !b.complete()) {
            exit::DIVERGENT
        } else if self.findings.iter().any(|k| !k.finding.differs()) {
            exit::INCOMPLETE
        } else {
            exit::OK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(finding: Finding, repaired: bool) -> KeyReport {
        KeyReport {
            key: "k".into(),
            finding,
            read: "GET /k".into(),
            nodes: Vec::new(),
            odd: Vec::new(),
            target: None,
            note: None,
            txns: Vec::new(),
            repair: repaired.then(|| RepairBrief {
                txn: Some("t".into()),
                state: "succeeded".into(),
                detail: None,
            }),
        }
    }

    #[test]
    fn exit_codes_follow_what_is_left() {
        let report = |findings| Report {
            findings,
            ..Report::default()
        };
        assert_eq!(report(vec![]).exit_code(), exit::OK);
        assert_eq!(
            report(vec![finding(Finding::Divergent, true)]).exit_code(),
            exit::OK
        );
        assert_eq!(
            report(vec![finding(Finding::Fenced, false)]).exit_code(),
            exit::INCOMPLETE
        );
        let mixed = report(vec![
            finding(Finding::Unreadable, false),
            finding(Finding::NoMajority, false),
        ]);
        assert_eq!(mixed.exit_code(), exit::DIVERGENT);
        assert!(
            mixed
                .summary()
                .contains("1 differ (0 repaired, 1 left), 1 unreadable")
        );
    }
}
