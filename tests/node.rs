//! The reference node end to end, over real HTTP: the reference API, each
//! fault, going down and up, and what it records.

mod support;

use dtc::node::{Faults, NodeOptions, RefNode};
use http::{Method, StatusCode, header};
use serde_json::json;
use std::time::Duration;
use support::{client, request, send, send_with, start_node, try_send, wait_until};
use tokio::time::Instant;

const G1: &str = r#"{"groupId": "g1"}"#;

#[tokio::test]
async fn groups_are_created_read_and_deleted() {
    let node = start_node("a", 1).await;
    let groups = format!("{}/v1/group/", node.url());
    let g1 = format!("{}/v1/group/g1/", node.url());

    let answer = send(Method::POST, &groups, Some(G1), &[]).await;
    assert_eq!(
        (answer.status(), answer.json()),
        (StatusCode::CREATED, json!({"groupId": "g1"}))
    );
    assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
    let answer = send(Method::POST, &groups, Some(G1), &[]).await;
    assert_eq!(
        (answer.status(), answer.json()),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "group g1 already exists"})
        )
    );

    let answer = send(Method::GET, &g1, None, &[]).await;
    assert_eq!(
        (answer.status(), answer.json()),
        (StatusCode::OK, json!({"groupId": "g1"}))
    );
    let answer = send(Method::HEAD, &g1, None, &[]).await;
    assert_eq!((answer.status(), answer.body().len()), (StatusCode::OK, 0));

    let answer = send(Method::DELETE, &groups, Some(G1), &[]).await;
    assert_eq!(
        (answer.status(), answer.json()),
        (StatusCode::OK, json!({"groupId": "g1"}))
    );
    assert_eq!(
        send(Method::DELETE, &groups, Some(G1), &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    let answer = send(Method::GET, &g1, None, &[]).await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert!(answer.json()["error"].is_string());
    assert!(node.groups().is_empty());
}

#[tokio::test]
async fn malformed_group_bodies_are_422_not_exists() {
    let node = start_node("a", 1).await;
    node.insert_group("g1");
    let groups = format!("{}/v1/group/", node.url());
    for body in ["{", r#"{"name": "g1"}"#] {
        assert_eq!(
            send(Method::POST, &groups, Some(body), &[]).await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            send(Method::DELETE, &groups, Some(body), &[])
                .await
                .status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    assert_eq!(node.groups().len(), 1);
}

#[tokio::test]
async fn each_node_assigns_its_own_item_ids() {
    let (a, b) = (start_node("a", 1).await, start_node("b", 1000).await);
    for (node, id) in [(&a, 1), (&b, 1000)] {
        let answer = send(
            Method::POST,
            &format!("{}/items", node.url()),
            Some(r#"{"n": 1}"#),
            &[],
        )
        .await;
        assert_eq!(
            (answer.status(), answer.json()),
            (StatusCode::CREATED, json!({"n": 1, "id": id}))
        );
        assert_eq!(answer.headers()[header::LOCATION], format!("/items/{id}"));
        let answer = send(
            Method::GET,
            &format!("{}/items/{id}", node.url()),
            None,
            &[],
        )
        .await;
        assert_eq!(
            (answer.status(), answer.json()),
            (StatusCode::OK, json!({"n": 1, "id": id}))
        );
    }
    assert_eq!(a.items().keys().copied().collect::<Vec<_>>(), vec![1]);
    assert_eq!(b.items().keys().copied().collect::<Vec<_>>(), vec![1000]);
}

#[tokio::test]
async fn put_creates_or_replaces_and_delete_returns_the_item() {
    let node = start_node("a", 1).await;
    let item = format!("{}/items/7", node.url());
    assert_eq!(
        send(Method::PUT, &item, Some(r#"{"v": 1}"#), &[])
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        send(Method::PUT, &item, Some(r#"{"v": 2}"#), &[])
            .await
            .status(),
        StatusCode::OK
    );
    let answer = send(Method::DELETE, &item, None, &[]).await;
    assert_eq!(
        (answer.status(), answer.json()),
        (StatusCode::OK, json!({"v": 2}))
    );
    assert_eq!(
        send(Method::DELETE, &item, None, &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(Method::GET, &item, None, &[]).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn health_unknown_paths_and_wrong_methods() {
    let node = start_node("a", 1).await;
    let answer = send(Method::GET, &format!("{}/healthz", node.url()), None, &[]).await;
    assert_eq!(
        (answer.status(), &answer.body()[..]),
        (StatusCode::OK, &b"ok"[..])
    );
    assert_eq!(
        send(Method::GET, &format!("{}/nope", node.url()), None, &[])
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let answer = send(Method::GET, &format!("{}/items", node.url()), None, &[]).await;
    assert_eq!(
        (answer.status(), &answer.body()[..]),
        (StatusCode::OK, &b"[]"[..])
    );
    let answer = send(Method::DELETE, &format!("{}/items", node.url()), None, &[]).await;
    assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers()[header::ALLOW], "GET, HEAD, POST");
}

#[tokio::test]
async fn fail_next_answers_500_without_applying() {
    let node = start_node("a", 1).await;
    node.fail_next(1);
    let groups = format!("{}/v1/group/", node.url());
    assert_eq!(
        send(Method::POST, &groups, Some(G1), &[]).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(node.groups().is_empty());
    assert_eq!(
        send(Method::POST, &groups, Some(G1), &[]).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(node.write_count(), 2);
}

#[tokio::test]
async fn apply_then_fail_next_applies_and_answers_500() {
    let node = start_node("a", 1).await;
    node.apply_then_fail_next(1);
    let answer = send(
        Method::POST,
        &format!("{}/v1/group/", node.url()),
        Some(G1),
        &[],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.json()["error"].is_string());
    assert!(node.groups().contains("g1"));
}

#[tokio::test]
async fn reject_next_answers_the_status_without_applying() {
    let node = start_node("a", 1).await;
    node.reject_next(1, 422);
    let answer = send(
        Method::POST,
        &format!("{}/v1/group/", node.url()),
        Some(G1),
        &[],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
    assert!(answer.json()["error"].is_string());
    assert!(node.groups().is_empty());
}

#[tokio::test]
async fn error_rate_one_fails_every_write_but_not_reads() {
    let node = start_node("a", 1).await;
    node.set_error_rate(1.0);
    let groups = format!("{}/v1/group/", node.url());
    for _ in 0..3 {
        assert_eq!(
            send(Method::POST, &groups, Some(G1), &[]).await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(
        send(Method::GET, &format!("{groups}g1/"), None, &[])
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    node.set_error_rate(0.0);
    assert_eq!(
        send(Method::POST, &groups, Some(G1), &[]).await.status(),
        StatusCode::CREATED
    );
}

// Paused time: the node's delay is a tokio sleep, the only timer in this test, so the clock
// jumps exactly over it and the health check takes no time at all, however busy the machine.
#[tokio::test(start_paused = true)]
async fn delay_slows_requests_but_not_health() {
    let node = start_node("a", 1).await;
    node.set_delay(Duration::from_millis(100));
    let started = Instant::now();
    send(Method::GET, &format!("{}/items/1", node.url()), None, &[]).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    let started = Instant::now();
    send(Method::GET, &format!("{}/healthz", node.url()), None, &[]).await;
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[tokio::test]
async fn held_writes_wait_for_release_then_apply() {
    let node = start_node("a", 1).await;
    node.hold_next(1);
    let url = format!("{}/v1/group/", node.url());
    let write = tokio::spawn(async move { send(Method::POST, &url, Some(G1), &[]).await.status() });
    wait_until("the write is held", || node.held_count() == 1).await;
    assert!(node.groups().is_empty());
    // Reads still go through while a write is held.
    assert_eq!(
        send(Method::GET, &format!("{}/healthz", node.url()), None, &[])
            .await
            .status(),
        StatusCode::OK
    );

    node.release_held();
    assert_eq!(write.await.unwrap(), StatusCode::CREATED);
    assert!(node.groups().contains("g1"));
    assert_eq!(node.held_count(), 0);
}

#[tokio::test]
async fn down_refuses_connects_and_up_serves_on_the_same_port() {
    let node = start_node("a", 1).await;
    let groups = format!("{}/v1/group/", node.url());
    assert_eq!(
        send(Method::POST, &groups, Some(G1), &[]).await.status(),
        StatusCode::CREATED
    );

    node.set_down(true).await;
    assert!(node.is_down());
    let refused = tokio::net::TcpStream::connect(node.addr())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        try_send(Method::GET, &format!("{groups}g1/"), None, &[])
            .await
            .unwrap_err()
            .is_connect()
    );

    node.set_down(false).await;
    assert!(!node.is_down());
    assert_eq!(
        send(Method::GET, &format!("{groups}g1/"), None, &[])
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn going_down_closes_open_connections_and_held_requests() {
    let node = start_node("a", 1).await;
    node.hold_next(1);
    let url = format!("{}/v1/group/", node.url());
    let write = tokio::spawn(async move { try_send(Method::POST, &url, Some(G1), &[]).await });
    wait_until("the write is held", || node.held_count() == 1).await;

    node.set_down(true).await;
    assert!(
        write.await.unwrap().is_err(),
        "a held request gets no answer when the node goes down"
    );
    assert_eq!(node.held_count(), 0);
    assert!(node.groups().is_empty());
}

#[tokio::test]
async fn a_node_started_down_comes_up_on_its_port() {
    let faults = Faults {
        down: true,
        ..Faults::default()
    };
    let node = RefNode::bind(
        "127.0.0.1:0",
        NodeOptions {
            faults,
            ..NodeOptions::named("a")
        },
    )
    .await
    .unwrap();
    assert!(node.is_down());
    assert!(tokio::net::TcpStream::connect(node.addr()).await.is_err());
    node.set_down(false).await;
    assert_eq!(
        send(Method::GET, &format!("{}/healthz", node.url()), None, &[])
            .await
            .status(),
        StatusCode::OK
    );
    node.shutdown().await;
}

#[tokio::test]
async fn requests_are_recorded_with_headers_and_bodies() {
    let node = start_node("a", 1).await;
    let url = format!("{}/v1/group/?trace=1", node.url());
    send(Method::DELETE, &url, Some(G1), &[("x-dtc-txn", "t-42")]).await;
    send(Method::GET, &format!("{}/healthz", node.url()), None, &[]).await;

    let seen = node.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (&seen[0].method, seen[0].path.as_str()),
        (&Method::DELETE, "/v1/group/?trace=1")
    );
    assert_eq!(seen[0].headers["x-dtc-txn"], "t-42");
    assert_eq!(&seen[0].body[..], G1.as_bytes());
    assert_eq!(
        (&seen[1].method, seen[1].path.as_str()),
        (&Method::GET, "/healthz")
    );
    assert_eq!(node.write_count(), 1);
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served() {
    let node = start_node("a", 1).await;
    let req = request(
        Method::POST,
        &format!("{}/v1/group/", node.url()),
        Some(G1),
        &[],
    );
    let answer = send_with(&client(true), req).await.unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    assert_eq!(
        node.requests()[0].headers[header::CONTENT_TYPE],
        "application/json"
    );
}
