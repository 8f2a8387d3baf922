//! dtc: a replicating sidecar proxy.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod headers;
pub mod journal;
pub mod k8s;
pub mod node;
pub mod proxy;
pub mod runtime;
pub mod saga;
pub mod upstream;
