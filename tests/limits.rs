//! Bad clients get clear answers and never reach the nodes: oversized bodies (413), slow headers
//! and bodies (408), oversized headers (431), too many connections (503).

mod support;

use http::Method;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads what the server sends until it closes the connection or `limit` passes.
async fn read_all(stream: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_before_any_node_is_touched() {
    let (nodes, dtc) = cluster_with(|c| c.limits.max_body = 1024).await;
    let big = format!(r#"{{"groupId": "{}"}}"#, "x".repeat(2000));
    let a = send(Method::POST, &dtc.at("/v1/group/"), Some(&big), &[]).await;
    assert_eq!(a.status(), 413);
    assert!(
        a.problem()["detail"]
            .as_str()
            .unwrap()
            .contains("1024 bytes")
    );
    // Without a content-length (chunked), the limit holds while reading.
    let mut s = TcpStream::connect(dtc.addr).await.unwrap();
    let head = "POST /v1/group/ HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..3 {
        s.write_all(format!("{:x}\r\n{}\r\n", 1000, "y".repeat(1000)).as_bytes())
            .await
            .unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(nodes.iter().all(|n| n.write_count() == 0));
}

#[tokio::test]
async fn a_client_that_is_slow_with_its_headers_gets_408() {
    let (nodes, dtc) = cluster_with(|c| c.timeouts.header_read = Duration::from_millis(200)).await;
    let mut s = TcpStream::connect(dtc.addr).await.unwrap();
    s.write_all(b"POST /v1/group/ HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("header-timeout"));
    assert!(nodes.iter().all(|n| n.write_count() == 0));
    // The proxy still serves others.
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.status(), 201);
}

/// Reads one HTTP/1 response (head and a `content-length` body) from a kept-alive connection;
/// what arrived if the connection closed first or 5 s passed.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&out).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_string)
                    })
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if out.len() >= end + 4 + length {
                    return;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    String::from_utf8_lossy(&out).into_owned()
}

const GET_G1: &[u8] = b"GET /v1/group/g1/ HTTP/1.1\r\nhost: x\r\n\r\n";

/// A proxy with `header_read` 200 ms and `idle` 30 s.
async fn short_header_read() -> (Vec<dtc::node::RefNode>, Dtc) {
    cluster_with(|c| {
        c.timeouts.header_read = Duration::from_millis(200);
        c.timeouts.idle = Duration::from_secs(30);
    })
    .await
}

/// A raw connection to `addr` that has had `request` answered with `status` and stays open.
async fn kept_alive(
    addr: impl tokio::net::ToSocketAddrs,
    request: &[u8],
    status: &str,
) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let first = read_response(&mut s).await;
    assert!(
        first.starts_with(&format!("HTTP/1.1 {status}")),
        "{first:?}"
    );
    s
}

/// The client pauses three times `header_read` (the scenario, not a wait for dtc), then sends
/// `request` on the same connection: answered with `status`, not a 408 or a close.
async fn after_a_pause_answers(s: &mut TcpStream, request: &[u8], status: &str) {
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.write_all(request).await.unwrap();
    let second = read_response(s).await;
    assert!(
        second.starts_with(&format!("HTTP/1.1 {status}")),
        "an answer on the same connection, not a 408 or a close: {second:?}"
    );
}

