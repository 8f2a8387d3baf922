//! One clock for the leases: the store's. A lease expires, and is taken over, when the store's
//! clock passes the expiry the store wrote; a holder never compares a time of its own with a
//! time of the store's. It learns from each answer how long the store granted (`expires - now()`,
//! both the store's), and counts that span on its own monotonic clock from the moment *before*
//! it sent the statement, less a safety margin: the store's `now()` came after that moment, so
//! the holder's deadline falls before the store's expiry as long as the two clocks run at
//! nearly the same rate.
//!
//! The residual assumption is a **bounded clock rate**, not a bounded offset: the sidecars'
//! and the store's clocks may be set to any time, but over one lease they must not drift apart
//! by more than the margin (a tenth of the lease,
//! [`crate::config::ClusterConfig::lease_margin`]). A *step* of the store's clock
//! breaks it — an operator setting the time, or a failover to a replica whose clock is ahead:
//! every lease then ends early by the step. [`StoreClock`] watches for that: each answer
//! carries the store's clock, and when it moved forward by more than the margin beyond what
//! the time between two answers allows, the step is logged and counted, and every lease held
//! is shortened by it ([`StoreClock::shift_ms`]), so its holder renews before the next node
//! request instead of sending on a lease another sidecar may already have taken over. A step
//! between two answers is only seen at the next answer (within a third of the lease, when the
//! holder renews): keep the store's clock slewed (NTP/chrony), never stepped.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How fast the store's clock may drift from a sidecar's before it counts as a step: 0.1 %
/// (NTP slews at most 0.05 %).
const DRIFT_PER_MILLION: i64 = 1000;

/// What the store's clock has shown so far, against this sidecar's monotonic clock.
pub struct StoreClock {
    origin: Instant,
    margin_ms: i64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The lowest upper bound seen on (store clock − local clock), in ms, and when (local ms).
    bound: Option<(i64, i64)>,
    /// Forward steps of the store's clock seen since start, in ms.
    shift_ms: i64,
}

impl StoreClock {
    /// A clock whose steps count beyond `margin`.
    pub fn new(margin: Duration) -> StoreClock {
        StoreClock {
            origin: Instant::now(),
            margin_ms: margin.as_millis() as i64,
            state: Mutex::new(State::default()),
        }
    }

    fn local_ms(&self, at: Instant) -> i64 {
        at.saturating_duration_since(self.origin).as_millis() as i64
    }

    /// Takes in one answer: sent at `sent`, received at `received`, showing the store's clock at
    /// `store_ms`. Returns the forward step it reveals, in ms, if any.
    pub fn observe(&self, sent: Instant, received: Instant, store_ms: i64) -> Option<i64> {
        let (s, r) = (self.local_ms(sent), self.local_ms(received));
        // The store read its clock between the send and the receipt, so the offset between the
        // clocks lies in [store − received, store − sent].
        let (low, high) = (store_ms - r, store_ms - s);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let allowed = st
            .bound
            .map(|(b, at)| b + (s - at).max(0) * DRIFT_PER_MILLION / 1_000_000);
        let step = allowed
            .map(|a| low - a)
            .filter(|&step| step > self.margin_ms);
        st.bound = Some(match (step, allowed, st.bound) {
            (None, Some(a), Some((_, at))) => (a.min(high), s.max(at)),
            _ => (high, s),
        });
        if let Some(step) = step {
            st.shift_ms += step;
        }
        step
    }

    /// Forward steps of the store's clock seen so far, in ms: a lease granted before a step ends
    /// earlier by it.
    pub fn shift_ms(&self) -> i64 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shift_ms
    }
}

/// The local deadline of a grant of `granted_ms` (by the store's clock) whose statement was sent
/// at `sent`: the grant less `margin`, counted from `sent`.
pub(crate) fn deadline(sent: Instant, granted_ms: i64, margin: Duration) -> Instant {
    let granted = Duration::from_millis(granted_ms.max(0) as u64);
    sent + granted.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn latency_and_a_constant_offset_are_no_step_but_a_jump_ahead_is() {
        let clock = StoreClock::new(Duration::from_millis(100));
        let t0 = clock.origin;
        // The store's clock is an hour ahead of ours; answers take 1 to 80 ms.
        let store = |at: Instant| 3_600_000 + clock.local_ms(at);
        for (i, latency) in [1u64, 80, 5, 60, 2].iter().enumerate() {
            let sent = t0 + MS * (i as u32 * 1000);
            let received = sent + MS * (*latency as u32);
            assert_eq!(clock.observe(sent, received, store(sent + MS)), None);
        }
        let sent = t0 + MS * 6000;
        let step = clock.observe(sent, sent + MS * 3, store(sent) + 2500);
        assert!(step.is_some_and(|s| (2400..=2500).contains(&s)), "{step:?}");
        assert!((2400..=2500).contains(&clock.shift_ms()));
        // The new time is the store's clock now: no second step.
        let later = t0 + MS * 7000;
        assert_eq!(clock.observe(later, later + MS, store(later) + 2500), None);
    }

    #[test]
    fn slow_drift_within_the_allowed_rate_is_no_step() {
        let clock = StoreClock::new(Duration::from_millis(100));
        let t0 = clock.origin;
        // 500 ppm fast: 50 ms over 100 s, answered at once.
        for i in 0..=100u32 {
            let sent = t0 + Duration::from_secs(i as u64);
            let store = clock.local_ms(sent) * 10_005 / 10_000;
            assert_eq!(clock.observe(sent, sent, store), None, "at {i} s");
        }
        assert_eq!(clock.shift_ms(), 0);
    }

    #[test]
    fn a_deadline_keeps_the_margin_from_the_send() {
        let sent = Instant::now();
        let margin = Duration::from_millis(100);
        assert_eq!(deadline(sent, 1000, margin), sent + MS * 900);
        assert_eq!(deadline(sent, 50, margin), sent);
        assert_eq!(deadline(sent, -5, margin), sent);
    }
}
