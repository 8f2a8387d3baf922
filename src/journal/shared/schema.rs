//! Creating, upgrading or checking the store's schema at start, under an advisory lock so that
//! sidecars starting together migrate once.
//!
//! Version 1 (leases with per-key epochs, a row per key ever written) is upgraded in place to
//! version 2 (epochs from a sequence, rows only for keys in use), version 2 to version 3
//! (each transaction's idempotency key and kept answer), and version 3 to version 4 (the id
//! map). Sidecars of version 1 that run
//! on meanwhile stay safe: every statement of theirs still checks the epoch and the transaction,
//! and a transaction id is never granted twice.

use super::StoreError;
use super::pool::Pool;
use super::sql;

/// Creates the schema in an empty database, upgrades an older one of dtc's, or checks that the one
/// there is dtc's and not newer.
pub(crate) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.connect_raw().await?;
    let tx = pool.timed(client.transaction()).await?;
    pool.timed(tx.execute("SELECT pg_advisory_xact_lock($1)", &[&sql::MIGRATION_LOCK]))
        .await?;
    let row = pool.timed(tx.query_one(sql::TABLES, &[])).await?;
    let (schema, leases, txns): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    let foreign = |why: String| StoreError::Foreign {
        url: pool.url.clone(),
        why,
    };
    if !schema {
        if leases || txns {
            return Err(foreign(
                "tables dtc_leases or dtc_txns exist without dtc_schema".into(),
            ));
        }
        pool.timed(tx.batch_execute(sql::CREATE)).await?;
        pool.timed(tx.commit()).await?;
        tracing::info!(url = %pool.url, version = sql::VERSION, "shared store schema created");
        return Ok(());
    }
    let shape = match tx.query_one(sql::SHAPE, &[]).await {
        Ok(row) => row,
        Err(e) => return Err(foreign(format!("its tables lack dtc's columns: {e}"))),
    };
    let version: Option<i32> = shape.try_get(0).map_err(|e| foreign(e.to_string()))?;
    match version {
        None => Err(foreign("dtc_schema holds no version".into())),
        Some(v) if v > sql::VERSION => Err(StoreError::Newer {
            url: pool.url.clone(),
            found: v,
            known: sql::VERSION,
        }),
        Some(from @ (1..=3)) => {
            if from == 1 {
                pool.timed(tx.batch_execute(sql::UPGRADE_1)).await?;
            }
            if from <= 2 {
                pool.timed(tx.batch_execute(sql::UPGRADE_2)).await?;
            }
            pool.timed(tx.batch_execute(sql::UPGRADE_3)).await?;
            pool.timed(tx.commit()).await?;
            tracing::info!(url = %pool.url, from, to = sql::VERSION, "shared store schema upgraded");
            Ok(())
        }
        Some(_) => {
            pool.timed(tx.commit()).await?;
            Ok(())
        }
    }
}
