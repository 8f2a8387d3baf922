//! A benchmark peer: pingora's round-robin load balancer (its quick start, without TLS or
//! health checks) in front of the kit's three nodes, so dtc can be measured beside the Rust
//! proxy its users would otherwise pick. Each request, GET or write, goes to one node; upstream
//! connections are kept alive by pingora's pool.
//!
//!   dtc-pingora-peer LISTEN NODE[,NODE...] THREADS
//!   dtc-pingora-peer 127.0.0.1:18106 127.0.0.1:18001,127.0.0.1:18002,127.0.0.1:18003 1

use async_trait::async_trait;
use pingora::prelude::*;
use std::sync::Arc;

struct RoundRobinProxy(Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl ProxyHttp for RoundRobinProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // The key is unused by round robin; 256 is how far select looks for a usable backend.
        let node = self
            .0
            .select(b"", 256)
            .ok_or_else(|| Error::new(ErrorType::ConnectNoRoute))?;
        Ok(Box::new(HttpPeer::new(node, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, nodes, threads] = args.as_slice() else {
        eprintln!("usage: dtc-pingora-peer LISTEN NODE[,NODE...] THREADS");
        std::process::exit(2);
    };
    let threads: usize = threads.parse().expect("THREADS is a number");
    let nodes = LoadBalancer::try_from_iter(nodes.split(',')).expect("NODE is host:port");
    // The bench scripts stop their peers with SIGTERM: no grace period for sessions to drain
    // (pingora's default waits minutes).
    let mut conf = pingora::server::configuration::ServerConf::new().expect("pingora defaults");
    conf.grace_period_seconds = Some(0);
    conf.graceful_shutdown_timeout_seconds = Some(1);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, RoundRobinProxy(Arc::new(nodes)));
    proxy.add_tcp(listen);
    proxy.threads = Some(threads);
    server.add_service(proxy);
    server.run_forever();
}
