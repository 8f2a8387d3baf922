//! Node host names resolve without libc: IP literals skip DNS, the hosts file and `localhost`
//! answer first, short names go through the search domains as `ndots` says, and a name that
//! cannot be resolved says which name it was. Everything runs on loopback against
//! [`FakeDns`], a hand-written DNS server that answers A queries from a fixed table.

mod support;

use bytes::Bytes;
use dtc::upstream::resolve::{Hosts, ResolveConfig, ResolveError, Resolver};
use http::Method;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tokio::net::UdpSocket;

/// A DNS server on `127.0.0.1:0` that answers A queries for its names, NXDOMAIN for other
/// names, and an empty answer for other record types. Records every question it gets.
struct FakeDns {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
}

impl FakeDns {
    async fn start(names: &[(&str, Ipv4Addr)]) -> FakeDns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind fake dns");
        let addr = socket.local_addr().expect("fake dns addr");
        let table: Vec<(String, Ipv4Addr)> = names
            .iter()
            .map(|(n, ip)| (n.to_ascii_lowercase(), *ip))
            .collect();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let Some((name, qtype, question_end)) = parse_question(&buf[..len]) else {
                    continue;
                };
                log.lock().unwrap().push(format!("{name} {qtype}"));
                let ip = table.iter().find(|(n, _)| *n == name).map(|(_, ip)| *ip);
                let reply = answer(&buf[..question_end], ip, qtype == 1);
                let _ = socket.send_to(&reply, from).await;
            }
        });
        FakeDns { addr, asked }
    }

    /// A server that reads queries and never answers.
    async fn silent() -> (SocketAddr, UdpSocket) {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind silent dns");
        (socket.local_addr().expect("silent dns addr"), socket)
    }

    /// The A questions asked, in order (`name.` without the record type).
    fn asked_a(&self) -> Vec<String> {
        let asked = self.asked.lock().unwrap();
        asked
            .iter()
            .filter_map(|q| q.strip_suffix(" 1").map(str::to_owned))
            .collect()
    }

    /// A pod-like config: this server, `search ns.svc.cluster.local svc.cluster.local`,
    /// `ndots:5`, an empty hosts file.
    fn pod_config(&self) -> ResolveConfig {
        ResolveConfig {
            nameservers: vec![self.addr],
            search: vec!["ns.svc.cluster.local".into(), "svc.cluster.local".into()],
            ndots: 5,
            timeout: Duration::from_secs(2),
            attempts: 1,
            hosts: Hosts::default(),
        }
    }
}

/// The question's name (lower case, with the final dot), type, and where it ends.
fn parse_question(msg: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut name = String::new();
    loop {
        let len = usize::from(*msg.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        name.push_str(std::str::from_utf8(msg.get(at..at + len)?).ok()?);
        name.push('.');
        at += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
    Some((name.to_ascii_lowercase(), qtype, at + 4))
}

/// The reply to `query` (its header and question): one A record, an empty answer, or NXDOMAIN.
fn answer(query: &[u8], ip: Option<Ipv4Addr>, wants_a: bool) -> Vec<u8> {
    let mut reply = query.to_vec();
    let rd = query[2] & 0x01;
    reply[2] = 0x80 | rd; // a response, recursion desired copied
    reply[3] = if ip.is_some() { 0x80 } else { 0x83 }; // recursion available; NOERROR / NXDOMAIN
    let records: u16 = if ip.is_some() && wants_a { 1 } else { 0 };
    reply[4..12].copy_from_slice(&[0, 1, 0, records as u8, 0, 0, 0, 0]);
    if let (Some(ip), true) = (ip, wants_a) {
        reply.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&ip.octets());
    }
    reply
}

/// A hyper client whose connector resolves with `resolver`, as a node's does.
fn client_with(resolver: Resolver) -> Client<HttpConnector<Resolver>, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new_with_resolver(resolver))
}

async fn healthz(resolver: Resolver, url: &str) -> Result<http::StatusCode, String> {
    let req = request(Method::GET, url, None, &[]);
    client_with(resolver)
        .request(req)
        .await
        .map(|r| r.status())
        .map_err(|e| dtc::upstream::source_text(&e))
}

#[tokio::test]
async fn an_ip_literal_connects_without_asking_dns() {
    let dns = FakeDns::start(&[]).await;
    let resolver = Resolver::new(dns.pod_config());
    let node = start_node("a", 1).await;
    let url = format!("http://127.0.0.1:{}/healthz", node.addr().port());
    assert_eq!(
        healthz(resolver.clone(), &url).await,
        Ok(http::StatusCode::OK)
    );
    assert_eq!(
        resolver.lookup("[::1]").await.unwrap(),
        [IpAddr::from(Ipv6Addr::LOCALHOST)]
    );
    // ndots:5 would send `10.0.0.7` through the search domains; a literal must not be.
    assert_eq!(
        resolver.lookup("10.0.0.7").await.unwrap(),
        [IpAddr::from([10, 0, 0, 7])]
    );
    assert!(
        dns.asked.lock().unwrap().is_empty(),
        "no DNS query expected"
    );
}

