//! dtc: a replicating sidecar proxy.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod journal;
pub mod k8s;
pub mod node;
