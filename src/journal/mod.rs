//! The durable transaction journal.
//!
//! - [`log`]: the storage engine, an append-only, checksummed record log that knows
//!   nothing about transactions (records are opaque bytes).
//! - [`record`]: what a transaction writes (intent, node answers, end) and the entry it folds into.
//! - [`store`]: [`Journal`]: appends records, keeps entries, fences resources, compacts;
//!   [`query`]: reading its entries.
//! - [`redrive`]: recovery at startup, background re-drive, late-write checks.
//! - [`view`]: the journal as the admin API's `TxnStore` (list, inspect, retry, resolve).
//! - [`lock`]: [`DirLock`], one process per journal directory.
//! - [`shared`]: with `[cluster]`, the PostgreSQL store the records go to instead of the log,
//!   with per-key leases; [`cluster`]: the journal's side of it (leases held, the fleet's view);
//!   [`takeover`]: expired leases' transactions claimed and recovered.
//! - [`error`]: [`JournalError`], shared by every layer of the journal.

pub mod cluster;
pub mod error;
pub mod lock;
pub mod log;
pub mod query;
pub mod record;
pub mod shared;
pub mod store;

pub use error::JournalError;
pub use lock::DirLock;
pub use log::{Durability, Log, LogOptions, TailReport};
pub use store::Journal;
