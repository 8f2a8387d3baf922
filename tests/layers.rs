//! The layering of the crate, checked: dependencies between dtc's modules go one way (from the
//! command line down to the transaction types), and the few rules that keep it so hold. Reads
//! `src/` and fails naming the import that breaks a rule, or the circle it closes.
//!
//! From the top: `cli` → `app`/`demo`/`ops`/`verify` → `admin` → `proxy` → `saga` →
//! `journal`/`upstream`/`runtime`/`telemetry` → `config`/`retry`/`wire` → `txn`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module and the only dtc modules it may import (`None`: any, as long as there is no
/// circle).
const ALLOWED: &[(&str, &[&str])] = &[
    // The transaction types import nothing else of dtc.
    ("txn", &[]),
    // Config imports no runtime module.
    ("config", &["txn"]),
    // The journal only stores: neither upstream nor saga (nor anything above).
    ("journal", &["config", "txn"]),
    // Upstream imports no saga; its half-open trials follow the one backoff policy.
    ("upstream", &["config", "retry"]),
    ("retry", &["config"]),
    ("wire", &[]),
];

/// Modules that must import nothing of the data path.
const OFF_THE_DATA_PATH: &[&str] = &["k8s", "node"];
const DATA_PATH: &[&str] = &[
    "admin",
    "answer",
    "app",
    "journal",
    "proxy",
    "runtime",
    "saga",
    "telemetry",
    "upstream",
    "verify",
];

/// Modules whose files must not import each other in a circle either.
const NO_FILE_CIRCLES: &[&str] = &[
    "txn",
    "config",
    "journal",
    "upstream",
    "runtime",
    "k8s",
    "wire",
    "telemetry",
    "saga",
    "admin",
    "proxy",
    "verify",
];

/// The saga's files from the top down, in tiers: a file may import (or call through a path)
/// only files of the tiers below its own, so the driver reads top-down and no step calls
/// another step or back up. A new file must be placed here.
const SAGA_TIERS: &[&[&str]] = &[
    // The entry points; the one `impl Coordinator`.
    &["coordinator"],
    // The drivers: a client's write, the steps in order; a write dtc decided (a repair).
    &["run", "submit"],
    // The steps of a write, and the background work on the journal's transactions.
    &[
        "idem", "admit", "ids", "prepare", "send", "judge", "conclude", "txns", "takeover",
    ],
    // The end of a write (early steps may end one); the re-drive, startup recovery, the check.
    &["end", "redrive"],
    // What a step gets (the transaction); deciding a journaled transaction after the fact.
    &["write", "recover"],
    // Leaves shared by the live path and recovery.
    &["decide", "readback", "deps", "mapped"],
    &["undo"],
    &["attempt", "locks"],
];

/// The only file of `saga` with an `impl Coordinator`.
const COORDINATOR_FILE: &str = "saga/coordinator";

struct Source {
    /// Module path from `src/`, e.g. `upstream/pool` (a `mod.rs` names its directory).
    module: String,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().with_extension("");
            let mut module = rel.to_string_lossy().replace('\\', "/");
            if let Some(dir) = module.strip_suffix("/mod") {
                module = dir.to_string();
            }
            Source {
                module,
                text: strip_comments(&std::fs::read_to_string(&p).unwrap()),
            }
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without `//` comments (doc comments included: their links are not imports).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal (a URL) is kept: good enough for code that
            // mentions `crate::` only in paths.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that starts with `crate::`, with `use crate::{a::b, c::{d, e}}` expanded.
fn crate_paths(text: &str) -> Vec<String> {
    paths_after(text, "crate::")
}

/// Every path that follows `prefix` (`crate::`, `super::`), with groups expanded.
fn paths_after(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let after = &rest[i + prefix.len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = matching_brace(group);
            expand("", &group[..end], &mut out);
            rest = &group[end..];
        } else {
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(after.len());
            out.push(after[..end].trim_end_matches(':').to_string());
            rest = &after[end..];
        }
    }
    out
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

/// Expands the inside of a `{…}` use group under `prefix`.
fn expand(prefix: &str, group: &str, out: &mut Vec<String>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        match item.find("::{") {
            Some(j) => {
                let inner = &item[j + 3..item.len() - 1];
                expand(&format!("{prefix}{}::", &item[..j]), inner, out);
            }
            None => {
                let name = item.split_whitespace().next().unwrap_or(item);
                out.push(format!("{prefix}{name}"));
            }
        }
    }
}

fn top(module: &str) -> &str {
    module.split('/').next().unwrap()
}

/// Top-level module → the other top-level modules it imports, with one importing file each.
fn top_level_graph(srcs: &[Source]) -> BTreeMap<String, BTreeMap<String, String>> {
    let tops: BTreeSet<&str> = srcs.iter().map(|s| top(&s.module)).collect();
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for s in srcs {
        let from = top(&s.module);
        let deps = g.entry(from.to_string()).or_default();
        for path in crate_paths(&s.text) {
            let to = path.split("::").next().unwrap_or_default();
            if to != from && tops.contains(to) {
                deps.entry(to.to_string())
                    .or_insert_with(|| format!("src/{}.rs: crate::{path}", s.module));
            }
        }
    }
    g
}

