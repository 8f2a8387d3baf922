//! Fault injection of a reference node: the standing knobs ([`Faults`]) and
//! the one-shot faults queued by tests, and the decision each write request
//! gets when it arrives.
//!
//! One-shot faults are consumed by write requests (POST, PUT, PATCH, DELETE)
//! in this order of precedence: fail, apply-then-fail, reject, hold, reset. A write
//! that finds no one-shot fault pending rolls the seeded dice of the rates
//! (`error_rate` first, then `apply_then_fail_rate`, then `reset_rate`), so runs
//! with the same seed and the same request order fail the same writes.

use http::StatusCode;
use std::time::Duration;

/// Standing faults of a node: given at start, adjustable while it runs.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Probability (0.0 to 1.0) that a write is answered 500 without being applied.
    pub error_rate: f64,
    /// Latency added before each request is handled (`/healthz` excepted).
    pub delay: Duration,
    /// Up to this much more latency, drawn per request from the seeded generator (network
    /// jitter: concurrent requests overtake each other).
    pub jitter: Duration,
    /// Probability (0.0 to 1.0) that a write is applied and then answered 500.
    pub apply_then_fail_rate: f64,
    /// Start down: nothing listens on the node's address until `set_down(false)`.
    pub down: bool,
    /// Seed of the random generator behind the rates, for reproducible runs.
    pub seed: u64,
    /// Answer a create of a group that already exists with `500 text/html` "Insert failed,
    /// duplicate id" instead of 400, as json-server 0.17 does: nothing applied, yet a 500.
    pub duplicate_as_500: bool,
    /// Probability (0.0 to 1.0) that a write's connection is cut with no answer (a reset); half
    /// of them, drawn from the seeded generator, after the write was applied.
    pub reset_rate: f64,
}

/// What happens to a write request once it is let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteFault {
    /// Apply it and answer normally.
    None,
    /// Answer 500 without applying.
    Fail,
    /// Apply it, then answer 500.
    ApplyThenFail,
    /// Answer this status without applying.
    Reject(StatusCode),
    /// Cut the connection with no answer, after applying the write when `applied`.
    Reset { applied: bool },
}

/// The decision a write request gets on arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Hold it open until released, then ask [`FaultState::random_write`].
    Hold,
    /// Handle it now, with this fault.
    Now(WriteFault),
}

/// The live fault state of one node: rates, delay, pending one-shot faults
/// and the seeded random generator.
#[derive(Debug)]
pub(crate) struct FaultState {
    rng: fastrand::Rng,
    error_rate: f64,
    apply_then_fail_rate: f64,
    reset_rate: f64,
    delay: Duration,
    jitter: Duration,
    fail: usize,
    apply_then_fail: usize,
    reject: usize,
    reject_status: StatusCode,
    hold: usize,
    reset: usize,
    duplicate_as_500: bool,
}

impl FaultState {
    /// The state for a node started with `faults`; no one-shot fault pending.
    pub(crate) fn new(faults: &Faults) -> Self {
        FaultState {
            rng: fastrand::Rng::with_seed(faults.seed),
            error_rate: clamp_rate(faults.error_rate),
            apply_then_fail_rate: clamp_rate(faults.apply_then_fail_rate),
            reset_rate: clamp_rate(faults.reset_rate),
            delay: faults.delay,
            jitter: faults.jitter,
            fail: 0,
            apply_then_fail: 0,
            reject: 0,
            reject_status: StatusCode::UNPROCESSABLE_ENTITY,
            hold: 0,
            reset: 0,
            duplicate_as_500: faults.duplicate_as_500,
        }
    }

    /// Whether a duplicate create answers 500 (json-server's way).
    pub(crate) fn duplicate_as_500(&self) -> bool {
        self.duplicate_as_500
    }

    /// Sets whether a duplicate create answers 500 (json-server's way).
    pub(crate) fn set_duplicate_as_500(&mut self, on: bool) {
        self.duplicate_as_500 = on;
    }

    /// Decides the fate of a write request that just arrived, consuming one
    /// pending one-shot fault if there is one.
    pub(crate) fn next_write(&mut self) -> Arrival {
        if take(&mut self.fail) {
            Arrival::Now(WriteFault::Fail)
        } else if take(&mut self.apply_then_fail) {
            Arrival::Now(WriteFault::ApplyThenFail)
        } else if take(&mut self.reject) {
            Arrival::Now(WriteFault::Reject(self.reject_status))
        } else if take(&mut self.hold) {
            Arrival::Hold
        } else if take(&mut self.reset) {
            Arrival::Now(WriteFault::Reset { applied: false })
        } else {
            Arrival::Now(self.random_write())
        }
    }

    /// Rolls the dice of the rates for a write (also used once a held write
    /// is released).
    pub(crate) fn random_write(&mut self) -> WriteFault {
        if self.error_rate > 0.0 && self.rng.f64() < self.error_rate {
            WriteFault::Fail
        } else if self.apply_then_fail_rate > 0.0 && self.rng.f64() < self.apply_then_fail_rate {
            WriteFault::ApplyThenFail
        } else if self.reset_rate > 0.0 && self.rng.f64() < self.reset_rate {
            WriteFault::Reset {
                applied: self.rng.bool(),
            }
        } else {
            WriteFault::None
        }
    }

