//! The reference API of a node over its in-memory [`Store`]: routing and
//! handlers. Pure state machine: no I/O and no faults (the server in
//! `server.rs` decides whether a request reaches [`Store::handle`]).
//!
//! | route                | methods            | behaviour                                     |
//! |----------------------|--------------------|-----------------------------------------------|
//! | `/v1/group/`         | POST, DELETE       | JSON `{"groupId"}`: 201/400, 200/404; bad 422 |
//! | `/v1/group/{id}/`    | GET, HEAD          | 200 `{"groupId"}` / 404                       |
//! | `/items`             | GET, HEAD, POST    | all items (array) / JSON object, server-assigned `id`, 201 + `Location` |
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
    /// Answers by `Idempotency-Key`, oldest first out: a write seen again is answered, not
    /// applied again (as a real node honouring the header would).
    replies: std::collections::HashMap<String, Reply>,
    reply_order: std::collections::VecDeque<String>,
}

/// Idempotency keys remembered per node.
const REMEMBERED_KEYS: usize = 10_000;

/// A handler's answer, before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: ReplyBody,
    /// `Location` header (201 on `POST /items`).
    pub(crate) location: Option<String>,
    /// `Allow` header (405).
    pub(crate) allow: Option<&'static str>,
}

/// The body of a [`Reply`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplyBody {
    /// `application/json`.
    Json(Value),
    /// `text/plain`.
    Text(&'static str),
    /// `text/html` (json-server's error pages).
    Html(&'static str),
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
            replies: Default::default(),
            reply_order: Default::default(),
        }
    }

    /// Handles a write carrying `key`: a key seen before gets the answer it got then. Server
    /// errors are not remembered, so a retry after one is applied for real.
    pub(crate) fn handle_once(
        &mut self,
        key: Option<&str>,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Reply {
        let Some(key) = key else {
            return self.handle(method, path, body);
        };
        if let Some(seen) = self.replies.get(key) {
            return seen.clone();
        }
        let reply = self.handle(method, path, body);
        if !reply.status.is_server_error() {
            if self.reply_order.len() >= REMEMBERED_KEYS
                && let Some(old) = self.reply_order.pop_front()
            {
                self.replies.remove(&old);
            }
            self.reply_order.push_back(key.to_string());
            self.replies.insert(key.to_string(), reply.clone());
        }
        reply
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
        if is_read(method) {
            // The listing a route's `list` hook reads: every group, as a create's body.
            let all: Vec<Value> = self
                .groups
                .iter()
                .map(|g| json!({ "groupId": g }))
                .collect();
            return Reply::json(StatusCode::OK, Value::Array(all));
        }
        let write = matches!(*method, Method::POST | Method::DELETE);
        if !write {
            return Reply::not_allowed(method, "GET, HEAD, POST, DELETE");
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
        if is_read(method) {
            let all: Vec<&Value> = self.items.values().collect();
            return Reply::json(StatusCode::OK, json!(all));
        }
        if *method != Method::POST {
            return Reply::not_allowed(method, "GET, HEAD, POST");
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
mod tests;
