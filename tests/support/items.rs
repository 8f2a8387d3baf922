//! The items API of the shipped `config/items.toml` on nodes that assign their own ids: the
//! nodes, the routes, each node's ids, and the create-then-read steps the id map tests repeat
//! (`tests/idmap.rs`, `tests/cluster/ids.rs`).

use super::{Answer, At, send, start_node};
use dtc::config::RouteConfig;
use dtc::node::RefNode;
use http::{Method, StatusCode};
use serde_json::Value;

/// Reference nodes `node-1`, `node-2`, `node-3` assigning item ids from 1, 1001 and 2001.
pub async fn id_bases() -> Vec<RefNode> {
    vec![
        start_node("node-1", 1).await,
        start_node("node-2", 1001).await,
        start_node("node-3", 2001).await,
    ]
}

/// The routes of the shipped `config/items.toml`.
pub fn shipped_routes() -> Vec<RouteConfig> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/items.toml")).unwrap();
    let shipped: dtc::config::Config = toml::from_str(&text).unwrap();
    shipped.routes
}

/// Each node's item ids, in node order.
pub fn ids(nodes: &[RefNode]) -> Vec<Vec<u64>> {
    nodes
        .iter()
        .map(|n| n.items().keys().copied().collect())
        .collect()
}

/// `POST /items` with `{"name": name}`.
pub async fn create_item(at: &(impl At + ?Sized), name: &str) -> Answer {
    let body = format!(r#"{{"name":"{name}"}}"#);
    send(Method::POST, &at.at("/items"), Some(&body), &[]).await
}

/// `PUT /items/{id}` with `{"id": id, "name": name}`, which must succeed.
pub async fn replace_item(at: &(impl At + ?Sized), id: u64, name: &str) -> Answer {
    let body = format!(r#"{{"id":{id},"name":"{name}"}}"#);
    let put = send(
        Method::PUT,
        &at.at(&format!("/items/{id}")),
        Some(&body),
        &[],
    )
    .await;
    assert_eq!(put.state(), "succeeded", "{}", put.text());
    put
}

/// Reads `path` `times` times (each read may reach another node): every one is 200 with `want`.
pub async fn reads_alike(at: &(impl At + ?Sized), path: &str, times: usize, want: &Value) {
    for i in 0..times {
        let r = send(Method::GET, &at.at(path), None, &[]).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "read {i} of {path}: {}",
            r.text()
        );
        assert_eq!(&r.json(), want, "read {i} of {path}");
    }
}
