//! The transaction journal: records on disk ([`super::log`]), entries in memory, fences on
//! resources with unfinished business, and compaction.
//!
//! Every append is enqueued under the state mutex, so the file's order is the order in which the
//! in-memory entries changed; compaction, enqueued the same way, can never drop a record.
//!
//! The entries follow the disk. An intent enters memory only once it is durable (a refused one
//! leaves nothing behind); later records are folded when enqueued, so a fence is up before the
//! key is released, and a record the log then fails to write is undone when the log, repaired,
//! hands back what it read from the disk: the state is rebuilt from exactly those records
//! before another record is taken. While the log refuses records, appends fail at once and
//! change nothing.

use super::JournalError;
use super::damage;
use super::log::{Durability, Log, LogOptions, OpenReport};
use super::record::{Begin, Entry, IdEntry, Record, StoredAnswer, now_ms};
use super::shared::{Hold, Shared};
use crate::config::{DurabilityMode, JournalConfig};
use crate::txn::{JournalStats, UndoPlan};
use crate::txn::{NodeReport, Reason, TxnState};
use futures_util::future::Either;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// Records appended between two compactions.
const COMPACT_EVERY: usize = 8192;

/// The journal. Shared as `Arc<Journal>`.
pub struct Journal {
    /// Where the records go.
    pub(super) backend: Backend,
    pub(super) keep_finished: usize,
    state: Mutex<State>,
    /// Woken when a transaction needs the background worker (failed, or to verify).
    pub(crate) wake: tokio::sync::Notify,
    /// With `[cluster]`: the leases this sidecar holds, by transaction.
    pub(super) holds: Mutex<HashMap<String, Arc<Hold>>>,
    /// How compaction keeps up.
    compaction: Arc<Mutex<Compaction>>,
}

/// Where a journal's records go. Only the journal's own methods look at it: a caller says what
/// it wants (append, take a key's lease, read a key's history) and each backend does its part.
pub(super) enum Backend {
    /// `durability = "off"`: entries in memory only; nothing is written, a crash forgets them.
    Memory,
    /// The local log in `journal.dir`; this process is its only writer.
    Log(Log),
    /// `[cluster]`: the shared store holds every record, written under per-key leases, and
    /// other sidecars write the same keys.
    Shared(Arc<Shared>),
}

/// What loading records into a journal found besides its entries.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Records of a shape this dtc does not know.
    pub skipped: usize,
    /// Transactions with records but no intent (their intent was lost to damage).
    pub orphans: BTreeSet<String>,
}

/// How compaction keeps up with the appends.
#[derive(Debug, Default, Clone)]
struct Compaction {
    /// Compactions that failed since the last one that did not.
    failed_in_row: u32,
    last_error: Option<String>,
    /// Records appended since the last compaction that succeeded (or the open).
    since_good: u64,
}

/// The entries in memory: all of them with a local log; with `[cluster]`, this sidecar's
/// transactions in flight plus the fleet's view as last refreshed.
#[derive(Default)]
pub(super) struct State {
    pub(super) entries: HashMap<String, Entry>,
    pub(super) finished: VecDeque<String>,
    /// Resource key → the open transaction that fences it.
    pub(super) fences: HashMap<String, String>,
    /// Clients' idempotency keys ([`super::idem`]).
    pub(super) idem: super::idem::Slots,
    /// Each key's last acknowledged state ([`super::history`]).
    pub(super) known: super::history::Keys,
    /// The id map ([`super::idmap`]).
    pub(super) ids: super::idmap::Ids,
    since_compact: usize,
    /// The last journal position given to an entry ([`Entry::seq`]).
    next_seq: u64,
    /// Intents enqueued but not yet folded (once durable), with their positions: a
    /// pipelined write's waits in its key's queue meanwhile, and compaction keeps it.
    pending: HashMap<String, (u64, Begin)>,
    /// The log's repair generation the entries were last rebuilt from.
    generation: u64,
}

impl Journal {
    /// Opens the journal in `cfg.dir`, reading back every transaction it holds. A torn write
    /// is set aside and reported; damage that may have held an in-doubt or failed transaction
    /// is refused ([`JournalError::Damaged`]), unless [`Journal::open_with`] accepts it.
    pub fn open(cfg: &JournalConfig) -> Result<(Arc<Journal>, OpenReport), JournalError> {
        Journal::open_with(cfg, false)
    }

