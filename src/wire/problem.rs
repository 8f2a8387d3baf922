//! Error answers: `application/problem+json` (RFC 9457). [`plain`] answers through hyper;
//! [`raw`] writes the same document as a whole HTTP/1.1 response onto a socket hyper does not
//! serve. A write's answer adds its transaction and each node's part (`crate::answer`), typed
//! by the caller: this module knows nothing of transactions.

use super::body::ProxyBody;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

/// A problem document; `S` is a transaction's state and `N` a node's report, when the problem
/// is about a transaction (`()` otherwise, never serialized).
#[derive(Debug, Serialize)]
pub(crate) struct Problem<'a, S = (), N = ()> {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'a str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<S>,
    /// Whether the client may simply send the same request again.
    pub retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocking_transaction: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub nodes: &'a [N],
    /// The W3C trace id of the write, to find its spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
}

impl Problem<'static> {
    /// A problem that is not about a transaction: its type is `urn:dtc:problem:{kind}`, its
    /// title the status's reason, and it is retryable for 408, 429, 502, 503 and 504.
    pub(crate) fn plain(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:dtc:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            detail: detail.into(),
            transaction: None,
            state: None,
            retryable: matches!(status.as_u16(), 408 | 429 | 502..=504),
            blocking_transaction: None,
            trace_id: None,
            nodes: &[],
        }
    }
}

/// A problem answer that is not about a transaction (413, 408, 503 no node, ...).
pub(crate) fn plain(
    status: StatusCode,
    kind: &str,
    detail: impl Into<String>,
) -> Response<ProxyBody> {
    respond(status, &Problem::plain(status, kind, detail))
}

/// The answer carrying `p`, with `status`.
pub(crate) fn respond<S: Serialize, N: Serialize>(
    status: StatusCode,
    p: &Problem<'_, S, N>,
) -> Response<ProxyBody> {
    let body = serde_json::to_vec(p).unwrap_or_default();
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

/// [`plain`]'s answer as the bytes of an HTTP/1.1 response that closes the connection, with
/// `Retry-After: retry_after` seconds if given: for a client turned away before hyper serves it,
/// or after hyper gave up on it.
pub(crate) fn raw(
    status: StatusCode,
    kind: &str,
    detail: &str,
    retry_after: Option<u64>,
) -> Vec<u8> {
    let p = Problem::plain(status, kind, detail);
    let body = serde_json::to_vec(&p).unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n",
        status.as_str(),
        p.title,
        body.len()
    );
    if let Some(secs) = retry_after {
        head.push_str(&format!("retry-after: {secs}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `proxy::server` wrote by hand before they went through [`Problem`].
    #[test]
    fn raw_answers_are_the_handwritten_ones() {
        let body = r#"{"type":"urn:dtc:problem:too-many-connections","title":"Service Unavailable","status":503,"detail":"dtc is serving limits.max_connections connections; retry later","retryable":true}"#;
        let expected = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let got = raw(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-connections",
            "dtc is serving limits.max_connections connections; retry later",
            Some(1),
        );
        assert_eq!(String::from_utf8(got).unwrap(), expected);

        let body = r#"{"type":"urn:dtc:problem:header-timeout","title":"Request Timeout","status":408,"detail":"the request headers did not arrive in time","retryable":true}"#;
        let expected = format!(
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let got = raw(
            StatusCode::REQUEST_TIMEOUT,
            "header-timeout",
            "the request headers did not arrive in time",
            None,
        );
        assert_eq!(String::from_utf8(got).unwrap(), expected);
    }

    #[test]
    fn a_plain_problem_has_no_transaction_fields() {
        let resp = plain(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", "too big");
        assert_eq!(resp.status(), 413);
        assert_eq!(
            resp.headers()[CONTENT_TYPE],
            HeaderValue::from_static("application/problem+json")
        );
        let p = serde_json::to_string(&Problem::plain(StatusCode::BAD_GATEWAY, "x", "y")).unwrap();
        assert_eq!(
            p,
            r#"{"type":"urn:dtc:problem:x","title":"Bad Gateway","status":502,"detail":"y","retryable":true}"#
        );
    }
}
