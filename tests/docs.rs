//! The documentation cannot drift from the code: every sample log line in `README.md` and
//! `docs/*.md` (`LEVEL dtc::module: message fields…`) names a module that exists and a message
//! that module logs at that level; every relative link points at a file that exists; the README
//! stays a front door (at most 15 KB) and keeps its two set-up commands.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `README.md` and every page of `docs/`, with their text.
fn pages() -> Vec<(PathBuf, String)> {
    let mut out = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            out.push(p);
        }
    }
    out.sort();
    out.into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// A sample log line: its level, module path (`dtc::saga::end`) and message.
#[derive(Debug, PartialEq)]
struct LogLine {
    level: String,
    module: String,
    message: String,
}

/// The log line in `line`, if it holds one (`LEVEL dtc::a::b: message key=value …`).
fn log_line(line: &str) -> Option<LogLine> {
    let (level, rest) = LEVELS.iter().find_map(|l| {
        let at = line.find(&format!("{l} dtc::"))?;
        Some((*l, &line[at + l.len() + 1..]))
    })?;
    let (module, rest) = rest.split_once(": ")?;
    // The message ends where the first `field=` begins.
    let words: Vec<&str> = rest.split(' ').collect();
    let end = words
        .iter()
        .position(|w| {
            w.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
        })
        .unwrap_or(words.len());
    Some(LogLine {
        level: level.to_string(),
        module: module.to_string(),
        message: words[..end].join(" ").trim().to_string(),
    })
}

/// The source file of a module path: `dtc::saga::end` → `src/saga/end.rs` (or `…/mod.rs`).
fn source_of(module: &str) -> Option<PathBuf> {
    let rel = module.strip_prefix("dtc::")?.replace("::", "/");
    [format!("src/{rel}.rs"), format!("src/{rel}/mod.rs")]
        .into_iter()
        .map(|p| root().join(p))
        .find(|p| p.exists())
}

/// Whether `source` logs `message` at `level`: the literal `"message"` follows a `level!(`
/// with no other logging macro between them.
fn logs(source: &str, level: &str, message: &str) -> bool {
    let lit = format!("\"{message}\"");
    let macro_ = format!("{}!(", level.to_lowercase());
    source.match_indices(&lit).any(|(at, _)| {
        let before = &source[..at];
        let last = |m: &str| before.rfind(m);
        let this = last(&macro_);
        this.is_some()
            && LEVELS
                .iter()
                .map(|l| format!("{}!(", l.to_lowercase()))
                .all(|m| m == macro_ || last(&m) < this)
    })
}

#[test]
fn sample_log_lines_are_what_the_code_logs() {
    let mut seen = 0;
    let mut wrong = Vec::new();
    for (path, text) in pages() {
        for (n, line) in text.lines().enumerate() {
            let Some(l) = log_line(line) else { continue };
            seen += 1;
            let at = format!("{}:{}", path.display(), n + 1);
            match source_of(&l.module) {
                None => wrong.push(format!("{at}: no module {}", l.module)),
                Some(src) => {
                    let source = std::fs::read_to_string(&src).unwrap();
                    if !logs(&source, &l.level, &l.message) {
                        wrong.push(format!(
                            "{at}: {} does not log {} {:?}",
                            src.display(),
                            l.level,
                            l.message
                        ));
                    }
                }
            }
        }
    }
    assert!(seen >= 5, "only {seen} sample log lines found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_log_line_check_can_fail() {
    let l = log_line("WARN dtc::saga::end: write finished txn=1 state=rolled_back").unwrap();
    assert_eq!(
        l,
        LogLine {
            level: "WARN".into(),
            module: "dtc::saga::end".into(),
            message: "write finished".into()
        }
    );
    let src = "tracing::info!(a, \"write finished\");\nwarn!(x = 1,\n  \"other\");";
    assert!(logs(src, "INFO", "write finished"));
    assert!(!logs(src, "WARN", "write finished"), "wrong level");
    assert!(!logs(src, "INFO", "write started"), "wrong message");
    assert!(source_of("dtc::saga::run").is_some());
    assert!(
        source_of("dtc::config::reload").is_none(),
        "moved to runtime"
    );
}

#[test]
fn relative_links_point_at_files_that_exist() {
    let mut broken = Vec::new();
    for (path, text) in pages() {
        let dir = path.parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let Some(end) = target.find(')') else {
                continue;
            };
            let target = &target[..end];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            if !dir.join(file).exists() {
                broken.push(format!("{}: {target}", path.display()));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_readme_is_a_front_door() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.len() <= 15 * 1024,
        "README.md is {} bytes: move reference material to docs/",
        readme.len()
    );
    for command in ["cargo run --release -- demo", "cargo test"] {
        assert!(readme.contains(command), "the README lost `{command}`");
    }
}
