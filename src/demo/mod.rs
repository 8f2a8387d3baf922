//! `dtc demo`: three reference nodes and the proxy in one process, on the embedded default
//! config, with a fault switch so a person can break it on purpose and heal it again.
//!
//! - [`DemoArgs`]: where it listens (`--listen`, `--admin`, `--nodes-from`, `--node-admin`)
//!   and the faults the nodes start with (`--fault node-3=down`);
//! - [`fault`]: `dtc demo fault NODE CHANGE...`, the client of the fault switch
//!   ([`crate::node::control`]) that a second terminal runs.

pub(crate) mod fault;

use crate::app::{App, StartError};
use crate::config::{self, Config, Settings};
use crate::exit;
use crate::node::{FaultChange, NodeOptions, RefNode, control};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::process::ExitCode;

/// Where the demo's fault switch listens unless `--node-admin` says otherwise.
pub(crate) const NODE_ADMIN: &str = "127.0.0.1:9902";

/// `dtc demo`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    /// The proxy's address (listen.address of the embedded config: 127.0.0.1:8000).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The admin listener's address (listen.admin: 127.0.0.1:9901).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// The first reference node's address; the others take the next ports (127.0.0.1:5000).
    #[arg(long, value_name = "ADDR")]
    pub nodes_from: Option<String>,
    /// Where the fault switch of the reference nodes listens (`dtc demo fault` talks to it).
    #[arg(long, value_name = "ADDR", default_value = NODE_ADMIN)]
    pub node_admin: String,
    /// Start a node broken: `node-3=down`, `node-3=delay=500ms`, `node-2=error-rate=0.2`
    /// (repeat the flag for more).
    #[arg(long, value_name = "NODE=FAULT", value_parser = parse_start_fault)]
    pub fault: Vec<(String, FaultChange)>,
    #[command(subcommand)]
    pub command: Option<DemoCommand>,
}

/// `dtc demo fault`.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Change a running demo node's faults: `dtc demo fault node-3 down`, then `... up` or
    /// `... heal`; with no node, list the nodes and their faults.
    Fault(fault::FaultArgs),
}

/// Why `dtc demo` cannot start as asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    #[error("`{0}`: write NODE=FAULT, e.g. node-3=down")]
    StartFault(String),
    #[error(transparent)]
    Fault(#[from] control::FaultError),
    #[error("the embedded config: {0}")]
    EmbeddedConfig(String),
    /// The embedded config with the demo's addresses does not validate (each problem listed).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Url(#[from] config::url::UrlError),
    #[error("--nodes-from `{0}` is not an address like 127.0.0.1:5000")]
    NodesFrom(String),
    #[error("--nodes-from `{0}`: the ports run past 65535")]
    PortsPast(String),
    #[error("--fault: no node `{name}`; the nodes are {nodes}")]
    NoSuchNode { name: String, nodes: String },
    #[error(
        "cannot start reference node {name} on {addr}: {why} (is another demo running? choose other ports with --nodes-from ADDR)"
    )]
    Bind {
        name: String,
        addr: String,
        why: String,
    },
}

impl DemoError {
    /// The exit code: a flag to fix, or a port to free.
    fn exit_code(&self) -> u8 {
        match self {
            DemoError::Bind { .. } => exit::UNAVAILABLE,
            _ => exit::USAGE,
        }
    }
}

/// `node-3=delay=500ms` → (`node-3`, delay 500 ms).
fn parse_start_fault(text: &str) -> Result<(String, FaultChange), DemoError> {
    let (node, change) = text
        .split_once('=')
        .ok_or_else(|| DemoError::StartFault(text.to_string()))?;
    Ok((node.to_string(), change.parse()?))
}

/// Runs `dtc demo` (or `dtc demo fault`).
pub(crate) fn main(args: DemoArgs) -> ExitCode {
    match args.command {
        Some(DemoCommand::Fault(f)) => fault::main(f),
        None => crate::process::with_runtime(0, run(args)),
    }
}

