//! Header rules shared by the read and write paths (RFC 9110 §7.6.1 hop-by-hop headers).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the message: never forwarded. Parsed names, so
/// checking them costs no parsing per request.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// The transaction id header on every answer to a write.
pub(crate) const TXN_ID: HeaderName = HeaderName::from_static("x-dtc-transaction-id");
/// The transaction state header on every answer to a write.
pub(crate) const TXN_STATE: HeaderName = HeaderName::from_static("x-dtc-state");
/// The client's key of a write (dtc keeps it, see `saga::idem`), and the key of each
/// transaction sent to every node with it.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// On an answer given again for a client's repeated `Idempotency-Key` (as Stripe names it).
pub(crate) const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The common message has none of them (`Connection` is one): one pass over its few
    // headers instead of a lookup per hop-by-hop name.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The client's request headers as a node should get them: hop-by-hop and `Host` removed (the
/// node's connection pool, `upstream::pool`, sets the node's own `Host`).
pub(crate) fn for_node(mut headers: HeaderMap) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    // dtc has read the whole body already; the node need not be asked to wait for it.
    headers.remove(header::EXPECT);
    headers
}

/// The client's end-to-end headers an undo carries (authorization and the like): those a node
/// gets, less the body's and the transaction's own.
pub(crate) fn for_undo(client: &HeaderMap) -> HeaderMap {
    let mut headers = for_node(client.clone());
    for h in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        IDEMPOTENCY_KEY,
        TXN_ID,
    ] {
        headers.remove(h);
    }
    headers
}

/// A header value from a string the proxy made (ids, numbers); never fails for those.
pub(crate) fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert("host", HeaderValue::from_static("proxy"));
        let h = for_node(h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
