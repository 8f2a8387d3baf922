//! The background check: `dtc verify` inside a running sidecar every `[verify] interval`
//! (off when it is `0s`, the default). The interval and the other fields reload live.

use super::{Options, Verifier};
use crate::runtime::Stop;
use std::time::Duration;

/// Runs checks until `stop`. Waits while the interval is `0s`.
pub(crate) async fn run(verifier: Verifier, mut stop: Stop) {
    let mut generation = verifier.current.subscribe();
    loop {
        let cfg = verifier.current.load().settings.config.verify.clone();
        let wait = if cfg.interval.is_zero() {
            Duration::MAX
        } else {
            cfg.interval
        };
        tokio::select! {
            changed = generation.changed() => {
                if changed.is_err() {
                    return;
                }
                // A reload may have switched the check on, off, or changed its interval.
                continue;
            }
            _ = sleep(wait) => {}
            () = stop.stopped() => return,
        }
        let opts = Options {
            since: cfg.since,
            limit: cfg.limit,
            repair: cfg.repair,
        };
        let report = verifier.run(&opts, &|_, _| {}).await;
        let left = report.divergent_left();
        if left > 0 || !report.findings.is_empty() {
            tracing::warn!(divergent = left, summary = %report.summary(), "background verify found keys out of order");
        } else {
            tracing::debug!(summary = %report.summary(), "background verify");
        }
    }
}

async fn sleep(d: Duration) {
    if d == Duration::MAX {
        std::future::pending::<()>().await
    } else {
        tokio::time::sleep(d).await
    }
}
