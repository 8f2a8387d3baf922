//! The `[verify]` section: the optional background anti-entropy check (`dtc verify` inside a
//! running sidecar). Every field reloads live.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The background check of recently written keys on every node.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyTask {
    /// Time between two checks. Default `0s`: the background check is off.
    #[serde(with = "super::duration")]
    pub interval: Duration,
    /// Keys written within this window are checked. Default `1h`.
    #[serde(with = "super::duration")]
    pub since: Duration,
    /// At most this many keys per check, the most recently written first. Default 1000.
    pub limit: usize,
    /// Repair what is found (as `dtc verify --repair` does). Default false: report only.
    pub repair: bool,
}

impl Default for VerifyTask {
    fn default() -> Self {
        VerifyTask {
            interval: Duration::ZERO,
            since: Duration::from_secs(3600),
            limit: 1000,
            repair: false,
        }
    }
}
