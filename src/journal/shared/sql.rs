//! The store's schema and every statement dtc runs on it.
//!
//! Two tables and a sequence. `dtc_leases` has a row per key that is leased or fenced now: the
//! current lease (`owner`: the holder of this grant, `txn`, `expires` by the store's clock), its
//! fencing `epoch`, and the `fence`, the unresolved transaction that blocks new writes. A row is
//! deleted when its lease is released and no fence is left, so the table holds the keys in use,
//! not every key ever written. Epochs come from the sequence `dtc_epochs`, so a key whose row
//! was deleted still gets an epoch above every one granted before. `dtc_txns` holds every
//! transaction's folded journal entry (JSON) with the columns the scans need, the client's
//! idempotency key it is bound to (`idem`), the answer a retry with that key gets again
//! (`answer`, JSON, written with the end), and `changed`, a number from `dtc_epochs` taken by
//! every write of the entry: a key's writes are serialised by its lease, so `changed` orders
//! them as they happened (`begun_ms` does not: a write that began first may wait longer for the
//! lease).
//!
//! `dtc_ids` is the id map (routes with `id`, [`crate::journal::idmap`]): a row per resource
//! the nodes named themselves, its canonical id, each node's own id (`nodes`, JSON pairs in
//! config order, and `node_keys`, each pair as one JSON string, for looking a node's id up),
//! and the create that made it. A row is written and deleted only under the lease of the
//! transaction that changes it (the create's, or the delete's of the resource's key), and a
//! create whose entry is then written rolled back, rejected or to be retried has its row
//! withdrawn by that same statement ([`WRITE`]).
//!
//! A renewal or a state change is allowed only while the lease row still carries the writer's
//! epoch, holder and transaction, all three checked in the statement that makes the change (the
//! argument is in [`super::lease`]). Every statement that grants or renews a lease returns the
//! time it granted, as the store counts it, and the store's clock (both in milliseconds).

/// The schema version this dtc creates and understands.
pub(crate) const VERSION: i32 = 4;

/// Key of the advisory lock that serialises migrations of sidecars starting together.
pub(crate) const MIGRATION_LOCK: i64 = 0x6474_635f_7363_6831;

/// The id map's table and indexes (version 4): created with the schema, or by [`UPGRADE_3`].
macro_rules! ids_table {
    () => {
        "
CREATE TABLE dtc_ids (
    collection text NOT NULL,
    canonical  text NOT NULL,
    nodes      text NOT NULL,
    node_keys  text[] NOT NULL,
    txn        text NOT NULL,
    at_ms      bigint NOT NULL,
    PRIMARY KEY (collection, canonical)
);
CREATE INDEX dtc_ids_node ON dtc_ids USING gin (node_keys);
CREATE INDEX dtc_ids_txn ON dtc_ids (txn);
"
    };
}

/// Creates the schema (version 4) in an empty database.
pub(crate) const CREATE: &str = concat!(
    "
CREATE TABLE dtc_schema (version integer NOT NULL);
CREATE SEQUENCE dtc_epochs;
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
    entry    text NOT NULL,
    idem     text,
    answer   text,
    changed  bigint
);
CREATE INDEX dtc_txns_open ON dtc_txns (begun_ms) WHERE open;
CREATE INDEX dtc_txns_begun ON dtc_txns (begun_ms);
CREATE INDEX dtc_txns_key ON dtc_txns (key, begun_ms);
CREATE INDEX dtc_txns_idem ON dtc_txns (idem, begun_ms) WHERE idem IS NOT NULL;
",
    ids_table!(),
    "INSERT INTO dtc_schema (version) VALUES (4);"
);

/// Upgrades schema version 1: epochs from a sequence that starts above every epoch granted so
/// far, the rows of free and unfenced keys dropped, the index a key's history is read by.
pub(crate) const UPGRADE_1: &str = "
CREATE SEQUENCE dtc_epochs;
SELECT setval('dtc_epochs', greatest(1, (SELECT max(epoch) FROM dtc_leases)));
DELETE FROM dtc_leases WHERE txn IS NULL AND fence IS NULL;
CREATE INDEX dtc_txns_key ON dtc_txns (key, begun_ms);
UPDATE dtc_schema SET version = 2;
";

