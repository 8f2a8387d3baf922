//! The HTTP toolkit every listener shares: the answer body ([`ProxyBody`]), problem+json
//! answers ([`problem`]), the normal form of a request path ([`path`]), a connection's silence timeouts ([`conn`]) and one accept-serve-drain
//! skeleton ([`serve()`]). It knows nothing of the data path: the proxy, the admin listener, the
//! webhook and the reference node build on it.

pub mod body;
pub mod buffer;
pub mod conn;
pub mod path;
pub mod problem;
pub mod serve;

pub use body::{BodyError, ProxyBody, StreamBody};
pub use buffer::buffer_body;
pub use serve::{Connections, Drain, Ended, Options, Plain, serve};
