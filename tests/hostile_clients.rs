//! Hostile clients (issue 14): silent and half-open connections, HTTP/2 without a path, odd
//! methods, oversized targets and header counts. Raw sockets, so nothing between the test and
//! dtc tidies the bytes up.

mod support;

use http::Method;
use std::time::Duration;
use support::raw::{H2_PREFACE, exchange, h2_frame, read_until_closed};
use support::*;
use tokio::net::TcpStream;
use tokio::time::Instant;

const HEADER_READ: Duration = Duration::from_millis(300);

/// Finding 3: silent sockets take every connection slot; /readyz says so; within
/// `header_read` + 1 s they are all closed and a normal client is served again.
#[tokio::test]
async fn silent_sockets_are_closed_and_no_longer_lock_out_a_client() {
    let (_nodes, dtc) = cluster_with(|c| {
        c.limits.max_connections = 12;
        c.timeouts.header_read = HEADER_READ;
    })
    .await;
    let admin = dtc.serve_admin().await;
    let opened = Instant::now();
    let mut silent = Vec::new();
    for i in 0..12 {
        let mut s = TcpStream::connect(dtc.addr).await.unwrap();
        // A third send nothing, a third an HTTP/2 preface, a third a HEADERS that never ends.
        let mut bytes = Vec::new();
        if i % 3 > 0 {
            bytes.extend_from_slice(H2_PREFACE);
        }
        if i % 3 == 2 {
            bytes.extend(h2_frame(1, 0x1, 1, &[0x82, 0x86]));
        }
        tokio::io::AsyncWriteExt::write_all(&mut s, &bytes)
            .await
            .unwrap();
        silent.push(s);
    }
    let readyz = format!("{admin}/readyz");
    let full = send(Method::GET, &readyz, None, &[]).await;
    assert_eq!(full.status(), 503, "{:?}", full.body());
    assert!(
        full.json()["missing"][0]
            .as_str()
            .unwrap()
            .contains("limits.max_connections")
    );
    let mut extra = TcpStream::connect(dtc.addr).await.unwrap();
    let (refused, _) = read_until_closed(&mut extra, Duration::from_secs(3)).await;
    let refused = String::from_utf8_lossy(&refused);
    assert!(
        refused.starts_with("HTTP/1.1 503"),
        "the limit is really reached: {refused}"
    );
    for s in &mut silent {
        let (_, closed) = read_until_closed(s, Duration::from_secs(3)).await;
        assert!(closed, "a silent connection is closed");
    }
    // The last slot may be given back a moment after its socket closes: poll, with the
    // finding's deadline.
    let deadline = opened + HEADER_READ + Duration::from_secs(1);
    loop {
        let answer = try_send(Method::GET, &dtc.at("/v1/group/g/"), None, &[]).await;
        if answer.is_ok_and(|a| a.status() == 404) {
            break; // the node's own answer, not dtc's 503
        }
        assert!(
            Instant::now() < deadline,
            "still locked out at header_read + 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(send(Method::GET, &readyz, None, &[]).await.status(), 200);
}

/// Finding 3: an HTTP/2 connection with no open stream is closed after `timeouts.idle`.
#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    let (_nodes, dtc) = cluster_with(|c| c.timeouts.idle = Duration::from_millis(400)).await;
    let tcp = TcpStream::connect(dtc.addr).await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(dtc.at("/v1/group/g/")).body(()).unwrap();
    let (resp, _) = h2.send_request(req, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 404);
    let idle_from = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), conn)
        .await
        .expect("dtc closes the idle connection")
        .unwrap()
        .ok();
    assert!(
        idle_from.elapsed() >= Duration::from_millis(350),
        "{:?}",
        idle_from.elapsed()
    );
}