/// A circle in `g`, as the list of its nodes, if there is one.
fn find_circle<V>(g: &BTreeMap<String, BTreeMap<String, V>>) -> Option<Vec<String>> {
    fn visit<V>(
        v: &str,
        g: &BTreeMap<String, BTreeMap<String, V>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(v.to_string(), 1);
        stack.push(v.to_string());
        for w in g.get(v).into_iter().flat_map(|d| d.keys()) {
            match state.get(w.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|x| x == w).unwrap();
                    let mut circle = stack[at..].to_vec();
                    circle.push(w.clone());
                    return Some(circle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(w, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(v.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for v in g.keys() {
        if !state.contains_key(v.as_str())
            && let Some(c) = visit(v, g, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn modules_import_each_other_in_one_direction_only() {
    let g = top_level_graph(&sources());
    if let Some(circle) = find_circle(&g) {
        let edges: Vec<String> = circle
            .windows(2)
            .map(|w| format!("  {} → {} ({})", w[0], w[1], g[&w[0]][&w[1]]))
            .collect();
        panic!(
            "the modules import each other in a circle:\n{}",
            edges.join("\n")
        );
    }
}

#[test]
fn each_layer_imports_only_what_it_may() {
    let g = top_level_graph(&sources());
    let mut broken = Vec::new();
    for (module, allowed) in ALLOWED {
        let deps = g
            .get(*module)
            .unwrap_or_else(|| panic!("no module {module}"));
        for (dep, at) in deps {
            if !allowed.contains(&dep.as_str()) {
                broken.push(format!("{module} may not import {dep}: {at}"));
            }
        }
    }
    for module in OFF_THE_DATA_PATH {
        for (dep, at) in g.get(*module).into_iter().flatten() {
            if DATA_PATH.contains(&dep.as_str()) {
                broken.push(format!(
                    "{module} may not import the data path ({dep}): {at}"
                ));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn files_of_the_lower_modules_import_each_other_in_one_direction_only() {
    let srcs = sources();
    let modules: BTreeSet<&str> = srcs.iter().map(|s| s.module.as_str()).collect();
    for scope in NO_FILE_CIRCLES {
        let mut g: BTreeMap<String, BTreeMap<String, ()>> = BTreeMap::new();
        for s in srcs.iter().filter(|s| top(&s.module) == *scope) {
            let deps = g.entry(s.module.clone()).or_default();
            // `super::x` from `a/b` (or from `a/b/mod.rs`'s children) is `a/x`.
            let parent = s.module.rsplit_once('/').map_or("", |(p, _)| p);
            let mut targets: Vec<String> = crate_paths(&s.text)
                .into_iter()
                .map(|p| p.replace("::", "/"))
                .collect();
            for p in paths_after(&s.text, "super::") {
                targets.push(format!("{parent}/{}", p.replace("::", "/")));
            }
            for t in targets {
                // The longest prefix of the path that is a file of this module.
                let mut cand = t.as_str();
                loop {
                    if modules.contains(cand) {
                        let is_ancestor = s.module.starts_with(&format!("{cand}/"));
                        if cand != s.module && !is_ancestor && top(cand) == *scope {
                            deps.insert(cand.to_string(), ());
                        }
                        break;
                    }
                    match cand.rsplit_once('/') {
                        Some((p, _)) => cand = p,
                        None => break,
                    }
                }
            }
        }
        if let Some(circle) = find_circle(&g) {
            panic!(
                "files of {scope} import each other in a circle: {}",
                circle.join(" → ")
            );
        }
    }
}

#[test]
fn the_checker_sees_grouped_and_nested_imports() {
    let text = "use crate::{a::b, c::{d, e::f}, g as h};\nlet x = crate::k::m(); // crate::z\n";
    let paths = crate_paths(&strip_comments(text));
    assert_eq!(paths, ["a::b", "c::d", "c::e::f", "g", "k::m"]);
    let mut g: BTreeMap<String, BTreeMap<String, ()>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into(), ());
    g.entry("b".into()).or_default().insert("c".into(), ());
    assert_eq!(find_circle(&g), None);
    g.entry("c".into()).or_default().insert("a".into(), ());
    assert_eq!(
        find_circle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

/// The text before a file's unit tests (`#[cfg(test)] mod tests` comes last): there `super::`
/// names the file itself.
fn without_tests(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// The saga files `module` (a file of `saga`) refers to by path, each with the path that
/// names it: `super::x::…` and `crate::saga::x::…`.
fn saga_refs(module: &str, text: &str) -> Vec<(String, String)> {
    let text = without_tests(text);
    let mut out: Vec<(String, String)> = paths_after(text, "super::")
        .into_iter()
        .map(|p| {
            (
                p.split("::").next().unwrap_or_default().to_string(),
                format!("super::{p}"),
            )
        })
        .collect();
    for p in crate_paths(text) {
        if let Some(rest) = p.strip_prefix("saga::") {
            let first = rest.split("::").next().unwrap_or_default().to_string();
            out.push((first, format!("crate::{p}")));
        }
    }
    out.retain(|(to, _)| format!("saga/{to}") != module);
    out
}

/// Every rule about the saga's files that `srcs` break, one line each.
fn saga_order_broken(srcs: &[Source]) -> Vec<String> {
    let tier = |m: &str| -> Option<usize> {
        let name = m.strip_prefix("saga/")?;
        SAGA_TIERS.iter().position(|t| t.contains(&name))
    };
    let files: BTreeSet<&str> = srcs
        .iter()
        .filter_map(|s| s.module.strip_prefix("saga/"))
        .collect();
    let mut broken = Vec::new();
    let mut inherent: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in srcs.iter().filter(|s| top(&s.module) == "saga") {
        for (ty, _) in inherent_impls(&s.text) {
            inherent.entry(ty).or_default().insert(s.module.clone());
        }
        if s.module == "saga" {
            continue;
        }
        let Some(from) = tier(&s.module) else {
            broken.push(format!(
                "src/{}.rs is in no tier of SAGA_TIERS: place it",
                s.module
            ));
            continue;
        };
        for (to, path) in saga_refs(&s.module, &s.text) {
            if !files.contains(to.as_str()) {
                broken.push(format!(
                    "src/{}.rs: `{path}` reaches through the saga's root: import it from the file that defines it",
                    s.module
                ));
                continue;
            }
            let to_tier = tier(&format!("saga/{to}")).unwrap_or(usize::MAX);
            if to_tier <= from {
                let how = if to_tier == from { "beside" } else { "above" };
                broken.push(format!(
                    "src/{}.rs: `{path}` calls saga/{to}, {how} it (SAGA_TIERS)",
                    s.module
                ));
            }
        }
    }
    for (ty, in_files) in inherent {
        if in_files.len() > 1 {
            broken.push(format!(
                "`impl {ty}` is spread over {in_files:?}: keep it in one file"
            ));
        }
        if ty == "Coordinator" && !in_files.contains(COORDINATOR_FILE) {
            broken.push(format!(
                "`impl Coordinator` belongs in src/{COORDINATOR_FILE}.rs"
            ));
        }
    }
    broken
}

/// The types a text has inherent `impl` blocks for (trait impls aside), with the line.
fn inherent_impls(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("impl")?;
            if !(rest.starts_with(' ') || rest.starts_with('<')) || l.contains(" for ") {
                return None;
            }
            // `impl<'a> Txn<'a> {` → `Txn`
            let rest = match rest.strip_prefix('<') {
                Some(r) => &r[matching_angle(r) + 1..],
                None => rest,
            };
            // `impl super::x::Coordinator {` → `Coordinator`
            let path: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let name = path.rsplit("::").next().unwrap_or_default().to_string();
            (!name.is_empty()).then(|| (name, l.to_string()))
        })
        .collect()
}

fn matching_angle(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth == 0 => return i,
            '>' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

#[test]
fn the_saga_calls_down_in_step_order() {
    let broken = saga_order_broken(&sources());
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_saga_order_check_sees_a_call_back_up() {
    let src = |module: &str, text: &str| Source {
        module: module.into(),
        text: text.into(),
    };
    let ok = [
        src("saga", "mod run;\nmod end;\nmod coordinator;"),
        src(
            "saga/coordinator",
            "use super::run::run;\nimpl Coordinator {}",
        ),
        src("saga/run", "use super::{end::end, admit};"),
        src("saga/admit", "use super::end::untouched;"),
        src(
            "saga/end",
            "pub fn end() {}\n#[cfg(test)]\nmod tests { use super::*; }",
        ),
    ];
    assert_eq!(saga_order_broken(&ok), Vec::<String>::new());
    // A step that calls the driver back, one that calls a step beside it, a path through the
    // root, a grouped import, and a second `impl Coordinator`.
    let bad = [
        src("saga", "mod run;"),
        src("saga/coordinator", "impl Coordinator {}"),
        src("saga/run", "fn f() {}"),
        src("saga/end", "fn f() { crate::saga::run::run(); }"),
        src("saga/admit", "use super::{prepare::prepare, deps::Deps};"),
        src("saga/prepare", "use super::Coordinator;"),
        src("saga/send", "impl super::coordinator::Coordinator {\n}"),
        src("saga/deps", ""),
    ];
    let broken = saga_order_broken(&bad);
    let says = |what: &str| broken.iter().any(|b| b.contains(what));
    assert!(
        says("saga/end.rs: `crate::saga::run::run` calls saga/run, above it"),
        "{broken:?}"
    );
    assert!(
        says("saga/admit.rs: `super::prepare::prepare` calls saga/prepare, beside it"),
        "{broken:?}"
    );
    assert!(
        says("saga/prepare.rs: `super::Coordinator` reaches through the saga's root"),
        "{broken:?}"
    );
    assert!(says("`impl Coordinator` is spread over"), "{broken:?}");
    assert_eq!(broken.len(), 5, "{broken:?}");
}
