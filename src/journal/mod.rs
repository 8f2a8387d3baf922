//! The durable transaction journal.
//!
//! - [`log`]: the storage engine, an append-only, checksummed record log that knows
//!   nothing about transactions (records are opaque bytes).
//! - [`record`]: what a transaction writes (intent, node answers, end) and the entry it folds into.
//! - [`store`]: [`Journal`]: appends records, keeps entries, fences resources, compacts.
//! - [`redrive`]: recovery at startup, background re-drive, late-write checks.
//! - [`error`]: [`JournalError`], shared by every layer of the journal.

pub mod error;
pub mod log;
pub mod record;
pub mod redrive;
pub mod store;

pub use error::JournalError;
pub use log::{Durability, Log, LogOptions, TailReport};
pub use store::Journal;