/// Upgrades schema version 2: the client's idempotency key of each transaction and the answer
/// a retry with it gets. Sidecars of version 2 that run on meanwhile write neither (their
/// transactions are simply not found by key).
pub(crate) const UPGRADE_2: &str = "
ALTER TABLE dtc_txns ADD COLUMN idem text, ADD COLUMN answer text, ADD COLUMN changed bigint;
CREATE INDEX dtc_txns_idem ON dtc_txns (idem, begun_ms) WHERE idem IS NOT NULL;
UPDATE dtc_schema SET version = 3;
";

/// Upgrades schema version 3: the id map. Sidecars of version 3 that run on meanwhile keep no
/// id map (their config check refuses `id` with `[cluster]`).
pub(crate) const UPGRADE_3: &str = concat!(ids_table!(), "UPDATE dtc_schema SET version = 4;");

/// Whether dtc's tables exist.
pub(crate) const TABLES: &str = "SELECT to_regclass('dtc_schema') IS NOT NULL, \
     to_regclass('dtc_leases') IS NOT NULL, to_regclass('dtc_txns') IS NOT NULL";

/// The columns dtc reads, to tell its own tables from foreign ones of the same names.
pub(crate) const SHAPE: &str = "SELECT (SELECT max(version) FROM dtc_schema), \
     (SELECT count(*) FROM (SELECT key, epoch, owner, txn, expires, fence FROM dtc_leases LIMIT 0) l), \
     (SELECT count(*) FROM (SELECT txn, key, state, open, begun_ms, entry FROM dtc_txns LIMIT 0) t)";

/// Milliseconds of an interval or since the Unix epoch of a timestamp.
macro_rules! ms {
    ($e:expr) => {
        concat!("(extract(epoch FROM ", $e, ") * 1000)::int8")
    };
}

/// The lease-taking part of [`BEGIN`] and [`ACQUIRE`]: a new row, or a free and unfenced one
/// taken with a fresh epoch.
macro_rules! take {
    () => {
        "
    INSERT INTO dtc_leases AS l (key, epoch, owner, txn, expires)
    VALUES ($1::text, nextval('dtc_epochs'), $2::text, $3::text,
            now() + $4::int8 * interval '1 millisecond')
    ON CONFLICT (key) DO UPDATE
        SET epoch = EXCLUDED.epoch, owner = EXCLUDED.owner, txn = EXCLUDED.txn,
            expires = EXCLUDED.expires
        WHERE l.txn IS NULL AND l.fence IS NULL
    RETURNING epoch, expires"
    };
}

/// The columns after the epoch in the answer of [`BEGIN`] and [`ACQUIRE`]: the time granted,
/// the store's clock, and the fence or the holder (as of the statement's start) when the key is
/// not free.
macro_rules! taken {
    () => {
        concat!(
            "
       (SELECT ",
            ms!("expires - now()"),
            " FROM l),
       ",
            ms!("now()"),
            ",
       (SELECT fence FROM dtc_leases WHERE key = $1),
       (SELECT owner FROM dtc_leases WHERE key = $1)"
        )
    };
}

/// Takes a free, unfenced key's lease and records the intent, in one statement. Returns the
/// new epoch (NULL when the key is not free) and [`taken!`]'s columns. Params: key, holder, txn,
/// lease ms, begun ms, entry, state, idempotency key.
pub(crate) const BEGIN: &str = concat!(
    "WITH l AS (",
    take!(),
    "), t AS (
    INSERT INTO dtc_txns (txn, key, state, open, begun_ms, entry, idem)
    SELECT $3, $1, $7::text, true, $5::int8, $6::text, $8::text FROM l
    RETURNING 1)
SELECT (SELECT epoch FROM l WHERE EXISTS (SELECT 1 FROM t)),",
    taken!()
);

