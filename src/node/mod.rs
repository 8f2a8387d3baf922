//! The reference node (filled in by the node work).
