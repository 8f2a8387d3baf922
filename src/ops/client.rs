//! The admin API as the operator commands call it: one request at a time over dtc's own node
//! connection pool ([`crate::upstream::pool`]), so the commands speak HTTP with the same hyper
//! client stack the proxy uses for its nodes.

use super::OpsError;
use crate::upstream::pool::Pool;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait for the TCP connection to the admin listener.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request may take in all (a retry re-drives a write on every node).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of one admin listener.
pub(crate) struct AdminClient {
    /// The URL as given, for messages.
    base: String,
    /// The path prefix of the URL (empty, or `/something` without a trailing slash).
    prefix: String,
    token: Option<String>,
    pool: Arc<Pool>,
}

/// A parsed `--admin` URL: `http://host:port[/prefix]`.
fn parse_base(url: &str) -> Result<(String, String), OpsError> {
    let bad = |why: &str| OpsError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        bad("write it as http://HOST:PORT (the admin listener speaks plain HTTP)")
    })?;
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("it names no host: write http://HOST:PORT"));
    }
    let authority = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let prefix = prefix.trim_end_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    };
    Ok((authority, prefix))
}

/// `text` as one path segment: everything but unreserved characters percent-encoded.
pub(super) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl AdminClient {
    /// A client of the admin listener at `url`, sending `token` as a bearer token if given.
    pub(crate) fn new(url: &str, token: Option<String>) -> Result<AdminClient, OpsError> {
        let (authority, prefix) = parse_base(url)?;
        Ok(AdminClient {
            base: url.trim_end_matches('/').to_string(),
            prefix,
            token: token.filter(|t| !t.is_empty()),
            pool: Pool::new(&authority, CONNECT_TIMEOUT, 1, Duration::from_secs(5)),
        })
    }

    /// `GET path`, the answer parsed as `T`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, OpsError> {
        let value = self.call(Method::GET, path, None).await?;
        serde_json::from_value(value).map_err(|e| OpsError::Protocol {
            url: self.url(path),
            why: format!("the answer is not what this dtc expects ({e}); is it the same version?"),
        })
    }

    /// `POST path` with a JSON body, the answer as JSON.
    pub(crate) async fn post(&self, path: &str, body: Option<Value>) -> Result<Value, OpsError> {
        self.call(Method::POST, path, body).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, OpsError> {
        let url = self.url(path);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(ACCEPT, "application/json")
            .header("user-agent", concat!("dtc-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let payload = match body {
            Some(v) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(payload)).map_err(|e| OpsError::BadUrl {
            url: url.clone(),
            why: e.to_string(),
        })?;
        let unreachable = |why: String| OpsError::Unreachable {
            url: self.base.clone(),
            why,
        };
        let exchange = async {
            let resp = self.pool.send(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("the answer broke off: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no answer within {}",
                    crate::config::duration::Human(REQUEST_TIMEOUT)
                ))
            })?
            .map_err(unreachable)?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| OpsError::Protocol {
            url: url.clone(),
            why: format!(
                "answered {status} with a body that is not JSON: is this dtc's admin listener?"
            ),
        })?;
        if status.is_success() {
            return Ok(value);
        }
        let detail = value["detail"].as_str().unwrap_or("").to_string();
        Err(match status {
            StatusCode::UNAUTHORIZED => OpsError::Token {
                url: self.base.clone(),
                wrong: self.token.is_some(),
            },
            StatusCode::NOT_FOUND
                if value["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("unknown-transaction")) =>
            {
                OpsError::UnknownTxn { detail }
            }
            _ => OpsError::Refused {
                status: status.as_u16(),
                detail,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_urls_parse_to_an_authority_and_a_prefix() {
        let p = |u| parse_base(u).map_err(|e| e.to_string());
        assert_eq!(
            p("http://127.0.0.1:9901"),
            Ok(("127.0.0.1:9901".into(), String::new()))
        );
        assert_eq!(p("http://h:1/admin/"), Ok(("h:1".into(), "/admin".into())));
        assert_eq!(p("http://h"), Ok(("h:80".into(), String::new())));
        assert!(p("https://h:1").unwrap_err().contains("plain HTTP"));
        assert!(
            p("127.0.0.1:9901")
                .unwrap_err()
                .contains("http://HOST:PORT")
        );
        assert!(p("http:///x").unwrap_err().contains("no host"));
    }

    #[test]
    fn ids_are_encoded_as_one_segment() {
        assert_eq!(segment("01ab-c_d"), "01ab-c_d");
        assert_eq!(segment("a/../b c"), "a%2F..%2Fb%20c");
    }
}
