//! What a test sees of an HTTP answer, read by name: `a.status()`, `a.state()`, `a.txn()`,
//! `a.header(..)`, `a.json()`, `a.problem()`.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

/// The `content-type` of dtc's error answers (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One whole answer: status, headers, body.
#[derive(Debug, Clone)]
pub struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Answer {
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The transaction's state as dtc reports it (`x-dtc-state`); `""` when absent.
    pub fn state(&self) -> &str {
        self.header("x-dtc-state")
    }

    /// The transaction id (`x-dtc-transaction-id`); `""` when absent.
    pub fn txn(&self) -> &str {
        self.header("x-dtc-transaction-id")
    }

    /// A header's value as text; `""` when absent (or not text).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; fails the test when it is not.
    pub fn json(&self) -> serde_json::Value {
        super::json(&self.body)
    }

    /// The problem document (RFC 9457): fails the test unless the answer is
    /// `application/problem+json`.
    pub fn problem(&self) -> serde_json::Value {
        assert_eq!(
            self.header(header::CONTENT_TYPE.as_str()),
            PROBLEM_JSON,
            "not a problem answer: {self:?}"
        );
        self.json()
    }
}
