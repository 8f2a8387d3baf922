//! Hostile nodes (issue 14): a read answer that stalls or drips after its head, and a write
//! answer larger than `limits.max_body`. The nodes are raw sockets scripted byte by byte.

mod support;

use dtc::config::NodeConfig;
use std::time::Duration;
use support::raw::{RawNode, Script, exchange};
use support::*;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A proxy in front of one raw node; one call that gets no complete answer takes the node down
/// (whatever answered before it). Its health probe answers, so a half-open trial brings it back
/// a little later.
async fn proxy_on(node: &RawNode, tweak: impl FnOnce(&mut dtc::config::Config)) -> Dtc {
    let mut cfg = test_config(&[]);
    cfg.nodes = vec![NodeConfig {
        name: "raw".into(),
        url: node.url.clone(),
        tls: None,
    }];
    cfg.health.unhealthy_threshold = 1;
    cfg.health.failure_rate = 0.1;
    cfg.health.interval = Duration::from_secs(600);
    tweak(&mut cfg);
    start_proxy(cfg).await
}

const GET: &[u8] = b"GET /v1/group/g/ HTTP/1.1\r\nhost: x\r\n\r\n";

/// Finding 5: a node that sends its head and part of its body, then nothing, has the client's
/// connection closed after `timeouts.read_idle`, and counts as a failure of that node.
#[tokio::test]
async fn a_stalled_read_body_is_cut_off_and_the_node_blamed() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789".to_vec();
    let node = RawNode::start(Script::ThenStall(head)).await;
    let dtc = proxy_on(&node, |c| c.timeouts.read_idle = Duration::from_millis(300)).await;
    assert!(dtc.node_up(0));
    let mut s = TcpStream::connect(dtc.addr).await.unwrap();
    let started = Instant::now();
    let (out, closed) = exchange(&mut s, GET, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(closed, "the client connection is closed");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("0123456789"),
        "the partial body, then the close: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    wait_until("the stalled node counts as down", || !dtc.node_up(0)).await;
}

/// Finding 5: a node that drips its body byte by byte is cut off at `timeouts.read_total`.
#[tokio::test]
async fn a_dripping_read_body_is_cut_off_at_the_total_timeout() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n".to_vec();
    let node = RawNode::start(Script::Drip(head, Duration::from_millis(20))).await;
    let dtc = proxy_on(&node, |c| {
        c.timeouts.read_idle = Duration::from_millis(500);
        c.timeouts.read_total = Duration::from_millis(400);
    })
    .await;
    let mut s = TcpStream::connect(dtc.addr).await.unwrap();
    let started = Instant::now();
    let (out, closed) = exchange(&mut s, GET, Duration::from_secs(5)).await;
    assert!(closed, "the client connection is closed");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(2),
        "{took:?}"
    );
    wait_until("the dripping node counts as down", || !dtc.node_up(0)).await;
}

/// Finding 7: a node that applies a write and answers 201 with a body over `limits.max_body`
/// gets the write once: the status says it applied, whatever the body's size.
#[tokio::test]
async fn an_oversized_created_answer_is_not_sent_again() {
    let big = "y".repeat(4096);
    let answer = format!(
        "HTTP/1.1 201 Created\r\ncontent-length: {}\r\n\r\n{big}",
        big.len()
    );
    let node = RawNode::start(Script::ThenStall(answer.into_bytes())).await;
    let dtc = proxy_on(&node, |c| c.limits.max_body = 1024).await;
    let a = create_group(&dtc, "g1").await;
    assert!(a.status().is_success(), "{:?} {:?}", a.status(), a.body());
    assert_eq!(a.state(), "succeeded");
    assert_eq!(node.count(), 1, "the write went to the node exactly once");
}