/// Takes the lease alone (for a write that reads pre-images first, or a repair that reads the
/// nodes under it). Same params (first four) and answer as [`BEGIN`].
pub(crate) const ACQUIRE: &str = concat!(
    "WITH l AS (",
    take!(),
    ")
SELECT (SELECT epoch FROM l),",
    taken!()
);

/// Records the intent under a lease taken with [`ACQUIRE`]. Params: key, epoch, txn, begun ms,
/// entry, state, holder, idempotency key. One row when the lease is still held.
pub(crate) const INTENT: &str = "
WITH l AS (SELECT key FROM dtc_leases
           WHERE key = $1::text AND epoch = $2::int8 AND txn = $3::text AND owner = $7::text
           FOR UPDATE)
INSERT INTO dtc_txns (txn, key, state, open, begun_ms, entry, idem)
SELECT $3, $1, $6::text, true, $4::int8, $5::text, $8::text FROM l
RETURNING 1";

/// Writes a transaction's entry if the lease still has this epoch, holder and transaction; sets
/// or clears the key's fence; releases the lease when asked, deleting the row when no fence is
/// left; keeps the answer a retry with the client's idempotency key gets, when given; withdraws
/// the ids a create mapped when its entry ends without the write. One row when done. Params:
/// txn, epoch, state, open, entry, key, fences, release, holder, answer.
pub(crate) const WRITE: &str = "
WITH w AS (
    DELETE FROM dtc_ids
    WHERE txn = $1::text AND $3::text IN ('rolled_back', 'rejected', 'to_be_retried')
      AND EXISTS (SELECT 1 FROM dtc_leases WHERE key = $6::text AND epoch = $2::int8
                  AND txn = $1::text AND owner = $9::text)),
d AS (
    DELETE FROM dtc_leases
    WHERE key = $6::text AND epoch = $2::int8 AND txn = $1::text AND owner = $9::text
      AND $8::bool AND NOT $7::bool AND (fence IS NULL OR fence = $1::text)
    RETURNING 1),
u AS (
    UPDATE dtc_leases SET
        txn     = CASE WHEN $8::bool THEN NULL ELSE txn END,
        owner   = CASE WHEN $8::bool THEN NULL ELSE owner END,
        expires = CASE WHEN $8::bool THEN now() ELSE expires END,
        fence   = CASE WHEN $7::bool THEN $1::text WHEN fence = $1::text THEN NULL ELSE fence END
    WHERE key = $6::text AND epoch = $2::int8 AND txn = $1::text AND owner = $9::text
      AND NOT ($8::bool AND NOT $7::bool AND (fence IS NULL OR fence = $1::text))
    RETURNING 1)
UPDATE dtc_txns SET state = $3::text, open = $4::bool, entry = $5::text,
    answer = COALESCE($10::text, answer), changed = nextval('dtc_epochs')
WHERE txn = $1::text AND EXISTS (SELECT 1 FROM d UNION ALL SELECT 1 FROM u)
RETURNING 1";

/// Frees a lease whose transaction has no entry (it ended before its intent): deletes the row,
/// or clears the lease when a fence stays. Params: key, epoch, holder, txn.
pub(crate) const FREE: &str = "
WITH d AS (
    DELETE FROM dtc_leases
    WHERE key = $1::text AND epoch = $2::int8 AND owner = $3::text AND txn = $4::text
      AND fence IS NULL
    RETURNING 1)
UPDATE dtc_leases SET txn = NULL, owner = NULL, expires = now()
WHERE key = $1::text AND epoch = $2::int8 AND owner = $3::text AND txn = $4::text
  AND fence IS NOT NULL";

