//! A node's calls over a sliding window, in buckets: the counts [`super::Health`] trips on.

use std::time::Duration;
use tokio::time::Instant;

/// Number of buckets over the window: old calls leave it a tenth of a window at a time.
const BUCKETS: usize = 10;

/// A node's calls over a sliding window: per bucket, calls and those that found it unreachable.
#[derive(Debug)]
pub(super) struct Window {
    width: Duration,
    buckets: [(u32, u32); BUCKETS],
    current: usize,
    /// Start of the current bucket.
    start: Instant,
}

impl Window {
    pub(super) fn new(span: Duration, now: Instant) -> Window {
        Window {
            width: (span / BUCKETS as u32).max(Duration::from_millis(1)),
            buckets: [(0, 0); BUCKETS],
            current: 0,
            start: now,
        }
    }

    /// Starts afresh when the configured span changed (a reload).
    pub(super) fn resize(&mut self, span: Duration, now: Instant) {
        if (span / BUCKETS as u32).max(Duration::from_millis(1)) != self.width {
            *self = Window::new(span, now);
        }
    }

    pub(super) fn clear(&mut self, now: Instant) {
        self.buckets = [(0, 0); BUCKETS];
        self.start = now;
    }

    fn roll(&mut self, now: Instant) {
        let steps = now.saturating_duration_since(self.start).as_nanos() / self.width.as_nanos();
        if steps == 0 {
            return;
        }
        if steps >= BUCKETS as u128 {
            self.clear(now);
            return;
        }
        for _ in 0..steps {
            self.current = (self.current + 1) % BUCKETS;
            self.buckets[self.current] = (0, 0);
            self.start += self.width;
        }
    }

    pub(super) fn record(&mut self, unreachable: bool, now: Instant) {
        self.roll(now);
        let b = &mut self.buckets[self.current];
        b.0 = b.0.saturating_add(1);
        b.1 = b.1.saturating_add(u32::from(unreachable));
    }

    /// Calls and unreachable calls within the window.
    pub(super) fn counts(&self) -> (u32, u32) {
        self.buckets.iter().fold((0, 0), |(c, u), b| {
            (c.saturating_add(b.0), u.saturating_add(b.1))
        })
    }
}