#[tokio::test]
async fn hosts_file_names_resolve_before_dns() {
    let dns = FakeDns::start(&[("node-1.ns.svc.cluster.local.", [10, 1, 1, 1].into())]).await;
    let mut config = dns.pod_config();
    config.hosts = Hosts::parse(
        "# static names\n127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n\
         127.0.0.1 node-1.ns.svc.cluster.local node-1 # pinned\nnot-an-ip ignored\n",
    );
    let resolver = Resolver::new(config);
    let loopback = [
        IpAddr::from(Ipv4Addr::LOCALHOST),
        Ipv6Addr::LOCALHOST.into(),
    ];
    assert_eq!(resolver.lookup("localhost").await.unwrap(), loopback);
    assert_eq!(resolver.lookup("LOCALHOST.").await.unwrap(), loopback);
    assert_eq!(
        resolver.lookup("node-1").await.unwrap(),
        [IpAddr::from(Ipv4Addr::LOCALHOST)]
    );
    assert!(resolver.lookup("ignored").await.is_err());

    let node = start_node("a", 1).await;
    let url = format!("http://localhost:{}/healthz", node.addr().port());
    assert_eq!(healthz(resolver, &url).await, Ok(http::StatusCode::OK));
    assert!(
        dns.asked_a().iter().all(|q| q.starts_with("ignored.")),
        "only the unlisted name went to DNS: {:?}",
        dns.asked_a()
    );
}

#[tokio::test]
async fn localhost_is_loopback_without_a_hosts_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = ResolveConfig::from_files(&dir.path().join("none"), &dir.path().join("none"));
    assert_eq!(config, ResolveConfig::default(), "missing files fall back");
    let resolver = Resolver::new(config);
    let node = start_node("a", 1).await;
    let url = format!("http://localhost:{}/healthz", node.addr().port());
    assert_eq!(healthz(resolver, &url).await, Ok(http::StatusCode::OK));
}

#[tokio::test]
async fn a_short_name_resolves_through_the_search_domains() {
    let dns = FakeDns::start(&[
        ("node-1.ns.svc.cluster.local.", [10, 1, 1, 1].into()),
        ("node-2.other.svc.cluster.local.", [10, 2, 2, 2].into()),
        ("web.", Ipv4Addr::LOCALHOST),
    ])
    .await;
    let resolver = Resolver::new(dns.pod_config());
    assert_eq!(
        resolver.lookup("node-1").await.unwrap(),
        [IpAddr::from([10, 1, 1, 1])]
    );
    assert_eq!(dns.asked_a(), ["node-1.ns.svc.cluster.local."]);

    // Four dots, fewer than ndots:5: the search domains first, then the name as written.
    assert_eq!(
        resolver
            .lookup("node-2.other.svc.cluster.local")
            .await
            .unwrap(),
        [IpAddr::from([10, 2, 2, 2])]
    );
    let asked = dns.asked_a();
    assert_eq!(
        asked[1..],
        [
            "node-2.other.svc.cluster.local.ns.svc.cluster.local.",
            "node-2.other.svc.cluster.local.svc.cluster.local.",
            "node-2.other.svc.cluster.local.",
        ]
    );

    // End to end: a node URL with a DNS name reaches the node at the answered address.
    let node = start_node("a", 1).await;
    let url = format!("http://web:{}/healthz", node.addr().port());
    assert_eq!(healthz(resolver, &url).await, Ok(http::StatusCode::OK));
}

#[tokio::test]
async fn an_unknown_name_fails_naming_the_host() {
    let dns = FakeDns::start(&[]).await;
    let resolver = Resolver::new(dns.pod_config());
    let err = resolver.lookup("node-9.ns.svc").await.unwrap_err();
    assert!(matches!(err, ResolveError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot resolve node-9.ns.svc: "),
        "{err}"
    );

    let err = healthz(resolver, "http://node-9.ns.svc:5000/healthz")
        .await
        .unwrap_err();
    assert!(err.contains("cannot resolve node-9.ns.svc"), "{err}");
}

#[tokio::test]
async fn a_silent_name_server_is_bounded_by_the_timeout() {
    let (addr, _socket) = FakeDns::silent().await;
    let config = ResolveConfig {
        nameservers: vec![addr],
        timeout: Duration::from_secs(30),
        ..ResolveConfig::default()
    };
    let resolver = Resolver::new(config).with_timeout(Duration::from_millis(200));
    let started = tokio::time::Instant::now();
    let err = resolver.lookup("node-1.ns.svc").await.unwrap_err();
    assert!(matches!(err, ResolveError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot resolve node-1.ns.svc: "),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn resolv_conf_is_read_as_a_pod_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (resolv, hosts) = (dir.path().join("resolv.conf"), dir.path().join("hosts"));
    std::fs::write(
        &resolv,
        "search ns.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 10.96.0.10\noptions ndots:5 timeout:2 attempts:3\n",
    )
    .unwrap();
    std::fs::write(&hosts, "10.244.0.5\tmy-pod\n").unwrap();
    let config = ResolveConfig::from_files(&resolv, &hosts);
    assert_eq!(
        config.nameservers,
        [SocketAddr::from(([10, 96, 0, 10], 53))]
    );
    assert_eq!(
        config.search,
        ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    );
    assert_eq!(
        (config.ndots, config.timeout, config.attempts),
        (5, Duration::from_secs(2), 3)
    );
    assert_eq!(
        config.hosts.get("my-pod"),
        Some(&[IpAddr::from([10, 244, 0, 5])][..])
    );

    std::fs::write(&resolv, "search only.example\n").unwrap();
    let config = ResolveConfig::from_files(&resolv, &hosts);
    assert_eq!(
        config.nameservers,
        ResolveConfig::default().nameservers,
        "no nameserver line: glibc's default"
    );
}

#[tokio::test]
async fn a_proxy_with_localhost_node_urls_replicates() {
    let nodes = vec![start_node("a", 1).await, start_node("b", 101).await];
    let mut cfg = test_config(&nodes);
    for (n, spec) in nodes.iter().zip(cfg.nodes.iter_mut()) {
        spec.url = format!("http://localhost:{}", n.addr().port());
    }
    let dtc = start_proxy(cfg).await;
    let r = create_group(&dtc, "g1").await;
    assert_eq!(r.status(), 201, "{:?}", r.body());
    for n in &nodes {
        assert!(n.groups().contains("g1"), "{} has g1", n.name());
    }
}
