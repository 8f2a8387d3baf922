//! Validation: [`Config`] → [`Settings`], or every problem at once with its field path.

use super::checker::{Checker, parse_method};
use super::routes::check_routes;
pub use super::routes::{CompBody, CompensationRule, Route, SnapshotRule, VerifyRule};

use super::tls::{TlsFindings, TlsSpec};
pub use super::url::{parse_http_url, parse_node_url, redact_url};
use super::{Config, Problem};
use http::{Method, Uri};
use std::net::SocketAddr;
use std::sync::Arc;

/// A validated, compiled configuration: what the proxy runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file as parsed, defaults filled in.
    pub config: Config,
    /// Proxy listener.
    pub listen: SocketAddr,
    /// Admin listener, if enabled.
    pub admin: Option<SocketAddr>,
    /// The replicas, in file order.
    pub nodes: Vec<NodeSpec>,
    /// Methods that are writes.
    pub write_methods: Vec<Method>,
    /// Compiled routes, first match wins.
    pub routes: Vec<Arc<Route>>,
    /// What is valid but deserves attention (a certificate near its end, hostname
    /// verification off): `dtc check` prints them, start and reload log them.
    pub warnings: Vec<Problem>,
}

impl Settings {
    /// The id maps the routes declare ([`super::ids`]), in route order.
    pub fn id_rules(&self) -> impl Iterator<Item = &Arc<super::ids::IdRule>> {
        self.routes.iter().filter_map(|r| r.id.as_ref())
    }

    /// The id map whose item path `path` (in its normal form) matches, and the id it names.
    pub fn mapped_id(&self, path: &str) -> Option<(&Arc<super::ids::IdRule>, String)> {
        self.id_rules()
            .find_map(|rule| rule.id_in_path(path).map(|id| (rule, id)))
    }

    /// What happens to a write no route matches: `writes.unmatched`, or its default (refuse
    /// when routes are declared, replicate when none are).
    pub fn unmatched(&self) -> super::Unmatched {
        self.config
            .writes
            .unmatched
            .unwrap_or(match self.routes.is_empty() {
                true => super::Unmatched::Replicate,
                false => super::Unmatched::Refuse,
            })
    }

    /// Whether writes of `route` (`None`: a write no route matches) queued on one resource share
    /// journal syncs (`pipeline`, `writes.pipeline_unmatched`).
    pub fn pipelined(&self, route: Option<&Route>) -> bool {
        route.map_or(self.config.writes.pipeline_unmatched, |r| r.pipeline)
    }
}

/// A node's identity: nodes with the same name and URL across reloads are the same node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    /// `http` URL without a trailing slash.
    pub url: Uri,
    /// The `host:port` to connect to and to send as `Host`.
    pub authority: String,
    /// Path prefix prepended to request paths (`""` when none).
    pub base_path: String,
    /// TLS of an `https` node; `None` for `http`.
    pub tls: Option<Arc<TlsSpec>>,
}

/// Validates a parsed config; `text` is the file, used to point problems at lines.
pub fn validate(config: Config, text: &str) -> Result<Settings, Vec<Problem>> {
    validate_with(config, text, false)
}

/// [`validate`]; with `offline` (`dtc check --offline`), a TLS file this machine does not have
/// is a warning instead of a problem.
pub fn validate_with(config: Config, text: &str, offline: bool) -> Result<Settings, Vec<Problem>> {
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };
    let listen = socket_addr(&mut c, "listen.address", &config.listen.address);
    let admin = if config.listen.admin.is_empty() {
        None
    } else {
        socket_addr(&mut c, "listen.admin", &config.listen.admin)
    };
    let mut tls = TlsFindings {
        offline,
        ..TlsFindings::default()
    };
    let nodes = check_nodes(&mut c, &config, &mut tls);
    let (tls_problems, warnings) = tls.located(text);
    c.problems.extend(tls_problems);
    super::bounds::check(&mut c, &config);
    super::trace::check(&mut c, &config.tracing);
    check_token(&mut c, &config.listen);
    let write_methods = check_write_methods(&mut c, &config);
    let routes = check_routes(&mut c, &config, &write_methods);
    check_pipeline_cluster(&mut c, &config);
    if let Some(url) = &config.alerts.webhook
        && let Err(e) = parse_http_url(url)
    {
        c.problem("alerts.webhook", e);
    }
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(Settings {
        listen: listen.expect("checked"),
        admin,
        nodes,
        write_methods,
        routes,
        config,
        warnings,
    })
}

