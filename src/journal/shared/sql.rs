//! The store's schema and every statement dtc runs on it.
//!
//! Two tables. `dtc_leases` has one row per resource key ever written: the current lease
//! (`owner`, `txn`, `expires` by the database's clock), its fencing `epoch` (bumped by every
//! acquisition, so it only grows), and the `fence`, the unresolved transaction that blocks new
//! writes. `dtc_txns` holds every transaction's folded journal entry (JSON) with the columns the
//! scans need. A state change is allowed only while the lease row still carries the writer's
//! epoch and transaction, checked in the same statement that makes the change.

/// The schema version this dtc creates and understands.
pub const VERSION: i32 = 1;

/// Key of the advisory lock that serialises migrations of sidecars starting together.
pub const MIGRATION_LOCK: i64 = 0x6474_635f_7363_6831;

/// Creates schema version 1.
pub const CREATE: &str = "
CREATE TABLE dtc_schema (version integer NOT NULL);
CREATE TABLE dtc_leases (
    key     text PRIMARY KEY,
    epoch   bigint NOT NULL,
    owner   text,
    txn     text,
    expires timestamptz NOT NULL,
    fence   text
);
CREATE INDEX dtc_leases_held ON dtc_leases (expires) WHERE txn IS NOT NULL;
CREATE TABLE dtc_txns (
    txn      text PRIMARY KEY,
    key      text NOT NULL,
    state    text NOT NULL,
    open     boolean NOT NULL,
    begun_ms bigint NOT NULL,
    entry    text NOT NULL
);
CREATE INDEX dtc_txns_open ON dtc_txns (begun_ms) WHERE open;
CREATE INDEX dtc_txns_begun ON dtc_txns (begun_ms);
INSERT INTO dtc_schema (version) VALUES (1);
";

/// Whether dtc's tables exist.
pub const TABLES: &str = "SELECT to_regclass('dtc_schema') IS NOT NULL, \
     to_regclass('dtc_leases') IS NOT NULL, to_regclass('dtc_txns') IS NOT NULL";

/// The columns dtc reads, to tell its own tables from foreign ones of the same names.
pub const SHAPE: &str = "SELECT (SELECT max(version) FROM dtc_schema), \
     (SELECT count(*) FROM (SELECT key, epoch, owner, txn, expires, fence FROM dtc_leases LIMIT 0) l), \
     (SELECT count(*) FROM (SELECT txn, key, state, open, begun_ms, entry FROM dtc_txns LIMIT 0) t)";

/// The lease-taking part of [`BEGIN`] and [`ACQUIRE`].
macro_rules! take {
    () => {
        "
    INSERT INTO dtc_leases AS l (key, epoch, owner, txn, expires)
    VALUES ($1::text, 1, $2::text, $3::text, now() + $4::int8 * interval '1 millisecond')
    ON CONFLICT (key) DO UPDATE
        SET epoch = l.epoch + 1, owner = EXCLUDED.owner, txn = EXCLUDED.txn,
            expires = EXCLUDED.expires
        WHERE l.txn IS NULL AND l.fence IS NULL
    RETURNING epoch"
    };
}

/// Takes a free, unfenced key's lease and records the intent, in one statement. Returns the
/// new epoch, or NULL with the fence or the holder (as of the statement's start) when the key
/// is not free. Params: key, owner, txn, lease ms, begun ms, entry, state.
pub const BEGIN: &str = concat!(
    "WITH l AS (",
    take!(),
    "), t AS (
    INSERT INTO dtc_txns (txn, key, state, open, begun_ms, entry)
    SELECT $3, $1, $7::text, true, $5::int8, $6::text FROM l
    RETURNING 1)
SELECT (SELECT epoch FROM l WHERE EXISTS (SELECT 1 FROM t)),
       (SELECT fence FROM dtc_leases WHERE key = $1),
       (SELECT owner FROM dtc_leases WHERE key = $1)"
);

/// Takes the lease alone (for a write that reads pre-images first). Same params (first four)
/// and result as [`BEGIN`].
pub const ACQUIRE: &str = concat!(
    "WITH l AS (",
    take!(),
    ")
SELECT (SELECT epoch FROM l),
       (SELECT fence FROM dtc_leases WHERE key = $1),
       (SELECT owner FROM dtc_leases WHERE key = $1)"
);