    /// Like [`Journal::open`]; with `accept_damage` (`dtc run --accept-journal-damage`, `dtc
    /// journal repair`) damaged bytes are quarantined to side files and dtc starts on every
    /// intact record.
    pub fn open_with(
        cfg: &JournalConfig,
        accept_damage: bool,
    ) -> Result<(Arc<Journal>, OpenReport), JournalError> {
        let durability = match cfg.durability {
            DurabilityMode::Fsync => Durability::Fsync,
            DurabilityMode::Group => Durability::GroupCommit,
            DurabilityMode::None => Durability::None,
            DurabilityMode::Off => {
                tracing::warn!(
                    "journal.durability = \"off\": transactions are kept in memory only; a crash forgets those in flight and those that failed"
                );
                let journal = Journal::bare(Backend::Memory, cfg.keep_finished);
                return Ok((Arc::new(journal), OpenReport::default()));
            }
        };
        let dir = PathBuf::from(&cfg.dir);
        let found = Log::read(&dir)?;
        if let Some(summary) = damage::refusal(&found) {
            if !accept_damage {
                return Err(JournalError::Damaged {
                    path: found.path.clone(),
                    dir,
                    summary,
                });
            }
            tracing::error!(path = %found.path.display(), damage = %summary, "starting on a damaged journal as told: its damaged bytes are set aside in side files");
        }
        let mut opts = LogOptions::new(dir, durability);
        opts.hold_after_repair = true;
        opts.segment_bytes = cfg.segment_bytes;
        let (log, records, report) = Log::start(opts, found)?;
        let journal = Journal::bare(Backend::Log(log), cfg.keep_finished);
        let loaded = journal.load(&records);
        if loaded.skipped > 0 {
            tracing::warn!(
                skipped = loaded.skipped,
                "journal records of an unknown shape were skipped"
            );
        }
        if !loaded.orphans.is_empty() {
            tracing::error!(transactions = ?loaded.orphans, "journal records whose intent was lost to damage: these transactions cannot be recovered");
        }
        if report.cut_bytes > 0 {
            tracing::warn!(
                cut_bytes = report.cut_bytes,
                reason = report.reason.as_deref().unwrap_or(""),
                quarantined = ?report.quarantined,
                "damaged journal bytes were set aside; what was intact is recovered"
            );
        }
        Ok((Arc::new(journal), report))
    }

    /// Replaces the entries with those `records` fold into (at open, and after a repair).
    pub(super) fn load(&self, records: &[Vec<u8>]) -> Loaded {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.load_into(&mut st, records)
    }

    fn load_into(&self, st: &mut State, records: &[Vec<u8>]) -> Loaded {
        st.entries.clear();
        st.finished.clear();
        st.fences.clear();
        st.idem.clear();
        st.known.clear();
        st.ids.clear();
        let mut loaded = Loaded::default();
        for bytes in records {
            match serde_json::from_slice::<Record>(bytes) {
                Ok(rec) => {
                    let orphan = !matches!(
                        rec,
                        Record::Begin(_)
                            | Record::Entry(_)
                            | Record::Ids(_)
                            | Record::IdsGone { .. }
                    ) && !st.entries.contains_key(rec.txn());
                    if orphan {
                        loaded.orphans.insert(rec.txn().to_owned());
                    }
                    self.fold(st, &rec);
                }
                Err(_) => loaded.skipped += 1,
            }
        }
        let open: Vec<String> = st
            .entries
            .values()
            .filter(|e| e.is_open())
            .map(|e| e.begin.txn.clone())
            .collect();
        for txn in open {
            refence(st, &txn);
        }
        self.trim(st);
        loaded
    }

    pub(super) fn bare(backend: Backend, keep_finished: usize) -> Journal {
        Journal {
            backend,
            keep_finished,
            state: Mutex::new(State::default()),
            wake: tokio::sync::Notify::new(),
            holds: Mutex::new(HashMap::new()),
            compaction: Arc::default(),
        }
    }

