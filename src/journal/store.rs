//! The transaction journal: records on disk ([`super::log`]), entries in memory, fences on
//! resources with unfinished business, and compaction.
//!
//! Every append is enqueued under the state mutex, so the file's order is the order in which the
//! in-memory entries changed; compaction, enqueued the same way, can never drop a record.

use super::JournalError;
use super::log::{Durability, Log, LogOptions, TailReport};
use super::record::{Begin, Entry, Record, now_ms};
use super::shared::{Hold, Shared};
use crate::config::{DurabilityMode, JournalConfig};
use crate::txn::UndoPlan;
use crate::txn::{NodeReport, Reason, TxnState};
use futures_util::future::Either;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// Records appended between two compactions.
const COMPACT_EVERY: usize = 8192;

/// The journal. Shared as `Arc<Journal>`.
pub struct Journal {
    /// `None` with `durability = "off"`: the store works in memory and nothing is written.
    log: Option<Log>,
    pub(super) keep_finished: usize,
    state: Mutex<State>,
    /// Woken when a transaction needs the background worker (failed, or to verify).
    pub(crate) wake: tokio::sync::Notify,
    /// With `[cluster]`: the shared store, which then holds every record (and `log` is `None`).
    pub(super) shared: Option<Arc<Shared>>,
    /// With `[cluster]`: the leases this sidecar holds, by transaction.
    pub(super) holds: Mutex<HashMap<String, Arc<Hold>>>,
}

/// The entries in memory: all of them with a local log; with `[cluster]`, this sidecar's
/// transactions in flight plus the fleet's view as last refreshed.
#[derive(Default)]
pub(super) struct State {
    pub(super) entries: HashMap<String, Entry>,
    pub(super) finished: VecDeque<String>,
    /// Resource key → the open transaction that fences it.
    pub(super) fences: HashMap<String, String>,
    since_compact: usize,
}

impl Journal {
    /// Opens the journal in `cfg.dir`, reading back every transaction it holds. A torn or
    /// corrupt tail is cut and reported, never fatal.
    pub fn open(cfg: &JournalConfig) -> Result<(Arc<Journal>, TailReport), JournalError> {
        let durability = match cfg.durability {
            DurabilityMode::Fsync => Some(Durability::Fsync),
            DurabilityMode::Group => Some(Durability::GroupCommit),
            DurabilityMode::None => Some(Durability::None),
            DurabilityMode::Off => None,
        };
        let (log, records, tail) = match durability {
            Some(durability) => {
                let (log, records, tail) = Log::open(LogOptions {
                    dir: PathBuf::from(&cfg.dir),
                    durability,
                })?;
                (Some(log), records, tail)
            }
            None => {
                tracing::warn!(
                    "journal.durability = \"off\": transactions are kept in memory only; a crash forgets those in flight and those that failed"
                );
                (None, Vec::new(), TailReport::default())
            }
        };
        let journal = Journal::bare(log, cfg.keep_finished, None);
        let mut skipped = 0;
        {
            let mut st = journal.lock();
            for bytes in &records {
                match serde_json::from_slice::<Record>(bytes) {
                    Ok(rec) => journal.fold(&mut st, &rec),
                    Err(_) => skipped += 1,
                }
            }
            let open: Vec<String> = st
                .entries
                .values()
                .filter(|e| e.is_open())
                .map(|e| e.begin.txn.clone())
                .collect();
            for txn in open {
                refence(&mut st, &txn);
            }
            journal.trim(&mut st);
        }
        if skipped > 0 {
            tracing::warn!(skipped, "journal records of an unknown shape were skipped");
        }
        if tail.cut_bytes > 0 {
            tracing::warn!(
                cut_bytes = tail.cut_bytes,
                reason = tail.reason.as_deref().unwrap_or(""),
                "journal tail was damaged and cut; what was intact is recovered"
            );
        }
        Ok((Arc::new(journal), tail))
    }