/// The embedded default config with the demo's addresses; `nodes` are the reference nodes as
/// bound (their real ports, also when `--nodes-from` asked for port 0).
fn demo_settings(args: &DemoArgs, nodes: &[RefNode]) -> Result<Settings, DemoError> {
    let mut cfg = default_config()?;
    if let Some(a) = &args.listen {
        cfg.listen.address = a.clone();
    }
    if let Some(a) = &args.admin {
        cfg.listen.admin = a.clone();
    }
    for (n, node) in cfg.nodes.iter_mut().zip(nodes) {
        n.url = node.url();
    }
    config::validate::validate(cfg, "").map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        DemoError::Invalid(list.join("; "))
    })
}

fn default_config() -> Result<Config, DemoError> {
    toml::from_str(config::DEFAULT_CONFIG).map_err(|e| DemoError::EmbeddedConfig(e.to_string()))
}

/// Where each reference node listens: the embedded config's addresses, or from `--nodes-from`
/// on (consecutive ports; port 0 gives each node a free port).
fn node_addresses(args: &DemoArgs, cfg: &Config) -> Result<Vec<(String, String)>, DemoError> {
    let Some(first) = &args.nodes_from else {
        return cfg
            .nodes
            .iter()
            .map(|n| {
                let (_, authority, _) = config::validate::parse_http_url(&n.url)?;
                Ok((n.name.clone(), authority))
            })
            .collect();
    };
    let first: SocketAddr = first
        .parse()
        .map_err(|_| DemoError::NodesFrom(first.clone()))?;
    cfg.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let port = match first.port() {
                0 => 0,
                p => p
                    .checked_add(i as u16)
                    .ok_or_else(|| DemoError::PortsPast(first.to_string()))?,
            };
            Ok((
                n.name.clone(),
                SocketAddr::new(first.ip(), port).to_string(),
            ))
        })
        .collect()
}

/// Starts the reference nodes, each broken as `--fault` says.
async fn start_nodes(
    args: &DemoArgs,
    addresses: &[(String, String)],
) -> Result<Vec<RefNode>, DemoError> {
    for (name, _) in &args.fault {
        if !addresses.iter().any(|(n, _)| n == name) {
            let names: Vec<&str> = addresses.iter().map(|(n, _)| n.as_str()).collect();
            return Err(DemoError::NoSuchNode {
                name: name.clone(),
                nodes: names.join(", "),
            });
        }
    }
    let mut nodes = Vec::new();
    for (i, (name, addr)) in addresses.iter().enumerate() {
        let opts = NodeOptions {
            name: name.clone(),
            id_base: 1 + 1000 * i as u64,
            faults: Default::default(),
        };
        let node = RefNode::bind(addr, opts)
            .await
            .map_err(|e| DemoError::Bind {
                name: name.clone(),
                addr: addr.clone(),
                why: e.to_string(),
            })?;
        nodes.push(node);
    }
    for (name, change) in &args.fault {
        if let Some(n) = nodes.iter().find(|n| n.name() == name) {
            n.apply(change).await;
        }
    }
    Ok(nodes)
}

