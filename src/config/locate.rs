//! Pointing a problem at its line: a field path like `nodes[1].url` → its line in the TOML text.

/// Best-effort line of a field path like `nodes[1].url` or `retry.attempts` in TOML text.
pub(crate) fn locate(text: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize;
    let mut end = lines.len();
    let mut parts = field.split('.').peekable();
    let mut header = String::new();
    while let Some(part) = parts.next() {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let is_last = parts.peek().is_none();
        if is_last && index.is_none() {
            // A key inside the current table, or an inline-table key on some line.
            let key = format!("{name} ");
            let key_eq = format!("{name}=");
            return (start..end)
                .find(|&l| {
                    let t = lines[l].trim_start();
                    t.starts_with(&key) || t.starts_with(&key_eq)
                })
                .map(|l| l + 1)
                .or(if start > 0 { Some(start) } else { None });
        }
        header = if header.is_empty() {
            name.to_string()
        } else {
            format!("{header}.{name}")
        };
        let wanted = match index {
            Some(_) => format!("[[{header}]]"),
            None => format!("[{header}]"),
        };
        let nth = index.unwrap_or(0);
        let found = (start..end).filter(|&l| lines[l].trim() == wanted).nth(nth);
        let Some(l) = found else {
            return if start > 0 { Some(start) } else { None };
        };
        start = l + 1;
        end = (start..lines.len())
            .find(|&k| lines[k].trim_start().starts_with('['))
            .unwrap_or(lines.len());
        if is_last {
            return Some(l + 1);
        }
    }
    None
}
