//! What the resolver is told: name servers, search domains, `ndots`, timeouts and static
//! hosts, either written out (tests) or read from `/etc/resolv.conf` and `/etc/hosts` the way
//! glibc reads them in a pod.
//!
//! Missing files are not fatal: without `resolv.conf` the resolver uses glibc's own defaults
//! (a name server on `127.0.0.1`, no search domains, `ndots:1`) and says so once in the log;
//! without `hosts` only `localhost` resolves statically (see [`super::Resolver`]).

use hickory_resolver::system_conf::parse_resolv_conf;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// Where glibc, and so a pod, keeps the DNS configuration.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Where glibc, and so a pod, keeps the static host names.
pub const HOSTS: &str = "/etc/hosts";

/// Everything the resolver needs to know. [`Default`] is glibc's behaviour without a
/// `resolv.conf`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveConfig {
    /// DNS servers, asked in this order (port 53 unless a test says otherwise).
    pub nameservers: Vec<SocketAddr>,
    /// Domains tried after a name (before it when it has fewer than `ndots` dots), e.g.
    /// `my-namespace.svc.cluster.local`.
    pub search: Vec<String>,
    /// A name with at least this many dots is tried as written first (Kubernetes pods: 5).
    pub ndots: usize,
    /// How long to wait for one name server's answer (`options timeout:`).
    pub timeout: Duration,
    /// How many times each query is tried (`options attempts:`).
    pub attempts: usize,
    /// Names answered without DNS, like `/etc/hosts`.
    pub hosts: Hosts,
}

impl Default for ResolveConfig {
    fn default() -> Self {
        ResolveConfig {
            nameservers: vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53)],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
            hosts: Hosts::default(),
        }
    }
}

impl ResolveConfig {
    /// The pod's configuration: [`RESOLV_CONF`] and [`HOSTS`].
    pub fn system() -> ResolveConfig {
        ResolveConfig::from_files(Path::new(RESOLV_CONF), Path::new(HOSTS))
    }

    /// Reads a `resolv.conf` and a `hosts` file. Never fails: an unreadable or unusable
    /// `resolv.conf` gives the [`Default`] name server and options (with a warning), an
    /// unreadable `hosts` file an empty [`Hosts`].
    pub fn from_files(resolv_conf: &Path, hosts: &Path) -> ResolveConfig {
        let mut config = match std::fs::read(resolv_conf) {
            Ok(text) => ResolveConfig::parse_resolv_conf(&text).unwrap_or_else(|reason| {
                tracing::warn!(path = %resolv_conf.display(), %reason,
                    "unusable resolv.conf; resolving with a name server on 127.0.0.1");
                ResolveConfig::default()
            }),
            Err(error) => {
                tracing::warn!(path = %resolv_conf.display(), %error,
                    "cannot read resolv.conf; resolving with a name server on 127.0.0.1");
                ResolveConfig::default()
            }
        };
        config.hosts = match std::fs::read_to_string(hosts) {
            Ok(text) => Hosts::parse(&text),
            Err(error) => {
                tracing::debug!(path = %hosts.display(), %error, "no hosts file");
                Hosts::default()
            }
        };
        config
    }

    /// Parses `resolv.conf` text (`nameserver`, `search`/`domain`, `options ndots: timeout:
    /// attempts:`). Fails when it names no name server, as glibc then also falls back.
    pub fn parse_resolv_conf(
        text: &[u8],
    ) -> Result<ResolveConfig, hickory_resolver::net::NetError> {
        let (dns, opts) = parse_resolv_conf(text)?;
        Ok(ResolveConfig {
            nameservers: dns
                .name_servers
                .iter()
                .map(|ns| SocketAddr::new(ns.ip, 53))
                .collect(),
            search: dns.search.iter().map(|d| d.to_string()).collect(),
            ndots: opts.ndots,
            timeout: opts.timeout,
            attempts: opts.attempts,
            hosts: Hosts::default(),
        })
    }
}

/// Static names and their addresses, as in `/etc/hosts`. Names match whole and without regard
/// to case or a trailing dot; search domains do not apply (as with glibc's `files` source).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts {
    by_name: HashMap<String, Vec<IpAddr>>,
}

impl Hosts {
    /// Parses `hosts` text: `ADDRESS NAME [ALIAS...]` per line, `#` to the end of a line is a
    /// comment, lines whose address does not parse are skipped.
    pub fn parse(text: &str) -> Hosts {
        let mut hosts = Hosts::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for name in fields {
                hosts.insert(name, ip);
            }
        }
        hosts
    }

    /// Adds `ip` to `name`'s addresses (kept in file order, without duplicates).
    pub fn insert(&mut self, name: &str, ip: IpAddr) {
        let ips = self.by_name.entry(normalize(name)).or_default();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }

    /// The addresses of `name`, if it is listed.
    pub fn get(&self, name: &str) -> Option<&[IpAddr]> {
        self.by_name.get(&normalize(name)).map(Vec::as_slice)
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}
