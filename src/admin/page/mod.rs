//! The status page at `GET /`: one self-contained HTML document (no external assets), readable
//! without JavaScript, refreshing itself every [`REFRESH_SECS`] seconds. A little vanilla JS
//! (`page.js`) adds the `retry` and `resolve` buttons, which call the transactions API, and the
//! bearer token field for a dtc with `listen.admin_token` (the token is kept in the tab's
//! `sessionStorage` and sent as `Authorization: Bearer`).
//!
//! Everything shown is escaped ([`html::escape`]): paths, keys and reasons come from clients.

mod html;

use super::AdminState;
use super::report::StatusReport;
use crate::wire::ProxyBody;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

/// Transactions per page of the list.
pub(super) const PAGE_SIZE: usize = 50;
/// Seconds between refreshes (`<meta http-equiv=refresh>` without JS, `fetch` with it).
pub(super) const REFRESH_SECS: u32 = 5;

/// `GET /?page=N`: the page, showing the `N`th [`PAGE_SIZE`] of the listed transactions.
pub(super) fn page(state: &AdminState, query: &str) -> Response<ProxyBody> {
    let report = StatusReport::of(state);
    let pages = report.attention.len().div_ceil(PAGE_SIZE).max(1);
    let wanted = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "page")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(1);
    let current = wanted.clamp(1, pages);
    let key = query_value(query, "key").filter(|k| !k.is_empty());
    let found = key.as_deref().map(|k| state.txns.by_key(k, PAGE_SIZE));
    let search = key.as_deref().zip(found.as_deref());
    let nonce = nonce();
    html_answer(
        StatusCode::OK,
        html::document(&report, current, pages, search, &nonce),
        &nonce,
    )
}

/// The value of `name` in a query string, percent-decoded (`+` is a space, as forms send it).
pub(super) fn query_value(query: &str, name: &str) -> Option<String> {
    let raw = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)?
        .1;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The page of a dtc with a token, to a browser that did not send it: only the token field, so
/// that nothing a client sent is shown before the token is given.
pub(super) fn locked(wrong_token: bool) -> Response<ProxyBody> {
    let nonce = nonce();
    html_answer(
        StatusCode::UNAUTHORIZED,
        html::locked(wrong_token, &nonce),
        &nonce,
    )
}

/// A fresh value for the `nonce` of the page's one style and one script: nothing else inline
/// may run, even if an escaping mistake let markup through.
fn nonce() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn html_answer(status: StatusCode, body: String, nonce: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // No external anything: the page's own style and script only, no framing by other sites;
    // forms (the search by key) submit to the page itself only.
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(http::header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}
