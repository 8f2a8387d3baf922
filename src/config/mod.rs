//! Configuration: the file's serde types ([`model`]), route templates ([`template`]), validation
//! into [`Settings`] ([`validate`]), and what hot reload needs of it: the file watcher ([`watch`])
//! and the diff of two configs ([`diff`]); the reload loop itself is [`crate::runtime::reload`].
//!
//! The pipeline: file text → TOML parse (syntax errors carry line and column) →
//! `DTC_DATABASE_URL`, `DTC_LISTEN_ADDRESS` and `DTC_LISTEN_ADMIN` applied ([`cluster::apply_env`]) → [`Config`] with
//! documented defaults for every missing field → [`validate::validate`], which returns *every*
//! problem with its field path and line → [`Settings`], the compiled form the proxy runs on.
//! `dtc check` and hot reload run exactly this pipeline; [`advice`] then names what a valid
//! config may not do as its author expects.

pub mod advice;
pub(crate) mod bounds;
mod checker;
pub mod cluster;
pub(crate) mod diff;
pub(crate) mod duration;
pub(crate) mod ids;
pub(crate) mod locate;
pub(crate) mod model;
pub(crate) mod pem;
#[cfg(test)]
mod props;
pub(crate) mod routes;
pub(crate) mod secret;
pub(crate) mod store_tls;
pub(crate) mod template;
pub mod tls;
pub(crate) mod trace;
mod typed;
pub mod url;
pub mod validate;
pub(crate) mod verify_task;
pub(crate) mod watch;

pub use cluster::ClusterConfig;
pub use model::*;
pub use tls::{TlsConfig, TlsSpec, TlsVersion};
pub use trace::TracingConfig;
pub use validate::{NodeSpec, Route, Settings};
pub use verify_task::VerifyTask;

use std::path::Path;

/// The configuration shipped as `config/dtc.toml` and used by `dtc demo`.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/dtc.toml");

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Field path, e.g. `nodes[1].url`.
    pub field: String,
    /// 1-based line in the file, when it could be located.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.field, self.message),
            None => write!(f, "`{}`: {}", self.field, self.message),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads, parses and validates a config file.
pub fn load_file(path: &Path) -> Result<(Settings, String), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let origin = path.display().to_string();
    let settings = parse(&text, &origin)?;
    if let Err(e) = secret::admin_token(&settings.config.listen) {
        let field = "listen.admin_token_file".to_string();
        let line = locate::locate(&text, &field);
        return Err(ConfigError::Invalid {
            origin,
            problems: vec![Problem {
                field,
                line,
                message: e.to_string(),
            }],
        });
    }
    Ok((settings, text))
}

/// [`load_file`] for a machine that is not where dtc runs (`dtc check --offline`, in CI): a
/// file the config names that this machine does not have (`listen.admin_token_file`, the TLS
/// files of `[tls]` and the nodes: Secrets mounted in the pod) is reported instead of refusing
/// the config — the token file in the notes, TLS files among the settings' warnings. A file
/// that is here is checked as usual.
pub fn load_file_offline(path: &Path) -> Result<(Settings, Vec<String>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let settings = parse_with(&text, &path.display().to_string(), true)?;
    let mut notes = Vec::new();
    if let Err(e) = secret::admin_token(&settings.config.listen) {
        notes.push(format!(
            "not checked (--offline): listen.admin_token_file: {e}; it must exist where dtc runs"
        ));
    }
    Ok((settings, notes))
}

/// Parses and validates config text; `origin` names it in errors (a path, or "embedded default").
pub fn parse(text: &str, origin: &str) -> Result<Settings, ConfigError> {
    parse_with(text, origin, false)
}

/// [`parse`]; `offline` as in [`validate::validate_with`].
fn parse_with(text: &str, origin: &str, offline: bool) -> Result<Settings, ConfigError> {
    let mut config = typed::config(text).map_err(|e| match e {
        typed::TypedError::Syntax(message) => ConfigError::Syntax {
            origin: origin.to_string(),
            message: scrub(&message, text),
        },
        typed::TypedError::Types(problems) => ConfigError::Invalid {
            origin: origin.to_string(),
            problems: problems
                .into_iter()
                .map(|p| Problem {
                    message: scrub(&p.message, text),
                    ..p
                })
                .collect(),
        },
    })?;
    cluster::apply_env(&mut config);
    apply_listen_env(&mut config);
    validate::validate_with(config, text, offline).map_err(|problems| ConfigError::Invalid {
        origin: origin.to_string(),
        problems: problems
            .into_iter()
            .map(|p| Problem {
                message: scrub(&p.message, text),
                ..p
            })
            .collect(),
    })
}

/// Moves the proxy listener off `listen.address` (a pod whose app already uses that port).
pub const LISTEN_ADDRESS_ENV: &str = "DTC_LISTEN_ADDRESS";
/// Moves the admin listener off `listen.admin`.
pub const LISTEN_ADMIN_ENV: &str = "DTC_LISTEN_ADMIN";

/// `DTC_LISTEN_ADDRESS` and `DTC_LISTEN_ADMIN` over the file's listen addresses: `dtc inject
/// --proxy-port/--admin-port` sets them so that one ConfigMap serves pods with other ports.
fn apply_listen_env(config: &mut Config) {
    if let Ok(a) = std::env::var(LISTEN_ADDRESS_ENV)
        && !a.is_empty()
    {
        config.listen.address = a;
    }
    if let Ok(a) = std::env::var(LISTEN_ADMIN_ENV)
        && !a.is_empty()
    {
        config.listen.admin = a;
    }
}

/// `message` without the secrets `text` holds: the admin token and any URL's password. Problems
/// end up in logs and in `GET /config` (a refused reload), which must never show them.
pub fn scrub(message: &str, text: &str) -> String {
    let mut out = message
        .split_inclusive(char::is_whitespace)
        .map(|word| match word.contains("://") {
            true => {
                let start = word.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0);
                format!("{}{}", &word[..start], validate::redact_url(&word[start..]))
            }
            false => word.to_string(),
        })
        .collect::<String>();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("admin_token") else {
            continue;
        };
        let Some(value) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.trim();
        let secret = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split_whitespace().next().unwrap_or(""),
        };
        if secret.len() >= 3 {
            out = out.replace(secret, "***");
        }
    }
    out
}

fn syntax_message(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim_end().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}
