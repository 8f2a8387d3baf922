//! One trace across a write's fan-out: the caller's `traceparent` continued, a span per node
//! attempt, read-back and undo with the right parents, exported over OTLP/HTTP to a receiver
//! that decodes them with the official protobuf definitions (`opentelemetry-proto`), and a
//! dead collector counted, never waited for.

mod support;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// An OTLP/HTTP receiver: decodes every `POST /v1/traces` and keeps its spans.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    service_names: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let service_names = Arc::new(Mutex::new(Vec::new()));
        let (kept, names) = (spans.clone(), service_names.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (kept, names) = (kept.clone(), names.clone());
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (kept, names) = (kept.clone(), names.clone());
                    async move {
                        assert_eq!(req.uri().path(), "/v1/traces");
                        assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let export =
                            ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                        for rs in export.resource_spans {
                            let resource = rs.resource.unwrap_or_default();
                            for kv in resource.attributes {
                                if kv.key == "service.name" {
                                    names.lock().unwrap().push(text(&kv.value));
                                }
                            }
                            for ss in rs.scope_spans {
                                kept.lock().unwrap().extend(ss.spans);
                            }
                        }
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        });
        Receiver {
            url,
            spans,
            service_names,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until the spans of trace `trace` include a server span (the write's), which
    /// ends last, and returns them.
    async fn trace(&self, trace: &str) -> Vec<Span> {
        let wanted = hex(trace);
        let mine = || -> Vec<Span> {
            self.spans()
                .into_iter()
                .filter(|s| s.trace_id == wanted)
                .collect()
        };
        eventually(
            "the write's spans reach the collector",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                let done = mine().iter().any(|s| s.kind == 2);
                async move { done }
            },
        )
        .await;
        mine()
    }
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr(span: &Span, key: &str) -> String {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(&kv.value))
        .unwrap_or_default()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(flags: &str) -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-{flags}")
}

