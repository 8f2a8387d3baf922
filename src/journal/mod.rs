//! The durable transaction journal.
//!
//! - [`log`]: the storage engine, an append-only, checksummed record log that knows
//!   nothing about transactions (records are opaque bytes).
//! - [`error`]: [`JournalError`], shared by every layer of the journal.

pub mod error;
pub mod log;

pub use error::JournalError;
pub use log::{Durability, Log, LogOptions, TailReport};
