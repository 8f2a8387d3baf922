//! Per-resource serialization: writes to the same key run one after another, in arrival order
//! (each takes a ticket, and tickets are served in order), so every node sees them in the same
//! order. Entries vanish when unused.
//!
//! A pipelined write (`pipeline`, see `docs/writes.md`) journals its intent when it takes its
//! ticket ([`Early`]), and at its turn waits for the *window*: it goes to the nodes only once
//! every write at least `k` tickets before it has a durable end, so at most `k - 1` writes
//! before it on the key lack one. Ends are journaled in ticket order (a write ends before it
//! releases its turn; a ticket given up before its turn journals that it was never sent as it
//! goes), so after a crash a key's writes without a durable end are its last tickets, and any
//! beyond the first `k` of them was never sent.

use crate::journal::JournalError;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A journal record's durability.
pub(crate) type Durable = Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send>>;

/// The lock table.
#[derive(Default)]
pub struct KeyLocks {
    map: Mutex<HashMap<String, Slot>>,
}

/// One key's queue.
#[derive(Default)]
struct Slot {
    /// The next ticket to hand out.
    next: u64,
    /// The ticket whose turn it is.
    serving: u64,
    /// Tickets not yet released, each with its wake-up.
    waiting: HashMap<u64, Arc<Notify>>,
    /// Tickets released before their turn: skipped.
    gone: BTreeSet<u64>,
    /// Tickets not yet released that journal their intent at their turn.
    late: usize,
    /// Every ticket below has a durable end (or nothing to make durable).
    durable: u64,
    /// Tickets at or above `durable` whose end is durable.
    ended: BTreeSet<u64>,
    /// Ends whose durability is still awaited.
    reports: usize,
    /// An end that could not be made durable: no write waiting for the window may go.
    broken: bool,
}

/// What a pipelined write hands its ticket: its intent, already enqueued.
pub(crate) struct Early {
    /// `k`: the write goes to the nodes once at most `k - 1` writes before it lack a durable end.
    pub window: u8,
    /// The intent's durability (awaited at the turn).
    pub intent: Option<Durable>,
    /// Journals the write's end as never sent: the ticket was given up before its turn.
    pub abandon: Box<dyn FnOnce() + Send>,
    /// The durability of everything journaled so far (the write's end among it).
    pub flush: Box<dyn Fn() -> Durable + Send + Sync>,
}

/// Holds one key's ticket; dropping it lets the next write to that key go.
pub struct KeyGuard {
    key: String,
    ticket: u64,
    notify: Arc<Notify>,
    locks: Arc<KeyLocks>,
    early: Option<Early>,
    /// Whether the turn came (and was taken).
    served: bool,
}

/// Why a pipelined write may not go to the nodes.
#[derive(Debug, thiserror::Error)]
#[error("the end of a write queued before this one on the key could not be made durable")]
pub(crate) struct WindowBroken;

impl KeyLocks {
    /// Waits for the key.
    pub async fn lock(self: &Arc<Self>, key: &str) -> KeyGuard {
        let mut guard = self.ticket(key, None::<fn() -> Early>);
        guard.turn().await;
        guard
    }

    /// Takes a ticket of `key` without waiting for the turn. `early` journals the write's intent
    /// now; it is called only when every ticket before it on the key journaled early too (so a
    /// write that journals at its turn never runs on top of writes whose ends are not durable:
    /// its own intent, durable, comes after them in the log).
    pub(crate) fn ticket(
        self: &Arc<Self>,
        key: &str,
        early: Option<impl FnOnce() -> Early>,
    ) -> KeyGuard {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry(key.to_string()).or_default();
        let ticket = slot.next;
        slot.next += 1;
        let notify = Arc::new(Notify::new());
        slot.waiting.insert(ticket, notify.clone());
        // Under the table's lock: early intents of a key are journaled in ticket order.
        let early = early
            .filter(|_| slot.late == 0 && !slot.broken)
            .map(|f| f());
        if early.is_none() {
            slot.late += 1;
        }
        KeyGuard {
            key: key.to_string(),
            ticket,
            notify,
            locks: self.clone(),
            early,
            served: false,
        }
    }

