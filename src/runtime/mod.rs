//! The running configuration: one immutable snapshot per config generation, swapped atomically.
//!
//! A transaction loads the snapshot once and runs to its end on it (retries and compensations
//! included); new transactions see a new snapshot from the moment it is stored. [`reload`] swaps
//! in edited config files (the watcher and the diff it uses live in [`crate::config`]).

pub mod reload;

use crate::config::Settings;
use crate::telemetry::ScrapeView;
use crate::upstream::NodeSet;
use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::sync::watch;

/// One config generation.
pub struct Runtime {
    /// Increases by one with every successful reload; the first config is generation 1.
    pub generation: u64,
    pub settings: Arc<Settings>,
    pub nodes: NodeSet,
}

/// The current runtime, readable without locks.
pub struct Current {
    inner: ArcSwap<Runtime>,
    /// The generation in effect, published after every swap (for waiting on a reload).
    generation: watch::Sender<u64>,
}

impl Current {
    /// Starts at generation 1. Must be called inside a tokio runtime (nodes start probing).
    pub fn new(settings: Settings) -> Current {
        let nodes = NodeSet::build(&settings, None);
        Current {
            inner: ArcSwap::from_pointee(Runtime {
                generation: 1,
                settings: Arc::new(settings),
                nodes,
            }),
            generation: watch::Sender::new(1),
        }
    }

    /// The snapshot in effect now.
    pub fn load(&self) -> Arc<Runtime> {
        self.inner.load_full()
    }

    /// Swaps in new settings, keeping unchanged nodes; returns the new snapshot.
    pub fn swap(&self, settings: Settings) -> Arc<Runtime> {
        let old = self.inner.load_full();
        let nodes = NodeSet::build(&settings, Some(&old.nodes));
        let next = Arc::new(Runtime {
            generation: old.generation + 1,
            settings: Arc::new(settings),
            nodes,
        });
        self.inner.store(next.clone());
        self.generation.send_replace(next.generation);
        next
    }

    /// A receiver of the generation in effect: changes right after each swap, so
    /// `rx.wait_for(|g| *g >= n)` waits until generation `n` serves new transactions.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

impl Runtime {
    /// What a metrics scrape shows of this generation, with the journal's `(in_doubt, failed)`
    /// counts.
    pub fn scrape_view(&self, (in_doubt, failed): (usize, usize)) -> ScrapeView {
        ScrapeView {
            generation: self.generation,
            in_doubt,
            failed,
            nodes: self
                .nodes
                .all()
                .iter()
                .map(|n| (n.name().to_string(), n.health.is_up()))
                .collect(),
            journal: None,
            joining: self
                .nodes
                .all()
                .iter()
                .filter_map(|n| {
                    let p = n.catch_up.view()?.progress;
                    Some((n.name().to_string(), p.total.saturating_sub(p.done) as u64))
                })
                .collect(),
        }
    }
}

/// Tells the background tasks (re-drive, takeover, verify) to stop: [`Stopper::stop`] ends
/// each at its next wait, after the transaction it is working on.
#[derive(Debug)]
pub struct Stopper(tokio::sync::watch::Sender<bool>);

/// A background task's side of a [`Stopper`].
#[derive(Debug, Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stopper {
    pub fn new() -> Stopper {
        Stopper(tokio::sync::watch::channel(false).0)
    }

    /// A signal for one more task.
    pub fn signal(&self) -> Stop {
        Stop(self.0.subscribe())
    }

    /// Stops every task holding a signal of this stopper.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Default for Stopper {
    fn default() -> Self {
        Stopper::new()
    }
}

impl Stop {
    /// Resolves once the stopper stopped (or was dropped).
    pub async fn stopped(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod stop_tests {
    use super::Stopper;

    #[tokio::test(start_paused = true)]
    async fn a_stop_reaches_every_signal() {
        let stopper = Stopper::new();
        let (mut a, mut b) = (stopper.signal(), stopper.signal());
        let waiting = tokio::spawn(async move { a.stopped().await });
        stopper.stop();
        waiting.await.unwrap();
        b.stopped().await;
    }
}
