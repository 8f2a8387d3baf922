//! The retry policy: exponential backoff with jitter under an overall deadline. One type serves
//! node writes, compensations, snapshots, and (with its own numbers) the background re-drive.

use crate::config::RetryConfig;
use std::time::Duration;

/// A validated retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    pub jitter: f64,
    pub deadline: Duration,
}

impl From<&RetryConfig> for Backoff {
    fn from(c: &RetryConfig) -> Self {
        Backoff {
            attempts: c.attempts,
            initial: c.initial_backoff,
            max: c.max_backoff,
            multiplier: c.multiplier,
            jitter: c.jitter,
            deadline: c.deadline,
        }
    }
}

impl Backoff {
    /// Wait after attempt number `attempt` (1-based) failed, before the next one.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .multiplier
            .powi(attempt.saturating_sub(1).min(64) as i32);
        let base = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        // Jitter spreads retries of many clients apart: the wait is base * (1 - j .. 1).
        let factor = 1.0 - self.jitter * fastrand::f64();
        Duration::from_secs_f64((base * factor).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let b = Backoff {
            attempts: 10,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
            multiplier: 2.0,
            jitter: 0.0,
            deadline: Duration::from_secs(5),
        };
        let got: Vec<u128> = (1..=4).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 350, 350]);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        fastrand::seed(7);
        let b = Backoff {
            attempts: 3,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.5,
            deadline: Duration::from_secs(5),
        };
        for _ in 0..100 {
            let d = b.delay(2).as_millis();
            assert!((100..=200).contains(&d), "{d}");
        }
    }
}
