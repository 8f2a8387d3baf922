//! Configuration: the file format, its validation, and hot reload.

pub mod watch;