fn socket_addr(c: &mut Checker, field: &str, value: &str) -> Option<SocketAddr> {
    match value.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            c.problem(
                field,
                format!("`{value}` is not an address: write it like `127.0.0.1:8000`"),
            );
            None
        }
    }
}

fn check_nodes(c: &mut Checker, config: &Config, tls: &mut TlsFindings) -> Vec<NodeSpec> {
    let now = std::time::SystemTime::now();
    if config.nodes.is_empty() {
        c.problem(
            "nodes",
            "no nodes: add at least one `[[nodes]]` with `name` and `url`",
        );
    }
    let mut out: Vec<NodeSpec> = Vec::new();
    for (i, node) in config.nodes.iter().enumerate() {
        let earlier = &config.nodes[..i];
        if node.name.trim().is_empty() {
            c.problem(format!("nodes[{i}].name"), "a node needs a non-empty name");
        }
        if earlier.iter().any(|n| n.name == node.name) {
            c.problem(
                format!("nodes[{i}].name"),
                format!("node name `{}` is used twice", node.name),
            );
        }
        match parse_node_url(&node.url) {
            Ok(spec) => {
                if out.iter().any(|n| n.url == spec.0) {
                    c.problem(
                        format!("nodes[{i}].url"),
                        format!("`{}` is listed twice", node.url),
                    );
                }
                let host = spec.0.host().unwrap_or_default();
                let node_tls = match spec.0.scheme_str() {
                    Some("https") => {
                        let resolved =
                            super::tls::resolve(&config.tls, node.tls.as_ref(), i, host, now, tls);
                        resolved.map(Arc::new)
                    }
                    _ => {
                        if node.tls.is_some() {
                            c.problem(
                                format!("nodes[{i}].tls"),
                                "TLS settings for an `http://` node: write its url with `https://`",
                            );
                        }
                        None
                    }
                };
                out.push(NodeSpec {
                    name: node.name.clone(),
                    url: spec.0,
                    authority: spec.1,
                    base_path: spec.2,
                    tls: node_tls,
                });
            }
            Err(e) => c.problem(format!("nodes[{i}].url"), e),
        }
    }
    out
}

fn check_token(c: &mut Checker, listen: &super::Listen) {
    if listen
        .admin_token
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        c.problem(
            "listen.admin_token",
            "is empty: an empty token would admit an empty bearer; set a long random token or remove the line",
        );
    }
    if listen.admin_token.is_some() && listen.admin_token_file.is_some() {
        c.problem(
            "listen.admin_token_file",
            "set either listen.admin_token or listen.admin_token_file, not both",
        );
    }
    if listen
        .admin_token_file
        .as_deref()
        .is_some_and(|p| p.trim().is_empty())
    {
        c.problem("listen.admin_token_file", "must name a file");
    }
}

/// Pipelined writes need one process's own journal: under `[cluster]` every intent takes the
/// store's lease, and the fleet's order of a key's writes would need the store's own sequence.
fn check_pipeline_cluster(c: &mut Checker, config: &Config) {
    if config.cluster.is_none() {
        return;
    }
    if config.writes.pipeline_unmatched {
        c.problem(
            "writes.pipeline_unmatched",
            "pipelined writes are not supported with `[cluster]`: remove it",
        );
    }
    for (i, r) in config.routes.iter().enumerate() {
        if r.pipeline {
            c.problem(
                format!("routes[{i}].pipeline"),
                "pipelined writes are not supported with `[cluster]`: remove it",
            );
        }
    }
}

fn check_write_methods(c: &mut Checker, config: &Config) -> Vec<Method> {
    let mut out = Vec::new();
    for m in &config.writes.methods {
        match parse_method(m) {
            Ok(method) if method == Method::GET || method == Method::HEAD => {
                c.problem(
                    "writes.methods",
                    format!("{m} is a read and cannot be replicated as a write"),
                );
            }
            Ok(method) => out.push(method),
            Err(e) => c.problem("writes.methods", e),
        }
    }
    out
}