    /// The entries, rebuilt first from what the disk holds when the log was repaired since.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Backend::Log(log) = &self.backend {
            let generation = log.generation();
            if generation != st.generation {
                if let Some((generation, records)) = log.take_reread() {
                    let loaded = self.load_into(&mut st, &records);
                    tracing::warn!(
                        generation,
                        records = records.len(),
                        skipped = loaded.skipped,
                        "journal entries rebuilt from the records read back after a repair"
                    );
                    // An end the log failed to write leaves its transaction open again: the
                    // background worker decides it.
                    self.wake.notify_one();
                }
                st.generation = generation;
                log.resume(generation);
            }
        }
        st
    }

    pub(super) fn fold(&self, st: &mut State, rec: &Record) {
        match rec {
            Record::Begin(b) => {
                let mut e = Entry::new(b.clone());
                e.seq = match st.pending.remove(&b.txn) {
                    Some((seq, _)) => seq,
                    None => st.take_seq(),
                };
                st.entries.insert(b.txn.clone(), e);
            }
            Record::Entry(e) => {
                let finished = !e.is_open() && e.state != TxnState::InDoubt;
                let mut e = e.clone();
                // A whole entry (a compaction's, or a note replacing an intent) keeps its place.
                e.seq = match (e.seq, st.entries.get(&e.begin.txn)) {
                    (0, Some(old)) => old.seq,
                    (0, None) => match st.pending.remove(&e.begin.txn) {
                        Some((seq, _)) => seq,
                        None => st.take_seq(),
                    },
                    (seq, _) => {
                        st.next_seq = st.next_seq.max(seq);
                        seq
                    }
                };
                let txn = e.begin.txn.clone();
                st.entries.insert(txn.clone(), e);
                if finished {
                    st.finished.push_back(txn);
                }
            }
            Record::Idem(_) | Record::Known(_) | Record::Ids(_) | Record::IdsGone { .. } => {}
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
        let State {
            entries,
            idem,
            known,
            ids,
            ..
        } = st;
        let entry = entries.get(rec.txn());
        super::idem::fold(idem, rec, entry);
        super::history::fold(known, rec, entry);
        super::idmap::fold(ids, rec, entry);
    }

    /// Appends `rec`, folding it into memory first; resolves when it is durable.
    fn append(
        &self,
        rec: Record,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        match &self.backend {
            Backend::Shared(_) => Either::Right(self.append_shared(rec)),
            Backend::Memory | Backend::Log(_) => Either::Left(self.append_local(rec)),
        }
    }

    fn append_local(
        &self,
        rec: Record,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let Backend::Log(log) = &self.backend else {
            // `off`: nothing to write; an intent is folded by `begin` like a durable one.
            if !matches!(rec, Record::Begin(_)) {
                let mut st = self.lock();
                self.fold(&mut st, &rec);
                refence(&mut st, rec.txn());
                self.trim(&mut st);
            }
            return Either::Left(std::future::ready(Ok(())));
        };
        // Serialised before the lock is taken.
        let bytes = serde_json::to_vec(&rec).unwrap_or_default();
        let mut st = self.lock();
        if let Some((cause, _)) = log.problem() {
            return Either::Left(std::future::ready(Err(JournalError::Unavailable { cause })));
        }
        if let Record::Begin(b) = &rec {
            // Its place in the log, for when it is folded (once durable).
            let seq = st.take_seq();
            st.pending.insert(b.txn.clone(), (seq, b.clone()));
        } else {
            self.fold(&mut st, &rec);
            refence(&mut st, rec.txn());
            self.trim(&mut st);
        }
        let done = log.append(bytes);
        st.since_compact += 1;
        self.compaction_state().since_good += 1;
        if st.since_compact >= COMPACT_EVERY {
            self.compact(log, &mut st);
        }
        Either::Right(done)
    }

    fn compaction_state(&self) -> MutexGuard<'_, Compaction> {
        self.compaction.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds an intent once it is durable (unless a rebuild from the disk already did).
    fn fold_durable_begin(&self, b: Begin) {
        let mut st = self.lock();
        if !st.entries.contains_key(&b.txn) {
            self.fold(&mut st, &Record::Begin(b));
            self.trim(&mut st);
        }
    }

    /// Drops the oldest finished transactions beyond the inspection window, and the idempotency
    /// keys beyond theirs.
    pub(super) fn trim(&self, st: &mut State) {
        st.idem.trim(now_ms());
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
        // Intents not folded yet, after every entry and in log order: a key's are its last.
        let mut pending: Vec<&(u64, Begin)> = st.pending.values().collect();
        pending.sort_by_key(|(seq, _)| *seq);
        let records: Vec<Vec<u8>> = st
            .entries
            .values()
            .map(|e| Record::Entry(e.clone()))
            .chain(pending.into_iter().map(|(_, b)| Record::Begin(b.clone())))
            .chain(super::idem::records(&st.idem))
            .chain(super::history::records(&st.known))
            .chain(super::idmap::records(&st.ids))
            .map(|r| serde_json::to_vec(&r).unwrap_or_default())
            .collect();
        st.since_compact = 0;
        let kept = records.len();
        let done = log.rewrite(records);
        let compaction = self.compaction.clone();
        tokio::spawn(async move {
            let result = done.await;
            let mut c = compaction.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(()) => {
                    tracing::info!(kept, "journal compacted");
                    *c = Compaction::default();
                }
                Err(e) => {
                    tracing::error!(error = %e, "journal compaction failed; the old log stays in use");
                    c.failed_in_row += 1;
                    c.last_error = Some(e.to_string());
                }
            }
        });
    }

    /// The open transaction fencing `key`, if any.
    pub fn fence_of(&self, key: &str) -> Option<String> {
        self.lock().fences.get(key).cloned()
    }

    /// The open transaction that refuses a new write on `key` before anything is sent: the
    /// fence in memory of a journal this process alone writes. None with `[cluster]`: there the
    /// intent checks the store's fence as it takes the key's lease (the view in memory may be
    /// a scan old).
    pub fn admission_fence(&self, key: &str) -> Option<String> {
        match self.backend {
            Backend::Shared(_) => None,
            Backend::Memory | Backend::Log(_) => self.fence_of(key),
        }
    }

    /// Records the intent of a transaction; resolves once durable. With `[cluster]` it first
    /// takes the key's lease (in the same store round trip), waiting for another sidecar's.
    pub fn begin(
        self: &Arc<Self>,
        b: Begin,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        if let Backend::Shared(shared) = &self.backend {
            return Either::Right(self.begin_shared(shared.clone(), b));
        }
        let journal = self.clone();
        let done = self.append(Record::Begin(b.clone()));
        Either::Left(async move {
            if let Err(e) = done.await {
                journal.lock().pending.remove(&b.txn);
                return Err(e);
            }
            journal.fold_durable_begin(b);
            Ok(())
        })
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

    /// Records the end state, with the answer a retry with the same idempotency key gets again;
    /// resolves once durable (before the client is answered).
    pub fn end(
        &self,
        txn: &str,
        state: TxnState,
        reason: Option<Reason>,
        nodes: Vec<NodeReport>,
        answer: Option<StoredAnswer>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let done = self.append(Record::End {
            txn: txn.to_string(),
            at_ms: now_ms(),
            state,
            reason,
            nodes,
            answer,
        });
        if state == TxnState::Failed || self.verify_pending(txn) {
            self.wake.notify_one();
        }
        done
    }

    /// Records a create's ids under its transaction; resolves once durable (before the client
    /// is answered) with `false` when the canonical id already names another resource. With
    /// `[cluster]` the shared store keeps them, under the create's lease.
    pub fn map_ids(
        &self,
        e: IdEntry,
    ) -> impl Future<Output = Result<bool, JournalError>> + Send + 'static {
        if let Backend::Shared(_) = self.backend {
            return Either::Right(self.map_ids_shared(e));
        }
        let done = self.append(Record::Ids(e));
        Either::Left(async move { done.await.map(|()| true) })
    }

    /// Records a mapped resource's node ids anew under transaction `txn` (a repair that
    /// recreated it on a node, which named it afresh); resolves once durable, with `false` when
    /// the map no longer holds the resource.
    pub fn set_ids(
        &self,
        txn: &str,
        e: IdEntry,
    ) -> impl Future<Output = Result<bool, JournalError>> + Send + 'static {
        if let Backend::Shared(_) = self.backend {
            return Either::Right(self.set_ids_shared(txn, e));
        }
        if self.ids_of(&e.collection, &e.canonical).is_none() {
            return Either::Left(Either::Left(std::future::ready(Ok(false))));
        }
        // The entry keeps its create's transaction: that one is finished, so nothing withdraws it.
        let done = self.append(Record::Ids(e));
        Either::Left(Either::Right(async move { done.await.map(|()| true) }))
    }

    /// Records that `canonical` of `collection` is absent on every node (transaction `txn`).
    pub fn unmap_ids(
        &self,
        txn: &str,
        collection: &str,
        canonical: &str,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        if let Backend::Shared(_) = self.backend {
            return Either::Right(self.unmap_ids_shared(txn, collection, canonical));
        }
        Either::Left(self.append(Record::IdsGone {
            txn: txn.to_string(),
            collection: collection.to_string(),
            canonical: canonical.to_string(),
            at_ms: now_ms(),
        }))
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
        if let Backend::Shared(shared) = &self.backend {
            let shared = shared.clone();
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
        self.resolve_by(txn, reason, None)
    }

    /// [`Journal::resolve`], saying who resolved it.
    pub fn resolve_by(
        &self,
        txn: &str,
        reason: String,
        by: Option<String>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        self.append(Record::Resolved {
            txn: txn.to_string(),
            at_ms: now_ms(),
            reason,
            by,
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
        match &self.backend {
            Backend::Log(log) => Either::Right(log.flush()),
            Backend::Memory | Backend::Shared(_) => Either::Left(std::future::ready(Ok(()))),
        }
    }

    /// Size of the log file in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.log().map_or(0, Log::size_bytes)
    }

    /// The local log, when there is one (not with `durability = "off"` or `[cluster]`).
    pub fn log(&self) -> Option<&Log> {
        match &self.backend {
            Backend::Log(log) => Some(log),
            Backend::Memory | Backend::Shared(_) => None,
        }
    }

    /// Why the local log refuses records now, if it does.
    pub fn log_problem(&self) -> Option<String> {
        // Through `lock`: a repair's records are folded in before the log is called healthy.
        drop(self.lock());
        self.log()?.problem().map(|(cause, _)| cause)
    }

    /// Why the journal cannot take records now, if it cannot: the local log's refusal, or with
    /// `[cluster]` the shared store's.
    pub fn problem(&self) -> Option<String> {
        match &self.backend {
            Backend::Shared(shared) => shared.problem(),
            Backend::Memory | Backend::Log(_) => self.log_problem(),
        }
    }

    /// Size, age and health of the local log (`None` without one).
    pub fn stats(&self) -> Option<JournalStats> {
        let log = self.log()?;
        let (live, oldest) = {
            let st = self.lock();
            let oldest = st.entries.values().map(|e| e.begin.at_ms).min();
            (st.entries.len(), oldest)
        };
        let c = self.compaction_state().clone();
        let behind = if c.failed_in_row > 0 {
            Some(format!(
                "the last {} compaction(s) failed ({}): the log grows until one succeeds",
                c.failed_in_row,
                c.last_error.as_deref().unwrap_or("")
            ))
        } else if c.since_good >= 2 * COMPACT_EVERY as u64 {
            Some(format!(
                "{} records appended since the last compaction (one runs every {COMPACT_EVERY})",
                c.since_good
            ))
        } else if live >= COMPACT_EVERY {
            Some(format!(
                "{live} transactions are kept (open ones and journal.keep_finished): each compaction keeps more than it drops; resolve failed transactions or lower journal.keep_finished"
            ))
        } else {
            None
        };
        let problem = log.problem();
        Some(JournalStats {
            size_bytes: log.size_bytes(),
            live_entries: live,
            oldest_live_ms: oldest,
            records_since_compaction: c.since_good,
            compaction_behind: behind,
            problem_since_ms: problem.as_ref().map(|(_, since)| *since),
            problem: problem.map(|(cause, _)| cause),
            failures: log.failures(),
        })
    }
}

impl State {
    /// The next journal position.
    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
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
