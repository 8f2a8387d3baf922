//! The write's log line carries the trace id even with no collector configured.
//!
//! A test binary of its own: it captures the log with a subscriber set as the thread's default,
//! and `tracing` caches each callsite's interest process-wide when the callsite is first hit. A
//! sibling test hitting `write finished` first, on a thread with no subscriber, could make it
//! "never" for this one too (it failed 1 run in 4 beside the other tracing tests).

mod support;

use std::sync::{Arc, Mutex};
use support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(flags: &str) -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-{flags}")
}

#[tokio::test]
async fn without_a_collector_the_trace_id_is_still_in_the_answer_and_the_log_line() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (nodes, dtc) = cluster().await;
    nodes.c().reject_next(1, 409);
    let tp = traceparent("01");
    let answer = send(
        http::Method::POST,
        &dtc.at("/v1/group/"),
        Some(&group("g3")),
        &[("traceparent", tp.as_str())],
    )
    .await;
    assert_eq!(answer.problem()["trace_id"], TRACE);
    let log = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("write finished"))
        .expect("the write's log line");
    assert!(line.contains(&format!("trace_id={TRACE}")), "{line}");
}
