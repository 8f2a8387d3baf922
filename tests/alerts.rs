//! Alert webhook delivery: retried until the webhook takes it, and never a wait for the sender.

mod support;

use bytes::Bytes;
use dtc::admin::{AlertEvent, AlertKind, AlertOptions, Alerter};
use dtc::retry::Backoff;
use dtc::saga::TxnState;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::wait_until;
use tokio::net::TcpListener;

/// What a webhook received: each request's body and the status it answered.
#[derive(Default)]
struct Received {
    answered: Mutex<Vec<(u16, Bytes)>>,
}

/// A webhook that answers 500 to its first `failures` requests and 204 after.
async fn flaky_webhook(failures: usize) -> (String, Arc<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let received = Arc::new(Received::default());
    let seen = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let seen = seen.clone();
                async move {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let mut answered = seen.answered.lock().unwrap();
                    let status = if answered.len() < failures { 500 } else { 204 };
                    answered.push((status, body));
                    let mut resp = Response::new(Full::new(Bytes::new()));
                    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::spawn(conn);
        }
    });
    (url, received)
}

/// A webhook that accepts connections and never answers; counts the connections.
async fn hanging_webhook() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (url, accepted)
}

fn options(capacity: usize, timeout: Duration) -> AlertOptions {
    AlertOptions {
        capacity,
        backoff: Backoff {
            attempts: 3,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            multiplier: 2.0,
            jitter: 0.0,
            deadline: Duration::from_secs(5),
        },
        timeout,
    }
}

fn event(txn: &str) -> AlertEvent {
    AlertEvent {
        kind: AlertKind::TransactionFailed,
        txn: txn.into(),
        state: TxnState::Failed,
        key: "group/g1".into(),
        route: Some("POST /v1/group/".into()),
        reason: Some("undo failed on node-2".into()),
        nodes: Vec::new(),
        at_ms: 1_700_000_000_000,
    }
}

#[tokio::test]
async fn a_failed_delivery_is_retried_until_the_webhook_takes_it() {
    let (url, received) = flaky_webhook(1).await;
    let alerter = Alerter::with_options(Some(url), options(16, Duration::from_secs(2)));
    alerter.send(event("t1"));
    let delivered = || {
        received
            .answered
            .lock()
            .unwrap()
            .iter()
            .any(|(s, _)| *s == 204)
    };
    wait_until("the webhook accepts the event", delivered).await;
    let answered = received.answered.lock().unwrap().clone();
    let statuses: Vec<u16> = answered.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, vec![500, 204]);
    let got: AlertEvent = serde_json::from_slice(&answered[1].1).expect("an AlertEvent");
    assert_eq!(got, event("t1"));
    assert_eq!(alerter.dropped(), 0);
}

#[tokio::test]
async fn send_never_waits_for_a_hanging_webhook() {
    let (url, accepted) = hanging_webhook().await;
    let alerter = Alerter::with_options(Some(url), options(2, Duration::from_secs(60)));
    alerter.send(event("t1"));
    wait_until("the first delivery is in flight", || {
        accepted.load(Ordering::SeqCst) == 1
    })
    .await;
    // The first event is out of the queue and stuck in delivery: two more fit, three do not.
    for i in 2..=6 {
        alerter.send(event(&format!("t{i}")));
    }
    assert_eq!(alerter.dropped(), 3);
}

#[tokio::test]
async fn without_a_webhook_events_are_only_logged() {
    let alerter = Alerter::new(None);
    alerter.send(event("t1"));
    let mut converged = event("t1");
    converged.kind = AlertKind::TransactionConverged;
    alerter.send(converged);
    assert_eq!(alerter.dropped(), 0);
}
