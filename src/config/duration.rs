//! Durations written the way people write them: `"250ms"`, `"5s"`, `"1m 30s"`.

use serde::{Deserializer, Serializer};
use std::time::Duration;

/// Deserializes a human duration string.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = d.deserialize_str(Text)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({e}); write it like \"250ms\" or \"5s\""
        ))
    })
}

/// A string, or the error that says how a duration is written.
struct Text;

impl serde::de::Visitor<'_> for Text {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration in quotes, like \"2s\" or \"250ms\"")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Serializes as a human duration string.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}
