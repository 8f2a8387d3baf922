//! Node host names → addresses without libc.
//!
//! dtc's image is `FROM scratch` with a static glibc binary, and glibc's `getaddrinfo` needs
//! NSS modules that are not there, so `node-1.my-namespace.svc.cluster.local` would never
//! resolve. [`Resolver`] does what a pod's glibc would, in this order:
//!
//! 1. an IP literal (`127.0.0.1`, `::1`, `[::1]`) is its own answer, no DNS;
//! 2. a name in the hosts file (`/etc/hosts`) gets its listed addresses;
//! 3. `localhost` and `*.localhost` not listed there get `127.0.0.1` and `::1`;
//! 4. anything else goes to DNS (the `hickory-resolver` crate) with `resolv.conf`'s name
//!    servers, `search` domains and `ndots`, bounded by the connect timeout.
//!
//! One resolver serves the whole process ([`Resolver::shared`], built on first use from the
//! system files); clones share its DNS cache. Each node's connector holds a clone with the
//! node's connect timeout ([`Resolver::with_timeout`]), used as hyper-util's resolver service.

mod config;

pub use config::{HOSTS, Hosts, RESOLV_CONF, ResolveConfig};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::Name as DnsName;
use hyper_util::client::legacy::connect::dns::Name;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// Why a host name has no address. Every message starts with `cannot resolve HOST:`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// DNS answered that the name does not exist, or has no address.
    #[error("cannot resolve {host}: no such host")]
    NotFound {
        /// The name as the node URL spells it.
        host: String,
    },
    /// DNS could not be asked or gave no usable answer.
    #[error("cannot resolve {host}: {reason}")]
    Dns {
        /// The name as the node URL spells it.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// No answer within the connect timeout.
    #[error("cannot resolve {host}: no answer within {}", crate::config::duration::Human(*timeout))]
    Timeout {
        /// The name as the node URL spells it.
        host: String,
        /// The bound that ran out.
        timeout: Duration,
    },
}

/// Resolves node host names: hosts file, `localhost`, then DNS. Cheap to clone; clones share
/// one DNS client and cache.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
    timeout: Option<Duration>,
}

struct Inner {
    hosts: Hosts,
    /// `Err` holds why the DNS client could not be built: names outside the hosts file then
    /// fail with that reason instead of the process failing.
    dns: Result<TokioResolver, DnsSetupError>,
}

impl Resolver {
    /// A resolver for `config`, without a timeout of its own.
    pub fn new(config: ResolveConfig) -> Resolver {
        let dns = build_dns(&config);
        if let Err(reason) = &dns {
            tracing::error!(%reason, "no DNS client; only hosts-file names will resolve");
        }
        Resolver {
            inner: Arc::new(Inner {
                hosts: config.hosts,
                dns,
            }),
            timeout: None,
        }
    }

    /// The process's resolver, read from `/etc/resolv.conf` and `/etc/hosts` on first use.
    /// Its DNS sockets live on the runtime that first uses them: dtc runs one per process.
    pub fn shared() -> Resolver {
        static SHARED: OnceLock<Resolver> = OnceLock::new();
        SHARED
            .get_or_init(|| Resolver::new(ResolveConfig::system()))
            .clone()
    }

    /// This resolver, giving up on a lookup after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Resolver {
        self.timeout = Some(timeout);
        self
    }

    /// The addresses of `host` (an IP literal, a hosts-file name, `localhost`, or a DNS name).
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if let Some(ip) = ip_literal(host) {
            return Ok(vec![ip]);
        }
        if let Some(ips) = self.inner.hosts.get(host) {
            return Ok(ips.to_vec());
        }
        if is_localhost(host) {
            return Ok(vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]);
        }
        match self.timeout {
            Some(timeout) => tokio::time::timeout(timeout, self.dns_lookup(host))
                .await
                .unwrap_or_else(|_| {
                    Err(ResolveError::Timeout {
                        host: host.to_owned(),
                        timeout,
                    })
                }),
            None => self.dns_lookup(host).await,
        }
    }

    async fn dns_lookup(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let dns = self
            .inner
            .dns
            .as_ref()
            .map_err(|reason| ResolveError::Dns {
                host: host.to_owned(),
                reason: format!("no DNS client: {reason}"),
            })?;
        match dns.lookup_ip(host).await {
            Ok(answer) => {
                let ips: Vec<IpAddr> = answer.iter().collect();
                if ips.is_empty() {
                    return Err(ResolveError::NotFound {
                        host: host.to_owned(),
                    });
                }
                Ok(ips)
            }
            Err(e) if e.is_no_records_found() => Err(ResolveError::NotFound {
                host: host.to_owned(),
            }),
            Err(e) => Err(ResolveError::Dns {
                host: host.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
}

/// hyper-util's resolver interface: the connector sets the port on each address.
impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.clone();
        Box::pin(async move {
            let ips = resolver.lookup(name.as_str()).await?;
            let addrs: Vec<SocketAddr> = ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(addrs.into_iter())
        })
    }
}

/// The hickory client for `config`'s DNS part. Its own hosts-file handling is off: hosts and
/// `localhost` are answered before DNS, and never from the real `/etc/hosts` in tests.
fn build_dns(config: &ResolveConfig) -> Result<TokioResolver, DnsSetupError> {
    let servers = config
        .nameservers
        .iter()
        .map(|addr| {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut server.connections {
                connection.port = addr.port();
            }
            server
        })
        .collect();
    let search = config
        .search
        .iter()
        .map(|domain| {
            DnsName::from_str_relaxed(domain).map_err(|source| DnsSetupError::SearchDomain {
                domain: domain.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut opts = ResolverOpts::default();
    opts.ndots = config.ndots;
    opts.timeout = config.timeout;
    opts.attempts = config.attempts;
    opts.use_hosts_file = ResolveHosts::Never;
    TokioResolver::builder_with_config(
        ResolverConfig::from_parts(None, search, servers),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .map_err(DnsSetupError::Build)
}

/// Why the DNS client could not be built (names outside the hosts file then fail with it).
#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    /// A search domain of the resolver config is not a domain name.
    #[error("search domain {domain}: {source}")]
    SearchDomain {
        domain: String,
        #[source]
        source: hickory_resolver::proto::ProtoError,
    },
    /// The resolver refused its configuration.
    #[error("{0}")]
    Build(#[source] hickory_resolver::net::NetError),
}

fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn is_localhost(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}
