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
                // Never sent: say so before the turn can pass it. Without a runtime the process
                // is ending and nothing can be journaled: recovery decides it.
                if !self.served && tokio::runtime::Handle::try_current().is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::oneshot;

    /// An early ticket's hooks with window `k`: its end is durable (or not) when the test says
    /// so on the sender; `abandoned` counts never-sent ends.
    fn early(
        k: u8,
        abandoned: &Arc<AtomicUsize>,
    ) -> (impl FnOnce() -> Early, oneshot::Sender<bool>) {
        let (tx, rx) = oneshot::channel::<bool>();
        let rx = Mutex::new(Some(rx));
        let abandoned = abandoned.clone();
        let hooks = move || Early {
            window: k,
            intent: Some(Box::pin(async { Ok(()) })),
            abandon: Box::new(move || {
                abandoned.fetch_add(1, Ordering::SeqCst);
            }),
            flush: Box::new(move || -> Durable {
                let rx = rx.lock().unwrap().take();
                Box::pin(async move {
                    let ok = match rx {
                        Some(rx) => rx.await == Ok(true),
                        None => false,
                    };
                    match ok {
                        true => Ok(()),
                        false => Err(JournalError::Unavailable {
                            cause: "test".into(),
                        }),
                    }
                })
            }),
        };
        (hooks, tx)
    }

    /// Whether `f` is still pending once everything else has run (time is paused: the timeout
    /// fires only when nothing else can).
    async fn blocked(f: impl Future) -> bool {
        tokio::time::timeout(Duration::from_secs(1), f)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn same_key_waits_other_key_does_not_and_entries_are_cleaned() {
        let locks = Arc::new(KeyLocks::default());
        let a = locks.lock("a").await;
        let _b = locks.lock("b").await;
        let waiter = tokio::spawn({
            let locks = locks.clone();
            async move {
                let _g = locks.lock("a").await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        waiter.await.unwrap();
        assert_eq!(locks.len(), 1, "only b is still held");
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_lets_a_write_go_only_once_the_write_k_before_it_has_a_durable_end() {
        let locks = Arc::new(KeyLocks::default());
        let abandoned = Arc::new(AtomicUsize::new(0));
        let (e0, done0) = early(2, &abandoned);
        let (e1, done1) = early(2, &abandoned);
        let (e2, done2) = early(2, &abandoned);
        let mut t0 = locks.ticket("k", Some(e0));
        let mut t1 = locks.ticket("k", Some(e1));
        let mut t2 = locks.ticket("k", Some(e2));
        assert_eq!(t2.window(), Some(2));
        t0.turn().await;
        t0.window_open().await.unwrap();
        drop(t0);
        t1.turn().await;
        // One write before it lacks a durable end: within the window of 2.
        t1.window_open().await.unwrap();
        drop(t1);
        t2.turn().await;
        assert!(
            blocked(t2.window_open()).await,
            "t0 and t1 lack durable ends"
        );
        done1.send(true).unwrap();
        assert!(blocked(t2.window_open()).await, "t0 still lacks one");
        done0.send(true).unwrap();
        t2.window_open().await.unwrap();
        drop(t2);
        done2.send(true).unwrap();
        tokio::task::yield_now().await;
        assert!(blocked(std::future::pending::<()>()).await);
        assert_eq!(abandoned.load(Ordering::SeqCst), 0);
        assert!(
            locks.is_empty(),
            "every end is durable: the key's entry is gone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_ticket_given_up_before_its_turn_is_ended_as_never_sent_at_once_and_skipped() {
        let locks = Arc::new(KeyLocks::default());
        let abandoned = Arc::new(AtomicUsize::new(0));
        let (e0, done0) = early(2, &abandoned);
        let (e1, done1) = early(2, &abandoned);
        // Window 1: it goes only once every write before it has a durable end.
        let (e2, _done2) = early(1, &abandoned);
        let mut t0 = locks.ticket("k", Some(e0));
        let t1 = locks.ticket("k", Some(e1));
        let mut t2 = locks.ticket("k", Some(e2));
        t0.turn().await;
        drop(t1);
        assert_eq!(abandoned.load(Ordering::SeqCst), 1, "ended before t0 ends");
        assert_eq!(locks.queued("k"), 2);
        assert!(t2.turn().now_or_never().is_none(), "t0 holds the turn");
        drop(t0);
        t2.turn().await;
        // t1's never-sent end counts like any other: the window waits for it too.
        done0.send(true).unwrap();
        assert!(
            blocked(t2.window_open()).await,
            "t1's end is not durable yet"
        );
        done1.send(true).unwrap();
        t2.window_open().await.unwrap();
        assert_eq!(
            abandoned.load(Ordering::SeqCst),
            1,
            "a served ticket is not abandoned"
        );
    }

    #[tokio::test]
    async fn a_write_behind_one_journaled_at_its_turn_journals_at_its_turn_too() {
        let locks = Arc::new(KeyLocks::default());
        let abandoned = Arc::new(AtomicUsize::new(0));
        let first = locks.lock("k").await;
        let (e, _done) = early(4, &abandoned);
        let mut second = locks.ticket("k", Some(e));
        assert_eq!(second.window(), None, "its early hook was not called");
        drop(first);
        second.turn().await;
        second.window_open().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_end_that_cannot_be_made_durable_stops_the_writes_behind_it() {
        let locks = Arc::new(KeyLocks::default());
        let abandoned = Arc::new(AtomicUsize::new(0));
        let (e0, done0) = early(1, &abandoned);
        let (e1, _done1) = early(1, &abandoned);
        let mut t0 = locks.ticket("k", Some(e0));
        let mut t1 = locks.ticket("k", Some(e1));
        t0.turn().await;
        drop(t0);
        t1.turn().await;
        done0.send(false).unwrap();
        assert!(t1.window_open().await.is_err());
        let (e2, _done2) = early(1, &abandoned);
        let t2 = locks.ticket("k", Some(e2));
        assert_eq!(t2.window(), None, "no early intent on a broken key");
    }
}