/// The `traceparent` the node got with its write (method `method`).
fn node_traceparents(node: &dtc::node::RefNode, method: http::Method) -> Vec<String> {
    writes(node, method)
        .iter()
        .filter_map(|r| r.headers.get("traceparent"))
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_write_continues_the_callers_trace_with_a_span_per_node_attempt() {
    let receiver = Receiver::start().await;
    let (nodes, dtc) = cluster_with(|c| {
        c.tracing.otlp = Some(receiver.url.clone());
        c.tracing.service_name = "dtc-under-test".into();
    })
    .await;
    nodes.b().fail_next(1);
    let tp = traceparent("01");
    let answer = send(
        http::Method::POST,
        &dtc.at("/v1/group/"),
        Some(&group("g1")),
        &[("traceparent", tp.as_str()), ("tracestate", "vendor=x")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::CREATED, "{}", answer.text());
    let spans = receiver.trace(TRACE).await;
    let write: Vec<&Span> = spans.iter().filter(|s| s.kind == 2).collect();
    assert_eq!(write.len(), 1, "one server span for the write");
    let write = write[0];
    assert_eq!(
        to_hex(&write.parent_span_id),
        CALLER_SPAN,
        "child of the caller's span"
    );
    assert_eq!(write.trace_state, "vendor=x");
    let txn = attr(write, "dtc.txn");
    assert!(!txn.is_empty(), "the transaction id is an attribute");
    assert_eq!(attr(write, "dtc.state"), "succeeded");
    let attempts: Vec<&Span> = spans.iter().filter(|s| s.kind == 3).collect();
    // a and c once, b twice (a 500, then the write).
    assert_eq!(attempts.len(), 4, "{attempts:#?}");
    for a in &attempts {
        assert_eq!(
            a.parent_span_id, write.span_id,
            "attempts are children of the write"
        );
        assert_eq!(attr(a, "dtc.txn"), txn);
    }
    let on_b: Vec<(String, String)> = attempts
        .iter()
        .filter(|a| attr(a, "dtc.node") == "b")
        .map(|a| (attr(a, "dtc.attempt"), attr(a, "http.response.status_code")))
        .collect();
    assert_eq!(on_b.len(), 2);
    assert!(
        on_b.contains(&("1".into(), "500".into())) && on_b.contains(&("2".into(), "201".into())),
        "{on_b:?}"
    );
    // Each node request carried its own span's traceparent.
    for node in &nodes {
        let mine: Vec<String> = attempts
            .iter()
            .filter(|a| attr(a, "dtc.node") == node.name())
            .map(|a| format!("00-{TRACE}-{}-01", to_hex(&a.span_id)))
            .collect();
        let mut got = node_traceparents(node, http::Method::POST);
        got.sort();
        let mut want = mine.clone();
        want.sort();
        assert_eq!(got, want, "node {}", node.name());
    }
    assert!(
        receiver
            .service_names
            .lock()
            .unwrap()
            .iter()
            .all(|n| n == "dtc-under-test")
    );
}

#[tokio::test]
async fn read_back_and_undo_are_spans_of_their_own_under_the_write() {
    let receiver = Receiver::start().await;
    let (nodes, dtc) = cluster_with(|c| c.tracing.otlp = Some(receiver.url.clone())).await;
    // b refuses, c applies but answers 500 to all four attempts: c's state is read back, then a and c
    // are undone.
    nodes.b().reject_next(1, 409);
    nodes.c().apply_then_fail_next(4);
    let tp = traceparent("01");
    let answer = send(
        http::Method::POST,
        &dtc.at("/v1/group/"),
        Some(&group("g2")),
        &[("traceparent", tp.as_str())],
    )
    .await;
    let problem = answer.problem();
    assert_eq!(problem["state"], "rolled_back", "{problem}");
    assert_eq!(
        problem["trace_id"], TRACE,
        "the problem document names the trace"
    );
    let spans = receiver.trace(TRACE).await;
    let write = spans
        .iter()
        .find(|s| s.kind == 2)
        .expect("the write's span");
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let read_backs = named("dtc.read_back");
    assert_eq!(read_backs.len(), 1, "{spans:#?}");
    assert_eq!(attr(read_backs[0], "dtc.node"), "c");
    let undos = named("dtc.undo");
    let mut undone: Vec<String> = undos.iter().map(|u| attr(u, "dtc.node")).collect();
    undone.sort();
    assert_eq!(undone, ["a", "c"]);
    for step in read_backs.iter().chain(&undos) {
        assert_eq!(
            step.parent_span_id, write.span_id,
            "{} under the write",
            step.name
        );
        let below: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id == step.span_id)
            .collect();
        assert!(
            !below.is_empty(),
            "{}'s request attempts are its children",
            step.name
        );
        assert!(
            below
                .iter()
                .all(|s| s.kind == 3 && attr(s, "dtc.node") == attr(step, "dtc.node"))
        );
    }
    // The undo's request carried its attempt's traceparent (same trace).
    let undo_parents = node_traceparents(nodes.a(), http::Method::DELETE);
    assert_eq!(undo_parents.len(), 1);
    assert!(
        undo_parents[0].starts_with(&format!("00-{TRACE}-")),
        "{undo_parents:?}"
    );
    // The nodes' answers add up to the attempts traced under the write.
    let reported: u64 = problem["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["attempts"].as_u64().unwrap())
        .sum();
    let under_write = spans
        .iter()
        .filter(|s| s.kind == 3 && s.parent_span_id == write.span_id)
        .count();
    assert_eq!(under_write as u64, reported);
}

#[tokio::test]
async fn an_unsampled_caller_is_followed_and_without_a_caller_dtc_starts_the_trace() {
    let receiver = Receiver::start().await;
    let (nodes, dtc) = cluster_with(|c| c.tracing.otlp = Some(receiver.url.clone())).await;
    let tp = traceparent("00");
    let answer = send(
        http::Method::POST,
        &dtc.at("/v1/group/"),
        Some(&group("quiet")),
        &[("traceparent", tp.as_str())],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    // Not sampled: the nodes still get the trace, flagged unsampled, with a span id of dtc's.
    let got = node_traceparents(nodes.a(), http::Method::POST);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with(&format!("00-{TRACE}-")) && got[0].ends_with("-00"),
        "{got:?}"
    );
    assert!(!got[0].contains(CALLER_SPAN));
    // No caller: a trace of dtc's own, sampled by the ratio (1), named in a refused write.
    nodes.b().reject_next(1, 409);
    let answer = create_group(&dtc, "fresh").await;
    let trace = answer.problem()["trace_id"]
        .as_str()
        .expect("a trace id")
        .to_string();
    assert_eq!(trace.len(), 32);
    let spans = receiver.trace(&trace).await;
    assert!(
        spans
            .iter()
            .any(|s| s.kind == 2 && s.parent_span_id.is_empty()),
        "a root span"
    );
    assert!(
        receiver
            .spans()
            .iter()
            .all(|s| to_hex(&s.trace_id) != TRACE),
        "the unsampled trace was not exported"
    );
}

/// `dtc_trace_spans_total{result}` from the proxy's metrics.
fn spans_counted(dtc: &Dtc, result: &str) -> u64 {
    let text = dtc.app.admin.metrics.encode(&Default::default());
    let prefix = format!("dtc_trace_spans_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

#[tokio::test]
async fn a_dead_collector_costs_writes_nothing_and_its_spans_are_counted_as_dropped() {
    // Nothing listens there: every export fails.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let (_nodes, dtc) = cluster_with(|c| {
        c.tracing.otlp = Some(url);
        c.tracing.max_queue = 8;
    })
    .await;
    for i in 0..10 {
        let answer = create_group(&dtc, &format!("g{i}")).await;
        assert_eq!(answer.status(), StatusCode::CREATED);
    }
    // Ten writes made forty spans (a write and three attempts each); eight may wait for
    // export, the rest were refused at once.
    let dropped_at_once = spans_counted(&dtc, "dropped");
    assert!(dropped_at_once >= 32, "dropped {dropped_at_once}");
    // The queued ones fail to export and are counted too.
    eventually(
        "the failed export is counted",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let n = spans_counted(&dtc, "dropped");
            async move { n == 40 }
        },
    )
    .await;
    assert_eq!(spans_counted(&dtc, "exported"), 0);
}