/// A head begun on `s` and never finished gets 408 within `header_read` of its first byte.
async fn an_unfinished_head_gets_408(s: &mut TcpStream, head: &[u8]) {
    s.write_all(head).await.unwrap();
    let answer = read_all(s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
}

/// A proxy with a short `header_read`, and a raw connection to it that has had one GET answered
/// (the node's 404) and stays open.
async fn kept_alive_after_one_get() -> (Vec<dtc::node::RefNode>, Dtc, TcpStream) {
    let (nodes, dtc) = short_header_read().await;
    let s = kept_alive(dtc.addr, GET_G1, "404").await;
    (nodes, dtc, s)
}

/// A kept-alive connection waiting for its client's next request is idle, not slow: it stays
/// open for `timeouts.idle`, not `timeouts.header_read`. hyper's header timer closed it after
/// `header_read` with a 408, so a client that came back after a pause of about that length — one
/// that waited out a `Retry-After`, say — read that 408 as its write's answer.
#[tokio::test]
async fn a_kept_alive_connection_idle_past_header_read_serves_the_next_request() {
    let (_nodes, _dtc, mut s) = kept_alive_after_one_get().await;
    after_a_pause_answers(&mut s, GET_G1, "404").await;
}

/// The other side of it: a head begun on a kept-alive connection and never finished still gets
/// 408 within `header_read` of its first byte.
#[tokio::test]
async fn a_slow_second_head_on_a_kept_alive_connection_gets_408() {
    let (nodes, _dtc, mut s) = kept_alive_after_one_get().await;
    an_unfinished_head_gets_408(&mut s, b"POST /v1/group/ HTTP/1.1\r\nhost: x\r\n").await;
    assert!(nodes.iter().all(|n| n.write_count() == 0));
}

/// The admin listener, the same way: a kept-alive connection (a scraper's, between scrapes)
/// idle past `header_read` serves its next request; a head begun and never finished gets 408.
/// hyper's header timer closed the idle one after `header_read`.
#[tokio::test]
async fn the_admin_listener_keeps_an_idle_connection_and_answers_a_slow_head_408() {
    let (_nodes, dtc) = short_header_read().await;
    let admin = dtc.serve_admin().await;
    const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut s = kept_alive(admin.trim_start_matches("http://"), HEALTHZ, "200").await;
    after_a_pause_answers(&mut s, HEALTHZ, "200").await;
    an_unfinished_head_gets_408(&mut s, b"GET /status HTTP/1.1\r\nhost: x\r\n").await;
}

#[tokio::test]
async fn a_client_that_is_slow_with_its_body_gets_408() {
    let (nodes, dtc) = cluster_with(|c| c.timeouts.header_read = Duration::from_millis(200)).await;
    let mut s = TcpStream::connect(dtc.addr).await.unwrap();
    s.write_all(b"POST /v1/group/ HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"gro")
        .await
        .unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(nodes.iter().all(|n| n.write_count() == 0));
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let (nodes, dtc) = cluster_with(|c| c.limits.max_header_bytes = 8192).await;
    let mut s = TcpStream::connect(dtc.addr).await.unwrap();
    let req = format!(
        "GET /v1/group/g1/ HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "z".repeat(20_000)
    );
    let _ = s.write_all(req.as_bytes()).await;
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // Health probes (dtc asks each node at start) aside, nothing reached a node.
    let forwarded = |n: &dtc::node::RefNode| n.requests().iter().any(|r| r.path != "/healthz");
    assert!(!nodes.iter().any(forwarded));
}

#[tokio::test]
async fn connections_over_the_limit_get_503_and_are_closed() {
    let (_nodes, dtc) = cluster_with(|c| c.limits.max_connections = 1).await;
    // The first connection holds the only slot (keep-alive, idle).
    let mut first = TcpStream::connect(dtc.addr).await.unwrap();
    first
        .write_all(b"GET /v1/group/g1/ HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 404");
    let mut second = TcpStream::connect(dtc.addr).await.unwrap();
    let answer = read_all(&mut second, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("max_connections"));
    drop(first);
}

/// A "node" that answers every connection with bytes that are not HTTP.
async fn lying_node() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"SMTP READY\r\n\x00\x01garbage\r\n\r\n").await;
            });
        }
    });
    url
}

#[tokio::test]
async fn garbage_from_a_client_gets_400_and_dtc_keeps_serving() {
    let (_nodes, dtc) = cluster().await;
    let mut s = TcpStream::connect(dtc.addr).await.unwrap();
    s.write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .await
        .unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let a = create_group(&dtc, "g1").await;
    assert_eq!(a.status(), 201);
}

#[tokio::test]
async fn a_node_that_answers_garbage_is_a_failing_node_not_a_crash() {
    let nodes = vec![start_node("a", 1).await, start_node("b", 101).await];
    let mut cfg = test_config(&nodes);
    cfg.nodes.push(dtc::config::NodeConfig {
        name: "liar".into(),
        url: lying_node().await,
        tls: None,
    });
    cfg.health.path = String::new();
    let dtc = start_proxy(cfg).await;
    for n in &nodes {
        n.insert_group("g1");
    }
    for _ in 0..10 {
        let r = read_group(&dtc, "g1").await;
        assert_eq!(r.status(), 200, "reads fail over from the liar");
    }
    let w = create_group(&dtc, "g2").await;
    // The liar's answer proves nothing about whether it applied the write: undoing there cannot
    // be confirmed either, so the write is reported as needing attention, with the reason.
    assert_eq!((w.status().as_u16(), w.state()), (502, "failed"));
    let p = w.json();
    assert_eq!(p["nodes"][2]["outcome"], "transient");
    assert!(
        p["nodes"][2]["error"]
            .as_str()
            .unwrap()
            .contains("connection failed mid-request"),
        "{p}"
    );
    assert!(
        nodes.iter().all(|n| !n.groups().contains("g2")),
        "undone on the honest nodes"
    );
}
