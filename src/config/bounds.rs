//! The valid range of every numeric setting, in one table that `dtc check`, hot reload and the
//! configuration reference (docs/configuration.md) agree on, and the checks of the settings that relate two fields.
//!
//! A value outside its range is a problem naming the field, so nothing `dtc check` accepts can
//! make `dtc run` panic, abort on an allocation, or fail every request.

use super::Config;
use super::checker::Checker;
use std::time::Duration;

/// A whole-number setting: field path, value, smallest and largest valid value.
type Count = (&'static str, u64, u64, u64);
/// A duration setting: field path, value, shortest and longest valid value.
type Span = (&'static str, Duration, Duration, Duration);

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const MIB: u64 = 1024 * 1024;

/// Every whole-number setting with its valid range (inclusive).
pub(crate) fn counts(c: &Config) -> [Count; 18] {
    let n = |v: usize| v as u64;
    [
        ("listen.workers", n(c.listen.workers), 0, 1024),
        ("retry.attempts", c.retry.attempts.into(), 1, 100),
        ("limits.max_body", n(c.limits.max_body), 1, 1024 * MIB),
        (
            "limits.max_connections",
            n(c.limits.max_connections),
            1,
            1_000_000,
        ),
        (
            "limits.max_header_bytes",
            n(c.limits.max_header_bytes),
            8192,
            MIB,
        ),
        ("limits.max_headers", n(c.limits.max_headers), 1, 1000),
        ("limits.max_uri_bytes", n(c.limits.max_uri_bytes), 256, MIB),
        (
            "health.healthy_threshold",
            c.health.healthy_threshold.into(),
            1,
            1_000_000,
        ),
        (
            "health.unhealthy_threshold",
            c.health.unhealthy_threshold.into(),
            1,
            1_000_000,
        ),
        (
            "health.consecutive_unreachable",
            c.health.consecutive_unreachable.into(),
            1,
            1_000_000,
        ),
        ("reads.max_tries", c.reads.max_tries.into(), 1, 16),
        (
            "journal.keep_finished",
            n(c.journal.keep_finished),
            0,
            1_000_000,
        ),
        (
            "reads.retry_statuses",
            c.reads.retry_statuses.len() as u64,
            0,
            100,
        ),
        ("writes.methods", c.writes.methods.len() as u64, 0, 32),
        ("journal.key_states", n(c.journal.key_states), 0, 10_000_000),
        (
            "journal.segment_bytes",
            c.journal.segment_bytes,
            64 << 10,
            1024 * MIB,
        ),
        (
            "idempotency.max_keys",
            n(c.idempotency.max_keys),
            0,
            10_000_000,
        ),
        (
            "idempotency.max_answer",
            n(c.idempotency.max_answer),
            0,
            1024 * MIB,
        ),
    ]
}

/// Every duration setting with its valid range (inclusive).
pub(crate) fn spans(c: &Config) -> [Span; 22] {
    let (r, t, h, j) = (&c.retry, &c.timeouts, &c.health, &c.journal);
    let zero = Duration::ZERO;
    [
        ("retry.initial_backoff", r.initial_backoff, zero, HOUR),
        ("retry.max_backoff", r.max_backoff, zero, HOUR),
        ("retry.deadline", r.deadline, MS, HOUR),
        ("timeouts.connect", t.connect, MS, HOUR),
        ("timeouts.attempt", t.attempt, MS, HOUR),
        ("timeouts.header_read", t.header_read, MS, HOUR),
        ("timeouts.shutdown", t.shutdown, zero, HOUR),
        ("timeouts.idle", t.idle, MS, DAY),
        ("timeouts.read_idle", t.read_idle, MS, HOUR),
        ("timeouts.read_total", t.read_total, MS, DAY),
        ("health.interval", h.interval, MS, HOUR),
        ("health.timeout", h.timeout, MS, HOUR),
        ("health.window", h.window, MS * 10, HOUR),
        ("health.trial_initial", h.trial_initial, MS, HOUR),
        ("health.trial_max", h.trial_max, MS, HOUR),
        ("writes.retry_after", c.writes.retry_after, zero, HOUR),
        (
            "writes.wait_for_down_node",
            c.writes.wait_for_down_node,
            zero,
            Duration::from_secs(60),
        ),
        ("journal.redrive_initial", j.redrive_initial, MS, HOUR),
        ("journal.redrive_max", j.redrive_max, MS, DAY),
        ("journal.verify_after", j.verify_after, MS, HOUR),
        ("journal.lock_wait", j.lock_wait, zero, HOUR),
        ("idempotency.window", c.idempotency.window, zero, 30 * DAY),
    ]
}

/// Checks every range, then the settings that depend on each other.
pub(super) fn check(c: &mut Checker, config: &Config) {
    for (field, value, min, max) in counts(config) {
        if !(min..=max).contains(&value) {
            c.problem(
                field,
                format!("{value} is out of range: use {min} to {max}"),
            );
        }
    }
    for (field, value, min, max) in spans(config) {
        if !(min..=max).contains(&value) {
            let show = |d: Duration| humantime::format_duration(d).to_string();
            c.problem(
                field,
                format!(
                    "{} is out of range: use {} to {}",
                    show(value),
                    show(min),
                    show(max)
                ),
            );
        }
    }
    let r = &config.retry;
    if !(r.multiplier.is_finite() && (1.0..=10.0).contains(&r.multiplier)) {
        c.problem("retry.multiplier", "must be a number from 1.0 to 10.0");
    }
    if !(0.0..=1.0).contains(&r.jitter) {
        c.problem("retry.jitter", "must be between 0 and 1");
    }
    if r.initial_backoff > r.max_backoff {
        c.problem("retry.initial_backoff", "is larger than retry.max_backoff");
    }
    let j = &config.journal;
    if j.redrive_initial > j.redrive_max {
        c.problem(
            "journal.redrive_initial",
            "is larger than journal.redrive_max",
        );
    }
    let h = &config.health;
    if !(h.failure_rate.is_finite() && h.failure_rate > 0.0 && h.failure_rate <= 1.0) {
        c.problem(
            "health.failure_rate",
            "must be a share above 0 and at most 1 (e.g. 0.5)",
        );
    }
    if h.trial_initial > h.trial_max {
        c.problem("health.trial_initial", "is larger than health.trial_max");
    }
    if !h.path.is_empty() && !h.path.starts_with('/') {
        c.problem(
            "health.path",
            "must start with `/` (or be \"\" to disable probes)",
        );
    }
    for s in &config.reads.retry_statuses {
        if !(100..=599).contains(s) {
            c.problem("reads.retry_statuses", format!("{s} is not an HTTP status"));
        }
    }
    for h in &config.journal.headers {
        if h != "*" && http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            c.problem(
                "journal.headers",
                format!("`{h}` is not a header name (or \"*\" for every header)"),
            );
        }
    }
    if config.verify.limit == 0 {
        c.problem("verify.limit", "must be at least 1");
    }
    if config.verify.since.is_zero() {
        c.problem("verify.since", "must be more than 0 (e.g. \"1h\")");
    }
    if config.journal.dir.trim().is_empty() {
        c.problem("journal.dir", "must name a directory");
    }
    if let Some(cluster) = &config.cluster {
        for (field, message) in cluster.problems(config.timeouts.attempt) {
            c.problem(field, message);
        }
    }
}
