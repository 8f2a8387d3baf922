//! The file's text into [`Config`], reporting *every* value of the wrong type (and every unknown
//! field) with its field path and line, not only the first: each one found is reported, its line
//! set aside (so its default applies), and the text parsed again, until it parses or nothing more
//! can be set aside. Syntax errors stop at the first: past one, the parser cannot tell where
//! anything is.

use super::{Config, Problem};

/// At most this many wrong values are reported from one file.
const MAX_PROBLEMS: usize = 50;

/// Why the text is not a config.
pub(super) enum TypedError {
    /// Not TOML: the message names the line.
    Syntax(String),
    /// TOML, but some values are not what their fields take.
    Types(Vec<Problem>),
}

/// Parses `text` into a [`Config`].
pub(super) fn config(text: &str) -> Result<Config, TypedError> {
    if let Err(e) = toml::from_str::<toml::Table>(text) {
        return Err(TypedError::Syntax(super::syntax_message(&e, text)));
    }
    let mut current = text.to_string();
    let mut problems = Vec::new();
    loop {
        let e = match toml::from_str::<Config>(&current) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => return Err(types(problems)),
            Err(e) => e,
        };
        let Some(span) = e.span() else {
            problems.push(Problem {
                field: "-".into(),
                line: None,
                message: e.message().trim_end().to_string(),
            });
            return Err(types(problems));
        };
        let line = current[..span.start.min(current.len())]
            .matches('\n')
            .count();
        problems.push(Problem {
            field: field_at(&current, line),
            line: Some(line + 1),
            message: expected_form(e.message().trim_end()),
        });
        let next = set_aside(&current, line);
        let still_toml = next
            .as_deref()
            .is_some_and(|t| toml::from_str::<toml::Table>(t).is_ok());
        match next {
            Some(t) if still_toml && problems.len() < MAX_PROBLEMS => current = t,
            _ => return Err(types(problems)),
        }
    }
}

/// The problems in the order of their lines (serde finds them in the order of the fields).
fn types(mut problems: Vec<Problem>) -> TypedError {
    problems.sort_by_key(|p| p.line);
    TypedError::Types(problems)
}

/// The text with line `line` (0-based) commented out; `None` for a table header, whose removal
/// would move its keys into another table.
fn set_aside(text: &str, line: usize) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let target = lines.get_mut(line)?;
    if target.trim_start().starts_with('[') || target.trim_start().starts_with('#') {
        return None;
    }
    *target = format!("# {target}");
    Some(lines.join("\n"))
}

/// The field path of the key on line `line` (0-based): its table header and its key, e.g.
/// `health.interval` or `nodes[1].url`.
fn field_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let key = lines
        .get(line)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let header = lines[..line.min(lines.len())]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| l.trim_start().starts_with('['))
        .map(|(i, l)| table_path(&lines[..=i], l.trim()));
    match (header, key) {
        (Some(h), Some(k)) => format!("{h}.{k}"),
        (Some(h), None) => h,
        (None, Some(k)) => k,
        (None, None) => "-".into(),
    }
}

/// `[health]` → `health`; the `n`th `[[nodes]]` → `nodes[n]`.
fn table_path(before: &[&str], header: &str) -> String {
    let header = header.split('#').next().unwrap_or(header).trim();
    if let Some(name) = header.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
        let n = before
            .iter()
            .filter(|l| l.trim().starts_with(header))
            .count();
        return format!("{}[{}]", name.trim(), n.saturating_sub(1));
    }
    header.trim_matches(['[', ']']).trim().to_string()
}

/// serde's message, with the form a person should write where it only names a type.
fn expected_form(message: &str) -> String {
    let hints = [
        ("expected a duration", ""),
        ("expected a string", "; write it in quotes, e.g. \"text\""),
        ("expected u32", "; write a whole number, e.g. 3"),
        ("expected u64", "; write a whole number, e.g. 3"),
        ("expected usize", "; write a whole number, e.g. 3"),
        ("expected u16", "; write a whole number, e.g. 3"),
        ("expected f64", "; write a number, e.g. 2.0"),
        ("expected a boolean", "; write true or false"),
        ("expected a sequence", "; write a list, e.g. [400, 404]"),
    ];
    match hints.iter().find(|(k, _)| message.contains(k)) {
        Some((_, hint)) => format!("{message}{hint}"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "[[nodes]]\nname = \"a\"\nurl = \"http://127.0.0.1:5000\"\n";

    #[test]
    fn every_wrong_type_is_named_with_its_field_and_line() {
        let text = format!(
            "{NODES}[health]\ninterval = 2\nhealthy_threshold = \"two\"\n[retry]\nattempts = true\n"
        );
        let Err(TypedError::Types(p)) = config(&text) else {
            panic!("must be refused")
        };
        let fields: Vec<(&str, Option<usize>)> =
            p.iter().map(|p| (p.field.as_str(), p.line)).collect();
        assert_eq!(
            fields,
            [
                ("health.interval", Some(5)),
                ("health.healthy_threshold", Some(6)),
                ("retry.attempts", Some(8)),
            ]
        );
        assert!(p[0].message.contains("\"2s\""), "{}", p[0].message);
        assert!(p[1].message.contains("whole number"), "{}", p[1].message);
    }

    /// Inside an array of tables the parser points at the array, not the key: the problem
    /// names the array (a known limit of the field path).
    #[test]
    fn a_wrong_type_inside_an_array_of_tables_names_the_array() {
        let text = format!("{NODES}[[nodes]]\nname = 7\nurl = \"http://x:1\"\n");
        let Err(TypedError::Types(p)) = config(&text) else {
            panic!("must be refused")
        };
        assert!(p.iter().all(|p| p.field.starts_with("nodes")), "{p:?}");
        assert!(
            p.iter()
                .any(|p| p.message.contains("invalid type: integer `7`")),
            "{p:?}"
        );
    }
}
