//! Path patterns and value templates of routes.
//!
//! A pattern (`/items/{id}`) matches a request path segment by segment and captures `{name}`
//! segments. A template (`/items/{response:/id}`) is rendered per node from:
//! - `{name}`: a segment captured by the route's pattern;
//! - `{body:/json/pointer}`: the client's JSON request body;
//! - `{response:/json/pointer}`: this node's JSON response to the write;
//! - `{location}`: this node's `Location` header (its path).

use serde_json::Value;
use std::fmt::Write as _;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Param(String),
    Body(String),
    Response(String),
    Location,
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template can draw values from, for one node.
#[derive(Debug, Default, Clone, Copy)]
pub struct Context<'a> {
    /// Captured path segments.
    pub params: &'a [(String, String)],
    /// The client's request body, if it was JSON.
    pub body: Option<&'a Value>,
    /// The node's response body, if it was JSON.
    pub response: Option<&'a Value>,
    /// The node's `Location` header, reduced to its path.
    pub location: Option<&'a str>,
}

/// Why a template could not be rendered for a node.
#[expect(
    clippy::enum_variant_names,
    reason = "each variant names what is missing"
)]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("`{0}` is not in the request body")]
    MissingBody(String),
    #[error("`{0}` is not in the node's response (or the response never came)")]
    MissingResponse(String),
    #[error("the node sent no Location header (or its response never came)")]
    MissingLocation,
    #[error("path parameter `{0}` was not captured")]
    MissingParam(String),
}

/// Why a path pattern or a template in the config cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("unclosed `{{` in template `{text}`")]
    Unclosed { text: String },
    #[error(
        "`{{{inner}}}` in `{text}` is neither a path parameter of the route ({params}) nor `{{body:/pointer}}`, `{{response:/pointer}}` or `{{location}}`"
    )]
    Placeholder {
        inner: String,
        text: String,
        /// The route's parameters, listed, or "it has none".
        params: String,
    },
    #[error("`{pointer}` in `{text}` is not a JSON pointer: write it like `/groupId`")]
    Pointer { pointer: String, text: String },
    #[error("path `{text}` must start with `/`")]
    NoLeadingSlash { text: String },
    #[error("`{segment}` in path `{text}` is not a valid `{{name}}` segment")]
    BadCapture { segment: String, text: String },
    #[error("`{segment}` in path `{text}`: a `{{name}}` must be a whole segment")]
    PartialCapture { segment: String, text: String },
}

/// How a rendered value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Percent-encode everything but unreserved characters (values inside a URL path).
    Path,
    /// Escape for inside a JSON string literal.
    Json,
    /// As is (resource keys).
    Raw,
}

impl Template {
    /// Compiles `text`; `params` are the names the route's pattern captures.
    pub fn compile(text: &str, params: &[String]) -> Result<Template, SyntaxError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            // `{` followed by a quote or another brace is JSON, not a placeholder.
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(SyntaxError::Unclosed {
                    text: text.to_string(),
                });
            };
            let inner = &after[..close];
            let is_placeholder = !inner.is_empty()
                && !inner.starts_with(['"', ' ', '{', '\n'])
                && !inner.contains('"');
            if !is_placeholder {
                parts.push(Part::Lit(rest[..open + 1].to_string()));
                rest = after;
                continue;
            }
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            parts.push(parse_placeholder(inner, params, text)?);
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template {
            parts: merge_literals(parts),
        })
    }

    /// Whether rendering needs the node's own response.
    pub fn needs_response(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Response(_) | Part::Location))
    }

    /// Renders with values from `ctx`.
    pub fn render(&self, ctx: &Context<'_>, escape: Escape) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Param(name) => {
                    let v = ctx
                        .params
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.as_str())
                        .ok_or_else(|| RenderError::MissingParam(name.clone()))?;
                    push_escaped(&mut out, v, escape);
                }
                Part::Body(ptr) => {
                    let v = lookup(ctx.body, ptr)
                        .ok_or_else(|| RenderError::MissingBody(ptr.clone()))?;
                    push_escaped(&mut out, &v, escape);
                }
                Part::Response(ptr) => {
                    let v = lookup(ctx.response, ptr)
                        .ok_or_else(|| RenderError::MissingResponse(ptr.clone()))?;
                    push_escaped(&mut out, &v, escape);
                }
                // A Location is already a path; escaping it again would break it.
                Part::Location => out.push_str(ctx.location.ok_or(RenderError::MissingLocation)?),
            }
        }
        Ok(out)
    }
}

fn parse_placeholder(inner: &str, params: &[String], text: &str) -> Result<Part, SyntaxError> {
    if let Some(ptr) = inner.strip_prefix("body:") {
        check_pointer(ptr, text)?;
        return Ok(Part::Body(ptr.to_string()));
    }
    if let Some(ptr) = inner.strip_prefix("response:") {
        check_pointer(ptr, text)?;
        return Ok(Part::Response(ptr.to_string()));
    }
    if inner == "location" {
        return Ok(Part::Location);
    }
    if params.iter().any(|p| p == inner) {
        return Ok(Part::Param(inner.to_string()));
    }
    Err(SyntaxError::Placeholder {
        inner: inner.to_string(),
        text: text.to_string(),
        params: if params.is_empty() {
            "it has none".to_string()
        } else {
            params.join(", ")
        },
    })
}

