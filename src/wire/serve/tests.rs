//! The skeleton's promises: an accept error does not end the loop, and each drain ends the way
//! it says.

use super::*;
use http_body_util::Full;
use std::convert::Infallible;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

/// A listener whose first `failures` accepts fail, as when the process is out of descriptors.
struct Flaky {
    inner: TcpListener,
    failures: usize,
}

impl Accept for Flaky {
    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err(io::Error::other("too many open files"));
        }
        self.inner.accept().await
    }
}

/// A service that says when a request arrived and answers once `release` is notified.
fn held(
    arrived: mpsc::UnboundedSender<()>,
    release: Arc<Notify>,
) -> impl Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future + Send,
> + Clone {
    service_fn(move |_req: Request<Incoming>| {
        let arrived = arrived.clone();
        let release = release.clone();
        async move {
            let _ = arrived.send(());
            release.notified().await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
        }
    })
}

fn options(drain: Drain) -> Options {
    Options::new("test", auto::Builder::new(TokioExecutor::new()), drain)
}

async fn bound() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Sends one request and reads until the server closes the connection.
async fn request(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_accept_error_backs_off_and_the_loop_goes_on() {
    let (inner, addr) = bound().await;
    let flaky = Flaky { inner, failures: 2 };
    let (arrived, _seen) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    release.notify_one();
    let (stop, stopped) = oneshot::channel::<()>();
    let backoff = Duration::from_millis(100);
    let started = Instant::now();
    let opts = options(Drain::within(Duration::from_secs(5))).backoff(backoff);
    let server = tokio::spawn(serve(
        flaky,
        held(arrived, release),
        async move {
            let _ = stopped.await;
        },
        opts,
        Plain("test"),
    ));
    let answer = request(addr).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with("done"), "{answer:?}");
    assert!(
        started.elapsed() >= backoff * 2,
        "each failed accept backs off"
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops after shutdown")
        .unwrap();
}

#[tokio::test]
async fn a_drain_waits_for_open_requests_and_accepts_no_more() {
    let (listener, addr) = bound().await;
    let (arrived, mut seen) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let opts = options(Drain::within(Duration::from_secs(30)));
    let mut server = tokio::spawn(serve(
        listener,
        held(arrived, release.clone()),
        async move {
            let _ = stopped.await;
        },
        opts,
        Plain("test"),
    ));
    let client = tokio::spawn(request(addr));
    seen.recv().await.unwrap();
    let _ = stop.send(());
    // Stopped accepting: the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::task::yield_now().await;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut server)
            .await
            .is_err(),
        "the drain waits for the open request"
    );
    release.notify_one();
    let answer = client.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the drain ends once the request is answered")
        .unwrap();
}

#[tokio::test]
async fn a_drain_gives_up_at_its_deadline() {
    let (listener, addr) = bound().await;
    let (arrived, mut seen) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let deadline = Duration::from_millis(300);
    let server = tokio::spawn(serve(
        listener,
        held(arrived, Arc::new(Notify::new())),
        async move {
            let _ = stopped.await;
        },
        options(Drain::within_at_shutdown(move || deadline)),
        Plain("test"),
    ));
    let _client = tokio::spawn(request(addr));
    seen.recv().await.unwrap();
    let started = Instant::now();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the drain ends at its deadline")
        .unwrap();
    assert!(started.elapsed() >= deadline);
}

#[tokio::test]
async fn an_abort_closes_open_connections_at_once() {
    let (listener, addr) = bound().await;
    let (arrived, mut seen) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        held(arrived, Arc::new(Notify::new())),
        async move {
            let _ = stopped.await;
        },
        options(Drain::Abort),
        Plain("test"),
    ));
    let client = tokio::spawn(request(addr));
    seen.recv().await.unwrap();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("an abort does not wait for the request")
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), client)
        .await
        .expect("the client's connection is closed")
        .unwrap();
    assert_eq!(answer, "", "closed without an answer");
}