    pub(super) fn bare(
        log: Option<Log>,
        keep_finished: usize,
        shared: Option<Arc<Shared>>,
    ) -> Journal {
        Journal {
            log,
            keep_finished,
            state: Mutex::new(State::default()),
            wake: tokio::sync::Notify::new(),
            shared,
            holds: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn fold(&self, st: &mut State, rec: &Record) {
        match rec {
            Record::Begin(b) => {
                st.entries.insert(b.txn.clone(), Entry::new(b.clone()));
            }
            Record::Entry(e) => {
                let finished = !e.is_open() && e.state != TxnState::InDoubt;
                st.entries.insert(e.begin.txn.clone(), e.clone());
                if finished {
                    st.finished.push_back(e.begin.txn.clone());
                }
            }
            other => {
                let txn = other.txn().to_string();
                let Some(entry) = st.entries.get_mut(&txn) else {
                    return;
                };
                entry.apply(other);
                let closed_now = matches!(other, Record::End { .. }) && !entry.is_open();
                if closed_now {
                    st.finished.push_back(txn);
                }
            }
        }
    }

    /// Appends `rec`, folding it into memory first; resolves when it is durable.
    fn append(
        &self,
        rec: Record,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        if self.shared.is_some() {
            return Either::Right(self.append_shared(rec));
        }
        Either::Left(self.append_local(rec))
    }

    fn append_local(
        &self,
        rec: Record,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        // Serialised before the lock is taken; with `off` there is nothing to write.
        let to_write = self
            .log
            .as_ref()
            .map(|log| (log, serde_json::to_vec(&rec).unwrap_or_default()));
        let mut st = self.lock();
        self.fold(&mut st, &rec);
        let txn = rec.txn().to_string();
        refence(&mut st, &txn);
        self.trim(&mut st);
        let Some((log, bytes)) = to_write else {
            return Either::Left(std::future::ready(Ok(())));
        };
        let done = log.append(bytes);
        st.since_compact += 1;
        if st.since_compact >= COMPACT_EVERY {
            self.compact(log, &mut st);
        }
        Either::Right(done)
    }

    /// Drops the oldest finished transactions beyond the inspection window.
    pub(super) fn trim(&self, st: &mut State) {
        while st.finished.len() > self.keep_finished {
            let Some(old) = st.finished.pop_front() else {
                break;
            };
            if st.entries.get(&old).is_some_and(|e| !e.is_open()) {
                st.entries.remove(&old);
            }
        }
    }

    fn compact(&self, log: &Log, st: &mut State) {
        let records: Vec<Vec<u8>> = st
            .entries
            .values()
            .map(|e| serde_json::to_vec(&Record::Entry(e.clone())).unwrap_or_default())
            .collect();
        st.since_compact = 0;
        let kept = records.len();
        let done = log.rewrite(records);
        tokio::spawn(async move {
            match done.await {
                Ok(()) => tracing::info!(kept, "journal compacted"),
                Err(e) => {
                    tracing::error!(error = %e, "journal compaction failed; the old log stays in use")
                }
            }
        });
    }

    /// The open transaction fencing `key`, if any.
    pub fn fence_of(&self, key: &str) -> Option<String> {
        self.lock().fences.get(key).cloned()
    }

    /// Records the intent of a transaction; resolves once durable. With `[cluster]` it first
    /// takes the key's lease (in the same store round trip), waiting for another sidecar's.
    pub fn begin(
        self: &Arc<Self>,
        b: Begin,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        if self.shared.is_some() {
            return Either::Right(self.begin_shared(b));
        }
        Either::Left(self.append(Record::Begin(b)))
    }

    /// Records one node's answer and the undo it would need.
    pub fn node(
        &self,
        txn: &str,
        node: usize,
        report: NodeReport,
        undo: Option<UndoPlan>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        self.append(Record::Node {
            txn: txn.to_string(),
            node,
            report,
            undo,
        })
    }

    /// Records the end state; resolves once durable (before the client is answered).
    pub fn end(
        &self,
        txn: &str,
        state: TxnState,
        reason: Option<Reason>,
        nodes: Vec<NodeReport>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let done = self.append(Record::End {
            txn: txn.to_string(),
            at_ms: now_ms(),
            state,
            reason,
            nodes,
        });
        if state == TxnState::Failed || self.verify_pending(txn) {
            self.wake.notify_one();
        }
        done
    }

    /// Records a transaction that touched no node, in one record, for inspection only.
    pub fn note(
        &self,
        begin: Begin,
        state: TxnState,
        reason: Option<Reason>,
        nodes: Vec<NodeReport>,
    ) {
        let mut e = Entry::new(begin);
        e.state = state;
        e.reason = reason;
        e.finished_ms = Some(now_ms());
        for (n, r) in e.nodes.iter_mut().zip(nodes) {
            n.report = Some(r);
        }
        if let Some(shared) = self.shared.clone() {
            self.fold(&mut self.lock(), &Record::Entry(e.clone()));
            tokio::spawn(async move {
                if let Err(e) = shared.note(&e).await {
                    tracing::warn!(error = %e, "cannot record an untouched transaction in the shared store");
                }
            });
            return;
        }
        let done = self.append(Record::Entry(e));
        tokio::spawn(async move {
            if let Err(e) = done.await {
                tracing::error!(error = %e, "journal write failed");
            }
        });
    }

    /// Records the result of a re-drive or recovery attempt.
    pub fn redrive(
        &self,
        txn: &str,
        state: TxnState,
        reason: Option<Reason>,
        nodes: Vec<NodeReport>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        self.append(Record::Redrive {
            txn: txn.to_string(),
            at_ms: now_ms(),
            state,
            reason,
            nodes,
        })
    }

    /// Records that a rollback's late-write check passed.
    pub fn verified(
        &self,
        txn: &str,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        self.append(Record::Verified {
            txn: txn.to_string(),
            at_ms: now_ms(),
        })
    }

    /// Records a person's resolution; the resource is unfenced.
    pub fn resolve(
        &self,
        txn: &str,
        reason: String,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        self.append(Record::Resolved {
            txn: txn.to_string(),
            at_ms: now_ms(),
            reason,
        })
    }

    fn verify_pending(&self, txn: &str) -> bool {
        self.lock()
            .entries
            .get(txn)
            .is_some_and(|e| e.verify_pending)
    }

    /// Waits until everything appended so far is durable.
    pub fn flush(&self) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        match &self.log {
            Some(log) => Either::Right(log.flush()),
            None => Either::Left(std::future::ready(Ok(()))),
        }
    }

    /// Size of the log file in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.log.as_ref().map_or(0, Log::size_bytes)
    }
}

/// Sets or clears the fence of one transaction's key after a change. In-flight transactions
/// hold their key's lock instead; in-doubt ones are recovered before dtc serves.
pub(super) fn refence(st: &mut State, txn: &str) {
    let Some(e) = st.entries.get(txn) else { return };
    let key = e.begin.key.clone();
    if e.fences() {
        st.fences.insert(key, txn.to_string());
    } else if st.fences.get(&key).is_some_and(|t| t == txn) {
        st.fences.remove(&key);
    }
}
