//! [`ProxyBody`], what the proxy and the admin listener answer with.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The error a response body can end with.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A body streamed from elsewhere (a node's answer to a read), with its own limits.
pub(crate) type StreamBody = Box<dyn Body<Data = Bytes, Error = BodyError> + Send + Unpin>;

/// A response body: buffered (problems, write answers, admin documents) or streamed (reads),
/// without boxing the common buffered case.
pub enum ProxyBody {
    /// Fully in memory.
    Full(Full<Bytes>),
    /// Streamed: the proxy's reads (`proxy::stream`), bounded by read timeouts.
    Stream(StreamBody),
}

impl ProxyBody {
    /// A buffered body.
    pub fn full(b: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Full(Full::new(b.into()))
    }

    /// An empty body.
    pub fn empty() -> ProxyBody {
        ProxyBody::Full(Full::default())
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Full(f) => Pin::new(f).poll_frame(cx).map_err(|never| match never {}),
            ProxyBody::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(f) => f.is_end_stream(),
            ProxyBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(f) => f.size_hint(),
            ProxyBody::Stream(s) => s.size_hint(),
        }
    }
}
