//! Server-assigned ids: a create route's `id` declaration, compiled into an [`IdRule`] — where a
//! node's answer carries the id it assigned, which path names one resource by its id, and how a
//! path, a body or a `Location` is translated between the canonical id (the one the client
//! sees) and a node's own. Pure functions over values: the map itself is the journal's
//! (`journal::idmap`), its use the saga's and the proxy's.

use super::template::Pattern;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `id = { path = "/items/{id}", body = "/id", location = true }` on a create route: the nodes
/// assign the resource's id themselves, so dtc keeps a map from the id the client sees to each
/// node's own.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdConfig {
    /// The path naming one resource by its id, with the id as its one `{name}` segment
    /// (`/items/{id}`). Every request to such a path — read or write, and dtc's own snapshots,
    /// read-backs and undos — is sent to each node with that node's id.
    pub path: String,
    /// JSON pointer to the id in the create's answer and in a resource's representation
    /// (`/id`). Rewritten to the canonical id in answers, to the node's in request bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Whether the create's `Location` header names the new resource (by `path`); rewritten to
    /// the canonical id in answers. At least one of `body` and `location` is needed.
    #[serde(default)]
    pub location: bool,
    /// JSON pointer to the array of resources in the answer to a `GET` of the create's path
    /// (`""`: the answer is the array): each one's id is shown as its canonical id, and one
    /// dtc has no canonical id for (not created through dtc, or its create not acknowledged)
    /// is left out. Unset: such a read passes through untranslated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
}

/// A compiled [`IdConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct IdRule {
    /// The create route's path (the collection), in its normal form: the map's name.
    pub collection: String,
    /// The path of one resource; `param` is its id segment.
    pub item: Pattern,
    pub param: String,
    /// Which segment of the item path (counting non-empty segments from 0) is the id.
    segment: usize,
    pub body: Option<String>,
    pub location: bool,
    pub list: Option<String>,
}

impl IdRule {
    /// Compiles `cfg` for the create route at `collection`; `Err` says what is wrong, by field.
    pub fn compile(collection: &str, cfg: &IdConfig) -> Result<IdRule, (&'static str, String)> {
        let item = Pattern::compile(&cfg.path).map_err(|e| ("path", e.to_string()))?;
        let params = item.params();
        let [param] = params.as_slice() else {
            return Err((
                "path",
                format!(
                    "`{}` must name the resource by exactly one `{{name}}` segment, its id",
                    cfg.path
                ),
            ));
        };
        let segment = cfg.path[1..]
            .split('/')
            .filter(|s| !s.is_empty())
            .position(|s| s == format!("{{{param}}}"))
            .unwrap_or(0);
        for (field, ptr) in [("body", &cfg.body), ("list", &cfg.list)] {
            if let Some(p) = ptr
                && !(p.is_empty() && field == "list")
                && !p.starts_with('/')
            {
                return Err((
                    field,
                    format!("`{p}` is not a JSON pointer: write it like `/id`"),
                ));
            }
        }
        if cfg.body.as_deref().is_some_and(str::is_empty) {
            return Err((
                "body",
                "the id cannot be the whole answer: write its pointer, like `/id`".into(),
            ));
        }
        if cfg.body.is_none() && !cfg.location {
            return Err((
                "body",
                "say where a node's answer carries the id it assigned: `body = \"/id\"` and/or `location = true`".into(),
            ));
        }
        if cfg.list.is_some() && cfg.body.is_none() {
            return Err((
                "list",
                "translating a collection needs `body`, the id's pointer in each resource".into(),
            ));
        }
        Ok(IdRule {
            collection: trim_slash(collection),
            item,
            param: param.clone(),
            segment,
            body: cfg.body.clone(),
            location: cfg.location,
            list: cfg.list.clone(),
        })
    }

    /// The id a node assigned, from its answer to the create: the body's pointer first, then
    /// the `Location` header. `None` when neither carries it.
    pub fn assigned(&self, body: &[u8], location: Option<&str>) -> Option<String> {
        let from_body = self.body.as_ref().and_then(|ptr| {
            let doc = serde_json::from_slice::<Value>(body).ok()?;
            id_text(doc.pointer(ptr)?)
        });
        from_body.or_else(|| {
            let loc = location.filter(|_| self.location)?;
            self.id_in_path(location_path(loc))
        })
    }

    /// The id a path (without query; empty segments do not count) names, when it names one resource of
    /// this collection.
    pub fn id_in_path(&self, path: &str) -> Option<String> {
        let params = self.item.matches(path)?;
        params
            .into_iter()
            .find(|(n, _)| *n == self.param)
            .map(|(_, v)| v)
    }

    /// `path_and_query` with its id segment set to `id` (empty segments and a trailing slash
    /// dropped, the query kept).
    pub fn with_id(&self, path_and_query: &str, id: &str) -> String {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let mut segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if let Some(s) = segs.get_mut(self.segment) {
            *s = encode_segment(id);
        }
        let mut out = format!("/{}", segs.join("/"));
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }

    /// A JSON body with its id (at `body`) swapped by `swap`; `None` when nothing changed (no
    /// pointer, not JSON, no id there, `swap` declines or gives the same id).
    pub fn swap_body(&self, body: &[u8], swap: impl Fn(&str) -> Option<String>) -> Option<Bytes> {
        let ptr = self.body.as_ref()?;
        let mut doc = serde_json::from_slice::<Value>(body).ok()?;
        let old = id_text(doc.pointer(ptr)?)?;
        swap(&old).filter(|new| *new != old)?;
        swap_at(&mut doc, ptr, &swap)?;
        Some(Bytes::from(serde_json::to_vec(&doc).ok()?))
    }

