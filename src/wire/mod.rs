//! The HTTP toolkit every listener shares: the answer body ([`ProxyBody`]), problem+json
//! answers ([`problem`]), the normal form of a request path ([`path`]), a connection's silence timeouts ([`conn`]) and one accept-serve-drain
//! skeleton ([`serve()`]). It knows nothing of the data path: the proxy, the admin listener, the
//! webhook and the reference node build on it.

pub(crate) mod body;
pub(crate) mod buffer;
pub(crate) mod conn;
pub(crate) mod path;
pub(crate) mod problem;
pub(crate) mod serve;

pub(crate) use body::{BodyError, ProxyBody};
pub(crate) use buffer::buffer_body;
pub(crate) use serve::{Connections, Drain, Ended, Options, Plain, answer_408, serve, spare};
