//! The shared store's metrics (`[cluster]` only; a sidecar without it exports none of them):
//! lease acquisitions and how long they waited, takeovers, store round trips, store errors by
//! kind, whether the store is reachable, and steps of its clock.

use crate::journal::shared::events::{Acquired, StoreErrorKind, StoreEvents};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// The store's counters, histograms and gauge, registered once.
pub struct StoreMetrics {
    acquisitions: [Counter; 3],
    lease_wait: Histogram,
    takeovers: Counter,
    round_trip: Histogram,
    errors: [Counter; 4],
    up: Gauge,
    clock_steps: Counter,
}

impl StoreMetrics {
    /// Registers every store metric in `r`, with a zero series for each result and kind.
    pub fn register(r: &mut Registry) -> StoreMetrics {
        let acquisitions = Family::<ResultLabel, Counter>::default();
        r.register(
            "dtc_lease_acquisitions",
            "Key lease acquisitions by writes, repairs and background work, by result",
            acquisitions.clone(),
        );
        // 1 ms to about 16 s: a wait is bounded by cluster.wait.
        let lease_wait = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        r.register(
            "dtc_lease_wait_seconds",
            "Time from the first try for a key's lease to its grant (or giving up)",
            lease_wait.clone(),
        );
        let takeovers = Counter::default();
        r.register(
            "dtc_lease_takeovers",
            "Expired leases of other sidecars (or of this one) taken over",
            takeovers.clone(),
        );
        // 0.1 ms to about 3 s.
        let round_trip = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        r.register(
            "dtc_store_round_trip_seconds",
            "Duration of one statement on the shared store, answered or not",
            round_trip.clone(),
        );
        let errors = Family::<KindLabel, Counter>::default();
        r.register(
            "dtc_store_errors",
            "Failed store operations, by kind (unreachable, timeout, query, lease_lost)",
            errors.clone(),
        );
        let up = Gauge::default();
        r.register(
            "dtc_store_up",
            "Whether the shared store answered the last statement (1) or not (0)",
            up.clone(),
        );
        let clock_steps = Counter::default();
        r.register(
            "dtc_store_clock_steps",
            "Forward steps of the store's clock beyond the lease margin (every lease held ends early)",
            clock_steps.clone(),
        );
        up.set(1);
        StoreMetrics {
            acquisitions: ["granted", "busy", "fenced"]
                .map(|result| acquisitions.get_or_create_owned(&ResultLabel { result })),
            lease_wait,
            takeovers,
            round_trip,
            errors: StoreErrorKind::ALL
                .map(|k| errors.get_or_create_owned(&KindLabel { kind: k.as_str() })),
            up,
            clock_steps,
        }
    }
}

impl StoreEvents for StoreMetrics {
    /// A lease acquisition ended as `how` after `waited_seconds`.
    fn acquired(&self, how: Acquired, waited_seconds: f64) {
        self.acquisitions[how as usize].inc();
        self.lease_wait.observe(waited_seconds);
    }

    /// `n` expired leases were taken over.
    fn took_over(&self, n: u64) {
        self.takeovers.inc_by(n);
    }

    /// One statement took `seconds`.
    fn round_trip(&self, seconds: f64) {
        self.round_trip.observe(seconds);
    }

    /// A store operation failed.
    fn error(&self, kind: StoreErrorKind) {
        let i = StoreErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.errors[i].inc();
    }

    /// The store answered (`true`) or not.
    fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    /// The store's clock stepped forward.
    fn clock_step(&self) {
        self.clock_steps.inc();
    }
}