    /// How many hold or wait for `key` (0 when nobody does).
    pub fn queued(&self, key: &str) -> usize {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).map_or(0, |s| s.waiting.len())
    }

    /// Keys currently held, waited for, or with a queued write's end not yet durable.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records that the end of `ticket` on `key` is durable (`ok`), or could not be made so.
    fn ended(&self, key: &str, ticket: u64, ok: bool) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = map.get_mut(key) else { return };
        slot.reports = slot.reports.saturating_sub(1);
        slot.mark(ticket, ok);
        if slot.unused() {
            map.remove(key);
        }
    }
}

impl Slot {
    fn mark(&mut self, ticket: u64, ok: bool) {
        if !ok {
            self.broken = true;
        } else if ticket >= self.durable {
            self.ended.insert(ticket);
            while self.ended.remove(&self.durable) {
                self.durable += 1;
            }
        }
        // The write holding the turn may be waiting for the window.
        if let Some(w) = self.waiting.get(&self.serving) {
            w.notify_one();
        }
    }

    /// Passes the turn to the next ticket not given up.
    fn pass(&mut self) {
        self.serving += 1;
        while self.gone.remove(&self.serving) {
            self.serving += 1;
        }
        if let Some(w) = self.waiting.get(&self.serving) {
            w.notify_one();
        }
    }

    fn unused(&self) -> bool {
        self.waiting.is_empty() && self.reports == 0
    }
}

impl KeyGuard {
    /// Waits for the ticket's turn.
    pub(crate) async fn turn(&mut self) {
        loop {
            {
                let map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
                if map.get(&self.key).is_some_and(|s| s.serving == self.ticket) {
                    self.served = true;
                    return;
                }
            }
            // A wake-up sent meanwhile is kept: this does not miss it.
            self.notify.notified().await;
        }
    }

    /// The window of a write whose intent was journaled early; `None` when it was journaled at
    /// the turn (or will be).
    pub(crate) fn window(&self) -> Option<u8> {
        self.early.as_ref().map(|e| e.window)
    }

    /// The early intent's durability, to await at the turn (once).
    pub(crate) fn take_intent(&mut self) -> Option<Durable> {
        self.early.as_mut().and_then(|e| e.intent.take())
    }

    /// At the turn of an early write: waits until at most `k - 1` writes before it on the key
    /// lack a durable end. `Err` when one of them could not be made durable.
    pub(crate) async fn window_open(&mut self) -> Result<(), WindowBroken> {
        let Some(k) = self.window() else {
            return Ok(());
        };
        let k = u64::from(k.max(1));
        loop {
            {
                let map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
                let Some(slot) = map.get(&self.key) else {
                    return Ok(());
                };
                if slot.broken {
                    return Err(WindowBroken);
                }
                // Tickets below `ticket + 1 - k` must all have durable ends.
                if slot.durable + k > self.ticket {
                    return Ok(());
                }
            }
            self.notify.notified().await;
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let mut map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = map.get_mut(&self.key) else {
            return;
        };
        slot.waiting.remove(&self.ticket);
        let flush = match self.early.take() {
            None => {
                slot.late = slot.late.saturating_sub(1);
                // Its intent, if any, was journaled at its turn: every later write's intent
                // comes after its end in the log, so nothing behind it needs its end durable.
                slot.mark(self.ticket, true);
                None
            }
            Some(Early { abandon, flush, .. }) => {
                if !self.served {
                    // Never sent: say so before the turn can pass it (ends in ticket order).
                    abandon();
                }
                Some(flush)
            }
        };
        if self.ticket == slot.serving {
            slot.pass();
        } else {
            slot.gone.insert(self.ticket);
        }
        if let Some(flush) = flush {
            if std::thread::panicking() {
                // A write that stopped half-way has no end: nothing behind it may go.
                slot.mark(self.ticket, false);
            } else if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let durable = flush();
                slot.reports += 1;
                let (locks, key, ticket) = (self.locks.clone(), self.key.clone(), self.ticket);
                drop(rt.spawn(async move {
                    let ok = durable.await.is_ok();
                    locks.ended(&key, ticket, ok);
                }));
            }
            // Without a runtime the process is ending: nobody is left to wait.
        }
        if slot.unused() {
            map.remove(&self.key);
        }
    }
}