/// Records the intent under a lease taken with [`ACQUIRE`]. Params: key, epoch, txn, begun ms,
/// entry, state. One row when the lease is still held.
pub const INTENT: &str = "
WITH l AS (SELECT key FROM dtc_leases
           WHERE key = $1::text AND epoch = $2::int8 AND txn = $3::text FOR UPDATE)
INSERT INTO dtc_txns (txn, key, state, open, begun_ms, entry)
SELECT $3, $1, $6::text, true, $4::int8, $5::text FROM l
RETURNING 1";

/// Writes a transaction's entry if the lease still has this epoch; sets or clears the key's
/// fence; releases the lease when asked. One row when done. Params: txn, epoch, state, open,
/// entry, key, fences, release.
pub const WRITE: &str = "
WITH l AS (
    UPDATE dtc_leases SET
        txn     = CASE WHEN $8::bool THEN NULL ELSE txn END,
        owner   = CASE WHEN $8::bool THEN NULL ELSE owner END,
        expires = CASE WHEN $8::bool THEN now() ELSE expires END,
        fence   = CASE WHEN $7::bool THEN $1::text WHEN fence = $1::text THEN NULL ELSE fence END
    WHERE key = $6::text AND epoch = $2::int8 AND txn = $1::text
    RETURNING 1)
UPDATE dtc_txns SET state = $3::text, open = $4::bool, entry = $5::text
WHERE txn = $1::text AND EXISTS (SELECT 1 FROM l)
RETURNING 1";

/// Frees a lease whose transaction has no entry (it ended before its intent). Params: key,
/// epoch.
pub const FREE: &str = "
UPDATE dtc_leases SET txn = NULL, owner = NULL, expires = now()
WHERE key = $1::text AND epoch = $2::int8";

/// Extends a held lease. Params: key, epoch, lease ms.
pub const RENEW: &str = "
UPDATE dtc_leases SET expires = now() + $3::int8 * interval '1 millisecond'
WHERE key = $1::text AND epoch = $2::int8 AND txn IS NOT NULL
RETURNING 1";

/// Takes a free key's lease for work on the transaction that fences it (re-drive, check,
/// resolve). Params: key, owner, txn, lease ms. Returns the new epoch.
pub const CLAIM: &str = "
UPDATE dtc_leases SET epoch = epoch + 1, owner = $2::text, txn = $3::text,
    expires = now() + $4::int8 * interval '1 millisecond'
WHERE key = $1::text AND txn IS NULL AND (fence IS NULL OR fence = $3::text)
RETURNING epoch";

/// Takes over expired leases, each by exactly one sidecar (rows another sidecar is claiming
/// are skipped). Params: owner, lease ms, limit. Returns key, txn, new epoch.
pub const TAKE_OVER: &str = "
UPDATE dtc_leases l SET epoch = l.epoch + 1, owner = $1::text,
    expires = now() + $2::int8 * interval '1 millisecond'
FROM (SELECT key FROM dtc_leases WHERE txn IS NOT NULL AND expires < now()
      ORDER BY expires LIMIT $3::int8 FOR UPDATE SKIP LOCKED) c
WHERE l.key = c.key
RETURNING l.key, l.txn, l.epoch";

/// One transaction's entry. Params: txn.
pub const LOAD: &str = "SELECT entry FROM dtc_txns WHERE txn = $1::text";

/// Records a transaction that touched no node (no lease). Params: txn, key, state, begun ms,
/// entry.
pub const NOTE: &str = "
INSERT INTO dtc_txns (txn, key, state, open, begun_ms, entry)
VALUES ($1::text, $2::text, $3::text, false, $4::int8, $5::text)
ON CONFLICT (txn) DO NOTHING";

/// Deletes up to 1000 finished transactions beyond the newest `keep` (the inspection window of
/// `journal.keep_finished`, fleet-wide). Params: keep.
pub const PRUNE: &str = "
DELETE FROM dtc_txns WHERE txn IN (
    SELECT txn FROM dtc_txns WHERE NOT open ORDER BY begun_ms DESC OFFSET $1::int8 LIMIT 1000)";

/// The fleet's open transactions and its latest finished ones. Params: how many finished.
pub const FLEET: &str = "
(SELECT entry FROM dtc_txns WHERE open)
UNION ALL
(SELECT entry FROM dtc_txns WHERE NOT open ORDER BY begun_ms DESC LIMIT $1::int8)";
