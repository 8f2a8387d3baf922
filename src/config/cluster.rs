//! The `[cluster]` section: many sidecars sharing one PostgreSQL store for per-key leases and
//! the journal. Absent, dtc keeps its local journal and everything works as before.
//!
//! Hot reload: none of these fields reload; the store's connections and the leases in flight
//! are set up at start, so an edit is reported by the reload as needing a restart.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Shared coordination store settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `postgresql://USER[:PASSWORD]@HOST:PORT/DB` (or a libpq key=value string). Required,
    /// here or in the `DTC_DATABASE_URL` environment variable (which wins; Kubernetes fills it
    /// from a Secret). The password is redacted in `GET /config` and in logs. TLS is set with
    /// libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` ([`super::store_tls`]).
    #[serde(default)]
    pub database_url: String,
    /// How long a key's lease lasts without renewal; a sidecar that dies holds its keys this
    /// long before another takes its transactions over. A holder counts it, less a tenth
    /// (the clock margin), from before it asked; that must exceed `timeouts.attempt`.
    /// Default `10s`.
    #[serde(default = "lease", with = "super::duration")]
    pub lease: Duration,
    /// How long a write waits for a key leased by another sidecar before it answers 503
    /// `to_be_retried`. Default `5s`.
    #[serde(default = "wait", with = "super::duration")]
    pub wait: Duration,
    /// Connections to the store. Default 4.
    #[serde(default = "pool_size")]
    pub pool_size: usize,
    /// Time limit of one store round trip (and of connecting); beyond it the store counts as
    /// down. Default `2s`.
    #[serde(default = "statement_timeout", with = "super::duration")]
    pub statement_timeout: Duration,
    /// How often each sidecar looks for expired leases to take over and refreshes its view of
    /// the fleet's transactions. Default `1s`.
    #[serde(default = "scan_every", with = "super::duration")]
    pub scan_every: Duration,
}

fn lease() -> Duration {
    Duration::from_secs(10)
}
fn wait() -> Duration {
    Duration::from_secs(5)
}
fn pool_size() -> usize {
    4
}
fn statement_timeout() -> Duration {
    Duration::from_secs(2)
}
fn scan_every() -> Duration {
    Duration::from_secs(1)
}

impl ClusterConfig {
    /// The config with only a URL, every other field at its default.
    pub fn with_url(database_url: &str) -> ClusterConfig {
        ClusterConfig {
            database_url: database_url.to_string(),
            lease: lease(),
            wait: wait(),
            pool_size: pool_size(),
            statement_timeout: statement_timeout(),
            scan_every: scan_every(),
        }
    }

    /// The safety margin a holder keeps off every grant of `lease` (a tenth of it): what the
    /// sidecars' and the store's clocks may drift apart over one lease.
    pub fn lease_margin(&self) -> Duration {
        self.lease / 10
    }

    /// Every problem with the section, as `(field, message)`.
    pub fn problems(&self, attempt_timeout: Duration) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.database_url.trim().is_empty() {
            out.push((
                "cluster.database_url",
                format!("is required: write `database_url = \"postgresql://USER@HOST:PORT/DB\"` or set {DATABASE_URL_ENV}"),
            ));
        } else {
            match super::store_tls::split(&self.database_url) {
                Err(e) => out.push(("cluster.database_url", e.to_string())),
                Ok((url, _)) => {
                    if let Err(e) = url.parse::<tokio_postgres::Config>() {
                        out.push((
                            "cluster.database_url",
                            format!(
                                "`{}` is not a PostgreSQL connection string ({e}); write `postgresql://USER@HOST:PORT/DB`",
                                redact_url(&self.database_url)
                            ),
                        ));
                    }
                }
            }
        }
        if self.lease - self.lease_margin() <= attempt_timeout {
            out.push((
                "cluster.lease",
                format!(
                    "must be longer than timeouts.attempt ({attempt_timeout:?}) plus a tenth of the lease (the clock margin): a node request is only started while the lease outlives it"
                ),
            ));
        }
        if self.pool_size == 0 {
            out.push(("cluster.pool_size", "must be at least 1".to_string()));
        }
        if self.statement_timeout.is_zero() || self.scan_every.is_zero() {
            out.push((
                "cluster.statement_timeout",
                "statement_timeout and scan_every must be more than 0".to_string(),
            ));
        }
        out
    }
}

/// The environment variable that supplies (and overrides) `cluster.database_url`.
pub const DATABASE_URL_ENV: &str = "DTC_DATABASE_URL";

/// Applies `DTC_DATABASE_URL` (when set and not empty) to `config`, turning cluster mode on.
pub fn apply_env(config: &mut super::Config) {
    let Ok(url) = std::env::var(DATABASE_URL_ENV) else {
        return;
    };
    if url.trim().is_empty() {
        return;
    }
    match &mut config.cluster {
        Some(c) => c.database_url = url,
        None => config.cluster = Some(ClusterConfig::with_url(&url)),
    }
}

/// The URL with its password (URL form or `password=` key) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &rest[at..]
                );
            }
        }
        if let Some(q) = url.find('?') {
            return format!("{}{}", &url[..q], redact_kv(&url[q..], '&'));
        }
        return url.to_string();
    }
    redact_kv(url, ' ')
}

fn redact_kv(s: &str, sep: char) -> String {
    s.split(sep)
        .map(|part| {
            let trimmed = part.trim_start_matches('?');
            match trimmed.split_once('=') {
                Some((k, _)) if k.trim() == "password" => {
                    format!("{}{k}=***", &part[..part.len() - trimmed.len()])
                }
                _ => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_form() {
        assert_eq!(
            redact_url("postgresql://dtc:s3cret@db:5432/dtc"),
            "postgresql://dtc:***@db:5432/dtc"
        );
        assert_eq!(
            redact_url("postgresql://dtc@db/dtc?password=s3cret&sslmode=disable"),
            "postgresql://dtc@db/dtc?password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("host=db user=dtc password=s3cret"),
            "host=db user=dtc password=***"
        );
        assert_eq!(
            redact_url("postgresql://dtc@db/dtc"),
            "postgresql://dtc@db/dtc"
        );
    }

    #[test]
    fn a_lease_shorter_than_an_attempt_and_a_bad_url_are_problems() {
        let mut c = ClusterConfig::with_url("postgresql://dtc@127.0.0.1:5432/dtc");
        assert!(c.problems(Duration::from_secs(2)).is_empty());
        c.lease = Duration::from_secs(1);
        c.database_url = "postgresql://dtc@db:notaport/dtc".into();
        let fields: Vec<&str> = c
            .problems(Duration::from_secs(2))
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(fields, ["cluster.database_url", "cluster.lease"]);
    }
}
