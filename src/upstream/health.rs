//! Node health for fail-fast and reads: **up**, **down** (unreachable) and **half-open** (a trial
//! under way), decided from whether the node can be reached — never from what it answers.
//!
//! - Every call to a node (writes, undos, read-backs, reads, probes) reports a [`Reach`]: an
//!   HTTP answer of any status means the node is talking; a refused or failed connection, a
//!   connect timeout or no answer within the attempt timeout means it could not be reached; a
//!   connection that broke after the request went out (a reset) says neither.
//! - **Up → down**: within the last `health.window`, at least `health.unhealthy_threshold` calls
//!   found the node unreachable and they are at least `health.failure_rate` of all its calls.
//!   This is the failure-percentage ejection of Envoy's outlier detection
//!   (`failure_percentage_threshold` with a `failure_percentage_request_volume`), counting only
//!   what Envoy calls locally originated errors, and the time-bucketed window of linkerd2-proxy's
//!   success-rate breaker (ten buckets, a minimum of samples). Or: the last
//!   `health.consecutive_unreachable` calls in a row found it unreachable, Envoy's
//!   `consecutive_local_origin_failure` — a busy node that just went away still has its last
//!   answers in the window, and the rate alone would take half the window to see it gone.
//!   Unlike both anchors, an HTTP 5xx is never
//!   a failure here and neither is a reset: a node that answers, however badly, still applies
//!   writes, and the retry loop mends the rest. A count of consecutive failures (the previous
//!   rule) tripped on three 500s that the next retry would have fixed. The window is short (2 s)
//!   because a node that cannot be reached fails every write (all or none): Envoy's 10 s sweep
//!   suits a balancer that can route around a host, not a replicator that cannot.
//! - **Down → half-open → up**: like linkerd2-proxy's consecutive-failures breaker, a down node
//!   gets one trial after a backoff that doubles up to a maximum (`health.trial_initial` to
//!   `health.trial_max`, 100 ms to 500 ms by default, where linkerd waits 1 s to 60 s: here a
//!   node that returns must be used again within a second). The trial is a probe of
//!   `health.path`, or a write whose route can be undone ([`Health::admit_write`]); any call sent
//!   after the node went down that reaches it counts, and `health.healthy_threshold` of them
//!   bring it up. Answers to calls sent before it went down are stragglers and change nothing.
//!
//! Flips are logged once, by [`super::Node`]. With `health.path = ""` (no probes) a node is
//! never marked down.

use crate::config::HealthConfig;
use crate::config::duration::Human;
use crate::retry::Backoff;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What one call to a node showed about reaching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// An HTTP answer came, whatever its status: the node is talking.
    Reached,
    /// The node could not be reached (the reason, for the status page): the connection was
    /// refused or failed, the connect timed out, or no answer came within the attempt timeout.
    Unreachable(String),
    /// Says nothing either way: the connection broke after the request went out, the answer was
    /// too large, or the request was never sent.
    Unclear,
}

/// A change of state worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flip {
    /// Marked down: why, and the window's counts.
    Down {
        reason: String,
        unreachable: u32,
        calls: u32,
    },
    /// Up again after being down this long.
    Up { down_for: Duration },
}

/// What the probe loop does next ([`Health::poll`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Probe now (a periodic check, or the half-open trial just claimed for the probe).
    Probe,
    /// Nothing to do before this instant (or an earlier state change).
    Wait(Instant),
}

/// Whether a write may go to this node ([`Health::admit_write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The node is up.
    Up,
    /// The node is down and the write is its half-open trial.
    Trial,
    /// The node is down: refuse, and say the next trial is due in this long.
    Refused(Duration),
}

/// The state a reader sees ([`Health::view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthView {
    /// `up`, `down` or `half_open`.
    pub state: &'static str,
    /// Since when the node is down (also while half-open).
    pub down_since: Option<SystemTime>,
    /// Why it was marked down, and the latest failed trial's error.
    pub reason: Option<String>,
    /// When the next trial is due (down), or `None`.
    pub next_trial_in: Option<Duration>,
    /// Trials that failed since it went down.
    pub failed_trials: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Up,
    /// Unreachable; the next trial is due at this instant.
    Down {
        next_trial: Instant,
    },
    /// A trial (a probe or a write) started at this instant.
    Trial {
        started: Instant,
    },
}

/// Health of one node.
#[derive(Debug)]
pub struct Health {
    /// Mirrors `state == Up`, for the read path and admission without the lock.
    up: AtomicBool,
    inner: Mutex<Inner>,
    /// Wakes the probe loop when the node goes down or a write claims a trial.
    changed: Notify,
    /// Wakes every write waiting for the node to come back ([`Health::came_up`]).
    up_again: Notify,
}

