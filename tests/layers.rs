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
];

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
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
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
            let mut rest = s.text.as_str();
            while let Some(i) = rest.find("super::") {
                let after = &rest[i + 7..];
                let end = after
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                targets.push(format!("{parent}/{}", &after[..end]));
                rest = &after[end..];
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
