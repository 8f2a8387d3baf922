//! The retry policy — exponential backoff with jitter under an overall deadline — and the one
//! loop that applies it ([`retry`]). Node writes, undos, snapshots and read-backs (through
//! `saga::attempt::call_with_retries`) and alert delivery retry with [`retry`]; the background
//! re-drive schedules each failed transaction's next run with [`Backoff::delay`] under its own
//! numbers.

use crate::config::RetryConfig;
use std::time::Duration;
use tokio::time::Instant;

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt<T> {
    /// Final (success, or a failure that retrying cannot mend): stop with this.
    Done(T),
    /// Transient: try again if the policy allows, else stop with this.
    Retry(T),
}

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

/// The retry loop: runs `attempt(n, remaining)` for n = 1, 2, … until it is [`Attempt::Done`],
/// the policy's attempts run out, or the next wait would reach the policy's deadline; between
/// attempts it calls `before_wait(&last, n, wait)` (to log) and sleeps `policy.delay(n)`.
/// `remaining` is the time left before the deadline (bound each attempt by it). Returns the last
/// result and the number of attempts made. Uses tokio's clock, so paused-time tests drive it.
pub async fn retry<T, F, Fut>(
    policy: &Backoff,
    mut attempt: F,
    mut before_wait: impl FnMut(&T, u32, Duration),
) -> (T, u32)
where
    F: FnMut(u32, Duration) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let deadline = Instant::now().checked_add(policy.deadline);
    let mut n = 0;
    loop {
        n += 1;
        let remaining = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        let last = match attempt(n, remaining).await {
            Attempt::Done(t) => return (t, n),
            Attempt::Retry(t) => t,
        };
        let wait = policy.delay(n);
        let past_deadline = deadline.is_some_and(|d| Instant::now() + wait >= d);
        if n >= policy.attempts.max(1) || past_deadline {
            return (last, n);
        }
        before_wait(&last, n, wait);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32, deadline: Duration) -> Backoff {
        Backoff {
            attempts,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.0,
            deadline,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_done_waiting_the_policy_between_attempts() {
        let started = Instant::now();
        let mut waits = Vec::new();
        let (last, n) = retry(
            &policy(5, Duration::from_secs(10)),
            |n, _| async move {
                if n < 3 {
                    Attempt::Retry(n)
                } else {
                    Attempt::Done(n)
                }
            },
            |_, _, wait| waits.push(wait.as_millis()),
        )
        .await;
        assert_eq!((last, n), (3, 3));
        assert_eq!(waits, vec![100, 200]);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_the_attempts_or_before_the_deadline() {
        let (last, n) = retry(
            &policy(3, Duration::from_secs(10)),
            |n, _| async move { Attempt::Retry(n) },
            |_, _, _| {},
        )
        .await;
        assert_eq!((last, n), (3, 3), "three attempts, then the last result");
        // 100 + 200 ms of waits fit in 350 ms; the third wait (400 ms) would pass the deadline.
        let (last, n) = retry(
            &policy(10, Duration::from_millis(350)),
            |n, remaining: Duration| async move { Attempt::Retry((n, remaining.as_millis())) },
            |_, _, _| {},
        )
        .await;
        assert_eq!(n, 3);
        assert_eq!(last, (3, 50), "the attempt is told the time left");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unbounded_deadline_does_not_overflow() {
        let (last, n) = retry(
            &policy(2, Duration::MAX),
            |n, remaining| async move { Attempt::Retry((n, remaining)) },
            |_, _, _| {},
        )
        .await;
        assert_eq!((last, n), ((2, Duration::MAX), 2));
    }

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
