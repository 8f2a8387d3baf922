//! Plain-text tables for people: the status summary, transaction lists, one transaction.

use crate::admin::TxnView;
use crate::admin::report::{StatusReport, format_ms, uptime};
use crate::txn::{CompOutcome, NodeReport, TxnState};
use std::fmt::Write as _;

/// How many transactions `dtc status` lists before pointing at `dtc txn list`.
const STATUS_ROWS: usize = 20;

/// Columns padded to their widest cell, two spaces apart; `headers` in capitals.
fn grid(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let pad = w - cell.chars().count();
                let _ = write!(l, "{cell}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `dtc status`.
pub(super) fn status(admin: &str, r: &StatusReport, problems: &[String]) -> String {
    let rl = &r.reload;
    let mut out = format!(
        "dtc {} at {admin}, up {}: config generation {}, {} reload{} applied, {} unchanged, {} refused\n",
        r.version,
        uptime(r.now_ms.saturating_sub(r.started_ms)),
        rl.generation,
        rl.reloads_ok,
        if rl.reloads_ok == 1 { "" } else { "s" },
        rl.reloads_unchanged,
        rl.reloads_failed,
    );
    let journal = match (&r.journal_problem, r.journal_open) {
        (Some(p), _) => format!("REFUSING WRITES ({p})"),
        (None, true) => "open".into(),
        (None, false) => "NOT OPEN".into(),
    };
    let _ = writeln!(
        out,
        "journal {journal}: {} in doubt, {} failed",
        r.in_doubt, r.failed
    );
    if !rl.restart_pending.is_empty() {
        let _ = writeln!(out, "restart pending: {}", rl.restart_pending.join(", "));
    }
    if let Some(e) = &rl.last_error {
        let _ = writeln!(out, "last reload refused: {e}");
    }
    out.push('\n');
    out.push_str(&nodes(r));
    out.push('\n');
    let finished: Vec<String> = r
        .finished
        .iter()
        .filter(|c| c.state != crate::txn::TxnState::InDoubt)
        .map(|c| format!("{} {}", c.state, c.count))
        .collect();
    let _ = writeln!(
        out,
        "transactions now: {} failed, {} in doubt; finished since start: {}",
        r.failed,
        r.in_doubt,
        finished.join(", ")
    );
    if !r.attention.is_empty() {
        out.push('\n');
        let shown = &r.attention[..r.attention.len().min(STATUS_ROWS)];
        out.push_str(&txns(shown));
        if r.attention.len() > shown.len() {
            let _ = writeln!(
                out,
                "... and {} more: dtc txn list --state failed",
                r.attention.len() - shown.len()
            );
        }
    }
    if !r.rolled_back.is_empty() {
        let _ = writeln!(
            out,
            "\nrecently rolled back (the client was told to retry):"
        );
        out.push_str(&txns(&r.rolled_back));
    }
    if let Some(v) = r.divergence.as_ref().filter(|v| !v.differing.is_empty()) {
        let _ = writeln!(
            out,
            "\ndiverging keys (verify of {}, {} keys checked):",
            format_ms(v.at_ms),
            v.checked
        );
        for k in &v.differing {
            let _ = writeln!(out, "  {}", k.line());
        }
    }
    out.push('\n');
    if problems.is_empty() {
        out.push_str("OK: every node is up, nothing needs attention\n");
    } else {
        out.push_str("NEEDS ATTENTION:\n");
        for p in problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    out
}

/// The nodes' table, and under it each node's last error.
fn nodes(r: &StatusReport) -> String {
    let ms = |v: Option<f64>| v.map_or("-".into(), |ms| format!("{ms:.1} ms"));
    let rows: Vec<Vec<String>> = r
        .nodes
        .iter()
        .map(|n| {
            // The health model's word (up, joining 45/120, down, half-open), shouted when the
            // node takes no writes, with how long it has been down.
            let health = match (n.up, n.health.down_since_ms) {
                (true, _) if !n.answered && n.last_error.is_some() => "UNREACHED".to_string(),
                (true, _) => n.health.short(),
                (false, Some(since)) => format!(
                    "{} {}",
                    n.health.short().to_uppercase(),
                    uptime(r.now_ms.saturating_sub(since))
                ),
                (false, None) => n.health.short().to_uppercase(),
            };
            let recent = n.recent.as_ref();
            let rate = |f: fn(&crate::admin::report::Recent) -> f64| {
                recent.map_or("-".into(), |w| format!("{:.1}/s", f(w)))
            };
            vec![
                n.name.clone(),
                n.url.clone(),
                health,
                n.in_flight.to_string(),
                ms(n.latency_ms),
                ms(recent.and_then(|w| w.p50_ms)),
                ms(recent.and_then(|w| w.p99_ms)),
                format!("{} ({})", n.requests, rate(|w| w.requests_per_s)),
                format!("{} ({})", n.errors, rate(|w| w.errors_per_s)),
                format!("{} ({})", n.retries, rate(|w| w.retries_per_s)),
            ]
        })
        .collect();
    let mut out = grid(
        &[
            "NODE",
            "URL",
            "HEALTH",
            "IN FLIGHT",
            "LATENCY",
            "P50",
            "P99",
            "REQUESTS",
            "ERRORS",
            "RETRIES",
        ],
        &rows,
    );
    for n in &r.nodes {
        if let Some(e) = &n.last_error {
            let _ = writeln!(
                out,
                "  {} last error {}: {}",
                n.name,
                format_ms(e.at_ms),
                e.error
            );
        }
    }
    out
}

/// A list of transactions, one line each.
pub(super) fn txns(list: &[TxnView]) -> String {
    if list.is_empty() {
        return "no transactions\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            let nodes: Vec<String> = t.nodes.iter().map(node_short).collect();
            vec![
                t.txn.clone(),
                t.state.to_string(),
                format!("{} {}", t.method, t.path),
                t.key.clone(),
                format_ms(t.started_ms),
                nodes.join(" "),
            ]
        })
        .collect();
    grid(
        &["TRANSACTION", "STATE", "REQUEST", "KEY", "STARTED", "NODES"],
        &rows,
    )
}

/// `node-1=201x1(undone)`, the log line's notation.
fn node_short(n: &NodeReport) -> String {
    let answer = n.status.map_or("error".to_string(), |s| s.to_string());
    let undo = match n.compensation.as_ref().map(|c| c.outcome) {
        Some(CompOutcome::Undone) => "(undone)",
        Some(CompOutcome::Failed) => "(undo failed)",
        None => "",
    };
    format!("{}={answer}x{}{undo}", n.node, n.attempts)
}

/// One transaction in full.
pub(super) fn txn(t: &TxnView) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "{name:<12} {value}");
    };
    field("transaction", t.txn.clone());
    field("state", t.state.to_string());
    field("request", format!("{} {}", t.method, t.path));
    field("route", t.route.clone().unwrap_or_else(|| "-".into()));
    field("key", t.key.clone());
    field("generation", t.generation.to_string());
    field("started", format_ms(t.started_ms));
    field("finished", t.finished_ms.map_or("-".into(), format_ms));
    field("reason", t.reason.clone().unwrap_or_else(|| "-".into()));
    let next = t
        .next_redrive_ms
        .map(|ms| format!(", next {}", format_ms(ms)))
        .unwrap_or_default();
    field("re-drives", format!("{}{next}", t.redrives));
    let resolution = match (&t.resolution, &t.resolved_by) {
        (Some(r), Some(by)) => format!(
            "{r} (by {by}{})",
            t.resolved_ms
                .map_or(String::new(), |ms| format!(" at {}", format_ms(ms)))
        ),
        (Some(r), None) => r.clone(),
        (None, _) => "-".into(),
    };
    field("resolution", resolution);
    out.push('\n');
    let rows: Vec<Vec<String>> = t
        .nodes
        .iter()
        .map(|n| {
            let undo = n.compensation.as_ref().map_or("-".to_string(), |c| {
                // A failed undo of a transaction that is no longer failed is history: the
                // re-drive found the node where it should be without undoing it again.
                let word = match (c.outcome, t.state) {
                    (CompOutcome::Undone, _) => "undone",
                    (CompOutcome::Failed, TxnState::Failed) => "FAILED",
                    (CompOutcome::Failed, _) => "earlier failed",
                };
                let status = c.status.map_or(String::new(), |s| format!(" {s}"));
                let error = c
                    .error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" ({e})"));
                format!("{word}{status} x{}{error}", c.attempts)
            });
            vec![
                n.node.clone(),
                serde_json::to_value(n.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                n.status.map_or("-".into(), |s| s.to_string()),
                n.attempts.to_string(),
                if n.maybe_applied { "yes" } else { "no" }.into(),
                undo,
                n.read_back.clone().unwrap_or_else(|| "-".into()),
                n.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&grid(
        &[
            "NODE",
            "OUTCOME",
            "STATUS",
            "ATTEMPTS",
            "MAYBE APPLIED",
            "UNDO",
            "READ BACK (LATEST)",
            "ERROR",
        ],
        &rows,
    ));
    out
}

