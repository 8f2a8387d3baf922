//! Routing of admin requests: which endpoint a path names, which methods it takes, the bearer
//! token; every error as problem+json.

use super::body::json;
use super::{AdminState, actions, page, status, verify};
use crate::wire::{ProxyBody, problem};
use http::header::{ALLOW, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

/// An admin endpoint, with the transaction id for those that take one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    Page,
    Status,
    Healthz,
    Readyz,
    Metrics,
    Nodes,
    Config,
    TxnList,
    Txn(String),
    TxnRetry(String),
    TxnResolve(String),
    Verify,
    Dtc,
}

impl Endpoint {
    /// The endpoint `path` names, trailing slash or not.
    pub(super) fn of(path: &str) -> Option<Endpoint> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        Some(match segments.as_slice() {
            [""] => Endpoint::Page,
            ["status"] => Endpoint::Status,
            ["healthz"] => Endpoint::Healthz,
            ["readyz"] => Endpoint::Readyz,
            ["metrics"] => Endpoint::Metrics,
            ["nodes"] => Endpoint::Nodes,
            ["config"] => Endpoint::Config,
            ["transactions"] => Endpoint::TxnList,
            ["transactions", id] if !id.is_empty() => Endpoint::Txn(id.to_string()),
            ["transactions", id, "retry"] if !id.is_empty() => Endpoint::TxnRetry(id.to_string()),
            ["transactions", id, "resolve"] if !id.is_empty() => {
                Endpoint::TxnResolve(id.to_string())
            }
            ["verify"] => Endpoint::Verify,
            ["dtc"] => Endpoint::Dtc,
            _ => return None,
        })
    }

    /// Whether it answers without the bearer token (probes must not need a secret).
    fn is_open(&self) -> bool {
        matches!(self, Endpoint::Healthz | Endpoint::Readyz)
    }

    /// Whether it changes something (POST), or only reads (GET and HEAD).
    fn is_action(&self) -> bool {
        matches!(
            self,
            Endpoint::TxnRetry(_) | Endpoint::TxnResolve(_) | Endpoint::Verify | Endpoint::Dtc
        )
    }
}

/// Answers one admin request. Never panics on input: every failure is a problem answer.
pub(super) async fn handle(state: &AdminState, req: Request<Incoming>) -> Response<ProxyBody> {
    let endpoint = Endpoint::of(req.uri().path());
    if !endpoint.as_ref().is_some_and(Endpoint::is_open) {
        match check_token(state, &req) {
            Token::Good => {}
            // A browser gets a page with the token field, not a JSON problem.
            bad if endpoint == Some(Endpoint::Page) && bad != Token::Unavailable => {
                return page::locked(bad == Token::Wrong);
            }
            bad => return denied(bad),
        }
    }
    let Some(endpoint) = endpoint else {
        return problem::plain(
            StatusCode::NOT_FOUND,
            "not-found",
            format!(
                "no admin endpoint at {}; see GET / (the status page), /status, /healthz, /readyz, /metrics, /nodes, /config, /transactions, POST /verify",
                req.uri().path()
            ),
        );
    };
    if let Some(refused) = check_method(&endpoint, req.method()) {
        return refused;
    }
    match endpoint {
        Endpoint::Page => page::page(state, req.uri().query().unwrap_or("")),
        Endpoint::Status => json(StatusCode::OK, &super::StatusReport::of(state)),
        Endpoint::Healthz => json(StatusCode::OK, &serde_json::json!({"status": "alive"})),
        Endpoint::Readyz => status::readyz(state),
        Endpoint::Metrics => status::metrics(state),
        Endpoint::Nodes => status::nodes(state),
        Endpoint::Config => status::config(state),
        Endpoint::TxnList => actions::list(state, req.uri().query().unwrap_or("")),
        Endpoint::Txn(id) => actions::get(state, &id),
        Endpoint::TxnRetry(id) => actions::retry(state, &id).await,
        Endpoint::TxnResolve(id) => actions::resolve(state, &id, req).await,
        Endpoint::Verify => verify::verify(state, req).await,
        Endpoint::Dtc => actions::dtc(state, req).await,
    }
}

fn check_method(endpoint: &Endpoint, method: &Method) -> Option<Response<ProxyBody>> {
    let (ok, allow) = if endpoint.is_action() {
        (method == Method::POST, "POST")
    } else {
        (method == Method::GET || method == Method::HEAD, "GET, HEAD")
    };
    if ok {
        return None;
    }
    let mut resp = problem::plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{method} is not allowed here; use {allow}"),
    );
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    Some(resp)
}

/// What a request carries of the bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// No token is configured, or the request carries it.
    Good,
    Missing,
    Wrong,
    /// `listen.admin_token_file` cannot be read: nobody is admitted.
    Unavailable,
}

fn check_token(state: &AdminState, req: &Request<Incoming>) -> Token {
    let rt = state.current.load();
    let expected = match crate::config::secret::admin_token(&rt.settings.config.listen) {
        Ok(Some(token)) => token,
        Ok(None) => return Token::Good,
        Err(e) => {
            // Fail closed: a token that cannot be read admits nobody.
            tracing::error!(error = %e, "admin request refused: the admin token is unavailable");
            return Token::Unavailable;
        }
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()));
    match given {
        Some(g) if same_secret(g, expected.as_bytes()) => Token::Good,
        Some(_) => Token::Wrong,
        None => Token::Missing,
    }
}

/// The 401 for a request without the right token.
fn denied(token: Token) -> Response<ProxyBody> {
    if token == Token::Unavailable {
        return problem::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "admin-token-unavailable",
            "the admin token cannot be read (listen.admin_token_file); see dtc's log",
        );
    }
    let detail = if token == Token::Wrong {
        "the bearer token is wrong"
    } else {
        "this endpoint needs `Authorization: Bearer <listen.admin_token>`"
    };
    let mut resp = problem::plain(StatusCode::UNAUTHORIZED, "unauthorized", detail);
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dtc-admin\""),
    );
    resp
}

/// The credentials of a `Bearer` authorization; the scheme is case-insensitive (RFC 9110).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    let token = rest.strip_prefix(b" ")?.trim_ascii_start();
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

/// Compares two secrets in time that depends only on their lengths, not on where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_endpoints() {
        assert_eq!(Endpoint::of("/healthz"), Some(Endpoint::Healthz));
        assert_eq!(Endpoint::of("/dtc/"), Some(Endpoint::Dtc));
        assert_eq!(Endpoint::of("/verify"), Some(Endpoint::Verify));
        assert!(Endpoint::Verify.is_action(), "POST only: it may repair");
        assert_eq!(Endpoint::of("/transactions/"), Some(Endpoint::TxnList));
        assert_eq!(
            Endpoint::of("/transactions/abc/retry"),
            Some(Endpoint::TxnRetry("abc".into()))
        );
        assert_eq!(Endpoint::of("/transactions//retry"), None);
        assert_eq!(Endpoint::of("/"), Some(Endpoint::Page));
        assert_eq!(Endpoint::of("/status"), Some(Endpoint::Status));
        assert_eq!(Endpoint::of("/nope"), None);
        assert_eq!(Endpoint::of("/transactions/a/b"), None);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer(b"Bearer s3cret"), Some(&b"s3cret"[..]));
        assert_eq!(bearer(b"bearer s3cret"), Some(&b"s3cret"[..]));
        assert_eq!(bearer(b"BEARER  s3cret"), Some(&b"s3cret"[..]));
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Basic s3cret"), None);
        assert_eq!(bearer(b"Bearers3cret"), None);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3cret!", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }
}