fn check_pointer(ptr: &str, text: &str) -> Result<(), SyntaxError> {
    if ptr.is_empty() || ptr.starts_with('/') {
        Ok(())
    } else {
        Err(SyntaxError::Pointer {
            pointer: ptr.to_string(),
            text: text.to_string(),
        })
    }
}

fn merge_literals(parts: Vec<Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::with_capacity(parts.len());
    for p in parts {
        match (out.last_mut(), p) {
            (Some(Part::Lit(prev)), Part::Lit(s)) => prev.push_str(&s),
            (_, p) => out.push(p),
        }
    }
    out
}

fn lookup(doc: Option<&Value>, ptr: &str) -> Option<String> {
    match doc?.pointer(ptr)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn push_escaped(out: &mut String, v: &str, escape: Escape) {
    match escape {
        Escape::Raw => out.push_str(v),
        Escape::Json => {
            let quoted = Value::String(v.to_string()).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        }
        Escape::Path => {
            for b in v.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    out.push(b as char);
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Lit(String),
    Capture(String),
}

impl Pattern {
    /// Compiles `/a/{b}/c`. The path must start with `/`; a trailing slash and empty segments
    /// do not count (see [`crate::wire::path`]: `/v1/group/` matches `/v1/group` too).
    pub fn compile(text: &str) -> Result<Pattern, SyntaxError> {
        if !text.starts_with('/') {
            return Err(SyntaxError::NoLeadingSlash {
                text: text.to_string(),
            });
        }
        let mut segments = Vec::new();
        for seg in text[1..].split('/').filter(|s| !s.is_empty()) {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty() || name.contains(['{', '}', ':']) {
                    return Err(SyntaxError::BadCapture {
                        segment: seg.to_string(),
                        text: text.to_string(),
                    });
                }
                segments.push(Segment::Capture(name.to_string()));
            } else if seg.contains(['{', '}']) {
                return Err(SyntaxError::PartialCapture {
                    segment: seg.to_string(),
                    text: text.to_string(),
                });
            } else {
                segments.push(Segment::Lit(seg.to_string()));
            }
        }
        Ok(Pattern { segments })
    }

    /// Names this pattern captures.
    pub fn params(&self) -> Vec<String> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Capture(n) => Some(n.clone()),
                Segment::Lit(_) => None,
            })
            .collect()
    }

    /// Matches a request path in its normal form ([`crate::wire::path::normalize`]; without a
    /// query); returns the captures.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let rest = path.strip_prefix('/')?;
        let mut captures = Vec::new();
        let mut parts = rest.split('/').filter(|s| !s.is_empty());
        for seg in &self.segments {
            let got = parts.next()?;
            match seg {
                Segment::Lit(l) if l == got => {}
                Segment::Lit(_) => return None,
                Segment::Capture(_) if got.is_empty() => return None,
                Segment::Capture(name) => captures.push((name.clone(), percent_decode(got))),
            }
        }
        if parts.next().is_some() {
            return None;
        }
        Some(captures)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pattern_captures_segments_and_ignores_the_trailing_slash() {
        let p = Pattern::compile("/items/{id}").unwrap();
        assert_eq!(
            p.matches("/items/42"),
            Some(vec![("id".into(), "42".into())])
        );
        assert_eq!(p.matches("/items/"), None);
        assert_eq!(p.matches("/items/42/x"), None);
        let g = Pattern::compile("/v1/group/").unwrap();
        assert_eq!(g.matches("/v1/group/"), Some(vec![]));
        // One resource, one spelling: the trailing slash does not count.
        assert_eq!(g.matches("/v1/group"), Some(vec![]));
        assert_eq!(Pattern::compile("/").unwrap().matches("/"), Some(vec![]));
        assert_eq!(
            p.matches("/items/a%20b"),
            Some(vec![("id".into(), "a b".into())])
        );
    }

    #[test]
    fn template_renders_each_source() {
        let params = vec![("id".to_string(), "7".to_string())];
        let body = json!({"groupId": "g/1", "n": 3});
        let resp = json!({"id": 99});
        let ctx = Context {
            params: &params,
            body: Some(&body),
            response: Some(&resp),
            location: Some("/items/99"),
        };
        let t =
            Template::compile("/x/{id}/{body:/groupId}/{response:/id}", &["id".into()]).unwrap();
        assert_eq!(t.render(&ctx, Escape::Path).unwrap(), "/x/7/g%2F1/99");
        assert_eq!(
            Template::compile("{location}", &[])
                .unwrap()
                .render(&ctx, Escape::Path)
                .unwrap(),
            "/items/99"
        );
        let j =
            Template::compile(r#"{"groupId": "{body:/groupId}", "n": {body:/n}}"#, &[]).unwrap();
        assert_eq!(
            j.render(&ctx, Escape::Json).unwrap(),
            r#"{"groupId": "g/1", "n": 3}"#
        );
        assert!(t.needs_response());
    }

    #[test]
    fn template_errors_name_the_problem() {
        let err = Template::compile("/x/{nope}", &[]).unwrap_err().to_string();
        assert!(err.contains("`{nope}`"), "{err}");
        let err = Template::compile("/x/{body:groupId}", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("JSON pointer"), "{err}");
        let t = Template::compile("/x/{response:/id}", &[]).unwrap();
        let e = t.render(&Context::default(), Escape::Path).unwrap_err();
        assert_eq!(e, RenderError::MissingResponse("/id".into()));
        assert!(Pattern::compile("items").is_err());
        assert!(Pattern::compile("/items/x{id}").is_err());
    }
}
