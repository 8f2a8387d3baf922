//! An undo plan: the compensating request for one node, as plain data the journal keeps and
//! recovery runs. [`crate::saga::undo`] resolves plans from a route's rule.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};

/// The compensating request for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndoPlan {
    #[serde(with = "method_text")]
    pub method: http::Method,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, with = "body_text")]
    pub body: Bytes,
    /// Statuses meaning "already undone".
    pub already: Vec<u16>,
}

impl UndoPlan {
    /// The content type header value, if any.
    pub fn content_type_header(&self) -> Option<(http::HeaderName, http::HeaderValue)> {
        let ct = self.content_type.as_deref()?;
        Some((CONTENT_TYPE, http::HeaderValue::from_str(ct).ok()?))
    }
}

/// Methods in the journal: as their text (`"DELETE"`), the form journals have always held.
pub(crate) mod method_text {
    use http::Method;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Method::from_bytes(text.as_bytes())
            .map_err(|_| D::Error::custom(format!("`{text}` is not an HTTP method")))
    }
}

/// Bodies in the journal: UTF-8 text as a string, anything else as an array of bytes.
mod body_text {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Raw(Vec<u8>),
    }

    pub(super) fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(b) {
            Ok(t) => Repr::Text(t.to_string()).serialize(s),
            Err(_) => Repr::Raw(b.to_vec()).serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        Ok(match Repr::deserialize(d)? {
            Repr::Text(t) => Bytes::from(t),
            Repr::Raw(v) => Bytes::from(v),
        })
    }
}
