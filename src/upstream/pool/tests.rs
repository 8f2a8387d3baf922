use super::*;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A node that answers every request with a small 200 and counts its connections.
async fn counting_node(close_after_first: bool) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let head: &'static [u8] = if close_after_first {
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
    } else {
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    };
    canned_node(head, close_after_first).await
}

/// A node that answers every request with `answer` (closing the connection after it when
/// `close`) and counts its connections.
async fn canned_node(
    answer: &'static [u8],
    close: bool,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = conns.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let _ = s.write_all(answer).await;
                        if close {
                            let _ = s.shutdown().await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, conns)
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::builder().uri(path).body(Full::default()).unwrap()
}

#[tokio::test]
async fn a_connection_is_reused_once_its_body_is_read() {
    let (addr, conns) = counting_node(false).await;
    let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
    for _ in 0..5 {
        let resp = pool.send(get("/x")).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(pool.idle_count(), 1);
}

async fn body_of(pool: &Arc<Pool>, method: http::Method) -> Bytes {
    let mut req = get("/x");
    *req.method_mut() = method;
    let resp = pool.send(req).await.expect("an answer");
    resp.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn chunked_and_empty_bodies_return_their_connection() {
    for (answer, expected) in [
        (
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"[..],
            &b"ok"[..],
        ),
        (&b"HTTP/1.1 204 No Content\r\n\r\n"[..], &b""[..]),
    ] {
        let (addr, conns) = canned_node(answer, false).await;
        let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
        for _ in 0..3 {
            assert_eq!(&body_of(&pool, http::Method::GET).await[..], expected);
        }
        assert_eq!(
            conns.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn a_body_read_until_the_node_closes_is_whole_and_its_connection_not_reused() {
    // No length: the body ends when the node closes the connection.
    let (addr, conns) = canned_node(b"HTTP/1.1 200 OK\r\n\r\nuntil close", true).await;
    let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
    for _ in 0..3 {
        assert_eq!(&body_of(&pool, http::Method::GET).await[..], b"until close");
    }
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn at_most_max_idle_connections_are_kept() {
    let (addr, conns) = counting_node(false).await;
    let pool = Pool::new(&addr, Duration::from_secs(1), 2, Duration::from_secs(30));
    // Five at once need five connections; only two stay idle afterwards.
    let answers = futures_util::future::join_all((0..5).map(|_| pool.send(get("/x")))).await;
    for resp in answers {
        let _ = resp.unwrap().into_body().collect().await.unwrap();
    }
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 5);
    assert_eq!(pool.idle_count(), 2);
}

#[tokio::test]
async fn a_body_dropped_unread_does_not_return_its_connection() {
    let (addr, _) = counting_node(false).await;
    let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
    // The 2-byte body is not read: the connection may still carry it and is not reused.
    let resp = pool.send(get("/x")).await.unwrap();
    drop(resp);
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn a_node_closing_each_connection_after_one_answer_costs_no_request() {
    // The node says `connection: close` and closes: the next request must not be lost on
    // that connection, whether or not the close has been seen when it is checked out.
    let (addr, conns) = counting_node(true).await;
    let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
    for i in 0..20 {
        let resp = pool.send(get("/x")).await.unwrap_or_else(|e| {
            panic!("request {i} failed although the node was up: {e}");
        });
        let _ = resp.into_body().collect().await.unwrap();
    }
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 20);
}

#[tokio::test]
async fn a_node_that_refuses_connections_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let pool = Pool::new(&addr, Duration::from_secs(1), 8, Duration::from_secs(30));
    match pool.send(get("/x")).await {
        Err(e @ SendError::Connect(_)) => assert!(!e.maybe_applied()),
        other => panic!(
            "expected a connect error, got {:?}",
            other.map(|r| r.status())
        ),
    }
}