#[derive(Debug)]
struct Inner {
    state: State,
    window: Window,
    /// When it went down (tokio clock, for stragglers; wall clock, for people).
    down_at: Option<(Instant, SystemTime)>,
    reason: String,
    /// The latest failed trial's error.
    last_trial: Option<String>,
    failed_trials: u32,
    /// While up: the calls in a row, latest last, that found it unreachable.
    in_a_row: u32,
    /// Calls that reached it since its last failed trial (towards `healthy_threshold`).
    reached: u32,
    /// While up: when the next periodic probe is due, and the probes in a row that missed.
    next_probe: Instant,
    probe_misses: u32,
}

impl Default for Health {
    fn default() -> Self {
        let now = Instant::now();
        Health {
            up: AtomicBool::new(true),
            inner: Mutex::new(Inner {
                state: State::Up,
                window: Window::new(HealthConfig::default().window, now),
                down_at: None,
                reason: String::new(),
                last_trial: None,
                failed_trials: 0,
                in_a_row: 0,
                reached: 0,
                next_probe: now,
                probe_misses: 0,
            }),
            changed: Notify::new(),
            up_again: Notify::new(),
        }
    }
}

impl Health {
    /// Whether the node takes traffic (reads, and writes without a trial).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// When the node went down, while it is down (half-open included).
    pub fn down_at(&self) -> Option<Instant> {
        self.lock().down_at.map(|(at, _)| at)
    }

    /// Folds in the outcome of a call sent at `sent`. Returns the flip it caused, if any.
    pub fn record(&self, reach: &Reach, sent: Instant, cfg: &HealthConfig) -> Option<Flip> {
        let now = Instant::now();
        let mut s = self.lock();
        match s.state {
            State::Up => {
                s.window.resize(cfg.window, now);
                let unreachable = matches!(reach, Reach::Unreachable(_));
                if *reach != Reach::Unclear {
                    s.window.record(unreachable, now);
                    s.in_a_row = if unreachable { s.in_a_row + 1 } else { 0 };
                }
                let Reach::Unreachable(why) = reach else {
                    return None;
                };
                let (calls, failed) = s.window.counts();
                let by_rate = failed >= cfg.unhealthy_threshold
                    && f64::from(failed) >= cfg.failure_rate * f64::from(calls);
                // A busy node that just went away: its answers of the last moments still fill
                // the window, so the rate would take about half the window to trip.
                let in_a_row = s.in_a_row >= cfg.consecutive_unreachable;
                if cfg.path.is_empty() || !(by_rate || in_a_row) {
                    return None;
                }
                s.down_at = Some((now, SystemTime::now()));
                s.reason = if by_rate {
                    format!(
                        "{failed} of {calls} calls within {} found it unreachable (last: {why})",
                        Human(cfg.window)
                    )
                } else {
                    format!(
                        "{} calls in a row found it unreachable (last: {why})",
                        s.in_a_row
                    )
                };
                s.in_a_row = 0;
                s.last_trial = None;
                s.failed_trials = 0;
                s.reached = 0;
                s.state = State::Down {
                    next_trial: now + trial_delay(cfg, 0),
                };
                self.up.store(false, Ordering::Relaxed);
                drop(s);
                self.changed.notify_one();
                Some(Flip::Down {
                    reason: why.clone(),
                    unreachable: failed,
                    calls,
                })
            }
            State::Down { .. } | State::Trial { .. } => {
                let (down_at, _) = s.down_at?;
                // Sent before the node went down: a straggler says nothing about now.
                if sent < down_at {
                    return None;
                }
                match reach {
                    Reach::Reached => {
                        s.reached += 1;
                        if s.reached < cfg.healthy_threshold {
                            // Another trial right away.
                            s.state = State::Down { next_trial: now };
                            drop(s);
                            self.changed.notify_one();
                            return None;
                        }
                        Some(self.come_up(s, now))
                    }
                    Reach::Unreachable(why) => {
                        if let State::Trial { started } = s.state
                            && sent >= started
                        {
                            fail_trial(&mut s, why, now, cfg);
                        }
                        None
                    }
                    Reach::Unclear => None,
                }
            }
        }
    }

    /// A write wants to go to this node. A down node admits one write as its half-open trial
    /// when `undoable` (the write's route can undo it where it applied) and the trial is due;
    /// otherwise the write is refused until the next trial.
    pub fn admit_write(&self, undoable: bool, cfg: &HealthConfig) -> Admission {
        if self.is_up() {
            return Admission::Up;
        }
        let now = Instant::now();
        let mut s = self.lock();
        match s.state {
            State::Up => Admission::Up,
            State::Down { next_trial } if undoable && now >= next_trial => {
                s.state = State::Trial { started: now };
                drop(s);
                self.changed.notify_one();
                Admission::Trial
            }
            State::Down { next_trial } => {
                Admission::Refused(next_trial.saturating_duration_since(now))
            }
            State::Trial { started } => {
                let ends = started + cfg.timeout;
                Admission::Refused(
                    ends.saturating_duration_since(now) + trial_delay(cfg, s.failed_trials + 1),
                )
            }
        }
    }

