//! The reference API of a node over its in-memory [`Store`]: routing and
//! handlers. Pure state machine: no I/O and no faults (the server in
//! `server.rs` decides whether a request reaches [`Store::handle`]).
//!
//! | route                | methods            | behaviour                                     |
//! |----------------------|--------------------|-----------------------------------------------|
//! | `/v1/group/`         | POST, DELETE       | JSON `{"groupId"}`: 201/400, 200/404; bad 422 |
//! | `/v1/group/{id}/`    | GET, HEAD          | 200 `{"groupId"}` / 404                       |
//! | `/items`             | POST               | JSON object, server-assigned `id`, 201 + `Location` |
//! | `/items/{id}`        | GET, HEAD, PUT, DELETE | read / create-or-replace (201/200) / delete |
//! | `/healthz`           | GET, HEAD          | 200 `ok` (text)                               |
//!
//! Trailing slashes are optional. Unknown paths answer 404, known paths with
//! another method 405 with an `Allow` header.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A node's data: the groups and the items, and the next item id to assign.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) groups: BTreeSet<String>,
    pub(crate) items: BTreeMap<u64, Value>,
    next_id: u64,
}

/// A handler's answer, before it becomes an HTTP response.
#[derive(Debug, PartialEq)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: ReplyBody,
    /// `Location` header (201 on `POST /items`).
    pub(crate) location: Option<String>,
    /// `Allow` header (405).
    pub(crate) allow: Option<&'static str>,
}

