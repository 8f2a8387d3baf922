//! The vocabulary of a transaction, shared by every layer above it: its states and reasons
//! ([`outcome`]), what each node said ([`NodeReport`], [`CompReport`]), the undo of one node as
//! data ([`UndoPlan`]), the evidence about each node and the one judgement made from it
//! ([`evidence`]), and the admin API's view of the journal ([`TxnStore`], [`TxnView`]).
//!
//! This module imports nothing else of dtc (a test in `tests/layers.rs` keeps it so): the saga
//! produces these values, the journal stores them, the admin API and `dtc status` show them.

pub(crate) mod evidence;
pub(crate) mod outcome;
pub(crate) mod plan;
pub mod view;

pub use outcome::{
    Class, CompOutcome, CompReport, NodeReport, NodeResponse, Outcome, Reason, TxnState, classify,
};
pub use plan::UndoPlan;
pub use view::{JournalStats, NoJournal, TxnActionError, TxnStore, TxnView};
