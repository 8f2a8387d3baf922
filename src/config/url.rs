//! Node and webhook URLs: `http://host:port[/prefix]`, and for nodes also `https://` (TLS,
//! [`super::tls`]). A port must fit 1 to 65535 and a URL cannot carry `user:password@` (dtc
//! would send it to the node in `Host` and show it in `/nodes`); messages about a URL never
//! repeat its password.

use http::Uri;

/// What is wrong with a node or webhook URL. `url` is shown with any password replaced
/// ([`redact_url`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("url `{url}` has no scheme: write `http://{url}`")]
    NoScheme { url: String },
    #[error("url `{url}` is not a URL: {why}")]
    NotUrl { url: String, why: String },
    #[error("url `{url}`: scheme `{scheme}` is not supported; use {allowed}")]
    Scheme {
        url: String,
        scheme: String,
        allowed: &'static str,
    },
    #[error("url `{url}` has no host")]
    NoHost { url: String },
    #[error(
        "url `{url}` carries credentials (`user:password@`): dtc would send them to the node in `Host` and show them in /nodes; remove them (the client's own Authorization header is forwarded)"
    )]
    Credentials { url: String },
    #[error("url `{url}`: a node URL cannot have a query")]
    Query { url: String },
    #[error("url `{url}`: port {port} is out of range: use 1 to 65535")]
    Port { url: String, port: String },
}

/// Parses an `http://host:port[/prefix]` URL into (url, authority, base path). Error messages
/// never repeat a password the URL may carry.
pub fn parse_http_url(url: &str) -> Result<(Uri, String, String), UrlError> {
    parse_url(url, false)
}

/// Parses a node URL, `http://` or `https://host:port[/prefix]`, into (url, authority with its
/// port, base path). Error messages never repeat a password the URL may carry.
pub fn parse_node_url(url: &str) -> Result<(Uri, String, String), UrlError> {
    parse_url(url, true)
}

fn parse_url(url: &str, https: bool) -> Result<(Uri, String, String), UrlError> {
    let shown = redact_url(url);
    if !url.contains("://") {
        return Err(UrlError::NoScheme { url: shown });
    }
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| UrlError::NotUrl {
            url: shown.clone(),
            why: e.to_string(),
        })?;
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") if https => 443,
        Some(other) => {
            let allowed = if https { "http or https" } else { "http" };
            return Err(UrlError::Scheme {
                url: shown,
                scheme: other.to_string(),
                allowed,
            });
        }
        None => return Err(UrlError::NoScheme { url: shown }),
    };
    let Some(auth) = uri.authority() else {
        return Err(UrlError::NoHost { url: shown });
    };
    if auth.as_str().contains('@') {
        return Err(UrlError::Credentials { url: shown });
    }
    if auth.host().is_empty() {
        return Err(UrlError::NoHost { url: shown });
    }
    if uri.query().is_some() {
        return Err(UrlError::Query { url: shown });
    }
    // `http` reads a port that does not fit 16 bits as no port at all: look at the text.
    let port_text = match auth.as_str().rsplit_once(':') {
        Some((_, p)) if !p.contains(']') => Some(p),
        _ => None,
    };
    let authority = match port_text {
        None | Some("") => format!("{}:{default_port}", auth.host()),
        Some(p) if p.parse::<u16>().is_ok_and(|n| n > 0) => auth.as_str().to_string(),
        Some(p) => {
            return Err(UrlError::Port {
                url: shown,
                port: p.to_string(),
            });
        }
    };
    let base_path = uri.path().trim_end_matches('/').to_string();
    Ok((uri, authority, base_path))
}

/// `url` with any `user:password@` replaced by `***@`, fit for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}
