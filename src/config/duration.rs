//! Durations written the way people write them: `"250ms"`, `"5s"`, `"1m 30s"`.

use serde::{Deserializer, Serializer};
use std::time::Duration;

/// Deserializes a human duration string.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
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
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// A duration as people read it in a message: `120us`, `859ms`, `2s`, `1.5s`, `1m 30s` —
/// rounded to what matters at its size, unlike `Debug` (`859.353982ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Human(pub Duration);

impl std::fmt::Display for Human {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        if d < Duration::from_millis(1) {
            write!(f, "{}us", d.as_micros())
        } else if d < Duration::from_secs(1) {
            write!(f, "{}ms", d.as_millis())
        } else if d < Duration::from_secs(60) {
            // Tenths of a second, rounded; `2s` rather than `2.0s`.
            let tenths = (d.as_millis() + 50) / 100;
            match tenths % 10 {
                0 => write!(f, "{}s", tenths / 10),
                t => write!(f, "{}.{t}s", tenths / 10),
            }
        } else {
            let secs = Duration::from_secs(d.as_secs());
            write!(f, "{}", humantime::format_duration(secs))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Human;
    use std::time::Duration;

    #[test]
    fn durations_read_as_people_write_them() {
        let cases = [
            (Duration::from_micros(120), "120us"),
            (Duration::from_nanos(859_353_982), "859ms"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_millis(1_460), "1.5s"),
            (Duration::from_millis(59_990), "60s"),
            (Duration::from_secs(90), "1m 30s"),
        ];
        for (d, want) in cases {
            assert_eq!(Human(d).to_string(), want, "{d:?}");
        }
    }
}
