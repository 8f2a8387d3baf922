//! TLS to the shared store, set the way every PostgreSQL client sets it: libpq's parameters in
//! `cluster.database_url` (URL query or `key=value` form), so the URL a managed database hands
//! out works as it is.
//!
//! - `sslmode`: `disable`, `prefer` (the default: TLS when the server offers it, certificate not
//!   checked), `require` (TLS, certificate not checked), `verify-ca` (the certificate must chain
//!   to `sslrootcert`), `verify-full` (and name the host dtc connects to);
//! - `sslrootcert=FILE`: the CA certificates (PEM) the store's certificate must chain to; needed
//!   by `verify-ca` and `verify-full`;
//! - `sslcert=FILE`, `sslkey=FILE`: a client certificate and its key (PEM), for a server that
//!   asks for one.
//!
//! [`split`] takes these out of the URL (tokio-postgres knows only `disable`, `prefer` and
//! `require`) and returns what is left for it. Reading the files is the store's job, at start.

use std::path::PathBuf;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// As written in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the store's certificate is checked against `sslrootcert`.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// The mode tokio-postgres is told: it knows whether to use TLS, not how to check it.
    fn for_driver(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            _ => "require",
        }
    }
}

/// The TLS settings of a `database_url`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreTls {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// What is wrong with the TLS parameters of `cluster.database_url`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StoreUrlError {
    #[error("sslmode `{0}` is not one of disable, prefer, require, verify-ca, verify-full")]
    Mode(String),
    #[error(
        "sslmode={0} needs sslrootcert=FILE, the CA certificate (PEM) that signed the store's certificate"
    )]
    NoRootCert(&'static str),
    #[error("sslcert and sslkey go together: the client certificate and its key")]
    CertWithoutKey,
    #[error("sslmode=disable with certificates: drop them or choose a TLS sslmode")]
    DisabledWithCerts,
}

/// The URL for tokio-postgres (TLS parameters taken out, `sslmode` in its terms) and the TLS
/// settings; or what is wrong with them.
pub(crate) fn split(url: &str) -> Result<(String, StoreTls), StoreUrlError> {
    let mut tls = StoreTls::default();
    let mut take = |k: &str, v: String| -> Result<bool, StoreUrlError> {
        match k {
            "sslmode" => tls.mode = SslMode::parse(&v).ok_or(StoreUrlError::Mode(v))?,
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(v)),
            "sslcert" => tls.cert = Some(PathBuf::from(v)),
            "sslkey" => tls.key = Some(PathBuf::from(v)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = match url.split_once("://") {
        Some(_) => {
            let (base, query) = url.split_once('?').unwrap_or((url, ""));
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if !take(k, percent_decode(v))? {
                    kept.push(pair.to_string());
                }
            }
            match kept.is_empty() {
                true => base.to_string(),
                false => format!("{base}?{}", kept.join("&")),
            }
        }
        None => {
            let mut kept = Vec::new();
            for (k, v) in key_values(url) {
                if !take(&k, v.clone())? {
                    kept.push(format!(
                        "{k}='{}'",
                        v.replace('\\', "\\\\").replace('\'', "\\'")
                    ));
                }
            }
            kept.join(" ")
        }
    };
    if tls.mode.verifies() && tls.root_cert.is_none() {
        return Err(StoreUrlError::NoRootCert(tls.mode.as_str()));
    }
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(StoreUrlError::CertWithoutKey);
    }
    if tls.mode == SslMode::Disable && (tls.root_cert.is_some() || tls.cert.is_some()) {
        return Err(StoreUrlError::DisabledWithCerts);
    }
    let sep = if rest.contains("://") {
        if rest.contains('?') { '&' } else { '?' }
    } else {
        ' '
    };
    let mode = format!("sslmode={}", tls.mode.for_driver());
    let rest = match rest.is_empty() {
        true => mode,
        false => format!("{rest}{sep}{mode}"),
    };
    Ok((rest, tls))
}

/// `%XX` decoded (a `+` stays a `+`, as in libpq).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `key=value` pairs of a libpq connection string (values optionally in single quotes,
/// with `\'` and `\\` escapes).
fn key_values(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|&c| c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            return out;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.next_if_eq(&'=');
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_form_loses_its_tls_parameters_and_keeps_the_rest() {
        let (url, tls) = split(
            "postgresql://dtc@db/dtc?sslmode=verify-full&sslrootcert=/etc/ca%20dir/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgresql://dtc@db/dtc?application_name=x&sslmode=require"
        );
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca dir/ca.pem")));
        let (url, tls) = split("postgresql://dtc@db/dtc").unwrap();
        assert_eq!(
            (url.as_str(), tls.mode),
            ("postgresql://dtc@db/dtc?sslmode=prefer", SslMode::Prefer)
        );
    }

    #[test]
    fn the_key_value_form_too() {
        let (url, tls) = split(
            "host=db user=dtc sslmode=verify-ca sslrootcert='/ca dir/ca.pem' sslcert=/c.pem sslkey=/k.pem",
        )
        .unwrap();
        assert_eq!(url, "host='db' user='dtc' sslmode=require");
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca dir/ca.pem")));
        assert_eq!(
            (tls.mode, tls.cert, tls.key),
            (
                SslMode::VerifyCa,
                Some("/c.pem".into()),
                Some("/k.pem".into())
            )
        );
    }

    #[test]
    fn a_verifying_mode_without_a_ca_and_a_lone_client_cert_are_refused() {
        let e = split("postgresql://db/dtc?sslmode=verify-full")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs sslrootcert"), "{e}");
        let e = split("postgresql://db/dtc?sslmode=require&sslcert=/c.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslcert and sslkey go together"), "{e}");
        let e = split("postgresql://db/dtc?sslmode=verify")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not one of"), "{e}");
    }
}