    /// The latency added before handling a request: the delay plus a draw of the jitter.
    pub(crate) fn delay(&mut self) -> Duration {
        if self.jitter.is_zero() {
            return self.delay;
        }
        let extra = self.rng.u64(..=self.jitter.as_micros() as u64);
        self.delay + Duration::from_micros(extra)
    }

    /// The standing faults now (rates and delay; `down` and `seed` are not kept here).
    pub(crate) fn standing(&self) -> Faults {
        Faults {
            error_rate: self.error_rate,
            delay: self.delay,
            jitter: self.jitter,
            apply_then_fail_rate: self.apply_then_fail_rate,
            duplicate_as_500: self.duplicate_as_500,
            ..Faults::default()
        }
    }

    /// Adds `n` writes to answer 500 without applying.
    pub(crate) fn fail_next(&mut self, n: usize) {
        self.fail += n;
    }

    /// Adds `n` writes to apply and then answer 500.
    pub(crate) fn apply_then_fail_next(&mut self, n: usize) {
        self.apply_then_fail += n;
    }

    /// Adds `n` writes to answer `status` without applying; the last status
    /// given applies to all pending rejections.
    pub(crate) fn reject_next(&mut self, n: usize, status: StatusCode) {
        self.reject += n;
        self.reject_status = status;
    }

    /// Adds `n` writes to hold open until released.
    pub(crate) fn hold_next(&mut self, n: usize) {
        self.hold += n;
    }

    /// Adds `n` writes whose connection is cut with no answer, not applied.
    pub(crate) fn reset_next(&mut self, n: usize) {
        self.reset += n;
    }

    /// Drops every pending one-shot fault (rates and delay stay).
    pub(crate) fn clear_one_shots(&mut self) {
        self.fail = 0;
        self.apply_then_fail = 0;
        self.reject = 0;
        self.hold = 0;
        self.reset = 0;
    }

    /// Sets the added latency.
    pub(crate) fn set_delay(&mut self, delay: Duration) {
        self.delay = delay;
    }

    /// Sets the fail-without-applying rate (clamped to 0.0..=1.0).
    pub(crate) fn set_error_rate(&mut self, rate: f64) {
        self.error_rate = clamp_rate(rate);
    }

    /// Sets the apply-then-fail rate (clamped to 0.0..=1.0).
    pub(crate) fn set_apply_then_fail_rate(&mut self, rate: f64) {
        self.apply_then_fail_rate = clamp_rate(rate);
    }

    /// Sets the reset rate (clamped to 0.0..=1.0).
    pub(crate) fn set_reset_rate(&mut self, rate: f64) {
        self.reset_rate = clamp_rate(rate);
    }
}

/// Consumes one unit of a counter; false when it is already zero.
fn take(count: &mut usize) -> bool {
    if *count == 0 {
        return false;
    }
    *count -= 1;
    true
}

/// A probability: NaN counts as 0, everything else is clamped to 0.0..=1.0.
fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> FaultState {
        FaultState::new(&Faults::default())
    }

    #[test]
    fn no_faults_means_every_write_goes_through() {
        let mut f = quiet();
        for _ in 0..100 {
            assert_eq!(f.next_write(), Arrival::Now(WriteFault::None));
        }
    }

    #[test]
    fn one_shots_are_consumed_in_precedence_order() {
        let mut f = quiet();
        f.hold_next(1);
        f.reject_next(1, StatusCode::CONFLICT);
        f.apply_then_fail_next(1);
        f.fail_next(2);
        let seen: Vec<Arrival> = (0..6).map(|_| f.next_write()).collect();
        assert_eq!(
            seen,
            vec![
                Arrival::Now(WriteFault::Fail),
                Arrival::Now(WriteFault::Fail),
                Arrival::Now(WriteFault::ApplyThenFail),
                Arrival::Now(WriteFault::Reject(StatusCode::CONFLICT)),
                Arrival::Hold,
                Arrival::Now(WriteFault::None),
            ]
        );
    }

    #[test]
    fn clearing_drops_pending_one_shots() {
        let mut f = quiet();
        f.fail_next(3);
        f.hold_next(3);
        f.clear_one_shots();
        assert_eq!(f.next_write(), Arrival::Now(WriteFault::None));
    }

    #[test]
    fn rates_are_reproducible_for_a_seed() {
        let faults = Faults {
            error_rate: 0.3,
            apply_then_fail_rate: 0.3,
            seed: 7,
            ..Faults::default()
        };
        let run = || {
            let mut f = FaultState::new(&faults);
            (0..200).map(|_| f.random_write()).collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        assert!(first.contains(&WriteFault::Fail));
        assert!(first.contains(&WriteFault::ApplyThenFail));
        assert!(first.contains(&WriteFault::None));
    }

    #[test]
    fn rate_one_always_fails_and_bad_rates_are_clamped() {
        let mut f = quiet();
        f.set_error_rate(7.0);
        assert!((0..50).all(|_| f.random_write() == WriteFault::Fail));
        f.set_error_rate(f64::NAN);
        f.set_apply_then_fail_rate(-1.0);
        assert!((0..50).all(|_| f.random_write() == WriteFault::None));
    }
}
