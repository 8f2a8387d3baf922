//! One resource, one spelling: the normal form of a request path that route matching and
//! resource keys use.
//!
//! Two spellings of one resource must take one key's turn, or two writes to it run at once and
//! the nodes may apply them in different orders. Taking one turn for two resources only orders
//! writes that need not be ordered, which is safe; so the rule merges every spelling an API is
//! likely to treat alike:
//!
//! 1. the query is not part of it (`?…` dropped);
//! 2. percent-encoding is normalised (RFC 3986 §6.2.2.2): an encoded unreserved character
//!    (`A-Z a-z 0-9 - . _ ~`) is decoded, every other escape gets upper-case hex digits; a `%`
//!    not followed by two hex digits stays as it is;
//! 3. dot segments are removed (RFC 3986 §5.2.4): `/a/./b/../c` is `/a/c`;
//! 4. empty segments are dropped: `//a//b` is `/a/b`;
//! 5. a trailing slash is dropped: `/v1/group/` and `/v1/group` are one path (`/` stays `/`).
//!
//! Letter case is kept: paths are case-sensitive (RFC 3986 §6.2.2.1 only folds the scheme and
//! host, which a sidecar's origin-form requests do not carry). The node still receives the
//! client's own spelling: the normal form only decides which route matches and which key's
//! turn the write takes.

/// The normal form of `path` (a query, if any, is dropped).
pub(crate) fn normalize(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let decoded = normalize_escapes(path);
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(decoded.len() + 1);
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

fn normalize_escapes(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            let c = h * 16 + l;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(c as char);
            } else {
                out.push('%');
                out.push(b[i + 1].to_ascii_uppercase() as char);
                out.push(b[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
            continue;
        }
        // Multi-byte UTF-8 is copied whole; only ASCII `%` starts an escape.
        let ch = path[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn every_spelling_of_one_path_is_one_normal_form() {
        for spelling in [
            "/v1/group/",
            "/v1/group",
            "//v1//group//",
            "/v1/./group",
            "/v1/x/../group/",
            "/v1/gr%6Fup",
            "/%76%31/group?x=1",
            "/v1/group/.",
        ] {
            assert_eq!(normalize(spelling), "/v1/group", "{spelling}");
        }
    }

    #[test]
    fn escapes_of_reserved_bytes_stay_escaped_with_upper_case_hex() {
        assert_eq!(normalize("/a%2fb"), "/a%2Fb");
        assert_eq!(normalize("/a%2Fb"), "/a%2Fb");
        assert_eq!(normalize("/a%20b"), "/a%20b");
        assert_eq!(normalize("/100%"), "/100%");
        assert_eq!(normalize("/%zz"), "/%zz");
        assert_eq!(normalize("/é/%C3%A9"), "/é/%C3%A9");
    }

    #[test]
    fn case_is_kept_and_the_root_stays_the_root() {
        assert_eq!(normalize("/Items/A"), "/Items/A");
        assert_ne!(normalize("/items/a"), normalize("/items/A"));
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/.."), "/");
    }
}