    /// The probe loop's next step at `now`: claims a due trial for the probe, and fails a trial
    /// that has had no answer for `health.timeout`.
    pub fn poll(&self, cfg: &HealthConfig) -> Step {
        let now = Instant::now();
        let mut s = self.lock();
        if let State::Trial { started } = s.state {
            let ends = started + cfg.timeout;
            if now < ends {
                return Step::Wait(ends);
            }
            fail_trial(
                &mut s,
                "the trial got no answer within health.timeout",
                now,
                cfg,
            );
        }
        match s.state {
            State::Up if now >= s.next_probe => Step::Probe,
            State::Up => Step::Wait(s.next_probe),
            State::Down { next_trial } if now >= next_trial => {
                s.state = State::Trial { started: now };
                Step::Probe
            }
            State::Down { next_trial } => Step::Wait(next_trial),
            State::Trial { started } => Step::Wait(started + cfg.timeout),
        }
    }

    /// A probe ended with `reach` (its evidence is already recorded): schedules the next one,
    /// and fails the trial it was if it did not reach the node.
    pub fn probed(&self, reach: &Reach, cfg: &HealthConfig) {
        let now = Instant::now();
        let mut s = self.lock();
        match s.state {
            State::Up => {
                // A probe that missed is repeated soon, on the trial schedule: an idle node that
                // died is found within a second, not after `unhealthy_threshold` intervals.
                s.probe_misses = match reach {
                    Reach::Reached => 0,
                    _ => s.probe_misses + 1,
                };
                s.next_probe = match s.probe_misses {
                    0 => now + cfg.interval,
                    n => now + trial_delay(cfg, n - 1).min(cfg.interval),
                };
            }
            State::Trial { .. } if *reach != Reach::Reached => {
                let why = match reach {
                    Reach::Unreachable(why) => why.as_str(),
                    _ => "the probe got no complete answer",
                };
                fail_trial(&mut s, why, now, cfg);
            }
            _ => {}
        }
    }

    /// Resolves when the state changed in a way the probe loop must see.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Waits for a node the breaker holds down to come back, while it has been down for less
    /// than `newly`, and not past `until` (if any). True when it came back; false at once when it
    /// is not held down (never marked, or already back).
    pub async fn back_within(&self, newly: Duration, until: Option<Instant>) -> bool {
        let came_up = self.came_up();
        tokio::pin!(came_up);
        came_up.as_mut().enable();
        let Some(down_at) = self.down_at() else {
            return false;
        };
        let gone = down_at + newly;
        let stop = until.map_or(gone, |u| u.min(gone));
        tokio::select! {
            _ = came_up => true,
            _ = tokio::time::sleep_until(stop) => false,
        }
    }

    /// Resolves when the node comes back up (register it before looking at [`Health::is_up`]:
    /// `notified` registers when first polled or enabled).
    pub fn came_up(&self) -> tokio::sync::futures::Notified<'_> {
        self.up_again.notified()
    }

    /// The state as the admin shows it.
    pub fn view(&self) -> HealthView {
        let now = Instant::now();
        let s = self.lock();
        let (state, next_trial_in) = match s.state {
            State::Up => ("up", None),
            State::Down { next_trial } => ("down", Some(next_trial.saturating_duration_since(now))),
            State::Trial { .. } => ("half_open", None),
        };
        let down = state != "up";
        HealthView {
            state,
            down_since: s.down_at.filter(|_| down).map(|(_, at)| at),
            reason: down.then(|| match &s.last_trial {
                Some(t) => format!("{}; last trial: {t}", s.reason),
                None => s.reason.clone(),
            }),
            next_trial_in,
            failed_trials: if down { s.failed_trials } else { 0 },
        }
    }

    fn come_up(&self, mut s: MutexGuard<'_, Inner>, now: Instant) -> Flip {
        let down_for = s
            .down_at
            .map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(at));
        s.state = State::Up;
        s.down_at = None;
        s.failed_trials = 0;
        s.reached = 0;
        s.in_a_row = 0;
        s.probe_misses = 0;
        s.window.clear(now);
        self.up.store(true, Ordering::Relaxed);
        self.up_again.notify_waiters();
        Flip::Up { down_for }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A trial that did not reach the node: back to down, the next trial after a longer wait.
fn fail_trial(s: &mut Inner, why: &str, now: Instant, cfg: &HealthConfig) {
    s.failed_trials += 1;
    s.reached = 0;
    s.state = State::Down {
        next_trial: now + trial_delay(cfg, s.failed_trials),
    };
    s.last_trial = Some(why.to_string());
}

/// The wait before the trial that follows `failed` failed trials: `trial_initial`, doubling up to
/// `trial_max`, with the retry policy's jitter so sidecars do not probe in step.
pub(crate) fn trial_delay(cfg: &HealthConfig, failed: u32) -> Duration {
    Backoff {
        attempts: u32::MAX,
        initial: cfg.trial_initial,
        max: cfg.trial_max,
        multiplier: 2.0,
        jitter: 0.2,
        deadline: Duration::MAX,
    }
    .delay(failed + 1)
}

#[cfg(test)]
mod tests;
mod window;

use window::Window;
