//! The id map in the shared store ([`super::sql`]'s `dtc_ids`): every sidecar and `dtc verify`
//! read the same map. A row changes only under the lease of the transaction that changes it —
//! the create's (mapped before its end is written), a delete's of the resource's key, a
//! repair's — so a sidecar whose lease was taken over writes nothing.

use super::{Hold, Shared, StoreError};
use crate::journal::record::IdEntry;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// A node's id as one string (`["node-2","1001"]`), the form `node_keys` holds.
fn node_key(node: &str, id: &str) -> String {
    serde_json::to_string(&(node, id)).unwrap_or_default()
}

fn node_keys(e: &IdEntry) -> Vec<String> {
    e.nodes.iter().map(|(n, id)| node_key(n, id)).collect()
}

/// An entry from a row of (canonical, nodes, txn, at_ms).
fn entry(collection: &str, canonical: String, row: &Row, at: usize) -> Option<IdEntry> {
    let nodes: Vec<(String, String)> = serde_json::from_str(row.get::<_, &str>(at)).ok()?;
    Some(IdEntry {
        collection: collection.to_string(),
        canonical,
        nodes,
        txn: row.get(at + 1),
        at_ms: row.get::<_, i64>(at + 2) as u64,
    })
}

impl Shared {
    /// Maps `e` under `hold` (its create's lease): `Ok(false)` when the canonical id is already
    /// another resource's.
    pub async fn map_ids(&self, hold: &Hold, e: &IdEntry) -> Result<bool, StoreError> {
        let nodes = serde_json::to_string(&e.nodes).unwrap_or_default();
        let keys = node_keys(e);
        let at = e.at_ms as i64;
        let params: [&(dyn ToSql + Sync); 9] = [
            &hold.key,
            &hold.epoch,
            &hold.txn,
            &hold.holder,
            &e.collection,
            &e.canonical,
            &nodes,
            &keys,
            &at,
        ];
        let row = self
            .held_and(hold, |c| c.st.ids_put.clone(), &params)
            .await?;
        Ok(row.get(1))
    }

    /// Sets the node ids of the resource `e` names, under `hold` (a repair's lease): `Ok(false)`
    /// when the map no longer holds it.
    pub async fn set_ids(&self, hold: &Hold, e: &IdEntry) -> Result<bool, StoreError> {
        let nodes = serde_json::to_string(&e.nodes).unwrap_or_default();
        let keys = node_keys(e);
        let params: [&(dyn ToSql + Sync); 8] = [
            &hold.key,
            &hold.epoch,
            &hold.txn,
            &hold.holder,
            &e.collection,
            &e.canonical,
            &nodes,
            &keys,
        ];
        let row = self
            .held_and(hold, |c| c.st.ids_set.clone(), &params)
            .await?;
        Ok(row.get(1))
    }

    /// Unmaps `canonical` of `collection` under `hold` (the delete's lease).
    pub async fn unmap_ids(
        &self,
        hold: &Hold,
        collection: &str,
        canonical: &str,
    ) -> Result<(), StoreError> {
        let params: [&(dyn ToSql + Sync); 6] = [
            &hold.key,
            &hold.epoch,
            &hold.txn,
            &hold.holder,
            &collection,
            &canonical,
        ];
        self.held_and(hold, |c| c.st.ids_gone.clone(), &params)
            .await?;
        Ok(())
    }

    /// Runs a statement whose first column says whether `hold`'s lease is still held: its row
    /// when it is (the rest of the row is what the statement did), the lease lost when not.
    async fn held_and(
        &self,
        hold: &Hold,
        st: impl Fn(&super::pool::Conn) -> tokio_postgres::Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        let c = self.pool.get().await?;
        let row = self.pool.timed(c.client.query_one(&st(&c), params)).await?;
        match row.get::<_, bool>(0) {
            true => Ok(row),
            false => Err(self.lost(hold)),
        }
    }

    /// The ids of `canonical` of `collection`, if the map holds it.
    pub async fn ids_of(
        &self,
        collection: &str,
        canonical: &str,
    ) -> Result<Option<IdEntry>, StoreError> {
        let c = self.pool.get().await?;
        let rows = self
            .pool
            .timed(c.client.query(&c.st.ids_get, &[&collection, &canonical]))
            .await?;
        Ok(rows
            .first()
            .and_then(|r| entry(collection, canonical.to_string(), r, 0)))
    }

    /// The canonical id of the resource that is `id` on one of `nodes`, if any.
    pub async fn canonical_of_any(
        &self,
        collection: &str,
        nodes: &[&str],
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let keys: Vec<String> = nodes.iter().map(|n| node_key(n, id)).collect();
        let c = self.pool.get().await?;
        let rows = self
            .pool
            .timed(c.client.query(&c.st.ids_by_node, &[&collection, &keys]))
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// Every resource of `collection` the map holds.
    pub async fn ids_all(&self, collection: &str) -> Result<Vec<IdEntry>, StoreError> {
        let c = self.pool.get().await?;
        let rows = self
            .pool
            .timed(c.client.query(&c.st.ids_all, &[&collection]))
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| entry(collection, r.get(0), r, 1))
            .collect())
    }

    /// How many resources the map holds, over every collection.
    pub async fn ids_count(&self) -> Result<u64, StoreError> {
        let c = self.pool.get().await?;
        let row = self
            .pool
            .timed(c.client.query_one(super::sql::IDS_COUNT, &[]))
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}
