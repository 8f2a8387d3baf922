//! The durable transaction journal (filled in by the journal work).
