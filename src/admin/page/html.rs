//! The status page's markup: a [`StatusReport`] as one HTML document, every value escaped.

use super::{PAGE_SIZE, REFRESH_SECS};
use crate::admin::report::{StatusReport, format_ms};
use crate::admin::{NodeStatus, TxnView};
use crate::txn::{Class, CompOutcome, NodeReport, TxnState};
use std::fmt::Write as _;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// `text` safe in HTML text and in a quoted attribute value.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page: page `current` of `pages` of the listed transactions.
pub(super) fn document(
    report: &StatusReport,
    current: usize,
    pages: usize,
    search: Option<(&str, &[TxnView])>,
    nonce: &str,
) -> String {
    let mut main = String::with_capacity(16 * 1024);
    summary(&mut main, report);
    nodes(&mut main, report);
    main.push_str("<div class=\"cards\">");
    config(&mut main, report);
    counts(&mut main, report);
    main.push_str("</div>");
    divergence(&mut main, report);
    search_form(&mut main, search);
    transactions(&mut main, report, current, pages);
    rolled_back(&mut main, report);
    shell(&main, false, nonce)
}

/// The search by key: the form, and the transactions on that key when one was asked for.
fn search_form(out: &mut String, search: Option<(&str, &[TxnView])>) {
    let key = search.map_or("", |(k, _)| k);
    let _ = write!(
        out,
        "<section id=\"search\"><h2>Transactions by key</h2><form method=\"get\" action=\"/\">\
         <label>key <input type=\"search\" name=\"key\" value=\"{}\" placeholder=\"group/g1\"></label> \
         <button type=\"submit\">search</button></form>",
        escape(key)
    );
    if let Some((key, found)) = search {
        if found.is_empty() {
            let _ = write!(
                out,
                "<p>No transaction on key <code>{}</code> in the journal.</p>",
                escape(key)
            );
        } else {
            out.push_str(&list_table(found));
        }
    }
    out.push_str("</section>");
}