/// The last line of `dtc txn retry`: what the re-drive came to, and for a transaction still
/// failed, the latest evidence of each node that keeps it so.
pub(super) fn verdict(t: &TxnView) -> String {
    if t.state != TxnState::Failed {
        return format!(
            "verdict: converged, {} after {} re-drive{}: the nodes agree",
            t.state,
            t.redrives,
            if t.redrives == 1 { "" } else { "s" }
        );
    }
    let mut evidence = Vec::new();
    for n in &t.nodes {
        let mut parts = Vec::new();
        if let Some(r) = &n.read_back {
            parts.push(format!("read back {r}"));
        }
        if let Some(c) = n
            .compensation
            .as_ref()
            .filter(|c| c.outcome == CompOutcome::Failed)
        {
            let why = c
                .error
                .clone()
                .or(c.status.map(|s| format!("answered {s}")));
            parts.push(format!("undo failed ({})", why.unwrap_or_default()));
        }
        if !parts.is_empty() {
            evidence.push(format!("{}: {}", n.node, parts.join(", ")));
        }
    }
    format!(
        "verdict: STILL FAILED after {} re-drive{}: {}{}\nfix the node, then `dtc txn retry {}` again, or `dtc txn resolve {} --reason ...` once it is put right by hand",
        t.redrives,
        if t.redrives == 1 { "" } else { "s" },
        t.reason.as_deref().unwrap_or("-"),
        if evidence.is_empty() {
            String::new()
        } else {
            format!("; latest evidence: {}", evidence.join("; "))
        },
        t.txn,
        t.txn
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_pad_every_column_but_the_last() {
        let rows = vec![vec!["node-1".to_string(), "up".into(), "x".into()]];
        assert_eq!(
            grid(&["NODE", "HEALTH", "MORE"], &rows),
            "NODE    HEALTH  MORE\nnode-1  up      x\n"
        );
    }
}
