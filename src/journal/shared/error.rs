//! Errors of the shared store. Each says what an operator can do about it.

/// Everything that can go wrong with the PostgreSQL store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No connection could be made (or it broke, or a round trip timed out).
    #[error(
        "the shared store at {url} is unreachable: {why}; check that PostgreSQL runs there and that cluster.database_url is right"
    )]
    Unreachable { url: String, why: String },
    /// The TLS settings in the URL cannot be used (a certificate or key file missing or bad).
    #[error(
        "the shared store's TLS settings cannot be used: {why}; fix sslrootcert, sslcert or sslkey in cluster.database_url"
    )]
    Tls { why: String },
    /// The store's certificate is not one the URL's `sslrootcert` vouches for.
    #[error(
        "the shared store at {url} presented a certificate that cannot be trusted ({why}): point sslrootcert in cluster.database_url at the CA that signed it, and with sslmode=verify-full connect by a name the certificate holds"
    )]
    Untrusted { url: String, why: String },
    /// A query failed for another reason than the connection.
    #[error("the shared store refused a query: {0}")]
    Query(String),
    /// The database holds tables that dtc did not create.
    #[error(
        "the database at {url} holds a schema that is not dtc's ({why}); point cluster.database_url at a database of its own"
    )]
    Foreign { url: String, why: String },
    /// The schema was created by a newer dtc.
    #[error(
        "the database at {url} has dtc schema version {found}, newer than this dtc's {known}; upgrade this sidecar"
    )]
    Newer { url: String, found: i32, known: i32 },
    /// A write waited its whole `cluster.wait` for a key another sidecar holds.
    #[error(
        "resource {key} is being written through another sidecar ({owner}); waited {waited_ms} ms, retry later"
    )]
    Busy {
        key: String,
        owner: String,
        waited_ms: u64,
    },
    /// An unresolved transaction fences the key (fleet-wide).
    #[error("resource {key} is fenced by unresolved transaction {txn}")]
    Fenced { key: String, txn: String },
    /// The lease was lost (expired and taken over): this sidecar must not touch the key again.
    #[error(
        "the lease of transaction {txn} on {key} was lost (epoch {epoch} is no longer current); its transaction is another sidecar's now"
    )]
    LeaseLost {
        txn: String,
        key: String,
        epoch: i64,
    },
}

impl StoreError {
    /// Whether the store itself is the problem (not a key's state).
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable { .. } | StoreError::Query(_) | StoreError::Untrusted { .. }
        )
    }
}

/// `e` and every error beneath it, joined: tokio-postgres says "error performing TLS handshake"
/// and keeps why (an unknown issuer, a name mismatch) in its source.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
