//! A small fixed pool of PostgreSQL connections, each with its statements prepared once, so a
//! store operation costs one round trip. A broken connection is replaced on next use.
//!
//! tokio-postgres pipelines concurrent queries on one connection, so a handful of connections
//! serve many writes; a pool crate would add little but another dependency.

use super::StoreError;
use super::events::{StoreErrorKind, StoreEvents};
use super::{sql, tls};
use crate::config::ClusterConfig;
use crate::config::cluster::redact_url;
use crate::config::store_tls::{self, SslMode};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

/// One connection and its prepared statements.
pub struct Conn {
    pub client: Client,
    pub st: Statements,
}

/// The statements every operation uses, prepared on connect.
pub struct Statements {
    pub begin: Statement,
    pub acquire: Statement,
    pub intent: Statement,
    pub write: Statement,
    pub renew: Statement,
    pub free: Statement,
    pub claim: Statement,
    pub take_over: Statement,
    pub load: Statement,
    pub note: Statement,
    pub fleet: Statement,
    pub prune: Statement,
    pub history: Statement,
    pub idem: Statement,
    pub finished_of_key: Statement,
    pub ids_put: Statement,
    pub ids_set: Statement,
    pub ids_gone: Statement,
    pub ids_get: Statement,
    pub ids_by_node: Statement,
    pub ids_all: Statement,
    pub keys: Statement,
}

/// The pool.
pub struct Pool {
    cfg: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// The URL with its password redacted, for messages.
    pub url: String,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next: AtomicUsize,
    timeout: Duration,
    up: AtomicBool,
    last_error: Mutex<Option<String>>,
    events: Option<Arc<dyn StoreEvents>>,
}

impl Pool {
    /// A pool of `size` connections (made lazily) to `cfg`, its events told to `events`.
    pub fn new(
        cfg: tokio_postgres::Config,
        tls: MakeRustlsConnect,
        url: String,
        size: usize,
        timeout: Duration,
        events: Option<Arc<dyn StoreEvents>>,
    ) -> Pool {
        Pool {
            events,
            cfg,
            tls,
            url,
            slots: (0..size.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            timeout,
            up: AtomicBool::new(true),
            last_error: Mutex::new(None),
        }
    }

    /// The pool `cfg` asks for (its URL's TLS settings applied, the certificate files read), and
    /// the TLS mode.
    pub fn open(
        cfg: &ClusterConfig,
        events: Option<Arc<dyn StoreEvents>>,
    ) -> Result<(Pool, SslMode), StoreError> {
        let url = redact_url(&cfg.database_url);
        let (plain, settings) = store_tls::split(&cfg.database_url)
            .map_err(|e| StoreError::Tls { why: e.to_string() })?;
        let connector =
            tls::connector(&settings).map_err(|e| StoreError::Tls { why: e.to_string() })?;
        let mut pg: tokio_postgres::Config =
            plain
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
        let pool = Pool::new(
            pg,
            connector,
            url,
            cfg.pool_size,
            cfg.statement_timeout,
            events,
        );
        Ok((pool, settings.mode))
    }

    /// A fresh connection, without prepared statements (schema migration uses it).
    pub async fn connect_raw(&self) -> Result<Client, StoreError> {
        let connecting = self.cfg.connect(self.tls.clone());
        let (client, connection) = tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| self.unreachable(format!("no connection within {:?}", self.timeout)))?
            .map_err(|e| {
                if let Some(m) = self.metrics() {
                    m.error(StoreErrorKind::Unreachable);
                }
                match super::tls::refused_certificate(&e) {
                    true => StoreError::Untrusted {
                        url: self.url.clone(),
                        why: super::error::describe(&e),
                    },
                    false => self.unreachable(super::error::describe(&e)),
                }
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "store connection closed");
            }
        });
        Ok(client)
    }

    /// A pooled connection, connecting (and preparing) when its slot is empty or broken.
    pub async fn get(&self) -> Result<Arc<Conn>, StoreError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(c.clone());
        }
        *slot = None;
        let client = self.note(self.connect_raw().await)?;
        let st = self.note(self.timed(prepare(&client)).await)?;
        let conn = Arc::new(Conn { client, st });
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Whoever counts the store's events.
    pub fn metrics(&self) -> Option<&dyn StoreEvents> {
        self.events.as_deref()
    }

    /// Runs one round trip within the statement timeout, recording whether the store is up.
    pub async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        let started = tokio::time::Instant::now();
        let (r, kind) = match tokio::time::timeout(self.timeout, f).await {
            Err(_) => (
                Err(self.unreachable(format!("no answer within {:?}", self.timeout))),
                Some(StoreErrorKind::Timeout),
            ),
            Ok(Err(e)) if e.is_closed() || e.as_db_error().is_none() => (
                Err(self.unreachable(super::error::describe(&e))),
                Some(StoreErrorKind::Unreachable),
            ),
            Ok(Err(e)) => (
                Err(StoreError::Query(e.to_string())),
                Some(StoreErrorKind::Query),
            ),
            Ok(Ok(v)) => (Ok(v), None),
        };
        if let Some(m) = self.metrics() {
            m.round_trip(started.elapsed().as_secs_f64());
            if let Some(kind) = kind {
                m.error(kind);
            }
        }
        self.note(r)
    }

    fn note<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Ok(_) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(url = %self.url, "shared store reachable again");
                    if let Some(m) = self.metrics() {
                        m.set_up(true);
                    }
                }
            }
            Err(e) if e.is_outage() => {
                if let Some(m) = self.metrics() {
                    m.set_up(false);
                }
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::error!(url = %self.url, error = %e, "shared store unreachable: writes answer 503 until it is back");
                }
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            }
            Err(_) => {}
        }
        r
    }

    /// Why the store is not usable now, if it is not.
    pub fn problem(&self) -> Option<String> {
        if self.up.load(Ordering::Relaxed) {
            return None;
        }
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Some(last.unwrap_or_else(|| format!("the shared store at {} is unreachable", self.url)))
    }

    fn unreachable(&self, why: String) -> StoreError {
        StoreError::Unreachable {
            url: self.url.clone(),
            why,
        }
    }
}

async fn prepare(c: &Client) -> Result<Statements, tokio_postgres::Error> {
    Ok(Statements {
        begin: c.prepare(sql::BEGIN).await?,
        acquire: c.prepare(sql::ACQUIRE).await?,
        intent: c.prepare(sql::INTENT).await?,
        write: c.prepare(sql::WRITE).await?,
        renew: c.prepare(sql::RENEW).await?,
        free: c.prepare(sql::FREE).await?,
        claim: c.prepare(sql::CLAIM).await?,
        take_over: c.prepare(sql::TAKE_OVER).await?,
        load: c.prepare(sql::LOAD).await?,
        note: c.prepare(sql::NOTE).await?,
        fleet: c.prepare(sql::FLEET).await?,
        prune: c.prepare(sql::PRUNE).await?,
        history: c.prepare(sql::HISTORY).await?,
        idem: c.prepare(sql::IDEM).await?,
        finished_of_key: c.prepare(sql::FINISHED_OF_KEY).await?,
        ids_put: c.prepare(sql::IDS_PUT).await?,
        ids_set: c.prepare(sql::IDS_SET).await?,
        ids_gone: c.prepare(sql::IDS_GONE).await?,
        ids_get: c.prepare(sql::IDS_GET).await?,
        ids_by_node: c.prepare(sql::IDS_BY_NODE).await?,
        ids_all: c.prepare(sql::IDS_ALL).await?,
        keys: c.prepare(sql::KEYS).await?,
    })
}
