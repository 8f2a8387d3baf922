//! The shared coordination store on PostgreSQL (`[cluster]`): per-key leases with a fencing
//! epoch, the fleet's journal entries, fences, and takeover of expired leases.
//!
//! - [`sql`]: the schema and every statement; [`schema`]: create or check it at start;
//! - [`pool`]: connections with prepared statements; [`lease`]: a held lease, renewal, and the
//!   check before every node request; [`error`]: [`StoreError`].
//!
//! A write costs two round trips: lease + intent in one statement ([`Shared::begin`]), end +
//! release in one ([`Shared::write`]). Node answers that add to the intent cost one each.

pub mod error;
pub mod lease;
pub mod pool;
pub mod schema;
pub mod sql;

pub use error::StoreError;
pub use lease::Hold;

use super::record::Entry;
use crate::config::ClusterConfig;
use crate::config::cluster::redact_url;
use pool::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The store, shared by the journal and the background tasks.
pub struct Shared {
    pub cfg: ClusterConfig,
    pub pool: Pool,
    /// This sidecar's name in lease rows.
    pub owner: String,
}

/// Longest wait between two looks at a busy key.
const MAX_POLL: Duration = Duration::from_millis(50);

impl Shared {
    /// Connects, creates or checks the schema. Fails when the store is unreachable or foreign.
    pub async fn connect(cfg: &ClusterConfig) -> Result<Arc<Shared>, StoreError> {
        let url = redact_url(&cfg.database_url);
        let mut pg: tokio_postgres::Config =
            cfg.database_url
                .parse()
                .map_err(|e: tokio_postgres::Error| StoreError::Unreachable {
                    url: url.clone(),
                    why: e.to_string(),
                })?;
        pg.connect_timeout(cfg.statement_timeout);
        pg.options(format!(
            "-c statement_timeout={}",
            cfg.statement_timeout.as_millis()
        ));
        pg.application_name("dtc");
        let pool = Pool::new(pg, url, cfg.pool_size, cfg.statement_timeout);
        schema::migrate(&pool).await?;
        let owner = format!(
            "{}-{}-{:08x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "dtc".into()),
            std::process::id(),
            fastrand::u32(..)
        );
        tracing::info!(url = %pool.url, owner = %owner, lease = ?cfg.lease, "shared store ready");
        Ok(Arc::new(Shared {
            cfg: cfg.clone(),
            pool,
            owner,
        }))
    }

    fn lease_ms(&self) -> i64 {
        self.cfg.lease.as_millis() as i64
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
        if let Some(hold) = pre {
            let c = self.pool.get().await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                &b.key,
                &hold.epoch,
                &b.txn,
                &(b.at_ms as i64),
                &json,
                &state,
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
        self.take(&b.key, &b.txn, Some((b.at_ms as i64, json, state)))
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
        intent: Option<(i64, String, String)>,
    ) -> Result<Arc<Hold>, StoreError> {
        let started = Instant::now();
        let mut poll = Duration::from_millis(2);
        let lease = self.lease_ms();
        loop {
            let c = self.pool.get().await?;
            let sent = Instant::now();
            let rows = match &intent {
                Some((at, json, state)) => {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
                        [&key, &self.owner, &txn, &lease, at, json, state];
                    self.pool
                        .timed(c.client.query(&c.st.begin, &params))
                        .await?
                }
                None => {
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                        [&key, &self.owner, &txn, &lease];
                    self.pool
                        .timed(c.client.query(&c.st.acquire, &params))
                        .await?
                }
            };
            let row = rows
                .first()
                .ok_or_else(|| StoreError::Query("no row".into()))?;
            let (epoch, fence, owner): (Option<i64>, Option<String>, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            if let Some(epoch) = epoch {
                return Ok(Hold::new(self, key, txn, epoch, sent));
            }
            if let Some(txn) = fence {
                return Err(StoreError::Fenced {
                    key: key.to_string(),
                    txn,
                });
            }
            let waited = started.elapsed();
            if waited + poll > self.cfg.wait {
                return Err(StoreError::Busy {
                    key: key.to_string(),
                    owner: owner.unwrap_or_else(|| "another sidecar".into()),
                    waited_ms: waited.as_millis() as u64,
                });
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    /// Writes `entry` under `hold` (epoch-checked), fencing or unfencing its key, and releases
    /// the lease when `release`.
    pub async fn write(&self, hold: &Hold, entry: &Entry, release: bool) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry).unwrap_or_default();
        let state = entry.state.to_string();
        let c = self.pool.get().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &hold.txn,
            &hold.epoch,
            &state,
            &entry.is_open(),
            &json,
            &hold.key,
            &entry.fences(),
            &release,
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
        self.pool
            .timed(c.client.execute(&c.st.free, &[&hold.key, &hold.epoch]))
            .await?;
        Ok(())
    }

    /// Extends a lease; false when the epoch is no longer current.
    pub async fn renew(&self, key: &str, epoch: i64) -> Result<bool, StoreError> {
        let c = self.pool.get().await?;
        let rows = self
            .pool
            .timed(
                c.client
                    .query(&c.st.renew, &[&key, &epoch, &self.lease_ms()]),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Claims a free key for work on `txn` (the transaction fencing it, or none); returns the
    /// hold and the transaction's current entry, or `None` when another sidecar holds the key.
    pub async fn claim(
        self: &Arc<Self>,
        key: &str,
        txn: &str,
    ) -> Result<Option<(Arc<Hold>, Entry)>, StoreError> {
        let c = self.pool.get().await?;
        let sent = Instant::now();
        let rows = self
            .pool
            .timed(
                c.client
                    .query(&c.st.claim, &[&key, &self.owner, &txn, &self.lease_ms()]),
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let hold = Hold::new(self, key, txn, row.get(0), sent);
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
        let sent = Instant::now();
        let rows = self
            .pool
            .timed(
                c.client
                    .query(&c.st.take_over, &[&self.owner, &self.lease_ms(), &limit]),
            )
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let (key, txn, epoch): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
            let hold = Hold::new(self, &key, &txn, epoch, sent);
            match self.load(&txn).await? {
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

    /// Deletes finished transactions beyond the newest `keep`; how many it deleted.
    pub async fn prune(&self, keep: i64) -> Result<u64, StoreError> {
        let c = self.pool.get().await?;
        self.pool
            .timed(c.client.execute(&c.st.prune, &[&keep]))
            .await
    }

    /// Why the store is not usable now, if it is not.
    pub fn problem(&self) -> Option<String> {
        self.pool.problem()
    }

    fn lost(&self, hold: &Hold) -> StoreError {
        hold.release();
        StoreError::LeaseLost {
            txn: hold.txn.clone(),
            key: hold.key.clone(),
            epoch: hold.epoch,
        }
    }
}
