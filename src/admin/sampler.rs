//! Rates and recent latency percentiles of each node: the node counters
//! ([`crate::upstream::stats`]) and the retries counted by the metrics only grow, so a rate is the
//! difference of two readings over the time between them. A reading is taken every
//! [`EVERY`] (by [`run`], started with the admin listener) and kept for [`WINDOW`]; a report
//! compares now with the oldest reading kept, or with zero at start when none is kept yet.

use super::AdminState;
use crate::upstream::stats::StatsReading;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How often a reading is taken.
pub(crate) const EVERY: Duration = Duration::from_secs(5);
/// How far back the rates look.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// One node's counters at one time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReading {
    pub stats: StatsReading,
    pub retries: u64,
}

/// Readings of every node, oldest first.
#[derive(Debug)]
pub struct Sampler {
    started: Instant,
    readings: Mutex<VecDeque<(Instant, HashMap<String, NodeReading>)>>,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            started: Instant::now(),
            readings: Mutex::new(VecDeque::new()),
        }
    }
}

/// What one node did over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// Seconds the window covers.
    pub seconds: f64,
    pub delta: NodeReading,
}

impl Sampler {
    /// Keeps `now` (every node's counters) and drops readings older than the window.
    pub fn keep(&self, now: HashMap<String, NodeReading>) {
        let mut r = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        let at = Instant::now();
        r.push_back((at, now));
        while r
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > WINDOW)
        {
            r.pop_front();
        }
    }

    /// What `node` did between the oldest reading kept (or the start) and `now`.
    pub fn window(&self, node: &str, now: &NodeReading) -> Window {
        let r = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        let (since, base) = match r.front() {
            Some((t, readings)) => (*t, readings.get(node).cloned().unwrap_or_default()),
            None => (self.started, NodeReading::default()),
        };
        let seconds = since.elapsed().as_secs_f64().max(0.001);
        Window {
            seconds,
            delta: NodeReading {
                stats: now.stats.since(&base.stats),
                retries: now.retries.saturating_sub(base.retries),
            },
        }
    }
}

/// Every node's counters now.
pub(crate) fn readings(state: &AdminState) -> HashMap<String, NodeReading> {
    let rt = state.current.load();
    rt.nodes
        .all()
        .iter()
        .map(|n| {
            let reading = NodeReading {
                stats: n.stats.reading(),
                retries: state.metrics.node_retries(n.name()),
            };
            (n.name().to_string(), reading)
        })
        .collect()
}

/// Takes a reading every [`EVERY`] until `stop` resolves.
pub(crate) async fn run(state: AdminState, stop: impl std::future::Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => state.sampler.keep(readings(&state)),
            () = &mut stop => return,
        }
    }
}
