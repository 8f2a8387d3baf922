//! TLS to `https://` nodes: the settings, and their validation into one [`TlsSpec`] per node.
//!
//! `[tls]` applies to every https node; a node's own `tls` table overrides it field by field
//! (`ca_file` from `[tls]`, `server_name` from the node, say). The defaults: the system's CA
//! certificates, the URL's host as the name sent (SNI) and verified, hostname verification on,
//! TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, no client certificate.
//!
//! Validation checks the files too ([`super::pem`]): each must be readable and parse, a key must
//! match its certificate, and no certificate may be expired; one that ends within 14 days, a
//! node whose hostname is not verified, and an https node without any CA certificate to trust
//! are warnings. A problem names the field (`nodes[1].tls.key_file` or `tls.key_file`, whichever
//! set it) and the file.

use super::Problem;
use super::pem::{self, Validity};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::SystemTime;

/// TLS settings, in `[tls]` (every https node) or a node's `tls` table (that node, over
/// `[tls]`). Every field is optional, so a node's table overrides only what it sets.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM bundle of the CA certificates that may sign node certificates; unset: the system's
    /// (`/etc/ssl/certs`, or the `SSL_CERT_FILE` environment variable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// PEM certificate chain dtc presents to nodes that ask for one (mTLS); needs `key_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// The name sent as SNI and verified in the node's certificate; unset: the URL's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Whether the certificate must be issued for `server_name`. Default true; `false` (for
    /// tests only) still checks the chain, and is warned about at every load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_hostname: Option<bool>,
    /// The oldest TLS version spoken: `"1.2"` (default) or `"1.3"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<TlsVersion>,
    /// Protocols offered by ALPN, preferred first. Default `["h2", "http/1.1"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Vec<String>>,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    V12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    V13,
}

/// The protocols ALPN may offer.
pub const ALPN: [&str; 2] = ["h2", "http/1.1"];

/// The TLS of one https node, validated: what its client is built from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsSpec {
    /// The CA bundle; `None`: the system's CA certificates.
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain and its key (mTLS).
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The name sent as SNI and verified (a DNS name or an IP address).
    pub server_name: String,
    /// Whether the certificate's names are checked against `server_name`.
    pub verify_hostname: bool,
    /// The oldest version spoken.
    pub min_version: TlsVersion,
    /// ALPN protocols, preferred first.
    pub alpn: Vec<String>,
}

impl TlsSpec {
    /// The files this spec reads, in a fixed order (for noticing that one changed).
    pub fn files(&self) -> Vec<&PathBuf> {
        let mut files: Vec<&PathBuf> = self.ca_file.iter().collect();
        if let Some((cert, key)) = &self.identity {
            files.extend([cert, key]);
        }
        files
    }
}

/// Where a node's settings come from: for each field, the path of the table that set it.
struct Layers<'a> {
    global: &'a TlsConfig,
    node: Option<&'a TlsConfig>,
    /// `nodes[i]`.
    node_path: String,
}

impl Layers<'_> {
    /// The value of a field and the path of the field that set it.
    fn pick<T: Clone>(
        &self,
        name: &str,
        get: impl Fn(&TlsConfig) -> &Option<T>,
    ) -> Option<(T, String)> {
        if let Some(v) = self.node.and_then(|n| get(n).clone()) {
            return Some((v, format!("{}.tls.{name}", self.node_path)));
        }
        get(self.global).clone().map(|v| (v, format!("tls.{name}")))
    }
}

/// What validating the TLS of the nodes found.
#[derive(Debug, Default)]
pub struct TlsFindings {
    pub problems: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
    /// `dtc check --offline`: a file that does not exist on this machine (it only exists where
    /// dtc runs, e.g. a mounted Secret) is a warning, not a problem.
    pub offline: bool,
}

impl TlsFindings {
    fn problem(&mut self, field: &str, message: String) {
        let entry = (field.to_string(), message);
        if !self.problems.contains(&entry) {
            self.problems.push(entry);
        }
    }

    /// With [`TlsFindings::offline`], a file this machine does not have: noted, and `true` (the
    /// caller checks nothing more of it).
    fn absent_offline(&mut self, field: &str, path: &str) -> bool {
        if !self.offline {
            return false;
        }
        match std::fs::metadata(path) {
            Ok(_) => false,
            Err(e) => {
                self.warning(
                    field,
                    format!(
                        "not checked (--offline): `{path}`: cannot read it here ({e}); it must exist where dtc runs"
                    ),
                );
                true
            }
        }
    }

    fn warning(&mut self, field: &str, message: String) {
        let entry = (field.to_string(), message);
        if !self.warnings.contains(&entry) {
            self.warnings.push(entry);
        }
    }

    /// The findings as problems pointed at lines of `text`: `(problems, warnings)`.
    pub fn located(self, text: &str) -> (Vec<Problem>, Vec<Problem>) {
        let at = |list: Vec<(String, String)>| {
            list.into_iter()
                .map(|(field, message)| Problem {
                    line: super::locate::locate(text, &field),
                    field,
                    message,
                })
                .collect()
        };
        (at(self.problems), at(self.warnings))
    }
}

