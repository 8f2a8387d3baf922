//! The shared coordination store on PostgreSQL (`[cluster]`): per-key leases fenced by epoch,
//! holder and transaction, the fleet's journal entries, fences, and takeover of expired leases.
//!
//! - [`sql`]: the schema and every statement; [`schema`]: create, upgrade or check it at start;
//! - [`pool`]: connections with prepared statements; [`lease`]: a held lease, renewal, the check
//!   before every node request, and why fencing holds; [`clock`]: lease deadlines on the store's
//!   clock alone; [`tls`]: TLS as the URL's libpq parameters ask; [`events`]: what the store
//!   tells the metrics; [`error`]: [`StoreError`]; [`ids`]: the id map's rows.
//!
//! A write costs two round trips: lease + intent in one statement ([`Shared::begin`]), end +
//! release in one ([`Shared::write`]). Node answers that add to the intent cost one each.

pub(crate) mod clock;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod ids;
pub(crate) mod lease;
pub(crate) mod pool;
pub(crate) mod schema;
pub(crate) mod sql;
pub mod tls;

pub use error::StoreError;
pub use lease::{Hold, Token};

use super::record::Entry;
use crate::config::ClusterConfig;
use clock::StoreClock;
use events::{Acquired, StoreErrorKind, StoreEvents};
use pool::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The store, shared by the journal and the background tasks.
pub struct Shared {
    pub cfg: ClusterConfig,
    pub pool: Pool,
    /// This sidecar's name; each grant's holder is this name and a random suffix.
    pub owner: String,
    /// What the store's clock has shown.
    pub clock: StoreClock,
}

/// Longest wait between two looks at a busy key.
const MAX_POLL: Duration = Duration::from_millis(50);

/// Most batches of [`sql::PRUNE`] one [`Shared::prune`] runs.
const PRUNE_BATCHES: usize = 20;

/// The sidecar part of a holder id (`name/suffix`), for messages.
fn sidecar_of(holder: &str) -> &str {
    holder.rsplit_once('/').map_or(holder, |(name, _)| name)
}

impl Shared {
    /// Connects, creates or checks the schema. Fails when the store is unreachable or foreign.
    pub async fn connect(cfg: &ClusterConfig) -> Result<Arc<Shared>, StoreError> {
        Shared::connect_metered(cfg, None).await
    }

    /// Connects once and asks the store for nothing but an answer (`dtc check`): whether it is
    /// reachable, and over TLS whether its certificate is trusted. No schema is created.
    pub async fn probe(cfg: &ClusterConfig) -> Result<String, StoreError> {
        let (pool, mode) = Pool::open(cfg, None)?;
        let client = pool.connect_raw().await?;
        pool.timed(client.simple_query("SELECT 1")).await?;
        Ok(format!(
            "the shared store at {} answers (sslmode={})",
            pool.url,
            mode.as_str()
        ))
    }

    /// Like [`Shared::connect`], telling `events` (the store metrics) what happens.
    pub async fn connect_metered(
        cfg: &ClusterConfig,
        events: Option<Arc<dyn StoreEvents>>,
    ) -> Result<Arc<Shared>, StoreError> {
        let (pool, mode) = Pool::open(cfg, events)?;
        schema::migrate(&pool).await?;
        let owner = format!(
            "{}-{}-{:08x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "dtc".into()),
            std::process::id(),
            fastrand::u32(..)
        );
        tracing::info!(url = %pool.url, owner = %owner, lease = ?cfg.lease, sslmode = mode.as_str(), "shared store ready");
        Ok(Arc::new(Shared {
            clock: StoreClock::new(cfg.lease_margin()),
            cfg: cfg.clone(),
            pool,
            owner,
        }))
    }

    fn lease_ms(&self) -> i64 {
        self.cfg.lease.as_millis() as i64
    }

    /// A fresh holder id for one grant: this sidecar's name and 64 random bits.
    fn holder(&self) -> String {
        format!("{}/{:016x}", self.owner, fastrand::u64(..))
    }