    /// A representation as the body of a create that recreates it: a JSON object without its
    /// id (at `body`), which the node assigns. `None` when it is not such an object.
    pub fn create_body(&self, body: &[u8]) -> Option<Bytes> {
        let mut doc = serde_json::from_slice::<Value>(body).ok()?;
        if let Some(ptr) = &self.body {
            let (parent, last) = ptr.rsplit_once('/')?;
            let key = last.replace("~1", "/").replace("~0", "~");
            if let Some(Value::Object(m)) = doc.pointer_mut(parent) {
                m.remove(&key);
            }
        }
        doc.is_object()
            .then(|| serde_json::to_vec(&doc).ok().map(Bytes::from))?
    }

    /// A `Location` naming one resource, with its id swapped by `swap`, as a path: a node's
    /// scheme and host (json-server sends `http://node:3000/items/1`) would send the client
    /// around dtc, to that one node.
    pub fn swap_location(
        &self,
        loc: &str,
        swap: impl Fn(&str) -> Option<String>,
    ) -> Option<String> {
        let path = location_path(loc);
        let id = self.id_in_path(path)?;
        let new = swap(&id)?;
        Some(self.with_id(path, &new))
    }

    /// A collection answer (the array at `list`) with each resource's id swapped by `swap`;
    /// a resource `swap` declines is left out. `None` when the answer is not such a collection.
    pub fn swap_list(&self, body: &[u8], swap: impl Fn(&str) -> Option<String>) -> Option<Bytes> {
        let (list, ptr) = (self.list.as_ref()?, self.body.as_ref()?);
        let mut doc = serde_json::from_slice::<Value>(body).ok()?;
        let Value::Array(items) = doc.pointer_mut(list)? else {
            return None;
        };
        items.retain_mut(|item| swap_at(item, ptr, &swap).is_some());
        Some(Bytes::from(serde_json::to_vec(&doc).ok()?))
    }
}

/// Swaps the id at `ptr` in `doc`, keeping its JSON type where the new id allows it.
fn swap_at(doc: &mut Value, ptr: &str, swap: &impl Fn(&str) -> Option<String>) -> Option<()> {
    let slot = doc.pointer_mut(ptr)?;
    let old = id_text(slot)?;
    let new = swap(&old)?;
    if new == old {
        return Some(());
    }
    *slot = match (&*slot, new.parse::<serde_json::Number>()) {
        (Value::Number(_), Ok(n)) => Value::Number(n),
        _ => Value::String(new),
    };
    Some(())
}

/// An id as text: a string as is, a number in its JSON form.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `http://host/items/5` → `/items/5` (the query dropped); a path stays as it is.
fn location_path(loc: &str) -> &str {
    let path = match loc.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => loc,
    };
    path.split('?').next().unwrap_or(path)
}

/// `/items/` → `/items`; `/` stays.
fn trim_slash(path: &str) -> String {
    match path.trim_end_matches('/') {
        "" => "/".into(),
        p => p.into(),
    }
}

/// Percent-encodes what may not stand in a path segment.
fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> IdRule {
        let cfg = IdConfig {
            path: "/items/{id}".into(),
            body: Some("/id".into()),
            location: true,
            list: Some(String::new()),
        };
        IdRule::compile("/items", &cfg).unwrap()
    }

    #[test]
    fn the_assigned_id_comes_from_the_body_or_the_location() {
        let r = rule();
        assert_eq!(r.assigned(br#"{"id":1001}"#, None).as_deref(), Some("1001"));
        assert_eq!(
            r.assigned(b"", Some("http://n:1/items/7")).as_deref(),
            Some("7")
        );
        assert_eq!(r.assigned(b"{}", Some("/other/7")), None);
    }

    #[test]
    fn paths_bodies_and_locations_swap_ids() {
        let r = rule();
        assert_eq!(r.with_id("/items/1/?x=1", "1001"), "/items/1001?x=1");
        assert_eq!(r.with_id("/items/1", "a b"), "/items/a%20b");
        let to = |id: &str| (id == "1001").then(|| "1".to_string());
        assert_eq!(
            r.swap_body(br#"{"id":1001,"n":"A"}"#, to).unwrap(),
            &br#"{"id":1,"n":"A"}"#[..]
        );
        assert_eq!(
            r.swap_body(br#"{"id":"1001"}"#, to).unwrap(),
            &br#"{"id":"1"}"#[..]
        );
        assert_eq!(r.swap_body(br#"{"id":5}"#, to), None);
        assert_eq!(
            r.swap_location("http://h:1/items/1001", to).as_deref(),
            Some("/items/1")
        );
        let list = r.swap_list(br#"[{"id":1001},{"id":9}]"#, to).unwrap();
        assert_eq!(list, &br#"[{"id":1}]"#[..]);
        let again = r.create_body(br#"{"id":1,"name":"A"}"#).unwrap();
        assert_eq!(again, &br#"{"name":"A"}"#[..]);
        assert_eq!(r.create_body(b"[1]"), None);
    }

    #[test]
    fn a_declaration_says_where_the_id_is() {
        let mut cfg = IdConfig {
            path: "/items/{id}/{x}".into(),
            body: None,
            location: false,
            list: None,
        };
        assert_eq!(IdRule::compile("/items", &cfg).unwrap_err().0, "path");
        cfg.path = "/items/{id}".into();
        assert_eq!(IdRule::compile("/items", &cfg).unwrap_err().0, "body");
        cfg.body = Some("id".into());
        assert_eq!(IdRule::compile("/items", &cfg).unwrap_err().0, "body");
    }
}