/// Extends a held lease. Params: key, epoch, lease ms, holder, txn. Returns the time granted
/// and the store's clock; no row when the lease is not this holder's any more.
pub(crate) const RENEW: &str = concat!(
    "
UPDATE dtc_leases SET expires = now() + $3::int8 * interval '1 millisecond'
WHERE key = $1::text AND epoch = $2::int8 AND owner = $4::text AND txn = $5::text
RETURNING ",
    ms!("expires - now()"),
    ", ",
    ms!("now()")
);

/// Takes a free key's lease for work on the transaction that fences it, or on one that no
/// longer does (re-drive, check, resolve). Params: key, holder, txn, lease ms. Returns the new
/// epoch, the time granted and the store's clock.
pub(crate) const CLAIM: &str = concat!(
    "
INSERT INTO dtc_leases AS l (key, epoch, owner, txn, expires)
VALUES ($1::text, nextval('dtc_epochs'), $2::text, $3::text,
        now() + $4::int8 * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE
    SET epoch = EXCLUDED.epoch, owner = EXCLUDED.owner, txn = EXCLUDED.txn,
        expires = EXCLUDED.expires
    WHERE l.txn IS NULL AND (l.fence IS NULL OR l.fence = $3::text)
RETURNING epoch, ",
    ms!("expires - now()"),
    ", ",
    ms!("now()")
);

/// Takes over expired leases, each by exactly one sidecar (rows another sidecar is claiming
/// are skipped). Params: holder, lease ms, limit. Returns key, txn, new epoch, the time granted
/// and the store's clock.
pub(crate) const TAKE_OVER: &str = concat!(
    "
UPDATE dtc_leases l SET epoch = nextval('dtc_epochs'), owner = $1::text,
    expires = now() + $2::int8 * interval '1 millisecond'
FROM (SELECT key FROM dtc_leases WHERE txn IS NOT NULL AND expires < now()
      ORDER BY expires LIMIT $3::int8 FOR UPDATE SKIP LOCKED) c
WHERE l.key = c.key
RETURNING l.key, l.txn, l.epoch, ",
    ms!("l.expires - now()"),
    ", ",
    ms!("now()")
);

/// One transaction's entry. Params: txn.
pub(crate) const LOAD: &str = "SELECT entry FROM dtc_txns WHERE txn = $1::text";

/// The newest transaction bound to a client's idempotency key since a time, with its kept
/// answer. Params: idempotency key, since ms.
pub(crate) const IDEM: &str = "
SELECT entry, answer FROM dtc_txns WHERE idem = $1::text AND begun_ms >= $2::int8
ORDER BY begun_ms DESC LIMIT 1";

/// A key's finished transactions but one, the last changed first (a row an older dtc wrote,
/// without `changed`, comes first: its place is not known): what its last acknowledged write
/// left is read from them. Params: key, the transaction to leave out.
pub(crate) const FINISHED_OF_KEY: &str = "
SELECT entry, changed FROM dtc_txns WHERE key = $1::text AND NOT open AND txn <> $2::text
ORDER BY changed DESC NULLS FIRST LIMIT 16";

/// Every key the store holds a transaction for (a joining node's backfill goes through them).
pub(crate) const KEYS: &str = "SELECT DISTINCT key FROM dtc_txns ORDER BY key";

/// Every transaction the store holds for a key, newest first. Params: key.
pub(crate) const HISTORY: &str =
    "SELECT entry FROM dtc_txns WHERE key = $1::text ORDER BY begun_ms DESC, txn";

/// Records a transaction that touched no node (no lease). Params: txn, key, state, begun ms,
/// entry.
pub(crate) const NOTE: &str = "
INSERT INTO dtc_txns (txn, key, state, open, begun_ms, entry, changed)
VALUES ($1::text, $2::text, $3::text, false, $4::int8, $5::text, nextval('dtc_epochs'))
ON CONFLICT (txn) DO NOTHING";

/// How many finished transactions one [`PRUNE`] deletes at most.
pub(crate) const PRUNE_BATCH: i64 = 5000;

/// Deletes up to [`PRUNE_BATCH`] finished transactions beyond the newest `keep` (the
/// inspection window of `journal.keep_finished`, fleet-wide), but none bound to an idempotency
/// key that began after `idem_since` (the `idempotency.window`). Params: keep, batch,
/// idem_since ms.
pub(crate) const PRUNE: &str = "
DELETE FROM dtc_txns WHERE txn IN (
    SELECT txn FROM (SELECT txn, idem, begun_ms FROM dtc_txns WHERE NOT open
                     ORDER BY begun_ms DESC OFFSET $1::int8) beyond
    WHERE beyond.idem IS NULL OR beyond.begun_ms < $3::int8
    LIMIT $2::int8)";

/// The fleet's open transactions and its latest finished ones. Params: how many finished.
pub(crate) const FLEET: &str = "
(SELECT entry FROM dtc_txns WHERE open)
UNION ALL
(SELECT entry FROM dtc_txns WHERE NOT open ORDER BY begun_ms DESC LIMIT $1::int8)";

/// The lease check of the id map's writes: one row while the lease has this key, epoch,
/// transaction and holder ($1..$4).
macro_rules! held {
    () => {
        "SELECT 1 FROM dtc_leases
           WHERE key = $1::text AND epoch = $2::int8 AND txn = $3::text AND owner = $4::text"
    };
}

/// Maps a resource under the create's lease, unless its canonical id is taken. Params: key,
/// epoch, txn, holder, collection, canonical, nodes (JSON), node keys, at ms. Returns whether
/// the lease is held and whether the row was written.
pub(crate) const IDS_PUT: &str = concat!(
    "WITH l AS (",
    held!(),
    "), i AS (
    INSERT INTO dtc_ids (collection, canonical, nodes, node_keys, txn, at_ms)
    SELECT $5::text, $6::text, $7::text, $8::text[], $3::text, $9::int8 FROM l
    ON CONFLICT (collection, canonical) DO NOTHING
    RETURNING 1)
SELECT EXISTS (SELECT 1 FROM l), EXISTS (SELECT 1 FROM i)"
);

