//! Node health: consecutive-failure and consecutive-success thresholds, logged only on a flip.
//!
//! Passive checks count transient failures of real traffic; active checks probe a path. A node is
//! only ever marked down while probing is enabled, since probes are what bring it back.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Health of one node.
#[derive(Debug, Default)]
pub struct Health {
    down: AtomicBool,
    failures: AtomicU32,
    successes: AtomicU32,
}

impl Health {
    /// Whether the node currently takes traffic.
    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    /// A good answer (probe, or traffic below 500). Returns true if this flipped the node up.
    pub fn success(&self, healthy_threshold: u32) -> bool {
        self.failures.store(0, Ordering::Relaxed);
        if self.is_up() {
            return false;
        }
        let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= healthy_threshold {
            self.successes.store(0, Ordering::Relaxed);
            return self.down.swap(false, Ordering::Relaxed);
        }
        false
    }

    /// A transient failure. Returns true if this flipped the node down.
    pub fn failure(&self, unhealthy_threshold: u32) -> bool {
        self.successes.store(0, Ordering::Relaxed);
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        n >= unhealthy_threshold && !self.down.swap(true, Ordering::Relaxed)
    }
}