/// The body of a [`Reply`].
#[derive(Debug, PartialEq)]
pub(crate) enum ReplyBody {
    /// `application/json`.
    Json(Value),
    /// `text/plain`.
    Text(&'static str),
}

impl Reply {
    /// A JSON answer.
    pub(crate) fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body: ReplyBody::Json(body),
            location: None,
            allow: None,
        }
    }

    /// A JSON error answer: `{"error": message}`.
    pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        Reply::json(status, json!({ "error": message.into() }))
    }

    fn not_found(what: impl std::fmt::Display) -> Reply {
        Reply::error(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    fn not_allowed(method: &Method, allow: &'static str) -> Reply {
        let mut reply = Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed"),
        );
        reply.allow = Some(allow);
        reply
    }

    fn unprocessable(message: impl Into<String>) -> Reply {
        Reply::error(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

/// Where a path leads.
#[derive(Debug, PartialEq)]
enum Route {
    Healthz,
    Groups,
    Group(String),
    Items,
    Item(u64),
    Unknown,
}

fn route(path: &str) -> Route {
    let path = path.strip_suffix('/').unwrap_or(path);
    match path {
        "/healthz" => return Route::Healthz,
        "/v1/group" => return Route::Groups,
        "/items" => return Route::Items,
        _ => {}
    }
    if let Some(id) = path
        .strip_prefix("/v1/group/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        return Route::Group(id.to_owned());
    }
    match path.strip_prefix("/items/").map(str::parse::<u64>) {
        Some(Ok(id)) => Route::Item(id),
        _ => Route::Unknown,
    }
}

/// Whether `path` is the health check (which bypasses delay and faults).
pub(crate) fn is_healthz(path: &str) -> bool {
    route(path) == Route::Healthz
}

/// Body of `POST /v1/group/` and `DELETE /v1/group/`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupBody {
    group_id: String,
}

impl Store {
    /// An empty store whose first assigned item id is `id_base`.
    pub(crate) fn new(id_base: u64) -> Store {
        Store {
            groups: BTreeSet::new(),
            items: BTreeMap::new(),
            next_id: id_base,
        }
    }

    /// Handles one request and applies its effect, if any.
    pub(crate) fn handle(&mut self, method: &Method, path: &str, body: &[u8]) -> Reply {
        match route(path) {
            Route::Healthz => healthz(method),
            Route::Groups => self.groups_root(method, body),
            Route::Group(id) => self.group(method, &id),
            Route::Items => self.items_root(method, body),
            Route::Item(id) => self.item(method, id, body),
            Route::Unknown => Reply::not_found(format!("path {path}")),
        }
    }

    fn groups_root(&mut self, method: &Method, body: &[u8]) -> Reply {
        let write = matches!(*method, Method::POST | Method::DELETE);
        if !write {
            return Reply::not_allowed(method, "POST, DELETE");
        }
        let id = match serde_json::from_slice::<GroupBody>(body) {
            Ok(GroupBody { group_id }) if !group_id.is_empty() => group_id,
            Ok(_) => return Reply::unprocessable("groupId must not be empty"),
            Err(e) => {
                return Reply::unprocessable(format!("body must be {{\"groupId\": \"...\"}}: {e}"));
            }
        };
        let answer = json!({ "groupId": id });
        if *method == Method::POST {
            if self.groups.contains(&id) {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    format!("group {id} already exists"),
                );
            }
            self.groups.insert(id);
            Reply::json(StatusCode::CREATED, answer)
        } else if self.groups.remove(&id) {
            Reply::json(StatusCode::OK, answer)
        } else {
            Reply::not_found(format!("group {id}"))
        }
    }

    fn group(&self, method: &Method, id: &str) -> Reply {
        if !is_read(method) {
            return Reply::not_allowed(method, "GET, HEAD");
        }
        if self.groups.contains(id) {
            Reply::json(StatusCode::OK, json!({ "groupId": id }))
        } else {
            Reply::not_found(format!("group {id}"))
        }
    }

    fn items_root(&mut self, method: &Method, body: &[u8]) -> Reply {
        if *method != Method::POST {
            return Reply::not_allowed(method, "POST");
        }
        let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(body) else {
            return Reply::unprocessable("body must be a JSON object");
        };
        let id = self.assign_id();
        object.insert("id".to_owned(), json!(id));
        let object = Value::Object(object);
        self.items.insert(id, object.clone());
        let mut reply = Reply::json(StatusCode::CREATED, object);
        reply.location = Some(format!("/items/{id}"));
        reply
    }

    fn item(&mut self, method: &Method, id: u64, body: &[u8]) -> Reply {
        match *method {
            Method::GET | Method::HEAD => match self.items.get(&id) {
                Some(item) => Reply::json(StatusCode::OK, item.clone()),
                None => Reply::not_found(format!("item {id}")),
            },
            Method::PUT => match serde_json::from_slice::<Value>(body) {
                Ok(item) => match self.items.insert(id, item.clone()) {
                    Some(_) => Reply::json(StatusCode::OK, item),
                    None => Reply::json(StatusCode::CREATED, item),
                },
                Err(e) => Reply::unprocessable(format!("body must be JSON: {e}")),
            },
            Method::DELETE => match self.items.remove(&id) {
                Some(item) => Reply::json(StatusCode::OK, item),
                None => Reply::not_found(format!("item {id}")),
            },
            _ => Reply::not_allowed(method, "GET, HEAD, PUT, DELETE"),
        }
    }

    /// The next free id from the counter (skipping ids taken by a PUT).
    fn assign_id(&mut self) -> u64 {
        while self.items.contains_key(&self.next_id) {
            self.next_id += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// `GET /healthz`: 200 `ok`.
pub(crate) fn healthz(method: &Method) -> Reply {
    if !is_read(method) {
        return Reply::not_allowed(method, "GET, HEAD");
    }
    Reply {
        status: StatusCode::OK,
        body: ReplyBody::Text("ok"),
        location: None,
        allow: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(store: &mut Store, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
        let reply = store.handle(&method, path, body.as_bytes());
        match reply.body {
            ReplyBody::Json(v) => (reply.status, v),
            ReplyBody::Text(t) => (reply.status, Value::String(t.to_owned())),
        }
    }

    #[test]
    fn group_create_exists_get_delete_absent() {
        let mut s = Store::new(1);
        let g1 = r#"{"groupId": "g1"}"#;
        assert_eq!(
            send(&mut s, Method::POST, "/v1/group/", g1),
            (StatusCode::CREATED, json!({"groupId": "g1"}))
        );
        assert_eq!(
            send(&mut s, Method::POST, "/v1/group/", g1),
            (
                StatusCode::BAD_REQUEST,
                json!({"error": "group g1 already exists"})
            )
        );
        assert_eq!(
            send(&mut s, Method::GET, "/v1/group/g1/", ""),
            (StatusCode::OK, json!({"groupId": "g1"}))
        );
        assert_eq!(
            send(&mut s, Method::DELETE, "/v1/group/", g1),
            (StatusCode::OK, json!({"groupId": "g1"}))
        );
        assert_eq!(
            send(&mut s, Method::DELETE, "/v1/group/", g1).0,
            StatusCode::NOT_FOUND
        );
        let (status, body) = send(&mut s, Method::GET, "/v1/group/g1/", "");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["error"].is_string());
        assert!(s.groups.is_empty());
    }

    #[test]
    fn malformed_group_bodies_are_422_and_change_nothing() {
        let mut s = Store::new(1);
        s.groups.insert("g1".to_owned());
        for body in [
            "",
            "{",
            "[]",
            r#"{"id": "g1"}"#,
            r#"{"groupId": 5}"#,
            r#"{"groupId": ""}"#,
        ] {
            for method in [Method::POST, Method::DELETE] {
                let (status, _) = send(&mut s, method.clone(), "/v1/group/", body);
                assert_eq!(
                    status,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{method} {body:?}"
                );
            }
        }
        assert_eq!(s.groups.len(), 1);
    }

    #[test]
    fn item_ids_come_from_the_node_base() {
        let mut a = Store::new(1);
        let mut b = Store::new(1000);
        let reply = a.handle(&Method::POST, "/items", br#"{"name": "x"}"#);
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.body, ReplyBody::Json(json!({"name": "x", "id": 1})));
        assert_eq!(reply.location.as_deref(), Some("/items/1"));
        let reply = b.handle(&Method::POST, "/items", br#"{"name": "x"}"#);
        assert_eq!(reply.location.as_deref(), Some("/items/1000"));
        assert_eq!(
            send(&mut b, Method::POST, "/items", "{}").1["id"],
            json!(1001)
        );
        assert_eq!(
            send(&mut b, Method::GET, "/items/1000", ""),
            (StatusCode::OK, json!({"name": "x", "id": 1000}))
        );
    }

    #[test]
    fn post_item_skips_ids_taken_by_put_and_needs_an_object() {
        let mut s = Store::new(5);
        assert_eq!(
            send(&mut s, Method::PUT, "/items/5", r#"{"a": 1}"#).0,
            StatusCode::CREATED
        );
        assert_eq!(send(&mut s, Method::POST, "/items", "{}").1["id"], json!(6));
        for body in ["[1]", "3", "nope", ""] {
            assert_eq!(
                send(&mut s, Method::POST, "/items", body).0,
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
    }

    #[test]
    fn put_creates_then_replaces_and_delete_returns_the_item() {
        let mut s = Store::new(1);
        assert_eq!(
            send(&mut s, Method::PUT, "/items/9", r#"{"v": 1}"#),
            (StatusCode::CREATED, json!({"v": 1}))
        );
        assert_eq!(
            send(&mut s, Method::PUT, "/items/9", r#"{"v": 2}"#),
            (StatusCode::OK, json!({"v": 2}))
        );
        assert_eq!(s.items[&9], json!({"v": 2}));
        assert_eq!(
            send(&mut s, Method::PUT, "/items/9", "{").0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            send(&mut s, Method::DELETE, "/items/9", ""),
            (StatusCode::OK, json!({"v": 2}))
        );
        assert_eq!(
            send(&mut s, Method::DELETE, "/items/9", "").0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            send(&mut s, Method::GET, "/items/9", "").0,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        let mut s = Store::new(1);
        for path in ["/", "/v1", "/v1/group/a/b", "/items/x", "/nope"] {
            assert_eq!(
                send(&mut s, Method::GET, path, "").0,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let reply = s.handle(&Method::GET, "/v1/group/", b"");
        assert_eq!(
            (reply.status, reply.allow),
            (StatusCode::METHOD_NOT_ALLOWED, Some("POST, DELETE"))
        );
        for (method, path) in [
            (Method::POST, "/v1/group/g/"),
            (Method::GET, "/items"),
            (Method::PATCH, "/items/1"),
        ] {
            assert_eq!(
                send(&mut s, method, path, "{}").0,
                StatusCode::METHOD_NOT_ALLOWED,
                "{path}"
            );
        }
    }

    #[test]
    fn routes_take_optional_trailing_slashes() {
        assert_eq!(route("/v1/group"), Route::Groups);
        assert_eq!(route("/v1/group/g1"), Route::Group("g1".to_owned()));
        assert_eq!(route("/items/"), Route::Items);
        assert_eq!(route("/items/3/"), Route::Item(3));
        assert!(is_healthz("/healthz"));
        assert_eq!(healthz(&Method::GET).body, ReplyBody::Text("ok"));
    }
}
