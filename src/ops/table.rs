//! Plain-text tables for people: the status summary, transaction lists, one transaction.

use crate::admin::TxnView;
use crate::admin::report::{StatusReport, format_ms};
use crate::txn::{CompOutcome, NodeReport};
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
pub fn status(admin: &str, r: &StatusReport, problems: &[String]) -> String {
    let rl = &r.reload;
    let mut out = format!(
        "dtc at {admin}: config generation {}, {} reload{} applied, {} refused, journal {}\n",
        rl.generation,
        rl.reloads_ok,
        if rl.reloads_ok == 1 { "" } else { "s" },
        rl.reloads_failed,
        if r.journal_open { "open" } else { "NOT OPEN" },
    );
    if let Some(e) = &rl.last_error {
        let _ = writeln!(out, "last reload refused: {e}");
    }
    out.push('\n');
    let nodes: Vec<Vec<String>> = r
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.url.clone(),
                match n.up {
                    true => n.health.short(),
                    false => n.health.short().to_uppercase(),
                },
                n.in_flight.to_string(),
                n.latency_ms.map_or("-".into(), |ms| format!("{ms:.1} ms")),
            ]
        })
        .collect();
    out.push_str(&grid(
        &["NODE", "URL", "HEALTH", "IN FLIGHT", "LATENCY"],
        &nodes,
    ));
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

/// A list of transactions, one line each.
pub fn txns(list: &[TxnView]) -> String {
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
pub fn txn(t: &TxnView) -> String {
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
    field(
        "resolution",
        t.resolution.clone().unwrap_or_else(|| "-".into()),
    );
    out.push('\n');
    let rows: Vec<Vec<String>> = t
        .nodes
        .iter()
        .map(|n| {
            let undo = n.compensation.as_ref().map_or("-".to_string(), |c| {
                let word = match c.outcome {
                    CompOutcome::Undone => "undone",
                    CompOutcome::Failed => "FAILED",
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
            "ERROR",
        ],
        &rows,
    ));
    out
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