/// The TLS of node `index` (`host` is its URL's host), from `[tls]` and the node's own table,
/// with its files checked at `now`. `None` when a problem was found (in `out`).
pub fn resolve(
    global: &TlsConfig,
    node: Option<&TlsConfig>,
    index: usize,
    host: &str,
    now: SystemTime,
    out: &mut TlsFindings,
) -> Option<TlsSpec> {
    let layers = Layers {
        global,
        node,
        node_path: format!("nodes[{index}]"),
    };
    let before = out.problems.len();
    let ca_file = layers.pick("ca_file", |t| &t.ca_file);
    let cert = layers.pick("cert_file", |t| &t.cert_file);
    let key = layers.pick("key_file", |t| &t.key_file);
    let (server_name, name_field) = layers
        .pick("server_name", |t| &t.server_name)
        .unwrap_or_else(|| (bare_host(host).to_string(), format!("nodes[{index}].url")));
    let verify_hostname = layers.pick("verify_hostname", |t| &t.verify_hostname);
    let alpn = layers.pick("alpn", |t| &t.alpn);
    match &ca_file {
        Some((path, field)) => check_ca(out, field, path, now),
        None if pem::system_roots().is_empty() => out.warning(
            &format!("nodes[{index}].url"),
            "https node without `tls.ca_file`, and the system has no CA certificates (none in \
             /etc/ssl/certs, no SSL_CERT_FILE): its connections will fail; set `tls.ca_file`"
                .into(),
        ),
        None => {}
    }
    let identity = check_identity(out, cert, key, now);
    if rustls::pki_types::ServerName::try_from(server_name.as_str()).is_err() {
        out.problem(
            &name_field,
            format!("`{server_name}` is not a DNS name or an IP address"),
        );
    }
    if let Some((false, field)) = &verify_hostname {
        out.warning(
            field,
            format!(
                "hostname verification is off for node {index}: any certificate its CA signed is \
                 accepted, whatever name it carries; use this only in tests"
            ),
        );
    }
    if let Some((list, field)) = &alpn {
        check_alpn(out, field, list);
    }
    if out.problems.len() > before {
        return None;
    }
    Some(TlsSpec {
        ca_file: ca_file.map(|(p, _)| PathBuf::from(p)),
        identity,
        server_name,
        verify_hostname: verify_hostname.is_none_or(|(v, _)| v),
        min_version: layers
            .pick("min_version", |t| &t.min_version)
            .map(|(v, _)| v)
            .unwrap_or_default(),
        alpn: alpn
            .map(|(v, _)| v)
            .unwrap_or_else(|| ALPN.map(String::from).to_vec()),
    })
}

/// `[::1]` → `::1`; a name stays as it is.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn check_ca(out: &mut TlsFindings, field: &str, path: &str, now: SystemTime) {
    if path.trim().is_empty() {
        return out.problem(field, "must name a file".into());
    }
    if out.absent_offline(field, path) {
        return;
    }
    let certs = match pem::read_certs(path.as_ref()) {
        Ok(c) => c,
        Err(e) => return out.problem(field, e.to_string()),
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return out.problem(field, format!("`{path}`: no usable CA certificate in it"));
    }
    // A bundle may keep an old CA beside the current one: refused only when none is valid.
    let judged: Vec<_> = certs
        .iter()
        .filter_map(Validity::of)
        .map(|v| v.judge(now))
        .collect();
    if judged.iter().all(Result::is_err)
        && let Some(Err(why)) = judged.first()
    {
        return out.problem(field, format!("`{path}`: {why}"));
    }
    for j in judged {
        match j {
            Ok(Some(soon)) | Err(soon) => out.warning(field, format!("`{path}`: {soon}")),
            Ok(None) => {}
        }
    }
}

type Set = Option<(String, String)>;

fn check_identity(
    out: &mut TlsFindings,
    cert: Set,
    key: Set,
    now: SystemTime,
) -> Option<(PathBuf, PathBuf)> {
    let ((cert, cert_field), (key, key_field)) = match (cert, key) {
        (None, None) => return None,
        (Some((_, field)), None) => {
            out.problem(&field, "a client certificate needs its `key_file`".into());
            return None;
        }
        (None, Some((_, field))) => {
            out.problem(&field, "a client key needs its `cert_file`".into());
            return None;
        }
        (Some(c), Some(k)) => (c, k),
    };
    let cert_absent = out.absent_offline(&cert_field, &cert);
    if out.absent_offline(&key_field, &key) | cert_absent {
        return Some((cert.into(), key.into()));
    }
    let (chain, _) = match pem::read_identity(cert.as_ref(), key.as_ref()) {
        Ok(pair) => pair,
        Err(e) => {
            let field = if e.path.as_path() == std::path::Path::new(&key) {
                &key_field
            } else {
                &cert_field
            };
            out.problem(field, e.to_string());
            return None;
        }
    };
    match chain.first().and_then(Validity::of).map(|v| v.judge(now)) {
        None => out.problem(&cert_field, format!("`{cert}`: not an X.509 certificate")),
        Some(Err(why)) => out.problem(&cert_field, format!("`{cert}`: {why}")),
        Some(Ok(Some(soon))) => out.warning(&cert_field, format!("`{cert}`: {soon}")),
        Some(Ok(None)) => {}
    }
    Some((cert.into(), key.into()))
}

fn check_alpn(out: &mut TlsFindings, field: &str, list: &[String]) {
    if list.is_empty() {
        out.problem(
            field,
            "offers no protocol: write `[\"h2\", \"http/1.1\"]` or one of them".into(),
        );
    }
    for p in list {
        if !ALPN.contains(&p.as_str()) {
            out.problem(
                field,
                format!("`{p}` is not a protocol dtc speaks: use `h2` or `http/1.1`"),
            );
        }
    }
}
