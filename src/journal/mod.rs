//! The durable transaction journal. It only stores: recovery, re-drive, takeover and the admin
//! API's view of it are sagas run again and live in [`crate::saga`].
//!
//! - [`log`]: the storage engine, an append-only, checksummed record log that knows
//!   nothing about transactions (records are opaque bytes): a file header with a format
//!   version, damage classified and quarantined at open, write failures repaired by itself.
//! - [`check`]: what a journal file holds (`dtc journal check`); [`damage`]: whether its damage
//!   needs a person (the refusal at start).
//! - [`record`]: what a transaction writes (intent, node answers, end) and the entry it folds into.
//! - [`store`]: [`Journal`]: appends records, keeps entries, fences resources, compacts;
//!   [`query`]: reading its entries.
//! - [`idem`]: clients' idempotency keys, bound to their transactions, kept for a window;
//!   [`history`]: each key's last acknowledged state, the prior state of its next write;
//!   [`idmap`]: the canonical id and each node's own id of resources the nodes name themselves.
//! - [`lock`]: [`DirLock`], one process per journal directory.
//! - [`shared`]: with `[cluster]`, the PostgreSQL store the records go to instead of the log,
//!   with per-key leases; [`cluster`]: the journal's side of it (leases held, the fleet's view,
//!   expired leases claimed for [`crate::saga::takeover`]).
//! - [`error`]: [`JournalError`], shared by every layer of the journal.

pub(crate) mod check;
pub mod cluster;
pub(crate) mod damage;
pub(crate) mod error;
pub(crate) mod history;
pub(crate) mod idem;
pub mod idmap;
pub(crate) mod lock;
pub mod log;
pub(crate) mod query;
pub mod record;
pub mod shared;
pub(crate) mod store;

pub use error::JournalError;
pub use lock::DirLock;
pub use log::{Durability, Log, LogOptions, OpenReport};
pub use store::Journal;