/// Sets a mapped resource's node ids (a repair recreated it on a node) under the repair's
/// lease. Params: key, epoch, txn, holder, collection, canonical, nodes (JSON), node keys.
/// Returns whether the lease is held and whether the row was there.
pub(crate) const IDS_SET: &str = concat!(
    "WITH l AS (",
    held!(),
    "), u AS (
    UPDATE dtc_ids SET nodes = $7::text, node_keys = $8::text[]
    WHERE collection = $5::text AND canonical = $6::text AND EXISTS (SELECT 1 FROM l)
    RETURNING 1)
SELECT EXISTS (SELECT 1 FROM l), EXISTS (SELECT 1 FROM u)"
);

/// Unmaps a resource a delete left absent on every node, under the delete's lease. Params:
/// key, epoch, txn, holder, collection, canonical. Returns whether the lease is held.
pub(crate) const IDS_GONE: &str = concat!(
    "WITH l AS (",
    held!(),
    "), d AS (
    DELETE FROM dtc_ids WHERE collection = $5::text AND canonical = $6::text
      AND EXISTS (SELECT 1 FROM l))
SELECT EXISTS (SELECT 1 FROM l)"
);

/// One resource's ids. Params: collection, canonical.
pub(crate) const IDS_GET: &str =
    "SELECT nodes, txn, at_ms FROM dtc_ids WHERE collection = $1::text AND canonical = $2::text";

/// The canonical id of a resource one of the given node keys names. Params: collection, node
/// keys.
pub(crate) const IDS_BY_NODE: &str = "
SELECT canonical FROM dtc_ids WHERE collection = $1::text AND node_keys && $2::text[]
ORDER BY at_ms DESC LIMIT 1";

/// A collection's resources. Params: collection.
pub(crate) const IDS_ALL: &str =
    "SELECT canonical, nodes, txn, at_ms FROM dtc_ids WHERE collection = $1::text";

/// How many resources the map holds.
pub(crate) const IDS_COUNT: &str = "SELECT count(*) FROM dtc_ids";