    /// The local deadline of a grant of `granted_ms` asked for at `sent`, from the store's answer
    /// (which also shows its clock, `store_ms`).
    fn deadline(&self, sent: Instant, granted_ms: i64, store_ms: i64) -> Instant {
        if let Some(step) = self.clock.observe(sent, Instant::now(), store_ms) {
            tracing::error!(
                step_ms = step,
                "the shared store's clock stepped forward: every lease held ends early by the step; keep the store's clock slewed, never stepped"
            );
            if let Some(m) = self.pool.metrics() {
                m.clock_step();
            }
        }
        clock::deadline(sent, granted_ms, self.cfg.lease_margin())
    }

    fn count_acquired(&self, how: Acquired, started: Instant) {
        if let Some(m) = self.pool.metrics() {
            m.acquired(how, started.elapsed().as_secs_f64());
        }
    }

    /// Takes `entry`'s key lease and records its intent in one statement, waiting up to
    /// `cluster.wait` while another sidecar holds the key. With `pre` (a lease taken by
    /// [`Shared::acquire`]), records the intent under it.
    pub async fn begin(
        self: &Arc<Self>,
        entry: &Entry,
        pre: Option<Arc<Hold>>,
    ) -> Result<Arc<Hold>, StoreError> {
        let b = &entry.begin;
        let json = serde_json::to_string(entry).unwrap_or_default();
        let state = entry.state.to_string();
        let idem = b.idem.as_ref().map(|i| i.key.clone());
        if let Some(hold) = pre {
            let c = self.pool.get().await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
                &b.key,
                &hold.epoch,
                &b.txn,
                &(b.at_ms as i64),
                &json,
                &state,
                &hold.holder,
                &idem,
            ];
            let rows = self
                .pool
                .timed(c.client.query(&c.st.intent, &params))
                .await?;
            return match rows.is_empty() {
                false => Ok(hold),
                true => Err(self.lost(&hold)),
            };
        }
        self.take(&b.key, &b.txn, Some((b.at_ms as i64, json, state, idem)))
            .await
    }

    /// Takes a key's lease alone, waiting as [`Shared::begin`] does.
    pub async fn acquire(self: &Arc<Self>, key: &str, txn: &str) -> Result<Arc<Hold>, StoreError> {
        self.take(key, txn, None).await
    }

    async fn take(
        self: &Arc<Self>,
        key: &str,
        txn: &str,
        intent: Option<(i64, String, String, Option<String>)>,
    ) -> Result<Arc<Hold>, StoreError> {
        let started = Instant::now();
        let mut poll = Duration::from_millis(2);
        let lease = self.lease_ms();
        let holder = self.holder();
        loop {
            let c = self.pool.get().await?;
            let sent = Instant::now();
            let rows = match &intent {
                Some((at, json, state, idem)) => {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
                        [&key, &holder, &txn, &lease, at, json, state, idem];
                    self.pool
                        .timed(c.client.query(&c.st.begin, &params))
                        .await?
                }
                None => {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                        [&key, &holder, &txn, &lease];
                    self.pool
                        .timed(c.client.query(&c.st.acquire, &params))
                        .await?
                }
            };
            let row = rows
                .first()
                .ok_or_else(|| StoreError::Query("no row".into()))?;
            let (epoch, granted, store_ms): (Option<i64>, Option<i64>, i64) =
                (row.get(0), row.get(1), row.get(2));
            let (fence, owner): (Option<String>, Option<String>) = (row.get(3), row.get(4));
            if let (Some(epoch), Some(granted)) = (epoch, granted) {
                self.count_acquired(Acquired::Granted, started);
                let token = Token {
                    key: key.to_string(),
                    txn: txn.to_string(),
                    epoch,
                    holder,
                };
                return Ok(Hold::new(
                    self,
                    token,
                    self.deadline(sent, granted, store_ms),
                ));
            }
            if let Some(txn) = fence {
                self.count_acquired(Acquired::Fenced, started);
                return Err(StoreError::Fenced {
                    key: key.to_string(),
                    txn,
                });
            }
            let waited = started.elapsed();
            if waited + poll > self.cfg.wait {
                self.count_acquired(Acquired::Busy, started);
                return Err(StoreError::Busy {
                    key: key.to_string(),
                    owner: owner
                        .map(|o| sidecar_of(&o).to_string())
                        .unwrap_or_else(|| "another sidecar".into()),
                    waited_ms: waited.as_millis() as u64,
                });
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    /// Writes `entry` under `hold` (epoch-checked), fencing or unfencing its key, and releases
    /// the lease when `release`; keeps `answer` (JSON) for retries with the client's
    /// idempotency key, when given.
    pub async fn write(
        &self,
        hold: &Hold,
        entry: &Entry,
        release: bool,
        answer: Option<&str>,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry).unwrap_or_default();
        let state = entry.state.to_string();
        let c = self.pool.get().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
            &hold.txn,
            &hold.epoch,
            &state,
            &entry.is_open(),
            &json,
            &hold.key,
            &entry.fences(),
            &release,
            &hold.holder,
            &answer,
        ];
        let rows = self
            .pool
            .timed(c.client.query(&c.st.write, &params))
            .await?;
        if release {
            hold.release();
        }
        match rows.is_empty() {
            false => Ok(()),
            true => Err(self.lost(hold)),
        }
    }

    /// Frees a held lease whose transaction has no entry.
    pub async fn free(&self, hold: &Hold) -> Result<(), StoreError> {
        hold.release();
        let c = self.pool.get().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&hold.key, &hold.epoch, &hold.holder, &hold.txn];
        self.pool
            .timed(c.client.execute(&c.st.free, &params))
            .await?;
        Ok(())
    }

    /// Extends the lease `token` names: its new local deadline, or `None` when the row no longer
    /// carries the token's epoch, holder and transaction (the lease is lost).
    pub async fn renew(&self, token: &Token) -> Result<Option<Instant>, StoreError> {
        let c = self.pool.get().await?;
        let sent = Instant::now();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &token.key,
            &token.epoch,
            &self.lease_ms(),
            &token.holder,
            &token.txn,
        ];
        let rows = self
            .pool
            .timed(c.client.query(&c.st.renew, &params))
            .await?;
        Ok(rows
            .first()
            .map(|r| self.deadline(sent, r.get(0), r.get(1))))
    }

    /// Claims a free key for work on `txn` (the transaction fencing it, or none); returns the
    /// hold and the transaction's current entry, or `None` when another sidecar holds the key.
    pub async fn claim(
        self: &Arc<Self>,
        key: &str,
        txn: &str,
    ) -> Result<Option<(Arc<Hold>, Entry)>, StoreError> {
        let c = self.pool.get().await?;
        let holder = self.holder();
        let sent = Instant::now();
        let started = sent;
        let rows = self
            .pool
            .timed(
                c.client
                    .query(&c.st.claim, &[&key, &holder, &txn, &self.lease_ms()]),
            )
            .await?;
        let Some(row) = rows.first() else {
            self.count_acquired(Acquired::Busy, started);
            return Ok(None);
        };
        self.count_acquired(Acquired::Granted, started);
        let token = Token {
            key: key.to_string(),
            txn: txn.to_string(),
            epoch: row.get(0),
            holder,
        };
        let hold = Hold::new(self, token, self.deadline(sent, row.get(1), row.get(2)));
        match self.load(txn).await {
            Ok(Some(e)) => Ok(Some((hold, e))),
            other => {
                hold.release();
                other.map(|_| None)
            }
        }
    }

    /// Takes over up to `limit` expired leases: each hold with its transaction's entry.
    pub async fn take_over(
        self: &Arc<Self>,
        limit: i64,
    ) -> Result<Vec<(Arc<Hold>, Entry)>, StoreError> {
        let c = self.pool.get().await?;
        let holder = self.holder();
        let sent = Instant::now();
        let rows = self
            .pool
            .timed(
                c.client
                    .query(&c.st.take_over, &[&holder, &self.lease_ms(), &limit]),
            )
            .await?;
        if let Some(m) = self.pool.metrics() {
            m.took_over(rows.len() as u64);
        }
        let mut out = Vec::new();
        for row in rows {
            let token = Token {
                key: row.get(0),
                txn: row.get(1),
                epoch: row.get(2),
                holder: holder.clone(),
            };
            let hold = Hold::new(self, token, self.deadline(sent, row.get(3), row.get(4)));
            match self.load(&hold.txn).await? {
                Some(e) => out.push((hold, e)),
                None => self.free(&hold).await?,
            }
        }
        Ok(out)
    }

    /// One transaction's entry.
    pub async fn load(&self, txn: &str) -> Result<Option<Entry>, StoreError> {
        let c = self.pool.get().await?;
        let rows = self.pool.timed(c.client.query(&c.st.load, &[&txn])).await?;
        Ok(rows
            .first()
            .and_then(|r| serde_json::from_str(r.get::<_, &str>(0)).ok()))
    }

    /// Every key the store holds a transaction for, of the whole fleet.
    pub async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let c = self.pool.get().await?;
        let rows = self.pool.timed(c.client.query(&c.st.keys, &[])).await?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    /// Every transaction the store holds for `key`, newest first.
    pub async fn history(&self, key: &str) -> Result<Vec<Entry>, StoreError> {
        let c = self.pool.get().await?;
        let rows = self
            .pool
            .timed(c.client.query(&c.st.history, &[&key]))
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(r.get::<_, &str>(0)).ok())
            .collect())
    }

    /// The newest transaction bound to the client's idempotency key `key` that began at or after
    /// `since_ms`, with the answer kept for it (JSON).
    pub async fn idempotency(
        &self,
        key: &str,
        since_ms: i64,
    ) -> Result<Option<(Entry, Option<String>)>, StoreError> {
        let c = self.pool.get().await?;
        let rows = self
            .pool
            .timed(c.client.query(&c.st.idem, &[&key, &since_ms]))
            .await?;
        Ok(rows.first().and_then(|r| {
            let entry = serde_json::from_str(r.get::<_, &str>(0)).ok()?;
            Some((entry, r.get::<_, Option<String>>(1)))
        }))
    }

    /// `key`'s finished transactions other than `txn`, the last changed first (read under the
    /// key's lease, nothing changes them meanwhile); `None` when their order is not known (a row
    /// written by an older dtc, which does not number its writes).
    pub async fn finished_of_key(
        &self,
        key: &str,
        txn: &str,
    ) -> Result<Option<Vec<Entry>>, StoreError> {
        let c = self.pool.get().await?;
        let rows = self
            .pool
            .timed(c.client.query(&c.st.finished_of_key, &[&key, &txn]))
            .await?;
        if rows.iter().any(|r| r.get::<_, Option<i64>>(1).is_none()) {
            return Ok(None);
        }
        Ok(Some(
            rows.iter()
                .filter_map(|r| serde_json::from_str(r.get::<_, &str>(0)).ok())
                .collect(),
        ))
    }

    /// Records a transaction that touched no node.
    pub async fn note(&self, entry: &Entry) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry).unwrap_or_default();
        let b = &entry.begin;
        let c = self.pool.get().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &b.txn,
            &b.key,
            &entry.state.to_string(),
            &(b.at_ms as i64),
            &json,
        ];
        self.pool
            .timed(c.client.execute(&c.st.note, &params))
            .await?;
        Ok(())
    }

    /// The fleet's open transactions and its `finished` latest finished ones.
    pub async fn fleet(&self, finished: i64) -> Result<Vec<Entry>, StoreError> {
        let c = self.pool.get().await?;
        let rows = self
            .pool
            .timed(c.client.query(&c.st.fleet, &[&finished]))
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(r.get::<_, &str>(0)).ok())
            .collect())
    }

    /// Deletes finished transactions beyond the newest `keep` — but none bound to an idempotency
    /// key that began at or after `idem_since_ms` —, batch after batch (at most
    /// [`PRUNE_BATCHES`] per call, so one call stays short); how many it deleted.
    pub async fn prune(&self, keep: i64, idem_since_ms: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for _ in 0..PRUNE_BATCHES {
            let c = self.pool.get().await?;
            let n = self
                .pool
                .timed(
                    c.client
                        .execute(&c.st.prune, &[&keep, &sql::PRUNE_BATCH, &idem_since_ms]),
                )
                .await?;
            deleted += n;
            if n < sql::PRUNE_BATCH as u64 {
                break;
            }
        }
        Ok(deleted)
    }

    /// Why the store is not usable now, if it is not.
    pub fn problem(&self) -> Option<String> {
        self.pool.problem()
    }

    fn lost(&self, hold: &Hold) -> StoreError {
        hold.release();
        if let Some(m) = self.pool.metrics() {
            m.error(StoreErrorKind::LeaseLost);
        }
        StoreError::LeaseLost {
            txn: hold.txn.clone(),
            key: hold.key.clone(),
            epoch: hold.epoch,
        }
    }
}
