//! The reference API's state machine, handler by handler.

use super::*;

fn send(store: &mut Store, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let reply = store.handle(&method, path, body.as_bytes());
    match reply.body {
        ReplyBody::Json(v) => (reply.status, v),
        ReplyBody::Text(t) | ReplyBody::Html(t) => (reply.status, Value::String(t.to_owned())),
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
    let reply = s.handle(&Method::PUT, "/v1/group/", b"");
    assert_eq!(
        (reply.status, reply.allow),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            Some("GET, HEAD, POST, DELETE")
        )
    );
    for (method, path) in [
        (Method::POST, "/v1/group/g/"),
        (Method::DELETE, "/items"),
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
fn the_group_collection_lists_every_group_as_a_create_body() {
    let mut s = Store::new(1);
    assert_eq!(
        send(&mut s, Method::GET, "/v1/group/", "").1,
        serde_json::json!([])
    );
    for g in ["b", "a"] {
        send(
            &mut s,
            Method::POST,
            "/v1/group/",
            &format!(r#"{{"groupId":"{g}"}}"#),
        );
    }
    let (status, body) = send(&mut s, Method::GET, "/v1/group/", "");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!([{"groupId": "a"}, {"groupId": "b"}])
    );
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