/// A plain list of transactions (no actions).
fn list_table(list: &[TxnView]) -> String {
    let mut out = String::from(
        "<table class=\"txns\"><thead><tr><th>transaction</th><th>state</th><th>request</th>\
         <th>started</th><th>why</th><th>nodes</th></tr></thead><tbody>",
    );
    for t in list {
        let _ = write!(
            out,
            "<tr><td><code class=\"id\">{}</code></td><td>{}</td><td><code>{} {}</code><br>key <code>{}</code></td>\
             <td>{}</td><td>{}</td><td><ul class=\"nodes\">",
            escape(&t.txn),
            t.state,
            escape(&t.method),
            escape(&t.path),
            escape(&t.key),
            format_ms(t.started_ms),
            escape(t.reason.as_deref().unwrap_or("–")),
        );
        for n in &t.nodes {
            let _ = write!(out, "<li>{}</li>", node_detail(n));
        }
        out.push_str("</ul></td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn rolled_back(out: &mut String, r: &StatusReport) {
    let _ = write!(
        out,
        "<section id=\"rolled-back\"><h2>Recently rolled back ({})</h2>\
         <p class=\"sub\">The write was undone everywhere it landed and the client was told to retry.</p>",
        r.rolled_back.len()
    );
    if r.rolled_back.is_empty() {
        out.push_str("<p>None.</p>");
    } else {
        out.push_str(&list_table(&r.rolled_back));
    }
    out.push_str("</section>");
}

fn divergence(out: &mut String, r: &StatusReport) {
    let Some(v) = &r.divergence else {
        return;
    };
    let _ = write!(
        out,
        "<section id=\"divergence\"><h2>Verify</h2><p>Last run {}: {} keys checked, \
         <span class=\"{}\">{} differing</span>.</p>",
        format_ms(v.at_ms),
        v.checked,
        if v.differing.is_empty() { "ok" } else { "bad" },
        v.differing.len()
    );
    if !v.differing.is_empty() {
        out.push_str("<ul class=\"nodes\">");
        for k in &v.differing {
            let _ = write!(out, "<li><code>{}</code></li>", escape(&k.line()));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

/// The page of a dtc with a token, before the token is given.
pub(super) fn locked(wrong_token: bool, nonce: &str) -> String {
    let why = if wrong_token {
        "The token this tab sent is wrong."
    } else {
        "This dtc has <code>listen.admin_token</code> set."
    };
    let main = format!(
        "<section class=\"banner bad\" id=\"summary\"><p>{why} Enter the token above to see \
         the status (it is kept in this tab only, and needs JavaScript).</p></section>"
    );
    shell(&main, true, nonce)
}

fn shell(main: &str, locked: bool, nonce: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>dtc status</title>\
         <noscript><meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\"></noscript>\
         <style nonce=\"{nonce}\">{STYLE}</style></head>\n\
         <body data-refresh-ms=\"{refresh_ms}\"{locked}>\
         <header><h1>dtc</h1><span class=\"sub\">replicating sidecar proxy: status</span>\
         <form id=\"token\" class=\"js-only\"><label>admin token \
         <input type=\"password\" name=\"token\" autocomplete=\"off\"></label>\
         <button type=\"submit\">use</button></form></header>\n\
         <p id=\"msg\" role=\"status\" aria-live=\"polite\"></p>\n\
         <main id=\"main\">{main}</main>\n\
         <noscript><p class=\"note\">Retry and resolve need JavaScript; without it use \
         <code>dtc txn retry|resolve</code> or the API.</p></noscript>\
         <script nonce=\"{nonce}\">{SCRIPT}</script></body></html>\n",
        refresh_ms = REFRESH_SECS * 1000,
        locked = if locked { " data-locked=\"1\"" } else { "" },
    )
}

fn summary(out: &mut String, r: &StatusReport) {
    let problems = r.problems();
    let generated = format!(
        "dtc {}, up {}, as of {}",
        escape(&r.version),
        crate::admin::report::uptime(r.now_ms.saturating_sub(r.started_ms)),
        format_ms(r.now_ms)
    );
    if problems.is_empty() {
        let _ = write!(
            out,
            "<section class=\"banner ok\" id=\"summary\"><p>All is well: every node is up, \
             no transaction needs attention.</p><p class=\"sub\">{generated}</p></section>"
        );
        return;
    }
    out.push_str("<section class=\"banner bad\" id=\"summary\"><p>Needs attention:</p><ul>");
    for p in &problems {
        let _ = write!(out, "<li>{}</li>", escape(p));
    }
    let _ = write!(out, "</ul><p class=\"sub\">{generated}</p></section>");
}

fn nodes(out: &mut String, r: &StatusReport) {
    out.push_str(
        "<section id=\"nodes\"><h2>Nodes</h2><table><thead><tr><th>node</th><th>url</th>\
         <th>health</th><th>in flight</th><th>recent latency</th><th>p50 / p99</th>\
         <th>requests</th><th>errors</th><th>retries</th><th>last error</th></tr></thead><tbody>",
    );
    for n in &r.nodes {
        node_row(out, r, n);
    }
    out.push_str(
        "</tbody></table><p class=\"sub\">Latency counts a request cut off by a timeout with \
         the time it waited. Rates are over the last minute; counts since start. Health probes are \
         not counted.</p></section>",
    );
}

fn node_row(out: &mut String, r: &StatusReport, n: &NodeStatus) {
    let ms = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |ms| format!("{ms:.1} ms"));
    // The health model's state (up, down, half-open, joining), since when, and why in the title.
    let why = escape(&n.health.problem().unwrap_or_default());
    let (class, health) = match (n.up, n.health.down_since_ms) {
        (true, _) if !n.answered && n.last_error.is_some() => {
            ("bad", "not reached yet".to_string())
        }
        // Joining: takes writes, serves no reads until its backfill finished.
        (true, _) if n.health.state == "joining" => ("warn", escape(&n.health.short())),
        (true, _) => ("ok", escape(&n.health.short())),
        (false, Some(since)) => (
            "bad",
            format!(
                "{} since {} ({})",
                escape(&n.health.short()),
                format_ms(since),
                crate::admin::report::uptime(r.now_ms.saturating_sub(since))
            ),
        ),
        (false, None) => ("bad", escape(&n.health.short())),
    };
    let w = n.recent.as_ref();
    let rate = |count: u64, per_s: Option<f64>| match per_s {
        Some(x) => format!("{count} <span class=\"sub\">({x:.1}/s)</span>"),
        None => count.to_string(),
    };
    let error = n.last_error.as_ref().map_or("–".to_string(), |e| {
        format!(
            "{} <span class=\"sub\">{}</span>",
            escape(&e.error),
            format_ms(e.at_ms)
        )
    });
    let _ = write!(
        out,
        "<tr><td>{}</td><td><code>{}</code></td><td class=\"{class}\" title=\"{why}\">{health}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} / {}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{error}</td></tr>",
        escape(&n.name),
        escape(&n.url),
        n.in_flight,
        ms(n.latency_ms),
        ms(w.and_then(|w| w.p50_ms)),
        ms(w.and_then(|w| w.p99_ms)),
        rate(n.requests, w.map(|w| w.requests_per_s)),
        rate(n.errors, w.map(|w| w.errors_per_s)),
        rate(n.retries, w.map(|w| w.retries_per_s)),
    );
}

fn config(out: &mut String, r: &StatusReport) {
    let rl = &r.reload;
    let last = rl
        .last_reload_ms
        .map(format_ms)
        .unwrap_or_else(|| "never (the config loaded at start)".into());
    let error = match &rl.last_error {
        Some(e) => format!("<pre class=\"bad\">{}</pre>", escape(e)),
        None => "none".into(),
    };
    let pending = if rl.restart_pending.is_empty() {
        "no".to_string()
    } else {
        format!(
            "<span class=\"bad\">{}</span> (edited in the file; the running values stay until a restart)",
            escape(&rl.restart_pending.join(", "))
        )
    };
    let journal = match (&r.journal_problem, r.journal_open) {
        (Some(p), _) => format!("<span class=\"bad\">refusing writes: {}</span>", escape(p)),
        (None, true) => "open".to_string(),
        (None, false) => "<span class=\"bad\">not open</span>".to_string(),
    };
    let _ = write!(
        out,
        "<section id=\"config\"><h2>Config</h2><dl>\
         <dt>generation</dt><dd class=\"num\">{}</dd>\
         <dt>reloads</dt><dd>{} applied, {} unchanged, {} refused</dd>\
         <dt>last reload</dt><dd>{last}</dd>\
         <dt>last reload error</dt><dd>{error}</dd>\
         <dt>restart pending</dt><dd>{pending}</dd>\
         <dt>journal</dt><dd>{journal}</dd></dl></section>",
        rl.generation, rl.reloads_ok, rl.reloads_unchanged, rl.reloads_failed,
    );
}

fn counts(out: &mut String, r: &StatusReport) {
    let _ = write!(
        out,
        "<section id=\"counts\"><h2>Transactions</h2>\
         <p><span class=\"{}\">{} failed</span> (not converged or resolved), \
         <span class=\"{}\">{} in doubt</span> now.</p>\
         <table><caption>finished since start</caption><tbody>",
        if r.failed > 0 { "bad" } else { "ok" },
        r.failed,
        if r.in_doubt > 0 { "warn" } else { "ok" },
        r.in_doubt,
    );
    for c in r.finished.iter().filter(|c| c.state != TxnState::InDoubt) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
            c.state, c.count
        );
    }
    out.push_str("</tbody></table></section>");
}

fn transactions(out: &mut String, r: &StatusReport, current: usize, pages: usize) {
    let total = r.attention.len();
    let _ = write!(
        out,
        "<section id=\"transactions\"><h2>Failed and in-doubt transactions ({total})</h2>"
    );
    if total == 0 {
        out.push_str("<p>None.</p></section>");
        return;
    }
    pager(out, current, pages, total);
    out.push_str(
        "<table class=\"txns\"><thead><tr><th>transaction</th><th>state</th><th>request</th>\
         <th>started</th><th>why</th><th>nodes</th><th>re-drives</th><th>act</th></tr></thead>\
         <tbody>",
    );
    let start = (current - 1) * PAGE_SIZE;
    for t in r.attention.iter().skip(start).take(PAGE_SIZE) {
        txn_row(out, t);
    }
    out.push_str("</tbody></table>");
    pager(out, current, pages, total);
    out.push_str("</section>");
}

fn pager(out: &mut String, current: usize, pages: usize, total: usize) {
    if pages <= 1 {
        return;
    }
    let first = (current - 1) * PAGE_SIZE + 1;
    let last = (current * PAGE_SIZE).min(total);
    let _ = write!(
        out,
        "<nav class=\"pager\">{first}–{last} of {total}, page {current} of {pages}: "
    );
    if current > 1 {
        let _ = write!(
            out,
            "<a href=\"?page={}\" rel=\"prev\">newer</a> ",
            current - 1
        );
    }
    if current < pages {
        let _ = write!(
            out,
            "<a href=\"?page={}\" rel=\"next\">older</a>",
            current + 1
        );
    }
    out.push_str("</nav>");
}

fn txn_row(out: &mut String, t: &TxnView) {
    let id = escape(&t.txn);
    let class = if t.state == TxnState::Failed {
        "bad"
    } else {
        "warn"
    };
    let route = t
        .route
        .as_deref()
        .map(|r| format!("<br><span class=\"sub\">route {}</span>", escape(r)))
        .unwrap_or_default();
    let redrive = match t.next_redrive_ms {
        Some(ms) => format!("{}, next {}", t.redrives, format_ms(ms)),
        None => t.redrives.to_string(),
    };
    let _ = write!(
        out,
        "<tr id=\"txn-{id}\" data-txn=\"{id}\"><td><code class=\"id\">{id}</code></td>\
         <td class=\"{class}\">{}</td><td><code>{} {}</code><br>key <code>{}</code>{route}</td>\
         <td>{}</td><td>{}</td><td><ul class=\"nodes\">",
        t.state,
        escape(&t.method),
        escape(&t.path),
        escape(&t.key),
        format_ms(t.started_ms),
        escape(t.reason.as_deref().unwrap_or("–")),
    );
    for n in &t.nodes {
        let _ = write!(out, "<li>{}</li>", node_detail(n));
    }
    let _ = write!(out, "</ul></td><td>{redrive}</td><td>");
    if t.state == TxnState::Failed {
        let _ = write!(
            out,
            "<div class=\"js-only act\"><button type=\"button\" data-act=\"retry\" \
             data-txn=\"{id}\">retry</button><input type=\"text\" data-reason-for=\"{id}\" \
             placeholder=\"why it is resolved\" aria-label=\"reason for {id}\">\
             <button type=\"button\" data-act=\"resolve\" data-txn=\"{id}\">resolve</button></div>"
        );
    } else {
        out.push_str("<span class=\"sub\">recovery decides</span>");
    }
    out.push_str("</td></tr>");
}

/// One node's part: `node-1: applied 201 ×1; undo failed 500 ×3`.
fn node_detail(n: &NodeReport) -> String {
    let outcome = match n.outcome {
        Class::Applied => "applied",
        Class::Already => "already",
        Class::Rejected => "rejected",
        Class::Transient => "transient",
        Class::NotSent => "not sent",
    };
    let mut s = format!("<b>{}</b>: {outcome}", escape(&n.node));
    if let Some(st) = n.status {
        let _ = write!(s, " {st}");
    }
    let _ = write!(s, " ×{}", n.attempts);
    if let Some(e) = &n.error {
        let _ = write!(s, " <span class=\"sub\">({})</span>", escape(e));
    }
    if n.maybe_applied {
        s.push_str(" <span class=\"warn\">may have applied</span>");
    }
    if let Some(c) = &n.compensation {
        let (class, word) = match c.outcome {
            CompOutcome::Undone => ("ok", "undone"),
            CompOutcome::Failed => ("bad", "undo failed"),
        };
        let _ = write!(s, "; <span class=\"{class}\">{word}</span>");
        if let Some(st) = c.status {
            let _ = write!(s, " {st}");
        }
        let _ = write!(s, " ×{}", c.attempts);
        if let Some(e) = &c.error {
            let _ = write!(s, " <span class=\"sub\">({})</span>", escape(e));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_both_quotes() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }
}