/// Runs the demo until Ctrl-C.
pub(crate) async fn run(args: DemoArgs) -> ExitCode {
    let fail = |code: u8, e: String| {
        eprintln!("dtc demo: {e}");
        ExitCode::from(code)
    };
    let addresses = match default_config().and_then(|cfg| node_addresses(&args, &cfg)) {
        Ok(a) => a,
        Err(e) => return fail(e.exit_code(), e.to_string()),
    };
    let switch = match tokio::net::TcpListener::bind(args.node_admin.as_str()).await {
        Ok(l) => l,
        Err(e) => {
            return fail(
                exit::UNAVAILABLE,
                format!(
                    "cannot serve the fault switch on {}: {e} (is another demo running? choose another address with --node-admin ADDR)",
                    args.node_admin
                ),
            );
        }
    };
    let nodes = match start_nodes(&args, &addresses).await {
        Ok(n) => n,
        Err(e) => return fail(e.exit_code(), e.to_string()),
    };
    let settings = match demo_settings(&args, &nodes) {
        Ok(s) => s,
        Err(e) => return fail(e.exit_code(), e.to_string()),
    };
    let switch_addr = switch.local_addr().ok();
    tokio::spawn(control::serve(
        switch,
        nodes.clone(),
        std::future::pending(),
    ));
    let proxy = settings.listen;
    let app = match App::builder(settings).start().await {
        Ok(app) => app,
        Err(e) => return fail(exit::UNAVAILABLE, e.to_string()),
    };
    let listeners = match app.listen().await {
        Ok(l) => l,
        Err(StartError::Bind { addr, source }) => {
            let flag = if addr == proxy { "--listen" } else { "--admin" };
            return fail(
                exit::UNAVAILABLE,
                format!(
                    "cannot listen on {addr}: {source} (is another demo or dtc running? choose another address with {flag} ADDR)"
                ),
            );
        }
        Err(e) => return fail(exit::UNAVAILABLE, e.to_string()),
    };
    let addr = |l: &tokio::net::TcpListener| l.local_addr().ok();
    let (client, admin) = (
        addr(&listeners.client),
        listeners.admin.as_ref().and_then(addr),
    );
    if let Some(client) = client {
        println!("{}", banner(client, admin, switch_addr, &nodes));
    }
    app.serve(listeners, crate::app::shutdown_signal()).await;
    ExitCode::SUCCESS
}

fn banner(
    proxy: SocketAddr,
    admin: Option<SocketAddr>,
    switch: Option<SocketAddr>,
    nodes: &[RefNode],
) -> String {
    let list: Vec<String> = nodes.iter().map(|n| n.view().line()).collect();
    let admin_url = admin.map_or("(admin off)".to_string(), |a| format!("http://{a}"));
    let admin_flag = match admin {
        Some(a) if a.to_string() != "127.0.0.1:9901" => format!(" --admin http://{a}"),
        _ => String::new(),
    };
    let switch_url = switch.map_or("-".to_string(), |a| format!("http://{a}"));
    let switch_flag = match switch {
        Some(a) if a.to_string() != NODE_ADMIN => format!(" --node-admin http://{a}"),
        _ => String::new(),
    };
    let addr = proxy;
    format!(
        "dtc demo: proxy on http://{proxy}, admin on {admin_url}, fault switch on {switch_url}\n\
         reference nodes:\n  {}\n\
         Try:\n  \
         curl -i -X POST http://{addr}/v1/group/ -H 'content-type: application/json' -d '{{\"groupId\": \"g1\"}}'\n  \
         curl -i http://{addr}/v1/group/g1/\n  \
         curl -i -X POST http://{addr}/v1/group/ -H 'content-type: application/json' -d '{{\"groupId\": \"g1\"}}'   # 400: exists\n  \
         curl -i -X DELETE http://{addr}/v1/group/ -H 'content-type: application/json' -d '{{\"groupId\": \"g1\"}}'\n  \
         curl -i http://{addr}/v1/group/g1/                                                                   # 404\n\
         Break it from another terminal (down, up, delay=3s, error-rate=0.5, heal), then look:\n  \
         dtc demo fault{switch_flag} node-3 down\n  \
         dtc status{admin_flag}\n  \
         dtc demo fault{switch_flag} node-3 heal\n\
         Admin (transactions, metrics, node health):\n  \
         open {admin_url}/ in a browser (the status page), or run: dtc status{admin_flag}\n  \
         curl -s {admin_url}/transactions\n  \
         curl -s {admin_url}/metrics | grep dtc_transactions_total\n\
         Ctrl-C stops everything.",
        list.join("\n  ")
    )
}
