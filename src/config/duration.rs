//! Durations written the way people write them: `"250ms"`, `"5s"`, `"1m 30s"`.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Deserializes a human duration string.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({e}); write it like \"250ms\" or \"5s\""
        ))
    })
}

/// Serializes as a human duration string.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}
