//! Routes: each `[[routes]]` entry validated and compiled into a [`Route`] — the write it
//! matches, its resource key, and how it is read back, snapshotted and undone.

use super::checker::{Checker, check_statuses, parse_method};
use super::ids::IdRule;
use super::template::{Pattern, Template};
use super::{BodySource, Config};
use http::Method;
use std::sync::Arc;

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// `POST /v1/group/`, for logs.
    pub name: String,
    pub method: Method,
    pub pattern: Pattern,
    pub key: Option<Template>,
    pub already: Vec<u16>,
    /// Whether a node may get the write again after an attempt whose outcome is unknown.
    pub resend: bool,
    pub snapshot: Option<SnapshotRule>,
    pub compensation: Option<CompensationRule>,
    pub verify: Option<VerifyRule>,
    /// The listing hook: `GET list` on a node lists the resources this route creates.
    pub list: Option<ListRule>,
    /// A create whose nodes assign the id: the id map's rule ([`super::ids`]).
    pub id: Option<Arc<IdRule>>,
    /// Writes queued on the route's resource share journal syncs ([`RouteConfig::pipeline`]).
    ///
    /// [`RouteConfig::pipeline`]: super::RouteConfig::pipeline
    pub pipeline: bool,
}

/// A compiled listing hook: where to list, and the route's own write path (no captures).
#[derive(Debug)]
pub struct ListRule {
    pub path: String,
    pub write_path: String,
}

/// A compiled read-back: which statuses mean the prior state, which the target state.
#[derive(Debug)]
pub struct VerifyRule {
    pub method: Method,
    pub path: Template,
    pub prior: Vec<u16>,
    pub target: Vec<u16>,
}

/// A compiled snapshot rule.
#[derive(Debug)]
pub struct SnapshotRule {
    pub method: Method,
    /// `None`: the write's own path.
    pub path: Option<Template>,
}

/// A compiled compensation rule.
#[derive(Debug)]
pub struct CompensationRule {
    pub method: Method,
    pub path: Template,
    pub body: CompBody,
    pub already: Vec<u16>,
}

/// A compensation's body.
#[derive(Debug)]
pub enum CompBody {
    Original,
    Snapshot,
    None,
    Template(Template),
}

pub(super) fn check_routes(c: &mut Checker, config: &Config, writes: &[Method]) -> Vec<Arc<Route>> {
    let mut out = Vec::new();
    for (i, r) in config.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        let method = parse_method(&r.method)
            .map_err(|e| c.problem(format!("{at}.method"), e))
            .ok();
        if let Some(m) = &method
            && !writes.contains(m)
        {
            c.problem(
                format!("{at}.method"),
                format!("{m} is not in writes.methods, so this route would never match"),
            );
        }
        let pattern = Pattern::compile(&r.path)
            .map_err(|e| c.problem(format!("{at}.path"), e))
            .ok();
        let params = pattern.as_ref().map(Pattern::params).unwrap_or_default();
        let key = r.key.as_ref().and_then(|k| {
            let t = Template::compile(k, &params)
                .map_err(|e| c.problem(format!("{at}.key"), e))
                .ok()?;
            if t.needs_response() {
                c.problem(
                    format!("{at}.key"),
                    "a key is known before the write, so it cannot use {response:..} or {location}",
                );
            }
            Some(t)
        });
        check_statuses(c, &format!("{at}.already"), &r.already);
        let snapshot = r.snapshot.as_ref().and_then(|s| {
            let method = parse_method(&s.method)
                .map_err(|e| c.problem(format!("{at}.snapshot.method"), e))
                .ok()?;
            let path = match &s.path {
                Some(p) => Some(compile_request_template(
                    c,
                    &format!("{at}.snapshot.path"),
                    p,
                    &params,
                )?),
                None => None,
            };
            Some(SnapshotRule { method, path })
        });
        let verify = r.verify.as_ref().and_then(|v| {
            let field = format!("{at}.verify");
            let method = parse_method(&v.method)
                .map_err(|e| c.problem(format!("{field}.method"), e))
                .ok()?;
            let path = compile_request_template(c, &format!("{field}.path"), &v.path, &params)?;
            let (prior, target) = read_back_statuses(c, &field, &v.prior, &v.target)?;
            Some(VerifyRule {
                method,
                path,
                prior,
                target,
            })
        });
        let compensation = r.compensation.as_ref().and_then(|comp| {
            let field = format!("{at}.compensation");
            let method = parse_method(&comp.method).map_err(|e| c.problem(format!("{field}.method"), e)).ok();
            let path = Template::compile(&comp.path, &params).map_err(|e| c.problem(format!("{field}.path"), e)).ok();
            if !comp.path.starts_with('/') && !comp.path.starts_with("{location}") {
                c.problem(format!("{field}.path"), format!("`{}` must start with `/` or `{{location}}`", comp.path));
            }
            check_statuses(c, &format!("{field}.already"), &comp.already);
            let body = match (&comp.body_template, comp.body) {
                (Some(t), BodySource::None) => Template::compile(t, &params)
                    .map_err(|e| c.problem(format!("{field}.body_template"), e))
                    .ok()
                    .map(CompBody::Template),
                (Some(_), _) => {
                    c.problem(format!("{field}.body_template"), "set either `body` or `body_template`, not both");
                    None
                }
                (None, BodySource::Snapshot) if r.snapshot.is_none() => {
                    c.problem(format!("{field}.body"), "`snapshot` needs a `snapshot` rule on the route (e.g. `snapshot = { method = \"GET\" }`)");
                    None
                }
                (None, BodySource::Snapshot) => Some(CompBody::Snapshot),
                (None, BodySource::Original) => Some(CompBody::Original),
                (None, BodySource::None) => Some(CompBody::None),
            };
            Some(CompensationRule { method: method?, path: path?, body: body?, already: comp.already.clone() })
        });
        let list = r.list.as_ref().and_then(|path| {
            let field = format!("{at}.list");
            let why = if !path.starts_with('/') {
                Some(format!("`{path}` must start with `/`"))
            } else if !params.is_empty() {
                Some("a listed resource is created with this route's path, which must have no `{name}` segments".to_string())
            } else if r.key.is_none() || r.verify.is_none() {
                Some("needs `key` and `verify`: each listed resource's key and read are rendered from it".to_string())
            } else {
                None
            };
            if let Some(why) = why {
                c.problem(field, why);
                return None;
            }
            Some(ListRule {
                path: path.clone(),
                write_path: r.path.clone(),
            })
        });
        let id = r.id.as_ref().and_then(|cfg| {
            if r.method != "POST" {
                c.problem(
                    format!("{at}.id"),
                    "`id` declares the id a create's nodes assign: it belongs on a `POST` route",
                );
                return None;
            }
            IdRule::compile(&r.path, cfg)
                .map_err(|(field, e)| c.problem(format!("{at}.id.{field}"), e))
                .ok()
                .map(Arc::new)
        });
        check_pipeline(c, &at, r);
        if let (Some(method), Some(pattern)) = (method, pattern) {
            let resend = resend(r, &method);
            out.push(Arc::new(Route {
                name: format!("{} {}", r.method, r.path),
                method,
                pattern,
                key,
                already: r.already.clone(),
                resend,
                snapshot,
                compensation,
                verify,
                list,
                id,
                pipeline: r.pipeline,
            }));
        }
    }
    out
}

