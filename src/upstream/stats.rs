//! What the operator views show of one node's traffic: requests, errors (no answer, or a 5xx),
//! the last error and when it happened, and a latency histogram that counts a request cut off
//! by a timeout at the time it waited (a slow node must not look fast because its slow answers
//! never arrive). Health probes are not counted: an idle dtc shows no traffic.
//!
//! All counters only grow; the admin API turns them into rates and percentiles by taking the
//! difference of two readings. One atomic add per bucket and counter: no lock on the data path
//! except when an error is recorded.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds: 0.25 ms doubling to about 16 s; the last
/// bucket takes everything slower.
pub(crate) const BUCKETS_US: [u64; 17] = [
    250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000,
    1_024_000, 2_048_000, 4_096_000, 8_192_000, 16_384_000,
];

/// The last error seen on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened: `connect failed: ...`, `answered 503`, `no answer after 300ms`.
    pub error: String,
}

/// One reading of a node's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsReading {
    pub requests: u64,
    pub errors: u64,
    /// Requests per latency bucket ([`BUCKETS_US`], plus one for slower).
    pub latency: Vec<u64>,
}

/// A node's traffic counters.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Set by the first answer below 500 (a probe's too).
    answered: std::sync::atomic::AtomicBool,
    requests: AtomicU64,
    errors: AtomicU64,
    latency: [AtomicU64; BUCKETS_US.len() + 1],
    last_error: Mutex<Option<LastError>>,
}

impl NodeStats {
    /// One request ended after `took`; `error` says why it failed, if it did.
    pub fn record(&self, took: Duration, error: Option<String>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        if let Some(error) = error {
            self.errors.fetch_add(1, Ordering::Relaxed);
            self.note_error(error);
        }
    }

    /// Notes an answer below 500 (a probe's too): the node can be reached.
    pub fn note_answer(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    /// Whether the node ever answered below 500 since dtc started.
    pub fn answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// Remembers `error` as the last one without counting a request (a failed health probe).
    pub fn note_error(&self, error: String) {
        let at_ms = now_ms();
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(LastError { at_ms, error });
    }

    /// The counters now.
    pub fn reading(&self) -> StatsReading {
        StatsReading {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: self
                .latency
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }

    /// The last error, if any.
    pub fn last_error(&self) -> Option<LastError> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl StatsReading {
    /// What happened between `earlier` and this reading.
    pub fn since(&self, earlier: &StatsReading) -> StatsReading {
        StatsReading {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            latency: self
                .latency
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.latency.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// The latency below which fraction `q` (0 to 1) of the requests fell, as the upper bound of
    /// its bucket in milliseconds; `None` without requests. Slower than the last bound shows as
    /// that bound.
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let us = BUCKETS_US
                    .get(i)
                    .copied()
                    .unwrap_or(BUCKETS_US[BUCKETS_US.len() - 1]);
                return Some(us as f64 / 1000.0);
            }
        }
        None
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_count_as_slow_requests_and_errors() {
        let s = NodeStats::default();
        let before = s.reading();
        s.record(Duration::from_micros(300), None);
        s.record(
            Duration::from_millis(300),
            Some("no answer after 300ms".into()),
        );
        let r = s.reading().since(&before);
        assert_eq!((r.requests, r.errors), (2, 1));
        assert_eq!(r.percentile_ms(0.5), Some(0.5));
        assert_eq!(r.percentile_ms(0.99), Some(512.0));
        assert_eq!(s.last_error().unwrap().error, "no answer after 300ms");
        assert_eq!(StatsReading::default().percentile_ms(0.5), None);
    }
}