/// Finding 7: an HTTP/2 request without `:path` is refused, not forwarded as `GET /`.
#[tokio::test]
async fn an_http2_request_without_a_path_is_refused() {
    let (nodes, dtc) = cluster().await;
    let mut s = TcpStream::connect(dtc.addr).await.unwrap();
    let mut bytes = H2_PREFACE.to_vec();
    // HEADERS, END_STREAM | END_HEADERS: `:method GET`, `:scheme http`, nothing else.
    bytes.extend(h2_frame(1, 0x5, 1, &[0x82, 0x86]));
    bytes.extend(h2_frame(7, 0, 0, &[0; 8])); // GOAWAY: lets dtc close once it has answered
    let (out, _) = exchange(&mut s, &bytes, Duration::from_secs(3)).await;
    let status = first_headers_block(&out).expect("a response HEADERS frame");
    assert_eq!(status[0], 0x8c, "`:status 400` (HPACK static index 12)");
    assert!(
        nodes
            .iter()
            .all(|n| n.requests().iter().all(|r| r.path != "/"))
    );
}

/// The payload of the first HEADERS frame among server frames (after its SETTINGS).
fn first_headers_block(mut out: &[u8]) -> Option<Vec<u8>> {
    while out.len() >= 9 {
        let len = (usize::from(out[0]) << 16) | (usize::from(out[1]) << 8) | usize::from(out[2]);
        let (kind, body) = (out[3], out.get(9..9 + len)?);
        if kind == 1 {
            return Some(body.to_vec());
        }
        out = &out[9 + len..];
    }
    None
}

/// Finding 7: a lowercase `post` and a `PURGE` with a body are refused, not read from one node.
#[tokio::test]
async fn methods_that_are_neither_reads_nor_writes_are_refused() {
    let (nodes, dtc) = cluster().await;
    for method in ["post", "PURGE"] {
        let mut s = TcpStream::connect(dtc.addr).await.unwrap();
        let req = format!(
            "{method} /v1/group/ HTTP/1.1\r\nhost: x\r\ncontent-length: 17\r\nconnection: close\r\n\r\n{{\"groupId\":\"g1\"}}"
        );
        let (out, _) = exchange(&mut s, req.as_bytes(), Duration::from_secs(3)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 501"), "{method}: {text}");
        assert!(text.contains("writes.methods"), "{text}");
    }
    assert!(
        nodes
            .iter()
            .all(|n| n.requests().iter().all(|r| r.path.starts_with("/healthz")))
    );
}

/// Finding 7: a long target is 414 (limits.max_uri_bytes), and the header count limit is the
/// documented `limits.max_headers` (here lowered, so that dtc, not the node, answers 431).
#[tokio::test]
async fn a_long_uri_is_414_and_the_header_count_limit_is_configurable() {
    let (nodes, dtc) = cluster_with(|c| c.limits.max_headers = 20).await;
    let long = format!("/v1/group/{}/", "a".repeat(9000));
    assert_eq!(
        send(Method::GET, &dtc.at(&long), None, &[]).await.status(),
        414
    );
    let names: Vec<String> = (0..30).map(|i| format!("x-h{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let url = dtc.at("/v1/group/g/");
    assert_eq!(
        send(Method::GET, &url, None, &headers[..10]).await.status(),
        404
    );
    assert_eq!(send(Method::GET, &url, None, &headers).await.status(), 431);
    let seen = |n: &dtc::node::RefNode| {
        n.requests()
            .iter()
            .filter(|r| r.path == "/v1/group/g/")
            .count()
    };
    assert_eq!(
        nodes.iter().map(seen).sum::<usize>(),
        1,
        "only the request within limits reached a node"
    );
}

/// A `MakeWriter` keeping what is logged, for a test to read.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Finding 7: a request hyper refuses for its framing (400, 431) leaves a log line saying so.
/// A current-thread runtime, so the subscriber set here sees dtc's connection tasks.
#[tokio::test(flavor = "current_thread")]
async fn framing_refusals_are_logged() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (_nodes, dtc) = cluster().await;
    for bad in [
        "GET /x HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n".to_string(),
        format!(
            "GET /x HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(70_000)
        ),
    ] {
        let mut s = TcpStream::connect(dtc.addr).await.unwrap();
        let (out, _) = exchange(&mut s, bad.as_bytes(), Duration::from_secs(3)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.1 431"),
            "{text}"
        );
    }
    wait_until("both refusals are logged", || {
        let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
        text.matches("client request refused: malformed or oversized request head")
            .count()
            >= 2
    })
    .await;
}