/// `pipeline` only where recovery can judge a key's possibly-sent writes one after another, in
/// journal order, from their node records and read-backs. A read-back (`verify`) and an undo
/// (`compensation`) are judged in that order (each write's judgement leaves the nodes alike
/// before the next is read). Refused: a `snapshot`, whose pre-image read before its turn could
/// be stale and whose undo puts it back whatever the writes before it did, and an `id`, whose
/// mapped id may come from the create before it.
fn check_pipeline(c: &mut Checker, at: &str, r: &super::RouteConfig) {
    if !r.pipeline {
        return;
    }
    let clashes = [
        (
            "snapshot",
            r.snapshot.is_some(),
            "its pre-image would be read before the writes ahead of it end, and its undo would put that stale image back",
        ),
        (
            "id",
            r.id.is_some(),
            "a mapped id may come from the create queued before it",
        ),
    ];
    for (field, set, why) in clashes {
        if set {
            c.problem(
                format!("{at}.pipeline"),
                format!("a pipelined route cannot have `{field}` ({why}): remove `pipeline` or `{field}`"),
            );
        }
    }
}

/// Whether the route's write may be sent again after an ambiguous attempt: its declaration, or
/// the default (`already` statuses listed, or a PUT).
fn resend(r: &super::RouteConfig, method: &Method) -> bool {
    use super::Idempotent;
    let declared = r.idempotent.unwrap_or(if !r.already.is_empty() {
        Idempotent::Already
    } else if *method == Method::PUT {
        Idempotent::Replace
    } else {
        Idempotent::No
    });
    declared != Idempotent::No
}

/// The read-back's two status lists, the missing one derived from the other.
fn read_back_statuses(
    c: &mut Checker,
    field: &str,
    prior: &[u16],
    target: &[u16],
) -> Option<(Vec<u16>, Vec<u16>)> {
    for (name, list) in [("prior", prior), ("target", target)] {
        if let Some(s) = list.iter().find(|s| !(100..=599).contains(*s)) {
            c.problem(
                format!("{field}.{name}"),
                format!("{s} is not an HTTP status"),
            );
            return None;
        }
    }
    let derive = |given: &[u16]| -> Option<Vec<u16>> {
        if given.iter().all(|s| (200..300).contains(s)) {
            Some(vec![404, 410])
        } else if given.iter().all(|s| matches!(s, 404 | 410)) {
            Some(vec![200])
        } else {
            None
        }
    };
    let (prior, target) = match (prior.is_empty(), target.is_empty()) {
        (true, true) => {
            c.problem(
                format!("{field}.prior"),
                "list the statuses that tell the node's state: `prior` (before the write, e.g. [404] for a create) and `target` (after it, e.g. [200])",
            );
            return None;
        }
        (false, false) => (prior.to_vec(), target.to_vec()),
        (false, true) => {
            let Some(t) = derive(prior) else {
                c.problem(
                    format!("{field}.target"),
                    format!("cannot derive the target state's statuses from prior = {prior:?}: set `target` too"),
                );
                return None;
            };
            (prior.to_vec(), t)
        }
        (true, false) => {
            let Some(p) = derive(target) else {
                c.problem(
                    format!("{field}.prior"),
                    format!("cannot derive the prior state's statuses from target = {target:?}: set `prior` too"),
                );
                return None;
            };
            (p, target.to_vec())
        }
    };
    if let Some(s) = prior.iter().find(|s| target.contains(s)) {
        c.problem(
            format!("{field}.target"),
            format!("{s} is listed as both the prior and the target state: a read-back must tell them apart"),
        );
        return None;
    }
    Some((prior, target))
}

fn compile_request_template(
    c: &mut Checker,
    field: &str,
    text: &str,
    params: &[String],
) -> Option<Template> {
    let t = Template::compile(text, params)
        .map_err(|e| c.problem(field, e))
        .ok()?;
    if t.needs_response() {
        c.problem(
            field,
            "runs before the write, so it cannot use {response:..} or {location}",
        );
        return None;
    }
    Some(t)
}
